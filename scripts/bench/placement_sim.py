#!/usr/bin/env python3
"""Placement benchmark in the deterministic simulator (issue 4).

Prints, for N simulated agents (NodeCore: gossip + job store + auctions):
  * placement latency per slot from submission to its replica starting
    (p50 / p99, virtual seconds), CPU seconds of the simulation,
  * placements per virtual second and per CPU second,
  * datagrams and bytes per placement,
  * after killing 10 % and then 50 % of the nodes at once: virtual time until
    every slot that still fits runs again.

Usage: python scripts/bench/placement_sim.py [--nodes 100] [--replicas 1000] [--seed 1]
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", ".."))

from auction.resources import Resources  # noqa: E402
from auction.spec import validate  # noqa: E402
from gossip.config import LAN  # noqa: E402
from node.core.node_core import ClusterConfig  # noqa: E402
from auction.placement import PlacementConfig, StartReplica  # noqa: E402
from node.sim.cluster import ClusterSim  # noqa: E402

GiB = 1 << 30


def pct(values: list[float], p: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(p / 100 * len(values)))]


def run(n: int, replicas: int, seed: int) -> None:
    rng = random.Random(seed)
    caps = [Resources(rng.choice([4000, 8000, 16000]), rng.choice([8, 16, 32]) * GiB, 0) for _ in range(n)]
    sim = ClusterSim(seed, n, LAN.replace(enable_compression=False), capacities=caps,
                     cluster_config=ClusterConfig(store_sync_interval_s=2.0),
                     placement_config=PlacementConfig(placement_interval_s=1.0, auction_ttl_s=0.2))
    w = sim.world
    cpu0 = time.process_time()
    w.bootstrap(seeds="random")
    w.run_for(15)
    boot_cpu = time.process_time() - cpu0

    started_at: dict[str, float] = {}

    def on_output(t, i, ev):
        if isinstance(ev, StartReplica) and ev.claim.name not in started_at:
            started_at[ev.claim.name] = t

    w.subscribe(on_output)
    # Size replicas so the workload takes about half the cluster's CPU: after
    # a 10 % kill everything still fits; after a 50 % kill it cannot.
    per_job = 50
    total_cpu = sum(c.cpu_millis for c in caps)
    cpu_each = max(0.05, round(total_cpu * 0.5 / replicas / 1000 / 0.05) * 0.05)
    jobs = [validate({"name": f"job-{k}", "image": "busybox", "replicas": per_job,
                      "cpu": round(cpu_each, 2), "memory": "128MiB"})
            for k in range(replicas // per_job)]
    stats0 = dict(w.stats)
    cpu0 = time.process_time()
    t0 = w.now
    for spec in jobs:
        sim.submit(rng.randrange(n), spec)
    took = w.run_until_converged(lambda _: not sim.placement_problems(jobs), timeout=300, check_every=0.5)
    cpu = time.process_time() - cpu0
    placed = len(started_at)
    lat = [t - t0 for t in started_at.values()]
    dgrams = w.stats["datagrams_sent"] - stats0["datagrams_sent"]
    dbytes = w.stats["datagram_bytes"] - stats0["datagram_bytes"]
    print(f"N={n} replicas={replicas} seed={seed} (bootstrap CPU {boot_cpu:.1f} s)")
    print(f"  all placed: {'yes' if took is not None else 'NO'} in {took if took is not None else float('nan'):.2f} "
          f"virtual s; {placed} starts")
    if lat:
        print(f"  latency per slot: p50 {pct(lat, 50):.3f} s, p99 {pct(lat, 99):.3f} s (virtual)")
    print(f"  CPU {cpu:.1f} s; {placed / max(took or 1e-9, 1e-9):.0f} placements per virtual s, "
          f"{placed / max(cpu, 1e-9):.0f} per CPU s")
    print(f"  {dgrams / max(placed, 1):.1f} datagrams and {dbytes / max(placed, 1) / 1024:.1f} KiB per placement "
          f"(all gossip traffic in the window)")
    for frac in (0.10, 0.50):
        # Victims are drawn from the nodes that run replicas (with binpack,
        # half the nodes run nothing, and killing those would measure nothing).
        live = sim.live_indices()
        busy = [i for i in live[1:] if sim.running[i]]
        idle = [i for i in live[1:] if not sim.running[i]]
        k = int(len(live) * frac)
        victims = rng.sample(busy, min(k, len(busy)))
        victims += rng.sample(idle, k - len(victims))
        lost = sum(len(sim.running[v]) for v in victims)
        for v in victims:
            w.crash(v)
        cpu0 = time.process_time()
        healed = w.run_until_converged(lambda _: _settled(sim, jobs), timeout=300, check_every=0.5)
        missing = len(sim.placement_problems(jobs))
        print(f"  kill {int(frac * 100)}% ({len(victims)} nodes, {lost} replicas): settled in "
              f"{healed if healed is not None else float('nan'):.2f} virtual s "
              f"(CPU {time.process_time() - cpu0:.1f} s); slots not running (no room left): {missing}; "
              f"safety violations: {len(sim.violations)}")


def _settled(sim: ClusterSim, jobs) -> bool:
    """Every slot runs exactly once, or every slot still missing fits on no
    survivor by the survivors' own ledgers (the cluster is simply full)."""
    problems = sim.placement_problems(jobs)
    if not problems:
        return True
    if any("runs 0 times" not in p for p in problems):
        return False  # a duplicate or a stray: not settled
    need = jobs[0].demand()  # every job in this workload asks for the same
    for i in sim.live_indices():
        ledger = sim.world.core(i).placement.ledger
        if need.fits_in(ledger.free(sim.world.nodes[i].local(sim.world.now))):
            return False
    return True


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--nodes", type=int, nargs="+", default=[100])
    ap.add_argument("--replicas", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    for n in args.nodes:
        run(n, args.replicas, args.seed)


if __name__ == "__main__":
    main()
