"""A hostile peer on loopback: mutated and random memberlist messages of every type.

For each family of messages, two real agents are started (`plain`, without a
key, and `sealed`, with `--encrypt`); a job is submitted to each; then, for
`SEND_SECONDS_PER_FAMILY`, the test sends them datagrams and TCP streams
built from valid messages (gossip.wire, gossip.compound, gossip.userdata,
node.core.wire encoders) whose fields are then mutated: integers at and past
every width, wrong types, huge strings and bytes, unknown fields, missing
fields, and after encoding bit flips, truncation and trailing garbage; plus
random bytes.  The sealed agent gets them encrypted with its key (a member
holding the key gone bad), in plaintext, and under a wrong key.  Afterwards
each agent must still run and answer its API, its RSS must stay under
`RSS_BOUND_FACTOR` times what it was before, its job store must hold exactly
the job submitted before (same spec, live), and drops must be counted in
/v1/metrics.

Every name a message claims to come from ("stranger-N") is never made a
member: only "ghost-N" names are announced as alive, so a job-store change
can only come from a message of a non-member.

The messages and their mutations are made in tests/node/hostile_forge.py.

Traffic stays on this host.  Forged addresses the agent could send to
(alive, push/pull node states, indirect-ping targets, ping source addresses)
are 127.0.0.1 or ::1 with a port of ours (a UDP and TCP socket this test
holds and never answers), the agent's own port, or 0.  Before anything is
sent it is decoded with the same decoders the agent uses, and anything that
would name another address or port (a bit flip can) is not sent.  Member
metadata never carries an `api` tag.

Replay: the seed is printed on failure; run with SHOAL_HOSTILE_SEED=<seed>
(`random` for a fresh one; SHOAL_HOSTILE_SECONDS to send longer).  The
messages follow from the seed; how many are sent depends on the machine.
"""

from __future__ import annotations

import collections
import json
import os
import random
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from hostile_forge import BEFORE_SPEC, FAMILY_MAKERS, Forge, Safety, Shot

from gossip.packet import seal_packet, seal_stream
from gossip.security import Keyring, encode_key

pytestmark = pytest.mark.real

# A fixed seed by default, so a CI run is repeatable (up to how many messages
# fit in the time); SHOAL_HOSTILE_SEED=random explores a fresh one.
_SEED_ENV = os.environ.get("SHOAL_HOSTILE_SEED", "20261204")
SEED = random.SystemRandom().randrange(2**32) if _SEED_ENV == "random" else int(_SEED_ENV)
FAMILIES = ("probes", "membership", "push_pull", "user", "node_messages", "envelopes", "random")
# About 25 s of sending in all, spread over the families.
SEND_SECONDS_PER_FAMILY = float(os.environ.get("SHOAL_HOSTILE_SECONDS", "25")) / len(FAMILIES)
RSS_BOUND_FACTOR = 2.0
START_DEADLINE_S = 20.0
API_DEADLINE_S = 10.0
UDP_MAX_BYTES = 60_000
KEY = bytes(range(1, 33))
WRONG_KEY = bytes(range(101, 133))
REPO = Path(__file__).resolve().parents[2]
CAPACITY = ("--cpus", "2", "--memory", "2GiB", "--reserve-cpus", "0", "--reserve-memory", "0")

KEYRING = Keyring([KEY], os.urandom)
WRONG_KEYRING = Keyring([WRONG_KEY], os.urandom)


def replay_hint() -> str:
    return f"seed {SEED}: replay with SHOAL_HOSTILE_SEED={SEED}"


# ---- the agents ---------------------------------------------------------------------


@dataclass
class Target:
    name: str
    proc: subprocess.Popen
    state_dir: Path
    log_path: Path
    keyring: Keyring | None
    gossip: tuple[str, int] = ("127.0.0.1", 0)
    api: str = ""

    def alive(self) -> bool:
        return self.proc.poll() is None

    def log_tail(self, lines: int = 80) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def tracebacks(self) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        found = [m.group(0) for m in re.finditer(r"Traceback \(most recent call last\):\n(?:[ \t].*\n)*.*", text)]
        return "\n".join(found[-3:])

    def rss_bytes(self) -> int:
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
        raise AssertionError("no VmRSS")

    def get(self, path: str, timeout_s: float = 5.0) -> httpx.Response:
        return httpx.get(f"{self.api}{path}", timeout=timeout_s)

    def dropped(self) -> float:
        text = self.get("/v1/metrics").text
        return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
                   if line.startswith("shoal_packets_dropped_total{"))


