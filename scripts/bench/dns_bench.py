#!/usr/bin/env python3
"""DNS queries per second and answer latency of one real agent on loopback.

    python scripts/bench/dns_bench.py [--seconds 8] [--concurrency 1,8,32] [--tcp]
        [--source-qps 0] [--json OUT]

Starts one shoal agent (fake runtime, `--profile local`, DNS on a free
loopback port), submits three jobs with named ports (api: 3 replicas with
http and grpc, web: 2 with http, db: 1 with pg) and waits until the agent's
DNS lists api's 3 replicas (SRV) -- or, after 30 s, goes on with whatever the zone
holds (an agent without the service catalog answers NXDOMAIN, which is
timed too; the table says which).  Then, for each concurrency C, a closed
loop of C UDP sockets, each with one query outstanding at a time (a mix:
A api.service.shoal, SRV _http._tcp.api.service.shoal, A 1.api.service.shoal,
A node name, A of a missing name: NXDOMAIN), for --seconds each.  A query
unanswered within 1 s counts as lost and is sent again with a new id.
--tcp adds one row: one TCP connection, one query at a time.

Printed: per row the queries answered per second, p50 and p99 latency (from
send to receipt of the answer, client-side, in ms), lost, and the rcodes
seen.  The client is one Python process on the same machine: on a 2-core
machine client and agent share the CPU, so the figures are a floor for the
agent, not its ceiling.  --source-qps sets the agent's dns_source_qps (0: no
per-source limit, the default here, since every socket comes from 127.0.0.1).

Clean-up: the agent is stopped with SIGTERM (SIGKILL after 15 s) and its
temporary directory removed, whether the run finished or failed.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import selectors
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import dns.message
import dns.query
import httpx

REPO = Path(__file__).resolve().parents[2]
JOBS = [
    {"name": "api", "image": "busybox", "replicas": 3, "cpu": 0.1, "memory": "16MiB",
     "ports": {"http": {"to": 8080}, "grpc": {"to": 9090}}},
    {"name": "web", "image": "busybox", "replicas": 2, "cpu": 0.1, "memory": "16MiB",
     "ports": {"http": {"to": 80}}},
    {"name": "db", "image": "busybox", "replicas": 1, "cpu": 0.1, "memory": "16MiB",
     "ports": {"pg": {"to": 5432}}},
]
RCODES = {0: "NOERROR", 1: "FORMERR", 2: "SERVFAIL", 3: "NXDOMAIN", 4: "NOTIMP", 5: "REFUSED"}
LOST_AFTER_S = 1.0


def start_agent(tmp: Path, source_qps: float) -> tuple[subprocess.Popen, dict]:
    state = tmp / "state"
    state.mkdir()
    config = tmp / "agent.toml"
    config.write_text(f'dns_bind = "127.0.0.1:0"\ndns_source_qps = {source_qps}\n')
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    argv = [sys.executable, "-m", "node.cli", "agent", "--config", str(config), "--name", "bench-1",
            "--bind", "127.0.0.1:0", "--api", "127.0.0.1:0", "--profile", "local", "--state-dir", str(state),
            "--cpus", "8", "--memory", "16GiB"]
    proc = subprocess.Popen(argv, cwd=REPO, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=open(tmp / "agent.log", "w"), start_new_session=True)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"agent exited ({proc.returncode}); see {tmp / 'agent.log'}")
        try:
            return proc, json.loads((state / "agent.json").read_text())
        except (OSError, ValueError):
            time.sleep(0.05)
    raise SystemExit("agent did not start in 30 s")


def stop_agent(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def wait_for_catalog(api: str, port: int) -> str:
    for job in JOBS:
        r = httpx.post(f"{api}/v1/jobs", json=job, timeout=10)
        if r.status_code != 201:
            print(f"job {job['name']} refused ({r.status_code}): {r.text.strip()}; submitting it without ports")
            r = httpx.post(f"{api}/v1/jobs", json={k: v for k, v in job.items() if k != "ports"}, timeout=10)
            r.raise_for_status()
    deadline = time.monotonic() + 30
    q = dns.message.make_query("_http._tcp.api.service.shoal", "SRV")
    while time.monotonic() < deadline:
        reply = dns.query.udp(q, "127.0.0.1", port=port, timeout=2)
        if reply.answer and len(reply.answer[0]) == 3:
            return "_http._tcp.api.service.shoal lists api's 3 replicas"
        time.sleep(0.2)
    return "the zone does not list api's replicas (no catalog?): answers are NXDOMAIN"


def query_mix() -> list[bytes]:
    names = [("api.service.shoal", "A"), ("_http._tcp.api.service.shoal", "SRV"), ("1.api.service.shoal", "A"),
             ("bench-1.node.shoal", "A"), ("missing.service.shoal", "A")]
    return [dns.message.make_query(n, t).to_wire() for n, t in names]


def run_udp(port: int, concurrency: int, seconds: float, mix: list[bytes]) -> dict:
    sel = selectors.DefaultSelector()
    socks = []
    pending: dict[socket.socket, tuple[int, float]] = {}
    latencies: list[float] = []
    rcodes: Counter[str] = Counter()
    lost = 0
    rng = random.Random(1)

    def send(s: socket.socket) -> None:
        qid = rng.getrandbits(16)
        wire = qid.to_bytes(2, "big") + mix[rng.randrange(len(mix))][2:]
        pending[s] = (qid, time.perf_counter())
        s.send(wire)

    for _ in range(concurrency):
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.connect(("127.0.0.1", port))
        s.setblocking(False)
        sel.register(s, selectors.EVENT_READ)
        socks.append(s)
        send(s)
    start = time.perf_counter()
    end = start + seconds
    while (now := time.perf_counter()) < end:
        for key, _ in sel.select(timeout=0.05):
            s = key.fileobj
            try:
                data = s.recv(65535)
            except OSError:
                continue
            qid, sent = pending.get(s, (None, 0.0))
            if len(data) < 4 or int.from_bytes(data[:2], "big") != qid:
                continue   # a late answer to a query counted lost
            latencies.append(time.perf_counter() - sent)
            rcodes[RCODES.get(data[3] & 0x0F, str(data[3] & 0x0F))] += 1
            send(s)
        now = time.perf_counter()
        for s, (_, sent) in list(pending.items()):
            if now - sent > LOST_AFTER_S:
                lost += 1
                send(s)
    elapsed = time.perf_counter() - start
    for s in socks:
        sel.unregister(s)
        s.close()
    return summary(f"udp, {concurrency} in flight", latencies, elapsed, lost, rcodes)


def run_tcp(port: int, seconds: float, mix: list[bytes]) -> dict:
    latencies: list[float] = []
    rcodes: Counter[str] = Counter()
    rng = random.Random(2)
    with socket.create_connection(("127.0.0.1", port), timeout=5) as conn:
        start = time.perf_counter()
        while time.perf_counter() - start < seconds:
            wire = mix[rng.randrange(len(mix))]
            sent = time.perf_counter()
            conn.sendall(len(wire).to_bytes(2, "big") + wire)
            need, buf = None, b""
            while need is None or len(buf) < need:
                chunk = conn.recv(65535)
                if not chunk:
                    raise SystemExit("the agent closed the TCP connection")
                buf += chunk
                if need is None and len(buf) >= 2:
                    need = 2 + int.from_bytes(buf[:2], "big")
            latencies.append(time.perf_counter() - sent)
            rcodes[RCODES.get(buf[5] & 0x0F, "?")] += 1
        elapsed = time.perf_counter() - start
    return summary("tcp, 1 connection, 1 in flight", latencies, elapsed, 0, rcodes)


def summary(row: str, latencies: list[float], elapsed: float, lost: int, rcodes: Counter[str]) -> dict:
    ms = sorted(x * 1000 for x in latencies)
    p99 = ms[min(len(ms) - 1, int(len(ms) * 0.99))] if ms else float("nan")
    return {"row": row, "answered": len(ms), "qps": len(ms) / elapsed if elapsed else 0.0,
            "p50_ms": statistics.median(ms) if ms else float("nan"), "p99_ms": p99, "lost": lost,
            "rcodes": dict(rcodes)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seconds", type=float, default=8.0)
    ap.add_argument("--concurrency", default="1,8,32")
    ap.add_argument("--tcp", action="store_true")
    ap.add_argument("--source-qps", type=float, default=0)
    ap.add_argument("--json")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="dns-bench-") as d:
        proc, info = start_agent(Path(d), args.source_qps)
        try:
            port = int(info["dns"].rsplit(":", 1)[1])
            zone = wait_for_catalog(info["api"], port)
            print(f"agent {info['name']}: api {info['api']}, dns {info['dns']}; {zone}")
            mix = query_mix()
            rows = [run_udp(port, int(c), args.seconds, mix) for c in args.concurrency.split(",")]
            if args.tcp:
                rows.append(run_tcp(port, args.seconds, mix))
            metrics = httpx.get(f"{info['api']}/v1/metrics", timeout=5).text
        finally:
            stop_agent(proc)
    print(f"\n{'load':34} {'answered/s':>10} {'p50 ms':>8} {'p99 ms':>8} {'lost':>6}  rcodes")
    for r in rows:
        rc = ", ".join(f"{k} {v}" for k, v in sorted(r["rcodes"].items()))
        print(f"{r['row']:34} {r['qps']:10.0f} {r['p50_ms']:8.2f} {r['p99_ms']:8.2f} {r['lost']:6d}  {rc}")
    drops = [line for line in metrics.splitlines() if line.startswith("shoal_dns_bad_input_total")]
    print("\nagent's drop counters:", "; ".join(drops) or "none")
    if args.json:
        Path(args.json).write_text(json.dumps({"rows": rows, "zone": zone}, indent=2))


if __name__ == "__main__":
    main()
