"""`shoal image preload` (node/agent/image_preload.py, the preload routes of
node/api/routes_images.py): what one node does with a request, and what the
cluster-wide route checks before it asks anyone."""

from __future__ import annotations

from types import SimpleNamespace

import httpx
import pytest
import trio
from test_api_security import KEY, TOKEN, authed, start_agent, wait_alive  # noqa: F401 -- fixture

from node.agent.image_preload import MAX_QUEUED, PreloadBusy, Preloads


class FakeRuntime:
    def __init__(self, answers: dict[str, str | None]) -> None:
        self.answers = answers
        self.present: set[str] = {"here:1"}
        self.asked: list[tuple[str, str]] = []
        self.release = trio.Event()

    def image_present(self, image: str) -> bool:
        return image in self.present

    async def image_ready(self, spec) -> str | None:
        self.asked.append((spec.image, spec.source.value))
        await self.release.wait()
        problem = self.answers.get(spec.image)
        if problem is None:
            self.present.add(spec.image)
        return problem


def preloads(rt: FakeRuntime) -> tuple[Preloads, list[tuple[str, dict]]]:
    events: list[tuple[str, dict]] = []
    agent = SimpleNamespace(name="n1", events=SimpleNamespace(publish=lambda kind, **kw: events.append((kind, kw))))
    return Preloads(agent, rt), events


async def test_a_node_gets_the_image_the_way_a_start_would_and_keeps_the_outcome():
    rt = FakeRuntime({"bad:1": "image bad:1 could not be pulled on n1: manifest unknown"})
    p, events = preloads(rt)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(p.run)
        assert p.request("here:1", False) == "present"
        assert p.request("app:1", True) == "started"
        assert p.request("app:1", True) == "running"        # one preload per image at a time
        assert p.request("bad:1", False) == "started"
        await trio.testing.wait_all_tasks_blocked()
        assert sorted(rt.asked) == [("app:1", "peers"), ("bad:1", "registry")]
        assert p.snapshot()["app:1"]["state"] == "running"
        rt.release.set()
        await trio.testing.wait_all_tasks_blocked()
        nursery.cancel_scope.cancel()
    snap = p.snapshot()
    assert snap["app:1"] == {"state": "done", "reason": "", "source": "peers"}
    assert snap["bad:1"]["state"] == "failed" and "manifest unknown" in snap["bad:1"]["reason"]
    assert [e["state"] for k, e in events if k == "image_preload" and e["image"] == "bad:1"] == ["started", "failed"]


async def test_a_full_queue_is_refused_not_grown():
    p, _ = preloads(FakeRuntime({}))
    for i in range(MAX_QUEUED):
        p.request(f"app:{i}", False)
    with pytest.raises(PreloadBusy):
        p.request("one-more:1", False)


async def test_the_preload_route_checks_the_request_and_names_the_nodes_it_asked(start_agent):  # noqa: F811
    a = await start_agent("a", api_token=TOKEN, encrypt=KEY)
    b = await start_agent("b", api_token=TOKEN, encrypt=KEY, join=[str(a.advertise)])
    await wait_alive(a, {"a", "b"})
    async with authed(a) as c:
        r = await c.post("/v1/images/preload", json={"image": "app:1", "constraints": ["zone = a"]})
        assert r.status_code == 400 and r.json()["problems"][0]["path"].startswith("constraints"), r.text
        r = await c.post("/v1/images/preload", json={"image": "app:1", "source": "peers", "pull": "always"})
        assert r.status_code == 400 and "unknown field pull" in r.json()["error"], r.text
        r = await c.post("/v1/images/preload", json={"image": "app:1", "constraints": ["zone == nowhere"]})
        assert r.status_code == 409 and "no alive node matches zone == nowhere" in r.json()["error"], r.text
        # The fake runtime keeps no images: each node says so.
        r = await c.post("/v1/images/preload", json={"image": "app:1"})
        assert r.status_code == 200, r.text
        assert [(n["node"], "no image store" in n["error"]) for n in r.json()["nodes"]] == [("a", True), ("b", True)]
    async with httpx.AsyncClient(base_url=b.api_url, timeout=10.0) as c:
        # Only the node-local route is an agent-to-agent one.
        assert (await c.post("/v1/images/preload", json={"image": "app:1"})).status_code == 401
        from node.api.forward import forward_headers
        r = await c.post("/v1/images/preload", json={"image": "app:1"},
                         headers=forward_headers(a, "POST", "/v1/images/preload"))
        assert r.status_code == 401
        r = await c.post("/v1/images/preload/local", json={"image": "app:1"},
                         headers=forward_headers(a, "POST", "/v1/images/preload/local"))
        assert r.status_code == 404 and "no image store" in r.json()["error"], r.text
