#!/usr/bin/env python3
"""Second copies when coordinators die right after their awards (issue 16).

    python scripts/bench/coordinator_kill.py [--nodes 64] [--jobs 10] [--replicas 100] [--kills 3] [--seeds 1-9]
                                             [--profile lan]

In the deterministic simulator (node/sim/coordinator_kill.py): `--nodes`
agents formed for 10 virtual s, `--jobs` jobs of `--replicas` replicas
submitted to random agents, and the first `--kills` agents whose auction
rounds close with awards killed 0.01 virtual s later.  Per seed it prints
the agents killed, the virtual time until every slot ran exactly once
again, how many slots the dead coordinators had placed on live agents, how
many of those a live coordinator awarded a second time, and how many slots
were seen running twice (checked every 0.01 virtual s) with the longest
such stretch; then the totals.  Compare trees by copying the scene module
into a worktree of the older commit and running this from there.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", ".."))

from node.sim.coordinator_kill import kill_after_awards  # noqa: E402


def seeds_of(text: str) -> list[int]:
    if "-" in text:
        first, last = text.split("-")
        return list(range(int(first), int(last) + 1))
    return [int(s) for s in text.split(",")]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--nodes", type=int, default=64)
    ap.add_argument("--jobs", type=int, default=10)
    ap.add_argument("--replicas", type=int, default=100, help="per job")
    ap.add_argument("--kills", type=int, default=3)
    ap.add_argument("--seeds", default="1-9", help="a range (1-9) or a list (4,7)")
    ap.add_argument("--profile", default="lan", choices=["lan", "wan", "local"])
    args = ap.parse_args()
    print(f"coordinator_kill: {args.nodes} agents ({args.profile}), {args.jobs} x {args.replicas} replicas, "
          f"the first {args.kills} coordinators killed 0.01 s after their rounds close")
    with_copies = 0
    seeds = seeds_of(args.seeds)
    for seed in seeds:
        cpu = time.process_time()
        r = kill_after_awards(seed, nodes=args.nodes, jobs=args.jobs, replicas=args.replicas, kills=args.kills,
                              profile=args.profile)
        heal = f"{r.heal_s:.2f} s" if r.heal_s is not None else "NOT within the timeout"
        longest = max(r.ran_twice.values(), default=0.0)
        with_copies += bool(r.ran_twice)
        print(f"seed {seed}: killed {r.killed}; every slot once again after {heal}; placed by them on live "
              f"agents {len(r.placed_by_dead)}, awarded again {len(r.awarded_again)}; ran twice "
              f"{len(r.ran_twice)} (longest {longest:.2f} s); safety violations {len(r.violations)}; "
              f"CPU {time.process_time() - cpu:.1f} s", flush=True)
    print(f"seeds with a slot running twice: {with_copies} of {len(seeds)}")


if __name__ == "__main__":
    main()
