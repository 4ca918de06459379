"""`shoal chaos run` on a 4-node testbed: three minutes of seeded faults and
job writes, then every invariant holds and the report is written.

Root only (skipped otherwise).  The run uses its own testbed prefix and
subnet (never a testbed someone has up) and takes it down at the end; the
test checks that none of its namespaces is left.  About 3 minutes of wall
time: 150 s of faults, plus bringing the testbed up, deploying, healing and
converging.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

pytestmark = [pytest.mark.skipif(os.geteuid() != 0, reason="scripts/testbed needs root"),
              pytest.mark.slow]


@pytest.mark.timeout(600)
def test_a_seeded_chaos_run_on_4_nodes_passes_every_invariant(tmp_path):
    pid = os.getpid()
    prefix, subnet = f"cx{pid % 100000}", f"10.80.{pid % 200 + 20}"
    out = tmp_path / "report"
    t0 = time.monotonic()
    run = subprocess.run([sys.executable, "-m", "node.cli", "chaos", "run", "--nodes", "4", "--duration", "150s",
                          "--seed", "3", "--mean-gap", "12", "--prefix", prefix, "--subnet", subnet,
                          "--out", str(out)], capture_output=True, text=True, cwd=ROOT, timeout=570,
                         stdin=subprocess.DEVNULL)
    took = time.monotonic() - t0
    print(f"chaos run took {took:.0f} s\n{run.stdout}\n{run.stderr[-3000:]}")
    try:
        assert run.returncode == 0, run.stdout + run.stderr[-3000:]
        report = json.loads((out / "report.json").read_text())
        assert report["ok"] and not any(report["violations"].values()), report["violations"]
        assert report["faults"], "the seed drew no fault"
        assert report["converged_after_heal_s"] is not None
        assert "<svg" in (out / "report.html").read_text()
        assert "replay: shoal chaos run --nodes 4 --duration 150s --seed 3" in run.stdout
    finally:
        left = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
        assert f"{prefix}-" not in left, left
