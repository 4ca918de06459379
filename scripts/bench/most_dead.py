#!/usr/bin/env python3
"""Most members die at once: time until every survivor has declared every
victim dead, in the simulator (issue 17's "time to declare 3 of 5 dead").

    python scripts/bench/most_dead.py [--n 5] [--kill 3] [--seeds 1-20] [--profiles local,lan]

The scene is node/sim/most_dead.py (also tests/sim/test_sim_most_dead.py's):
a converged cluster, its last KILL nodes crashed at the same moment,
survivors sampled every 50 ms.  Prints virtual seconds per profile: median,
max, each seed, and the highest Lifeguard health score a survivor reached.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from node.sim.most_dead import kill_most  # noqa: E402


def seeds_of(text: str) -> list[int]:
    lo, _, hi = text.partition("-")
    return list(range(int(lo), int(hi or lo) + 1))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=5)
    ap.add_argument("--kill", type=int, default=3)
    ap.add_argument("--seeds", default="1-20")
    ap.add_argument("--profiles", default="local,lan")
    args = ap.parse_args()
    for profile in args.profiles.split(","):
        runs = [kill_most(s, profile, args.n, args.kill) for s in seeds_of(args.seeds)]
        took = [r.took_s for r in runs]
        done = [t for t in took if t is not None]
        print(f"{profile}: {args.kill} of {args.n} killed, all dead on every survivor: "
              f"median {statistics.median(done):.2f} s, max {max(done):.2f} s virtual "
              f"({len(done)} of {len(took)} seeds within the bound; health up to "
              f"{max(r.health for r in runs)}); each: {[None if t is None else round(t, 2) for t in took]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
