"""Placement in a cluster larger than node.core.job_push.PUSH_MIN_MEMBERS:
a fresh job reaches its slots' coordinators directly, and all of it is
placed in a few auction rounds."""

from __future__ import annotations

from auction.coordination import coordinator_of
from auction.resources import Resources
from auction.spec import validate
from gossip.config import LAN
from node.core.job_push import PUSH_MIN_MEMBERS
from node.core.node_core import ClusterConfig
from auction.placement import PlacementConfig
from node.sim.cluster import ClusterSim

GiB = 1 << 30
N = PUSH_MIN_MEMBERS + 16


def _sim(seed: int) -> ClusterSim:
    sim = ClusterSim(seed, N, LAN.replace(enable_compression=False),
                     capacities=[Resources(4000, 8 * GiB, 0)] * N,
                     cluster_config=ClusterConfig(store_sync_interval_s=2.0),
                     placement_config=PlacementConfig(placement_interval_s=1.0, auction_ttl_s=0.2))
    sim.world.bootstrap(seeds="random")
    sim.world.run_for(10)
    return sim


def test_every_coordinator_of_a_fresh_job_has_it_within_milliseconds_of_the_write():
    sim = _sim(3)
    spec = validate({"name": "web", "image": "busybox", "replicas": 40, "cpu": 0.5, "memory": "64MiB"})
    names = [nd.name for nd in sim.world.nodes]
    coordinators = {coordinator_of("web", i, spec, names) for i in range(spec.replicas)}
    assert len(coordinators) > 10
    sim.submit(0, spec)
    sim.world.run_for(0.02)  # a gossip round is 0.2 s: only the push can have done it
    missing = [c for c in coordinators if sim.world.core(c).store.get("web") is None]
    assert missing == []


def test_many_replicas_are_placed_exactly_once_within_a_second():
    sim = _sim(4)
    specs = [validate({"name": f"job-{k}", "image": "busybox", "replicas": 40, "cpu": 0.75, "memory": "64MiB"})
             for k in range(5)]
    for k, spec in enumerate(specs):
        sim.submit(k * 7 % N, spec)
    took = sim.world.run_until_converged(lambda _: not sim.placement_problems(specs), 30, check_every=0.1)
    assert took is not None and took <= 1.0, took
    assert sim.violations == []
