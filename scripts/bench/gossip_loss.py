#!/usr/bin/env python3
"""False deaths under packet loss: N agents, each in its own network namespace.

    python scripts/bench/gossip_loss.py [--quick] [--n 30] [--loss 10,20] [--minutes 5]
        [--impl shoal,serf] [--src REV|worktree] [--json OUT] [--keep-logs DIR]

Needs root (network namespaces, nftables).  For each implementation and each
loss rate:

1. `scripts/netns up N` (with SHOAL_NETNS_PREFIX set to a name of this run, so
   nothing else's namespaces are touched) makes N namespaces on a bridge that
   lives in a namespace of its own: host I is 10.77.0.(I+1), reachable only
   from our namespaces.  The namespaces are made once and reused by every run.
2. Agent I runs inside host I (`nsenter --net=...`): gossip on
   10.77.0.(I+1):7946 with the `lan` profile, its API (shoal) or RPC (Serf) on
   127.0.0.1 inside the namespace.  Agents 2..N join agent 1; the run waits
   until every agent lists all N alive.
3. This script reaches every API from sockets created inside the agent's
   namespace (setns in a short-lived thread), over that namespace's loopback,
   which the loss rule exempts: observing does not suffer the loss.
   - shoal: each agent's /v1/events NDJSON stream (every member_failed and
     member_suspected with the agent's own timestamp), plus a members poll of
     every agent every 2 s as a cross-check;
   - Serf: `members` over RPC every 0.5 s (a member seen "failed" is a false
     death) plus the RPC event stream of member-failed events (Serf coalesces
     member events, so the poll is the main source).
4. `scripts/netns loss PCT` adds `numgen random mod 100 < PCT counter drop` on
   the input hook of every host namespace; it stays for --minutes.  Every
   agent is alive all along, so any agent marking any member failed is a
   false death.
5. The loss rule is removed, and the run checks that every agent again lists
   all N alive within 60 s.

Printed per run: false deaths (failed events / distinct observer->member
pairs / distinct members), suspicions (shoal), packets the rule dropped, and
whether everyone saw everyone at the end.  --quick: N=10, 10% loss, 1 minute,
shoal only.

Clean-up, also on failure and SIGINT/SIGTERM/SIGHUP: every agent is killed by
PID, then `scripts/netns down` for this run's prefix kills anything left
inside our namespaces and deletes them.
"""

from __future__ import annotations

import argparse
import json
import os
import selectors
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from gossip_real import (  # noqa: E402
    REAPER,
    REPO,
    SERF,
    Agent,
    AgentDied,
    SerfBackend,
    SerfRPC,
    ShoalBackend,
    ShoalEvents,
    export_source,
    install_cleanup,
    log,
    wait_full_membership,
    wait_ready,
)

NETNS_SCRIPT = REPO / "scripts" / "netns"
GOSSIP_PORT = 7946
SHOAL_API = ("127.0.0.1", 7980)
SERF_RPC = ("127.0.0.1", 7373)


class Namespaces:
    """Our N hosts, through scripts/netns with a prefix of this run."""

    def __init__(self, n: int, prefix: str) -> None:
        self.n = n
        self.prefix = prefix
        self.env = {**os.environ, "SHOAL_NETNS_PREFIX": prefix}

    def _run(self, *args: str, timeout: float = 300) -> str:
        r = subprocess.run(["bash", str(NETNS_SCRIPT), *args], env=self.env, capture_output=True,
                           text=True, timeout=timeout)
        if r.returncode != 0:
            raise RuntimeError(f"scripts/netns {' '.join(args)} failed: {r.stderr.strip()}")
        return r.stdout

    def up(self) -> None:
        REAPER.add_cleanup(f"namespaces {self.prefix}-*", self.down)
        self._run("up", str(self.n))

    def loss(self, pct: int) -> None:
        self._run("loss", str(pct))

    def down(self) -> None:
        self._run("down")

    def path(self, i: int) -> str:
        return f"/run/netns/{self.prefix}-ns-{i}"

    @staticmethod
    def addr(i: int) -> str:
        return f"10.77.0.{i + 1}"

    def dropped(self) -> int:
        """Packets dropped so far by the loss rules of all hosts."""
        total = 0
        for i in range(1, self.n + 1):
            r = subprocess.run(["nsenter", f"--net={self.path(i)}", "--", "nft", "-j", "list", "table",
                                "inet", "shoal_loss"], capture_output=True, text=True, timeout=30)
            if r.returncode != 0:
                continue
            for item in json.loads(r.stdout)["nftables"]:
                for e in (item.get("rule") or {}).get("expr", []):
                    if "counter" in e:
                        total += e["counter"]["packets"]
        return total


