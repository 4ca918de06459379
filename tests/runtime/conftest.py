"""The real-dockerd fixtures of tests/runtime: the engine (root only; started
with scripts/docker-up and given the test images by scripts/build-image, and
stopped afterwards if it was not running before) and a node name per test
whose containers are force-removed afterwards, pass or fail."""

from __future__ import annotations

import contextlib
import itertools
import os
import socket
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SOCK = "/var/run/docker.sock"
_ids = itertools.count()


@pytest.fixture(scope="session")
def engine():
    if os.geteuid() != 0:
        pytest.skip("starts dockerd: needs root")
    already = _answers(SOCK)
    for script in ("docker-up", "build-image"):
        out = subprocess.run([str(ROOT / "scripts" / script)], check=False, capture_output=True, text=True,
                             timeout=600, stdin=subprocess.DEVNULL)
        assert out.returncode == 0, f"scripts/{script} failed:\n{out.stderr}"
    import docker
    client = docker.DockerClient(base_url=f"unix://{SOCK}", version="1.41", timeout=60)
    yield client
    client.close()
    if not already:    # we started it: leave nothing running
        subprocess.run([str(ROOT / "scripts" / "docker-down")], check=False, capture_output=True, timeout=120,
                       stdin=subprocess.DEVNULL)


def _answers(path: str) -> bool:
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(3)
            s.connect(path)
            s.sendall(b"GET /_ping HTTP/1.0\r\nHost: docker\r\n\r\n")
            return b" 200 " in s.recv(64)
    except OSError:
        return False


@pytest.fixture
def node(engine):
    """A node name of our own; every container, then every Docker volume,
    labelled with it is removed afterwards."""
    name = f"rt{os.getpid()}-{next(_ids)}"
    yield name
    for c in engine.containers.list(all=True, filters={"label": f"shoal.node={name}"}):
        with contextlib.suppress(Exception):    # gone already, or the engine is down
            c.remove(force=True)
    with contextlib.suppress(Exception):
        for v in engine.volumes.list(filters={"label": f"shoal.node={name}"}):
            with contextlib.suppress(Exception):
                v.remove(force=True)
