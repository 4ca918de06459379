"""Job history and the version commands through the HTTP API of an in-process agent:
history, rollback (previous and explicit), scale, restart, promote, plan."""

from __future__ import annotations

import httpx
import pytest
import trio

from node.agent.agent import Agent
from inproc_agent import CAPACITY_2CPU_2GIB, agent_starter  # same directory

SPEC = {"name": "web", "image": "busybox:1", "cpu": 0.5, "memory": "64MiB", "replicas": 2}


@pytest.fixture
def start_agent(nursery, tmp_path):
    return agent_starter(nursery, tmp_path, **CAPACITY_2CPU_2GIB)


def client(agent: Agent) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=agent.api_url, timeout=30.0, headers={"X-Shoal-Client": "alice@laptop"})


async def history(c: httpx.AsyncClient) -> list[dict]:
    r = await c.get("/v1/jobs/web/history")
    assert r.status_code == 200, r.text
    return r.json()["versions"]


async def test_history_rollback_scale_restart_promote(start_agent):
    a = await start_agent("a")
    async with client(a) as c:
        assert (await c.post("/v1/jobs", json=SPEC)).status_code == 201
        r = await c.post("/v1/jobs", json={**SPEC, "image": "busybox:2"})
        assert r.status_code == 201 and r.json()["job_version"] == "2"
        r = await c.post("/v1/jobs/web/scale", json={"replicas": 3})
        assert r.status_code == 200 and r.json()["why"] == "scale"
        vs = await history(c)
        assert [(v["version"], v["why"], v["image"], v["by"], v["agent"]) for v in vs] == [
            ("1", "submit", "busybox:1", "alice@laptop", "a"),
            ("2", "submit", "busybox:2", "alice@laptop", "a"),
            ("3", "scale", "busybox:2", "alice@laptop", "a")]
        assert [(v["changes"], v["replaces"], v["current"]) for v in vs] == [
            ([], False, False), (["image"], True, False), (["replicas"], False, True)]
        # Explicit version: the spec of version 1 comes back as version 4.
        r = await c.post("/v1/jobs/web/rollback", json={"version": "1"})
        assert r.status_code == 200, r.text
        job = (await c.get("/v1/jobs/web")).json()
        assert job["spec"]["image"] == "busybox:1" and job["replicas"] == 2
        last = (await history(c))[-1]
        assert (last["version"], last["why"], last["ref"], last["current"]) == ("4", "rollback", "1", True)
        # Default: the newest earlier version that differs (3: busybox:2, 3 replicas).
        r = await c.post("/v1/jobs/web/rollback", json={})
        assert r.status_code == 200
        assert (await history(c))[-1]["ref"] == "3"
        assert (await c.get("/v1/jobs/web")).json()["replicas"] == 3
        # Nothing to do: nothing written.
        r = await c.post("/v1/jobs/web/scale", json={"replicas": 3})
        assert r.json()["changed"] is False and len(await history(c)) == 5
        assert (await c.post("/v1/jobs/web/rollback", json={"version": "9"})).status_code == 409
        assert (await c.post("/v1/jobs/web/scale", json={"replicas": -1})).status_code == 400
        assert (await c.post("/v1/jobs/nope/scale", json={"replicas": 1})).status_code == 404
        # Restart: a new nonce replaces every container; the same file keeps it.
        r = await c.post("/v1/jobs/web/restart")
        assert r.status_code == 200
        restarted = (await history(c))[-1]
        assert restarted["why"] == "restart" and restarted["replaces"] and restarted["changes"] == ["restart_nonce"]
        nonce = restarted["spec"]["restart_nonce"]
        r = await c.post("/v1/jobs", json={**SPEC, "image": "busybox:2", "replicas": 3})
        assert r.status_code == 201 and r.json()["changed"] is False and r.json()["job_version"] == "6"
        assert (await c.get("/v1/jobs/web")).json()["spec"]["restart_nonce"] == nonce
        # Promote: marks the current container hash; a scale keeps the mark.
        r = await c.post("/v1/jobs/web/promote")
        assert r.status_code == 200 and (await history(c))[-1]["why"] == "promote"
        assert a.view.job("web").meta.promoted == a.view.spec_of(a.view.job("web")).container_hash()
        assert (await c.post("/v1/jobs/web/promote")).json()["changed"] is False
        await c.post("/v1/jobs/web/scale", json={"replicas": 1})
        assert a.view.job("web").meta.promoted != ""
        # Ten versions kept, however many were written.
        for n in range(2, 8):
            await c.post("/v1/jobs/web/scale", json={"replicas": n})
        vs = await history(c)
        assert len(vs) == 10 and vs[-1]["version"] == "14" and vs[0]["version"] == "5"
        # A stop is a version too.
        assert (await c.delete("/v1/jobs/web")).status_code == 200
        body = (await c.get("/v1/jobs/web/history")).json()
        assert body["deleted"] is True and body["versions"][-1]["why"] == "delete"
        # A rollback undoes a stop: the last spec comes back.
        assert (await c.post("/v1/jobs/web/rollback", json={})).status_code == 200
        job = (await c.get("/v1/jobs/web")).json()
        assert job["replicas"] == 7 and job["job_version"] == "16"
        assert (await c.get("/v1/jobs/nope/history")).status_code == 404


async def test_plan_says_what_would_change_and_writes_nothing(start_agent):
    a = await start_agent("a")
    async with client(a) as c:
        assert (await c.post("/v1/jobs", json=SPEC)).status_code == 201
        with trio.move_on_after(10):
            while a.view.status.allocated.cpu_millis < 1000:  # both replicas committed here
                await trio.sleep(0.05)
        r = await c.post("/v1/jobs/plan", json={**SPEC, "image": "busybox:2", "replicas": 5})
        assert r.status_code == 200, r.text
        p = r.json()
        assert p["changes"] == [{"field": "image", "old": "busybox:1", "new": "busybox:2"},
                                {"field": "replicas", "old": 2, "new": 5}]
        assert p["replaces_containers"] and p["replaced"] == [0, 1] and p["started"] == [2, 3, 4]
        # 2 cpus: two more replicas of 0.5 fit, the fifth does not.
        assert sorted(p["fits_on"]) == ["2", "3"] and list(p["unplaceable"]) == ["4"]
        assert "needs 0.5 cpu" in p["unplaceable"]["4"]
        assert len(a.view.history("web")) == 1  # nothing written
        bad = await c.post("/v1/jobs/plan", json={**SPEC, "replicas": "x"})
        assert bad.status_code == 400


async def test_history_survives_a_restart_of_the_agent(start_agent, tmp_path):
    a = await start_agent("a")
    async with client(a) as c:
        assert (await c.post("/v1/jobs", json=SPEC)).status_code == 201
        assert (await c.post("/v1/jobs/web/scale", json={"replicas": 1})).status_code == 200
        before = await history(c)
        assert (await c.post("/v1/agent/leave")).status_code == 200
    with trio.fail_after(10):
        await a.finished.wait()
    again = await start_agent("a")  # the same state dir
    async with client(again) as c:
        after = await history(c)
    assert [(v["version"], v["why"], v["by"], v["spec"]) for v in after] == \
        [(v["version"], v["why"], v["by"], v["spec"]) for v in before]
