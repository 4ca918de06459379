"""Golden traces: fixed simulator seeds must keep producing the same event trace.

A digest here changes only when a change means to change behaviour (timing,
randomness drawn, messages sent).  Such a change updates the digest in the same
commit and says why in the commit message; a refactor must leave every digest
as it is.  Regenerate with `SHOAL_PRINT_GOLDEN=1 scripts/test tests/sim/test_golden_traces.py -s`.
"""

from __future__ import annotations

import os

import pytest

from auction.resources import Resources
from auction.spec import validate
from gossip.config import LAN, LOCAL
from node.core.node_core import ClusterConfig
from auction.placement import PlacementConfig
from node.sim import World, faults
from node.sim.cluster import ClusterSim
from node.sim.network import NetworkConfig

GiB = 1 << 30
FAST = PlacementConfig(placement_interval_s=0.25, auction_ttl_s=0.1, claim_wait_s=1.0,
                       min_backoff_s=0.2, max_backoff_s=2.0)
CLUSTER = ClusterConfig(store_sync_interval_s=0.5, status_min_interval_s=0.5)


def _job(name, replicas, **extra):
    return validate({"name": name, "image": "busybox", "replicas": replicas, "cpu": 0.5,
                     "memory": "256MiB", **extra})


def gossip_with_faults(seed: int) -> tuple[str, int]:
    w = World(seed, 20, LAN, network=NetworkConfig(loss=0.05, duplicate=0.02))
    w.bootstrap(stagger_s=0.05)
    faults.crash(w, 7, at=10.0)
    faults.pause(w, 3, 2.0, at=12.0)
    faults.partition(w, [range(0, 8), range(8, 20)], at=20.0)
    faults.heal(w, at=30.0)
    w.run_until(45.0)
    return w.trace_digest(), len(w.trace)


def placement_with_a_crash(seed: int) -> tuple[str, int]:
    sim = ClusterSim(seed, 6, LOCAL.replace(enable_compression=False), placement_config=FAST,
                     cluster_config=CLUSTER,
                     capacities=[Resources(2000, 4 * GiB, 0)] * 6,
                     labels=[{"rack": "abc"[i % 3]} for i in range(6)])
    sim.world.bootstrap(seeds="random")
    sim.world.run_for(3)
    sim.submit(0, _job("api", 12))
    sim.submit(3, _job("web", 4, spread="rack"))
    sim.world.run_for(5)
    victim = next(i for i in range(1, 6) if sim.running[i])
    sim.world.crash(victim)
    sim.world.run_for(10)
    sim.stop_job(0, "web")
    sim.world.run_for(5)
    assert not sim.violations
    return sim.world.trace_digest(), len(sim.world.trace)


CASES = {
    ("gossip", 11): gossip_with_faults,
    ("gossip", 12): gossip_with_faults,
    ("placement", 2): placement_with_a_crash,
    ("placement", 5): placement_with_a_crash,
}

GOLDEN: dict[tuple[str, int], tuple[str, int]] = {
    ('gossip', 11): ('3669fc1173dc821ff3cf2b920d6ab9a19e33aaf6d6fa2204a1c5b0280e55005c', 1222),
    ('gossip', 12): ('8da738be151d44cd04f619a43ed0a8c1f5cffe1bd3f89b2af59d9076e3f10fa7', 1264),
    ('placement', 2): ('1edf0d0b68957bd87fc39e94236d7b35e991e290e91b4a43ac6d5c27f8c7e41c', 620),
    ('placement', 5): ('a37a6a1a0931ee8676f2513e294b06ec215aac1722799775a484fdf993bd71e4', 573),
}


@pytest.mark.parametrize("kind,seed", sorted(CASES))
def test_the_trace_of_a_fixed_seed_is_unchanged(kind, seed):
    got = CASES[(kind, seed)](seed)
    if os.environ.get("SHOAL_PRINT_GOLDEN"):
        print(f"    ({kind!r}, {seed}): {got!r},")
    assert got == GOLDEN[(kind, seed)], (
        f"{kind} seed {seed}: the trace changed ({got}). If the change means to change "
        "behaviour, update GOLDEN and say why in the commit message.")
