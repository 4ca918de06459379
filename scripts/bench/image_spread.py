#!/usr/bin/env python3
"""Benchmark: how long until a ~50 MiB image runs on 5 nodes, and who sends it.

    python scripts/bench/image_spread.py [--trials 2] [--size-mib 50] [--json OUT]

Root only.  On the 5-node testbed (scripts/testbed: each node its own
namespace, dockerd and agent; prefix shoal-img, subnet 10.79.11), five
one-replica jobs, each pinned to one node (`host == NODE`), submitted at
once, whose image no node has but node 1 (or, for the registry, none at
all); t = 0 just before the first is submitted, the end when all five
dockerds run their replica.  Scenarios:

  registry    every node pulls from one registry (Debian's docker-registry,
              scripts/registry, in the host's namespace); each node reaches it
              on its own 127.0.0.1:PORT through a relay of this script, which
              counts the bytes it carries to each node
  peers-1src  source = "peers", the image on node 1 only, max_peer_serves = 4
  peers-tree  the same with the default max_peer_serves = 2
  peers-chain max_peer_serves = 1
              (a holder sends one copy of an image at a time whatever its
              max_peer_serves, and receivers wait for a node loading its copy
              rather than ask node 1 again: node/runtime/spread_rule.py; so
              the three differ only when several images spread at once)

With --link-mbit M every node's uplink (its eth0's egress, a tc tbf) and the
registry's (the relay, one token bucket for all five nodes) carry M Mbit/s:
loopback alone makes every transfer nearly free, which hides what a shared
uplink costs; without it the figures are this machine's CPU, not a network.
--registry-mbit R gives the registry an uplink of its own (a site whose
registry is across a slower WAN link than its LAN).

The image is built locally FROM scratch: /bin/busybox (static) plus
--size-mib of random bytes (incompressible, so the registry's gzip does not
shrink it).  Bytes sent per node: the relay's count for the registry, each
agent's `served_bytes` (GET /v1/images) for peers.  Everything is on this one
2-core machine, so the figures are what the agents, engines and loopback
links manage here, not a network's bandwidth; the load average is printed.
"""

from __future__ import annotations

import argparse
import ctypes
import io
import json
import os
import socket
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import testbed_bench as tbb  # noqa: E402 -- the testbed wrapper next to us

