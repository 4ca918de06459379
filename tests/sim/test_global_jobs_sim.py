"""Global jobs in the simulator: one replica on every node that may run it
(auction.global_jobs), as an operator of Swarm's global services or Nomad's
system jobs expects: nodes that join get one, a dead node's is not placed
elsewhere, a drained node's stops, constraints pick the nodes, a delete stops
them all, and a new version reaches every node.

Safety is checked on every output (ClusterSim.violations): no ledger over
capacity, every start traces to an accepted claim.
"""

from __future__ import annotations

import pytest

from gossip.config import LOCAL
from node.core.inputs import SetDrained
from node.sim.cluster import ClusterSim
from node.sim.swarm import CLUSTER, FAST
from auction.spec import validate

CFG = LOCAL.replace(enable_compression=False)
SEEDS = [21, 22, 23, 24]


def global_job(name: str = "agent", **extra: object):
    return validate({"name": name, "image": "busybox", "mode": "global", "cpu": 0.1, "memory": "64MiB",
                     **extra})


def make(seed: int, n: int, **kw) -> ClusterSim:
    sim = ClusterSim(seed, n, CFG, placement_config=FAST, cluster_config=CLUSTER, **kw)
    sim.world.bootstrap(seeds="random")
    sim.world.run_for(3)
    return sim


def per_node(sim: ClusterSim, job: str) -> dict[int, int]:
    """Copies of the job each live node runs."""
    return {i: sum(1 for slot in sim.running[i] if slot.rpartition("/")[0] == job) for i in sim.live_indices()}


def slots_run_once(sim: ClusterSim, job: str) -> bool:
    counts = sim.replica_counts()
    return all(n == 1 for slot, n in counts.items() if slot.rpartition("/")[0] == job)


def until(sim: ClusterSim, predicate, timeout: float) -> float | None:
    return sim.world.run_until_converged(lambda _: predicate(), timeout)


def test_every_node_runs_one_and_a_joining_node_gets_its_own():
    sim = make(1, 5)
    sim.world.crash(4)          # joins later, as a new machine
    sim.disks[4].claims.clear()
    sim.disks[4].entries.clear()
    sim.world.run_for(3)
    spec = global_job()
    sim.submit(0, spec)
    took = until(sim, lambda: per_node(sim, "agent") == {i: 1 for i in range(4)}, 10)
    assert took is not None, per_node(sim, "agent")
    assert took < 3.0       # no auction: each node takes its own slot at its next tick
    assert slots_run_once(sim, "agent")
    # Held for a while: no conflict left, nothing restarted.
    starts = sim.starts
    sim.world.run_for(10)
    assert per_node(sim, "agent") == {i: 1 for i in range(4)} and sim.starts == starts

    sim.world.restart(4)        # the new machine
    assert until(sim, lambda: per_node(sim, "agent") == {i: 1 for i in range(5)}, 15) is not None, \
        per_node(sim, "agent")
    assert slots_run_once(sim, "agent") and sim.starts == starts + 1

    # A node that goes down keeps its slot: its replica goes nowhere, and
    # it runs the same slot again when it is back.
    before = set(sim.running[3])
    sim.world.crash(3)
    sim.world.run_for(5)
    assert per_node(sim, "agent") == {0: 1, 1: 1, 2: 1, 4: 1}
    sim.world.restart(3)
    assert until(sim, lambda: set(sim.running[3]) == before, 15) is not None, sim.running[3]
    assert slots_run_once(sim, "agent")
    assert not sim.violations


def test_a_node_that_dies_keeps_its_slot_and_nobody_runs_two():
    sim = make(2, 4)
    spec = global_job()
    sim.submit(1, spec)
    assert until(sim, lambda: set(per_node(sim, "agent").values()) == {1}, 10) is not None
    slots = {i: set(sim.running[i]) for i in range(4)}
    sim.world.crash(2)
    sim.world.run_for(20)        # far past its death (local: about 1 s)
    assert {i: set(sim.running[i]) for i in (0, 1, 3)} == {i: slots[i] for i in (0, 1, 3)}
    assert not sim.violations


