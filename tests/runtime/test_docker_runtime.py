"""node/runtime/docker.py's DockerRuntime against a real dockerd.

Root only (skipped otherwise): the session fixture (conftest.py) runs
scripts/docker-up and scripts/build-image.  Every test uses its own node
name, so the containers it makes carry their own `shoal.node` label, and a
fixture force-removes them all afterwards, pass or fail.  A stalled engine is simulated by a Unix
socket that accepts connections and never answers (switchable to a plain
proxy to the real engine, to show recovery).
"""

from __future__ import annotations

import itertools
import os
import socket
import threading
import time
from dataclasses import replace

import pytest
import trio

from auction.claims import Ballot, Claim
from auction.container_policy import DEFAULT_CAPS, ContainerPolicy
from auction.spec import validate
from node.runtime.decision import ObservedContainer
from node.runtime.docker import (
    DockerRuntime,
    DockerRuntimeConfig,
    RollingView,
    container_name,
    normalize_image,
    rolling_allowed,
)

SOCK = "/var/run/docker.sock"
IMAGE = "shoal-demo:latest"

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="starts dockerd: needs root")


# ---- pure helpers (no docker) -----------------------------------------------------------


def test_names_and_image_refs():
    assert container_name("web/3", 7) == "shoal-web-3-7"
    assert normalize_image("busybox") == "busybox:latest"
    assert normalize_image("docker.io/library/busybox:1.36") == "busybox:1.36"
    assert normalize_image("registry.local:5000/team/app") == "registry.local:5000/team/app:latest"
    assert normalize_image("registry.local:5000/team/app:2") == "registry.local:5000/team/app:2"


def test_rolling_goes_one_slot_at_a_time():
    old = RollingView(has_old=True, has_new=False, new_running=False)
    fresh = RollingView(has_old=False, has_new=False, new_running=False)
    both = RollingView(has_old=True, has_new=True, new_running=False)
    done = RollingView(has_old=False, has_new=True, new_running=True)
    assert rolling_allowed({"a/0": old, "a/1": old, "a/2": fresh}) == {"a/0", "a/2"}
    assert rolling_allowed({"a/0": both, "a/1": old}) == set()
    assert rolling_allowed({"a/0": done, "a/1": old, "a/10": old}) == {"a/1"}
    assert rolling_allowed({"a/0": done, "a/1": done}) == set()
    # A replaced slot whose new container is ready while its old one is
    # still being stopped holds back no other slot.
    stopping = RollingView(has_old=True, has_new=True, new_running=True)
    assert rolling_allowed({"a/0": stopping, "a/1": old}) == {"a/1"}


