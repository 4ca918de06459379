"""A coordinator scene: coordinators killed right after their awards.

How this works: `kill_after_awards` starts `nodes` agents (`lan` unless
`profile` says otherwise, no LZW),
lets their views agree for 10 virtual s, submits `jobs` jobs of `replicas`
replicas to random agents, and kills the first `kills` agents whose
auction rounds close with awards, 0.01 virtual s after each closes: their
claims are still spreading by gossip when the survivors take over their
slots.  It then runs until every slot runs exactly once and reports the
slots those dead coordinators placed on live nodes, the ones of those a
live coordinator awarded again, and the slots seen running twice (checked
every 0.01 virtual s) with the longest such stretch.

A successor that lacks a slot's claim takes the slot for unplaced and
awards it again; node.core.claim_relay has holders tell a slot's next
coordinator of their claims so that it does not.  The benchmark
(scripts/bench/coordinator_kill.py) and the test
(tests/sim/test_claim_conflict_sim.py) share this scene.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from auction.auctioneer import RoundClosed
from auction.placement import PlacementConfig
from auction.resources import Resources
from auction.spec import JobSpec, validate
from gossip.config import preset
from node.core.node_core import ClusterConfig
from node.sim.cluster import ClusterSim

GiB = 1 << 30


@dataclass(frozen=True)
class KillResult:
    killed: list[int]            # the coordinators killed, in order
    heal_s: float | None         # from the last kill until every slot runs once (None: not in the timeout)
    placed_by_dead: set[str]     # slots the killed coordinators awarded to agents that live
    awarded_again: set[str]      # ... of those, awarded again by a live coordinator
    ran_twice: dict[str, float]  # slot -> its longest stretch running twice, virtual s
    violations: list[str]        # the simulator's safety checks


def submitted(seed: int, nodes: int, after_s: float, jobs: int, replicas: int,
              cpu: float, profile: str = "lan") -> tuple[ClusterSim, list[JobSpec]]:
    """`nodes` agents, started together; `after_s` later, jobs submitted to random agents."""
    sim = ClusterSim(seed, nodes, preset(profile).replace(enable_compression=False),
                     capacities=[Resources(8000, 16 * GiB, 0)] * nodes,
                     cluster_config=ClusterConfig(store_sync_interval_s=2.0),
                     placement_config=PlacementConfig(placement_interval_s=1.0, auction_ttl_s=0.2))
    sim.world.bootstrap(seeds="random")
    sim.world.run_for(after_s)
    specs = [validate({"name": f"job-{k}", "image": "busybox", "replicas": replicas, "cpu": cpu, "memory": "64MiB"})
             for k in range(jobs)]
    rng = random.Random(seed)
    for spec in specs:
        sim.submit(rng.randrange(nodes), spec)
    return sim, specs


def kill_after_awards(seed: int, *, nodes: int = 64, jobs: int = 5, replicas: int = 100, kills: int = 3,
                      profile: str = "lan", timeout_s: float = 60.0) -> KillResult:
    sim, specs = submitted(seed, nodes, 10.0, jobs, replicas, cpu=0.1, profile=profile)  # views agree at 10 s
    w = sim.world
    closed: list[int] = []
    w.subscribe(lambda t, i, ev: closed.append(i) if isinstance(ev, RoundClosed) and ev.awarded else None)
    killed: list[int] = []
    while len(killed) < kills:
        w.run_for(0.01)
        for i in dict.fromkeys(closed):
            if i not in killed and len(killed) < kills:
                w.crash(i)
                killed.append(i)
    dead = {f"node-{i}" for i in killed}

    twice_since: dict[str, float] = {}
    longest: dict[str, float] = {}

    def placed(_: object) -> bool:
        for slot, count in sim.replica_counts().items():
            if count > 1:
                longest[slot] = max(longest.get(slot, 0.0), w.now - twice_since.setdefault(slot, w.now))
            else:
                twice_since.pop(slot, None)
        return not sim.placement_problems(specs)

    heal_s = w.run_until_converged(placed, timeout_s, check_every=0.01)
    by_dead = {slot for (slot, _round, coordinator), node in sim.accepted.items()
               if coordinator.split("#")[0] in dead and node not in dead}
    again = {slot for (slot, _round, coordinator), node in sim.accepted.items()
             if slot in by_dead and coordinator.split("#")[0] not in dead}
    return KillResult(killed, heal_s, by_dead, again, longest, list(sim.violations))
