"""Jobs, nodes, drains and blocking queries through the HTTP API of in-process agents.

Each agent runs in the test's nursery with ephemeral gossip and API ports,
the `local` profile, a declared capacity and the fake runtime; requests go
through httpx to the real hypercorn server.  Waits poll against deadlines.
"""

from __future__ import annotations

import json
import sqlite3
import time

import httpx
import pytest
import trio

from auction.spec import MAX_SPEC_BYTES, validate
from gossip import userdata
from gossip.events import Address
from gossip.swim_user import userdata_msg
from node.agent.agent import Agent
from node.core import wire
from node.core.cluster_clock import MAX_CORRECTION_MS, ClusterClock
from node.core.hlc import Stamp
from node.core.inputs import Datagram
from node.core.jobstore import Entry
from node.state.persist import PersistError
from inproc_agent import CAPACITY_2CPU_2GIB, agent_starter  # same directory

DEADLINE_S = 10.0
SPEC = {"name": "web", "image": "busybox", "cpu": 0.5, "memory": "64MiB", "replicas": 2}


@pytest.fixture
def start_agent(nursery, tmp_path):
    return agent_starter(nursery, tmp_path, **CAPACITY_2CPU_2GIB)


def client(agent: Agent) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=agent.api_url, timeout=30.0)


async def wait_for(predicate, what: str, timeout_s: float = DEADLINE_S):
    with trio.move_on_after(timeout_s):
        while True:
            if await predicate():
                return
            await trio.sleep(0.05)
    pytest.fail(f"timed out after {timeout_s}s waiting for {what}")


async def test_submit_read_and_stop_a_job(start_agent, tmp_path):
    a = await start_agent("a", labels=("rack=r1",))
    async with client(a) as c:
        r = await c.post("/v1/jobs", json=SPEC)
        assert r.status_code == 201, r.text
        body = r.json()
        assert body["name"] == "web" and body["durable"] is True
        assert int(r.headers["X-Shoal-Index"]) == body["index"] >= 1
        # durable before the answer: the row is in jobs.db already
        conn = sqlite3.connect(tmp_path / "a" / "jobs.db")
        assert conn.execute("SELECT name FROM entries").fetchall() == [("web",)]
        conn.close()
        listing = (await c.get("/v1/jobs")).json()
        assert [(j["name"], j["replicas"]) for j in listing] == [("web", 2)]

        async def placed():
            j = (await c.get("/v1/jobs/web")).json()
            return j["placed"] == 2

        await wait_for(placed, "both slots placed")
        j = (await c.get("/v1/jobs/web")).json()
        assert j["spec"]["image"] == "busybox" and j["pending"] == 0
        assert [(s["index"], s["node"], s["state"]) for s in j["slots"]] == [(0, "a", "placed"), (1, "a", "placed")]
        assert all(s["ballot"]["round"] >= 1 and s["ballot"]["coordinator"] == "a" for s in j["slots"])
        assert set(a.runtime.running) == {"web/0", "web/1"}

        me = (await c.get("/v1/agent/self")).json()
        assert me["capacity"]["cpu_millis"] == 2000 and me["labels"]["rack"] == "r1" and "arch" in me["labels"]
        assert me["drained"] is False and me["runtime"]["kind"] == "fake"
        await wait_for(lambda: _true(a.view.status.allocated.cpu_millis == 1000), "allocation published")
        me = (await c.get("/v1/agent/self")).json()
        assert me["allocated"]["cpu_millis"] == 1000 and me["free"]["cpu_millis"] == 1000

        r = await c.delete("/v1/jobs/web")
        assert r.status_code == 200 and r.json()["stopped"] is True
        assert (await c.get("/v1/jobs/web")).status_code == 404
        assert (await c.get("/v1/jobs")).json() == []
        assert (await c.delete("/v1/jobs/web")).status_code == 404
        await wait_for(lambda: _true(not a.runtime.running), "the replicas stopped")


async def _true(v: bool) -> bool:
    return v