def test_slot_states_and_images_from_the_last_pass():
    """What the agent publishes (node/status.py) and hands to placement, without an engine."""
    rt = DockerRuntime("n1", DockerRuntimeConfig(docker_host="unix:///nonexistent"))
    sp = spec(restart={"policy": "never"})
    for i in range(8):
        rt.start(claim("n1", sp, i), sp)
    b, h = "1/c1", sp.container_hash()

    def ctr(i, state, status, ballot=b, spec_hash=h):
        return ObservedContainer(f"id{i}", f"c{i}", f"web/{i}", ballot, spec_hash, state, status, i, IMAGE)

    rt._actual = {c.id: c for c in [
        ctr(0, "running", "Up 3 seconds (healthy)"),
        ctr(1, "exited", "Exited (1) 2 seconds ago"),
        ctr(2, "running", "Up 1 minute", spec_hash="older"),       # being replaced: not running yet
        ctr(3, "running", "Up 1 minute (unhealthy)"),
        ctr(5, "running", "Up 1 minute", ballot="0/c9"),           # a stale ballot's container
        ctr(6, "running", "Up 2 seconds (health: starting)"),       # up, not serving yet
        ctr(7, "running", "Up 1 minute"),                           # up, no health check
    ]}
    rt._slots["web/1"] = replace(rt._slots["web/1"], last_exit="exited 1")
    rt._slots["web/4"] = replace(rt._slots["web/4"], gave_up="image x is not on node n1")
    assert rt.slot_states() == {
        "web/0": ("running", ""), "web/1": ("failed", "exited 1"), "web/2": ("starting", ""),
        "web/3": ("failed", "Up 1 minute (unhealthy)"), "web/4": ("failed", "gave up here: image x is not on node n1"),
        "web/5": ("starting", ""), "web/6": ("starting", "health check not passed yet"),
        "web/7": ("running", "")}
    rt._slots["web/1"] = replace(rt._slots["web/1"], done="exited 0 (policy never: not restarted)")
    rt._actual["id1"] = ctr(1, "exited", "Exited (0) 2 seconds ago")
    assert rt.slot_states()["web/1"] == ("exited", "exited 0 (policy never: not restarted)")
    assert rt.stats()["running"] == {"web/0": {"ballot": b}, "web/7": {"ballot": b}}
    # Each state is about the claim start() last gave the slot: a new claim's
    # round at once, before any pass (the core reads an old "running" as starting).
    assert rt.slot_rounds() == {f"web/{i}": 1 for i in range(8)}
    rt.start(claim("n1", sp, 0, rnd=2), sp)
    assert rt.slot_rounds()["web/0"] == 2 and rt.slot_states()["web/0"] == ("starting", "")

    assert rt.images() is None                                    # not listed yet: decline nothing
    rt._images, rt._image_ids, rt._images_known = {"shoal-demo:latest"}, {"sha256:abc"}, True
    assert rt.images() == frozenset({"shoal-demo:latest", "sha256:abc"})
    # A node that pulls still reports what it has: a bid for a missing image costs a pull.
    pulling = DockerRuntime("n1", DockerRuntimeConfig(docker_host="unix:///nonexistent", pull_images=True))
    pulling._images, pulling._images_known = {"shoal-demo:latest"}, True
    assert pulling.images() == frozenset({"shoal-demo:latest"})


# ---- fixtures ------------------------------------------------------------------------------


def spec(**kw):
    d = {"name": "web", "image": IMAGE, "command": ["sleep", "600"], "cpu": 0.25, "memory": "32MiB"}
    d.update(kw)
    return validate(d)


def claim(node, sp, index=0, rnd=1, coord="c1"):
    return Claim(f"{sp.name}/{index}", Ballot(rnd, coord), node, False, sp.container_hash(), sp.demand())


def ours(engine, node, **filters):
    """Our node's containers, inspected (a container removed between the
    listing and its inspection makes the SDK raise NotFound: list again)."""
    import docker.errors
    f = {"label": f"shoal.node={node}"}
    f.update(filters)
    for _ in range(20):
        try:
            return engine.containers.list(all=True, filters=f)
        except docker.errors.NotFound:
            time.sleep(0.05)
    return engine.containers.list(all=True, filters=f)


async def until(pred, timeout=30.0, step=0.1):
    """Await pred() (sync or async) becoming truthy; return its value."""
    with trio.fail_after(timeout):
        while True:
            v = pred()
            if hasattr(v, "__await__"):
                v = await v
            if v:
                return v
            await trio.sleep(step)


def fast(**kw):
    base = {"resync_interval_s": 0.5, "adopt_grace_s": 0.0, "stop_timeout_s": 1, "call_timeout_s": 20.0}
    base.update(kw)
    return DockerRuntimeConfig(**base)


async def running(rt, slot):
    return [p for p in await rt.ps() if p["slot"] == slot and p["state"] == "running"]


# ---- the runtime on a real engine -------------------------------------------------------------