def wait_until(predicate: Callable[[], Any], timeout_s: float, what: str, report: Callable[[], str]) -> Any:
    deadline = time.monotonic() + timeout_s
    last = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(0.05)
    pytest.fail(f"timed out after {timeout_s}s waiting for {what} (last: {last!r})\n{report()}")


def start_target(tmp: Path, name: str, keyed: bool) -> Target:
    state = tmp / name
    state.mkdir()
    log_path = tmp / f"{name}.log"
    argv = [sys.executable, "-m", "node.cli", "agent", "--name", name, "--bind", "127.0.0.1:0",
            "--api", "127.0.0.1:0", "--profile", "local", "--state-dir", str(state), *CAPACITY]
    if keyed:
        argv += ["--encrypt", encode_key(KEY)]
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=REPO,
                                env={**os.environ, "PYTHONUNBUFFERED": "1"})
    t = Target(name, proc, state, log_path, Keyring([KEY], os.urandom) if keyed else None)

    def info() -> dict | None:
        if not t.alive():
            pytest.fail(f"{name} exited with {proc.returncode} while starting\n{t.log_tail()}")
        try:
            data = json.loads((state / "agent.json").read_text())
        except (OSError, ValueError):
            return None
        return data if data.get("pid") == proc.pid else None

    data = wait_until(info, START_DEADLINE_S, f"{name} to start", t.log_tail)
    host, port = data["gossip"].rsplit(":", 1)
    t.gossip, t.api = (host, int(port)), data["api"]
    assert host == "127.0.0.1"
    return t


@pytest.fixture
def targets(tmp_path):
    started: list[Target] = []
    try:
        for name, keyed in (("plain", False), ("sealed", True)):
            started.append(start_target(tmp_path, name, keyed))
        yield started
    finally:
        for t in started:
            if t.alive():
                os.kill(t.proc.pid, signal.SIGKILL)
            try:
                t.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pass


@pytest.fixture
def sink():
    """A UDP and a TCP socket on one loopback port that nobody answers: the
    port every forged member address points at."""
    for _ in range(20):
        udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        udp.bind(("127.0.0.1", 0))
        port = udp.getsockname()[1]
        tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            tcp.bind(("127.0.0.1", port))
        except OSError:
            udp.close()
            tcp.close()
            continue
        tcp.listen(1)
        try:
            yield port
        finally:
            udp.close()
            tcp.close()
        return
    pytest.skip("no free loopback port for the sink")


# ---- sending ------------------------------------------------------------------------------


@dataclass
class Sender:
    udp: socket.socket
    safety: Safety
    recent: collections.deque = field(default_factory=lambda: collections.deque(maxlen=25))
    sent: collections.Counter = field(default_factory=collections.Counter)

    def send(self, target: Target, shot: Shot, rng: random.Random, forge: Forge) -> None:
        data = shot.data
        if rng.random() < 0.25:  # byte-level damage on top of the field-level one
            data = forge.mangle(data)
        # How it is wrapped: the sealed target mostly gets its own key (a
        # member gone bad), else plaintext or a wrong key; the plain target
        # mostly plaintext, sometimes encrypted.
        roll = rng.random()
        if target.keyring is not None:
            how = "key" if roll < 0.6 else ("no key" if roll < 0.85 else "wrong key")
        else:
            how = "no key" if roll < 0.9 else "key"
        keyring = {"key": KEYRING, "wrong key": WRONG_KEYRING, "no key": None}[how]
        if shot.tcp:
            wire = seal_stream(data, label=b"", keyring=keyring, compress=False, write_label=False)
            if not self.safety.stream(wire, target.keyring):
                return
            self.recent.append(f"TCP {shot.what} ({how}, {len(wire)} bytes): {wire[:80].hex()}")
            self._stream(target, wire)
        else:
            wire = seal_packet(data, label=b"", keyring=keyring, crc=rng.random() < 0.3, compress=False)
            if len(wire) > UDP_MAX_BYTES:
                wire = wire[:UDP_MAX_BYTES]
            if not self.safety.datagram(wire, target.keyring):
                return
            self.recent.append(f"UDP {shot.what} ({how}, {len(wire)} bytes): {wire[:80].hex()}")
            try:
                self.udp.sendto(wire, target.gossip)
            except OSError:
                pass
        self.sent[(target.name, "tcp" if shot.tcp else "udp")] += 1

    @staticmethod
    def _stream(target: Target, wire: bytes) -> None:
        try:
            with socket.create_connection(target.gossip, timeout=1.0) as s:
                s.settimeout(0.3)
                s.sendall(wire)
                s.shutdown(socket.SHUT_WR)
                try:
                    while s.recv(65536):
                        pass
                except OSError:
                    pass
        except OSError:
            pass


