"""Two real agents on one real dockerd pull from a real registry with auth
(root only).

`a-wrong` has a wrong password for the registry, `b-right` the right one
(files named in their [images] tables).  A job whose image only the
registry has goes first to a-wrong (a tie, and its name is smaller), whose
pull is refused: the slot is given up there and runs on b-right.  Scaled
to two replicas with max_per_node = 1, the second slot has nowhere to go,
and the job's status says what happened where.  Then the
password is looked for everywhere a user or another node could see it: the
agents' logs, their state dirs, the API's answers (jobs, nodes, events) --
and is found nowhere.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from test_registry_pulls import PASSWORD, USER, Registry, build_variant, publish  # same directory

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="starts dockerd and a registry: needs root")

REPO = Path(__file__).resolve().parents[2]
WRONG = "wrong-Kk41-password"


def start_agent(tmp: Path, name: str, config: str, join: str | None,
                *extra: str) -> tuple[subprocess.Popen, Path, dict]:
    state = tmp / name
    state.mkdir()
    (tmp / f"{name}.toml").write_text(config)
    argv = [sys.executable, "-m", "node.cli", "agent", "--config", str(tmp / f"{name}.toml"), "--name", name,
            "--bind", "127.0.0.1:0", "--api", "127.0.0.1:0", "--profile", "local", "--state-dir", str(state),
            "--runtime", "docker", "--cpus", "2", "--memory", "2GiB", "--reserve-cpus", "0",
            "--reserve-memory", "0", "--log-level", "DEBUG"]
    if join:
        argv += ["--join", join]
    argv += extra
    log = tmp / f"{name}.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=REPO,
                                env={**os.environ, "PYTHONPATH": str(REPO), "PYTHONUNBUFFERED": "1"})
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        assert proc.poll() is None, log.read_text()
        try:
            return proc, log, json.loads((state / "agent.json").read_text())
        except (OSError, ValueError):
            time.sleep(0.1)
    raise AssertionError(f"{name} did not start:\n{log.read_text()}")


def poll(fn, timeout_s: float, what: str):
    deadline = time.monotonic() + timeout_s
    last = None
    while time.monotonic() < deadline:
        last = fn()
        if last:
            return last
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}; last: {last!r}")


def get(api: str, path: str):
    try:
        r = httpx.get(api + path, timeout=5)
        return r.json() if r.status_code == 200 else None
    except httpx.HTTPError:
        return None


def events(api: str) -> list[dict]:
    """The agent's event history (the stream, read until it goes quiet)."""
    out = []
    try:
        with httpx.stream("GET", api + "/v1/events", timeout=httpx.Timeout(5, read=1.0)) as r:
            for line in r.iter_lines():
                if line:
                    out.append(json.loads(line))
    except httpx.ReadTimeout:
        pass
    return out


def test_a_refused_pull_moves_the_slot_and_says_where_and_no_password_leaks(engine, tmp_path, node):
    reg = Registry(tmp_path, "reg", auth=True)
    reg.up()
    procs = []
    try:
        ref = publish(engine, reg, build_variant(engine, f"agents-{node}"), f"agents-{node}", "1")
        wrong_file = tmp_path / "wrong.pass"
        wrong_file.write_text(WRONG + "\n")

        def config(password_file: Path) -> str:
            return (f'[images]\ndocker_config = "{tmp_path}/none.json"\n'
                    f'[images.registries."{reg.host}"]\nusername = "{USER}"\npassword_file = "{password_file}"\n')

        a, a_log, a_info = start_agent(tmp_path, "a-wrong", config(wrong_file), None)
        procs.append(a)
        b, b_log, b_info = start_agent(tmp_path, "b-right", config(reg.password_file), a_info["gossip"])
        procs.append(b)
        api_a, api_b = a_info["api"], b_info["api"]
        poll(lambda: len([m for m in get(api_a, "/v1/members") or [] if m["status"] == "alive"]) == 2,
             30, "both agents to see each other")
        # Both lack the image and bid alike (once each knows its engine's
        # images; an unknown list counts as having them): the tie goes to
        # the smaller name, a-wrong (binpack breaks ties in name order; a
        # spread job's ties start from its coordinator's name, whichever
        # agent that is).
        for log in (a_log, b_log):
            poll(lambda log=log: any(ln.split("runtime images: ")[-1] != "unknown (nothing declined)"
                                     for ln in log.read_text(errors="replace").splitlines()
                                     if "runtime images: " in ln), 30, f"{log.name} to list its images")
        job = {"name": "pulled", "image": ref, "command": ["sleep", "600"], "cpu": 0.1, "memory": "16MiB",
               "replicas": 1, "max_per_node": 1, "strategy": "binpack"}
        r = httpx.post(api_a + "/v1/jobs", json=job, timeout=10)
        assert r.status_code in (200, 201), r.text

        def slots():
            out = []
            for api in (api_a, api_b):
                detail = get(api, "/v1/jobs/pulled") or {}
                out += detail.get("slots", [])
            return out

        # a-wrong's pull is refused, so the slot moves to b-right, which pulls and runs it.
        poll(lambda: any(s.get("node") == "b-right" and s.get("runtime") == "running" for s in slots()),
             90, "the replica running on b-right")
        # A second replica has nowhere to go (b-right has one, a-wrong failed it
        # moments ago): its status says what happened where.
        r = httpx.post(api_a + "/v1/jobs", json={**job, "replicas": 2}, timeout=10)
        assert r.status_code in (200, 201), r.text
        said = poll(lambda: [s["reason"] for s in slots()
                             if s.get("reason") and "could not be pulled on a-wrong" in s["reason"]],
                    30, "the pending reason to tell a-wrong's failed pull")
        assert "unauthorized" in said[0] or "authentication required" in said[0], said
        pulls = [e for e in events(api_a) if e.get("event") == "image_pull"]
        assert any(e["state"] == "failed" and e["node"] == "a-wrong" for e in pulls), pulls
        assert any(e["state"] == "done" and e["node"] == "b-right" for e in events(api_b)
                   if e.get("event") == "image_pull")

        # The passwords are nowhere a user or a peer can see.
        seen = [json.dumps(get(api, p)) for api in (api_a, api_b)
                for p in ("/v1/jobs", "/v1/jobs/pulled", "/v1/nodes", "/v1/agent/self", "/v1/containers")]
        seen += [json.dumps(events(api)) for api in (api_a, api_b)]
        seen += [a_log.read_text(errors="replace"), b_log.read_text(errors="replace")]
        for state in (tmp_path / "a-wrong", tmp_path / "b-right"):
            seen += [f.read_bytes().decode(errors="replace") for f in state.rglob("*") if f.is_file()]
        for text in seen:
            assert PASSWORD not in text and WRONG not in text
        assert any("image_pull" in t for t in seen)     # the greps looked at the right things
    finally:
        for p in procs:
            p.send_signal(signal.SIGTERM)
        for p in procs:
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                p.kill()
        reg.down()
        for c in engine.containers.list(all=True, filters={"label": "shoal.job=pulled"}):
            c.remove(force=True)