@needs_root
async def test_start_applies_labels_limits_and_network(engine, node):
    rt = DockerRuntime(node, fast())
    sp = spec(env={"GREETING": "hi"}, cpu=0.5, memory="48MiB")
    async with trio.open_nursery() as n:
        await n.start(rt.run)
        c = claim(node, sp, index=2, rnd=7, coord="coord-a")
        rt.start(c, sp)
        await until(lambda: running(rt, "web/2"))
        [ctr] = ours(engine, node)
        attrs = ctr.attrs
        assert ctr.name == "shoal-web-2-7"
        assert attrs["Config"]["Labels"] == {
            "shoal.job": "web", "shoal.slot": "web/2", "shoal.ballot": "7/coord-a",
            "shoal.node": node, "shoal.spec_hash": sp.container_hash(), "shoal.stop_grace_s": "5"}
        hc = attrs["HostConfig"]
        assert hc["NanoCpus"] == 500_000_000
        assert hc["Memory"] == 48 * 1024 * 1024
        assert hc["NetworkMode"] == "bridge"       # the spec's default network
        assert hc["RestartPolicy"]["Name"] in ("no", "")
        assert attrs["Config"]["Cmd"] == ["sleep", "600"]
        assert "GREETING=hi" in attrs["Config"]["Env"]
        assert {"SHOAL_JOB=web", "SHOAL_SLOT=2", f"SHOAL_NODE={node}"} <= set(attrs["Config"]["Env"])
        # the limits are real: the container's own cgroup says so
        out = ctr.exec_run(["cat", "/sys/fs/cgroup/memory/memory.limit_in_bytes"]).output
        assert int(out) == 48 * 1024 * 1024
        assert rt.health() == (True, "")
        n.cancel_scope.cancel()


@needs_root
async def test_an_entrypoint_replaces_the_images_and_the_command_gives_its_arguments(engine, node):
    rt = DockerRuntime(node, fast())
    sp = spec(entrypoint=["sh", "-c"], command=["echo via-entrypoint; exec sleep 600"])
    async with trio.open_nursery() as n:
        await n.start(rt.run)
        rt.start(claim(node, sp), sp)
        await until(lambda: running(rt, "web/0"))
        [ctr] = ours(engine, node)
        assert ctr.attrs["Config"]["Entrypoint"] == ["sh", "-c"]
        assert ctr.attrs["Config"]["Cmd"] == ["echo via-entrypoint; exec sleep 600"]
        await until(lambda: b"via-entrypoint" in ctr.logs())
        n.cancel_scope.cancel()


def caps(names):
    """Capability names as dockerd reports them (it may add the CAP_ prefix)."""
    return sorted(n.removeprefix("CAP_") for n in names or ())


def in_container(ctr, script):
    result = ctr.exec_run(["sh", "-c", script])
    return result.exit_code, result.output.decode().strip()


@needs_root
async def test_every_replica_is_hardened_by_default(engine, node):
    rt = DockerRuntime(node, fast())
    sp = spec()
    async with trio.open_nursery() as n:
        await n.start(rt.run)
        rt.start(claim(node, sp), sp)
        await until(lambda: running(rt, "web/0"))
        [ctr] = ours(engine, node)
        hc = ctr.attrs["HostConfig"]
        assert hc["PidsLimit"] == 1024
        assert any(o.startswith("no-new-privileges") for o in hc["SecurityOpt"])
        assert caps(hc["CapDrop"]) == ["ALL"] and caps(hc["CapAdd"]) == sorted(DEFAULT_CAPS)
        assert not hc["ReadonlyRootfs"] and not hc["Devices"]
        assert ctr.attrs["Config"]["User"] == ""
        # ... and the kernel enforces it.
        assert in_container(ctr, "grep NoNewPrivs /proc/self/status") == (0, "NoNewPrivs:\t1")
        assert in_container(ctr, "cat /sys/fs/cgroup/pids/pids.max 2>/dev/null || "
                                 "cat /sys/fs/cgroup/pids.max") == (0, "1024")
        n.cancel_scope.cancel()


@needs_root
async def test_a_job_naming_no_stop_signal_stops_with_the_images(engine, node):
    # shoal-demo says STOPSIGNAL SIGKILL (scripts/build-image): as with
    # `docker run` and Swarm, a job that names no signal is stopped with it at
    # once, not after its grace (busybox sleep as PID 1 ignores SIGTERM).
    rt = DockerRuntime(node, fast())
    plain = spec(stop_grace_s=60)
    named = spec(name="named", stop_signal="SIGTERM")
    async with trio.open_nursery() as n:
        await n.start(rt.run)
        rt.start(claim(node, plain), plain)
        rt.start(claim(node, named), named)
        await until(lambda: running(rt, "web/0"))
        await until(lambda: running(rt, "named/0"))
        signals = {c.labels["shoal.slot"]: c.attrs["Config"].get("StopSignal") for c in ours(engine, node)}
        assert signals == {"web/0": "SIGKILL", "named/0": "SIGTERM"}
        t0 = time.monotonic()
        rt.stop("web/0", "test")
        await until(lambda: "web/0" not in {c.labels["shoal.slot"] for c in ours(engine, node)}, timeout=40)
        assert time.monotonic() - t0 < 40       # its 60 s grace was not waited for
        n.cancel_scope.cancel()