def test_constraints_pick_the_nodes_and_a_drained_node_stops_its_copy():
    labels = [{"role": "edge"}, {"role": "edge"}, {"role": "core"}, {"role": "edge"}]
    sim = make(3, 4, labels=labels)
    spec = global_job(constraints=["role == edge"])
    sim.submit(2, spec)
    assert until(sim, lambda: per_node(sim, "agent") == {0: 1, 1: 1, 2: 0, 3: 1}, 10) is not None, \
        per_node(sim, "agent")
    sim.world.feed(3, SetDrained(True))
    assert until(sim, lambda: per_node(sim, "agent") == {0: 1, 1: 1, 2: 0, 3: 0}, 10) is not None, \
        per_node(sim, "agent")
    sim.world.run_for(5)        # and it went nowhere else
    assert per_node(sim, "agent") == {0: 1, 1: 1, 2: 0, 3: 0}
    sim.world.feed(3, SetDrained(False))
    assert until(sim, lambda: per_node(sim, "agent") == {0: 1, 1: 1, 2: 0, 3: 1}, 10) is not None
    assert slots_run_once(sim, "agent")
    assert not sim.violations


def test_a_node_without_room_runs_none_and_the_others_do():
    from auction.resources import Resources
    from node.sim.swarm import GiB

    caps = [Resources(4000, 8 * GiB, 0)] * 3 + [Resources(4000, 128 * 1024 * 1024, 0)]
    sim = make(4, 4, capacities=caps)
    sim.submit(0, global_job(memory="256MiB"))
    assert until(sim, lambda: per_node(sim, "agent") == {0: 1, 1: 1, 2: 1, 3: 0}, 10) is not None
    sim.world.run_for(5)
    assert per_node(sim, "agent") == {0: 1, 1: 1, 2: 1, 3: 0}
    assert "needs" in sim.world.core(3).view.global_refusal("agent")
    assert not sim.violations


def test_a_new_version_reaches_every_node_and_a_delete_stops_them_all():
    from node.sim.checkers_catalog import SimRuntime

    sim = ClusterSim(5, 4, CFG, placement_config=FAST, cluster_config=CLUSTER)
    runtime = SimRuntime(sim)           # reports each copy running, as a node's runtime does
    sim.world.bootstrap(seeds="random")
    sim.world.run_for(3)
    policy = {"max_parallel": 1, "min_healthy_s": 1.0}
    sim.submit(0, global_job(update=policy))

    def versions() -> list[str]:
        return sorted(c[2] for i in sim.live_indices() for slot, c in runtime.containers[i].items()
                      if runtime.running(i, slot))

    v1 = global_job(update=policy).container_hash()
    assert until(sim, lambda: versions() == [v1] * 4, 10) is not None, versions()
    v2 = global_job(update=policy, env={"V": "2"})
    sim.submit(3, v2)
    most_down = 0

    def on_v2() -> bool:
        nonlocal most_down
        most_down = max(most_down, 4 - len(versions()))
        return versions() == [v2.container_hash()] * 4

    assert until(sim, on_v2, 30) is not None, versions()
    assert set(per_node(sim, "agent").values()) == {1}
    assert most_down <= 1       # paced: max_parallel = 1
    sim.stop_job(1, "agent")
    assert until(sim, lambda: set(per_node(sim, "agent").values()) == {0}, 10) is not None
    assert not sim.violations


