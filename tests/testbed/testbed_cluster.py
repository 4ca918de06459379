"""The 5-node testbed the end-to-end tests share: one bring-up for the session.

tests/testbed/conftest.py's session fixture `cluster` brings up N=5 nodes of
scripts/testbed (each its own namespace, dockerd and agent) with the `local`
gossip preset (fast failure detection) and tears them down at the end, after
which it checks from the outside that no namespace, process, mount, shim
socket, cgroup or directory of ours is left.  The testbed has its own
prefix, subnet and state dir (test_testbed.Bed), so it never touches a
testbed someone else has up.  test_e2e.py and test_networking.py both use
it: bringing five dockerds and agents up costs about half a minute of CI.

Each test submits its own jobs and stops them at the end, and starts by
making sure all five nodes run and see each other (`ensure_all_up`: a test
that power-cut a node and failed before starting it again does not fail the
next one too).  Every wait polls against a deadline; a failed wait prints the
job status, `docker ps -a` of every node and the tail of every agent's log.
"""

from __future__ import annotations

import collections
import contextlib
import ctypes
import json
import os
import queue
import socket
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

import test_testbed as tb    # same directory (pytest's default prepend import mode)

N = 5
API_VERSION = "1.41"
# Room for every replica on either side of a 2|3 split: 2 cores and 2 GiB a
# node, nothing reserved; the jobs ask 0.1-0.25 cores and 16-24 MiB.
CAPACITY = ["--agent-arg=--cpus=2", "--agent-arg=--memory=2GiB",
            "--agent-arg=--reserve-cpus=0", "--agent-arg=--reserve-memory=0"]
SLEEP = ["sleep", "600"]
CLONE_NEWNET = 0x40000000


def job(name: str, replicas: int, **kw) -> dict:
    spec = {"name": name, "image": "shoal-demo:latest", "command": SLEEP, "cpu": 0.1,
            "memory": "16MiB", "replicas": replicas}
    spec.update(kw)
    return spec


def in_netns(ns: str, fn, *args, timeout: float = 30):
    """fn(*args) run in a thread of its own that has entered network namespace
    `ns` (setns acts on the calling thread only), so every socket fn opens is
    one of that namespace's, as if a process inside it had opened it.  The
    thread ends with fn; fn's exception is raised here."""
    out: queue.Queue = queue.Queue(maxsize=1)

    def body() -> None:
        try:
            fd = os.open(f"/run/netns/{ns}", os.O_RDONLY)
            try:
                if ctypes.CDLL(None, use_errno=True).setns(fd, CLONE_NEWNET) != 0:
                    raise OSError(ctypes.get_errno(), f"setns into {ns}")
            finally:
                os.close(fd)
            out.put((True, fn(*args)))
        except BaseException as e:  # noqa: BLE001 -- handed to the caller
            out.put((False, e))

    threading.Thread(target=body, daemon=True, name=f"netns {ns}").start()
    ok, value = out.get(timeout=timeout)
    if not ok:
        raise value
    return value