@needs_root
async def test_what_a_job_asks_and_its_node_allows_is_applied(engine, node):
    policy = ContainerPolicy(allow_caps=DEFAULT_CAPS | {"NET_ADMIN"}, allow_devices=frozenset({"/dev/zero"}),
                             max_pids_limit=10_000)
    rt = DockerRuntime(node, fast(), policy=policy)
    sp = spec(cap_drop=["ALL"], cap_add=["NET_ADMIN"], user="1000:1000", read_only=True,
              devices=["/dev/zero:/dev/shoal-zero:r"], pids_limit=64)
    async with trio.open_nursery() as n:
        await n.start(rt.run)
        rt.start(claim(node, sp), sp)
        await until(lambda: running(rt, "web/0"))
        [ctr] = ours(engine, node)
        hc = ctr.attrs["HostConfig"]
        assert hc["PidsLimit"] == 64 and hc["ReadonlyRootfs"] is True
        assert caps(hc["CapDrop"]) == ["ALL"] and caps(hc["CapAdd"]) == ["NET_ADMIN"]
        assert ctr.attrs["Config"]["User"] == "1000:1000"
        assert [(d["PathOnHost"], d["PathInContainer"], d["CgroupPermissions"]) for d in hc["Devices"]] == [
            ("/dev/zero", "/dev/shoal-zero", "r")]
        assert in_container(ctr, "id -u; id -g") == (0, "1000\n1000")
        assert in_container(ctr, "touch /written")[0] != 0          # read-only root filesystem
        assert in_container(ctr, "test -c /dev/shoal-zero && head -c 4 /dev/shoal-zero >/dev/null")[0] == 0
        n.cancel_scope.cancel()


@needs_root
async def test_a_replica_its_node_does_not_allow_is_refused_with_the_reason(engine, node):
    gave_up = []
    rt = DockerRuntime(node, fast(), on_give_up=lambda s, r: gave_up.append((s, r)))   # the safe policy
    sp = spec(cap_add=["SYS_ADMIN"])
    async with trio.open_nursery() as n:
        await n.start(rt.run)
        rt.start(claim(node, sp), sp)
        await until(lambda: gave_up)
        assert gave_up == [("web/0", f"cap SYS_ADMIN is not allowed on {node}")]
        assert not ours(engine, node)       # nothing was created, let alone weakened
        n.cancel_scope.cancel()


@needs_root
async def test_stop_removes_and_logs_are_readable(engine, node):
    rt = DockerRuntime(node, fast())
    sp = spec(command=["sh", "-c", "echo hello; echo oops >&2; sleep 600"])
    async with trio.open_nursery() as n:
        await n.start(rt.run)
        rt.start(claim(node, sp), sp)
        await until(lambda: running(rt, "web/0"))
        got = b""
        with trio.fail_after(10):
            async for chunk in rt.logs("web/0", follow=True):
                got += chunk
                if b"hello" in got and b"oops" in got:
                    break
        rt.stop("web/0", "test")
        await until(lambda: not ours(engine, node), timeout=20)
        with pytest.raises(LookupError):
            async for _ in rt.logs("web/0"):
                pass
        n.cancel_scope.cancel()


@needs_root
async def test_agent_restart_adopts_running_containers(engine, node):
    sp = spec()
    c = claim(node, sp)
    rt1 = DockerRuntime(node, fast())
    async with trio.open_nursery() as n:
        await n.start(rt1.run)
        rt1.start(c, sp)
        await until(lambda: running(rt1, "web/0"))
        n.cancel_scope.cancel()
    [before] = ours(engine, node)
    started = before.attrs["State"]["StartedAt"]

    # A new runtime (the agent restarted): within its grace it removes nothing,
    # and once the claim is replayed it keeps the very same container running.
    rt2 = DockerRuntime(node, fast(adopt_grace_s=30.0))
    async with trio.open_nursery() as n:
        await n.start(rt2.run)
        await rt2.wait_ready()
        await trio.sleep(1.0)
        assert [x.id for x in ours(engine, node)] == [before.id]
        rt2.start(c, sp)
        await trio.sleep(1.5)
        [after] = ours(engine, node)
        assert after.id == before.id
        assert after.attrs["State"]["StartedAt"] == started
        assert after.status == "running"
        assert rt2.slot_status("web/0")["restarts"] == 0
        n.cancel_scope.cancel()


