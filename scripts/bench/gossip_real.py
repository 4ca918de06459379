#!/usr/bin/env python3
"""Benchmark real gossip agents on loopback: shoal beside Serf.

    python scripts/bench/gossip_real.py [--quick] [--sizes 10,30,60] [--impl shoal,serf]
        [--profile lan] [--join-mode spawn|api] [--join-trials 3] [--kills 5] [--rest-seconds 30]
        [--join-only] [--src REV|worktree] [--json OUT] [--keep-logs DIR]

For each implementation (shoal, and Debian's `serf` when installed) and each
cluster size N it starts N real agents on 127.0.0.1 and measures:

(a) full membership: the seed agent is started and waited for; then the other
    N-1 are spawned at once, all joining the seed.  From that moment (t=0)
    every agent's member list is polled (every ~0.1 s, only agents that are not
    yet complete) and the time at which each first lists all N alive is kept.
    Printed: when the last agent answered its API at all ("ready"), and when
    the median and the last agent saw all N ("full").  --join-trials repeats
    this with a fresh cluster; the last cluster is kept for (b)-(d).
    --join-mode api instead starts all N agents without joining, waits until
    every one answers, and only then tells the N-1 to join the seed at once
    (shoal: POST /v1/agent/join; Serf: RPC join): t=0 is that moment, so the
    figure leaves out process start-up (which dominates for Python agents).
    --join-watch events (with api) follows each shoal agent's /v1/events
    instead of polling it, and takes the agent's own timestamp of the event
    that completed its view: polling 60 Python agents ten times a second
    loads the very agents being timed.
(c)+(d) at rest: after a settle time, two snapshots `--rest-seconds` apart with
    no API polling in between: gossip traffic from nftables counters on `lo`
    (a table of ours in the host namespace counting packets whose UDP source
    port, or TCP source or destination port, is one of the agents' gossip
    ports: IP-level bytes, headers included, each packet counted once), the
    agents' own /v1/metrics counters for shoal (payload bytes, UDP+TCP;
    UDP datagrams), and psutil cpu_times and RSS of every agent process.
(b) detection: `--kills` times, a random non-seed agent is killed with SIGKILL
    and the time until each remaining agent marks it failed is taken: for
    shoal from each agent's /v1/events stream (the agent's own timestamp of
    its member_failed event); for Serf by polling `members` over its RPC
    every 0.2 s (the time is the midpoint between the last poll that still saw
    it alive and the first that saw it failed, so it is within +-0.1 s; Serf's
    RPC event stream is not used because the agent coalesces member events
    for up to a few seconds).  After each kill a replacement agent with a new
    name joins the seed, and the next kill waits until everyone sees it.

The shoal agents run `git archive` of --src (default HEAD) unpacked in the
temporary directory, so uncommitted work in the tree is not what is measured
(--src worktree runs the tree as it is).

Everything is printed as medians (first / median / last agent per kill, then
the median over kills), with shoal/Serf ratios at the end.  --quick runs N=10
only, with 1 join trial, 3 kills and a 20 s rest window.

Clean-up: every agent is started in its own session and killed by PID (SIGKILL)
when the script ends, whether it finished, failed or got SIGINT/SIGTERM/SIGHUP;
the nftables table is deleted; the temporary directory is removed unless
--keep-logs names one.  Needs root only for the nftables counters (without
them the wire-level traffic is "not measured").

gossip_loss.py imports the helpers below (Reaper, the shoal event stream, the
Serf RPC client, the backends).
"""

from __future__ import annotations

import argparse
import atexit
import ctypes
import http.client
import json
import os
import random
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import msgpack
import psutil

REPO = Path(__file__).resolve().parents[2]
SERF = shutil.which("serf")
NFT = shutil.which("nft") or (Path("/usr/sbin/nft").exists() and "/usr/sbin/nft") or None


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# ---- clean-up ---------------------------------------------------------------------


