#!/usr/bin/env python3
"""How soon every agent's service catalog lists a large deploy (simulator).

    python scripts/bench/catalog_sim.py [--nodes 100] [--jobs 20] [--replicas 50] [--seeds 1 2 3]

N simulated agents (`lan`, compression off, 16 CPUs and 32 GiB each) join
and settle for 15 virtual s; then `--jobs` jobs of `--replicas` replicas each
(0.5 CPU, 128 MiB) are submitted at once to different agents.  Per seed it
prints when every replica's container runs, when every live agent's catalog
lists all of them (virtual s from the submissions), and the CPU the run took.
A replica is listed once its winning claim and its node's status record
saying it runs have both reached that agent (node/core/catalog.py), so this
measures how fast claims and status records spread while a deploy fills
every agent's gossip queue.

How this works: a thin loop over node.sim.ClusterSim, SimRuntime starting a
container as soon as its slot is claimed; every process is this one.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from auction.placement import PlacementConfig  # noqa: E402
from auction.resources import Resources  # noqa: E402
from auction.spec import validate  # noqa: E402
from gossip.config import LAN  # noqa: E402
from node.core.node_core import ClusterConfig  # noqa: E402
from node.sim.checkers_catalog import SimRuntime, running_containers  # noqa: E402
from node.sim.cluster import ClusterSim  # noqa: E402

GiB = 1 << 30


def run(seed: int, nodes: int, jobs: int, replicas: int) -> tuple[float, float, float]:
    sim = ClusterSim(seed, nodes, LAN.replace(enable_compression=False),
                     capacities=[Resources(16000, 32 * GiB, 0)] * nodes, cluster_config=ClusterConfig(),
                     placement_config=PlacementConfig(placement_interval_s=1.0, auction_ttl_s=0.2))
    runtime = SimRuntime(sim)
    w = sim.world
    w.bootstrap(seeds="random")
    w.run_for(15)
    specs = [validate({"name": f"job-{k}", "image": "busybox", "replicas": replicas, "cpu": 0.5,
                       "memory": "128MiB"}) for k in range(jobs)]
    c0, t0 = time.process_time(), w.now
    for k, spec in enumerate(specs):
        sim.submit(k % nodes, spec)
    desired = {f"{s.name}/{i}" for s in specs for i in range(s.replicas)}
    if w.run_until_converged(lambda _: {s for s, _ in running_containers(sim, runtime)} == desired,
                             120, 0.1) is None:
        raise SystemExit(f"seed {seed}: not every replica ran within 120 virtual s")
    ran = w.now - t0
    if w.run_until_converged(lambda _: all(len(w.core(i).view.catalog().instances) == len(desired)
                                           for i in sim.live_indices()), 120, 0.25) is None:
        raise SystemExit(f"seed {seed}: some catalog still lacked replicas 120 virtual s later")
    return ran, w.now - t0, time.process_time() - c0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--nodes", type=int, default=100)
    ap.add_argument("--jobs", type=int, default=20)
    ap.add_argument("--replicas", type=int, default=50)
    ap.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    args = ap.parse_args()
    listed = []
    for seed in args.seeds:
        ran, all_listed, cpu = run(seed, args.nodes, args.jobs, args.replicas)
        listed.append(all_listed)
        print(f"N={args.nodes} seed={seed}: all {args.jobs * args.replicas} running at {ran:.2f} s; "
              f"every catalog lists all at {all_listed:.2f} s; CPU {cpu:.0f} s", flush=True)
    print(f"median: every catalog complete at {statistics.median(listed):.2f} virtual s")


if __name__ == "__main__":
    main()