async def test_invalid_specs_get_every_problem_with_its_path(start_agent):
    a = await start_agent("a")
    async with client(a) as c:
        bad = {"name": "Web_1", "image": "busybox", "replicas": -1, "cpu": "lots", "replica": 3,
               "env": {"1BAD": "x"}, "constraints": ["rack = a"]}
        r = await c.post("/v1/jobs", json=bad)
        assert r.status_code == 400
        body = r.json()
        assert body["error"] == "invalid job spec"
        paths = {p["path"] for p in body["problems"]}
        assert {"name", "replicas", "cpu", "replica", "constraints[0]"} <= paths, body
        assert any(p.startswith("env") for p in paths)
        assert all(p["message"] for p in body["problems"])
        # not JSON, not an object
        r = await c.post("/v1/jobs", content=b"{nope")
        assert r.status_code == 400 and "JSON syntax error" in r.json()["problems"][0]["message"]
        r = await c.post("/v1/jobs", json=[1, 2])
        assert r.status_code == 400 and r.json()["problems"][0]["path"] == ""
        assert (await c.get("/v1/jobs")).json() == []


async def test_size_bounds_answer_413(start_agent):
    a = await start_agent("a")
    async with client(a) as c:
        # a body far beyond the bound: refused before it is read
        r = await c.post("/v1/jobs", content=b"{" + b" " * (MAX_SPEC_BYTES + 64 * 1024) + b"}")
        assert r.status_code == 413 and "limit" in r.json()["error"]
        # within the body slack, but the spec itself is over 64 KiB
        big = {**SPEC, "env": {f"V{i}": "x" * 1000 for i in range(70)}}
        r = await c.post("/v1/jobs", json=big)
        assert r.status_code == 413, r.text
        assert "the limit is" in r.json()["problems"][0]["message"]
        # pretty-printed whitespace inside the slack is fine
        r = await c.post("/v1/jobs", content=json.dumps(SPEC, indent=2).encode() + b" " * 8000)
        assert r.status_code == 201
        # other bodies keep their own bound
        r = await c.post("/v1/agent/join", content=b" " * (70 * 1024))
        assert r.status_code == 413


async def test_a_write_that_is_not_durable_is_not_acknowledged(start_agent):
    a = await start_agent("a")

    def broken(items):
        raise PersistError("disk on fire")

    a.persistence.state.jobs.write = broken
    async with client(a) as c:
        r = await c.post("/v1/jobs", json=SPEC)
        assert r.status_code == 503 and "disk on fire" in r.json()["error"]
        text = (await c.get("/v1/metrics")).text
        assert 'shoal_state_writes_total{outcome="error",store="jobs"} 1.0' in text


async def test_blocking_queries(start_agent):
    a = await start_agent("a")
    async with client(a) as c:
        r = await c.get("/v1/jobs")
        index = int(r.headers["X-Shoal-Index"])
        assert index >= 1
        # an index in the past answers at once
        with trio.fail_after(2):
            r = await c.get("/v1/jobs", params={"index": index - 1, "wait": "30s"})
        assert int(r.headers["X-Shoal-Index"]) == index
        # nothing changes: the request waits out `wait`, then answers.  The
        # agent's own status record, published again whenever what it says
        # changes (as it may soon after start), bumps the index too
        # (node.agent.dispatch, PayloadUpdated): that answers early with the
        # new index, and the question is asked again from there.
        for _ in range(5):
            t0 = trio.current_time()
            r = await c.get("/v1/jobs", params={"index": index, "wait": "300ms"})
            waited = trio.current_time() - t0
            assert r.status_code == 200
            if int(r.headers["X-Shoal-Index"]) == index:
                break
            assert int(r.headers["X-Shoal-Index"]) > index
            index = int(r.headers["X-Shoal-Index"])
        assert int(r.headers["X-Shoal-Index"]) == index
        assert 0.25 <= waited < 3, waited
        # a change wakes a waiting request at once, with the new state.  A
        # wake-up may also come first from the agent's own status record
        # (above; once in CI during the 0.3 s below): a watcher asks again
        # from the index it was given, as any client of a blocking read does.
        got = {}

        async def watch():
            since = index
            for _ in range(5):
                r = await c.get("/v1/jobs", params={"index": since, "wait": "60s"})
                assert int(r.headers["X-Shoal-Index"]) > since
                since = int(r.headers["X-Shoal-Index"])
                if r.json():
                    break
            got["r"], got["t"] = r, trio.current_time()

        async with trio.open_nursery() as n:
            n.start_soon(watch)
            await trio.sleep(0.3)
            t_submit = trio.current_time()
            assert (await c.post("/v1/jobs", json=SPEC)).status_code == 201
        assert got["t"] - t_submit < 2.0
        assert int(got["r"].headers["X-Shoal-Index"]) > index
        assert [j["name"] for j in got["r"].json()] == ["web"]
        # the single job and the nodes are blocking reads too
        r = await c.get("/v1/jobs/web")
        assert int(r.headers["X-Shoal-Index"]) >= int(got["r"].headers["X-Shoal-Index"])
        assert "X-Shoal-Index" in (await c.get("/v1/nodes")).headers
        assert "X-Shoal-Index" in (await c.get("/v1/members")).headers
        # malformed parameters
        for params in ({"index": "x"}, {"index": "-1"}, {"index": "1", "wait": "soon"}):
            r = await c.get("/v1/jobs", params=params)
            assert r.status_code == 400 and r.json()["error"].split(":")[0] in ("index", "wait")


