"""A node's first start: its state dir's stores are created once it gossips.

What a user would notice: a fresh node that loses a job it acknowledged
(the stores must exist before the first write is answered, and once the
agent says it serves), a restart that
forgets what the first run stored, or an agent that starts on a state dir it
cannot write to (it must refuse, exit status 1, as when the stores could
not be opened).  node.agent.persistence.
"""

from __future__ import annotations

import httpx
import pytest
import trio

from node.agent.persistence import STATE_FILES
from inproc_agent import agent_starter  # same directory

JOB = {"name": "web", "image": "busybox", "replicas": 1}


@pytest.fixture
def start_agent(nursery, tmp_path):
    return agent_starter(nursery, tmp_path, cpus="2", memory="2GiB")


async def test_a_fresh_state_dir_gets_its_stores_and_keeps_the_first_job(start_agent, tmp_path):
    state = tmp_path / "a"
    assert not state.exists()
    a = await start_agent("a")  # returns once the agent serves, as agent.json says
    assert all((state / db).exists() for db in ("jobs.db", "claims.db", "versions.db"))
    async with httpx.AsyncClient(base_url=a.api_url, timeout=10.0) as c:
        r = await c.post("/v1/jobs", json=JOB)
        assert r.status_code == 201 and r.json()["durable"] is True, r.text
    a.request_exit()
    with trio.fail_after(10):
        await a.finished.wait()

    again = await start_agent("a")  # the stores exist now: opened and loaded before the core is built
    assert [e.name for e in again.view.jobs()] == ["web"]


async def test_a_state_dir_that_cannot_be_created_stops_the_start(start_agent, tmp_path):
    (tmp_path / "blocker").write_text("a file where the state dir's parent should be")
    with pytest.raises(OSError, match="state dir"):
        await start_agent("a", state_dir=str(tmp_path / "blocker" / "state"))


def test_the_files_that_make_a_state_dir_used_are_the_stores_and_node_json():
    assert {"jobs.db", "claims.db", "versions.db", "node.json", "jobs.db-wal"} <= set(STATE_FILES)