class Reaper:
    """Everything this script started: processes (killed by PID) and clean-up steps."""

    def __init__(self) -> None:
        self.procs: list[subprocess.Popen] = []
        self.cleanups: list[tuple[str, Callable[[], None]]] = []
        self._done = False

    def add_proc(self, p: subprocess.Popen) -> None:
        self.procs.append(p)

    def add_cleanup(self, what: str, fn: Callable[[], None]) -> None:
        self.cleanups.append((what, fn))

    def remove_cleanup(self, what: str) -> None:
        self.cleanups = [(w, f) for w, f in self.cleanups if w != what]

    @staticmethod
    def kill(procs: list[subprocess.Popen]) -> None:
        for p in procs:
            if p.poll() is None:
                try:
                    os.kill(p.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        for p in procs:
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                log(f"warning: pid {p.pid} did not exit after SIGKILL")

    def kill_all(self) -> None:
        self.kill(self.procs)
        self.procs = [p for p in self.procs if p.poll() is None]

    def cleanup(self) -> None:
        if self._done:
            return
        self._done = True
        # Finish the clean-up even if Ctrl-C is pressed again.
        for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            try:
                signal.signal(s, signal.SIG_IGN)
            except (ValueError, OSError):
                pass
        self.kill_all()
        for what, fn in reversed(self.cleanups):
            try:
                fn()
            except Exception as e:  # noqa: BLE001 - report and go on cleaning
                log(f"warning: clean-up of {what} failed: {e}")


REAPER = Reaper()


def install_cleanup() -> None:
    def on_signal(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(s, on_signal)
    atexit.register(REAPER.cleanup)


# ---- sockets, optionally inside a network namespace ---------------------------------

CLONE_NEWNET = 0x40000000


def socket_in_netns(netns: str | None, family: int = socket.AF_INET, type_: int = socket.SOCK_STREAM) -> socket.socket:
    """A socket created inside network namespace `netns` (a /run/netns path), or here.

    A socket belongs to the namespace it was created in for its whole life, so a
    short-lived thread enters the namespace (setns is per thread), creates it and
    exits; the caller uses the socket from any thread."""
    if netns is None:
        return socket.socket(family, type_)
    out: dict[str, Any] = {}

    def work() -> None:
        libc = ctypes.CDLL(None, use_errno=True)
        try:
            fd = os.open(netns, os.O_RDONLY)
        except OSError as e:
            out["err"] = e
            return
        try:
            if libc.setns(fd, CLONE_NEWNET) != 0:
                err = ctypes.get_errno()
                raise OSError(err, f"setns({netns}): {os.strerror(err)}")
            out["sock"] = socket.socket(family, type_)
        except BaseException as e:  # noqa: BLE001 - handed to the caller
            out["err"] = e
        finally:
            os.close(fd)

    t = threading.Thread(target=work, name="setns")
    t.start()
    t.join()
    if "err" in out:
        raise out["err"]
    return out["sock"]


_PORTS_GIVEN: set[int] = set()


def free_port(host: str = "127.0.0.1") -> int:
    """A port free for both TCP and UDP (gossip uses both), below the kernel's
    ephemeral range (so no outgoing connection takes it before the agent binds
    it) and never handed out twice by this script."""
    rng = random.Random()
    for _ in range(1000):
        port = rng.randrange(20000, 32768)
        if port in _PORTS_GIVEN:
            continue
        tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            tcp.bind((host, port))
            udp.bind((host, port))
        except OSError:
            continue
        finally:
            tcp.close()
            udp.close()
        _PORTS_GIVEN.add(port)
        return port
    raise RuntimeError("no free TCP+UDP port")


def git(*args: str) -> str:
    return subprocess.run(["git", "-C", str(REPO), *args], capture_output=True, text=True,
                          timeout=60, check=True).stdout.strip()


def describe_worktree() -> str:
    try:
        head = git("rev-parse", "--short=12", "HEAD")
        dirty = git("status", "--porcelain", "--", "node", "gossip", "auction")
    except (OSError, subprocess.CalledProcessError):
        return "(working tree, not a git checkout)"
    return f"working tree at {head}" + (" + uncommitted changes" if dirty else "")


def export_source(rev: str, dest: Path) -> tuple[Path, str]:
    """`git archive REV` unpacked in `dest`: the agents run that code, not
    whatever is being edited in the working tree."""
    commit = git("rev-parse", "--verify", f"{rev}^{{commit}}")
    dest.mkdir(parents=True, exist_ok=True)
    archive = subprocess.run(["git", "-C", str(REPO), "archive", "--format=tar", commit],
                             capture_output=True, timeout=120, check=True).stdout
    subprocess.run(["tar", "-x", "-C", str(dest)], input=archive, check=True, timeout=120)
    subject = git("log", "-1", "--format=%s", commit)
    return dest, f"commit {commit[:12]} ({subject[:60]})"


class NSHTTPConnection(http.client.HTTPConnection):
    """http.client connection whose socket lives in a network namespace."""

    def __init__(self, host: str, port: int, netns: str | None = None, timeout: float = 5.0) -> None:
        super().__init__(host, port, timeout=timeout)
        self.netns = netns

    def connect(self) -> None:
        s = socket_in_netns(self.netns)
        s.settimeout(self.timeout)
        try:
            s.connect((self.host, self.port))
        except BaseException:
            s.close()
            raise
        self.sock = s


def http_get(conn: NSHTTPConnection, path: str, tries: int = 2) -> bytes | None:
    """GET over a kept-alive connection; a connection the server closed while
    idle is re-opened once."""
    for _ in range(tries):
        try:
            conn.request("GET", path)
            r = conn.getresponse()
            body = r.read()
        except (OSError, http.client.HTTPException):
            conn.close()
            continue
        return body if r.status == 200 else None
    return None


# ---- shoal's /v1/events as a non-blocking NDJSON stream -------------------------------


class ShoalEvents:
    """GET /v1/events over a raw non-blocking socket (for selectors): feed() on
    readable returns the records that arrived.  `ok` once the 200 header came
    (the agent subscribed us before sending it)."""

    def __init__(self, host: str, port: int, netns: str | None = None, history: bool = False) -> None:
        self.sock = socket_in_netns(netns)
        self.sock.settimeout(5.0)
        try:
            self.sock.connect((host, port))
            req = (f"GET /v1/events?history={1 if history else 0} HTTP/1.1\r\n"
                   f"Host: {host}:{port}\r\nAccept: application/x-ndjson\r\n\r\n")
            self.sock.sendall(req.encode())
        except BaseException:
            self.sock.close()
            raise
        self.sock.setblocking(False)
        self.buf = b""
        self.body = b""
        self.status: int | None = None
        self.chunked = False
        self.closed = False

    @property
    def ok(self) -> bool:
        return self.status == 200

    def fileno(self) -> int:
        return self.sock.fileno()

    def feed(self) -> list[dict[str, Any]]:
        try:
            data = self.sock.recv(262144)
        except (BlockingIOError, InterruptedError):
            return []
        except OSError:
            data = b""
        if not data:
            self.closed = True
            return []
        self.buf += data
        if self.status is None:
            i = self.buf.find(b"\r\n\r\n")
            if i < 0:
                return []
            head = self.buf[:i].decode("latin-1")
            self.buf = self.buf[i + 4:]
            try:
                self.status = int(head.split()[1])
            except (IndexError, ValueError):
                self.status = 0
            self.chunked = "transfer-encoding: chunked" in head.lower()
        if self.chunked:
            while True:
                j = self.buf.find(b"\r\n")
                if j < 0:
                    break
                try:
                    size = int(self.buf[:j].split(b";")[0], 16)
                except ValueError:
                    self.closed = True
                    break
                if size == 0:
                    self.closed = True
                    break
                if len(self.buf) < j + 2 + size + 2:
                    break
                self.body += self.buf[j + 2:j + 2 + size]
                self.buf = self.buf[j + 2 + size + 2:]
        else:
            self.body += self.buf
            self.buf = b""
        *lines, self.body = self.body.split(b"\n")
        out = []
        for line in lines:
            if line.strip():
                try:
                    out.append(json.loads(line))
                except ValueError:
                    pass
        return out

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass


# ---- Serf's RPC (msgpack over TCP) ----------------------------------------------------


class SerfRPC:
    """The few Serf RPC commands we need: handshake, members, stream."""

    def __init__(self, host: str, port: int, netns: str | None = None, timeout: float = 5.0) -> None:
        self.sock = socket_in_netns(netns)
        self.sock.settimeout(timeout)
        try:
            self.sock.connect((host, port))
        except BaseException:
            self.sock.close()
            raise
        self.unpacker = msgpack.Unpacker(raw=False, unicode_errors="surrogateescape")
        self.seq = 0
        self._send({"Command": "handshake", "Seq": self._next()}, {"Version": 1})
        self._check(self._recv())

    def _next(self) -> int:
        self.seq += 1
        return self.seq

    def _send(self, header: dict, body: dict | None = None) -> None:
        data = msgpack.packb(header)
        if body is not None:
            data += msgpack.packb(body)
        self.sock.sendall(data)

    def _recv(self) -> Any:
        while True:
            try:
                return next(self.unpacker)
            except StopIteration:
                data = self.sock.recv(262144)
                if not data:
                    raise ConnectionError("serf RPC closed") from None
                self.unpacker.feed(data)

    @staticmethod
    def _check(header: Any) -> None:
        if not isinstance(header, dict) or header.get("Error"):
            raise ConnectionError(f"serf RPC error: {header!r}")

    def join(self, addr: str) -> int:
        self._send({"Command": "join", "Seq": self._next()}, {"Existing": [addr], "Replay": False})
        self._check(self._recv())
        return int(self._recv().get("Num", 0))

    def send_members(self) -> None:
        self._send({"Command": "members", "Seq": self._next()})

    def recv_members(self) -> dict[str, str]:
        self._check(self._recv())
        body = self._recv()
        return {m["Name"]: m["Status"] for m in body.get("Members") or []}

    def members(self) -> dict[str, str]:
        self.send_members()
        return self.recv_members()

    def start_stream(self, event_type: str) -> None:
        """Subscribe; afterwards the socket is non-blocking, use feed_stream()."""
        self._send({"Command": "stream", "Seq": self._next()}, {"Type": event_type})
        self._check(self._recv())
        self.sock.setblocking(False)

    def fileno(self) -> int:
        return self.sock.fileno()

    def feed_stream(self) -> tuple[list[dict], bool]:
        """(event bodies that arrived, closed)."""
        try:
            data = self.sock.recv(262144)
        except (BlockingIOError, InterruptedError):
            return [], False
        except OSError:
            data = b""
        if not data:
            return [], True
        self.unpacker.feed(data)
        out = [obj for obj in self.unpacker if isinstance(obj, dict) and "Event" in obj]
        return out, False

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass


# ---- agents and backends ---------------------------------------------------------------


@dataclass
class Agent:
    name: str
    kind: str
    popen: subprocess.Popen
    log_path: Path
    gossip_host: str = "127.0.0.1"
    gossip_port: int | None = None
    control: tuple[str, int] | None = None  # shoal: API host/port; serf: RPC host/port
    state_dir: Path | None = None
    netns: str | None = None  # /run/netns/NAME when it runs inside a namespace

    @property
    def pid(self) -> int:
        return self.popen.pid

    @property
    def gossip_addr(self) -> str:
        return f"{self.gossip_host}:{self.gossip_port}"

    def alive(self) -> bool:
        return self.popen.poll() is None

    def log_tail(self, n: int = 15) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return ""


class AgentDied(RuntimeError):
    pass


@dataclass
class Poll:
    t_sent: float
    t_recv: float
    members: dict[str, str]


def _popen(argv: list[str], log_path: Path, cwd: Path, env: dict[str, str] | None = None) -> subprocess.Popen:
    with open(log_path, "ab") as f:
        p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=f, stderr=subprocess.STDOUT,
                             cwd=cwd, env=env, start_new_session=True)
    REAPER.add_proc(p)
    return p


class ShoalBackend:
    kind = "shoal"

    def __init__(self, workdir: Path, profile: str, log_level: str = "INFO",
                 src: tuple[Path, str] | None = None, extra_args: tuple[str, ...] = ()) -> None:
        self.workdir = workdir
        self.extra_args = extra_args  # added to every agent's command line (e.g. --encrypt KEY)
        self.profile = profile
        self.log_level = log_level
        self.src_dir, self.src_desc = src or (REPO, describe_worktree())
        self.conns: dict[str, NSHTTPConnection] = {}
        self.pool = ThreadPoolExecutor(max_workers=12, thread_name_prefix="shoal-poll")

    def version(self) -> str:
        return f"shoal {self.src_desc}"

    def _refuses_plain_gossip(self) -> bool:
        """Whether the shoal under test has --insecure-no-encryption (older
        ones gossip unencrypted anywhere and do not know the flag)."""
        for path in ("node/cli/agent_options.py", "node/cli/agent_command.py"):  # where the flags are declared
            try:
                if "--insecure-no-encryption" in (self.src_dir / path).read_text():
                    return True
            except OSError:
                pass
        return False

    def spawn(self, name: str, join: str | None = None, *, bind: str = "127.0.0.1:0",
              api: str = "127.0.0.1:0", netns: str | None = None) -> Agent:
        state = self.workdir / f"shoal-{name}"
        state.mkdir(parents=True, exist_ok=True)
        (state / "agent.json").unlink(missing_ok=True)
        argv = [sys.executable, "-m", "node.cli", "agent", "--name", name, "--bind", bind,
                "--api", api, "--profile", self.profile, "--state-dir", str(state),
                "--log-level", self.log_level]
        if join:
            argv += ["--join", join]
        argv += self.extra_args
        if not bind.startswith("127.") and self._refuses_plain_gossip():
            # Like Serf here, unencrypted; off loopback that must be asked for.
            argv.append("--insecure-no-encryption")
        if netns:
            argv = ["nsenter", f"--net={netns}", "--"] + argv
        log_path = self.workdir / f"shoal-{name}.log"
        env = {**os.environ, "PYTHONUNBUFFERED": "1", "PYTHONPATH": str(self.src_dir)}
        p = _popen(argv, log_path, self.src_dir, env)
        return Agent(name, "shoal", p, log_path, gossip_host=bind.rsplit(":", 1)[0], state_dir=state, netns=netns)

    def poll_ready(self, a: Agent) -> bool:
        if a.control is not None:
            return True
        if not a.alive():
            raise AgentDied(f"shoal agent {a.name} exited with {a.popen.returncode}:\n{a.log_tail()}")
        assert a.state_dir is not None
        try:
            info = json.loads((a.state_dir / "agent.json").read_text())
        except (OSError, ValueError):
            return False
        if info.get("pid") != a.pid:
            return False
        a.gossip_port = int(info["gossip"].rsplit(":", 1)[1])
        m = re.match(r"https?://([^/]+):(\d+)", info["api"])
        assert m, info
        a.control = (m.group(1), int(m.group(2)))
        return True

    def _conn(self, a: Agent) -> NSHTTPConnection:
        c = self.conns.get(a.name)
        if c is None:
            assert a.control is not None
            c = self.conns[a.name] = NSHTTPConnection(a.control[0], a.control[1], a.netns, timeout=5.0)
        return c

    def get(self, a: Agent, path: str) -> bytes | None:
        if not self.poll_ready(a):
            return None
        return http_get(self._conn(a), path)

    def _members_one(self, a: Agent) -> Poll | None:
        t_sent = time.time()
        body = self.get(a, "/v1/members")
        if body is None:
            return None
        try:
            members = {m["name"]: m["status"] for m in json.loads(body)}
        except (ValueError, KeyError, TypeError):
            return None
        return Poll(t_sent, time.time(), members)

    def members_many(self, agents: list[Agent]) -> dict[str, Poll]:
        results = self.pool.map(self._members_one, agents)
        return {a.name: r for a, r in zip(agents, results) if r is not None}

    def join_one(self, a: Agent, seed: str) -> bool:
        """POST /v1/agent/join on a connection of its own (runs in a thread)."""
        assert a.control is not None
        conn = NSHTTPConnection(a.control[0], a.control[1], a.netns, timeout=30.0)
        try:
            conn.request("POST", "/v1/agent/join", body=json.dumps({"addresses": [seed]}),
                         headers={"Content-Type": "application/json"})
            r = conn.getresponse()
            r.read()
            return r.status == 200
        except (OSError, http.client.HTTPException):
            return False
        finally:
            conn.close()

    def metrics(self, a: Agent) -> dict[str, float] | None:
        body = self.get(a, "/v1/metrics")
        if body is None:
            return None
        out = {}
        for line in body.decode(errors="replace").splitlines():
            m = re.match(r"^(shoal_(?:packets|bytes)_(?:in|out)_total) ([0-9.eE+-]+)$", line)
            if m:
                out[m.group(1)] = float(m.group(2))
        return out

    def forget(self, a: Agent) -> None:
        c = self.conns.pop(a.name, None)
        if c is not None:
            c.close()

    def reset(self) -> None:
        for c in self.conns.values():
            c.close()
        self.conns.clear()

    def follow_events(self, agents: list[Agent], start: Callable[[], float], deadline_s: float,
                      handle: Callable[[str, dict[str, Any], float], None],
                      finished: Callable[[], bool]) -> None:
        """Open every agent's /v1/events and wait until each is subscribed;
        then call `start()` (it returns t0) and pass every record to
        `handle(agent_name, record, t0)` until `finished()` or the deadline."""
        import selectors

        streams: dict[str, ShoalEvents] = {}
        sel = selectors.DefaultSelector()
        try:
            for a in agents:
                assert a.control is not None
                s = ShoalEvents(a.control[0], a.control[1], a.netns)
                streams[a.name] = s
                sel.register(s, selectors.EVENT_READ, a.name)
            # Wait for every 200 header: each stream is then subscribed.
            until = time.time() + 15
            while time.time() < until and not all(s.ok or s.closed for s in streams.values()):
                for key, _ in sel.select(0.2):
                    streams[key.data].feed()
            t0 = start()
            while time.time() < t0 + deadline_s and not finished():
                for key, _ in sel.select(0.2):
                    s = streams[key.data]
                    for rec in s.feed():
                        handle(key.data, rec, t0)
                    if s.closed:
                        sel.unregister(s)
                if not sel.get_map():
                    break
        finally:
            sel.close()
            for s in streams.values():
                s.close()

    def watch_join(self, agents: list[Agent], start: Callable[[], float],
                   deadline_s: float) -> dict[str, float]:
        """Call `start()` (it sends the join requests and returns t0) and
        follow each agent's member events until its own view holds all of
        `agents` alive.  Returns, per agent, its own timestamp of that moment
        minus t0.  Nothing is polled, so the watching costs the agents next
        to nothing (polling 60 Python agents' /v1/members ten times a second
        costs them a lot of CPU)."""
        expected = {a.name for a in agents}
        views: dict[str, set[str]] = {a.name: {a.name} for a in agents}
        done: dict[str, float] = {}
        history: dict[str, list[tuple[float, str, str]]] = {a.name: [] for a in agents}

        def handle(name: str, rec: dict[str, Any], t0: float) -> None:
            who = (rec.get("member") or {}).get("name")
            ev = rec.get("event")
            if ev in ("member_joined", "member_updated"):
                views[name].add(who)
            elif ev in ("member_suspected", "member_failed", "member_left"):
                views[name].discard(who)
            else:
                return
            history[name].append((round(float(rec["time"]) - t0, 3), str(ev), str(who)))
            if name not in done and expected <= views[name]:
                done[name] = float(rec["time"]) - t0

        self.follow_events(agents, start, deadline_s, handle, lambda: len(done) == len(agents))
        # For an agent that took long, what happened to the member(s) it
        # saw last: were they missed, or suspected and failed on the way?
        self.slow_joins = {}
        for name, t in done.items():
            if t > SLOW_JOIN_S:
                late = {who for (tt, _, who) in history[name] if tt > SLOW_JOIN_S}
                self.slow_joins[name] = [h for h in history[name] if h[2] in late]
        return done

    def detect(self, observers: list[Agent], victim: str, kill: Callable[[], float], deadline_s: float,
               ignore: frozenset[str] = frozenset()) -> tuple[dict[str, float], list[tuple[str, str]]]:
        """Kill through `kill()` (returns the wall time of the kill) and read each
        observer's member_failed event for `victim` from its event stream."""
        found: dict[str, float] = {}
        others: list[tuple[str, str]] = []

        def handle(name: str, rec: dict[str, Any], t_kill: float) -> None:
            if rec.get("event") != "member_failed":
                return
            who = (rec.get("member") or {}).get("name")
            if who == victim:
                found.setdefault(name, float(rec["time"]) - t_kill)
            elif who not in ignore:
                others.append((name, str(who)))

        self.follow_events(observers, kill, deadline_s, handle, lambda: len(found) == len(observers))
        return found, others


class SerfBackend:
    kind = "serf"

    def __init__(self, workdir: Path, profile: str) -> None:
        if SERF is None:
            raise RuntimeError("serf is not installed (apt-get install serf)")
        self.workdir = workdir
        self.profile = profile
        self.rpcs: dict[str, SerfRPC] = {}

    def version(self) -> str:
        out = subprocess.run([SERF, "version"], capture_output=True, text=True, timeout=10).stdout
        v = f"serf binary says {out.splitlines()[0].strip()}" if out else "serf"
        try:  # Debian's build reports 0.8.2-dev; its package version is the real one
            pkg = subprocess.run(["dpkg-query", "-W", "-f=${Version}", "serf"], capture_output=True,
                                 text=True, timeout=10).stdout.strip()
        except OSError:
            pkg = ""
        return f"Debian package serf {pkg} ({v})" if pkg else v

    def spawn(self, name: str, join: str | None = None, *, bind_host: str = "127.0.0.1",
              port: int | None = None, rpc: tuple[str, int] | None = None, netns: str | None = None) -> Agent:
        port = port or free_port(bind_host)
        rpc = rpc or ("127.0.0.1", free_port())
        argv = [SERF, "agent", f"-node={name}", f"-bind={bind_host}:{port}", f"-advertise={bind_host}:{port}",
                f"-rpc-addr={rpc[0]}:{rpc[1]}", f"-profile={self.profile}", "-log-level=info"]
        if join:
            argv.append(f"-join={join}")
        if netns:
            argv = ["nsenter", f"--net={netns}", "--"] + argv
        log_path = self.workdir / f"serf-{name}.log"
        p = _popen(argv, log_path, self.workdir)
        return Agent(name, "serf", p, log_path, gossip_host=bind_host, gossip_port=port, control=rpc, netns=netns)

    def _rpc(self, a: Agent) -> SerfRPC | None:
        r = self.rpcs.get(a.name)
        if r is None:
            if not a.alive():
                raise AgentDied(f"serf agent {a.name} exited with {a.popen.returncode}:\n{a.log_tail()}")
            assert a.control is not None
            try:
                r = self.rpcs[a.name] = SerfRPC(a.control[0], a.control[1], a.netns)
            except (OSError, ConnectionError):
                return None
        return r

    def poll_ready(self, a: Agent) -> bool:
        return self._rpc(a) is not None

    def join_one(self, a: Agent, seed: str) -> bool:
        """RPC join on a connection of its own (runs in a thread)."""
        assert a.control is not None
        try:
            r = SerfRPC(a.control[0], a.control[1], a.netns, timeout=30.0)
        except (OSError, ConnectionError):
            return False
        try:
            return r.join(seed) > 0
        except (OSError, ConnectionError, ValueError):
            return False
        finally:
            r.close()

    def members_many(self, agents: list[Agent]) -> dict[str, Poll]:
        sent: list[tuple[Agent, SerfRPC, float]] = []
        for a in agents:
            r = self._rpc(a)
            if r is None:
                continue
            t = time.time()
            try:
                r.send_members()
                sent.append((a, r, t))
            except OSError:
                self.forget(a)
        out = {}
        for a, r, t in sent:
            try:
                members = r.recv_members()
            except (OSError, ConnectionError, ValueError):
                self.forget(a)
                continue
            out[a.name] = Poll(t, time.time(), members)
        return out

    def forget(self, a: Agent) -> None:
        r = self.rpcs.pop(a.name, None)
        if r is not None:
            r.close()

    def reset(self) -> None:
        for r in self.rpcs.values():
            r.close()
        self.rpcs.clear()

    def detect(self, observers: list[Agent], victim: str, kill: Callable[[], float],
               deadline_s: float, ignore: frozenset[str] = frozenset(),
               interval_s: float = 0.2) -> tuple[dict[str, float], list[tuple[str, str]]]:
        """Poll every observer's members until each lists `victim` as failed."""
        self.members_many(observers)  # connections up before the kill
        t_kill = kill()
        last_alive = {o.name: t_kill for o in observers}
        found: dict[str, float] = {}
        others: set[tuple[str, str]] = set()
        while time.time() < t_kill + deadline_s and len(found) < len(observers):
            t_round = time.time()
            polls = self.members_many([o for o in observers if o.name not in found])
            for name, p in polls.items():
                if p.members.get(victim) == "failed":
                    found[name] = (last_alive[name] + p.t_recv) / 2 - t_kill
                else:
                    last_alive[name] = p.t_sent
                for m, st in p.members.items():
                    if st == "failed" and m != victim and m not in ignore:
                        others.add((name, m))
            time.sleep(max(0.0, interval_s - (time.time() - t_round)))
        return found, sorted(others)


# ---- nftables counters on lo ------------------------------------------------------------


class LoopbackCounters:
    """An nftables table of ours in this namespace counting gossip traffic on lo."""

    def __init__(self) -> None:
        self.table = f"shoalbench_{os.getpid()}"
        self.ok = False
        self.why = ""
        if NFT is None:
            self.why = "nft is not installed"
            return
        if os.geteuid() != 0:
            self.why = "not root (nftables counters need root)"
            return
        rules = f"""
table inet {self.table} {{
    set gossip {{ type inet_service; }}
    chain out {{
        type filter hook output priority 0; policy accept;
        oifname "lo" udp sport @gossip counter comment "udp"
        oifname "lo" tcp sport @gossip counter comment "tcp_from_listener"
        oifname "lo" tcp dport @gossip tcp sport != @gossip counter comment "tcp_to_listener"
    }}
}}
"""
        r = subprocess.run([NFT, "-f", "-"], input=rules, capture_output=True, text=True, timeout=30)
        if r.returncode != 0:
            self.why = f"nft failed: {r.stderr.strip()}"
            return
        self.ok = True
        REAPER.add_cleanup(f"nft table {self.table}", self.delete)

    def set_ports(self, ports: list[int]) -> None:
        if not self.ok:
            return
        subprocess.run([NFT, "flush", "set", "inet", self.table, "gossip"], check=True, timeout=30)
        if ports:
            elems = ", ".join(str(p) for p in sorted(set(ports)))
            subprocess.run([NFT, "add", "element", "inet", self.table, "gossip", f"{{ {elems} }}"],
                           check=True, timeout=30)

    def read(self) -> dict[str, tuple[int, int]]:
        """comment -> (packets, bytes)."""
        if not self.ok:
            return {}
        out = subprocess.run([NFT, "-j", "list", "table", "inet", self.table], capture_output=True,
                             text=True, timeout=30, check=True).stdout
        res: dict[str, tuple[int, int]] = {}
        for item in json.loads(out)["nftables"]:
            rule = item.get("rule")
            if not rule:
                continue
            counter = next((e["counter"] for e in rule["expr"] if "counter" in e), None)
            if counter is not None:
                res[rule.get("comment", str(rule["handle"]))] = (counter["packets"], counter["bytes"])
        return res

    def delete(self) -> None:
        if self.ok:
            subprocess.run([NFT, "delete", "table", "inet", self.table], capture_output=True, timeout=30)
            self.ok = False


# ---- measurements ----------------------------------------------------------------------


def med(xs: list[float]) -> float | None:
    return statistics.median(xs) if xs else None


def fmt(x: float | None, unit: str = "", digits: int = 2) -> str:
    return "n/a" if x is None else f"{x:.{digits}f}{unit}"


def wait_ready(backend: Any, agents: list[Agent], deadline_s: float) -> None:
    until = time.time() + deadline_s
    pending = list(agents)
    while pending:
        pending = [a for a in pending if not backend.poll_ready(a)]
        if not pending:
            return
        if time.time() > until:
            raise RuntimeError(f"agents not ready after {deadline_s:.0f}s: {[a.name for a in pending]}\n"
                               f"{pending[0].log_tail()}")
        time.sleep(0.05)


def wait_full_membership(backend: Any, agents: list[Agent], t0: float, deadline_s: float,
                         poll_s: float = 0.1) -> dict[str, Any]:
    """Poll every agent not yet complete until it lists all of `agents` alive."""
    expected = [a.name for a in agents]
    ready: dict[str, float] = {}
    done: dict[str, float] = {}
    until = t0 + deadline_s
    while time.time() < until:
        pending = [a for a in agents if a.name not in done]
        if not pending:
            break
        t_round = time.time()
        for name, p in backend.members_many(pending).items():
            ready.setdefault(name, p.t_recv - t0)
            if all(p.members.get(n) == "alive" for n in expected):
                done[name] = p.t_recv - t0
        for a in pending:
            if not a.alive():
                raise AgentDied(f"{a.kind} agent {a.name} exited with {a.popen.returncode}:\n{a.log_tail()}")
        time.sleep(max(0.0, poll_s - (time.time() - t_round)))
    return {
        "n": len(agents),
        "ready_last_s": max(ready.values()) if len(ready) == len(agents) else None,
        "full_median_s": med(list(done.values())) if len(done) == len(agents) else None,
        "full_last_s": max(done.values()) if len(done) == len(agents) else None,
        "complete": len(done),
        "deadline_s": deadline_s,
    }


def snapshot(backend: Any, agents: list[Agent], nft: LoopbackCounters) -> dict[str, Any]:
    snap: dict[str, Any] = {"t": time.time(), "cpu": {}, "rss": {}, "metrics": {}}
    snap["nft"] = nft.read()
    for a in agents:
        try:
            p = psutil.Process(a.pid)
            ct = p.cpu_times()
            snap["cpu"][a.name] = ct.user + ct.system
            snap["rss"][a.name] = p.memory_info().rss
        except psutil.Error:
            pass
    if backend.kind == "shoal":
        for a in agents:
            m = backend.metrics(a)
            if m:
                snap["metrics"][a.name] = m
    snap["t"] = (snap["t"] + time.time()) / 2
    return snap


def rest_figures(s0: dict[str, Any], s1: dict[str, Any], n: int) -> dict[str, Any]:
    dt = s1["t"] - s0["t"]
    out: dict[str, Any] = {"window_s": round(dt, 1)}
    if s0["nft"] and s1["nft"]:
        d = {k: (s1["nft"][k][0] - s0["nft"][k][0], s1["nft"][k][1] - s0["nft"][k][1]) for k in s1["nft"]}
        udp_p, udp_b = d.get("udp", (0, 0))
        tcp_p = sum(v[0] for k, v in d.items() if k.startswith("tcp"))
        tcp_b = sum(v[1] for k, v in d.items() if k.startswith("tcp"))
        out["wire"] = {
            "udp_pps": udp_p / dt / n, "udp_Bps": udp_b / dt / n,
            "tcp_pps": tcp_p / dt / n, "tcp_Bps": tcp_b / dt / n,
            "pps": (udp_p + tcp_p) / dt / n, "Bps": (udp_b + tcp_b) / dt / n,
        }
    if s0["metrics"] and s1["metrics"]:
        per: dict[str, list[float]] = {}
        for name, m1 in s1["metrics"].items():
            m0 = s0["metrics"].get(name)
            if not m0:
                continue
            for k in m1:
                if k in m0:
                    per.setdefault(k, []).append((m1[k] - m0[k]) / dt)
        out["own_counters"] = {k.replace("shoal_", "").replace("_total", ""): med(v) for k, v in per.items()}
    cpu = [(s1["cpu"][k] - s0["cpu"][k]) / dt * 100 for k in s1["cpu"] if k in s0["cpu"]]
    rss = [v / 2**20 for v in s1["rss"].values()]
    out["cpu_pct_median"] = med(cpu)
    out["cpu_pct_max"] = max(cpu) if cpu else None
    out["cpu_pct_total"] = sum(cpu) if cpu else None
    out["rss_mib_median"] = med(rss)
    out["rss_mib_max"] = max(rss) if rss else None
    return out


SLOW_JOIN_S = 3.0  # the target: every agent sees all N within 3 s


def start_cluster(backend: Any, n: int, prefix: str, join_deadline_s: float,
                  join_mode: str = "spawn", watch: str = "poll") -> tuple[list[Agent], dict[str, Any]]:
    """spawn: t=0 when the N-1 agents are spawned with --join/-join.
    api: all N are started without a seed and waited for; t=0 when all N-1
    are told to join the seed at once (shoal POST /v1/agent/join, Serf RPC
    join), so process start-up is not in the figure.  watch="events" (api
    mode, shoal only) reads each agent's own member events instead of
    polling its member list."""
    names = [f"{prefix}{i:02d}" for i in range(n)]
    seed = backend.spawn(names[0])
    wait_ready(backend, [seed], 60)
    if join_mode == "spawn":
        t0 = time.time()
        agents = [seed] + [backend.spawn(nm, join=seed.gossip_addr) for nm in names[1:]]
        return agents, wait_full_membership(backend, agents, t0, join_deadline_s)
    agents = [seed] + [backend.spawn(nm) for nm in names[1:]]
    wait_ready(backend, agents, 120 + n)
    time.sleep(1.0)
    pool = ThreadPoolExecutor(max_workers=len(agents), thread_name_prefix="join")
    futures: list[Any] = []

    def start() -> float:
        t0 = time.time()
        futures.extend(pool.submit(backend.join_one, a, seed.gossip_addr) for a in agents[1:])
        return t0

    try:
        if watch == "events" and hasattr(backend, "watch_join"):
            done = backend.watch_join(agents, start, join_deadline_s)
            complete = len(done) == len(agents)
            fig = {"n": n, "ready_last_s": 0.0, "complete": len(done), "deadline_s": join_deadline_s,
                   "full_median_s": med(list(done.values())) if complete else None,
                   "full_last_s": max(done.values()) if complete else None, "watch": "events",
                   "slow_agents": backend.slow_joins}
            for name, hist in backend.slow_joins.items():
                log(f"  {name} saw all {n} only after {done[name]:.2f}s; its events about the "
                    f"member(s) it saw last: {hist}")
        else:
            fig = wait_full_membership(backend, agents, start(), join_deadline_s)
            fig["watch"] = "poll"
        failed = [a.name for a, f in zip(agents[1:], futures) if f.result() is not True]
    finally:
        pool.shutdown(wait=True)
    if failed:
        log(f"warning: join requests failed on {failed}")
    fig["join_requests_failed"] = failed
    return agents, fig


def stop_agents(backend: Any, agents: list[Agent]) -> None:
    for a in agents:
        backend.forget(a)
    REAPER.kill([a.popen for a in agents])
    REAPER.procs = [p for p in REAPER.procs if p.poll() is None]


def run_one(backend: Any, n: int, args: argparse.Namespace, nft: LoopbackCounters,
            rng: random.Random) -> dict[str, Any]:
    res: dict[str, Any] = {"impl": backend.kind, "n": n, "profile": args.profile, "join_mode": args.join_mode,
                           "join_watch": args.join_watch, "loadavg_start": os.getloadavg()}
    join_deadline = max(60.0, 2.0 * n)
    trials = []
    agents: list[Agent] = []
    for trial in range(args.join_trials):
        for attempt in range(3):
            try:
                agents, fig = start_cluster(backend, n, "a", join_deadline, args.join_mode, args.join_watch)
                break
            except AgentDied as e:
                # Another program took a port we picked before the agent bound it.
                if "address already in use" not in str(e) or attempt == 2:
                    raise
                log(f"{backend.kind} N={n}: a port was taken before an agent bound it; starting again")
                REAPER.kill_all()
                backend.reset()
        trials.append(fig)
        log(f"{backend.kind} N={n} join trial {trial + 1}: ready_last={fmt(fig['ready_last_s'], 's')} "
            f"full_median={fmt(fig['full_median_s'], 's')} full_last={fmt(fig['full_last_s'], 's')} "
            f"({fig['complete']}/{n} complete)")
        if trial < args.join_trials - 1:
            stop_agents(backend, agents)
    res["join"] = trials
    seed = agents[0]
    if args.join_only:
        res["rest"], res["kills"] = {}, []
        stop_agents(backend, agents)
        return res

    # (c)+(d): at rest.
    log(f"{backend.kind} N={n}: settling {args.settle_seconds:.0f}s, then {args.rest_seconds:.0f}s at rest")
    time.sleep(args.settle_seconds)
    nft.set_ports([a.gossip_port for a in agents if a.gossip_port])
    s0 = snapshot(backend, agents, nft)
    time.sleep(args.rest_seconds)
    s1 = snapshot(backend, agents, nft)
    res["rest"] = rest_figures(s0, s1, n)
    if not nft.ok:
        res["rest"]["wire_not_measured"] = nft.why
    log(f"{backend.kind} N={n} at rest: {json.dumps(res['rest'], default=lambda x: round(x, 3))}")

    # (b): kills.
    current = list(agents)
    kills = []
    dead: list[str] = []
    deadline = args.detect_deadline
    for k in range(args.kills):
        victim = rng.choice([a for a in current if a is not seed])
        observers = [a for a in current if a is not victim]

        def kill(v: Agent = victim) -> float:
            t = time.time()
            os.kill(v.pid, signal.SIGKILL)
            return t

        found, others = backend.detect(observers, victim.name, kill, deadline, frozenset(dead))
        dead.append(victim.name)
        victim.popen.wait(timeout=10)
        backend.forget(victim)
        current.remove(victim)
        times = sorted(found.values())
        kr = {
            "victim": victim.name,
            "observers": len(observers),
            "detected": len(times),
            "first_s": times[0] if times else None,
            "median_s": med(times) if len(times) == len(observers) else None,
            "last_s": times[-1] if len(times) == len(observers) else None,
            "other_failed": others,
            "times": {k: round(v, 3) for k, v in sorted(found.items(), key=lambda kv: kv[1])},
        }
        kills.append(kr)
        log(f"{backend.kind} N={n} kill {k + 1}/{args.kills} {victim.name}: first={fmt(kr['first_s'], 's')} "
            f"median={fmt(kr['median_s'], 's')} last={fmt(kr['last_s'], 's')} "
            f"({len(times)}/{len(observers)} within {deadline:.0f}s)"
            + (f" other failed: {others}" if others else ""))
        if k == args.kills - 1:
            break
        rep = backend.spawn(f"{victim.name}r{k + 1}", join=seed.gossip_addr)
        current.append(rep)
        wait_ready(backend, [rep], 60)
        fig = wait_full_membership(backend, current, time.time(), join_deadline)
        if fig["complete"] < len(current):
            log(f"warning: after replacing {victim.name}, only {fig['complete']}/{len(current)} agents "
                f"saw everyone alive within {join_deadline:.0f}s")
        time.sleep(2.0)
    res["kills"] = kills
    stop_agents(backend, current)
    return res


def summarize(res: dict[str, Any]) -> dict[str, Any]:
    joins = res["join"]
    kills = res["kills"]
    rest = res["rest"]
    full_last = [j["full_last_s"] for j in joins]
    s: dict[str, Any] = {
        "ready_last_s": med([j["ready_last_s"] for j in joins if j["ready_last_s"] is not None]),
        "full_last_s": med([x for x in full_last if x is not None]) if all(x is not None for x in full_last) else None,
        "full_last_max_s": max(full_last) if all(x is not None for x in full_last) else None,
        "full_median_s": med([j["full_median_s"] for j in joins if j["full_median_s"] is not None]),
        "full_after_ready_s": med([j["full_last_s"] - j["ready_last_s"] for j in joins
                                   if j["full_last_s"] is not None and j["ready_last_s"] is not None]),
        "join_trials": len(joins),
        "join_incomplete": sum(1 for x in full_last if x is None),
        "kill_first_s": med([k["first_s"] for k in kills if k["first_s"] is not None]),
        "kill_median_s": med([k["median_s"] for k in kills if k["median_s"] is not None]),
        "kill_last_s": med([k["last_s"] for k in kills if k["last_s"] is not None]),
        "kill_last_max_s": max((k["last_s"] for k in kills if k["last_s"] is not None), default=None),
        "kills": len(kills),
        "kills_incomplete": sum(1 for k in kills if k["last_s"] is None),
        "false_failed_during_kills": sum(len(k["other_failed"]) for k in kills),
        "cpu_pct": rest.get("cpu_pct_median"),
        "rss_mib": rest.get("rss_mib_median"),
    }
    if "wire" in rest:
        s["wire_pps"] = rest["wire"]["pps"]
        s["wire_Bps"] = rest["wire"]["Bps"]
        s["wire_udp_pps"] = rest["wire"]["udp_pps"]
        s["wire_udp_Bps"] = rest["wire"]["udp_Bps"]
    if "own_counters" in rest:
        s["own_packets_out_ps"] = rest["own_counters"].get("packets_out")
        s["own_bytes_out_ps"] = rest["own_counters"].get("bytes_out")
    return s


ROWS = [
    ("ready_last_s", "last agent's API/RPC up (s)"),
    ("full_median_s", "median agent sees all N (s)"),
    ("full_last_s", "last agent sees all N (s)"),
    ("full_last_max_s", "  worst trial (s)"),
    ("full_after_ready_s", "  last sees all N minus last API up (s)"),
    ("kill_first_s", "kill -9: first marks failed (s)"),
    ("kill_median_s", "kill -9: median agent (s)"),
    ("kill_last_s", "kill -9: last agent (s)"),
    ("kill_last_max_s", "  worst kill, last agent (s)"),
    ("wire_pps", "packets/s per agent sent (nft, UDP+TCP)"),
    ("wire_Bps", "bytes/s per agent sent (nft, IP level)"),
    ("own_packets_out_ps", "shoal counters: UDP datagrams out/s"),
    ("own_bytes_out_ps", "shoal counters: payload bytes out/s"),
    ("cpu_pct", "idle agent CPU (% of one core, median)"),
    ("rss_mib", "idle agent RSS (MiB, median)"),
]


def print_summary(results: list[dict[str, Any]], versions: dict[str, str]) -> None:
    sizes = sorted({r["n"] for r in results})
    print()
    print("== gossip_real summary (medians; see the log lines above for every trial and kill) ==")
    print("versions: " + "; ".join(f"{k}: {v}" for k, v in versions.items()))
    for n in sizes:
        by = {r["impl"]: summarize(r) for r in results if r["n"] == n}
        impls = [i for i in ("shoal", "serf") if i in by]
        print(f"\nN={n} (profile {results[0]['profile']}, join mode {results[0].get('join_mode', 'spawn')}, "
              f"shoal watched by {results[0].get('join_watch', 'poll')})")
        header = f"  {'':44s}" + "".join(f"{i:>10s}" for i in impls)
        if len(impls) == 2:
            header += f"{'shoal/serf':>12s}"
        print(header)
        for key, label in ROWS:
            vals = [by[i].get(key) for i in impls]
            if all(v is None for v in vals):
                continue
            line = f"  {label:44s}" + "".join(f"{fmt(v):>10s}" for v in vals)
            if len(impls) == 2 and vals[0] is not None and vals[1]:
                line += f"{vals[0] / vals[1]:>11.2f}x"
            print(line)
        for i in impls:
            s = by[i]
            notes = []
            if s["join_incomplete"]:
                notes.append(f"{s['join_incomplete']}/{s['join_trials']} join trials incomplete at the deadline")
            if s["kills_incomplete"]:
                notes.append(f"{s['kills_incomplete']}/{s['kills']} kills not seen by every agent in time")
            if s["false_failed_during_kills"]:
                notes.append(f"{s['false_failed_during_kills']} other members marked failed during kills")
            if "wire_Bps" not in s and s["cpu_pct"] is not None:
                notes.append("wire traffic not measured: " + next(
                    (r["rest"].get("wire_not_measured", "") for r in results if r["impl"] == i), ""))
            if notes:
                print(f"  note ({i}): " + "; ".join(notes))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="N=10 only, 1 join trial, 3 kills, 20 s at rest")
    ap.add_argument("--sizes", help="comma list of N (default 10,30,60)")
    ap.add_argument("--impl", default="shoal,serf", help="comma list of shoal, serf")
    ap.add_argument("--profile", default="lan", choices=["lan", "local"])
    ap.add_argument("--join-trials", type=int, help="fresh-cluster starts per N (default 3)")
    ap.add_argument("--join-mode", choices=["spawn", "api"], default="spawn",
                    help="spawn: agents join as they start (t=0 at spawn); api: start all, then tell "
                         "them all to join at once (t=0 at the join requests)")
    ap.add_argument("--join-watch", choices=["poll", "events"], default="poll",
                    help="with --join-mode api, how shoal agents are watched: poll /v1/members every "
                         "~0.1 s (as Serf's RPC is), or follow each agent's /v1/events (no polling "
                         "load; each agent's own timestamps). Serf is always polled")
    ap.add_argument("--join-only", action="store_true", help="measure only the time to full membership")
    ap.add_argument("--kills", type=int, help="kill -9 rounds per N (default 5)")
    ap.add_argument("--rest-seconds", type=float, help="at-rest window (default 30)")
    ap.add_argument("--settle-seconds", type=float, default=10.0)
    ap.add_argument("--detect-deadline", type=float, default=90.0, help="seconds to wait for every agent to see a kill")
    ap.add_argument("--seed", type=int, default=1, help="random seed for the choice of victims")
    ap.add_argument("--json", help="write all raw results here")
    ap.add_argument("--keep-logs", help="keep agents' logs and state in this directory")
    ap.add_argument("--src", default="HEAD",
                    help="shoal code to run: a git revision, exported with git archive (default HEAD), "
                         "or 'worktree' for the working tree as it is")
    args = ap.parse_args()
    # --quick changes the defaults; explicit options still win.
    defaults = {"sizes": "10,30,60", "join_trials": 3, "kills": 5, "rest_seconds": 30.0}
    if args.quick:
        defaults = {"sizes": "10", "join_trials": 1, "kills": 3, "rest_seconds": 20.0}
    for k, v in defaults.items():
        if getattr(args, k) is None:
            setattr(args, k, v)
    sizes = [int(x) for x in args.sizes.split(",") if x.strip()]
    impls = [x.strip() for x in args.impl.split(",") if x.strip()]

    install_cleanup()
    if args.keep_logs:
        workdir = Path(args.keep_logs).resolve()
        workdir.mkdir(parents=True, exist_ok=True)
    else:
        workdir = Path(tempfile.mkdtemp(prefix="shoal-bench-"))
        REAPER.add_cleanup(f"temp dir {workdir}", lambda: shutil.rmtree(workdir, ignore_errors=True))
    rng = random.Random(args.seed)
    nft = LoopbackCounters()
    if not nft.ok:
        log(f"wire-level traffic will not be measured: {nft.why}")
    backends: dict[str, Any] = {}
    for i in impls:
        if i == "shoal":
            src = None if args.src == "worktree" else export_source(args.src, workdir / "src")
            backends[i] = ShoalBackend(workdir, args.profile, src=src)
        elif i == "serf":
            if SERF is None:
                log("serf is not installed: Serf is not measured (apt-get install serf)")
                continue
            backends[i] = SerfBackend(workdir, args.profile)
        else:
            ap.error(f"unknown implementation {i!r}")
    versions = {k: b.version() for k, b in backends.items()}
    log(f"versions: {versions}; sizes {sizes}; profile {args.profile}; workdir {workdir}; "
        f"{os.cpu_count()} cores, loadavg {os.getloadavg()}")
    results: list[dict[str, Any]] = []
    t_start = time.time()
    rc = 0
    try:
        for n in sizes:
            for kind, b in backends.items():
                try:
                    results.append(run_one(b, n, args, nft, rng))
                except AgentDied as e:
                    log(f"{kind} N={n}: an agent died; this size is not measured for {kind}: {e}")
                    rc = 1
                finally:
                    REAPER.kill_all()
                    b.reset()
    except KeyboardInterrupt as e:
        log(f"interrupted ({e}); cleaning up")
        rc = 130
    finally:
        if args.json:
            Path(args.json).write_text(json.dumps({"args": vars(args), "versions": versions,
                                                   "results": results}, indent=1, default=str))
        REAPER.cleanup()
    if results:
        print_summary(results, versions)
    print(f"\ntotal wall time {time.time() - t_start:.0f}s")
    return rc


if __name__ == "__main__":
    sys.exit(main())
