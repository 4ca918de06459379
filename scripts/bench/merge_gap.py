#!/usr/bin/env python3
"""The gap during a partition merge, in the deterministic simulator (issues 16, 17).

    python scripts/bench/merge_gap.py [--seeds 5] [--presets local,lan] [--without-rule]

Each scene (node.sim.checkers_merge.merge_scene): a job runs on N agents with
the agent's default placement and cluster settings and a fake runtime that
reports "starting" for 0.3 s, then "running"; the cluster is partitioned
for 20 s (each side re-places the slots whose holders it cannot see, so every
slot runs once per side), then healed.  From the heal on, at every simulator
event and every 10 virtual ms between, it counts the slots that ran on both
sides and have no running copy.  Printed per gossip preset and scene, over
the seeds:

  * gap: the most slots without a running copy at once (max over seeds),
    and the longest one slot went without one;
  * starts: replicas started after the heal (median, max);
  * met: when the sides first saw each other again after the heal (gossip's
    reconnect, not placement: `lan` reconnects every few seconds);
  * agree: when every agent held the same claims and every slot ran exactly
    one copy, on its winner's node, after the heal and after the sides met
    (median, max).

--without-rule switches the merge rule (auction.merge_rule) off in this
process, to show what it changes: a losing copy stops as soon as its holder
learns it lost, and coordinators re-place at once.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", ".."))

from gossip.config import preset  # noqa: E402
from node.sim.checkers_merge import merge_scene  # noqa: E402

SCENES = [("5 nodes, 2+3, 12 replicas", 5, 2, 12), ("20 nodes, 8+12, 60 replicas", 20, 8, 60)]


def rule_off() -> None:
    import auction.merge_rule as rule
    import node.core.merge_link as link

    rule.MergeRule.keeps_copy = lambda self, *a: False  # type: ignore[method-assign]
    rule.MergeRule.holds_off = lambda self, *a: None  # type: ignore[method-assign]
    link.record_moved = lambda core: False


def fmt(values: list[float]) -> str:
    return f"{statistics.median(values):.2f} / {max(values):.2f}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--presets", default="local,lan")
    ap.add_argument("--without-rule", action="store_true")
    args = ap.parse_args()
    if args.without_rule:
        rule_off()
    print(f"merge rule: {'OFF' if args.without_rule else 'on'}; seeds 1..{args.seeds}")
    print("| preset | scene | max slots without a copy | longest gap s | starts after heal (median / max) "
          "| sides met s | agree after heal s (median / max) | agree after met s | CPU s |")
    print("|---|---|---|---|---|---|---|---|---|")
    for name in args.presets.split(","):
        config = preset(name)
        for label, nodes, split, replicas in SCENES:
            gaps, gap_s, starts, met, agree, after_met = [], [], [], [], [], []
            cpu0 = time.process_time()
            for seed in range(1, args.seeds + 1):
                c = merge_scene(seed, nodes=nodes, split=split, replicas=replicas, config=config,
                                agree_timeout_s=60.0)
                gaps.append(c.max_gap)
                gap_s.append(max(c.gap_s, c.open_gap_s()))
                starts.append(c.starts)
                met.append(c.met_s if c.met_s is not None else float("nan"))
                agree.append(c.agreed_s if c.agreed_s is not None else float("inf"))
                after_met.append(agree[-1] - met[-1])
            cpu = time.process_time() - cpu0
            print(f"| {name} | {label} | {max(gaps)} | {max(gap_s):.2f} | {fmt(starts)} | {fmt(met)} "
                  f"| {fmt(agree)} | {fmt(after_met)} | {cpu:.0f} |", flush=True)


if __name__ == "__main__":
    main()
