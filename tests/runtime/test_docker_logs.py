"""`shoal logs --since/--timestamps` on a real dockerd (node.runtime.logs).

Root only (the engine fixture starts dockerd).
"""

from __future__ import annotations

import os
import re

import pytest
import trio

from node.runtime.docker import DockerRuntime
from test_docker_runtime import claim, fast, running, spec, until  # same directory

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="starts dockerd: needs root")
RFC3339 = re.compile(rb"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z ")


async def read(rt: DockerRuntime, **kw) -> bytes:
    got = b""
    with trio.fail_after(10):
        async for chunk in await rt.open_logs("web/0", **kw):
            got += chunk
    return got


@needs_root
async def test_since_keeps_only_the_recent_lines_and_timestamps_prefix_each(engine, node):
    rt = DockerRuntime(node, fast())
    sp = spec(command=["sh", "-c", "echo early; sleep 3; echo late; sleep 600"])
    async with trio.open_nursery() as n:
        await n.start(rt.run)
        rt.start(claim(node, sp), sp)
        await until(lambda: running(rt, "web/0"))
        with trio.fail_after(15):
            while b"late" not in await read(rt):
                await trio.sleep(0.2)
        assert await read(rt) == b"early\nlate\n"
        recent = await read(rt, since_s=2.0, timestamps=True)
        lines = recent.splitlines()
        assert len(lines) == 1 and lines[0].endswith(b" late") and RFC3339.match(lines[0]), recent
        n.cancel_scope.cancel()
