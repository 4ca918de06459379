#!/usr/bin/env python3
"""Where each slot's time goes between its award and `running`, from the agents' logs.

    python scripts/bench/slot_trace.py LOG... [--job NAME] [--since EPOCH_S] [--per-slot]

Reads the `shoal.trace` lines (node/telemetry/slot_trace.py; the agents must
log at DEBUG, e.g. `scripts/testbed up 5 --agent-arg=--log-level=DEBUG`) from
the given agent logs (e.g. .shoal/testbed/*/agent.log), keeps the slots of
--job (all jobs if not given) traced after --since, and prints for each step
the median and largest time since the slot's first traced step (its award,
or for a rolling update the holder's own re-claim), and the median time
from the step before it.  `seen` is the first agent other than the holder
to see the slot running; `seen_all` the last of them.  A slot traced more
than once after --since (a rolling update) counts from its last `claimed`.
"""

from __future__ import annotations

import argparse
import re
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from node.telemetry.slot_trace import STEPS  # noqa: E402

LINE = re.compile(r"trace slot=(?P<slot>\S+) step=(?P<step>\w+) t=(?P<t>[\d.]+) node=(?P<node>\S+)")
ORDER = (*STEPS, "seen_all")


def read(paths: list[str], job: str | None, since: float) -> dict[str, dict[str, float]]:
    """slot -> step -> wall time (the first of each step after the slot's last `claimed`)."""
    events: dict[str, list[tuple[float, str, str]]] = {}
    for p in paths:
        for line in Path(p).read_text(errors="replace").splitlines():
            m = LINE.search(line)
            if m is None or float(m["t"]) < since:
                continue
            if job is not None and m["slot"].rpartition("/")[0] != job:
                continue
            events.setdefault(m["slot"], []).append((float(m["t"]), m["step"], m["node"]))
    out: dict[str, dict[str, float]] = {}
    for slot, evs in events.items():
        evs.sort()
        claimed = [t for t, step, _ in evs if step == "claimed"]
        start = claimed[-1] if claimed else evs[0][0]
        awarded = [t for t, step, _ in evs if step == "awarded" and t <= start]
        steps: dict[str, float] = {"awarded": awarded[-1]} if awarded else {}
        for t, step, _ in evs:
            if t < start or step == "awarded":
                continue
            steps.setdefault(step, t)
            if step == "seen":
                steps["seen_all"] = t
        out[slot] = steps
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("logs", nargs="+")
    ap.add_argument("--job")
    ap.add_argument("--since", type=float, default=0.0)
    ap.add_argument("--per-slot", action="store_true")
    a = ap.parse_args()
    slots = read(a.logs, a.job, a.since)
    if not slots:
        sys.exit("no trace lines (are the agents logging at DEBUG?)")
    print(f"{len(slots)} slots; seconds since each slot's first step (median / max), and since the step before")
    for step in ORDER:
        since_first, since_prev = [], []
        for steps in slots.values():
            if step not in steps:
                continue
            first = min(steps.values())
            since_first.append(steps[step] - first)
            before = [steps[s] for s in ORDER[:ORDER.index(step)] if s in steps and s != "seen_all"]
            if before:
                since_prev.append(steps[step] - max(before))
        if since_first:
            prev = f"   +{statistics.median(since_prev):6.3f} from the step before" if since_prev else ""
            print(f"  {step:10s} n={len(since_first):3d}  {statistics.median(since_first):6.3f} / "
                  f"{max(since_first):6.3f}{prev}")
    if a.per_slot:
        for slot, steps in sorted(slots.items()):
            first = min(steps.values())
            print(f"  {slot}: " + " ".join(f"{s}={steps[s] - first:.2f}" for s in ORDER if s in steps))


if __name__ == "__main__":
    main()
