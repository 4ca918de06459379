"""End-to-end on the testbed: a real registry, and what a failed pull tells.

A registry (Debian's docker-registry, scripts/registry) runs in node 1's
namespace on 127.0.0.1, so node 1 can pull from it and the other four
cannot (their 127.0.0.1 has no registry: "connection refused").  What
issue 14 asks, through the agents rather than one runtime
(tests/runtime/test_registry_pulls.py has each case against one dockerd,
test_agent_pulls.py the wrong password and the credential greps):

  * a job whose image only the registry has runs (on node 1, or on a node
    that fetched it from node 1 once node 1 had pulled it);
  * an unknown tag leaves the slot pending with the registry's answer and
    the node it came from;
  * a stopped registry leaves it pending saying the registry cannot be
    reached.

Root only; the 5-node testbed is the session's (testbed_cluster.py).
"""

from __future__ import annotations

import os
from pathlib import Path

from test_image_spread import build_on, remove_everywhere  # same directory
from testbed_cluster import job  # same directory

ROOT = Path(__file__).resolve().parents[2]


def pending_reasons(cl, name: str) -> list[str]:
    """The slot's pending reasons as every node tells them (the coordinator
    of its latest call knows what the nodes answered)."""
    out = []
    for i in cl.live():
        detail = cl.api("GET", f"/v1/jobs/{name}", node=i, timeout=5)
        out += [s["reason"] for s in detail.get("slots", []) if s.get("reason")]
    return out


def test_registry_pulls_run_what_they_can_and_say_why_not(cluster, tmp_path):
    cl = cluster
    cl.ensure_all_up()
    port = 5000 + os.getpid() % 1000
    reg_dir = tmp_path / "registry"
    host = f"127.0.0.1:{port}"
    repo = f"{host}/reg{os.getpid()}"
    node1 = cl.name(1)
    jobs = ("regonly", "regnope", "reggone")
    cl.bed.run("exec", "1", str(ROOT / "scripts" / "registry"), "up", str(reg_dir), str(port))
    try:
        image_id = build_on(cl, 1, f"{repo}:1", f"r{os.getpid()}")
        cl.docker[1].tag(image_id, repo, "2")
        for tag in ("1", "2"):
            out = list(cl.docker[1].push(repo, tag=tag, stream=True, decode=True))
            assert not [m for m in out if "error" in m], out
        cl.docker[1].remove_image(image_id, force=True)     # only the registry has it now

        # Only in the registry: it runs, and node 1 pulled it.
        cl.submit(job("regonly", 1, image=f"{repo}:1", network="none"))
        cl.wait(lambda: [c for c in cl.containers("regonly") if c["State"] == "running"], 40,
                "regonly running")
        with cl.explained():
            pulls = [e for e in cl.events(1, quiet_s=0.5) if e.get("event") == "image_pull"
                     and e.get("image") == f"{repo}:1"]
            assert [e["state"] for e in pulls][-1] == "done", pulls
            others = [e for i in range(2, 6) for e in cl.events(i, quiet_s=0.3)
                      if e.get("event") == "image_pull" and e.get("state") == "failed"]
            assert all("connection refused" in e["reason"] for e in others), others

        # An unknown tag: pending, with the registry's answer and where.
        cl.submit(job("regnope", 1, image=f"{repo}:nope", network="none", constraints=[f"host == {node1}"]))
        said = cl.wait(lambda: [r for r in pending_reasons(cl, "regnope") if f"could not be pulled on {node1}" in r],
                       40, "regnope's pending reason")
        assert "manifest unknown" in said[0] or "not found" in said[0], said

        # The registry stopped: pending, saying it cannot be reached.
        cl.bed.run("exec", "1", str(ROOT / "scripts" / "registry"), "down", str(reg_dir))
        cl.submit(job("reggone", 1, image=f"{repo}:2", network="none", constraints=[f"host == {node1}"]))
        said = cl.wait(lambda: [r for r in pending_reasons(cl, "reggone") if f"could not be pulled on {node1}" in r],
                       40, "reggone's pending reason")
        assert "connection refused" in said[0] and "no peer has it" in said[0], said
        assert not cl.containers("reggone") and not cl.containers("regnope")
    finally:
        cl.bed.run("exec", "1", str(ROOT / "scripts" / "registry"), "down", str(reg_dir), check=False)
        for name in jobs:
            cl.stop_job(name)
        for tag in ("1", "2"):
            remove_everywhere(cl, f"{repo}:{tag}")
