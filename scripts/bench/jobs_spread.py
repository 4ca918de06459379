#!/usr/bin/env python3
"""Cluster-state benchmark (issue 3): how fast a job submission reaches every
agent, and what resource/state gossip costs.

    python scripts/bench/jobs_spread.py [--nodes 30] [--profile lan] [--submissions 5]
        [--jobs 100] [--rest-seconds 20] [--sim-nodes 1000]

Real agents (N on 127.0.0.1, started with gossip_real.py's helpers and
killed by PID at the end):
  * spread: a job is POSTed to agent 0; from the moment the 201 comes back,
    every agent's /v1/jobs/NAME is polled until all have it.  First, median
    and last agent, median over --submissions;
  * bytes per second per agent (the agents' own /v1/metrics payload byte
    counters) at rest, and while --jobs jobs are submitted one after another
    to random agents.
Simulated (--sim-nodes, 0 to skip): the same spread measured in virtual time
on the deterministic simulator (lan preset, compression off).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", ".."))

import gossip_real as gr  # noqa: E402


def api(agent, method: str, path: str, body: dict | None = None) -> tuple[int, bytes]:
    host, port = agent.control
    req = urllib.request.Request(f"http://{host}:{port}{path}", method=method,
                                 data=json.dumps(body).encode() if body is not None else None,
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def bytes_total(backend, agent) -> float:
    text = (backend.get(agent, "/v1/metrics") or b"").decode()
    total = 0.0
    for line in text.splitlines():
        if line.startswith(("shoal_bytes_in_total", "shoal_bytes_out_total")):
            total += float(line.rsplit(" ", 1)[1])
    return total


def spec(name: str) -> dict:
    return {"name": name, "image": "shoal-demo:latest", "replicas": 0}


def real(n: int, profile: str, submissions: int, jobs: int, rest_s: float) -> None:
    import tempfile
    from pathlib import Path

    gr.install_cleanup()
    workdir = Path(tempfile.mkdtemp(prefix="shoal-bench-jobs-"))
    backend = gr.ShoalBackend(workdir, profile)
    agents, fig = gr.start_cluster(backend, n, "j", 120)
    try:
        spreads = []
        for k in range(submissions):
            name = f"spread-{k}"
            status, body = api(agents[0], "POST", "/v1/jobs", spec(name))
            assert status == 201, (status, body)
            t0 = time.time()
            seen: dict[str, float] = {}
            while len(seen) < n and time.time() - t0 < 60:
                for a in agents:
                    if a.name not in seen and api(a, "GET", f"/v1/jobs/{name}")[0] == 200:
                        seen[a.name] = time.time() - t0
                time.sleep(0.01)
            times = sorted(seen.values())
            spreads.append((times[0], statistics.median(times), times[-1], len(times)))
        print(f"N={n} ({profile}): job spread to every agent, median over {submissions} submissions "
              f"(polling resolution ~{n * 2} ms):")
        print(f"  first {statistics.median(s[0] for s in spreads):.3f} s, "
              f"median {statistics.median(s[1] for s in spreads):.3f} s, "
              f"last {statistics.median(s[2] for s in spreads):.3f} s; "
              f"agents reached: {min(s[3] for s in spreads)}/{n}")
        time.sleep(5)
        b0 = sum(bytes_total(backend, a) for a in agents)
        time.sleep(rest_s)
        b1 = sum(bytes_total(backend, a) for a in agents)
        print(f"  at rest: {(b1 - b0) / rest_s / n:.0f} bytes/s per agent (payload, in + out)")
        rng = random.Random(1)
        t0 = time.time()
        for k in range(jobs):
            status, _ = api(rng.choice(agents), "POST", "/v1/jobs", spec(f"load-{k}"))
            assert status == 201
        dt = time.time() - t0
        b2 = sum(bytes_total(backend, a) for a in agents)
        print(f"  while submitting {jobs} jobs ({dt:.1f} s): {(b2 - b1) / dt / n:.0f} bytes/s per agent")
    finally:
        gr.stop_agents(backend, agents)
        gr.REAPER.kill_all()


def simulated(n: int) -> None:
    from auction.spec import validate
    from gossip.config import LAN
    from node.sim.cluster import ClusterSim

    sim = ClusterSim(1, n, LAN.replace(enable_compression=False))
    w = sim.world
    cpu0 = time.process_time()
    w.bootstrap(seeds="random")
    w.run_for(30)
    s = validate(spec("sim-spread"))
    sim.submit(0, s)
    took = w.run_until_converged(lambda _: all("sim-spread" in v for v in sim.job_views()),
                                 timeout=60, check_every=0.05)
    print(f"simulated N={n} (lan, compression off): job on every agent after "
          f"{took if took is not None else float('nan'):.2f} virtual s "
          f"(CPU {time.process_time() - cpu0:.0f} s in all)")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--nodes", type=int, default=30)
    ap.add_argument("--profile", default="lan")
    ap.add_argument("--submissions", type=int, default=5)
    ap.add_argument("--jobs", type=int, default=100)
    ap.add_argument("--rest-seconds", type=float, default=20.0)
    ap.add_argument("--sim-nodes", type=int, default=1000)
    args = ap.parse_args()
    print(f"load average {os.getloadavg()}")
    if args.nodes:
        real(args.nodes, args.profile, args.submissions, args.jobs, args.rest_seconds)
    if args.sim_nodes:
        simulated(args.sim_nodes)


if __name__ == "__main__":
    main()