def start_cluster(backend: Any, ns: Namespaces) -> tuple[list[Agent], dict[str, Any]]:
    n = ns.n
    names = [f"n{i:02d}" for i in range(1, n + 1)]

    def spawn(i: int, join: str | None) -> Agent:
        host = ns.addr(i)
        if backend.kind == "shoal":
            return backend.spawn(names[i - 1], join, bind=f"{host}:{GOSSIP_PORT}",
                                 api=f"{SHOAL_API[0]}:{SHOAL_API[1]}", netns=ns.path(i))
        return backend.spawn(names[i - 1], join, bind_host=host, port=GOSSIP_PORT, rpc=SERF_RPC,
                             netns=ns.path(i))

    seed = spawn(1, None)
    wait_ready(backend, [seed], 60)
    t0 = time.time()
    agents = [seed] + [spawn(i, f"{ns.addr(1)}:{GOSSIP_PORT}") for i in range(2, n + 1)]
    fig = wait_full_membership(backend, agents, t0, max(120.0, 4.0 * n))
    return agents, fig


class Watch:
    """Collects every sign of a false death from all agents."""

    def __init__(self, backend: Any, agents: list[Agent]) -> None:
        self.backend = backend
        self.agents = agents
        self.sel = selectors.DefaultSelector()
        self.streams: dict[str, Any] = {}
        self.last_seq: dict[str, int] = {}
        self.records: list[dict[str, Any]] = []  # {t, observer, event, member, source}
        self.poll_status: dict[tuple[str, str], str] = {}
        self.poll_episodes: list[dict[str, Any]] = []
        self.stream_drops = 0
        self.polls = 0
        self.poll_failures = 0

    # -- streams -----------------------------------------------------------------
    def open_streams(self) -> None:
        for a in self.agents:
            self._open(a)

    def _open(self, a: Agent) -> None:
        assert a.control is not None
        try:
            if self.backend.kind == "shoal":
                s: Any = ShoalEvents(a.control[0], a.control[1], a.netns, history=True)
            else:
                s = SerfRPC(a.control[0], a.control[1], a.netns)
                s.start_stream("member-failed")
        except (OSError, ConnectionError) as e:
            log(f"warning: cannot open the event stream of {a.name}: {e}")
            return
        self.streams[a.name] = s
        self.sel.register(s, selectors.EVENT_READ, a)

    def pump(self, timeout: float) -> None:
        for key, _ in self.sel.select(timeout):
            a: Agent = key.data
            s = self.streams[a.name]
            if self.backend.kind == "shoal":
                recs, closed = s.feed(), s.closed
                for r in recs:
                    seq = int(r.get("seq", 0))
                    if seq <= self.last_seq.get(a.name, 0):
                        continue  # history replayed after a reconnect
                    self.last_seq[a.name] = seq
                    ev = r.get("event", "")
                    if ev in ("member_failed", "member_suspected", "member_left", "member_joined"):
                        member = (r.get("member") or {}).get("name")
                        self.records.append({"t": float(r["time"]), "observer": a.name, "event": ev,
                                             "member": member, "source": "events"})
            else:
                bodies, closed = s.feed_stream()
                now = time.time()
                for b in bodies:
                    for m in b.get("Members") or []:
                        self.records.append({"t": now, "observer": a.name, "event": "member_failed",
                                             "member": m.get("Name"), "source": "rpc-stream"})
            if closed:
                self.sel.unregister(s)
                s.close()
                del self.streams[a.name]
                if a.alive():
                    self.stream_drops += 1
                    self._open(a)  # shoal: history=1 and the seq filter fill the gap

    # -- polling ------------------------------------------------------------------
    def poll(self) -> None:
        polls = self.backend.members_many(self.agents)
        self.polls += 1
        self.poll_failures += len(self.agents) - len(polls)
        for observer, p in polls.items():
            for member, status in p.members.items():
                key = (observer, member)
                prev = self.poll_status.get(key)
                if status == "failed" and prev != "failed":
                    self.poll_episodes.append({"t": p.t_recv, "observer": observer, "member": member})
                self.poll_status[key] = status

    def close(self) -> None:
        for s in self.streams.values():
            s.close()
        self.sel.close()


