"""The scene "every catalog after a large deploy", shared by its test and its benchmark.

How this works: n simulated agents (`lan`, compression off, 16 CPUs and
32 GiB each) join and settle for 15 virtual s; then `jobs` jobs of
`replicas` replicas (0.5 CPU, 128 MiB) are submitted at once to different
agents, SimRuntime starting each container as soon as its slot is claimed.
What comes back: the virtual seconds from the submissions until every
replica's container runs, and until every live agent's service catalog
lists all of them (None: not within `timeout_s`).  A replica is listed once
its winning claim and its node's status record saying it runs have both
reached that agent (node.core.catalog), so this measures how fast claims and
status records spread while a deploy fills every agent's gossip queue.
"""

from __future__ import annotations

from dataclasses import dataclass

from auction.placement import PlacementConfig
from auction.resources import Resources
from auction.spec import validate
from gossip.config import LAN
from node.core.config import ClusterConfig
from node.sim.checkers_catalog import SimRuntime, running_containers
from node.sim.cluster import ClusterSim

GiB = 1 << 30


@dataclass(frozen=True)
class DeployResult:
    replicas: int
    running_s: float | None   # every container runs
    listed_s: float | None    # every live agent's catalog lists them all


def deploy_catalog(seed: int, nodes: int, jobs: int, replicas: int, timeout_s: float = 120.0) -> DeployResult:
    sim = ClusterSim(seed, nodes, LAN.replace(enable_compression=False),
                     capacities=[Resources(16000, 32 * GiB, 0)] * nodes, cluster_config=ClusterConfig(),
                     placement_config=PlacementConfig(placement_interval_s=1.0, auction_ttl_s=0.2))
    runtime = SimRuntime(sim)
    w = sim.world
    w.bootstrap(seeds="random")
    w.run_for(15)
    specs = [validate({"name": f"job-{k}", "image": "busybox", "replicas": replicas, "cpu": 0.5,
                       "memory": "128MiB"}) for k in range(jobs)]
    t0 = w.now
    for k, spec in enumerate(specs):
        sim.submit(k % nodes, spec)
    desired = {f"{s.name}/{i}" for s in specs for i in range(s.replicas)}
    if w.run_until_converged(lambda _: {s for s, _ in running_containers(sim, runtime)} == desired,
                             timeout_s, 0.1) is None:
        return DeployResult(len(desired), None, None)
    running_s = w.now - t0
    listed = w.run_until_converged(
        lambda _: all(len(w.core(i).view.catalog().instances) == len(desired) for i in sim.live_indices()),
        timeout_s, 0.25)
    return DeployResult(len(desired), running_s, None if listed is None else w.now - t0)
