#!/usr/bin/env python3
"""A tenth of the cluster loses power at once: how soon each victim is
suspected, in the simulator (issue 16's heal after a 10 % kill).

    python scripts/bench/mass_failure.py [--nodes 300] [--fraction 0.1] [--seeds 1-8] [--start-formed]

The scene is node/sim/mass_failure.py (also tests/sim/test_mass_failure_sim.py's):
a converged `lan` cluster (with --start-formed, one started formed: the
way to 10,000 nodes), a random tenth of it crashed at the same moment, the
survivors' member events followed.  Prints virtual seconds from the crash, per
seed and as medians: when the median and the last victim were first held
not alive by some survivor (their first failed probe), and when every
survivor held every victim so.  Compare two trees with `--before PATH` (a
checkout of the older commit, run with this interpreter).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def seeds_of(text: str) -> list[int]:
    lo, _, hi = text.partition("-")
    return list(range(int(lo), int(hi or lo) + 1))


def one(root: Path, seed: int, nodes: int, fraction: float, formed: bool) -> dict[str, float | None]:
    """One seed in its own interpreter (a fresh process: no state shared between seeds)."""
    # The scene is this tree's file, loaded by path over `root`'s packages
    # (an older tree may not have it).
    code = ("import importlib.util, json, sys, time; sys.path.insert(0, sys.argv[1]);"
            "spec = importlib.util.spec_from_file_location('mass_failure_scene', sys.argv[5]);"
            "scene = importlib.util.module_from_spec(spec); sys.modules[spec.name] = scene;"
            "spec.loader.exec_module(scene);"
            "c = scene.crash_a_fraction;"
            "t = time.process_time();"
            "kw = {'formed': True} if sys.argv[6] == '1' else {};"
            "r = c(int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4]), **kw);"
            "f = r.first_suspected_s;"
            "print(json.dumps({'first_p50_s': f[len(f) // 2], 'first_max_s': f[-1], 'all_hold_s': r.all_hold_s,"
            "'cpu_s': time.process_time() - t}))")
    scene = ROOT / "node" / "sim" / "mass_failure.py"
    out = subprocess.run([sys.executable, "-c", code, str(root), str(seed), str(nodes), str(fraction), str(scene),
                          "1" if formed else "0"],
                         check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def _s(value: float | None) -> str:
    return "never (within 60 s)" if value is None else f"{value:.2f}"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--nodes", type=int, default=300)
    ap.add_argument("--fraction", type=float, default=0.1)
    ap.add_argument("--seeds", default="1-8")
    ap.add_argument("--start-formed", action="store_true",
                    help="start the cluster formed (World.start_formed) rather than by a join storm")
    ap.add_argument("--before", type=Path, help="a checkout of an older tree to run side by side")
    args = ap.parse_args()
    trees = [("this tree", ROOT)] + ([("before", args.before.resolve())] if args.before else [])
    print(f"{args.nodes} nodes (lan{', started formed' if args.start_formed else ''}), {args.fraction:.0%} "
          "crashed at once; virtual s from the crash", flush=True)
    for label, root in trees:
        runs = []
        for seed in seeds_of(args.seeds):
            r = one(root, seed, args.nodes, args.fraction, args.start_formed)
            runs.append(r)
            print(f"  {label}, seed {seed}: victims first suspected p50 {r['first_p50_s']:.2f}, "
                  f"last {r['first_max_s']:.2f}; every survivor holds every victim at {_s(r['all_hold_s'])} "
                  f"({r['cpu_s']:.1f} s CPU)", flush=True)
        held = [r["all_hold_s"] for r in runs if r["all_hold_s"] is not None]
        print(f"{label}: medians over {len(runs)} seeds: last victim first suspected "
              f"{statistics.median(r['first_max_s'] for r in runs):.2f} s, every survivor holds every victim "
              f"{statistics.median(held) if held else float('nan'):.2f} s ({len(held)}/{len(runs)} within 60 s)",
              flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