def count(watch: Watch, t_from: float, t_to: float, names: set[str]) -> dict[str, Any]:
    failed = [r for r in watch.records if r["event"] == "member_failed" and t_from <= r["t"] < t_to
              and r["member"] in names]
    suspected = [r for r in watch.records if r["event"] == "member_suspected" and t_from <= r["t"] < t_to]
    left = [r for r in watch.records if r["event"] == "member_left" and t_from <= r["t"] < t_to]
    episodes = [e for e in watch.poll_episodes if t_from <= e["t"] < t_to and e["member"] in names]
    pairs = {(r["observer"], r["member"]) for r in failed} | {(e["observer"], e["member"]) for e in episodes}
    return {
        "failed_events": len(failed),
        "failed_seen_by_poll": len(episodes),
        "false_death_pairs": len(pairs),
        "false_dead_members": sorted({m for _, m in pairs}),
        "suspicions": len(suspected),
        "left_events": len(left),
    }


def run_one(backend: Any, ns: Namespaces, pct: int, args: argparse.Namespace) -> dict[str, Any]:
    res: dict[str, Any] = {"impl": backend.kind, "n": ns.n, "loss_pct": pct, "minutes": args.minutes,
                           "loadavg_start": os.getloadavg()}
    ns.loss(0)
    agents, fig = start_cluster(backend, ns)
    res["join"] = fig
    log(f"{backend.kind} N={ns.n}: {fig['complete']}/{ns.n} agents saw all alive "
        f"(last after {fig['full_last_s']}s)")
    if fig["complete"] < ns.n:
        res["error"] = "the cluster did not reach full membership before the loss; not measured"
        backend_stop(backend, agents)
        return res
    names = {a.name for a in agents}
    watch = Watch(backend, agents)
    try:
        watch.open_streams()
        t_settle = time.time() + args.settle_seconds
        while time.time() < t_settle:
            watch.pump(0.2)
        poll_every = 2.0 if backend.kind == "shoal" else 0.5
        dropped0 = ns.dropped()
        ns.loss(pct)
        t_loss = time.time()
        t_end = t_loss + args.minutes * 60
        log(f"{backend.kind}: {pct}% loss on all {ns.n} hosts for {args.minutes:g} min")
        next_poll = next_report = time.time()
        while time.time() < t_end:
            watch.pump(0.1)
            now = time.time()
            if now >= next_poll:
                watch.poll()
                next_poll = now + poll_every
            if now >= next_report:
                c = count(watch, t_loss, now + 1, names)
                log(f"  {backend.kind} {pct}% t={now - t_loss:5.0f}s: false deaths {c['false_death_pairs']} "
                    f"(events {c['failed_events']}, polls {c['failed_seen_by_poll']}), "
                    f"suspicions {c['suspicions']}")
                next_report = now + 30
            for a in agents:
                if not a.alive():
                    raise AgentDied(f"{a.kind} agent {a.name} exited with {a.popen.returncode}:\n{a.log_tail()}")
        dropped = ns.dropped() - dropped0
        ns.loss(0)
        t_clear = time.time()
        res["during_loss"] = count(watch, t_loss, t_clear, names)
        res["dropped_packets"] = dropped
        res["dropped_per_s"] = dropped / (t_clear - t_loss)
        res["observed_s"] = round(t_clear - t_loss, 1)
        # Recovery: everyone sees everyone alive again.
        rec = wait_full_membership(backend, agents, t_clear, 60.0, poll_s=0.5)
        watch.pump(0.5)
        res["after_loss"] = count(watch, t_clear, time.time() + 1, names)
        res["recovered_all_alive_s"] = rec["full_last_s"]
        res["failed_records"] = [r for r in watch.records if r["event"] == "member_failed"]
        res["poll_episodes"] = watch.poll_episodes
        res["stream_reconnects"] = watch.stream_drops
        res["poll_rounds"] = watch.polls
        res["poll_failures"] = watch.poll_failures
    finally:
        watch.close()
        backend_stop(backend, agents)
    d = res["during_loss"]
    log(f"{backend.kind} {pct}% done: false deaths {d['false_death_pairs']} "
        f"(members {d['false_dead_members']}), suspicions {d['suspicions']}, dropped {res['dropped_packets']} "
        f"packets ({res['dropped_per_s']:.1f}/s); all alive again after {res['recovered_all_alive_s']}s")
    return res


def backend_stop(backend: Any, agents: list[Agent]) -> None:
    backend.reset()
    REAPER.kill([a.popen for a in agents])
    REAPER.procs = [p for p in REAPER.procs if p.poll() is None]


