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

How this works: the scene is node.sim.deploy_catalog's (its test,
tests/sim/test_catalog_after_deploy_sim.py, runs it at 40 agents); the CPU
includes the 15 s of joining before the submissions.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from node.sim.deploy_catalog import deploy_catalog  # noqa: E402


def run(seed: int, nodes: int, jobs: int, replicas: int) -> tuple[float, float, float]:
    c0 = time.process_time()
    r = deploy_catalog(seed, nodes, jobs, replicas)
    if r.running_s is None:
        raise SystemExit(f"seed {seed}: not every replica ran within 120 virtual s")
    if r.listed_s is None:
        raise SystemExit(f"seed {seed}: some catalog still lacked replicas 120 virtual s later")
    return r.running_s, r.listed_s, time.process_time() - c0


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
