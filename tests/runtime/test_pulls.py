"""Image pulls (node/runtime/pulls.py) against a scripted engine: one pull per
image however many starts wait for it, a bound on pulls at once, the
registry's message on failure, progress events, and credentials handed to
the engine only."""

from __future__ import annotations

import threading
import time

import docker.errors
import pytest
import trio
import trio.testing

from node.runtime.config import DockerRuntimeConfig
from node.runtime.engine import Engine
from node.runtime.pulls import Puller, registry_host, split_reference


class ScriptedApi:
    """A docker.APIClient stand-in whose pull() streams a scripted answer."""

    def __init__(self, *, delay_s: float = 0.0, fail: Exception | None = None,
                 stream_error: str | None = None) -> None:
        self.delay_s = delay_s
        self.fail = fail
        self.stream_error = stream_error
        self.calls: list[tuple[str, dict]] = []
        self.running = 0
        self.most_at_once = 0
        self._lock = threading.Lock()

    def pull(self, repo, **kw):
        with self._lock:
            self.calls.append((repo, kw))
            self.running += 1
            self.most_at_once = max(self.most_at_once, self.running)
        try:
            if self.fail is not None:
                raise self.fail
            yield {"status": "Pulling fs layer", "id": "l1"}
            yield {"status": "Pulling fs layer", "id": "l2"}
            time.sleep(self.delay_s)
            yield {"status": "Downloading", "id": "l1", "progressDetail": {"current": 500, "total": 1000}}
            if self.stream_error:
                yield {"error": self.stream_error, "errorDetail": {"message": self.stream_error}}
                return
            yield {"status": "Download complete", "id": "l1"}
            yield {"status": "Already exists", "id": "l2"}
            yield {"status": "Pull complete", "id": "l1"}
        finally:
            with self._lock:
                self.running -= 1

    def close(self):
        pass


def make(api: ScriptedApi, **kw) -> tuple[Puller, list[dict]]:
    engine = Engine(DockerRuntimeConfig(docker_host="unix:///nonexistent"), on_change=lambda *_: None,
                    client_factory=lambda *_: api)
    engine.open()
    events: list[dict] = []
    return Puller(engine, "node-1", on_progress=events.append, **kw), events


def test_references_split_into_registry_repository_and_tag():
    assert registry_host("busybox") == "docker.io"
    assert registry_host("team/app:1") == "docker.io"
    assert registry_host("127.0.0.1:5000/app:1") == "127.0.0.1:5000"
    assert registry_host("localhost/app") == "localhost"
    assert registry_host("reg.example/team/app@sha256:ab") == "reg.example"
    assert split_reference("127.0.0.1:5000/app") == ("127.0.0.1:5000/app", None)
    assert split_reference("127.0.0.1:5000/app:2") == ("127.0.0.1:5000/app", "2")
    assert split_reference("app@sha256:ab") == ("app", "sha256:ab")


async def test_ten_starts_of_one_image_pull_it_once_and_report_progress():
    api = ScriptedApi(delay_s=0.3)
    puller, events = make(api)
    results = []

    async def start():
        results.append(await puller.ensure("reg:5000/app:1"))

    async with trio.open_nursery() as n:
        for _ in range(10):
            n.start_soon(start)
    assert results == [None] * 10
    assert len(api.calls) == 1 and api.calls[0][0] == "reg:5000/app" and api.calls[0][1]["tag"] == "1"
    states = [e["state"] for e in events]
    assert states[0] == "started" and states[-1] == "done"
    assert events[-1] == {"image": "reg:5000/app:1", "state": "done", "layers": 2, "layers_done": 2,
                          "bytes": 1000, "bytes_total": 1000}
    # Once done, a later start of a missing image pulls again (it may have been removed).
    assert await puller.ensure("reg:5000/app:1") is None and len(api.calls) == 2


async def test_pulls_at_once_are_bounded_per_node():
    api = ScriptedApi(delay_s=0.3)
    puller, _ = make(api, max_concurrent=2)
    async with trio.open_nursery() as n:
        for i in range(5):
            n.start_soon(puller.ensure, f"reg:5000/app{i}:1")
    assert len(api.calls) == 5 and api.most_at_once == 2


@pytest.fixture
def idle_jump_clock() -> trio.testing.MockClock:
    """Skips the test's sleep as autojump_clock does, but only once trio has
    had nothing to run for 50 ms of real time: the engine's calls run in
    worker threads, which trio does not count as busy, so autojump_clock
    (threshold 0) jumped to the pull's 600 s timeout while the scripted pull
    ran in its thread (3 of 4 runs failed so on a quiet machine)."""
    return trio.testing.MockClock(autojump_threshold=0.05)