async def test_members_index_moves_when_a_member_joins(start_agent):
    a = await start_agent("a")
    async with client(a) as c:
        index = int((await c.get("/v1/members")).headers["X-Shoal-Index"])
        got = {}

        async def watch():
            got["r"] = await c.get("/v1/members", params={"index": index, "wait": "30s"})

        async with trio.open_nursery() as n:
            n.start_soon(watch)
            await trio.sleep(0.2)
            await start_agent("b", join=[str(a.advertise)])
        assert int(got["r"].headers["X-Shoal-Index"]) > index
        assert "b" in {m["name"] for m in got["r"].json()}


async def test_nodes_drain_forwarding_and_events(start_agent, tmp_path):
    a = await start_agent("a", labels=("rack=r1",))
    b = await start_agent("b", labels=("rack=r2",), join=[str(a.advertise)])

    async def both_known():
        async with client(a) as c:
            nodes = (await c.get("/v1/nodes")).json()
        return {n["name"] for n in nodes if n["status_known"] and n["status"] == "alive"} == {"a", "b"}

    await wait_for(both_known, "a to know both nodes' statuses")
    async with client(a) as c:
        nb = (await c.get("/v1/nodes/b")).json()
        assert nb["labels"]["rack"] == "r2" and nb["capacity"]["cpu_millis"] == 2000
        assert nb["eligible"] is True and nb["health"] == "passing" and nb["api"]
        assert (await c.get("/v1/nodes/nobody")).status_code == 404
        # drain b through a: forwarded to b's own API
        r = await c.post("/v1/nodes/b/drain")
        assert r.status_code == 200, r.text
        assert r.json()["drained"] is True and r.json()["forwarded_to"] == f"http://{nb['api']}"
        assert b.core.status().drained

        async def a_sees_b_drained():
            return (await c.get("/v1/nodes/b")).json()["drained"] is True

        await wait_for(a_sees_b_drained, "a to see b drained")
        assert json.loads((tmp_path / "b" / "node.json").read_text()) == {"drained": True}
        # our own node, directly
        r = await c.post("/v1/nodes/a/drain")
        assert r.status_code == 200 and r.json()["drained"] is True and "forwarded_to" not in r.json()
        r = await c.post("/v1/nodes/a/undrain")
        assert r.status_code == 200 and r.json()["drained"] is False
        assert (await c.post("/v1/nodes/nobody/drain")).status_code == 404
        # a request forwarded to the wrong agent is refused, not forwarded again
        r = await c.post("/v1/nodes/b/undrain", headers={"X-Shoal-Forwarded-By": "z"})
        assert r.status_code == 409 and "ask b's own agent" in r.json()["error"]
        events = []
        with trio.move_on_after(2):
            async with c.stream("GET", "/v1/events") as s:
                async for line in s.aiter_lines():
                    if line:
                        events.append(json.loads(line))
                        if events[-1]["event"] == "node_status" and events[-1]["node"] == "b" \
                                and events[-1]["drained"]:
                            break
        assert any(e["event"] == "node_status" and e["node"] == "b" and e["drained"] for e in events)
    # a node that left cannot be drained by anyone else: 409 says whom to ask
    async with client(b) as cb:
        assert (await cb.post("/v1/agent/leave")).status_code == 200
    with trio.fail_after(5):
        await b.finished.wait()

    async def b_left():
        async with client(a) as c:
            return (await c.get("/v1/nodes/b")).json()["status"] == "left"

    await wait_for(b_left, "a to see b left")
    async with client(a) as c:
        r = await c.post("/v1/nodes/b/undrain")
        assert r.status_code == 409 and "b is left" in r.json()["error"]


