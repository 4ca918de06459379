"""What the simulator's swarm runs share: fast placement settings, a random
cluster drawn from a seed, and the "comfortably fits" rule.

How this works: a swarm run (tests/sim/test_placement_sim.py's swarm case,
`shoal chaos sim`) builds a `ClusterSim` with `FAST` placement and `CLUSTER`
store settings (sub-second rounds, so a few virtual minutes cover a whole
fault campaign), draws node capacities from the seed's `random.Random`
(`draw_capacities`), and, after the faults heal, requires every desired slot
to run exactly once only when the jobs `fit_ratio` at most `COMFORTABLE_FIT`
of the cluster: below that, fragmentation cannot strand a replica, so a slot
left pending is a bug and not bad luck.
"""

from __future__ import annotations

import random
from collections.abc import Iterable

from auction.placement import PlacementConfig
from auction.resources import Resources
from auction.spec import JobSpec, validate
from node.core.node_core import ClusterConfig

GiB = 1 << 30
FAST = PlacementConfig(placement_interval_s=0.25, auction_ttl_s=0.1, claim_wait_s=1.0,
                       min_backoff_s=0.2, max_backoff_s=2.0)
CLUSTER = ClusterConfig(store_sync_interval_s=0.5, status_min_interval_s=0.5)
# Demand (CPU and memory, each) at most this share of the cluster: everything must run.
COMFORTABLE_FIT = 0.6


def job(name: str, replicas: int, cpu: float = 0.5, memory: str = "256MiB", **extra: object) -> JobSpec:
    """A busybox job spec (the simulator runs no image)."""
    return validate({"name": name, "image": "busybox", "replicas": replicas, "cpu": cpu,
                     "memory": memory, **extra})


def draw_capacities(rng: random.Random, n: int) -> list[Resources]:
    """n nodes of 1, 2 or 4 cores and 2, 4 or 8 GiB, drawn in node order."""
    return [Resources(rng.choice([1000, 2000, 4000]), rng.choice([2, 4, 8]) * GiB, 0) for _ in range(n)]


def fit_ratio(specs: Iterable[JobSpec], caps: list[Resources]) -> float:
    """The larger of the CPU and memory share of the cluster the specs ask for."""
    specs = list(specs)
    count = {s.name: len(caps) if s.is_global else s.replicas for s in specs}    # a global job: one a node
    cpu = sum(s.cpu_millis * count[s.name] for s in specs) / max(1, sum(c.cpu_millis for c in caps))
    mem = sum(s.memory_bytes * count[s.name] for s in specs) / max(1, sum(c.memory_bytes for c in caps))
    return max(cpu, mem)
