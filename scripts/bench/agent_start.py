#!/usr/bin/env python3
"""How fast a shoal agent starts: CPU to ready-to-gossip, `shoal --help`, 60 at once.

    python scripts/bench/agent_start.py [--runs 7] [--at-once 60] [--skip-at-once]
        [--src REV|worktree] [--json OUT]

(a) ready to gossip: one agent (`python -m node.cli agent`, --runtime (fake),
    profile local, 127.0.0.1) is started `--runs` times, one at a time, on a
    UDP port of ours; from its spawn the script sends it a SWIM ping every
    ~2 ms and, at the first ack, reads the CPU time the process has used so
    far (user + system of all its threads, from /proc/PID/task/*/schedstat,
    nanosecond resolution).  Also kept: the wall time to that ack, and CPU and
    wall when `agent.json` appears (the API is up too: what tests and scripts
    wait for).  Printed as medians.
(b) `shoal --help` and `shoal job --help`: CPU (user + system, from wait4) of
    the whole process, median of `--runs`.
(c) `--at-once` agents started at once (default 60): a seed is started and
    waited for, then the other N-1 are spawned together, each joining the
    seed (t=0: the first of those spawns).  `--watch events` (the default):
    once an agent has written agent.json, its /v1/events stream is opened
    with its history (each record has the agent's own timestamp), and its
    view is followed until it holds all N; nothing is polled.  `--watch
    poll`: every agent's /v1/members is polled every ~0.1 s until it lists
    all N alive, as gossip_real.py does: 60 Python agents answering ten
    requests a second each is itself a load of the 2 cores, so this figure
    is the pessimistic one.  Printed: when the last agent wrote agent.json
    (events) or answered its API (poll), and when the last agent saw all N.
    Takes about a minute at N=60 on 2 cores.

Python bytecode: the agents run with bytecode caching on (a private cache
directory, PYTHONPYCACHEPREFIX, filled by one warm-up run that is not
counted), as an installed package has; PYTHONDONTWRITEBYTECODE in the
environment would otherwise make every start compile every module.

The agents run `git archive` of --src (default HEAD) unless --src worktree.
Every process is started by this script in its own session and killed by PID
(SIGKILL) at the end or on SIGINT/SIGTERM; the temporary directory is removed.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # gossip, for the ping
import gossip_real as gr  # noqa: E402 - the shared agent machinery of the benchmarks


def task_cpu_s(pid: int) -> float | None:
    """CPU seconds used so far by every thread of `pid` (schedstat: ns)."""
    total = 0
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{task}/schedstat") as f:
                total += int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return None
    return total / 1e9


def ping_packet(seq: int) -> bytes:
    from gossip.messages import Ping
    from gossip.packet import seal_packet
    from gossip.wire import encode

    return seal_packet(encode(Ping(seq, "")), label=b"", keyring=None, crc=False, compress=False)


def one_start(src: Path, workdir: Path, i: int, env: dict[str, str], extra: tuple[str, ...] = ()) -> dict[str, float]:
    port = gr.free_port()
    state = workdir / f"start-{i}"
    state.mkdir()
    argv = [sys.executable, "-m", "node.cli", "agent", "--name", f"start{i}", "--bind", f"127.0.0.1:{port}",
            "--api", "127.0.0.1:0", "--profile", "local", "--state-dir", str(state), "--log-level", "WARNING",
            *extra]
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(0.002)
    t0 = time.monotonic()
    p = gr._popen(argv, workdir / f"start-{i}.log", src, env)
    out: dict[str, float] = {}
    seq = 0
    try:
        deadline = t0 + 30
        while "gossip_cpu_s" not in out:
            if time.monotonic() > deadline or p.poll() is not None:
                raise RuntimeError(f"agent did not answer a ping (rc {p.poll()}): "
                                   f"{(workdir / f'start-{i}.log').read_text()[-2000:]}")
            seq += 1
            sock.sendto(ping_packet(seq), ("127.0.0.1", port))
            try:
                sock.recv(2048)
            except (TimeoutError, ConnectionRefusedError):
                continue
            cpu = task_cpu_s(p.pid)
            assert cpu is not None
            out["gossip_cpu_s"], out["gossip_wall_s"] = cpu, time.monotonic() - t0
        while not (state / "agent.json").exists():
            if time.monotonic() > deadline or p.poll() is not None:
                raise RuntimeError(f"agent did not write agent.json (rc {p.poll()})")
            time.sleep(0.002)
        cpu = task_cpu_s(p.pid)
        assert cpu is not None
        out["api_cpu_s"], out["api_wall_s"] = cpu, time.monotonic() - t0
    finally:
        sock.close()
        gr.REAPER.kill([p])
    return out


def command_cpu_s(src: Path, env: dict[str, str], *args: str) -> float:
    p = subprocess.Popen([sys.executable, "-m", "node.cli", *args], cwd=src, env=env,
                         stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    gr.REAPER.add_proc(p)
    _, status, usage = os.wait4(p.pid, 0)
    p.returncode = os.waitstatus_to_exitcode(status)
    if p.returncode != 0:
        raise RuntimeError(f"shoal {' '.join(args)} exited {p.returncode}")
    return usage.ru_utime + usage.ru_stime


def watch_spawned(backend: gr.ShoalBackend, agents: list[gr.Agent], t0: float,
                  deadline_s: float) -> dict[str, Any]:
    """Follow each agent's own member events (history included) from the
    moment it is up until its view holds all of `agents` (see (c))."""
    import selectors

    expected = {a.name for a in agents}
    views: dict[str, set[str]] = {a.name: {a.name} for a in agents}
    ready: dict[str, float] = {}
    done: dict[str, float] = {}
    streams: dict[str, gr.ShoalEvents] = {}
    sel = selectors.DefaultSelector()
    try:
        while time.time() < t0 + deadline_s and len(done) < len(agents):
            for a in agents:
                if a.name not in streams and backend.poll_ready(a):
                    assert a.control is not None
                    ready[a.name] = time.time() - t0
                    streams[a.name] = st = gr.ShoalEvents(a.control[0], a.control[1], history=True)
                    sel.register(st, selectors.EVENT_READ, a.name)
            for key, _ in sel.select(0.05):
                name, st = key.data, streams[key.data]
                for rec in st.feed():
                    who = (rec.get("member") or {}).get("name")
                    if rec.get("event") in ("member_joined", "member_updated"):
                        views[name].add(who)
                    elif rec.get("event") in ("member_suspected", "member_failed", "member_left"):
                        views[name].discard(who)
                    if name not in done and expected <= views[name]:
                        done[name] = float(rec["time"]) - t0
                if st.closed or name in done:
                    sel.unregister(st)
    finally:
        sel.close()
        for st in streams.values():
            st.close()
    complete = len(done) == len(agents)
    cpu = [task_cpu_s(a.pid) for a in agents]
    return {"n": len(agents), "watch": "events",
            "agents_cpu_s": sum(c for c in cpu if c is not None), "deadline_s": deadline_s, "complete": len(done),
            "ready_last_s": max(ready.values()) if len(ready) == len(agents) else None,
            "full_median_s": statistics.median(done.values()) if complete else None,
            "full_last_s": max(done.values()) if complete else None}


def at_once(backend: gr.ShoalBackend, n: int, watch: str, deadline_s: float) -> dict[str, Any]:
    if watch == "poll":
        agents, fig = gr.start_cluster(backend, n, "at", deadline_s)
        fig["watch"] = "poll"
    else:
        names = [f"at{i:02d}" for i in range(n)]
        seed = backend.spawn(names[0])
        gr.wait_ready(backend, [seed], 60)
        t0 = time.time()
        agents = [seed] + [backend.spawn(nm, join=seed.gossip_addr) for nm in names[1:]]
        fig = watch_spawned(backend, agents, t0, deadline_s)
    gr.stop_agents(backend, agents)
    backend.reset()
    return fig


def med(xs: list[float]) -> float:
    return statistics.median(xs)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=7, help="starts (and --help runs) to take the median of")
    ap.add_argument("--at-once", type=int, default=60, help="agents started at once (default 60)")
    ap.add_argument("--skip-at-once", action="store_true")
    ap.add_argument("--runtime", choices=["fake", "docker"], default="fake",
                    help="the runtime of the agents of (a) (docker: a dockerd must answer)")
    ap.add_argument("--watch", choices=["events", "poll"], default="events",
                    help="how the agents started at once are watched (see (c))")
    ap.add_argument("--deadline", type=float, default=120.0, help="seconds to wait for full membership")
    ap.add_argument("--src", default="HEAD", help="git revision to export, or 'worktree'")
    ap.add_argument("--json", help="write the raw figures here")
    args = ap.parse_args()

    gr.install_cleanup()
    workdir = Path(tempfile.mkdtemp(prefix="shoal-start-"))
    gr.REAPER.add_cleanup(f"temp dir {workdir}", lambda: shutil.rmtree(workdir, ignore_errors=True))
    if args.src == "worktree":
        src, desc = gr.REPO, gr.describe_worktree()
    else:
        src, desc = gr.export_source(args.src, workdir / "src")
    # Bytecode cached in a directory of ours (see the docstring); the agents
    # that gossip_real spawns inherit this environment.
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
    os.environ["PYTHONPYCACHEPREFIX"] = str(workdir / "pycache")
    env = {**os.environ, "PYTHONPATH": str(src)}
    gr.log(f"shoal {desc}; {os.cpu_count()} cores, loadavg {os.getloadavg()}")
    res: dict[str, Any] = {"version": desc, "loadavg_before": os.getloadavg()}
    try:
        extra = ("--runtime", args.runtime)
        one_start(src, workdir, 0, env, extra)  # warm-up: fills the bytecode cache
        command_cpu_s(src, env, "--help")
        command_cpu_s(src, env, "job", "--help")
        starts = [one_start(src, workdir, i, env, extra) for i in range(1, args.runs + 1)]
        res["starts"] = starts
        res["start"] = {k: med([s[k] for s in starts]) for k in starts[0]}
        res["help_cpu_s"] = med([command_cpu_s(src, env, "--help") for _ in range(args.runs)])
        res["job_help_cpu_s"] = med([command_cpu_s(src, env, "job", "--help") for _ in range(args.runs)])
        base = med([_bare_cpu_s(env) for _ in range(args.runs)])
        res["bare_python_cpu_s"] = base
        if not args.skip_at_once:
            backend = gr.ShoalBackend(workdir, "lan", log_level="WARNING", src=(src, desc))
            res["at_once"] = at_once(backend, args.at_once, args.watch, args.deadline)
    finally:
        gr.REAPER.cleanup()
    res["loadavg_after"] = os.getloadavg()
    s = res["start"]
    print(f"shoal {desc}, runtime {args.runtime}, {os.cpu_count()} cores, loadavg {res['loadavg_before'][0]:.1f} -> "
          f"{res['loadavg_after'][0]:.1f}; medians of {args.runs}")
    print(f"  bare interpreter (python -c pass):    {base:.3f} s CPU")
    print(f"  ready to gossip (first ack):          {s['gossip_cpu_s']:.3f} s CPU, {s['gossip_wall_s']:.3f} s wall")
    print(f"  agent.json written (API up):          {s['api_cpu_s']:.3f} s CPU, {s['api_wall_s']:.3f} s wall")
    print(f"  shoal --help:                         {res['help_cpu_s']:.3f} s CPU")
    print(f"  shoal job --help:                     {res['job_help_cpu_s']:.3f} s CPU")
    if "at_once" in res:
        f = res["at_once"]
        print(f"  {f['n']} agents at once ({f['watch']}): last was up at {gr.fmt(f['ready_last_s'], ' s')}, "
              f"last saw all {f['n']} at {gr.fmt(f['full_last_s'], ' s')} (median {gr.fmt(f['full_median_s'], ' s')}; "
              f"{f['complete']}/{f['n']} complete within {f['deadline_s']:.0f} s)")
        if "agents_cpu_s" in f:
            print(f"      CPU used by the {f['n']} agents by then: {f['agents_cpu_s']:.1f} s "
                  f"(start-up to the API serving: {f['n']} x {s['api_cpu_s']:.2f} = {f['n'] * s['api_cpu_s']:.1f} s)")
    if args.json:
        Path(args.json).write_text(json.dumps(res, indent=1, default=str))
    return 0


def _bare_cpu_s(env: dict[str, str]) -> float:
    p = subprocess.Popen([sys.executable, "-c", "pass"], env=env, stdin=subprocess.DEVNULL)
    _, _, usage = os.wait4(p.pid, 0)
    p.returncode = 0
    return usage.ru_utime + usage.ru_stime


if __name__ == "__main__":
    sys.exit(main())
