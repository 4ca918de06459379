"""Replicas on the network, against a real dockerd (root only; conftest.py).

What a user would see: a bridge replica's page fetched from the host through
its published port (dynamic or static), on the publish address only; a host-
network replica listening on the port shoal gave it; the SHOAL_* variables
inside; a host port something else holds failing the slot here with a reason
naming the port; a stopped replica's port free for the next one; containers
using the resolvers the runtime is given; a replica whose health check has
not passed yet reported as starting, not running.
"""

from __future__ import annotations

import contextlib
import socket
import subprocess
import urllib.error
import urllib.request
from dataclasses import replace

import trio

from node.runtime.docker import DockerRuntime
from test_docker_runtime import IMAGE, claim, fast, needs_root, ours, running, spec, until  # same directory

# Writes a page naming the replica, then serves it (busybox httpd, foreground).
SERVE = ('echo "node=$SHOAL_NODE slot=$SHOAL_SLOT port=$SHOAL_PORT_HTTP addr=$SHOAL_ADDR_HTTP" '
         '>/www/index.html; exec httpd -f -h /www -p {listen}')


def free_port() -> int:
    """A loopback TCP port nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def fetch(port: int, host: str = "127.0.0.1") -> str | None:
    """GET http://host:port/, or None if nothing answers (yet)."""
    try:
        with urllib.request.urlopen(f"http://{host}:{port}/", timeout=2) as r:
            return r.read().decode()
    except (OSError, urllib.error.URLError):
        return None


def with_ports(c, **ports):
    """The claim with the host ports its holder gave it."""
    return replace(c, ports=tuple(sorted(ports.items())))


def web(listen: str = "8080", **kw):
    return spec(command=["sh", "-c", SERVE.format(listen=listen)], **kw)


def env_of(ctr) -> dict[str, str]:
    out = ctr.exec_run(["env"]).output.decode()
    return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)


@needs_root
async def test_bridge_replica_is_reachable_on_its_dynamic_port_and_knows_its_env(engine, node):
    rt = DockerRuntime(node, fast())
    sp = web(ports={"http": {"to": 8080}})
    port = free_port()
    c = with_ports(claim(node, sp, index=3), http=port)
    async with trio.open_nursery() as n:
        await n.start(rt.run)
        rt.start(c, sp)
        page = await until(lambda: fetch(port), timeout=30)
        assert page.strip() == f"node={node} slot=3 port=8080 addr=127.0.0.1:{port}"
        [ctr] = ours(engine, node)
        env = env_of(ctr)
        assert {k: v for k, v in env.items() if k.startswith("SHOAL_")} == {
            "SHOAL_JOB": "web", "SHOAL_SLOT": "3", "SHOAL_NODE": node, "SHOAL_PORT_HTTP": "8080",
            "SHOAL_HOST_PORT_HTTP": str(port), "SHOAL_ADDR_HTTP": f"127.0.0.1:{port}"}
        [row] = await rt.ps()
        assert row["ports"] == {"http": port}
        bindings = ctr.attrs["HostConfig"]["PortBindings"]
        assert bindings["8080/tcp"] == [{"HostIp": "127.0.0.1", "HostPort": str(port)}]
        assert bindings["8080/udp"] == [{"HostIp": "127.0.0.1", "HostPort": str(port)}]
        # Published on the publish address only: the host's other addresses do not answer.
        other = _non_loopback_address()
        if other is not None:
            assert fetch(port, other) is None
        n.cancel_scope.cancel()


def _non_loopback_address() -> str | None:
    with contextlib.suppress(OSError), socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.connect(("192.0.2.1", 9))     # no datagram is sent: this only picks a source address
        addr = s.getsockname()[0]
        return None if addr.startswith("127.") else addr
    return None


@needs_root
async def test_static_port_is_published_and_free_again_once_the_replica_stops(engine, node):
    rt = DockerRuntime(node, fast())
    port = free_port()
    sp = web(ports={"http": {"to": 8080, "static": port}})
    async with trio.open_nursery() as n:
        await n.start(rt.run)
        rt.start(with_ports(claim(node, sp, index=0), http=port), sp)
        assert "slot=0" in await until(lambda: fetch(port), timeout=30)
        rt.stop("web/0", "released")
        await until(lambda: not ours(engine, node), timeout=20)
        assert fetch(port) is None
        # The same host port, for the next replica (another slot, a new container).
        rt.start(with_ports(claim(node, sp, index=1, rnd=2), http=port), sp)
        assert "slot=1" in await until(lambda: fetch(port), timeout=30)
        n.cancel_scope.cancel()


@needs_root
async def test_a_stop_first_update_here_starts_once_the_old_copy_stopped_and_keeps_the_slot(engine, node):
    """A rolling update stop-first re-awards the slot to its holder under a
    new ballot, with the same host port: the new copy starts once the old
    one has stopped.  Started beside it, it found the port taken and the
    slot gave up here (seen on the quickstart: the canary left its node)."""
    gave_up = []
    rt = DockerRuntime(node, fast(), on_give_up=lambda s, r: gave_up.append((s, r)))
    port = free_port()
    v1 = web(ports={"http": {"to": 8080}})
    v2 = spec(command=["sh", "-c", "echo version=2 >/www/index.html; exec httpd -f -h /www -p 8080"],
              ports={"http": {"to": 8080}})
    async with trio.open_nursery() as n:
        await n.start(rt.run)
        rt.start(with_ports(claim(node, v1), http=port), v1)
        assert "slot=0" in await until(lambda: fetch(port), timeout=30)
        rt.start(with_ports(claim(node, v2, rnd=2), http=port), v2)
        assert "version=2" in await until(lambda: (page := fetch(port)) and "version=2" in page and page,
                                          timeout=30)
        await until(lambda: rt.slot_states().get("web/0", ("",))[0] == "running", timeout=20)
        assert gave_up == [] and len(ours(engine, node)) == 1
        n.cancel_scope.cancel()