async def test_metrics_show_the_cluster_state(start_agent):
    a = await start_agent("a")
    async with client(a) as c:
        assert (await c.post("/v1/jobs", json=SPEC)).status_code == 201
        assert (await c.post("/v1/jobs", json={**SPEC, "name": "huge", "cpu": 64})).status_code == 201

        async def settled():
            text = (await c.get("/v1/metrics")).text
            # (pending counts from the submission on; coordinated once huge's first round closed)
            return ('shoal_slots{state="placed"} 2.0' in text and 'shoal_slots{state="pending"} 2.0' in text
                    and "shoal_pending_slots_coordinated 2.0" in text)

        await wait_for(settled, "2 slots placed and 2 pending (their round closed) in the metrics")
        text = (await c.get("/v1/metrics")).text
        for series in ("shoal_jobs 2.0", 'shoal_claims{holder="here"} 2.0', "shoal_placements_total 2.0",
                       'shoal_state_problems_total{store="jobs"} 0.0', "shoal_awards_accepted_total 2.0",
                       'shoal_state_writes_total{outcome="ok",store="jobs"}', "shoal_pending_slots_coordinated 2.0"):
            assert series in text, series
        assert 'shoal_auction_rounds_total{outcome="unplaced"}' in text
        huge = (await c.get("/v1/jobs/huge")).json()
        assert [s["state"] for s in huge["slots"]] == ["pending", "pending"]
        assert all("needs 64.0 cpu" in s["reason"] and "largest free is" in s["reason"] for s in huge["slots"])


async def test_a_slot_held_back_by_max_per_node_says_so(start_agent):
    """The one node has room for a third replica but holds max_per_node of
    them already: the pending slot's reason says that, and does not name the
    node as one it fits on (it did: "room on 1 node (a)")."""
    a = await start_agent("a")
    async with client(a) as c:
        spec = {**SPEC, "cpu": 0.1, "replicas": 3, "max_per_node": 2}
        assert (await c.post("/v1/jobs", json=spec)).status_code == 201

        async def round_closed():
            j = (await c.get("/v1/jobs/web")).json()
            return j["placed"] == 2 and "declined" in (j["slots"][2]["reason"] or "")

        await wait_for(round_closed, "two placed, and the third's auction round closed")
        j = (await c.get("/v1/jobs/web")).json()
        reason = j["slots"][2]["reason"]
        assert j["slots"][2]["state"] == "pending" and "room on" not in reason, reason
        assert reason.endswith("every node it fits on (a) has max_per_node = 2 replicas of web already"), reason


async def test_a_write_that_loses_to_a_newer_one_answers_409_saying_why(start_agent):
    """A member's newer write for the same job lands while ours is being made
    durable: ours lost, so the API must not answer 201."""
    a = await start_agent("a")
    await start_agent("b", join=[str(a.advertise)])
    with trio.fail_after(DEADLINE_S):
        while a.view.member("b") is None:
            await trio.sleep(0.05)
    newer_spec = validate({**SPEC, "replicas": 1}).canonical_json()
    newer = Entry("web", Stamp(int(time.time() * 1000) + 20_000, 0, "b"), newer_spec)
    forged = userdata_msg(userdata.encode_direct("b", wire.encode(wire.EntryBroadcast(newer))))
    apply = a.persistence.state.apply

    async def apply_after_a_peer_wrote(op):
        if op.token is not None:
            await a.pump.post(Datagram(forged, Address("127.0.0.1", 9)))
        await apply(op)

    a.persistence.state.apply = apply_after_a_peer_wrote
    async with client(a) as c:
        r = await c.post("/v1/jobs", json=SPEC)
        assert r.status_code == 409, r.text
        assert "lost to a submission written by b" in r.json()["error"]
        assert (await c.get("/v1/jobs/web")).json()["replicas"] == 1


