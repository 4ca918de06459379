"""Peer-to-peer images (node/agent/image_share.py) between two agents with
two real dockerds (root only).

Agent `a-has` runs on the shared test dockerd, which has the job's image;
agent `b-lacks` runs on a dockerd of this module's own (its own network
namespace and data root, no bridge, no iptables rules), which has no image
at all.  The image
names a registry on a closed loopback port, so every pull is refused at
once and no traffic leaves the machine.  A 2-replica job (max_per_node = 1)
must then run on both nodes: b-lacks's pull fails, it fetches the image from
a-has, and a-has corrupts the first archive it serves (the fault hook), so
the first transfer must be refused and the second one used.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import docker
import httpx
import pytest
from test_agent_pulls import events, get, poll, start_agent  # same directory
from test_registry_pulls import BUILT, build_variant  # same directory

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="starts dockerds: needs root")


@pytest.fixture(scope="module")
def second_engine():
    """A dockerd of our own: its own socket, data and exec roots, no bridge,
    in a network namespace of its own.  (A dockerd started with --bridge=none
    deletes any interface named docker0 it sees: in the host's namespace
    that would be the shared test dockerd's bridge.)"""
    tag = f"shoal-share-{os.getpid()}"
    run, data = Path(f"/run/{tag}"), Path(f"/var/lib/{tag}")
    run.mkdir(parents=True)
    subprocess.run(["ip", "netns", "add", tag], check=True, timeout=30)
    subprocess.run(["ip", "netns", "exec", tag, "ip", "link", "set", "lo", "up"], check=True, timeout=30)
    sock = run / "docker.sock"
    log = open(run / "dockerd.log", "wb")
    # nsenter changes the network namespace only (ip netns exec would also
    # remount /sys, hiding the cgroups dockerd needs).
    proc = subprocess.Popen(["nsenter", f"--net=/run/netns/{tag}", "dockerd", "--data-root", str(data),
                             "--exec-root", str(run / "exec"), "--pidfile", str(run / "dockerd.pid"),
                             "-H", f"unix://{sock}", "--bridge=none", "--iptables=false", "--ip-masq=false"],
                            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
    client = docker.DockerClient(base_url=f"unix://{sock}", version="1.41", timeout=60)
    try:
        poll(lambda: sock.exists() and _pings(client), 60, "the second dockerd to answer")
        yield f"unix://{sock}", client
    finally:
        client.close()
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
        log.close()
        subprocess.run(["ip", "netns", "delete", tag], check=False, timeout=30)
        shutil.rmtree(run, ignore_errors=True)
        shutil.rmtree(data, ignore_errors=True)


def _pings(client) -> bool:
    try:
        return client.ping()
    except Exception:  # noqa: BLE001 -- not up yet
        return False


def test_a_node_that_cannot_pull_fetches_the_image_from_a_peer_and_refuses_a_corrupted_copy(
        engine, second_engine, tmp_path, node):
    second_host, second = second_engine
    ref = f"127.0.0.1:1/share-{node}:1"        # a registry nobody runs: pulls fail at once, on loopback
    image_id = build_variant(engine, f"share-{node}")
    engine.images.get(image_id).tag(f"127.0.0.1:1/share-{node}", "1")
    procs = []
    try:
        os.environ["SHOAL_FAULT_CORRUPT_SERVES"] = "1"
        try:
            a, a_log, a_info = start_agent(tmp_path, "a-has", "", None, "--enable-fault-hook")
        finally:
            del os.environ["SHOAL_FAULT_CORRUPT_SERVES"]
        procs.append(a)
        b, b_log, b_info = start_agent(tmp_path, "b-lacks", "", a_info["gossip"], "--docker-host", second_host)
        procs.append(b)
        api_a, api_b = a_info["api"], b_info["api"]
        poll(lambda: len([m for m in get(api_a, "/v1/members") or [] if m["status"] == "alive"]) == 2,
             30, "both agents to see each other")
        job = {"name": "shared", "image": ref, "command": ["sleep", "600"], "cpu": 0.1, "memory": "16MiB",
               "replicas": 2, "max_per_node": 1, "network": "none"}
        r = httpx.post(api_a + "/v1/jobs", json=job, timeout=10)
        assert r.status_code in (200, 201), r.text

        def running_nodes():
            detail = get(api_a, "/v1/jobs/shared") or {}
            return {s["node"] for s in detail.get("slots", []) if s.get("runtime") == "running"}

        poll(lambda: running_nodes() == {"a-has", "b-lacks"}, 120,
             f"both replicas running\n{b_log.read_text(errors='replace')[-3000:]}")
        # b-lacks's engine has the very image a-has has.
        assert second.images.get(ref).id == image_id
        fetches = [e for e in events(api_b) if e.get("event") == "image_fetch"]
        states = [e["state"] for e in fetches]
        assert states.count("failed") == 1 and states[-1] == "done", fetches
        failed = next(e for e in fetches if e["state"] == "failed")
        assert failed["peer"] == "a-has" and "refused" in failed["reason"], failed
        pulls = [e for e in events(api_b) if e.get("event") == "image_pull"]
        assert any(e["state"] == "failed" and "connection refused" in e.get("reason", "") for e in pulls), pulls

        # shoal image ls: which node has which image.
        out = subprocess.run([str(Path(os.sys.executable)), "-m", "node.cli", "image", "ls", "--address", api_a],
                             capture_output=True, text=True, timeout=60, cwd=Path(__file__).resolve().parents[2])
        assert out.returncode == 0, out.stderr
        line = next(ln for ln in out.stdout.splitlines() if ref in ln)
        assert "a-has" in line and "b-lacks" in line, out.stdout
        listing = get(api_a, "/v1/images?cluster=1")
        assert {n["node"] for n in listing["nodes"]} == {"a-has", "b-lacks"}, json.dumps(listing)[:2000]
    finally:
        for p in procs:
            p.send_signal(signal.SIGTERM)
        for p in procs:
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                p.kill()
        for client in (engine, second):
            for c in client.containers.list(all=True, filters={"label": "shoal.job=shared"}):
                c.remove(force=True)
        engine.images.remove(ref, force=True)
        BUILT.append(image_id)
        time.sleep(0)
