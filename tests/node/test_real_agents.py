"""Real `shoal agent` processes on loopback, driven through their HTTP API and the CLI.

Each agent is `python -m node.cli.main agent` with `--bind 127.0.0.1:0 --api
127.0.0.1:0 --profile local` and its own state dir; the ports it picked are
read from `<state-dir>/agent.json`.  Every wait polls the API against a
deadline.  The fixture kills every process it started, by PID, in teardown
(also when the test fails) and prints the agents' logs on failure.
"""

from __future__ import annotations

import json
import os
import random
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from gossip.messages import Alive, Dead, IndirectPingReq, Ping, PushNodeState, PushPull, Suspect, NodeStateCode
from gossip.packet import seal_packet
from gossip.compound import make_compound
from gossip.wire import encode

pytestmark = pytest.mark.real

START_DEADLINE_S = 15.0
JOIN_DEADLINE_S = 15.0
# local profile: probe 0.2 s, suspicion at most 6 x 3 x 0.2 s = 3.6 s for n=3;
# 10 s leaves room for a loaded CI machine.
FAIL_DEADLINE_S = 10.0
LEAVE_DEADLINE_S = 5.0
REPO = Path(__file__).resolve().parents[2]


@dataclass
class AgentProc:
    name: str
    proc: subprocess.Popen
    state_dir: Path
    log_path: Path
    gossip: tuple[str, int] | None = None
    api: str | None = None

    @property
    def gossip_addr(self) -> str:
        assert self.gossip is not None
        return f"{self.gossip[0]}:{self.gossip[1]}"

    def alive(self) -> bool:
        return self.proc.poll() is None

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""


def wait_until(predicate, timeout_s: float, what: str, report=lambda: ""):
    deadline = time.monotonic() + timeout_s
    last = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(0.05)
    pytest.fail(f"timed out after {timeout_s}s waiting for {what} (last: {last!r})\n{report()}")


class Cluster:
    def __init__(self, tmp_path: Path) -> None:
        self.tmp = tmp_path
        self.agents: list[AgentProc] = []

    def start(self, name: str, *extra: str) -> AgentProc:
        state = self.tmp / name
        state.mkdir()
        log_path = self.tmp / f"{name}.log"
        argv = [sys.executable, "-m", "node.cli", "agent", "--name", name,
                "--bind", "127.0.0.1:0", "--api", "127.0.0.1:0", "--profile", "local",
                "--state-dir", str(state), "--log-level", "DEBUG", *extra]
        with open(log_path, "wb") as log:
            proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                    cwd=REPO, env={**os.environ, "PYTHONUNBUFFERED": "1"})
        a = AgentProc(name, proc, state, log_path)
        self.agents.append(a)
        info = wait_until(lambda: self._read_info(a), START_DEADLINE_S, f"{name} to start", self.report)
        host, port = info["gossip"].rsplit(":", 1)
        a.gossip, a.api = (host, int(port)), info["api"]
        return a

    def _read_info(self, a: AgentProc) -> dict | None:
        if not a.alive():
            pytest.fail(f"{a.name} exited with {a.proc.returncode}\n{a.log()}")
        try:
            return json.loads((a.state_dir / "agent.json").read_text())
        except (OSError, ValueError):
            return None

    def members(self, a: AgentProc) -> dict[str, str] | None:
        try:
            r = httpx.get(f"{a.api}/v1/members", timeout=2.0)
        except httpx.HTTPError:
            return None
        return {m["name"]: m["status"] for m in r.json()} if r.status_code == 200 else None

    def metrics(self, a: AgentProc) -> str:
        return httpx.get(f"{a.api}/v1/metrics", timeout=2.0).text

    def report(self) -> str:
        out = []
        for a in self.agents:
            tail = "\n".join(a.log().splitlines()[-40:])
            out.append(f"--- {a.name} (pid {a.proc.pid}, rc {a.proc.poll()}) ---\n{tail}")
        return "\n".join(out)

    def stop_all(self) -> None:
        for a in self.agents:
            if a.alive():
                try:
                    os.kill(a.proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        for a in self.agents:
            try:
                a.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass


@pytest.fixture
def cluster(tmp_path):
    c = Cluster(tmp_path)
    try:
        yield c
    finally:
        c.stop_all()
        print(c.report())  # pytest shows captured output only when the test failed


def shoal_cli(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "node.cli", *args], capture_output=True, text=True,
                          cwd=REPO, timeout=30, env={**os.environ, **(env or {})})