def print_summary(results: list[dict[str, Any]], versions: dict[str, str]) -> None:
    print()
    print("== gossip_loss summary ==")
    print("versions: " + "; ".join(f"{k}: {v}" for k, v in versions.items()))
    hdr = (f"{'impl':6s} {'N':>3s} {'loss':>5s} {'min':>5s} {'false deaths':>13s} {'events':>7s} "
           f"{'polls':>6s} {'members':>8s} {'suspicions':>11s} {'dropped/s':>10s} {'all alive after':>16s}")
    print(hdr)
    for r in results:
        if "during_loss" not in r:
            print(f"{r['impl']:6s} {r['n']:>3d} {r['loss_pct']:>4d}% {'':>5s} not measured: {r.get('error', '?')}")
            continue
        d = r["during_loss"]
        rec = r["recovered_all_alive_s"]
        print(f"{r['impl']:6s} {r['n']:>3d} {r['loss_pct']:>4d}% {r['observed_s'] / 60:>5.1f} "
              f"{d['false_death_pairs']:>13d} {d['failed_events']:>7d} {d['failed_seen_by_poll']:>6d} "
              f"{len(d['false_dead_members']):>8d} "
              f"{(d['suspicions'] if r['impl'] == 'shoal' else 'n/a'):>11} {r['dropped_per_s']:>10.1f} "
              f"{('%.1fs' % rec) if rec is not None else 'NOT within 60s':>16s}")
    print("false deaths = distinct (observer, member) pairs where a live member was marked failed, "
          "from events or polls; members = distinct members marked failed by anyone")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="N=10, 10%% loss, 1 minute, shoal only")
    ap.add_argument("--n", type=int, help="agents (default 30)")
    ap.add_argument("--loss", help="comma list of loss percentages (default 10,20)")
    ap.add_argument("--minutes", type=float, help="minutes under loss per run (default 5)")
    ap.add_argument("--impl", help="comma list of shoal, serf (default both)")
    ap.add_argument("--settle-seconds", type=float, default=10.0)
    ap.add_argument("--json", help="write all raw results (and every member_failed record) here")
    ap.add_argument("--keep-logs", help="keep agents' logs and state in this directory")
    ap.add_argument("--src", default="HEAD",
                    help="shoal code to run: a git revision (exported with git archive) or 'worktree'")
    args = ap.parse_args()
    # --quick changes the defaults; explicit options still win.
    defaults = {"n": 30, "loss": "10,20", "minutes": 5.0, "impl": "shoal,serf"}
    if args.quick:
        defaults = {"n": 10, "loss": "10", "minutes": 1.0, "impl": "shoal"}
    for k, v in defaults.items():
        if getattr(args, k) is None:
            setattr(args, k, v)
    losses = [int(x) for x in args.loss.split(",") if x.strip()]
    impls = [x.strip() for x in args.impl.split(",") if x.strip()]
    if os.geteuid() != 0:
        print("gossip_loss.py needs root (network namespaces and nftables)", file=sys.stderr)
        return 2
    if not 1 <= args.n <= 250:
        ap.error("--n must be 1..250")

    install_cleanup()
    if args.keep_logs:
        workdir = Path(args.keep_logs).resolve()
        workdir.mkdir(parents=True, exist_ok=True)
    else:
        workdir = Path(tempfile.mkdtemp(prefix="shoal-bench-loss-"))
        REAPER.add_cleanup(f"temp dir {workdir}", lambda: shutil.rmtree(workdir, ignore_errors=True))
    backends: dict[str, Any] = {}
    for i in impls:
        if i == "shoal":
            src = None if args.src == "worktree" else export_source(args.src, workdir / "src")
            backends[i] = ShoalBackend(workdir, "lan", src=src)
        elif i == "serf":
            if SERF is None:
                log("serf is not installed: Serf is not measured (apt-get install serf)")
                continue
            backends[i] = SerfBackend(workdir, "lan")
        else:
            ap.error(f"unknown implementation {i!r}")
    versions = {k: b.version() for k, b in backends.items()}
    ns = Namespaces(args.n, f"sbench{os.getpid()}")
    log(f"versions: {versions}; N={args.n}; loss {losses}%; {args.minutes:g} min each; namespaces "
        f"{ns.prefix}-*; loadavg {os.getloadavg()}")
    results: list[dict[str, Any]] = []
    t_start = time.time()
    rc = 0
    try:
        ns.up()
        for pct in losses:
            for kind, b in backends.items():
                try:
                    results.append(run_one(b, ns, pct, args))
                except AgentDied as e:
                    log(f"{kind} {pct}%: an agent died; not measured: {e}")
                    results.append({"impl": kind, "n": args.n, "loss_pct": pct, "error": f"agent died: {e}"})
                    rc = 1
                finally:
                    b.reset()
                    REAPER.kill_all()
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
