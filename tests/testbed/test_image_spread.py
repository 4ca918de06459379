"""End-to-end on the testbed: images reach every node without a registry.

What issue 14 says must be shown: with no registry at all and an image
present on node 1 only, a 5-replica spread job runs on all 5 nodes; every
copy is checked (node 1 corrupts the first archive it serves through the
fault hook: that transfer must be refused and made again); and the nodes
that got the image serve it too.  Then `shoal image preload` puts a second
image (on node 2 only) onto the nodes a constraint picks, ahead of any job.

The images name a registry on a closed loopback port (127.0.0.1:1), so a
pull could only fail; the job says `source = "peers"`, so none is even
tried.  Root only; the 5-node testbed is the session's (testbed_cluster.py).
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

from testbed_cluster import N, job    # same directory (pytest's default prepend import mode)

ROOT = Path(__file__).resolve().parents[2]


def build_on(cl, i: int, tag: str, label: str, blob_bytes: int = 0) -> str:
    """An image that differs from shoal-demo by a label (and, with blob_bytes,
    a layer of its own holding that many random bytes), built in node i's
    dockerd only; its ID."""
    dockerfile = f"FROM shoal-demo:latest\nLABEL shoal.test.spread={label}\n"
    if blob_bytes:
        dockerfile += "COPY blob /blob\n"
    context = io.BytesIO()
    with tarfile.open(fileobj=context, mode="w") as tar:
        for name, data in (("Dockerfile", dockerfile.encode()), ("blob", os.urandom(blob_bytes))):
            if data or name == "Dockerfile":
                info = tarfile.TarInfo(name)
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    context.seek(0)
    out = list(cl.docker[i].build(fileobj=context, custom_context=True, tag=tag, rm=True, decode=True))
    assert not [m for m in out if "error" in m], out
    return cl.docker[i].inspect_image(tag)["Id"]


def image_id(cl, i: int, tag: str) -> str | None:
    import docker.errors
    try:
        return cl.docker[i].inspect_image(tag)["Id"]
    except docker.errors.ImageNotFound:
        return None


def remove_everywhere(cl, tag: str) -> None:
    for i in cl.live():
        if image_id(cl, i, tag) is not None:
            cl.docker[i].remove_image(tag, force=True)


def test_an_image_on_one_node_reaches_all_five_and_a_corrupted_copy_is_refused(cluster):
    cl = cluster
    cl.ensure_all_up()
    tag = f"127.0.0.1:1/spread{os.getpid()}:1"
    name = "spread"
    try:
        # A layer no other node has, large enough that the byte the fault hook
        # flips halfway through the archive falls inside it: an engine does
        # not read again a layer it already holds (shoal-demo's, on every
        # node), so a flip there would go unnoticed, rightly.
        want = build_on(cl, 1, tag, f"a{os.getpid()}", blob_bytes=8 << 20)
        assert [image_id(cl, i, tag) for i in range(2, N + 1)] == [None] * (N - 1)
        cl.api("PUT", "/v1/agent/fault", {"corrupt_serves": 1}, node=1)
        cl.submit(job(name, N, image=tag, strategy="spread", max_per_node=1, network="none", source="peers"))
        cl.wait(lambda: {c["node"] for c in cl.containers(name) if c["State"] == "running"} == set(range(1, N + 1)),
                40, f"{name} running on all {N} nodes")
        with cl.explained():
            # Every node has the very image node 1 had.
            assert {i: image_id(cl, i, tag) for i in range(1, N + 1)} == {i: want for i in range(1, N + 1)}
            events = {i: cl.events(i, quiet_s=0.5) for i in range(1, N + 1)}
            fetches = [e for es in events.values() for e in es if e.get("event") == "image_fetch"
                       and e.get("image") == tag]
            done = [e for e in fetches if e["state"] == "done"]
            failed = [e for e in fetches if e["state"] == "failed"]
            assert sorted(e["node"] for e in done) == sorted(cl.name(i) for i in range(2, N + 1)), fetches
            # The corrupted archive was refused (its config or a layer did not
            # match the image ID) and fetched again.
            assert len(failed) == 1 and failed[0]["peer"] == cl.name(1), failed
            assert "refused" in failed[0]["reason"] or "load refused" in failed[0]["reason"], failed
            # source = "peers": no node asked the (absent) registry.
            assert not [e for es in events.values() for e in es if e.get("event") == "image_pull"
                        and e.get("image") == tag]
            served = {cl.name(i): sum(e["bytes"] for e in es if e.get("event") == "image_serve"
                                      and e.get("image") == tag and e["state"] == "done")
                      for i, es in events.items()}
            print(f"bytes served per node: {json.dumps(served)}; "
                  f"sources: {sorted((e['node'], e['peer']) for e in done)}")
            assert sum(1 for e in done) == N - 1 and served[cl.name(1)] > 0
    finally:
        cl.stop_job(name)
        remove_everywhere(cl, tag)


def test_image_preload_gets_an_image_onto_the_nodes_a_constraint_picks(cluster):
    cl = cluster
    cl.ensure_all_up()
    tag = f"127.0.0.1:1/preload{os.getpid()}:1"
    try:
        want = build_on(cl, 2, tag, f"p{os.getpid()}")
        env = dict(os.environ, PYTHONPATH=str(ROOT), SHOAL_TOKEN=cl.token)
        out = subprocess.run([sys.executable, "-m", "node.cli", "image", "preload", tag, "--source", "peers",
                              "--constraint", f"host != {cl.name(3)}", "--timeout", "30",
                              "--address", cl.nodes[1]["api"]],
                             capture_output=True, text=True, timeout=60, cwd=ROOT, env=env)
        assert out.returncode == 0, out.stdout + out.stderr
        lines = out.stdout.splitlines()
        assert f"{cl.name(2)}: has it" in lines, out.stdout
        assert lines[-1] == f"{tag}: on {N - 1} of {N - 1} nodes", out.stdout
        assert not any(ln.startswith(cl.name(3)) for ln in lines), out.stdout
        assert {i: image_id(cl, i, tag) for i in range(1, N + 1)} == {i: None if i == 3 else want
                                                                      for i in range(1, N + 1)}
        # An image no node has: each node says why, and the exit status is 1.
        out = subprocess.run([sys.executable, "-m", "node.cli", "image", "preload", "127.0.0.1:1/none:1",
                              "--source", "peers", "--constraint", f"host == {cl.name(4)}", "--timeout", "30",
                              "--address", cl.nodes[1]["api"]],
                             capture_output=True, text=True, timeout=60, cwd=ROOT, env=env)
        assert out.returncode == 1, out.stdout + out.stderr
        assert f"{cl.name(4)}: failed: no peer could give 127.0.0.1:1/none:1 (no peer has it)" in out.stdout, \
            out.stdout
    finally:
        remove_everywhere(cl, tag)
