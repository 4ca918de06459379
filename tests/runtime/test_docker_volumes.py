"""Volumes on a real dockerd (auction.volumes): what a job's data does.

Root only (the engine fixture starts dockerd).  A Docker volume belongs to
its slot on its node: what a replica wrote there is still there for the
container that replaces it (a new version); a tmpfs gives a read-only
container somewhere to write; a host path is mounted only where the node's
operator allows it, and refused with the reason elsewhere.
"""

from __future__ import annotations

import os

import pytest
import trio

from auction.container_policy import ContainerPolicy
from auction.volumes import docker_volume_name
from node.runtime.docker import DockerRuntime
from test_docker_runtime import claim, fast, in_container, ours, running, spec, until  # same directory

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="starts dockerd: needs root")
VOLUMES = {"data": {"target": "/data"}, "scratch": {"target": "/scratch", "type": "tmpfs", "size": "8MiB"}}


@needs_root
async def test_a_slots_volume_keeps_its_data_across_a_new_version_and_tmpfs_is_writable(engine, node):
    rt = DockerRuntime(node, fast(resync_interval_s=0.3))
    v1 = spec(read_only=True, volumes=VOLUMES, env={"V": "1"})
    v2 = spec(read_only=True, volumes=VOLUMES, env={"V": "2"})
    async with trio.open_nursery() as n:
        await n.start(rt.run)
        rt.start(claim(node, v1, index=3), v1)
        await until(lambda: running(rt, "web/3"))
        [ctr] = ours(engine, node)
        assert in_container(ctr, "echo kept > /data/note")[0] == 0
        assert in_container(ctr, "echo tmp > /scratch/t && cat /scratch/t") == (0, "tmp")
        assert in_container(ctr, "touch /elsewhere")[0] != 0        # the root filesystem stays read-only
        mounts = {m["Destination"]: m for m in ctr.attrs["Mounts"]}
        assert mounts["/data"]["Name"] == docker_volume_name("web", 3, "data") == "shoal-web-3-data"
        assert mounts["/scratch"]["Type"] == "tmpfs"
        vol = engine.volumes.get("shoal-web-3-data")
        assert vol.attrs["Labels"]["shoal.slot"] == "web/3" and vol.attrs["Labels"]["shoal.node"] == node

        rt.start(claim(node, v2, index=3, rnd=2), v2)               # a new version replaces the container
        await until(lambda: [c for c in ours(engine, node, status="running")
                             if c.labels["shoal.spec_hash"] == v2.container_hash()])
        [new] = [c for c in ours(engine, node, status="running")]
        assert new.id != ctr.id
        assert in_container(new, "cat /data/note") == (0, "kept")
        assert in_container(new, "test -e /scratch/t")[0] != 0      # tmpfs went with the old container
        rt.stop("web/3", "test")
        await until(lambda: not ours(engine, node), timeout=20)
        assert engine.volumes.get("shoal-web-3-data")               # the data outlives the job's container
        n.cancel_scope.cancel()


@needs_root
async def test_a_host_path_is_mounted_only_where_its_node_allows_it(engine, node, tmp_path):
    host = tmp_path / "logs"
    host.mkdir()
    sp = spec(volumes={"logs": {"type": "host", "source": str(host), "target": "/logs"}})
    gave_up = []
    safe = DockerRuntime(node, fast(), on_give_up=lambda s, r: gave_up.append((s, r)))   # the safe policy
    async with trio.open_nursery() as n:
        await n.start(safe.run)
        safe.start(claim(node, sp), sp)
        await until(lambda: gave_up)
        [(slot, why)] = gave_up
        assert slot == "web/0" and why.startswith(f"host path {str(host)[:30]}")   # (a long path is cut)
        assert why.endswith(f"is not allowed (allow_host_paths) on {node}")
        assert not ours(engine, node)
        n.cancel_scope.cancel()
    allowing = DockerRuntime(node, fast(), policy=ContainerPolicy(allow_host_paths=frozenset({str(tmp_path)})))
    async with trio.open_nursery() as n:
        await n.start(allowing.run)
        allowing.start(claim(node, sp), sp)
        await until(lambda: running(allowing, "web/0"))
        [ctr] = ours(engine, node)
        assert in_container(ctr, "echo from-the-replica > /logs/out")[0] == 0
        assert (host / "out").read_text() == "from-the-replica\n"
        n.cancel_scope.cancel()