@needs_root
async def test_host_network_replica_listens_on_the_port_shoal_gave_it(engine, node):
    rt = DockerRuntime(node, fast())
    port = free_port()
    sp = web(listen="$SHOAL_ADDR_HTTP", network="host", ports={"http": {}})
    async with trio.open_nursery() as n:
        await n.start(rt.run)
        rt.start(with_ports(claim(node, sp), http=port), sp)
        page = await until(lambda: fetch(port), timeout=30)
        assert page.strip() == f"node={node} slot=0 port={port} addr=127.0.0.1:{port}"
        [ctr] = ours(engine, node)
        assert ctr.attrs["HostConfig"]["NetworkMode"] == "host"
        assert not ctr.attrs["HostConfig"]["PortBindings"]
        n.cancel_scope.cancel()


@needs_root
async def test_a_host_port_held_by_something_else_fails_the_slot_here_with_the_reason(engine, node):
    gave_up = []
    rt = DockerRuntime(node, fast(), on_give_up=lambda s, r: gave_up.append((s, r)))
    sp = web(ports={"http": {"to": 8080}})
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen(1)
        port = holder.getsockname()[1]
        async with trio.open_nursery() as n:
            await n.start(rt.run)
            rt.start(with_ports(claim(node, sp), http=port), sp)
            await until(lambda: gave_up, timeout=30)
            reason = f"host port 127.0.0.1:{port} (http) is already in use on node {node}"
            assert gave_up == [("web/0", reason)]
            assert rt.slot_states() == {"web/0": ("failed", f"gave up here: {reason}")}
            # Given up once, not retried, and the container that could not start is gone.
            await trio.sleep(1.5)
            assert len(gave_up) == 1
            await until(lambda: not ours(engine, node), timeout=20)
            n.cancel_scope.cancel()


@needs_root
async def test_a_host_port_another_container_publishes_fails_the_slot_here_with_the_reason(engine, node):
    """Docker's own allocator answers this one ("port is already allocated"):
    e.g. an agent sharing its engine with another one that gave out the same port."""
    port = free_port()
    other = engine.containers.run(IMAGE, ["sleep", "600"], detach=True, ports={"80/tcp": ("127.0.0.1", port)},
                                  labels={"shoal.node": f"{node}-someone-else"})
    try:
        gave_up = []
        rt = DockerRuntime(node, fast(), on_give_up=lambda s, r: gave_up.append((s, r)))
        sp = web(ports={"http": {"to": 8080}})
        async with trio.open_nursery() as n:
            await n.start(rt.run)
            rt.start(with_ports(claim(node, sp), http=port), sp)
            await until(lambda: gave_up, timeout=30)
            assert gave_up == [("web/0", f"host port 127.0.0.1:{port} (http) is already in use on node {node}")]
            n.cancel_scope.cancel()
    finally:
        other.remove(force=True)


@needs_root
async def test_a_port_the_claim_gives_no_host_port_fails_the_slot_with_the_reason(engine, node):
    gave_up = []
    rt = DockerRuntime(node, fast(), on_give_up=lambda s, r: gave_up.append((s, r)))
    sp = web(ports={"http": {"to": 8080}})
    async with trio.open_nursery() as n:
        await n.start(rt.run)
        rt.start(claim(node, sp), sp)
        await until(lambda: gave_up)
        assert gave_up == [("web/0", "no host port was assigned to port http")]
        assert not ours(engine, node)
        n.cancel_scope.cancel()


@needs_root
async def test_bridge_gateway_and_the_containers_resolvers(engine, node):
    rt = DockerRuntime(node, fast())
    sp = spec()
    async with trio.open_nursery() as n:
        await n.start(rt.run)
        gateway = await rt.bridge_gateway()
        # The engine's bridge interface carries that address on this host.
        bridge = engine.networks.get("bridge").attrs["Options"]["com.docker.network.bridge.name"]
        out = subprocess.run(["ip", "-4", "-o", "addr", "show", "dev", bridge], capture_output=True, text=True,
                             check=True).stdout
        assert gateway is not None and f"inet {gateway}/" in out, out
        # As the agent does once its DNS listens there: containers created from now on use it.
        rt.use_dns((gateway,), ("service.shoal",))
        rt.start(claim(node, sp), sp)
        await until(lambda: running(rt, "web/0"))
        [ctr] = ours(engine, node)
        resolv = ctr.exec_run(["cat", "/etc/resolv.conf"]).output.decode().splitlines()
        assert f"nameserver {gateway}" in resolv and "search service.shoal" in resolv, resolv
        n.cancel_scope.cancel()


@needs_root
async def test_a_replica_is_running_only_once_its_health_check_passed(engine, node):
    rt = DockerRuntime(node, fast())
    # shoal-demo:healthy: healthy while /tmp/healthy exists (checked every second).
    sp = spec(image="shoal-demo:healthy", command=["sh", "-c", "sleep 3; touch /tmp/healthy; sleep 600"])
    async with trio.open_nursery() as n:
        await n.start(rt.run)
        rt.start(claim(node, sp), sp)
        # The container is up, its check has not passed yet: starting, with the reason ...
        await until(lambda: rt.slot_states()["web/0"] == ("starting", "health check not passed yet"))
        assert await running(rt, "web/0") and rt.stats()["running"] == {}
        # ... running once Docker says healthy.
        await until(lambda: rt.slot_states()["web/0"] == ("running", ""), timeout=20)
        n.cancel_scope.cancel()
