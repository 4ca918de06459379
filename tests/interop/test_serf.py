"""Interop with the real Serf agent (Debian's `serf`, memberlist protocol 5).

How this works: each test starts real processes on 127.0.0.1 — `serf agent`
with `-profile=lan` and `shoal agent` with `--profile lan`, on ports picked
free — and polls both sides' member lists (`serf members -format=json`,
`shoal members --json`) until a deadline.  Every process is started in its own
session, logs to a file under the test's tmp_path, and is killed by PID in the
fixture's teardown whether the test passed or not.  A failed wait prints the
tail of every process's log (Serf's `[ERR] memberlist: ...` lines usually say
exactly what went wrong on the wire).

Timing: with n=2 the LAN profile's suspicion timeout is 4 x probe interval
(4 s; no confirmations are possible), so a kill -9 is noticed after about
5-6 s; the deadlines below are several times that.

scripts/test installs `serf` when it runs as root, so under CI these tests
must run: a missing `serf` fails there instead of skipping.
"""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import pytest

pytestmark = [pytest.mark.serf, pytest.mark.real]

SERF = shutil.which("serf")
JOIN_DEADLINE_S = 30.0
FAIL_DEADLINE_S = 45.0
# How long a wrong-key pair is given to (not) join.
WRONG_KEY_WATCH_S = 8.0


@pytest.fixture(autouse=True)
def _need_serf():
    if SERF is None:
        if os.environ.get("CI"):
            pytest.fail("serf is not installed, but CI must run the Serf interop tests "
                        "(scripts/test installs Debian's serf when run as root)")
        pytest.skip("Debian's `serf` is not installed (apt-get install serf, or run scripts/test as root)")


# ---- helpers -------------------------------------------------------------------

def free_port() -> int:
    """A port free for both TCP and UDP on 127.0.0.1 (gossip uses both)."""
    for _ in range(100):
        tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            tcp.bind(("127.0.0.1", 0))
            port = tcp.getsockname()[1]
            udp.bind(("127.0.0.1", port))
            return port
        except OSError:
            continue
        finally:
            tcp.close()
            udp.close()
    raise RuntimeError("no free TCP+UDP port on 127.0.0.1")


def shoal_command() -> list[str]:
    """The `shoal` console script next to this interpreter, else `python -m node.cli.main`."""
    script = Path(sys.executable).parent / "shoal"
    if script.exists():
        return [str(script)]
    return [sys.executable, "-m", "node.cli"]


def new_key() -> str:
    return base64.b64encode(os.urandom(32)).decode()


@dataclass
class Proc:
    name: str
    kind: str  # "serf" or "shoal"
    popen: subprocess.Popen
    log: Path
    gossip_port: int
    control: str  # serf: RPC address; shoal: API URL
    expected_dead: bool = False  # killed on purpose; wait_for doesn't complain

    @property
    def gossip_addr(self) -> str:
        return f"127.0.0.1:{self.gossip_port}"

    def alive(self) -> bool:
        return self.popen.poll() is None

    def log_text(self) -> str:
        try:
            return self.log.read_text(errors="replace")
        except OSError:
            return ""

    def kill9(self) -> None:
        os.kill(self.popen.pid, signal.SIGKILL)
        self.popen.wait(timeout=10)


def parse_members(data: object) -> dict[str, str]:
    """name -> lower-case status, from serf's or shoal's JSON member list."""
    if isinstance(data, dict):
        data = data.get("members", [])
    out: dict[str, str] = {}
    if isinstance(data, list):
        for m in data:
            if isinstance(m, dict) and "name" in m:
                status = m.get("status", m.get("state", ""))
                out[str(m["name"])] = str(status).lower()
    return out


