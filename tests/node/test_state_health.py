"""A node whose state dir fails writes says so and takes no new work.

The real test starts two `shoal agent` processes on loopback and makes every
file write of one of them fail for real: its file-size limit (RLIMIT_FSIZE,
set from outside with prlimit) drops to 1 byte, so SQLite's next write to its
WAL gets EFBIG (Python ignores SIGXFSZ).  The agent's output goes through a
pipe (a pipe has no file size) that a thread copies to the log file, so its
logging keeps working meanwhile.  Lifting the limit again lets the next write
succeed, which must make the node healthy again.

The in-process tests check how the two sources of health (runtime, state dir)
combine and that gossip knowingly unencrypted off loopback is reported.
"""

from __future__ import annotations

import json
import os
import resource
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

from node.agent.agent import Agent
from node.agent.health import RUNTIME, STATE_DIR
from inproc_agent import agent_starter  # same directory

REPO = Path(__file__).resolve().parents[2]
START_DEADLINE_S = 15.0
DEADLINE_S = 15.0
CAPACITY = ("--cpus", "2", "--memory", "2GiB", "--reserve-cpus", "0", "--reserve-memory", "0")


class PipedAgent:
    """A real agent whose output is copied from a pipe to a log file."""

    def __init__(self, tmp: Path, name: str, *extra: str) -> None:
        self.name = name
        self.state_dir = tmp / name
        self.state_dir.mkdir()
        self.log_path = tmp / f"{name}.log"
        argv = [sys.executable, "-m", "node.cli", "agent", "--name", name, "--bind", "127.0.0.1:0",
                "--api", "127.0.0.1:0", "--profile", "local", "--state-dir", str(self.state_dir),
                "--log-level", "DEBUG", *CAPACITY, *extra]
        self.proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, cwd=REPO, env={**os.environ, "PYTHONUNBUFFERED": "1"})
        self._copier = threading.Thread(target=self._copy, daemon=True)
        self._copier.start()
        info = wait_until(self._info, START_DEADLINE_S, f"{name} to start", self.log)
        self.gossip, self.api = info["gossip"], info["api"]

    def _copy(self) -> None:
        assert self.proc.stdout is not None
        with open(self.log_path, "ab") as log:
            for line in self.proc.stdout:
                log.write(line)
                log.flush()

    def _info(self) -> dict | None:
        if self.proc.poll() is not None:
            pytest.fail(f"{self.name} exited with {self.proc.returncode}\n{self.log()}")
        try:
            info = json.loads((self.state_dir / "agent.json").read_text())
        except (OSError, ValueError):
            return None
        return info if info.get("pid") == self.proc.pid else None

    def get(self, path: str):
        r = httpx.get(f"{self.api}{path}", timeout=5.0)
        return r.json() if r.status_code == 200 else None

    def log(self) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-60:])
        except OSError:
            return ""

    def kill(self) -> None:
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=10)
        self._copier.join(timeout=5)


def wait_until(predicate, timeout_s: float, what: str, report=lambda: ""):
    deadline = time.monotonic() + timeout_s
    last = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(0.05)
    pytest.fail(f"timed out after {timeout_s}s waiting for {what} (last: {last!r})\n{report()}")


def spec(name: str, **fields) -> dict:
    return {"name": name, "image": "busybox", "cpu": 0.25, "memory": "64MiB", "replicas": 1, **fields}


def placed(p: PipedAgent, job: str) -> list[str]:
    """The nodes holding the job's placed slots, sorted."""
    return sorted(s["node"] for s in (p.get(f"/v1/jobs/{job}") or {}).get("slots", []) if s.get("node"))


@pytest.fixture
def agents(tmp_path):
    started: list[PipedAgent] = []

    def start(name: str, *extra: str) -> PipedAgent:
        a = PipedAgent(tmp_path, name, *extra)
        started.append(a)
        return a

    yield start
    for a in started:
        a.kill()


