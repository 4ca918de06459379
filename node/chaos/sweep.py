"""Many seeds of the simulator campaign over the machine's cores, and what
they add up to.

How this works: `sweep(first, count, options, workers)` runs
`node.chaos.simrun.run_seed` for seeds first..first+count-1 in a process
pool (`concurrent.futures`, one process per core by default; the simulator
is pure Python, so threads would share one core), in seed order, and
returns every seed's result.  `summarize` folds them into per-invariant
verdicts, per-fault-kind figures (time to detect, re-place, converge: the
median, 90th percentile and maximum in virtual seconds) and doubled-copy
figures; `render` puts that in text, with each failing seed, its first
violations and the exact command that replays it.
"""

from __future__ import annotations

import io
import math
import os
import shlex
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from typing import Any

from node.chaos import invariants as inv
from node.chaos.faultplan import KINDS, NODE_KINDS
from node.chaos.simrun import SimOptions, run_seed


def _run_one(args: tuple[int, SimOptions]) -> dict[str, Any]:
    return run_seed(*args)


def sweep(first: int, count: int, opts: SimOptions, workers: int | None = None,
          progress: Callable[[int, int], None] | None = None) -> list[dict[str, Any]]:
    seeds = [(s, opts) for s in range(first, first + count)]
    workers = workers or os.cpu_count() or 1
    results: list[dict[str, Any]] = []
    if workers == 1 or count == 1:
        for a in seeds:
            results.append(_run_one(a))
            if progress:
                progress(len(results), count)
        return results
    chunk = max(1, min(16, count // (workers * 8)))
    with ProcessPoolExecutor(max_workers=min(workers, count)) as pool:
        for r in pool.map(_run_one, seeds, chunksize=chunk):
            results.append(r)
            if progress:
                progress(len(results), count)
    return results


def _pct(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile: the smallest value at or above a share q of them."""
    s = sorted(values)
    return s[max(0, math.ceil(q * len(s)) - 1)]


def _stats(values: list[float]) -> dict[str, float] | None:
    if not values:
        return None
    return {"p50": round(_pct(values, 0.5), 3), "p90": round(_pct(values, 0.9), 3), "max": round(max(values), 3)}


def summarize(results: list[dict[str, Any]]) -> dict[str, Any]:
    verdicts = {}
    for name in inv.INVARIANTS:
        bad = [r["seed"] for r in results if r.get("violations", {}).get(name)]
        verdicts[name] = {"ok": not bad, "failing_seeds": bad}
    verdicts[inv.EXACTLY_ONCE]["skipped_seeds"] = sum(1 for r in results if not r.get("exactly_once_checked", True))
    faults: dict[str, dict[str, Any]] = {}
    for kind in KINDS:
        rows = [f for r in results for f in r.get("faults", []) if f["kind"] == kind]
        if not rows:
            continue
        faults[kind] = {
            "count": len(rows),
            "detect_s": _stats([f["detect_s"] for f in rows if f["detect_s"] is not None]),
            "undetected": sum(1 for f in rows if f["detect_s"] is None),
            "replace_s": _stats([f["replace_s"] for f in rows if f["replace_s"] is not None]),
            "converge_s": _stats([f["converge_s"] for f in rows if f["converge_s"] is not None]),
        }
    doubled = [r["doubled"] for r in results if "doubled" in r]
    by_cause: dict[str, int] = {}
    for d in doubled:
        for cause, k in d["by_cause"].items():
            by_cause[cause] = by_cause.get(cause, 0) + k
    return {
        "seeds": len(results),
        "failed": [r["seed"] for r in results if not r["ok"]],
        "invariants": verdicts,
        "faults": faults,
        "converge_after_heal_s": _stats([r["converged_s"] for r in results if r.get("converged_s") is not None]),
        "doubled": {
            "episodes": sum(d["episodes"] for d in doubled),
            "by_cause": by_cause,
            "total_s": round(sum(d["total_s"] for d in doubled), 3),
            "longest_s": max((d["max_s"] for d in doubled), default=0.0),
            "over_heal": sum(d["over_heal"] for d in doubled),
            "gone_after_heal_max_s": max((d["gone_after_heal_max_s"] for d in doubled), default=0.0),
        },
        "writes": {"acknowledged": sum(r.get("writes", {}).get("acknowledged", 0) for r in results)},
        # rebalancing moves (auction.rebalance) the campaigns' engines let happen, by outcome
        "rebalance": {kind: sum(r.get("rebalance", {}).get(kind, 0) for r in results)
                      for kind in ("moving", "moved", "failed")},
        "rebalance_seeds": sum(1 for r in results if r.get("rebalance", {}).get("moved")),
        "preempted": sum(r.get("preempted", 0) for r in results),
        "preempted_seeds": sum(1 for r in results if r.get("preempted")),
    }


def replay_command(seed: int, opts: SimOptions, job_files: Sequence[str]) -> str:
    parts = ["shoal", "chaos", "sim", "--nodes", str(opts.nodes), "--seeds", "1", "--from", str(seed),
             "--faults", ",".join(opts.faults), "--duration", f"{opts.duration_s:g}"]
    for f in job_files:
        parts += ["--jobs", f]
    return shlex.join(parts)


def _s(v: float | None) -> str:
    return "-" if v is None else f"{v:.2f}s"


def _fmt(st: dict[str, float] | None) -> str:
    return "-" if st is None else f"{st['p50']:.2f}/{st['p90']:.2f}/{st['max']:.2f}"


def render(summary: dict[str, Any], results: list[dict[str, Any]], opts: SimOptions, job_files: Sequence[str],
           elapsed_s: float, workers: int) -> str:
    out = io.StringIO()
    w = out.write
    w(f"{summary['seeds']} seeds, {opts.nodes} nodes, faults {','.join(opts.faults)}, "
      f"{opts.duration_s:g} s of faults each; {elapsed_s:.1f} s on {workers} worker(s)\n\n")
    w("invariants:\n")
    for name, v in summary["invariants"].items():
        verdict = "PASS" if v["ok"] else f"FAIL  seeds {' '.join(map(str, v['failing_seeds'][:20]))}"
        note = ""
        if name == inv.EXACTLY_ONCE and v.get("skipped_seeds"):
            note = f"  ({v['skipped_seeds']} seed(s) skipped: jobs over a comfortable fit)"
        if name == inv.ACKED_WRITES:
            note = f"  ({summary['writes']['acknowledged']} acknowledged writes)"
        if name == inv.CONVERGES and summary["converge_after_heal_s"]:
            note = f"  (after the heal, p50/p90/max {_fmt(summary['converge_after_heal_s'])} s)"
        w(f"  {name:<14} {verdict}{note}\n")
    w("\nfaults (virtual s, p50/p90/max)  count  detect            re-place          converge"
      "          undetected\n")
    for kind, f in summary["faults"].items():
        undetected = f["undetected"] if kind in NODE_KINDS else "-"
        w(f"  {kind:<31} {f['count']:>5}  {_fmt(f['detect_s']):<17} {_fmt(f['replace_s']):<17} "
          f"{_fmt(f['converge_s']):<17} {undetected}\n")
    d = summary["doubled"]
    causes = ", ".join(f"{k} {v}" for k, v in sorted(d["by_cause"].items())) or "none"
    w(f"\ndoubled copies: {d['episodes']} episodes ({causes}), {d['total_s']:.1f} slot-seconds in all, "
      f"longest {d['longest_s']:.2f} s; {d['over_heal']} outlived the heal, "
      f"the last gone {d['gone_after_heal_max_s']:.2f} s after it\n")
    rb = summary["rebalance"]
    w(f"rebalancing: {rb['moving']} moves begun, {rb['moved']} awarded, {rb['failed']} found no taker, "
      f"in {summary['rebalance_seeds']} seed(s)\n")
    if summary.get("preempted"):
        w(f"preemption: {summary['preempted']} replicas released for higher-priority ones, "
          f"in {summary['preempted_seeds']} seed(s)\n")
    failing = [r for r in results if not r["ok"]]
    if failing:
        w(f"\n{len(failing)} failing seed(s):\n")
        for r in failing[:50]:
            w(f"  seed {r['seed']}:\n")
            for name, msgs in r["violations"].items():
                for m in msgs[:3]:
                    w(f"    {name}: {m.rstrip()}\n")
            w(f"    replay: {replay_command(r['seed'], opts, job_files)}\n")
    if len(results) == 1:
        r = results[0]
        w("\nplan:\n" + "".join(f"  {p}\n" for p in r.get("plan", [])))
        w("job writes:\n" + "".join(f"  {p}\n" for p in r.get("workload", [])))
        w("per fault:\n")
        for f in r.get("faults", []):
            w(f"  {f['fault']}  detect {_s(f['detect_s'])}  re-place {_s(f['replace_s'])}  "
              f"converge {_s(f['converge_s'])}\n")
        heal = r.get("heal_s")
        w(f"doubled copies (the heal at t={heal:.2f}):\n" if heal is not None else "doubled copies:\n")
        for slot, start, end, cause in r.get("doubled", {}).get("list", []):
            gone = "still running" if end is None else f"gone at t={end:.2f}"
            w(f"  {slot:<12} from t={start:.2f} ({cause}), {gone}\n")
    w("\n" + ("0 violations\n" if not failing else f"VIOLATIONS in {len(failing)} of {len(results)} seeds\n"))
    return out.getvalue()