@dataclass
class Cluster:
    tmp: Path
    procs: list[Proc] = field(default_factory=list)

    # -- starting --------------------------------------------------------------
    def _spawn(self, name: str, kind: str, argv: list[str], gossip_port: int, control: str) -> Proc:
        log = self.tmp / f"{kind}-{name}.log"
        f = open(log, "ab")
        try:
            popen = subprocess.Popen(
                argv, stdin=subprocess.DEVNULL, stdout=f, stderr=subprocess.STDOUT,
                start_new_session=True, cwd=self.tmp,
            )
        finally:
            f.close()
        proc = Proc(name, kind, popen, log, gossip_port, control)
        self.procs.append(proc)
        return proc

    def serf(self, name: str, *, join: str | None = None, retry_join: str | None = None,
             key: str | None = None) -> Proc:
        port, rpc = free_port(), free_port()
        argv = [SERF, "agent", f"-node={name}", f"-bind=127.0.0.1:{port}",
                f"-advertise=127.0.0.1:{port}", f"-rpc-addr=127.0.0.1:{rpc}",
                "-profile=lan", "-log-level=debug"]
        if key:
            argv.append(f"-encrypt={key}")
        if join:
            argv.append(f"-join={join}")
        if retry_join:
            argv += [f"-retry-join={retry_join}", "-retry-interval=1s"]
        proc = self._spawn(name, "serf", argv, port, f"127.0.0.1:{rpc}")
        self.wait_for(lambda: self.serf_members(proc) is not None, 15, f"serf agent {name} to answer RPC")
        return proc

    def shoal(self, name: str, *, join: str | None = None, key: str | None = None) -> Proc:
        port, api = free_port(), free_port()
        state = self.tmp / f"state-{name}"
        state.mkdir()
        argv = shoal_command() + [
            "agent", "--name", name, "--bind", f"127.0.0.1:{port}",
            "--advertise", f"127.0.0.1:{port}", "--api", f"127.0.0.1:{api}",
            "--profile", "lan", "--state-dir", str(state)]
        if key:
            argv += ["--encrypt", key]
        if join:
            argv += ["--join", join]
        proc = self._spawn(name, "shoal", argv, port, f"http://127.0.0.1:{api}")
        self.wait_for(lambda: self.shoal_members(proc) is not None, 20, f"shoal agent {name} API")
        return proc

    # -- reading members ---------------------------------------------------------
    def serf_members(self, proc: Proc) -> dict[str, str] | None:
        return self._members([SERF, "members", "-format=json", f"-rpc-addr={proc.control}"])

    def shoal_members(self, proc: Proc) -> dict[str, str] | None:
        return self._members(shoal_command() + ["members", "--json", "--address", proc.control])

    def members(self, proc: Proc) -> dict[str, str] | None:
        return self.serf_members(proc) if proc.kind == "serf" else self.shoal_members(proc)

    @staticmethod
    def _members(argv: list[str]) -> dict[str, str] | None:
        try:
            out = subprocess.run(argv, capture_output=True, timeout=10, stdin=subprocess.DEVNULL)
        except subprocess.TimeoutExpired:
            return None
        if out.returncode != 0:
            return None
        try:
            return parse_members(json.loads(out.stdout))
        except ValueError:
            return None

    def status_of(self, viewer: Proc, member: str) -> str | None:
        members = self.members(viewer)
        return None if members is None else members.get(member)

    # -- waiting -------------------------------------------------------------------
    def wait_for(self, predicate: Callable[[], bool], timeout_s: float, what: str) -> None:
        deadline = time.monotonic() + timeout_s
        while True:
            if predicate():
                return
            for p in self.procs:
                if not p.alive() and not p.expected_dead:
                    pytest.fail(f"{p.kind} agent {p.name} exited with {p.popen.returncode} "
                                f"while waiting for {what}\n{self.report()}")
            if time.monotonic() >= deadline:
                pytest.fail(f"timed out after {timeout_s:.0f} s waiting for {what}\n{self.report()}")
            time.sleep(0.25)

    def wait_status(self, viewer: Proc, member: str, statuses: set[str], timeout_s: float) -> None:
        self.wait_for(lambda: self.status_of(viewer, member) in statuses, timeout_s,
                      f"{viewer.kind} {viewer.name} to list {member} as {'/'.join(sorted(statuses))}")

    def report(self) -> str:
        parts = []
        for p in self.procs:
            state = "running" if p.alive() else f"exited {p.popen.returncode}"
            members = self.members(p) if p.alive() else None
            # Serf logs every RPC client (our polling); those lines say nothing.
            lines = [ln for ln in p.log_text().splitlines() if "agent.ipc: Accepted client" not in ln]
            lines = lines[-40:]
            parts.append(f"--- {p.kind} {p.name} ({state}; gossip {p.gossip_addr}; "
                         f"members {members}) {p.log}\n" + "\n".join(lines))
        return "\n".join(parts)

    def kill_all(self) -> None:
        for p in self.procs:
            if p.popen.poll() is None:
                try:
                    os.kill(p.popen.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            try:
                p.popen.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pass


@pytest.fixture
def cluster(tmp_path):
    c = Cluster(tmp_path)
    try:
        yield c
    finally:
        c.kill_all()


ALIVE = {"alive"}
FAILED = {"failed", "dead"}


def assert_see_each_other(c: Cluster, serf: Proc, shoal: Proc) -> None:
    c.wait_status(serf, shoal.name, ALIVE, JOIN_DEADLINE_S)
    c.wait_status(shoal, serf.name, ALIVE, JOIN_DEADLINE_S)
    # Each still lists itself alive too.
    assert c.status_of(serf, serf.name) == "alive", c.report()
    assert c.status_of(shoal, shoal.name) == "alive", c.report()


# ---- tests -------------------------------------------------------------------------

def test_shoal_joins_serf(cluster):
    serf = cluster.serf("serf-1")
    shoal = cluster.shoal("shoal-1", join=serf.gossip_addr)
    assert_see_each_other(cluster, serf, shoal)


def test_serf_joins_shoal(cluster):
    shoal = cluster.shoal("shoal-1")
    serf = cluster.serf("serf-1", join=shoal.gossip_addr)
    assert_see_each_other(cluster, serf, shoal)


def test_shoal_detects_killed_serf(cluster):
    serf = cluster.serf("serf-1")
    shoal = cluster.shoal("shoal-1", join=serf.gossip_addr)
    assert_see_each_other(cluster, serf, shoal)
    serf.expected_dead = True
    serf.kill9()
    cluster.wait_status(shoal, "serf-1", FAILED, FAIL_DEADLINE_S)


def test_serf_detects_killed_shoal(cluster):
    shoal = cluster.shoal("shoal-1")
    serf = cluster.serf("serf-1", join=shoal.gossip_addr)
    assert_see_each_other(cluster, serf, shoal)
    shoal.expected_dead = True
    shoal.kill9()
    cluster.wait_status(serf, "shoal-1", FAILED, FAIL_DEADLINE_S)


def test_shared_key_both_directions(cluster):
    key = new_key()
    serf = cluster.serf("serf-1", key=key)
    shoal = cluster.shoal("shoal-1", key=key, join=serf.gossip_addr)
    assert_see_each_other(cluster, serf, shoal)
    # A second serf agent joins through the shoal agent: encrypted push/pull
    # from serf to shoal works too, and all three converge.
    serf2 = cluster.serf("serf-2", key=key, join=shoal.gossip_addr)
    for viewer in (serf, shoal, serf2):
        for member in ("serf-1", "shoal-1", "serf-2"):
            cluster.wait_status(viewer, member, ALIVE, JOIN_DEADLINE_S)


# A log line that says a packet or stream could not be decrypted / had no usable key.
DECRYPT_PROBLEM = re.compile(
    r"decrypt|(key.*(fail|error|unknown|wrong|mismatch|no |not |invalid))"
    r"|((fail|error|unknown|wrong|mismatch|no |invalid).*key)",
    re.IGNORECASE,
)


def test_wrong_key_nobody_joins_and_shoal_says_why(cluster):
    shoal = cluster.shoal("shoal-1", key=new_key())
    # Serf keeps retrying (a plain -join that fails makes serf exit); shoal
    # also dials serf.  Both directions carry the wrong key.
    serf = cluster.serf("serf-1", key=new_key(), retry_join=shoal.gossip_addr)
    shoal2 = cluster.shoal("shoal-2", key=new_key(), join=serf.gossip_addr)

    deadline = time.monotonic() + WRONG_KEY_WATCH_S
    while time.monotonic() < deadline:
        for viewer, others in ((serf, ("shoal-1", "shoal-2")), (shoal, ("serf-1", "shoal-2")),
                               (shoal2, ("serf-1", "shoal-1"))):
            members = cluster.members(viewer) or {}
            joined = [m for m in others if m in members]
            assert not joined, (f"{viewer.name} lists {joined} despite mismatched keys: {members}\n"
                                f"{cluster.report()}")
        time.sleep(0.5)

    assert serf.alive() and shoal.alive() and shoal2.alive(), cluster.report()
    # shoal-1 received serf's push/pull under a key it does not have.
    cluster.wait_for(lambda: DECRYPT_PROBLEM.search(shoal.log_text()) is not None, 15,
                     "shoal-1's log to say that it could not decrypt serf's traffic")
    # shoal-2 dialled serf, which could not decrypt that and hung up: shoal-2 says
    # that the join failed (or that it could not decrypt an answer).
    join_failed = re.compile(r"join.*(fail|error|closed|eof|refused|reset|timed? ?out)", re.I)
    cluster.wait_for(
        lambda: join_failed.search(shoal2.log_text()) or DECRYPT_PROBLEM.search(shoal2.log_text()),
        15, "shoal-2's log to say that joining serf failed")
    # And serf could not decrypt shoal-2's push/pull.
    assert re.search(r"decrypt", serf.log_text(), re.I), cluster.report()
