"""A restarted agent and the claims it reads from disk (node.core.replay), in the simulator.

The shape of the testbed test that caught it (tests/testbed/test_testbed.py:
2 nodes, the `local` profile, 3 replicas of 0.25 cpu): a power cut on the
node that runs the replicas, its slots move to the other node, then the
machine comes back.  Its claims on disk are superseded by then; before the
fix it started every one of them again at once, and each slot ran on both
machines until the claims sync told it to stop.  The ground truth is the
simulator's per-machine set of running replicas (`ClusterSim.running`),
or with a runtime that reports its slots to the core (`SimRuntime`, which
makes the merge rule keep a losing copy until the winner runs) the
containers it holds, sampled every 50 ms.
"""

from __future__ import annotations

import pytest

from auction.resources import Resources
from gossip.config import LAN, LOCAL
from node.core.outputs import StartReplica
from node.sim.checkers_catalog import SimRuntime
from node.sim.cluster import ClusterSim
from node.sim.swarm import GiB, job
from node.sim.world import CRASHED

SPEC = job("web", 3, cpu=0.25, memory="16MiB")
SLOTS = {"web/0", "web/1", "web/2"}


def two_nodes(seed: int, profile=LOCAL, n: int = 2) -> ClusterSim:
    sim = ClusterSim(seed, n, profile.replace(enable_compression=False), capacities=[Resources(900, GiB, 0)] * n)
    sim.world.bootstrap()
    sim.world.run_for(3)
    sim.submit(0, SPEC)
    sim.world.run_for(3)
    assert not sim.placement_problems([SPEC])
    return sim


def copies(sim: ClusterSim, runtime: SimRuntime | None) -> dict[str, int]:
    """Copies of each slot on every machine that has power (a paused agent's run on)."""
    counts: dict[str, int] = {}
    for i, running in enumerate(sim.running if runtime is None else runtime.containers):
        if sim.world.nodes[i].status is not CRASHED:
            for slot in running:
                counts[slot] = counts.get(slot, 0) + 1
    return counts


def run_sampling(sim: ClusterSim, runtime: SimRuntime | None, seconds: float,
                 doubled: set[tuple[float, str]]) -> None:
    end = sim.world.now + seconds
    while sim.world.now < end:
        sim.world.run_for(0.05)
        doubled |= {(round(sim.world.now, 2), slot) for slot, n in copies(sim, runtime).items() if n > 1}


@pytest.mark.parametrize("reporting", [False, True], ids=["plain", "reporting-runtime"])
@pytest.mark.parametrize("seed", range(5))
def test_a_machine_back_from_a_power_cut_never_runs_the_slots_that_moved_meanwhile(seed, reporting):
    sim = two_nodes(seed)
    runtime = SimRuntime(sim) if reporting else None
    sim.world.run_for(1)
    victim = max(range(2), key=lambda i: len(sim.running[i]))
    other = 1 - victim
    sim.world.crash(victim)
    took = sim.world.run_until_converged(lambda _: set(sim.running[other]) == SLOTS, 10, check_every=0.05)
    assert took is not None, sim.running
    # Its claims on disk still name it for the slots it ran.
    assert {name for name, c in sim.disks[victim].claims.items() if c.node == f"node-{victim}"}
    starts: list[tuple[float, str]] = []
    sim.world.subscribe(lambda t, i, ev: starts.append((t, ev.claim.name))
                        if i == victim and ev.__class__ is StartReplica and not ev.adopt_only else None)

    sim.world.restart(victim)
    doubled: set[tuple[float, str]] = set()
    run_sampling(sim, runtime, 15, doubled)

    assert doubled == set(), f"seed {seed}: slots ran on both machines: {sorted(doubled)[:5]}"
    assert starts == [], f"seed {seed}: the restarted node started superseded slots: {starts}"
    assert sim.placement_problems([SPEC]) == []
    assert not sim.violations


@pytest.mark.parametrize("seed", range(3))
def test_a_quick_restart_gets_its_slots_back_as_soon_as_peers_confirm_them(seed):
    # lan: failure detection takes seconds, so the peers never moved the
    # slots; the claims on disk still win and the node runs them again.
    sim = two_nodes(seed, LAN)
    victim = max(range(2), key=lambda i: len(sim.running[i]))
    mine = set(sim.running[victim])
    sim.world.crash(victim)
    sim.world.run_for(0.2)
    sim.world.restart(victim)
    took = sim.world.run_until_converged(lambda _: set(sim.running[victim]) == mine, 10, check_every=0.05)
    assert took is not None and took < 2.0, (took, sim.running)
    assert sim.placement_problems([SPEC]) == []
    assert not sim.violations


def test_a_lone_node_restarts_its_slots_after_replay_confirm_s():
    # No peer to confirm the claims: the node waits the bound, then runs them.
    sim = two_nodes(0, LAN, n=1)
    sim.world.crash(0)
    sim.world.run_for(0.2)
    sim.world.restart(0)
    sim.world.run_for(5)
    assert sim.running[0] == {}
    took = sim.world.run_until_converged(lambda _: set(sim.running[0]) == SLOTS, 10, check_every=0.05)
    assert took is not None and took <= 6.0, (took, sim.running)   # replay_confirm_s: 10 s after the restart
    assert not sim.violations


@pytest.mark.parametrize("seed", range(3))
def test_a_restarted_node_takes_no_slot_from_live_peers_before_it_has_heard_from_them(seed):
    # The testbed scene that caught it: 3 nodes, a job spread over them; a
    # power cut on one, its slot moves to a survivor; the machine comes back
    # and its agent's first placement passes run before its join is answered
    # (here: the join goes out 1 s after the restart).  Every peer then looks
    # gone to it; before the fix it coordinated their slots onto itself under
    # new ballots, stopping replicas that ran fine on live nodes.
    spread = job("web", 3, cpu=0.25, memory="16MiB", strategy="spread")
    sim = ClusterSim(seed, 3, LOCAL.replace(enable_compression=False), capacities=[Resources(900, GiB, 0)] * 3)
    sim.world.bootstrap()
    sim.world.run_for(3)
    sim.submit(0, spread)
    sim.world.run_for(3)
    assert not sim.placement_problems([spread])
    victim = 2
    sim.world.crash(victim)
    took = sim.world.run_until_converged(
        lambda _: sum(len(sim.running[i]) for i in (0, 1)) == 3, 10, check_every=0.05)
    assert took is not None, sim.running
    before = {i: set(sim.running[i]) for i in (0, 1)}
    stops: list[tuple[float, int, str]] = []
    sim.world.subscribe(lambda t, i, ev: stops.append((t, i, ev.slot))
                        if i != victim and ev.__class__.__name__ == "StopReplica" else None)

    sim.world.restart(victim, seeds=[])
    sim.world.run_for(1.0)
    sim.world.join(victim, [0, 1])
    sim.world.run_for(4.0)   # well inside the rebalancing settle delay (10 s)

    assert stops == [], f"seed {seed}: live nodes stopped replicas for the restarted one: {stops}"
    assert {i: set(sim.running[i]) for i in (0, 1)} == before
    assert sim.running[victim] == {}
    assert not sim.violations