@pytest.mark.real
def test_a_state_dir_that_fails_writes_makes_the_node_unhealthy_until_a_write_succeeds(agents):
    a = agents("a")
    b = agents("b", "--join", a.gossip)
    wait_until(lambda: {"a", "b"} <= {m["name"] for m in (b.get("/v1/nodes") or []) if m.get("healthy")},
               DEADLINE_S, "b to see both nodes healthy", a.log)
    assert a.get("/v1/agent/self")["healthy"] is True

    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.prlimit(a.proc.pid, resource.RLIMIT_FSIZE, (1, hard))  # every file write of a fails
    try:
        r = httpx.post(f"{a.api}/v1/jobs", json=spec("lost"), timeout=15)
        assert r.status_code == 503, r.text  # not durable: not acknowledged
        me = a.get("/v1/agent/self")
        assert me["healthy"] is False, me
        assert "state dir" in me["unhealthy_reason"] and "jobs" in me["unhealthy_reason"], me
        assert any("writes to the jobs store fail" in p for p in me["state_problems"]), me
        # published in a's status: b sees it, and places nothing there
        node_a = wait_until(lambda: (n := b.get("/v1/nodes/a")) and n["healthy"] is False and n,
                            DEADLINE_S, "b to see a unhealthy", a.log)
        assert "state dir" in node_a["unhealthy_reason"] and node_a["eligible"] is False
        # each node has room for one replica of web: a healthy a would take the second
        r = httpx.post(f"{b.api}/v1/jobs", json=spec("web", cpu=1.5, replicas=2), timeout=15)
        assert r.status_code == 201, r.text
        wait_until(lambda: placed(b, "web"), DEADLINE_S, "a slot of web placed", b.log)
        time.sleep(2.0)  # more rounds of auctions: the second slot must not go to a
        assert placed(b, "web") == ["b"]
    finally:
        resource.prlimit(a.proc.pid, resource.RLIMIT_FSIZE, (soft, hard))

    # the next write succeeds: healthy again, and a takes work again
    assert httpx.post(f"{a.api}/v1/jobs", json=spec("kept"), timeout=15).status_code == 201
    me = wait_until(lambda: (m := a.get("/v1/agent/self")) and m["healthy"] and m, DEADLINE_S,
                    "a healthy again", a.log)
    assert me["unhealthy_reason"] is None and me["state_problems"] == [], me
    wait_until(lambda: placed(b, "web") == ["a", "b"], DEADLINE_S, "web's second slot placed on a", b.log)
    assert a.proc.poll() is None


@pytest.fixture
def start_agent(nursery, tmp_path):
    return agent_starter(nursery, tmp_path)


async def self_info(agent: Agent) -> dict:
    async with httpx.AsyncClient(base_url=agent.api_url, timeout=10.0) as c:
        return (await c.get("/v1/agent/self")).json()


async def test_one_source_of_health_coming_back_does_not_hide_another(start_agent):
    a = await start_agent("a")
    await a.health.report(RUNTIME, "the docker engine does not answer")
    await a.health.report(STATE_DIR, "jobs writes fail (disk full)")
    me = await self_info(a)
    assert me["healthy"] is False
    assert me["unhealthy_reason"] == ("runtime: the docker engine does not answer; "
                                      "state dir: jobs writes fail (disk full)")
    await a.health.report(STATE_DIR, None)
    me = await self_info(a)
    assert me["healthy"] is False and me["unhealthy_reason"] == "runtime: the docker engine does not answer"
    await a.health.report(RUNTIME, None)
    me = await self_info(a)
    assert me["healthy"] is True and me["unhealthy_reason"] is None


async def test_gossip_knowingly_unencrypted_off_loopback_is_reported(start_agent):
    plain = await start_agent("plain")
    assert (await self_info(plain))["insecure_no_encryption"] is False
    exposed = await start_agent("exposed", advertise="192.0.2.10:7946", insecure_no_encryption=True)
    me = await self_info(exposed)
    assert me["insecure_no_encryption"] is True and me["encrypted"] is False
