#!/usr/bin/env python3
"""What an idle shoal agent costs: resident memory and CPU, beside Serf.

    python scripts/bench/agent_footprint.py [--agents 3] [--window 60] [--settle 10]
        [--runtime fake|docker] [--docker-host URL] [--encrypt] [--containers 100]
        [--impl shoal,serf] [--src REV|worktree] [--json OUT]

For each implementation (shoal, and Debian's `serf` when installed; the same
run, one after the other) `--agents` real agents are started on 127.0.0.1
(profile lan) and joined (scripts/bench/gossip_real.py's machinery: the seed,
then the others at once, until every one lists all alive).  After `--settle`
seconds, two snapshots `--window` seconds apart, with no API or RPC request
in between, give each agent's CPU use (user + system, % of one core) and its
resident memory (RSS, and USS: the pages only it has); printed as the median
and the largest over the agents.

--runtime docker runs shoal with the Docker runtime (a dockerd must answer at
--docker-host or $SHOAL_DOCKER_HOST, e.g. one from scripts/docker-up).
--encrypt gives every agent (shoal and Serf) the same gossip key.
--containers N then submits a job of N replicas per agent and measures the
agents' memory and CPU again (the same window) once every replica is placed (fake runtime: nothing
runs, each agent records its containers) or running (docker runtime:
`sleep` in --image, network none): the footprint of N containers.  With
docker the job is stopped afterwards and the script waits until the agents
have removed its containers; any still there are removed by their
`shoal.node` label (only the agents of this run).

Bytecode is cached in a private directory (as installed packages have it),
see scripts/bench/agent_start.py.  Every process is started by this script
and killed by PID at the end; the temporary directory is removed.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent))
import gossip_real as gr  # noqa: E402 - the shared agent machinery of the benchmarks


def sample(agents: list[gr.Agent]) -> dict[str, dict[str, float]]:
    out: dict[str, dict[str, float]] = {}
    for a in agents:
        try:
            p = psutil.Process(a.pid)
            ct = p.cpu_times()
            mem = p.memory_full_info()
        except psutil.Error:
            continue
        out[a.name] = {"t": time.monotonic(), "cpu_s": ct.user + ct.system,
                       "rss_mib": mem.rss / 2**20, "uss_mib": mem.uss / 2**20}
    return out


def idle_figures(backend: Any, agents: list[gr.Agent], settle_s: float, window_s: float) -> dict[str, Any]:
    time.sleep(settle_s)
    s0 = sample(agents)
    time.sleep(window_s)
    s1 = sample(agents)
    cpu = [(s1[k]["cpu_s"] - s0[k]["cpu_s"]) / (s1[k]["t"] - s0[k]["t"]) * 100 for k in s1 if k in s0]
    rss = [v["rss_mib"] for v in s1.values()]
    uss = [v["uss_mib"] for v in s1.values()]
    return {"window_s": window_s, "cpu_pct_median": statistics.median(cpu), "cpu_pct_max": max(cpu),
            "rss_mib_median": statistics.median(rss), "rss_mib_max": max(rss),
            "uss_mib_median": statistics.median(uss)}


def place_containers(backend: gr.ShoalBackend, agents: list[gr.Agent], replicas: int, image: str,
                     until: str, deadline_s: float = 300.0) -> float:
    """Submit one job of `replicas` replicas; seconds until all are `until`
    (placed, or running)."""
    seed = agents[0]
    # 10m: the smallest CPU limit the kernel takes as a CFS quota (1 ms per 100 ms);
    # with 1m every `docker start` failed ("cpu.cfs_quota_us: invalid argument").
    spec = {"name": "footprint", "image": image, "command": ["sleep", "3600"], "network": "none",
            "cpu": "10m", "memory": "6MiB", "replicas": replicas}
    assert seed.control is not None
    conn = gr.NSHTTPConnection(seed.control[0], seed.control[1], timeout=30.0)
    conn.request("POST", "/v1/jobs", body=json.dumps(spec), headers={"Content-Type": "application/json"})
    r = conn.getresponse()
    body = r.read()
    conn.close()
    if r.status != 201:
        raise RuntimeError(f"job submission failed: HTTP {r.status} {body[:300]!r}")
    t0 = time.monotonic()
    backend.forget(seed)  # its kept-alive connection may have timed out
    while time.monotonic() - t0 < deadline_s:
        got = backend.get(seed, "/v1/jobs/footprint")
        if got is not None and json.loads(got).get(until) == replicas:
            return time.monotonic() - t0
        time.sleep(0.5)
    raise RuntimeError(f"not all {replicas} replicas {until} within {deadline_s:.0f} s")


def remove_containers(backend: gr.ShoalBackend, agents: list[gr.Agent], deadline_s: float = 120.0) -> None:
    """Stop the job, wait until no agent lists a container, then remove by
    label whatever is left of these agents' containers."""
    seed = agents[0]
    assert seed.control is not None
    try:
        conn = gr.NSHTTPConnection(seed.control[0], seed.control[1], timeout=30.0)
        conn.request("DELETE", "/v1/jobs/footprint")
        conn.getresponse().read()
        conn.close()
        t0 = time.monotonic()
        while time.monotonic() - t0 < deadline_s:
            rows = []
            for a in agents:
                backend.forget(a)
                got = backend.get(a, "/v1/containers")
                rows += json.loads(got).get("containers", []) if got else [None]
            if not rows:
                break
            time.sleep(1.0)
    finally:
        for a in agents:
            ids = subprocess.run(["docker", "ps", "-aq", "--filter", f"label=shoal.node={a.name}"],
                                 capture_output=True, text=True, timeout=60).stdout.split()
            if ids:
                gr.log(f"removing {len(ids)} containers left by {a.name}")
                subprocess.run(["docker", "rm", "-f", *ids], capture_output=True, timeout=300)


