"""An agent joins its cluster once its HTTP stack is imported, not while.

The import runs in a thread and holds the interpreter in turns with the
pump; a member that slow answers probes late and is suspected when many
agents start at once on a few cores (node.agent.agent says why, with the
figures).  Until then the agent answers pings, and joins no one.
"""

from __future__ import annotations

import threading

import pytest
import trio

from node.agent import agent as agent_module
from node.agent.membership import Membership
from inproc_agent import agent_starter  # same directory

DEADLINE_S = 10.0


@pytest.fixture
def start_agent(nursery, tmp_path):
    return agent_starter(nursery, tmp_path)


async def test_the_join_waits_for_the_http_stack(start_agent, monkeypatch):
    seed = await start_agent("seed")
    order: list[str] = []
    release = threading.Event()
    real_import = agent_module.import_api_server
    real_join = Membership.join_with_retry

    def slow_import(tls: bool):
        order.append("import started")
        assert release.wait(DEADLINE_S)
        server = real_import(tls)
        order.append("import done")
        return server

    async def recorded_join(self, seeds):
        order.append("join")
        await real_join(self, seeds)

    monkeypatch.setattr(agent_module, "import_api_server", slow_import)
    monkeypatch.setattr(Membership, "join_with_retry", recorded_join)
    async with trio.open_nursery() as nursery:
        async def start_joiner():
            await start_agent("joiner", join=str(seed.advertise))

        nursery.start_soon(start_joiner)
        with trio.fail_after(DEADLINE_S):
            while "import started" not in order:
                await trio.sleep(0.01)
        # The joiner gossips (its pump runs) but has not joined.
        assert "join" not in order
        assert [m.name for m in seed.view.members()] == ["seed"]
        release.set()
        with trio.fail_after(DEADLINE_S):
            while "joiner" not in {m.name for m in seed.view.members()}:
                await trio.sleep(0.02)
    assert order == ["import started", "import done", "join"]
