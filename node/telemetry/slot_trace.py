"""Where a slot's time goes between its award and `running`: a debug log.

How this works: each step a slot passes on its way to running is logged on
the `shoal.trace` logger at DEBUG, one line per step, with the wall clock
in seconds (so the lines of several agents line up):

    trace slot=web/3 step=created t=1733380000.123 node=n2

The steps, and who logs them:

  awarded        the coordinator, when its auction round closes (per slot)
  claimed        the holder, when it wrote the claim the award gave it
  desired        the holder, when the claim was handed to the runtime
  created        the holder's runtime, once `docker create` returned
  started        the holder's runtime, once `docker start` returned
  running        the holder's runtime, in the first pass that lists the
                 container up (and healthy, if it has a check)
  published      the holder, when its gossiped status record says running
  seen           any other agent, when a holder's record it received says
                 the slot runs (the coordinator and rollout pacing count
                 from here)

`scripts/bench/slot_trace.py` reads these lines from the agents' logs and
prints the time between steps.  Nothing is formatted unless DEBUG is on for
`shoal.trace`, so leaving the calls in costs one level check each.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Mapping

log = logging.getLogger("shoal.trace")

STEPS = ("awarded", "claimed", "desired", "created", "started", "running", "published", "seen")


def step(slot: str, what: str, node: str, holder: str = "") -> None:
    """Log one step of `slot` at `node` (`holder`: whose record was seen)."""
    if log.isEnabledFor(logging.DEBUG):
        log.debug("trace slot=%s step=%s t=%.3f node=%s%s", slot, what, time.time(), node,
                  f" holder={holder}" if holder else "")


def running_slots(jobs: Mapping[str, tuple[tuple[int, ...], object]] | None) -> frozenset[str]:
    """The slots a runtime summary's `jobs` says run ("job/index")."""
    if not jobs:
        return frozenset()
    return frozenset(f"{job}/{i}" for job, (running, _) in jobs.items() for i in running)


class RunningSeen:
    """Per node, the slots its last record said run: logs a step for each
    slot that newly runs in the next one."""

    MAX_NODES = 10_000

    def __init__(self, what: str, me: str) -> None:
        self.what = what
        self.me = me
        self._by_node: dict[str, frozenset[str]] = {}

    def update(self, node: str, jobs: Mapping[str, tuple[tuple[int, ...], object]] | None) -> None:
        if not log.isEnabledFor(logging.DEBUG):
            return
        now = running_slots(jobs)
        before = self._by_node.get(node, frozenset())
        if len(self._by_node) >= self.MAX_NODES and node not in self._by_node:
            self._by_node.clear()
        self._by_node[node] = now
        for slot in sorted(now - before):
            step(slot, self.what, self.me, "" if node == self.me else node)


def awarded(job: str, indices: Iterable[int], node: str) -> None:
    for i in indices:
        step(f"{job}/{i}", "awarded", node)