@needs_root
async def test_orphans_go_after_grace_and_stale_ballots_at_once(engine, node):
    sp = spec()
    rt1 = DockerRuntime(node, fast())
    async with trio.open_nursery() as n:
        await n.start(rt1.run)
        rt1.start(claim(node, sp, index=0), sp)
        rt1.start(claim(node, sp, index=1, rnd=1), sp)
        await until(lambda: len(ours(engine, node, status="running")) == 2)
        n.cancel_scope.cancel()

    rt2 = DockerRuntime(node, fast(adopt_grace_s=60.0))
    async with trio.open_nursery() as n:
        await n.start(rt2.run)
        # slot 1 was re-awarded to us under a newer ballot: the old one goes now
        rt2.start(claim(node, sp, index=1, rnd=3, coord="c2"), sp)
        await until(lambda: {c.name for c in ours(engine, node)} == {"shoal-web-0-1", "shoal-web-1-3"})
        # slot 0 is no longer ours, but only desired_complete() ends the grace
        await trio.sleep(1.0)
        assert "shoal-web-0-1" in {c.name for c in ours(engine, node)}
        rt2.desired_complete()
        await until(lambda: {c.name for c in ours(engine, node)} == {"shoal-web-1-3"})
        n.cancel_scope.cancel()


@needs_root
async def test_on_failure_restarts_with_backoff_then_gives_up(engine, node):
    gave_up = []
    rt = DockerRuntime(node, fast(), on_give_up=lambda s, r: gave_up.append((s, r)))
    sp = spec(command=["sh", "-c", "exit 3"],
              restart={"policy": "on-failure", "max_attempts": 3, "backoff_s": 0.3, "max_backoff_s": 5})
    async with trio.open_nursery() as n:
        await n.start(rt.run)
        t0 = trio.current_time()
        rt.start(claim(node, sp), sp)
        await until(lambda: gave_up, timeout=30)
        st = rt.slot_status("web/0")
        assert st["restarts"] == 3
        assert gave_up == [("web/0", gave_up[0][1])]
        assert "exited 3" in gave_up[0][1] and "exhausted" in gave_up[0][1]
        # backoff 0.3, 0.6, 1.2 s: each gap at least as long as its delay
        times = [t0] + st["restart_times"]
        gaps = [b - a for a, b in itertools.pairwise(times)]
        assert gaps[1] >= 0.6 and gaps[2] >= 1.2, gaps
        # the slot stays given up (no more restarts) until the core stops it
        await trio.sleep(1.5)
        assert rt.slot_status("web/0")["restarts"] == 3
        rt.stop("web/0", "released")
        await until(lambda: not ours(engine, node))
        n.cancel_scope.cancel()


@needs_root
async def test_always_restarts_and_a_crash_loop_gives_up(engine, node):
    gave_up = []
    rt = DockerRuntime(node, fast(crash_loop_failures=4, crash_loop_window_s=60),
                       on_give_up=lambda s, r: gave_up.append((s, r)))
    sp = spec(command=["sh", "-c", "sleep 0.2; exit 1"],
              restart={"policy": "always", "backoff_s": 0.1, "max_backoff_s": 0.4})
    async with trio.open_nursery() as n:
        await n.start(rt.run)
        rt.start(claim(node, sp), sp)
        await until(lambda: gave_up, timeout=30)
        assert "crash loop" in gave_up[0][1]
        assert rt.slot_status("web/0")["restarts"] == 3
        n.cancel_scope.cancel()