async def test_always_shares_a_pull_that_just_finished_but_pulls_again_later(idle_jump_clock):
    api = ScriptedApi()
    puller, _ = make(api)
    assert await puller.ensure("app:1", always=True) is None
    assert await puller.ensure("app:1", always=True) is None
    assert len(api.calls) == 1                  # the slots of one rollout share it
    await trio.sleep(11)
    assert await puller.ensure("app:1", always=True) is None
    assert len(api.calls) == 2                  # a moved tag is seen


@pytest.mark.parametrize("api,message", [
    (ScriptedApi(fail=docker.errors.NotFound("404", explanation="manifest for reg:5000/app:1 not found: "
                                                                 "manifest unknown: manifest unknown")),
     "manifest unknown"),
    (ScriptedApi(stream_error="unauthorized: authentication required"), "unauthorized: authentication required"),
])
async def test_a_failed_pull_says_which_image_where_and_what_the_registry_said(api, message):
    puller, events = make(api)
    reason = await puller.ensure("reg:5000/app:1")
    assert reason is not None and reason.startswith("image reg:5000/app:1 could not be pulled on node-1: ")
    assert message in reason
    assert events[-1]["state"] == "failed" and events[-1]["reason"] == reason


async def test_a_pull_past_its_timeout_fails_the_start():
    api = ScriptedApi(delay_s=2.0)
    puller, _ = make(api, timeout_s=0.3)
    reason = await puller.ensure("reg:5000/slow:1")
    assert reason is not None and "timed out after 0.3 s" in reason
    assert puller.engine.health.healthy         # a slow registry is not a failing engine


async def test_credentials_go_to_the_engine_and_into_no_event():
    api = ScriptedApi()
    asked = []

    def auth_for(host):
        asked.append(host)
        return {"username": "deploy", "password": "hunter2-secret", "serveraddress": host}

    puller, events = make(api, auth_for=auth_for)
    assert await puller.ensure("reg:5000/app:1") is None
    assert asked == ["reg:5000"]
    assert api.calls[0][1]["auth_config"]["password"] == "hunter2-secret"
    assert "hunter2-secret" not in repr(events)


async def test_unreadable_credentials_fail_the_pull_saying_so():
    def auth_for(host):
        raise FileNotFoundError(2, "No such file or directory", "/etc/shoal/reg.pass")

    puller, _ = make(ScriptedApi(), auth_for=auth_for)
    reason = await puller.ensure("reg:5000/app:1")
    assert reason is not None and "credentials for reg:5000" in reason and "/etc/shoal/reg.pass" in reason


async def test_a_start_waiting_for_its_image_says_so_in_its_reason():
    api = ScriptedApi(delay_s=0.5)
    puller, _ = make(api, max_concurrent=1)
    assert puller.describe("reg:5000/a:1") is None
    async with trio.open_nursery() as n:
        n.start_soon(puller.ensure, "reg:5000/a:1")
        with trio.fail_after(5):
            while puller.describe("reg:5000/a:1") != "pulling reg:5000/a:1: 0/2 layers":
                await trio.sleep(0.01)
        n.start_soon(puller.ensure, "reg:5000/b:1")
        await trio.sleep(0.05)
        assert puller.describe("reg:5000/a:1") == "pulling reg:5000/a:1: 0/2 layers"
        assert puller.describe("reg:5000/b:1") == "waiting to pull reg:5000/b:1 (other pulls run)"
        assert puller.pulling() == ["reg:5000/a:1", "reg:5000/b:1"]
    assert puller.describe("reg:5000/a:1") is None and puller.pulling() == []


async def test_a_failed_pull_asks_the_fallback_but_always_does_not():
    asked = []

    async def from_peer(image):
        asked.append(image)
        return None if image == "app:1" else "no peer has it"

    puller, _ = make(ScriptedApi(stream_error="dial tcp: connection refused"), fallback=from_peer)
    assert await puller.ensure("app:1") is None                 # got it from a peer
    reason = await puller.ensure("app:2")
    assert "connection refused" in reason and reason.endswith("; nor from a peer: no peer has it")
    assert "connection refused" in await puller.ensure("app:3", always=True)
    assert asked == ["app:1", "app:2"]


async def test_source_peers_asks_peers_first_and_the_registry_only_when_no_peer_can_give_it():
    asked = []

    async def from_peer(image):
        asked.append(image)
        return None if image == "app:1" else "no peer has it"

    api = ScriptedApi()
    puller, _ = make(api, fallback=from_peer)
    assert await puller.ensure("app:1", prefer_peers=True) is None
    assert api.calls == []                                      # a peer had it: the registry was not asked
    assert await puller.ensure("app:2", prefer_peers=True) is None
    assert [repo for repo, _ in api.calls] == ["app"]           # no peer had it: pulled
    assert asked == ["app:1", "app:2"]

    failing, _ = make(ScriptedApi(stream_error="dial tcp: connection refused"), fallback=from_peer)
    reason = await failing.ensure("app:3", prefer_peers=True)
    assert reason.startswith("no peer could give app:3 (no peer has it); image app:3 could not be pulled"), reason
    assert "connection refused" in reason