def test_three_agents_kill9_and_sigterm(cluster):
    a1 = cluster.start("a1")
    a2 = cluster.start("a2", "--join", a1.gossip_addr)
    a3 = cluster.start("a3", "--join", a1.gossip_addr, "--join", a2.gossip_addr)
    names = {"a1", "a2", "a3"}
    for a in (a1, a2, a3):
        wait_until(lambda a=a: (m := cluster.members(a)) and all(m.get(n) == "alive" for n in names),
                   JOIN_DEADLINE_S, f"{a.name} to see all three alive", cluster.report)

    # the CLI's table and JSON, through SHOAL_ADDR.  Asked until it shows
    # all three alive: on a loaded 2-core CI machine the `local` profile's
    # 0.1 s probes can suspect a member for a moment (it refutes within
    # 0.2 s), and one table caught a2 as "suspect" right then.
    tables: list[list[str]] = []

    def table_all_alive() -> bool:
        out = shoal_cli("members", env={"SHOAL_ADDR": a1.api})
        assert out.returncode == 0, out.stderr
        tables.append(lines := out.stdout.splitlines())
        return len(lines) == 4 and all(ln.split()[2] == "alive" for ln in lines[1:])
    wait_until(table_all_alive, JOIN_DEADLINE_S, "the CLI's table to show all three alive",
               lambda: "\n".join(map(str, tables[-3:])))
    lines = tables[-1]
    assert lines[0].split() == ["Name", "Address", "Status", "Tags"]
    assert all("role=shoal" in ln for ln in lines[1:])
    out = shoal_cli("members", "--json", "--address", a2.api)
    assert {m["name"] for m in json.loads(out.stdout)} == names

    # kill -9: the others mark it failed within the bound
    t0 = time.monotonic()
    os.kill(a3.proc.pid, signal.SIGKILL)
    a3.proc.wait(timeout=5)
    for a in (a1, a2):
        wait_until(lambda a=a: (cluster.members(a) or {}).get("a3") == "failed", FAIL_DEADLINE_S,
                   f"{a.name} to mark a3 failed", cluster.report)
    detected_s = time.monotonic() - t0
    print(f"kill -9 of a3 seen as failed by both others after {detected_s:.2f}s")

    # SIGTERM: a graceful leave, seen as "left", and exit status 0
    a2.proc.send_signal(signal.SIGTERM)
    wait_until(lambda: (cluster.members(a1) or {}).get("a2") == "left", LEAVE_DEADLINE_S,
               "a1 to see a2 as left", cluster.report)
    assert a2.proc.wait(timeout=LEAVE_DEADLINE_S) == 0, cluster.report()
    assert "leaving the cluster" in a2.log()
    assert "member failed: a3" in a1.log() and "member left: a2" in a1.log()
    assert a1.alive()


def test_cli_join_leave_and_unreachable(cluster):
    a1 = cluster.start("a1")
    a2 = cluster.start("a2")
    out = shoal_cli("join", a1.gossip_addr, "--address", a2.api)
    assert out.returncode == 0 and "Joined 1" in out.stdout, out.stderr
    wait_until(lambda: (cluster.members(a1) or {}).get("a2") == "alive", JOIN_DEADLINE_S,
               "a1 to see a2", cluster.report)
    out = shoal_cli("leave", "--address", a2.api)
    assert out.returncode == 0, out.stderr
    assert a2.proc.wait(timeout=LEAVE_DEADLINE_S) == 0
    wait_until(lambda: (cluster.members(a1) or {}).get("a2") == "left", LEAVE_DEADLINE_S,
               "a1 to see a2 as left", cluster.report)
    # the agent is gone: a clear error and exit 1
    out = shoal_cli("members", "--address", a2.api)
    assert out.returncode == 1
    assert f"cannot reach shoal agent at {a2.api}" in out.stderr
    # a bad address to join: the reason comes back, exit 1
    out = shoal_cli("join", "127.0.0.1:1", "--address", a1.api)
    assert out.returncode == 1 and "refused" in out.stderr.lower()


def test_agent_reports_config_errors(tmp_path):
    out = shoal_cli("agent", "--bind", "127.0.0.1:99999")
    assert out.returncode == 2 and "bind:" in out.stderr
    out = shoal_cli("agent", "--api", "0.0.0.0:0")
    assert out.returncode == 2 and "api:" in out.stderr and "api_token" in out.stderr


