"""This node's health: one verdict from several sources, fed to the core.

How this works: the core publishes one `healthy` flag and one reason in our
status record (`SetHealth`); an unhealthy node is called for no bids, so it
takes no new replicas.  Two parts of the agent can make it unhealthy: the
container runtime (the Docker engine stopped answering) and the state dir
(a write failed: a node that cannot persist its claims must not take new
work).  Each reports its own problem here under its source name
(`report(source, problem_or_None)`); the node is healthy when no source has
a problem, and the reason names every source that has one.  Only a change
of that verdict is fed, so one source coming back does not hide another's
problem.
"""

from __future__ import annotations

import trio

from node.agent.pump import Pump
from node.core.inputs import SetHealth

RUNTIME = "runtime"
STATE_DIR = "state dir"


class Health:
    def __init__(self, pump: Pump) -> None:
        self._pump = pump
        self._problems: dict[str, str] = {}
        self._fed: tuple[bool, str] = (True, "")  # what the core holds (it starts healthy)
        self._lock = trio.Lock()  # verdicts reach the core in the order they were made

    @property
    def problems(self) -> dict[str, str]:
        """source -> its current problem."""
        return dict(self._problems)

    def verdict(self) -> tuple[bool, str]:
        reason = "; ".join(f"{source}: {problem}" for source, problem in sorted(self._problems.items()))
        return not self._problems, reason

    async def report(self, source: str, problem: str | None) -> None:
        """Set (a text) or clear (None) the problem of one source; feed the
        core the new verdict if it changed."""
        async with self._lock:
            if problem is None:
                self._problems.pop(source, None)
            else:
                self._problems[source] = problem
            verdict = self.verdict()
            if verdict == self._fed:
                return
            self._fed = verdict
            await self._pump.feed(SetHealth(*verdict))
