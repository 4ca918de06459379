"""Agents run in the test's trio nursery: ephemeral gossip and API ports on
127.0.0.1, the `local` profile, a state dir under the test's tmp_path, the
fake runtime.  Test files make their `start_agent` fixture from
`agent_starter`, with the flags their agents share (for example a declared
capacity); each call may add or override flags, or pass an Agent subclass.
`agent.finished` is set once the agent's run returns.
"""

from __future__ import annotations

from pathlib import Path

import trio

from node.agent.agent import Agent
from node.agent.config import load_config

CAPACITY_2CPU_2GIB = {"cpus": "2", "memory": "2GiB", "reserve_cpus": "0", "reserve_memory": "0"}


def agent_starter(nursery: trio.Nursery, tmp_path: Path, **shared_flags: str):
    async def start(name: str, cls: type[Agent] = Agent, **flags) -> Agent:
        cfg = load_config(None, {"name": name, "bind": "127.0.0.1:0", "api": "127.0.0.1:0", "profile": "local",
                                 "state_dir": str(tmp_path / name), **shared_flags, **flags})
        agent = cls(cfg)
        agent.finished = trio.Event()

        async def run(task_status=trio.TASK_STATUS_IGNORED):
            try:
                await agent.run(handle_signals=False, task_status=task_status)
            finally:
                agent.finished.set()

        await nursery.start(run)
        return agent

    return start
