"""Live progress (`shoal job run`), `shoal ps`, `shoal logs` and `shoal monitor`
against real agent processes with the fake runtime (tests/node/test_real_jobs.py
starts them: 2 cpu and 2 GiB each, no host reserve; its fixture kills every
process it started, by PID, in teardown).

The fake runtime "runs" a replica the moment it is told to, has no output,
and its logs are the calls it recorded for the slot; enough to show that the
progress reaches "running" through the holders' status records, that the
exit codes are right, and that ps and logs reach the node holding a slot
from any agent.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest

from node.cli.progress import SlotView, counts, describe, quiet_reason, slot_views
from test_real_jobs import REPO, cluster, shoal, three, wait_until  # noqa: F401 -- cluster is a fixture

pytestmark = pytest.mark.real

FITS = """
name = "fits"
image = "busybox"
command = ["sleep", "3600"]
cpu = 0.5
memory = "64MiB"
replicas = 4
"""

HUGE = """
name = "huge"
image = "busybox"
cpu = 3
memory = "64MiB"
replicas = 2
"""


def test_a_job_that_fits_runs_and_exits_0_one_that_fits_nowhere_exits_2_saying_why(cluster, tmp_path):
    a1, a2, a3 = three(cluster, ("--label", "rack=a"), ("--label", "rack=b"), ("--label", "rack=c"))
    fits = tmp_path / "fits.toml"
    fits.write_text(FITS)
    t0 = time.monotonic()
    out = shoal("job", "run", str(fits), "--timeout", "30", "--address", a2.api)
    took = time.monotonic() - t0
    print(out.stderr)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "fits"                       # stdout: the result only
    assert "all 4 replicas of fits running" in out.stderr
    for i in range(4):                                        # each slot was seen placed, then running
        assert f"fits/{i}  placed on a" in out.stderr or f"fits/{i}  running on a" in out.stderr
        assert f"fits/{i}  running on a" in out.stderr
    assert "fits: 4/4 running (4 placed, 0 pending, 0 failed)" in out.stderr
    assert took < 20, took
    # the status agrees, from another agent: every slot running where its
    # claim is.  a3 learns the holders' runtime records by gossip, which may
    # reach it a moment after it reached a2 (where the progress was watched).
    seen: list[dict] = []

    def a3_status():
        seen.append(json.loads(shoal("job", "status", "fits", "--json", "--address", a3.api).stdout))
        return seen[-1]["running"] == 4 and {s["runtime"] for s in seen[-1]["slots"]} == {"running"}

    wait_until(a3_status, 5.0, "a3's job status to show 4 running slots", report=lambda: seen[-1])

    huge = tmp_path / "huge.toml"
    huge.write_text(HUGE)
    t0 = time.monotonic()
    out = shoal("job", "run", str(huge), "--timeout", "4", "--address", a1.api)
    print(out.stderr)
    assert out.returncode == 2, out.stderr
    assert out.stdout.strip() == "huge"
    assert 4 <= time.monotonic() - t0 < 15
    assert "not all replicas run after 4 s" in out.stderr
    tail = out.stderr.split("not all replicas run", 1)[1]
    for i in range(2):
        line = next(ln for ln in tail.splitlines() if f"huge/{i}" in ln)
        assert "pending" in line and "needs 3.0 cpu" in line and "largest free is" in line, line

    # --detach: back at once, the job stored
    out = shoal("job", "run", str(huge), "--detach", "--address", a3.api)
    assert out.returncode == 0 and out.stdout.strip() == "huge" and "waiting" not in out.stderr
    # errors: 1
    out = shoal("job", "run", str(fits), "--address", "http://127.0.0.1:1")
    assert out.returncode == 1 and "cannot reach shoal agent" in out.stderr


def test_ps_lists_every_nodes_containers_and_logs_reach_the_holder_from_any_agent(cluster, tmp_path):
    a1, a2, a3 = three(cluster)
    procs = {"a1": a1, "a2": a2, "a3": a3}
    fits = tmp_path / "fits.toml"
    fits.write_text(FITS)
    assert shoal("job", "run", str(fits), "--timeout", "30", "--address", a1.api).returncode == 0

    def agreed():
        """ps (every node's runtime) and the claims agree: each slot runs once, where its claim
        says.  (Right after "all running" a slot may still run twice for a moment, when two
        coordinators placed it at once and the losing ballot's holder has not stopped it yet.)"""
        data = json.loads(shoal("ps", "--json", "--address", a1.api).stdout)
        # ps asks the members a1 holds alive: on a loaded machine (the `local`
        # profile's 0.1 s probes) one may be suspect for a moment: ask again.
        if [n["node"] for n in data["nodes"]] != ["a1", "a2", "a3"]:
            return None
        assert all(n["error"] is None and n["runtime"] == "fake" for n in data["nodes"])
        pairs = [(c["slot"], n["node"]) for n in data["nodes"] for c in n["containers"]]
        status = json.loads(shoal("job", "status", "fits", "--json", "--address", a1.api).stdout)
        claims = {s["slot"]: s["node"] for s in status["slots"]}
        return dict(pairs) if sorted(pairs) == sorted(claims.items()) else None

    where = wait_until(agreed, 20, "ps and the claims to agree", cluster.report)
    assert sorted(where) == [f"fits/{i}" for i in range(4)]
    table = shoal("ps", "--address", a2.api).stdout
    assert table.splitlines()[0].split()[:3] == ["Node", "Slot", "Container"]
    assert all(f"fits/{i}" in table for i in range(4))
    local = json.loads(shoal("ps", "--local", "--json", "--address", a3.api).stdout)
    assert local["node"] == "a3" and {c["slot"] for c in local["containers"]} == {
        s for s, n in where.items() if n == "a3"}

    # logs of every slot, asked of an agent that does not hold it (forwarded) and of the holder
    for slot, node in where.items():
        index = slot.split("/")[1]
        elsewhere = next(p for n, p in procs.items() if n != node)
        for p in (elsewhere, procs[node]):
            out = shoal("logs", "fits", index, "--address", p.api)
            assert out.returncode == 0, out.stderr
            assert f"fake runtime: start {slot}" in out.stdout, (slot, p.name, out.stdout)
    # --follow streams through the forwarding agent until we stop reading
    slot, node = next(iter(where.items()))
    elsewhere = next(p for n, p in procs.items() if n != node)
    follower = subprocess.Popen([sys.executable, "-m", "node.cli", "logs", "fits", slot.split("/")[1], "--follow",
                                 "--address", elsewhere.api], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True, cwd=REPO)
    try:
        assert f"start {slot}" in follower.stdout.readline()
        time.sleep(0.5)
        assert follower.poll() is None   # still following
    finally:
        follower.kill()
        follower.wait(timeout=10)
    # errors: a slot beyond the replicas, a job that does not exist, a slot not placed
    out = shoal("logs", "fits", "9", "--address", a1.api)
    assert out.returncode == 1 and "4 replica(s): slots 0 to 3" in out.stderr
    out = shoal("logs", "nothing", "--address", a1.api)
    assert out.returncode == 1 and "no job named 'nothing'" in out.stderr
    huge = tmp_path / "huge.toml"
    huge.write_text(HUGE)
    assert shoal("job", "run", str(huge), "--detach", "--address", a1.api).returncode == 0
    out = shoal("logs", "huge", "1", "--address", a2.api)
    assert out.returncode == 1 and "huge/1 is not placed" in out.stderr


def test_monitor_streams_readable_events(cluster, tmp_path):
    a1, a2, a3 = three(cluster)
    mon = subprocess.Popen([sys.executable, "-m", "node.cli", "monitor", "--address", a1.api],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO)
    raw = subprocess.Popen([sys.executable, "-m", "node.cli", "monitor", "--json", "--no-history",
                            "--address", a1.api], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                           cwd=REPO)
    try:
        time.sleep(1.5)  # both subscribed
        fits = tmp_path / "fits.toml"
        fits.write_text(FITS)
        assert shoal("job", "run", str(fits), "--timeout", "30", "--address", a2.api).returncode == 0
        seen: list[str] = []
        deadline = time.monotonic() + 20
        want = ("member ", "job ", "auction ", "claim ", "container ")
        while time.monotonic() < deadline and not all(any(f"  {w}" in ln for ln in seen) for w in want):
            seen.append(mon.stdout.readline().rstrip("\n"))
        print("\n".join(seen))
        assert any(ln.split()[1:3] == ["member", "a2"] and "joined" in ln for ln in seen), seen
        assert any("job" in ln.split()[1:2] and "fits submitted/updated (by a2)" in ln for ln in seen)
        assert any("auction" in ln.split()[1:2] and "fits round" in ln and "placed fits/" in ln for ln in seen)
        assert any(ln.split()[1:2] == ["container"] and "on a1: running" in ln for ln in seen), seen
        record = json.loads(raw.stdout.readline())      # --json: the records themselves, new ones only
        assert record["event"] != "member_joined" and {"seq", "time", "event"} <= set(record)
    finally:
        for p in (mon, raw):
            p.kill()
            p.wait(timeout=10)


# ---- pure helpers ------------------------------------------------------------------------


def test_slot_views_counts_and_descriptions():
    detail = {"slots": [
        {"slot": "w/0", "state": "placed", "node": "a1", "runtime": "running", "runtime_reason": None},
        {"slot": "w/1", "state": "placed", "node": "a2", "runtime": "starting", "runtime_reason": None},
        {"slot": "w/2", "state": "placed", "node": "a3", "runtime": "failed", "runtime_reason": "exited 1"},
        {"slot": "w/3", "state": "pending", "node": None,
         "reason": "auction in progress; needs 3.0 cpu, 64.0 MiB; largest free is 2.0 cpu on a1"},
        {"slot": "w/4", "state": "placed", "node": "old", "runtime": None},
    ]}
    views = slot_views(detail)
    assert counts(views) == {"running": 1, "placed": 4, "pending": 1, "failed": 1}
    assert [describe(v) for v in views] == [
        "running on a1", "placed on a2, starting", "failed on a3: exited 1",
        "pending: needs 3.0 cpu, 64.0 MiB; largest free is 2.0 cpu on a1",
        "placed on old (its runtime does not say whether it runs)"]
    assert describe(views[3], full=True).startswith("pending: auction in progress; needs")
    assert quiet_reason("auction in progress") == "auction in progress"
    assert not SlotView("w/4", "placed", "old", "").running