@needs_root
async def test_never_leaves_an_exited_container_alone(engine, node):
    gave_up = []
    rt = DockerRuntime(node, fast(), on_give_up=lambda s, r: gave_up.append((s, r)))
    sp = spec(command=["sh", "-c", "exit 2"], restart={"policy": "never"})
    async with trio.open_nursery() as n:
        await n.start(rt.run)
        rt.start(claim(node, sp), sp)
        await until(lambda: (rt.slot_status("web/0") or {}).get("done"))
        await trio.sleep(1.0)
        assert rt.slot_status("web/0")["restarts"] == 0 and not gave_up
        [c] = ours(engine, node)
        assert c.status == "exited" and c.attrs["State"]["ExitCode"] == 2
        n.cancel_scope.cancel()


@needs_root
async def test_unhealthy_by_spec_probe_counts_as_failed(engine, node):
    rt = DockerRuntime(node, fast())
    # healthy for ~2 s, then the probe's file goes away
    sp = spec(command=["sh", "-c", "touch /tmp/ok; sleep 2; rm /tmp/ok; sleep 600"],
              health={"command": ["test", "-e", "/tmp/ok"], "interval_s": 1, "timeout_s": 1, "retries": 1},
              restart={"policy": "always", "backoff_s": 0.1})
    async with trio.open_nursery() as n:
        await n.start(rt.run)
        rt.start(claim(node, sp), sp)
        await until(lambda: (rt.slot_status("web/0") or {}).get("restarts", 0) >= 1, timeout=30)
        assert rt.slot_status("web/0")["last_exit"] == "unhealthy"
        [c] = ours(engine, node)
        assert c.attrs["Config"]["Healthcheck"]["Test"] == ["CMD", "test", "-e", "/tmp/ok"]
        n.cancel_scope.cancel()


@needs_root
async def test_image_healthcheck_is_used_when_the_spec_has_none(engine, node):
    rt = DockerRuntime(node, fast())
    # shoal-demo:healthy is healthy while /tmp/healthy exists; this command never makes it
    sp = spec(image="shoal-demo:healthy", restart={"policy": "always", "backoff_s": 0.1})
    async with trio.open_nursery() as n:
        await n.start(rt.run)
        rt.start(claim(node, sp), sp)
        await until(lambda: (rt.slot_status("web/0") or {}).get("restarts", 0) >= 1, timeout=30)
        assert rt.slot_status("web/0")["last_exit"] == "unhealthy"
        n.cancel_scope.cancel()

    rt = DockerRuntime(node + "h", fast())
    ok = spec(image="shoal-demo:healthy", command=["sh", "-c", "touch /tmp/healthy; sleep 600"])
    try:
        async with trio.open_nursery() as n:
            await n.start(rt.run)
            rt.start(claim(node + "h", ok), ok)
            await until(lambda: [p for p in rt._actual.values() if p.health == "healthy"], timeout=20)
            n.cancel_scope.cancel()
    finally:
        for c in ours(engine, node + "h"):
            c.remove(force=True)


@needs_root
async def test_an_image_tagged_or_removed_by_hand_is_seen_at_once(engine, node):
    # The periodic listing is a minute away: only the engine's image events
    # can tell the runtime (and so the node's bids) in time.
    tag = f"shoal-by-hand/{node}:1"
    rt = DockerRuntime(node, fast(resync_interval_s=60.0, images_resync_interval_s=60.0))
    async with trio.open_nursery() as n:
        await n.start(rt.run)
        await rt.wait_ready()
        assert not rt.image_present(tag)
        try:
            engine.images.get(IMAGE).tag(tag)
            await until(lambda: rt.image_present(tag), timeout=10)
        finally:
            engine.images.remove(tag)
        await until(lambda: not rt.image_present(tag), timeout=10)
        n.cancel_scope.cancel()


async def test_missing_image_is_declined_and_given_up(engine, node):
    gave_up = []
    rt = DockerRuntime(node, fast(), on_give_up=lambda s, r: gave_up.append((s, r)))
    async with trio.open_nursery() as n:
        await n.start(rt.run)
        await rt.wait_ready()
        assert rt.image_present(IMAGE) and rt.image_present("shoal-demo")
        assert not rt.image_present("shoal-missing:nope")
        assert "not on node" in rt.image_problem("shoal-missing:nope")
        assert rt.image_problem(IMAGE) is None
        sp = spec(image="shoal-missing:nope")
        rt.start(claim(node, sp), sp)
        await until(lambda: gave_up)
        assert "shoal-missing:nope" in gave_up[0][1]
        assert not ours(engine, node)
        n.cancel_scope.cancel()