async def test_the_service_catalog_lists_running_replicas_and_blocks_until_it_changes(start_agent):
    a = await start_agent("a")
    async with client(a) as c:
        r = await c.get("/v1/services")
        assert r.status_code == 200 and r.json() == []
        index = int(r.headers["X-Shoal-Index"])
        got = {}

        async def watch():
            i = index
            while True:  # a replica at a time may show up: watch until both run
                got["r"] = await c.get("/v1/services", params={"index": i, "wait": "20s"})
                i = int(got["r"].headers["X-Shoal-Index"])
                if got["r"].json() and got["r"].json()[0]["count"] == 2:
                    return

        with trio.fail_after(DEADLINE_S):
            async with trio.open_nursery() as n:
                n.start_soon(watch)
                await trio.sleep(0.2)
                assert (await c.post("/v1/jobs", json=SPEC)).status_code == 201
        [web] = got["r"].json()
        assert web["name"] == "web" and web["count"] == 2
        assert web["instances"] == [
            {"job": "web", "slot": i, "node": "a", "address": "127.0.0.1", "ports": {}, "health": "no check"}
            for i in range(2)]
        index = int(got["r"].headers["X-Shoal-Index"])
        one = await c.get("/v1/services/web")
        assert one.json() == web and int(one.headers["X-Shoal-Index"]) == index
        assert (await c.get("/v1/nodes/a")).json()["publish_address"] == "127.0.0.1"
        missing = await c.get("/v1/services/nope")
        assert missing.status_code == 404 and "no service named 'nope'" in missing.json()["error"]
        # a change that leaves the catalog as it is (a job that fits nowhere)
        # moves the jobs index but does not wake a catalog watcher
        jobs_index = int((await c.get("/v1/jobs")).headers["X-Shoal-Index"])
        t0 = trio.current_time()
        async with trio.open_nursery() as n:
            n.start_soon(lambda: _store(got, c, "/v1/services", {"index": index, "wait": "1s"}))
            await trio.sleep(0.1)
            huge = {**SPEC, "name": "huge", "cpu": 64}
            assert (await c.post("/v1/jobs", json=huge)).status_code == 201
        assert trio.current_time() - t0 >= 0.9
        assert int(got["x"].headers["X-Shoal-Index"]) == index and got["x"].json() == [web]
        assert int((await c.get("/v1/jobs")).headers["X-Shoal-Index"]) > jobs_index
        # stopping the job empties the catalog
        assert (await c.delete("/v1/jobs/web")).status_code == 200
        r = await c.get("/v1/services", params={"index": index, "wait": "10s"})
        assert r.json() in ([], [{**web, "count": 1, "instances": web["instances"][1:]}],
                            [{**web, "count": 1, "instances": web["instances"][:1]}])
        metrics = (await c.get("/v1/metrics")).text
        assert "shoal_catalog_instances" in metrics


async def _store(got, c, path, params):
    got["x"] = await c.get(path, params=params)


class _HeldClock(ClusterClock):
    """A cluster clock that keeps what the test set (no peer here to sample)."""

    def update(self, live, now):
        pass


async def test_an_agent_whose_clock_is_too_far_ahead_refuses_writes_and_says_so(start_agent):
    # As its peers' clocks would have it (node.core.cluster_clock): two hours ahead
    # of the cluster, one of which it corrects; its stamps would still be refused.
    a = await start_agent("a")
    clock = a.core.cluster_clock = _HeldClock()
    clock.estimate_ms, clock.correction_ms, clock.peers = -7_200_000, -MAX_CORRECTION_MS, 4
    async with client(a) as c:
        r = await c.post("/v1/jobs", json=SPEC)
        assert r.status_code == 503, r.text
        assert "3600 s ahead of the cluster's" in r.json()["error"] and "NTP" in r.json()["error"]
        assert (await c.get(f"/v1/jobs/{SPEC['name']}")).status_code == 404  # nothing acknowledged
        me = (await c.get("/v1/agent/self")).json()
        assert me["cluster_clock"]["offset_s"] == 7200.0 and "ahead" in me["cluster_clock"]["problem"]
        assert "shoal_clock_offset_seconds 7200.0" in (await c.get("/v1/metrics")).text
        assert "3600 s ahead of the cluster" in (await c.get("/ui")).text
