#!/usr/bin/env python3
"""Container starts per heal after false suspicions and after a real kill (issue 17).

In the deterministic simulator (node/sim/churn.py: 5 nodes, one job of 50
replicas), for the `local` and `lan` profiles and several seeds, prints:

  * false suspicions: four of the five nodes stall in turns (node.sim.faults.slow)
    for 20 virtual s; nothing dies, so every container start is extra;
  * real kill: the busiest node loses power; container starts until every
    slot runs once again (the victim's slots is the minimum), and the heal
    time from the crash and from the first suspicion of the victim.

Each row is run with the suspicion grace (auction.suspicion_rule) and, with
--before, also without it (GRACE_SHARE = 0: a suspicion re-places at once,
as before the rule).

Usage: python scripts/bench/churn_bench.py [--seeds 1,2,3] [--profiles local,lan] [--before]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", ".."))

from auction import suspicion_rule  # noqa: E402
from node.sim import churn  # noqa: E402

# Stalls per profile: longer than a probe's timeout (so peers suspect the
# node), shorter than the shortest suspicion timeout (so it lives).
STALLS = {"local": (0.45, 0.5), "lan": (1.5, 2.0)}


def row(profile: str, seeds: list[int], share: float) -> dict[str, object]:
    saved = suspicion_rule.GRACE_SHARE
    suspicion_rule.GRACE_SHARE = share
    try:
        stall_s, run_s = STALLS[profile]
        cpu = time.process_time()
        false = [churn.false_suspicions(s, profile=profile, stall_s=stall_s, run_s=run_s, slow_nodes=4)
                 for s in seeds]
        kills = [churn.real_kill(s, profile=profile) for s in seeds]
        cpu = time.process_time() - cpu
    finally:
        suspicion_rule.GRACE_SHARE = saved
    heals = [k.heal_s for k in kills if k.heal_s is not None]
    after = [k.heal_after_suspicion_s for k in kills if k.heal_after_suspicion_s is not None]
    return {
        "profile": profile, "grace": f"{share:g} x base min timeout",
        "false: starts per seed": [f.starts for f in false],
        "false: suspicions of the busiest": [f.suspicions for f in false],
        "kill: starts / slots lost": [f"{k.starts}/{k.victim_slots}" for k in kills],
        "kill: heal s (median)": round(statistics.median(heals), 2) if heals else None,
        "kill: heal after 1st suspicion s (median)": round(statistics.median(after), 2) if after else None,
        "all settled": all(f.settled for f in false) and all(k.settled for k in kills),
        "cpu s": round(cpu, 1),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seeds", default="1,2,3")
    ap.add_argument("--profiles", default="local,lan")
    ap.add_argument("--before", action="store_true", help="also run without the grace (the old behaviour)")
    args = ap.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]
    for profile in args.profiles.split(","):
        shares = ([0.0] if args.before else []) + [suspicion_rule.GRACE_SHARE]
        for share in shares:
            r = row(profile, seeds, share)
            print("  ".join(f"{k}={v}" for k, v in r.items()), flush=True)


if __name__ == "__main__":
    main()
