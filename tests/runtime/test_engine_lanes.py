"""A burst of slow starts does not hold back the listing that reports the
containers already running (no Docker: a scripted API client).

Seen on the testbed: 15 replicas awarded to one node at once; the pass that
would list the first started container waited behind the other starts for a
worker thread, and that replica was reported running 4 s after it ran.
"""

from __future__ import annotations

import threading

import trio

from auction.claims import Ballot, Claim
from auction.spec import validate
from node.runtime.containers import LABEL_SLOT
from node.runtime.docker import DockerRuntime, DockerRuntimeConfig

ENGINE_WORKERS = 8
SLOTS = 12      # more than the runtime's worker threads for engine calls


class SlowStartsApi:
    """Creates at once; holds every start but web/0's until `release` is set.

    web/0 turns running once `workers` held starts occupy every engine worker,
    whether or not its own start call got a worker (trio picks the order in
    which queued calls run, and web/0's start may wait behind the held ones).
    So only a listing that does not need an engine worker can report it."""

    def __init__(self, workers: int) -> None:
        self.release = threading.Event()
        self.lock = threading.Lock()
        self.made: dict[str, dict] = {}
        self.workers = workers
        self.held = 0
        self.all_workers_held = threading.Event()

    def containers(self, **_):
        with self.lock:
            return [dict(c) for c in self.made.values()]

    def images(self, **_):
        return [{"Id": "sha256:1", "RepoTags": ["busybox:latest"]}]

    def create_host_config(self, **kw):
        return kw

    def create_container(self, image, name, labels, **_):
        with self.lock:
            cid = f"c{len(self.made)}"
            self.made[cid] = {"Id": cid, "Names": [f"/{name}"], "Labels": labels, "State": "created",
                              "Status": "Created", "Created": 1, "Image": image}
        return {"Id": cid}

    def start(self, cid):
        if self.made[cid]["Labels"][LABEL_SLOT] != "web/0":
            with self.lock:
                self.held += 1
                if self.held == self.workers:
                    for c in self.made.values():
                        if c["Labels"][LABEL_SLOT] == "web/0":
                            c["State"] = "running"
                    self.all_workers_held.set()
            self.release.wait(30)
        with self.lock:
            self.made[cid]["State"] = "running"

    def events(self, **_):
        # dockerd announces web/0's start, as it would when it ran it.
        if self.all_workers_held.wait(30) and not self.release.is_set():
            yield {"Action": "start", "Actor": {"Attributes": {LABEL_SLOT: "web/0"}}}
        self.release.wait(30)

    def close(self):
        self.release.set()


async def test_a_started_replica_is_running_while_other_starts_hang():
    api = SlowStartsApi(workers=ENGINE_WORKERS)
    rt = DockerRuntime("n1", DockerRuntimeConfig(docker_host="unix:///nonexistent", concurrency=ENGINE_WORKERS),
                       client_factory=lambda *_: api)
    sp = validate({"name": "web", "image": "busybox", "command": ["sleep", "600"], "cpu": 0.01, "memory": "8MiB",
                   "replicas": SLOTS})
    async with trio.open_nursery() as nursery:
        await nursery.start(rt.run)
        for i in range(SLOTS):
            rt.start(Claim(f"web/{i}", Ballot(1, "c1"), "n1", False, sp.container_hash(), sp.demand()), sp)
        try:
            with trio.fail_after(10):
                await trio.to_thread.run_sync(api.all_workers_held.wait, 10)
                assert api.all_workers_held.is_set()
                while rt.slot_states().get("web/0", ("",))[0] != "running":
                    await trio.sleep(0.05)
            states = rt.slot_states()
            assert sum(st == "running" for st, _ in states.values()) == 1     # the others still hang
            assert len(api.containers()) == SLOTS
        finally:
            api.release.set()
            nursery.cancel_scope.cancel()