class Cluster:
    """The module's testbed: its nodes' APIs and dockerds, and diagnostics."""

    def __init__(self, bed: tb.Bed) -> None:
        import docker

        self.bed = bed
        st = bed.status()
        self.token = st["token"]
        self.nodes = {n["index"]: n for n in st["nodes"]}
        self.docker = {i: docker.APIClient(base_url=n["docker_host"], version=API_VERSION, timeout=20)
                       for i, n in self.nodes.items()}
        self.seen_ids: dict[int, set[str]] = collections.defaultdict(set)

    def name(self, i: int) -> str:
        return self.nodes[i]["name"]

    def index_of(self, name: str) -> int:
        return next(i for i, n in self.nodes.items() if n["name"] == name)

    def live(self) -> list[int]:
        """Nodes whose agent and dockerd both run (as the testbed sees it)."""
        return sorted(n["index"] for n in self.bed.status()["nodes"] if n["agent_pid"] and n["dockerd_pid"])

    # ---- the API ----

    def api(self, method: str, path: str, body=None, node: int | None = None, timeout: float = 10):
        i = node if node is not None else self.live()[0]
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.nodes[i]["api"] + path, data=data, method=method,
                                     headers={"Authorization": f"Bearer {self.token}",
                                              "Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return json.loads(r.read())

    def alive_members(self, i: int) -> set[str]:
        return {m["name"] for m in self.api("GET", "/v1/members", node=i) if m["status"] == "alive"}

    def events(self, i: int, quiet_s: float = 1.5) -> list[dict]:
        """Node i's buffered events (GET /v1/events streams; we stop once it is quiet)."""
        req = urllib.request.Request(self.nodes[i]["api"] + "/v1/events",
                                     headers={"Authorization": f"Bearer {self.token}"})
        out = []
        with contextlib.suppress(TimeoutError, socket.timeout):
            with urllib.request.urlopen(req, timeout=quiet_s) as r:
                while line := r.readline():
                    out.append(json.loads(line))
        return out

    # ---- containers, from every dockerd ----

    def containers(self, job: str, nodes: list[int] | None = None, all: bool = False) -> list[dict]:
        """The job's containers on the given nodes (default: live ones), each
        with the index of the node whose dockerd has it."""
        out = []
        for i in (nodes if nodes is not None else self.live()):
            for c in self.docker[i].containers(all=all, filters={"label": f"shoal.job={job}"}):
                c["node"] = i
                self.seen_ids[i].add(c["Id"])
                out.append(c)
        return out

    def slot_counts(self, job: str, nodes: list[int] | None = None) -> collections.Counter:
        return collections.Counter(c["Labels"]["shoal.slot"] for c in self.containers(job, nodes))

    def each_slot_once(self, job: str, replicas: int, nodes: list[int] | None = None) -> bool:
        counts = self.slot_counts(job, nodes)
        return counts == collections.Counter({f"{job}/{k}": 1 for k in range(replicas)})

    def inspect(self, i: int, cid: str) -> dict | None:
        import docker.errors
        try:
            return self.docker[i].inspect_container(cid)
        except docker.errors.NotFound:
            return None

    # ---- jobs ----

    def submit(self, spec: dict) -> None:
        self.api("POST", "/v1/jobs", spec)

    def stop_job(self, job: str) -> None:
        """Stop the job and wait until none of its containers is left on a live node."""
        with contextlib.suppress(urllib.error.HTTPError):
            self.api("DELETE", f"/v1/jobs/{job}")
        self.wait(lambda: not self.containers(job, all=True), 60, f"{job}'s containers removed")

    def ensure_all_up(self, timeout: float = 60) -> None:
        """Start whatever node is down (a test that failed before restarting
        the node it power-cut), then wait_all_up."""
        for n in self.bed.status()["nodes"]:
            if not (n["agent_pid"] and n["dockerd_pid"]):
                self.bed.run("start", str(n["index"]))
        self.bed.run("heal")
        self.wait_all_up(timeout)

    def wait_all_up(self, timeout: float = 60) -> None:
        """Every node's agent and dockerd run, and every agent sees all N alive."""
        everyone = {n["name"] for n in self.nodes.values()}
        self.wait(lambda: len(self.live()) == N and all(self.alive_members(i) == everyone for i in self.live()),
                  timeout, f"all {N} nodes up and alive in every member list")

    # ---- waiting and explaining ----

    def wait(self, pred, timeout: float, what: str):
        deadline = time.monotonic() + timeout
        last_error = None
        while True:
            try:
                v = pred()
            except (OSError, ValueError, urllib.error.URLError) as e:
                v, last_error = None, e
            else:
                last_error = None
            if v:
                return v
            if time.monotonic() > deadline:
                extra = f" (last error: {last_error})" if last_error else ""
                pytest.fail(f"timed out after {timeout:g} s waiting for {what}{extra}\n{self.diagnostics()}")
            time.sleep(0.25)

    def diagnostics(self) -> str:
        lines = ["==== diagnostics ===="]
        try:
            lines.append("testbed: " + json.dumps([{k: n[k] for k in ("name", "agent_pid", "dockerd_pid", "paused")}
                                                   for n in self.bed.status()["nodes"]]))
        except Exception as e:  # noqa: BLE001 -- diagnostics never hide the failure
            lines.append(f"testbed status: {e}")
        for i in self.nodes:
            try:
                jobs = self.api("GET", "/v1/jobs", node=i, timeout=3)
                lines.append(f"-- jobs as {self.name(i)} sees them")
                for j in jobs:
                    detail = self.api("GET", f"/v1/jobs/{j['name']}", node=i, timeout=3)
                    slots = ", ".join(f"{s['index']}:{s.get('node') or '-'}:{s['state']}"
                                      + (f" ({s['reason']})" if s.get("reason") else "")
                                      for s in detail.get("slots", []))
                    lines.append(f"   {j['name']}: {j['placed']}/{j['replicas']} placed; {slots}")
                break
            except Exception as e:  # noqa: BLE001
                lines.append(f"-- jobs from {self.name(i)}: {e}")
        for i in self.nodes:
            lines.append(f"-- docker ps -a on {self.name(i)}")
            try:
                for c in self.docker[i].containers(all=True):
                    lines.append(f"   {c['Id'][:12]} {c['Names'][0]} {c['Status']} "
                                 f"slot={c['Labels'].get('shoal.slot')} ballot={c['Labels'].get('shoal.ballot')}")
            except Exception as e:  # noqa: BLE001
                lines.append(f"   (dockerd not answering: {type(e).__name__})")
        for n in self.nodes.values():
            log = Path(n["state_dir"]) / "agent.log"
            try:
                tail = log.read_text(errors="replace").splitlines()[-25:]
            except OSError as e:
                tail = [str(e)]
            lines.append(f"-- tail of {log}")
            lines += ["   " + t for t in tail]
        return "\n".join(lines)

    def log_lines(self, needle: str) -> str:
        """Every agent's log lines that mention needle, in time order."""
        lines = []
        for n in self.nodes.values():
            with contextlib.suppress(OSError):
                lines += [f"{line}  [{n['name']}]" for line in
                          (Path(n["state_dir"]) / "agent.log").read_text(errors="replace").splitlines()
                          if needle in line]
        return "\n".join(sorted(lines))

    @contextlib.contextmanager
    def explained(self):
        """Print diagnostics when a plain assert inside fails."""
        try:
            yield
        except AssertionError:
            print(self.diagnostics())
            raise


@contextlib.contextmanager
def own_testbed(workdir: Path, tag: str, nodes: int = N, prefix: str | None = None, subnet: str | None = None,
                profile: str = "local"):
    """A testbed of `nodes` nodes (its own prefix and subnet when given, so it
    may run beside the session's), up with CAPACITY, as a Cluster; at the end
    taken down, and nothing of ours may be left (namespaces, processes, the
    containers any dockerd was seen holding)."""
    bed = tb.Bed(workdir, tag)
    if prefix is not None and subnet is not None:
        bed.prefix, bed.subnet = prefix, subnet
        bed.env.update(SHOAL_TESTBED_PREFIX=prefix, SHOAL_TESTBED_SUBNET=subnet)
    cl = None
    ids: dict[int, list[str]] = {}
    try:
        bed.run("up", str(nodes), "--profile", profile, *CAPACITY)
        cl = Cluster(bed)
        yield cl
    finally:
        if cl is not None:
            ids = {i: sorted(set(tb.container_ids(n)) | cl.seen_ids[i]) for i, n in cl.nodes.items()}
            for client in cl.docker.values():
                client.close()
        out = bed.run("down", check=False)
    assert out.returncode == 0, out.stderr
    assert bed.leftovers(ids) == []
