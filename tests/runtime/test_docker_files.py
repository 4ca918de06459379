"""A job's files on a real dockerd (auction.files, node.runtime.files).

Root only (the engine fixture starts dockerd).  What a replica sees: the
spec's text at its target, read-only, with its mode, also on a read-only
root filesystem; a new content is a new container that sees the new text;
a file deleted on the node is written again when the container starts again;
and an engine on another machine refuses files with the reason.
"""

from __future__ import annotations

import os

import pytest
import trio

from node.runtime.docker import DockerRuntime
from test_docker_runtime import claim, fast, in_container, ours, running, spec, until  # same directory

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="starts dockerd: needs root")
CONF = "listen 8080;\nworkers 2;\n"


def files(text: str, mode: str = "0444") -> dict:
    return {"app.conf": {"target": "/etc/app/app.conf", "content": text, "mode": mode},
            "token": {"target": "/run/secrets/token", "content": "s3cret", "mode": "0400"}}


@needs_root
async def test_a_replica_reads_its_files_and_a_new_content_is_a_new_container(engine, node, tmp_path):
    rt = DockerRuntime(node, fast(resync_interval_s=0.3, files_dir=str(tmp_path / "files")))
    v1 = spec(read_only=True, files=files(CONF))
    v2 = spec(read_only=True, files=files(CONF.replace("2", "4")))
    async with trio.open_nursery() as n:
        await n.start(rt.run)
        rt.start(claim(node, v1), v1)
        await until(lambda: running(rt, "web/0"))
        [ctr] = ours(engine, node)
        assert in_container(ctr, "cat /etc/app/app.conf") == (0, CONF.strip())
        assert in_container(ctr, "cat /run/secrets/token") == (0, "s3cret")
        assert in_container(ctr, "stat -c %a /etc/app/app.conf /run/secrets/token") == (0, "444\n400")
        assert in_container(ctr, "echo x > /etc/app/app.conf")[0] != 0     # read-only, even to root

        rt.start(claim(node, v2, rnd=2), v2)
        await until(lambda: [c for c in ours(engine, node, status="running")
                             if c.labels["shoal.spec_hash"] == v2.container_hash()])
        [new] = ours(engine, node, status="running")
        assert new.id != ctr.id
        assert in_container(new, "cat /etc/app/app.conf") == (0, "listen 8080;\nworkers 4;")

        # The node's copies are gone (a cleared directory): a start writes them again.
        for f in (tmp_path / "files").iterdir():
            f.unlink()
        new.stop(timeout=1)
        await until(lambda: [c for c in ours(engine, node, status="running") if c.id == new.id], timeout=30)
        assert in_container(engine.containers.get(new.id), "cat /run/secrets/token") == (0, "s3cret")
        n.cancel_scope.cancel()


@needs_root
async def test_files_are_refused_with_the_reason_when_the_engine_is_on_another_machine(engine, node):
    gave_up = []
    rt = DockerRuntime(node, fast(), on_give_up=lambda s, r: gave_up.append((s, r)))
    sp = spec(files=files(CONF))
    async with trio.open_nursery() as n:
        await n.start(rt.run)
        rt.cfg = fast(docker_host="tcp://192.0.2.1:2375")    # what the start checks; the engine stays local
        rt.start(claim(node, sp), sp)
        await until(lambda: gave_up)
        [(slot, why)] = gave_up
        assert slot == "web/0" and "need the engine on this machine" in why and "tcp://192.0.2.1:2375" in why
        assert not ours(engine, node)
        n.cancel_scope.cancel()
