"""A fresh job reaches its slots' coordinators directly (node.core.job_push):
in a cluster larger than PUSH_MIN_MEMBERS, and a spread job's one
coordinator in a small one too (and a small binpack job's); all of it is
placed in a few auction rounds.  A big binpack job in a small cluster is not
pushed: pushed, its chunks' rounds would open together.  A big binpack job
fills few nodes (a coordinator per chunk of its slots)."""

from __future__ import annotations

import collections

import pytest

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


def _sim(seed: int, n: int = N) -> ClusterSim:
    sim = ClusterSim(seed, n, LAN.replace(enable_compression=False),
                     capacities=[Resources(4000, 8 * GiB, 0)] * n,
                     cluster_config=ClusterConfig(store_sync_interval_s=2.0),
                     placement_config=PlacementConfig(placement_interval_s=1.0, auction_ttl_s=0.2))
    sim.world.bootstrap(seeds="random")
    sim.world.run_for(10)
    return sim


@pytest.mark.parametrize("n,replicas,strategy", [(N, 320, "binpack"), (5, 10, "spread")])
def test_every_coordinator_of_a_fresh_job_has_it_within_milliseconds_of_the_write(n, replicas, strategy):
    sim = _sim(3, n)
    spec = validate({"name": "web", "image": "busybox", "replicas": replicas, "cpu": 0.5, "memory": "64MiB",
                     "strategy": strategy})
    names = [nd.name for nd in sim.world.nodes]
    coordinators = {coordinator_of("web", i, spec, names) for i in range(spec.replicas)} - {names[0]}
    assert len(coordinators) >= (5 if strategy == "binpack" else 1)   # ten chunks of 32 (auction.coordination)
    sim.submit(0, spec)
    sim.world.run_for(0.02)  # a gossip round is 0.2 s: only the push can have done it
    missing = [c for c in coordinators if sim.world.core(names.index(c)).store.get("web") is None]
    assert missing == []


@pytest.mark.parametrize("n", [6, N])
@pytest.mark.parametrize("seed", [1, 2, 3, 4])
def test_a_small_binpack_job_lands_on_one_node_at_any_size(seed, n):
    # With a coordinator per slot, handed the job at once (the push), its
    # rounds opened together and spread 8 replicas over 4 of 6 nodes at the
    # median; above sample_min each round also drew its own members, and 48
    # nodes put them on 5-7.  A small binpack job now has one coordinator
    # and one round (auction.coordination), pushed to at any size.
    sim = _sim(seed, n)
    spec = validate({"name": "web", "image": "busybox", "replicas": 8, "cpu": 0.25, "memory": "128MiB"})
    sim.submit(seed % n, spec)
    took = sim.world.run_until_converged(lambda _: not sim.placement_problems([spec]), 30, 0.02)
    assert took is not None and took <= 0.1, took
    nodes = collections.Counter(i for i in range(n) for key in sim.running[i] if key.startswith("web/"))
    assert len(nodes) == 1, nodes


@pytest.mark.parametrize("seed", [1, 2])
def test_a_big_binpack_job_fills_few_nodes(seed):
    # 100 replicas of 0.25 cpu fit on 7 idle four-core nodes.  With a
    # coordinator per slot, each round drew its own candidates and saw no
    # other round's awards: 38-41 of the 48 nodes held one.  A coordinator
    # per chunk of 32 slots packs its chunk in one round (auction.coordination).
    sim = _sim(seed)
    spec = validate({"name": "big", "image": "busybox", "replicas": 100, "cpu": 0.25, "memory": "64MiB"})
    sim.submit(0, spec)
    took = sim.world.run_until_converged(lambda _: not sim.placement_problems([spec]), 30, 0.05)
    assert took is not None and took <= 0.5, took
    nodes = collections.Counter(i for i in range(N) for key in sim.running[i] if key.startswith("big/"))
    assert len(nodes) <= 9, nodes
    assert sim.violations == []


def test_many_replicas_are_placed_exactly_once_within_a_second():
    sim = _sim(4)
    specs = [validate({"name": f"job-{k}", "image": "busybox", "replicas": 40, "cpu": 0.75, "memory": "64MiB"})
             for k in range(5)]
    for k, spec in enumerate(specs):
        sim.submit(k * 7 % N, spec)
    took = sim.world.run_until_converged(lambda _: not sim.placement_problems(specs), 30, check_every=0.1)
    assert took is not None and took <= 1.0, took
    assert sim.violations == []
