"""Container options on a real dockerd (auction.container_options): what the replica's process sees.

Root only (the engine fixture starts dockerd).
"""

from __future__ import annotations

import os

import pytest
import trio

from node.runtime.docker import DockerRuntime
from test_docker_runtime import claim, fast, in_container, ours, running, spec, until  # same directory

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="starts dockerd: needs root")


@needs_root
async def test_the_replica_runs_in_its_directory_under_init_with_its_limits_hosts_labels_and_sysctls(engine, node):
    rt = DockerRuntime(node, fast())
    sp = spec(working_dir="/tmp", init=True, shm_size="16MiB",
              ulimits={"nofile": {"soft": 1000, "hard": 2000}, "nproc": 500},
              extra_hosts={"db.internal": "10.9.8.7"}, container_labels={"team": "shop"},
              sysctls={"net.core.somaxconn": "1234"}, hostname="{job}-{index}")
    async with trio.open_nursery() as n:
        await n.start(rt.run)
        rt.start(claim(node, sp), sp)
        await until(lambda: running(rt, "web/0"))
        [ctr] = ours(engine, node)
        assert in_container(ctr, "cat /proc/1/comm") == (0, "docker-init")     # init is PID 1, not sleep
        assert in_container(ctr, "readlink /proc/1/cwd; pwd") == (0, "/tmp\n/tmp")
        assert in_container(ctr, "df -k /dev/shm | tail -1 | awk '{print $2}'") == (0, "16384")
        limits = in_container(ctr, "cat /proc/self/limits")[1]
        assert "Max open files            1000                 2000                 files" in limits
        assert "Max processes             500                  500                  processes" in limits
        assert in_container(ctr, "grep db.internal /etc/hosts") == (0, "10.9.8.7\tdb.internal")
        assert ctr.labels["team"] == "shop" and ctr.labels["shoal.slot"] == "web/0"
        assert in_container(ctr, "cat /proc/sys/net/core/somaxconn") == (0, "1234")
        assert in_container(ctr, "hostname") == (0, "web-0")
        n.cancel_scope.cancel()