def test_a_version_that_keeps_failing_stops_at_max_parallel_nodes_and_reverts():
    """A runtime gives up on a replica that keeps failing (crash loop).  A
    global slot has nowhere else to go: it stays, failed, so the rollout
    counts it down and stops (once released, it left the rollout's view and
    every node took the failing version in turn)."""
    from node.core.inputs import ReplicaGaveUp
    from node.sim.checkers_catalog import SimRuntime

    sim = ClusterSim(6, 4, CFG, placement_config=FAST, cluster_config=CLUSTER)
    runtime = SimRuntime(sim)
    sim.world.bootstrap(seeds="random")
    sim.world.run_for(3)
    policy = {"max_parallel": 1, "min_healthy_s": 1.0, "healthy_deadline_s": 5, "progress_deadline_s": 10,
              "auto_revert": True}
    v1, v2 = global_job(update=policy), global_job(update=policy, env={"V": "2"})
    runtime.failing.add(v2.container_hash())
    tried: set[int] = set()

    def give_up(t, i, ev) -> None:      # the runtime's crash-loop verdict on a v2 copy
        if type(ev).__name__ == "StartReplica" and ev.spec.container_hash() == v2.container_hash():
            tried.add(i)
            sim.world.after(1.0, sim.world.feed, i, ReplicaGaveUp(ev.claim.name, "crash loop", 60.0))

    sim.world.subscribe(give_up)
    sim.submit(0, v1)

    def on(version) -> bool:
        boxes = [c for i in sim.live_indices() for slot, c in runtime.containers[i].items()
                 if runtime.running(i, slot)]
        return len(boxes) == 4 and all(c[2] == version.container_hash() for c in boxes)

    assert until(sim, lambda: on(v1), 10) is not None
    sim.submit(2, v2)
    assert until(sim, lambda: on(v1) and tried, 60) is not None     # reverted: v1 runs on every node again
    assert len(tried) == 1, tried       # only the first node tried v2
    history = sim.world.core(1).view.history("agent")
    assert [e.meta.why for e in history[-3:]] == ["submit", "submit", "revert"]
    assert not sim.violations


@pytest.mark.parametrize("seed", SEEDS)
def test_after_random_faults_every_node_runs_one_copy(seed):
    """Crashes with restarts, pauses, partitions, loss and duplication
    (faults.swarm) for 40 s, then healed: every node runs exactly one copy,
    each slot once, with a replicated job beside it placed as usual."""
    from node.sim import faults
    from node.sim.swarm import job

    sim = make(seed, 6)
    sim.submit(0, global_job())
    web = job("web", 6, cpu=0.25, memory="64MiB")
    sim.submit(1, web)
    assert until(sim, lambda: set(per_node(sim, "agent").values()) == {1}, 10) is not None
    plan = faults.swarm(sim.world, sim.world.now, sim.world.now + 40)
    sim.world.run_for(40)

    def settled() -> bool:
        return (per_node(sim, "agent") == {i: 1 for i in range(6)} and slots_run_once(sim, "agent")
                and not [p for p in sim.placement_problems([web]) if p.startswith("web/")])

    assert until(sim, settled, 60) is not None, (per_node(sim, "agent"), sim.replica_counts(), str(plan))
    assert not sim.violations, sim.violations[:5]


def test_two_new_nodes_that_took_the_same_slot_apart_end_with_one_each():
    """Two machines join on the two sides of a partition: each sees the same
    free index and takes it.  After the heal the claims' order keeps one;
    the other node stops its copy and takes another index: one copy each."""
    from node.sim import faults

    sim = make(7, 6)
    for i in (4, 5):
        sim.world.crash(i)
        sim.disks[i].claims.clear()
        sim.disks[i].entries.clear()
    sim.world.run_for(3)
    sim.submit(0, global_job())
    assert until(sim, lambda: per_node(sim, "agent") == {i: 1 for i in range(4)}, 10) is not None
    faults.partition(sim.world, [[0, 1, 2, 4], [3, 5]])
    sim.world.restart(4, seeds=[0])
    sim.world.restart(5, seeds=[3])
    assert until(sim, lambda: per_node(sim, "agent") == {i: 1 for i in range(6)}, 15) is not None
    assert set(sim.running[4]) == set(sim.running[5]) == {"agent/4"}       # the same index on both sides
    faults.heal(sim.world)
    assert until(sim, lambda: per_node(sim, "agent") == {i: 1 for i in range(6)} and slots_run_once(sim, "agent"),
                 20) is not None, sim.replica_counts()
    assert {s for i in (4, 5) for s in sim.running[i]} == {"agent/4", "agent/5"}
    assert not sim.violations