@needs_root
async def test_spec_change_replaces_one_slot_at_a_time(engine, node):
    rt = DockerRuntime(node, fast(resync_interval_s=0.3))
    a = spec(env={"V": "1"})
    b = spec(env={"V": "2"})
    async with trio.open_nursery() as n:
        await n.start(rt.run)
        for i in range(3):
            rt.start(claim(node, a, index=i), a)
        await until(lambda: len(ours(engine, node, status="running")) == 3)
        for i in range(3):
            rt.start(claim(node, b, index=i), b)
        worst_doubled, min_running = 0, 3
        with trio.fail_after(60):
            while True:
                cs = ours(engine, node)
                per_slot = {}
                for c in cs:
                    per_slot.setdefault(c.labels["shoal.slot"], []).append(c)
                # Mid-replacement: an old container and a new one not running
                # yet (an old one still stopping beside a running new one
                # holds nothing back).
                worst_doubled = max(worst_doubled, sum(
                    1 for v in per_slot.values() if len(v) > 1 and not any(
                        c.labels["shoal.spec_hash"] == b.container_hash() and c.status == "running" for c in v)))
                min_running = min(min_running, len({c.labels["shoal.slot"] for c in cs if c.status == "running"}))
                if len(cs) == 3 and all(c.labels["shoal.spec_hash"] == b.container_hash() and c.status == "running"
                                        for c in cs):
                    break
                await trio.sleep(0.05)
        assert worst_doubled <= 1          # one slot at a time until its new container runs
        assert min_running == 3            # every slot kept a running container throughout
        n.cancel_scope.cancel()


# ---- a stalled engine --------------------------------------------------------------------------


class StallingEngine:
    """A Unix socket that, while `stalled`, accepts connections and never
    answers (like dockerd with calls stuck on lost exit events); otherwise
    it forwards bytes to the real engine."""

    def __init__(self, path: str, upstream: str = SOCK) -> None:
        self.path, self.upstream = path, upstream
        self.stalled = True
        self._held: list[socket.socket] = []
        self._srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._srv.bind(path)
        self._srv.listen(64)
        self._closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self._closed:
            try:
                conn, _ = self._srv.accept()
            except OSError:
                return
            if self.stalled:
                self._held.append(conn)
                continue
            up = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            up.connect(self.upstream)
            for a, b in ((conn, up), (up, conn)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(a: socket.socket, b: socket.socket) -> None:
        try:
            while data := a.recv(65536):
                b.sendall(data)
        except OSError:
            pass
        finally:
            for s in (a, b):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def close(self) -> None:
        self._closed = True
        self._srv.close()
        for c in self._held:
            c.close()
        os.unlink(self.path)


@needs_root
async def test_a_stalled_engine_marks_the_runtime_unhealthy_and_it_recovers(engine, node, tmp_path):
    fake = StallingEngine(str(tmp_path / "stalled.sock"))
    changes = []
    cfg = fast(docker_host=f"unix://{fake.path}", call_timeout_s=0.5, failure_threshold=2,
               stall_unhealthy_after_s=1.0, healthy_after_s=1.0, resync_interval_s=0.3)
    rt = DockerRuntime(node, cfg, on_health=lambda ok, why: changes.append((ok, why)))
    try:
        async with trio.open_nursery() as n:
            await n.start(rt.run)
            sp = spec()
            rt.start(claim(node, sp), sp)   # must not block, whatever the engine does
            # the trio loop stays responsive while calls hang
            worst = 0.0
            t_end = trio.current_time() + 3.0
            while trio.current_time() < t_end:
                t = time.monotonic()
                await trio.sleep(0.01)
                worst = max(worst, time.monotonic() - t)
            assert worst < 0.5
            ok, why = rt.health()
            assert not ok and "timed out" in why, why
            assert changes and changes[0][0] is False
            assert rt.stats()["lingering_threads"] >= 1

            fake.stalled = False
            await until(lambda: rt.health()[0], timeout=30)
            assert changes[-1] == (True, "")
            # and the work that waited gets done
            await until(lambda: ours(engine, node, status="running"), timeout=30)
            n.cancel_scope.cancel()
    finally:
        fake.close()
