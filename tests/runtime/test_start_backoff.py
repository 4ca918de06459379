"""The Docker runtime backs off a start the engine keeps failing, and takes
benign races quietly (no Docker: a scripted API client).

Seen: with the engine's bridge network missing, every start failed and the
runtime retried it on every pass, about every 60 ms.
"""

from __future__ import annotations

import logging

import docker.errors
import trio

from auction.claims import Ballot, Claim
from auction.spec import validate
from node.runtime.docker import DockerRuntime, DockerRuntimeConfig
from node.runtime.engine import RuntimeProblem, is_benign_race


class FailingApi:
    """Lists nothing, has the image, and refuses every create."""

    def __init__(self) -> None:
        self.creates = 0

    def containers(self, **_):
        return []

    def images(self, **_):
        return [{"Id": "sha256:1", "RepoTags": ["busybox:latest"]}]

    def create_host_config(self, **kw):
        return kw

    def create_container(self, *_a, **_kw):
        self.creates += 1
        raise docker.errors.APIError("500 Server Error: something odd in the engine")

    def close(self):
        pass


def _job():
    sp = validate({"name": "web", "image": "busybox", "command": ["sleep", "600"], "cpu": 0.1, "memory": "32MiB"})
    return sp, Claim("web/0", Ballot(1, "c1"), "n1", False, sp.container_hash(), sp.demand())


async def test_passes_within_the_backoff_do_not_retry_a_failed_start():
    api = FailingApi()
    rt = DockerRuntime("n1", DockerRuntimeConfig(docker_host="unix:///nonexistent", adopt_grace_s=0.0),
                       client_factory=lambda *_: api)
    rt.engine.open()
    sp, cl = _job()
    rt.start(cl, sp)
    t0 = trio.current_time()
    for _ in range(20):             # twenty passes in quick succession (events, kicks)
        await rt.reconcile_once()
    assert api.creates == 1
    book = rt._slots["web/0"]
    assert book.start_failures == 1 and book.not_before >= t0 + 0.5
    assert book.not_before in rt._wakeups   # the loop comes back when the wait ends
    await trio.sleep(book.not_before - trio.current_time() + 0.01)
    await rt.reconcile_once()
    assert api.creates == 2 and rt._slots["web/0"].start_failures == 2   # next wait: 1 s


def _problem(text: str) -> RuntimeProblem:
    try:
        raise docker.errors.APIError(text)
    except docker.errors.APIError as e:
        try:
            raise RuntimeProblem(f"docker start: {text}") from e
        except RuntimeProblem as p:
            return p


def test_docker_races_are_told_apart_from_real_problems():
    assert is_benign_race(_problem('409 Client Error: Conflict ("container abc is marked for removal and '
                                   'cannot be started")'))
    assert is_benign_race(_problem("404 Client Error: Not Found (\"No such container: abc\")"))
    assert is_benign_race(_problem("409 Client Error: Conflict (\"removal of container abc is already in "
                                   "progress\")"))
    assert not is_benign_race(_problem("404 Client Error: Not Found (\"No such image: busybox:latest\")"))
    assert not is_benign_race(_problem("500 Server Error: failed to create endpoint on network bridge"))


async def test_a_race_is_logged_at_debug_and_a_real_problem_as_a_warning(caplog):
    rt = DockerRuntime("n1", DockerRuntimeConfig(docker_host="unix:///nonexistent"), client_factory=lambda *_: None)
    caplog.set_level(logging.DEBUG, logger="shoal.runtime")
    for text in ('409 Client Error: Conflict ("container abc is marked for removal and cannot be started")',
                 "500 Server Error: something odd"):
        async def act(text=text):
            raise _problem(text)
        await rt._guarded("slot:web/0", act)
    levels = [(r.levelno, "marked for removal" in r.getMessage()) for r in caplog.records]
    assert levels == [(logging.DEBUG, True), (logging.WARNING, False)]