def forged_packets() -> list[bytes]:
    """Truncated, mangled and forged memberlist packets, plus random bytes."""
    rng = random.Random(1234)
    alive = encode(Alive(1, "forged", b"\x7f\x00\x00\x01", 1, b"", (1, 5, 2, 2, 5, 4)))
    ping = encode(Ping(7, "someone-else", b"\x7f\x00\x00\x01", 9, "x"))
    valid = [
        alive,
        ping,
        encode(Suspect(1, "nobody", "x")),
        encode(Dead(1, "nobody", "x")),
        encode(IndirectPingReq(3, b"\x7f\x00\x00\x01", 9, "n", True)),
        make_compound([ping, alive]),
        seal_packet(make_compound([ping] * 40), label=b"", keyring=None, crc=True, compress=True,
                    compress_min_bytes=0),
    ]
    out: list[bytes] = []
    for v in valid:
        out += [v[:n] for n in range(1, len(v), max(1, len(v) // 8))]  # truncated
        for _ in range(5):  # bit flips
            b = bytearray(v)
            b[rng.randrange(len(b))] ^= 1 << rng.randrange(8)
            out.append(bytes(b))
    out += [
        bytes([7, 255]) + b"\x00\x05" * 255,  # compound: 255 parts, lengths beyond the end
        bytes([7, 2, 0xFF, 0xFF, 0x00, 0x01]) + b"\x00",  # compound length overflow
        bytes([12]) + b"\x00\x00\x00\x00" + ping,  # wrong CRC
        bytes([9]) + b"\x82\xa4Algo\x00\xa3Buf\xc4\x05garbl",  # bad LZW
        bytes([9]) + b"\x82\xa4Algo\x07\xa3Buf\xc4\x00",  # unknown algorithm
        bytes([244, 200]) + b"short",  # label header longer than the packet
        bytes([244, 4]) + b"prod" + ping,  # a label we do not have
        bytes([1]) + os.urandom(40),  # looks encrypted
        bytes([6]) + b"\x83",  # push/pull over UDP
        encode(PushPull(False, (PushNodeState("n", b"\x7f\x00\x00\x01", 1, b"", 1, NodeStateCode.ALIVE,
                                               (1, 5, 2, 2, 5, 4)),))),
        b"\x08" * 3000,
        b"",
    ]
    out += [os.urandom(rng.randrange(1, 1500)) for _ in range(300)]
    return out


def test_garbage_datagrams_are_counted_not_fatal(cluster):
    a = cluster.start("target")
    b = cluster.start("peer", "--join", a.gossip_addr)
    wait_until(lambda: (cluster.members(a) or {}).get("peer") == "alive", JOIN_DEADLINE_S,
               "target to see peer", cluster.report)
    packets = forged_packets()
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        for i, p in enumerate(packets):
            sock.sendto(p, a.gossip)
            if i % 50 == 0:
                time.sleep(0.01)  # do not overrun the 1024-deep input queue on purpose
    finally:
        sock.close()
    # garbage over TCP too: random bytes, and a truncated stream
    for blob in (os.urandom(300), bytes([6]) + b"\x83\xa5Nodes", b"\xf4\x01"):
        with socket.create_connection(a.gossip, timeout=2) as s:
            s.sendall(blob)
            s.shutdown(socket.SHUT_WR)
            s.settimeout(3)
            try:
                s.recv(100)
            except OSError:
                pass

    def dropped() -> float:
        return sum(float(line.rsplit(" ", 1)[1]) for line in cluster.metrics(a).splitlines()
                   if line.startswith("shoal_packets_dropped_total{"))

    wait_until(lambda: dropped() >= 300, 10, "the drops to be counted", cluster.report)
    assert a.alive(), cluster.report()
    text = cluster.metrics(a)
    reasons = {line.split('"')[1] for line in text.splitlines() if line.startswith("shoal_packets_dropped_total{")}
    assert len(reasons) >= 3, reasons
    # still a healthy member of its cluster afterwards.  (The well-formed
    # forged Alive messages did add members "forged"/"forgef" at 127.0.0.1:1:
    # unencrypted gossip is unauthenticated, as in memberlist; they fail.)
    # Asked until each shows both alive: on a loaded 2-core CI machine the
    # `local` profile's 0.1 s probes can suspect a member for a moment (it
    # refutes), and once in CI the single look taken 1 s after the garbage
    # caught the target suspecting the peer right then.
    for viewer in (a, b):
        wait_until(lambda v=viewer: (m := cluster.members(v) or {}).get("target") == "alive"
                   and m.get("peer") == "alive", JOIN_DEADLINE_S, f"{viewer.name} to see both alive", cluster.report)
    assert "Traceback" not in a.log(), a.log()
