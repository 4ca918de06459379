"""Global jobs on real agents (auction.global_jobs): what an operator sees.

In-process agents (tests/node/inproc_agent.py: the `local` profile, the fake
runtime).  A global job runs one replica on every node that passes its
constraints; `shoal job status` counts those nodes and says why a node that
should run one does not; it cannot be scaled.
"""

from __future__ import annotations

import httpx
import pytest
import trio

from inproc_agent import CAPACITY_2CPU_2GIB, agent_starter  # same directory
from node.cli.jobs import format_job, format_jobs

DEADLINE_S = 15.0
SPEC = {"name": "logs", "image": "busybox", "mode": "global", "cpu": 0.25, "memory": "32MiB",
        "constraints": ["rack != c"]}


@pytest.fixture
def start_agent(nursery, tmp_path):
    return agent_starter(nursery, tmp_path, **CAPACITY_2CPU_2GIB)


async def until(predicate, what: str, timeout_s: float = DEADLINE_S) -> None:
    with trio.move_on_after(timeout_s):
        while not await predicate():
            await trio.sleep(0.05)
        return
    pytest.fail(f"timed out after {timeout_s}s waiting for {what}")


async def three(start_agent):
    a = await start_agent("a", labels=("rack=a",))
    b = await start_agent("b", labels=("rack=b",), join=[str(a.advertise)])
    c = await start_agent("c", labels=("rack=c",), join=[str(a.advertise)])
    agents = (a, b, c)

    async def formed() -> bool:
        return all(len([m for m in x.view.members() if m.state.name == "ALIVE"]) == 3 for x in agents)

    await until(formed, "three alive members everywhere")
    return agents


async def test_a_global_job_runs_once_on_each_node_its_constraints_allow(start_agent):
    a, b, c = await three(start_agent)
    async with httpx.AsyncClient(base_url=c.api_url, timeout=30.0) as client:
        assert (await client.post("/v1/jobs", json=SPEC)).status_code == 201

        async def on_a_and_b() -> bool:
            return [len(x.runtime.running) for x in (a, b, c)] == [1, 1, 0]

        await until(on_a_and_b, "one replica on a and on b, none on c")

        async def both_placed() -> bool:
            j = (await client.get("/v1/jobs/logs")).json()
            return j["replicas"] == 2 and [s["state"] for s in j["slots"]] == ["placed", "placed"]

        await until(both_placed, "the status to count both")     # c's view of the claims catches up
        detail = (await client.get("/v1/jobs/logs")).json()
        assert sorted(s["node"] for s in detail["slots"]) == ["a", "b"]
        assert "global: 2 nodes" in format_job(detail)
        assert "2 (global)" in format_jobs((await client.get("/v1/jobs")).json())

        r = await client.post("/v1/jobs/logs/scale", json={"replicas": 5})
        assert r.status_code == 400 and "global job" in r.json()["error"], r.text


async def test_a_node_without_room_says_why_it_runs_none(start_agent):
    a, b, c = await three(start_agent)
    big = {**SPEC, "name": "big", "memory": "3GiB", "constraints": []}
    async with httpx.AsyncClient(base_url=a.api_url, timeout=30.0) as client:
        assert (await client.post("/v1/jobs", json=big)).status_code == 201

        async def three_pending() -> bool:
            j = (await client.get("/v1/jobs/big")).json()
            return len(j["slots"]) == 3 and all("needs" in (s["reason"] or "") for s in j["slots"])

        await until(three_pending, "a pending row for each node, saying it needs more memory")
        detail = (await client.get("/v1/jobs/big")).json()
        assert sorted(s["node"] for s in detail["slots"]) == ["a", "b", "c"]
        assert all(s["state"] == "pending" and s["index"] is None for s in detail["slots"])
        assert "memory" in format_job(detail)
    assert [len(x.runtime.running) for x in (a, b, c)] == [0, 0, 0]


async def test_a_high_priority_global_job_preempts_low_priority_replicas_and_says_so(start_agent):
    from node.cli.monitor import describe

    agents = await three(start_agent)
    a = agents[0]
    batch = {"name": "batch", "image": "busybox", "cpu": 1.0, "memory": "64MiB", "replicas": 6,
             "strategy": "spread", "priority": 20}
    async with httpx.AsyncClient(base_url=a.api_url, timeout=30.0) as client:
        assert (await client.post("/v1/jobs", json=batch)).status_code == 201

        async def full() -> bool:
            return all(len(x.runtime.running) == 2 for x in agents)     # 2 cpu each: nothing else fits

        await until(full, "two batch replicas on each node")
        agent = {"name": "agent", "image": "busybox", "mode": "global", "cpu": 0.5, "memory": "32MiB",
                 "priority": 80}
        assert (await client.post("/v1/jobs", json=agent)).status_code == 201

        async def preempted() -> bool:
            return all(sorted(s.partition("/")[0] for s in x.runtime.running) == ["agent", "batch"]
                       for x in agents)

        await until(preempted, "the agent job on every node, one batch replica gone from each")

        async def waiting() -> bool:    # no room is left for them anywhere: placed again, they would not run
            status = (await client.get("/v1/jobs/batch")).json()
            return sum(1 for s in status["slots"] if s["state"] == "pending") == 3

        await until(waiting, "the three preempted batch slots pending")
        head = format_job((await client.get("/v1/jobs/agent")).json()).splitlines()[0]
        assert "memory 32MiB, priority 80; global: 3 nodes" in head, head
    assert all(sorted(s.partition("/")[0] for s in x.runtime.running) == ["agent", "batch"] for x in agents)
    for x in agents:
        [ev] = [e for e in x.events.recent() if e["event"] == "preempted"]
        assert ev["job"] == "agent" and len(ev["victims"]) == 1 and ev["victims"][0].startswith("batch/")
        category, text = describe(ev, x.name)
        assert category == "preempt" and f"released on {x.name} for agent/" in text
        assert text.endswith(f"priority 80 over {ev['victims'][0]} (20)")
