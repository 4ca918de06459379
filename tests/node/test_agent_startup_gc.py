"""`shoal agent` starts with the cyclic GC passing rarely and gets its usual
thresholds back once the agent serves, with what the start-up made frozen
out of the GC's sight.

What a user would notice if it broke: an agent that never collects cyclic
garbage (its memory grows for as long as it runs, or for as long as a start
waits), or one whose start-up, or first seconds of serving, cost the GC's
passes over every module's objects again (a slower start: docs/benchmarks.md,
agent start and "60 agents at once").
"""

from __future__ import annotations

import gc
import logging
from functools import partial
from pathlib import Path
from typing import Any

import pytest
import trio

import node.agent.agent
from node.agent.agent import Agent
from node.agent.config import load_config
from node.agent.statefile import state_file
from node.cli import agent_run
from node.cli.agent_options import parse_fast


def test_the_gc_passes_rarely_while_the_agent_starts_and_as_usual_once_it_serves(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    seen: dict[str, tuple[bool, tuple[int, ...]]] = {}
    usual = gc.get_threshold()

    frozen: dict[str, int] = {}

    async def run_agent(cfg: Any, *, on_started: Any = None, **kw: Any) -> None:
        seen["starting"] = gc.isenabled(), gc.get_threshold()
        frozen["starting"] = gc.get_freeze_count()
        tracked = len(gc.get_objects())
        on_started()  # as Agent.run does once the agent serves (below)
        seen["serving"] = gc.isenabled(), gc.get_threshold()
        frozen["serving"] = gc.get_freeze_count()
        frozen["tracked"] = tracked

    monkeypatch.setattr(node.agent.agent, "run_agent", run_agent)
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level  # agent_run sets up logging
    flags = parse_fast(["--name", "a", "--bind", "127.0.0.1:0", "--api", "127.0.0.1:0", "--profile", "local",
                        "--state-dir", str(tmp_path)])
    assert flags is not None
    try:
        agent_run.run(flags.pop("config_file"), flags)
    finally:
        gc.set_threshold(*usual)
        gc.unfreeze()  # (this test process's own objects, frozen by on_started)
        root.handlers[:], root.level = handlers, level
    assert seen == {"starting": (True, (agent_run.STARTUP_GC_THRESHOLD, *usual[1:])), "serving": (True, usual)}
    # Everything the process held then (here: the test run's objects too) is
    # left out of later passes; nothing was frozen before.
    assert frozen["starting"] == 0 and frozen["serving"] >= frozen["tracked"]


def test_on_started_is_called_once_the_agent_serves(tmp_path: Path) -> None:
    calls: list[bool] = []

    async def main() -> None:
        cfg = load_config(None, {"bind": "127.0.0.1:0", "api": "127.0.0.1:0", "profile": "local",
                                 "state_dir": str(tmp_path)})
        async with trio.open_nursery() as nursery:
            # once, with agent.json written (the API serves)
            await nursery.start(partial(Agent(cfg).run, on_started=lambda: calls.append(
                state_file(tmp_path).exists())))
            nursery.cancel_scope.cancel()

    trio.run(main)
    assert calls == [True]