REPO = Path(__file__).resolve().parents[2]
PREFIX = os.environ.get("SHOAL_TESTBED_PREFIX", "shoal-img")     # another testbed's may be up
SUBNET = os.environ.get("SHOAL_TESTBED_SUBNET", "10.79.11")
N = 5
JOB = "bigimg"
CLONE_NEWNET = 0x40000000
SCENARIOS = {"registry": None, "peers-1src": 4, "peers-tree": 2, "peers-chain": 1}


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def setns(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        if ctypes.CDLL(None, use_errno=True).setns(fd, CLONE_NEWNET) != 0:
            raise OSError(ctypes.get_errno(), f"setns {path}")
    finally:
        os.close(fd)


class Relay:
    """127.0.0.1:PORT inside each node's namespace, relayed to 127.0.0.1:PORT
    in ours (the registry), counting the bytes sent to each node."""

    def __init__(self, port: int, namespaces: dict[str, str], mbit: float | None = None) -> None:
        self.port = port
        self.bytes_per_s = None if mbit is None else mbit * 1e6 / 8
        self._next_free = 0.0       # the shared uplink's token bucket: when it is free again
        self.to_node: dict[str, int] = dict.fromkeys(namespaces, 0)
        self.lock = threading.Lock()
        self._host_fd = os.open("/proc/self/ns/net", os.O_RDONLY)     # the main thread's: never moved
        for node, ns in namespaces.items():
            ready = threading.Event()
            threading.Thread(target=self._accept, args=(node, ns, ready), daemon=True).start()
            ready.wait(10)

    def _accept(self, node: str, ns: str, ready: threading.Event) -> None:
        setns(f"/run/netns/{ns}")
        lsock = socket.socket()
        lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        lsock.bind(("127.0.0.1", self.port))
        lsock.listen(64)
        # Back to our namespace: the sockets to the registry are made here.
        if ctypes.CDLL(None, use_errno=True).setns(self._host_fd, CLONE_NEWNET) != 0:
            raise OSError(ctypes.get_errno(), "setns back")
        ready.set()
        while True:
            conn, _ = lsock.accept()
            up = socket.create_connection(("127.0.0.1", self.port))
            threading.Thread(target=self._pump, args=(conn, up, None), daemon=True).start()
            threading.Thread(target=self._pump, args=(up, conn, node), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket, node: str | None) -> None:
        try:
            while data := src.recv(1 << 16):
                if node is not None and self.bytes_per_s is not None:
                    with self.lock:
                        start = max(time.monotonic(), self._next_free)
                        self._next_free = start + len(data) / self.bytes_per_s
                    time.sleep(max(0.0, self._next_free - time.monotonic()))
                dst.sendall(data)
                if node is not None:
                    with self.lock:
                        self.to_node[node] += len(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def snapshot(self) -> dict[str, int]:
        with self.lock:
            return dict(self.to_node)


def build_image(client, tag: str, size_mib: int) -> str:
    """FROM scratch: busybox and size_mib of random bytes; built in node 1's dockerd."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        df = b'FROM scratch\nCOPY busybox /bin/busybox\nCOPY blob /blob\nCMD ["/bin/busybox", "sleep", "3600"]\n'
        for name, data in (("Dockerfile", df), ("blob", os.urandom(size_mib << 20)),
                           ("busybox", Path("/usr/bin/busybox").read_bytes())):
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(data), 0o755
            tar.addfile(info, io.BytesIO(data))
    buf.seek(0)
    out = list(client.build(fileobj=buf, custom_context=True, tag=tag, rm=True, decode=True))
    errors = [m for m in out if "error" in m]
    if errors:
        raise RuntimeError(f"build failed: {errors}")
    return client.inspect_image(tag)["Id"]


def drop(tb, image_id: str, nodes) -> None:
    """The image, under every tag, off these nodes (their layers go with it)."""
    import docker.errors
    for i in nodes:
        try:
            tb.docker[i].remove_image(image_id, force=True)
        except docker.errors.ImageNotFound:
            pass


def served(tb) -> dict[str, int]:
    return {tb.nodes[i]["name"]: int(tb.api(i, "GET", "/v1/images?ref=none:0").get("served_bytes", 0))
            for i in tb.nodes}


def set_serves(tb, cfg: Path, serves: int) -> None:
    cfg.write_text(f"[images]\nmax_peer_serves = {serves}\n")
    for i in tb.nodes:
        tb.run("restart-agent", str(i))
    tbb.wait(tb.alive_everywhere, 60, "all agents alive after restarting them", every=0.5)


def trial(tb, job: str, tag: str, source: str, relay: Relay) -> dict:
    # One job per node, pinned by its host label, so each node's fetch is
    # timed on its own and no placement choice (which node a spread job's
    # auction picks first) enters the figure: what is wanted is the image's
    # spread.
    jobs = {i: f"{job}-{i}" for i in tb.nodes}
    before_relay, before_served = relay.snapshot(), served(tb)
    load = os.getloadavg()[0]
    t0 = time.monotonic()
    for i, name in jobs.items():
        tb.api(1, "POST", "/v1/jobs", {
            "name": name, "image": tag, "command": ["/bin/busybox", "sleep", "3600"], "cpu": 0.05,
            "memory": "8MiB", "replicas": 1, "network": "none", "source": source,
            "constraints": [f"host == {tb.nodes[i]['name']}"]})
    t1 = tbb.wait(lambda: all(tb.docker[i].containers(filters={"label": f"shoal.job={name}", "status": "running"})
                              for i, name in jobs.items()), 300, "a replica running on each node")
    after_relay, after_served = relay.snapshot(), served(tb)
    for name in jobs.values():
        tbb.stop_job(tb, name)
    return {"seconds": round(t1 - t0, 2), "load1": round(load, 2),
            "registry_bytes_to": {k: after_relay[k] - before_relay[k] for k in after_relay},
            "peer_bytes_from": {k: after_served[k] - before_served[k] for k in after_served}}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--trials", type=int, default=2)
    ap.add_argument("--size-mib", type=int, default=50)
    ap.add_argument("--scenarios", default=",".join(SCENARIOS))
    ap.add_argument("--link-mbit", type=float, help="every node's and the registry's uplink, Mbit/s")
    ap.add_argument("--registry-mbit", type=float, help="the registry's uplink alone (default: --link-mbit)")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("root only (network namespaces, dockerds)")
    work = Path(tempfile.mkdtemp(prefix="shoal-img-bench-"))
    cfg = work / "agent.toml"
    cfg.write_text("[images]\n")
    tb = tbb.Testbed(REPO, work)
    tb.env.update(SHOAL_TESTBED_PREFIX=PREFIX, SHOAL_TESTBED_SUBNET=SUBNET)
    reg_dir = work / "registry"
    port = 5000 + os.getpid() % 1000
    results: dict = {"size_mib": args.size_mib, "link_mbit": args.link_mbit, "registry_mbit": args.registry_mbit,
                     "commit": tbb.git("rev-parse", "--short", "HEAD"), "trials": {}}
    try:
        import docker
        log("testbed up (5 nodes)")
        tb.run("up", str(N), "--profile", "lan", f"--agent-arg=--config={cfg}")
        st = tb.status()
        tb.token = st["token"]
        tb.nodes = {n["index"]: n for n in st["nodes"]}
        tb.docker = {i: docker.APIClient(base_url=n["docker_host"], version=tbb.API_VERSION, timeout=300)
                     for i, n in tb.nodes.items()}
        tbb.wait(tb.alive_everywhere, 60, "all agents alive", every=0.5)
        subprocess.run([str(REPO / "scripts" / "registry"), "up", str(reg_dir), str(port)], check=True,
                       timeout=300, stdin=subprocess.DEVNULL)
        relay = Relay(port, {tb.nodes[i]["name"]: tb.nodes[i]["ns"] for i in tb.nodes},
                      args.registry_mbit or args.link_mbit)
        if args.link_mbit:
            for i in tb.nodes:
                subprocess.run(["ip", "netns", "exec", tb.nodes[i]["ns"], "tc", "qdisc", "replace", "dev", "eth0",
                                "root", "tbf", "rate", f"{args.link_mbit}mbit", "burst", "256kb", "latency", "100ms"],
                               check=True, timeout=30)
        tag = f"127.0.0.1:{port}/big:1"
        log(f"building a {args.size_mib} MiB image in node 1's dockerd")
        image_id = build_image(tb.docker[1], tag, args.size_mib)
        archive = work / "image.tar"
        with open(archive, "wb") as f:
            for chunk in tb.docker[1].get_image(tag):
                f.write(chunk)
        results["image_bytes"] = tb.docker[1].inspect_image(tag)["Size"]
        results["archive_bytes"] = archive.stat().st_size
        current, seq = None, 0
        for name in args.scenarios.split(","):
            serves = SCENARIOS[name]
            want = serves if serves is not None else 2
            if want != current:
                set_serves(tb, cfg, want)
                current = want
            rows = results["trials"].setdefault(name, [])
            for k in range(args.trials):
                # A tag and a job of its own per trial: no agent's cached image
                # list or the last trial's claims play a part.
                seq += 1
                tag_k, job = f"127.0.0.1:{port}/big:t{seq}", f"{JOB}{seq}"
                if not any(img["Id"] == image_id for img in tb.docker[1].images()):
                    with open(archive, "rb") as f:
                        list(tb.docker[1].load_image(f))
                tb.docker[1].tag(image_id, f"127.0.0.1:{port}/big", f"t{seq}")
                if serves is None:
                    for m in tb.docker[1].push(f"127.0.0.1:{port}/big", tag=f"t{seq}", stream=True, decode=True):
                        if "error" in m:
                            raise RuntimeError(f"push failed: {m}")
                    drop(tb, image_id, tb.nodes)
                else:
                    drop(tb, image_id, [i for i in tb.nodes if i != 1])
                row = trial(tb, job, tag_k, "registry" if serves is None else "peers", relay)
                rows.append(row)
                log(f"{name} #{k + 1}: {row}")
        summary = {name: {"median_s": tbb.median([r["seconds"] for r in rows]),
                          "load1": [r["load1"] for r in rows]} for name, rows in results["trials"].items()}
        results["summary"] = summary
        print(json.dumps(results, indent=2))
        if args.json:
            args.json.write_text(json.dumps(results, indent=2))
    finally:
        subprocess.run([str(REPO / "scripts" / "registry"), "down", str(reg_dir)], check=False, timeout=60)
        tb.down()
    return 0


if __name__ == "__main__":
    sys.exit(main())