# ---- the test -------------------------------------------------------------------------------


def submit_before(t: Target) -> dict:
    r = httpx.post(f"{t.api}/v1/jobs", json=BEFORE_SPEC, timeout=15)
    assert r.status_code == 201, r.text
    detail = t.get("/v1/jobs/before").json()
    return detail["spec"]


def check_unharmed(t: Target, spec_before: dict, rss_before: int, drops_before: float, sender: Sender,
                   family: str) -> None:
    def report() -> str:
        sent = "\n  ".join(sender.recent)
        return (f"{replay_hint()}; family {family}; sent {dict(sender.sent)}; the last messages sent:\n  {sent}\n"
                f"tracebacks in {t.name}'s log:\n{t.tracebacks()}\n--- {t.name}'s log (tail) ---\n{t.log_tail()}")

    assert t.alive(), f"{t.name} exited with {t.proc.returncode}\n{report()}"
    me = wait_until(lambda: _answers(t), API_DEADLINE_S, f"{t.name}'s API to answer", report)
    assert me["name"] == t.name
    rss = t.rss_bytes()
    assert rss < RSS_BOUND_FACTOR * rss_before, (
        f"{t.name}'s RSS grew from {rss_before / 2**20:.1f} to {rss / 2**20:.1f} MiB\n{report()}")
    jobs = t.get("/v1/jobs").json()
    assert [j["name"] for j in jobs] == ["before"], f"{t.name}'s jobs are now {jobs}\n{report()}"
    detail = t.get("/v1/jobs/before")
    assert detail.status_code == 200 and detail.json()["spec"] == spec_before, (
        f"{t.name}'s job 'before' is now {detail.text}\n{report()}")
    assert t.dropped() > drops_before, f"{t.name} counted no drops\n{report()}"


def _answers(t: Target) -> dict | None:
    if not t.alive():
        return None
    try:
        r = t.get("/v1/agent/self", timeout_s=2.0)
    except httpx.HTTPError:
        return None
    return r.json() if r.status_code == 200 else None


@pytest.mark.timeout(180)
@pytest.mark.parametrize("family", FAMILIES)
def test_a_hostile_peer_cannot_crash_bloat_or_rewrite_an_agent(family, targets, sink):
    rng = random.Random(f"{SEED}-{family}")
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp.bind(("127.0.0.1", 0))
    try:
        before = {}
        for t in targets:
            spec = submit_before(t)
            time.sleep(0.2)
            before[t.name] = (spec, t.rss_bytes(), t.dropped())
        forges = {t.name: Forge(rng, t.name, t.gossip[1], sink, udp.getsockname()[1]) for t in targets}
        allowed = set().union(*(f.allowed_ports for f in forges.values()))
        sender = Sender(udp, Safety(allowed))
        make = FAMILY_MAKERS[family]
        deadline = time.monotonic() + SEND_SECONDS_PER_FAMILY
        n = 0
        while time.monotonic() < deadline:
            t = targets[n % len(targets)]
            forge = forges[t.name]
            sender.send(t, make(forge), rng, forge)
            n += 1
            if n % 25 == 0:
                time.sleep(0.02)  # do not just overrun the agent's input queue
                if not all(x.alive() for x in targets):
                    break
        # what is queued gets handled, and the timers that follow run (the
        # local profile reconnects to failed members every 2 s)
        time.sleep(3.0)
        print(f"{replay_hint()}; family {family}: sent {dict(sender.sent)}, "
              f"{sender.safety.refused} not sent (they would name another address)")
        problems = []
        for t in targets:
            spec, rss, drops = before[t.name]
            try:
                check_unharmed(t, spec, rss, drops, sender, family)
            except AssertionError as e:  # report every harmed agent, not only the first
                problems.append(str(e))
        assert not problems, "\n\n".join(problems)
    finally:
        udp.close()
