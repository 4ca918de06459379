#!/usr/bin/env python3
"""What gossip encryption costs an agent at rest: CPU and bytes sent, on vs off.

    python scripts/bench/gossip_encryption.py [--nodes 30] [--seconds 60] [--samples 3]
        [--profile lan] [--settle-seconds 10] [--keep-logs DIR]

For encryption off, then on (one key, `--encrypt`, for every agent), it
starts `--nodes` real shoal agents on 127.0.0.1 (the working tree as it is),
all joining the first, waits until every one lists all of them alive, lets
them settle, and then takes `--samples` consecutive windows of
`--seconds / --samples` each with no API polling inside a window.  Per window
and agent: CPU (user + system, psutil) as % of one core; bytes sent per
second from the agent's own counter (`shoal_bytes_out_total`: UDP + TCP
payload as handed to the socket, so with encryption the nonce, tag and
version byte are in it); and, when run as root with nft installed, the
IP-level bytes/s on `lo` (headers included).  Printed: the median over
agents of each window, and the median over windows.

Agents are started, measured and killed with gossip_real.py's helpers (its
Reaper kills every agent by PID on exit, also on Ctrl-C).
"""

from __future__ import annotations

import argparse
import base64
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from gossip_real import (  # noqa: E402
    REAPER,
    AgentDied,
    LoopbackCounters,
    ShoalBackend,
    fmt,
    install_cleanup,
    log,
    med,
    rest_figures,
    snapshot,
    start_cluster,
    stop_agents,
)


def measure(mode: str, key: str | None, args: argparse.Namespace, workdir: Path,
            nft: LoopbackCounters) -> dict[str, Any]:
    extra = ("--encrypt", key) if key else ()
    backend = ShoalBackend(workdir / mode, args.profile, extra_args=extra)
    (workdir / mode).mkdir(parents=True, exist_ok=True)
    n = args.nodes
    agents, fig = start_cluster(backend, n, "e", join_deadline_s=max(60.0, 2.0 * n))
    if fig["complete"] < n:
        raise AgentDied(f"encryption {mode}: only {fig['complete']}/{n} agents saw everyone within "
                        f"{fig['deadline_s']:.0f}s")
    log(f"encryption {mode}: {n} agents see each other (last after {fmt(fig['full_last_s'], 's')}); "
        f"settling {args.settle_seconds:.0f}s")
    time.sleep(args.settle_seconds)
    nft.set_ports([a.gossip_port for a in agents if a.gossip_port])
    window_s = args.seconds / args.samples
    snaps = [snapshot(backend, agents, nft)]
    windows = []
    for i in range(args.samples):
        time.sleep(window_s)
        snaps.append(snapshot(backend, agents, nft))
        w = rest_figures(snaps[-2], snaps[-1], n)
        dead = [a.name for a in agents if not a.alive()]
        if dead:
            raise AgentDied(f"encryption {mode}: agents exited during the measurement: {dead}")
        windows.append({
            "cpu_pct": w["cpu_pct_median"],
            "bytes_out_Bps": (w.get("own_counters") or {}).get("bytes_out"),
            "wire_Bps": (w.get("wire") or {}).get("Bps"),
            "rss_mib": w["rss_mib_median"],
        })
        log(f"encryption {mode} window {i + 1}/{args.samples} ({w['window_s']}s): "
            f"cpu {fmt(windows[-1]['cpu_pct'], '%')}, sent {fmt(windows[-1]['bytes_out_Bps'], ' B/s', 0)}, "
            f"IP level {fmt(windows[-1]['wire_Bps'], ' B/s', 0)}")
    stop_agents(backend, agents)
    backend.reset()

    def over_windows(k: str) -> float | None:
        return med([w[k] for w in windows if w[k] is not None])

    return {"mode": mode, "windows": windows, **{k: over_windows(k) for k in windows[0]}}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--nodes", type=int, default=30)
    ap.add_argument("--seconds", type=float, default=60.0, help="at-rest time measured per mode")
    ap.add_argument("--samples", type=int, default=3, help="windows the at-rest time is cut into")
    ap.add_argument("--settle-seconds", type=float, default=10.0)
    ap.add_argument("--profile", default="lan", choices=["lan", "local"])
    ap.add_argument("--keep-logs", help="keep agents' logs and state in this directory")
    args = ap.parse_args()
    if args.nodes < 2 or args.samples < 1 or args.seconds <= 0:
        ap.error("need --nodes >= 2, --samples >= 1 and --seconds > 0")

    install_cleanup()
    if args.keep_logs:
        workdir = Path(args.keep_logs).resolve()
        workdir.mkdir(parents=True, exist_ok=True)
    else:
        workdir = Path(tempfile.mkdtemp(prefix="shoal-bench-enc-"))
        REAPER.add_cleanup(f"temp dir {workdir}", lambda: shutil.rmtree(workdir, ignore_errors=True))
    nft = LoopbackCounters()
    if not nft.ok:
        log(f"IP-level traffic will not be measured: {nft.why}")
    key = base64.b64encode(os.urandom(32)).decode()
    log(f"N={args.nodes}, profile {args.profile}, {args.seconds:g}s at rest in {args.samples} windows per mode; "
        f"{os.cpu_count()} cores, loadavg {os.getloadavg()}")
    results = []
    t0 = time.time()
    try:
        for mode, k in (("off", None), ("on", key)):
            results.append(measure(mode, k, args, workdir, nft))
            REAPER.kill_all()
    except AgentDied as e:
        log(f"an agent died: {e}")
        return 1
    except KeyboardInterrupt as e:
        log(f"interrupted ({e}); cleaning up")
        return 130
    finally:
        REAPER.cleanup()

    print(f"\nGossip encryption at rest, N={args.nodes} real agents on loopback ({args.profile} profile), "
          f"median over agents per window, then median over {args.samples} windows of "
          f"{args.seconds / args.samples:g}s; loadavg at the end {os.getloadavg()[0]:.2f}\n")
    print("| encryption | CPU % of a core per agent | bytes/s sent per agent (own counter) "
          "| bytes/s per agent (IP level) | RSS MiB |")
    print("| --- | --- | --- | --- | --- |")
    for r in results:
        print(f"| {r['mode']} | {fmt(r['cpu_pct'])} | {fmt(r['bytes_out_Bps'], '', 0)} | "
              f"{fmt(r['wire_Bps'], '', 0)} | {fmt(r['rss_mib'], '', 1)} |")
    off, on = results
    for k, what in (("cpu_pct", "CPU"), ("bytes_out_Bps", "bytes sent"), ("wire_Bps", "IP-level bytes")):
        if off[k] and on[k]:
            print(f"{what}: on / off = {on[k] / off[k]:.2f}")
    for r in results:
        cpu = [fmt(w["cpu_pct"]) for w in r["windows"]]
        sent = [fmt(w["bytes_out_Bps"], "", 0) for w in r["windows"]]
        print(f"encryption {r['mode']}, per window: CPU % {' / '.join(cpu)}; bytes/s sent {' / '.join(sent)}")
    print(f"\ntotal wall time {time.time() - t0:.0f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
