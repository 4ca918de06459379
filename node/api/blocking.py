"""Blocking queries: an agent-local change index per resource, and waiting on it.

How this works (Consul's blocking queries, agent-local): the agent keeps one
monotonic counter; every change the pump sees bumps it and records the new
value as the index of each resource the change is relevant to
(`members`, `nodes`, `jobs`).  A read answers with its resource's index in
the `X-Shoal-Index` header.  A client that passes `?index=N` gets an answer
at once if the resource's index is already past N; otherwise the request
waits until it moves past N or `?wait=` runs out (default and cap
`MAX_WAIT_S`, 5 minutes) and then answers with whatever is current, so a
watcher loops `GET ...?index=<last X-Shoal-Index>` and sees every change
with at most one request per change.  An index is never 0 and never goes
back while the agent runs; after a restart it starts again from 1 (it is
agent-local: compare indexes only with the same agent, as in Consul).

Bumps come from the pump (synchronous, never blocks); waiters are API tasks.
Each resource has a `trio.Event` that is set and replaced on every bump, so
a bump wakes every waiter of that resource and costs nothing without them.
"""

from __future__ import annotations

import math
import re

import trio

RESOURCES = ("members", "nodes", "jobs")
MAX_WAIT_S = 300.0
_DURATION_RE = re.compile(r"\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*", re.ASCII)
_UNIT_S = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}


class Indexes:
    def __init__(self) -> None:
        self._counter = 1
        self._index = {r: 1 for r in RESOURCES}
        self._changed = {r: trio.Event() for r in RESOURCES}

    def get(self, resource: str) -> int:
        return self._index[resource]

    def bump(self, *resources: str) -> int:
        """Record a change of these resources; returns the new index."""
        self._counter += 1
        for r in resources:
            self._index[r] = self._counter
            self._changed[r].set()
            self._changed[r] = trio.Event()
        return self._counter

    async def wait_past(self, resource: str, index: int, timeout_s: float) -> int:
        """Return the resource's index once it is greater than `index`, or
        the current one after `timeout_s`."""
        with trio.move_on_after(max(0.0, timeout_s)):
            while self._index[resource] <= index:
                await self._changed[resource].wait()
        return self._index[resource]


def parse_wait(text: str | None) -> float:
    """Seconds from "5s", "250ms", "2m", "1h" or a bare number of seconds;
    None means the cap.  Capped at MAX_WAIT_S; ValueError if malformed."""
    if text is None or text == "":
        return MAX_WAIT_S
    m = _DURATION_RE.fullmatch(text)
    if m is None:
        raise ValueError(f"wait: {text[:32]!r} is not a duration like 5s, 250ms or 2m")
    seconds = float(m.group(1)) * _UNIT_S[m.group(2)]
    if not math.isfinite(seconds):
        raise ValueError(f"wait: {text[:32]!r} is not a finite duration")
    return min(seconds, MAX_WAIT_S)


def parse_index(text: str | None) -> int | None:
    """The `index` query parameter: None when absent, else a non-negative int."""
    if text is None or text == "":
        return None
    if not text.isascii() or not text.isdigit() or len(text) > 19:
        raise ValueError(f"index: {text[:32]!r} is not a non-negative integer")
    return int(text)