def warm_up(backend: gr.ShoalBackend) -> None:
    """Start and stop one agent (scraped once) so that the bytecode cache is
    full: else the first agent measured would compile every module, and keep
    the memory that took."""
    a = backend.spawn("warmup")
    gr.wait_ready(backend, [a], 60)
    backend.get(a, "/v1/metrics")
    gr.stop_agents(backend, [a])
    backend.reset()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--agents", type=int, default=3)
    ap.add_argument("--window", type=float, default=60.0, help="seconds between the two snapshots")
    ap.add_argument("--settle", type=float, default=10.0, help="seconds after full membership before the first")
    ap.add_argument("--runtime", choices=["fake", "docker"], default="fake")
    ap.add_argument("--docker-host", help="Docker engine URL for --runtime docker")
    ap.add_argument("--encrypt", action="store_true", help="gossip with a key (both implementations)")
    ap.add_argument("--containers", type=int, default=0, help="then place N replicas per agent and measure again")
    ap.add_argument("--image", default="shoal-demo:latest",
                    help="image of those replicas (docker: must be local; it runs `sleep 3600`)")
    ap.add_argument("--impl", default="shoal,serf")
    ap.add_argument("--src", default="HEAD", help="git revision to export, or 'worktree'")
    ap.add_argument("--json", help="write the raw figures here")
    args = ap.parse_args()

    gr.install_cleanup()
    workdir = Path(tempfile.mkdtemp(prefix="shoal-footprint-"))
    gr.REAPER.add_cleanup(f"temp dir {workdir}", lambda: shutil.rmtree(workdir, ignore_errors=True))
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
    os.environ["PYTHONPYCACHEPREFIX"] = str(workdir / "pycache")
    key = base64.b64encode(os.urandom(32)).decode() if args.encrypt else None
    impls = [x.strip() for x in args.impl.split(",") if x.strip()]
    results: dict[str, Any] = {"args": vars(args), "loadavg_before": os.getloadavg()}
    try:
        for impl in impls:
            if impl == "shoal":
                src = (gr.REPO, gr.describe_worktree()) if args.src == "worktree" else \
                    gr.export_source(args.src, workdir / "src")
                extra: tuple[str, ...] = ("--runtime", args.runtime)
                if args.docker_host:
                    extra += ("--docker-host", args.docker_host)
                if key:
                    extra += ("--encrypt", key)
                backend: Any = gr.ShoalBackend(workdir, "lan", log_level="WARNING", src=src, extra_args=extra)
            elif impl == "serf":
                if gr.SERF is None:
                    gr.log("serf is not installed: Serf is not measured (apt-get install serf)")
                    continue
                backend = gr.SerfBackend(workdir, "lan")
                if key:
                    _serf_with_key(backend, key)
            else:
                ap.error(f"unknown implementation {impl!r}")
            gr.log(f"{impl}: {backend.version()}; {args.agents} agents")
            if impl == "shoal":
                warm_up(backend)
            agents, join = gr.start_cluster(backend, args.agents, f"{impl[:2]}{os.getpid()}-", 120.0)
            if join.get("full_last_s") is None:
                raise RuntimeError(f"{impl}: the agents did not all see each other: {join}")
            fig = idle_figures(backend, agents, args.settle, args.window)
            fig["version"] = backend.version()
            if impl == "shoal" and args.containers:
                until = "running" if args.runtime == "docker" else "placed"
                try:
                    fig[f"{until}_in_s"] = place_containers(backend, agents, args.containers * len(agents),
                                                            args.image, until)
                    with_c = idle_figures(backend, agents, args.settle, args.window)
                finally:
                    if args.runtime == "docker":
                        remove_containers(backend, agents)
                fig["containers_per_agent"] = args.containers
                fig["rss_mib_with_containers_median"] = with_c["rss_mib_median"]
                fig["rss_mib_with_containers_max"] = with_c["rss_mib_max"]
                fig["cpu_pct_with_containers_median"] = with_c["cpu_pct_median"]
            results[impl] = fig
            gr.stop_agents(backend, agents)
            backend.reset()
    finally:
        gr.REAPER.cleanup()
    results["loadavg_after"] = os.getloadavg()
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1, default=str))
    print(f"{args.agents} agents each, idle {args.window:.0f} s, runtime {args.runtime}, "
          f"{'encrypted' if key else 'no encryption'}; loadavg {results['loadavg_before'][0]:.1f} -> "
          f"{results['loadavg_after'][0]:.1f}")
    for impl in impls:
        f = results.get(impl)
        if not f:
            continue
        line = (f"  {impl:5s} RSS {f['rss_mib_median']:.1f} MiB (max {f['rss_mib_max']:.1f}, USS "
                f"{f['uss_mib_median']:.1f}), CPU {f['cpu_pct_median']:.2f} % of a core (max {f['cpu_pct_max']:.2f})")
        if "rss_mib_with_containers_median" in f:
            line += (f"; with {f['containers_per_agent']} containers each: RSS "
                     f"{f['rss_mib_with_containers_median']:.1f} MiB (max {f['rss_mib_with_containers_max']:.1f}), "
                     f"CPU {f['cpu_pct_with_containers_median']:.2f} %")
        print(line)
        print(f"        {f['version']}")
    return 0


def _serf_with_key(backend: Any, key: str) -> None:
    """Serf's agents take the same key (-encrypt) as shoal's: SerfBackend
    builds its own command line, so the flag is added where it is started."""
    orig_popen = gr._popen

    def popen(argv: list[str], *a: Any, **kw: Any) -> Any:
        if argv and argv[0] == gr.SERF:
            argv = [*argv, f"-encrypt={key}"]
        return orig_popen(argv, *a, **kw)

    gr._popen = popen


if __name__ == "__main__":
    sys.exit(main())
