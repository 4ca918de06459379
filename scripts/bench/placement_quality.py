#!/usr/bin/env python3
"""Placement quality of the batch auction against centralized best-fit.

    python scripts/bench/placement_quality.py [--seeds 5] [--first-seed 1]

For each seed: the workload of tests/auction/test_quality.py (100 nodes of
mixed sizes, 1,000 tasks in jobs of 1-20 replicas, demand 110-120% of
capacity), placed four ways:

    auction/binpack   job by job, one batch auction per job (choose_winners
                      over offers from max_fit and marginal_scores), binpack
    auction/spread    the same with the spread strategy
    bestfit/offline   all tasks sorted largest first, each on the feasible
                      node with the least remaining capacity after placement
    bestfit/arrival   the same best-fit, tasks in the auctions' arrival order

Prints, per seed, the load (demand / capacity for cpu and memory), the
number of tasks each placed with the share of cpu and memory they use, and
the ratio auction/binpack over each best-fit; then the minimum ratios.

How this works: it imports the workload and the placers from the test, so
the script and the check in CI measure the same thing.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests" / "auction"))

from auction.spec import Strategy  # noqa: E402
from test_quality import (  # noqa: E402
    count, make_workload, place_best_fit, place_by_auction, placed_share,
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=5, help="how many seeds (default 5)")
    parser.add_argument("--first-seed", type=int, default=1)
    args = parser.parse_args()

    ratios_offline, ratios_arrival = [], []
    header = (f"{'seed':>4}  {'load cpu/mem':>12}  {'placer':<16} {'placed':>6}  "
              f"{'cpu used':>8}  {'mem used':>8}  {'time':>6}")
    print(header)
    print("-" * len(header))
    for seed in range(args.first_seed, args.first_seed + args.seeds):
        w = make_workload(seed)
        ws = make_workload(seed, Strategy.SPREAD)
        placers = [
            ("auction/binpack", lambda: place_by_auction(w)),
            ("auction/spread", lambda: place_by_auction(ws)),
            ("bestfit/offline", lambda: place_best_fit(w, largest_first=True)),
            ("bestfit/arrival", lambda: place_best_fit(w, largest_first=False)),
        ]
        counts = {}
        load = "{:.2f}/{:.2f}".format(*w.load())
        for i, (name, place) in enumerate(placers):
            t0 = time.perf_counter()
            placed = place()
            elapsed = time.perf_counter() - t0
            counts[name] = count(placed)
            cpu, mem = placed_share(w, placed)
            print(f"{seed if i == 0 else '':>4}  {load if i == 0 else '':>12}  {name:<16} "
                  f"{counts[name]:>6}  {cpu:>8.1%}  {mem:>8.1%}  {elapsed:>5.2f}s")
        r_off = counts["auction/binpack"] / counts["bestfit/offline"]
        r_arr = counts["auction/binpack"] / counts["bestfit/arrival"]
        ratios_offline.append(r_off)
        ratios_arrival.append(r_arr)
        print(f"{'':>4}  {'':>12}  auction/binpack over bestfit/offline {r_off:.3f}, "
              f"over bestfit/arrival {r_arr:.3f}")
    print(f"\nminimum over {args.seeds} seeds: auction/binpack / bestfit/offline = "
          f"{min(ratios_offline):.3f}, / bestfit/arrival = {min(ratios_arrival):.3f} "
          "(the check needs >= 0.98)")


if __name__ == "__main__":
    main()
