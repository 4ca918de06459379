"""Joining and leaving the cluster.

How this works
--------------
Joining: `join(seeds)` resolves each seed, feeds `Join(addresses)` and waits
(bounded) for the core's `JoinCompleted` per seed, which the dispatcher hands
to `join_completed`.  A failed seed is reported with the transport's error if
our dial to it failed (`dial_result` remembers the last one per address),
else the core's.  `--join` seeds at start go through `join_with_retry`: until
at least one seed answers, retry with exponential backoff (1 s doubling to
30 s, with jitter), logging every failed seed with the reason.

Leaving: `leave()` feeds `Leave()` and waits until the leave broadcast is out
(`pending_broadcasts() == 0` in the core's view) or `LEAVE_WAIT_S` passes.
The agent then hands its replicas over (node.agent.handover) and exits
(SIGINT/SIGTERM or `POST /v1/agent/leave`).
"""

from __future__ import annotations

import logging
import random
import socket
from collections.abc import Callable
from dataclasses import dataclass, field

import trio

from gossip.config import GossipConfig
from gossip.events import Address, JoinCompleted, MemberState, OpenStream
from node.agent.config import HostPort
from node.agent.pump import Pump
from node.core.inputs import Join, Leave
from node.core.view import CoreView
from node.telemetry.eventlog import EventLog

log = logging.getLogger("shoal.agent")

LEAVE_WAIT_S = 2.0
JOIN_BACKOFF_START_S = 1.0
JOIN_BACKOFF_MAX_S = 30.0
DIAL_ERRORS_MAX = 1024


@dataclass
class _JoinWaiter:
    seeds: set[Address]
    results: dict[Address, str | None] = field(default_factory=dict)
    done: trio.Event = field(default_factory=trio.Event)


def alive_others(view: CoreView) -> list[str]:
    """Members other than us that are alive or suspect."""
    return [m.name for m in view.members()
            if m.name != view.name and m.state in (MemberState.ALIVE, MemberState.SUSPECT)]


class Membership:
    def __init__(self, pump: Pump, gossip_config: GossipConfig, events: EventLog,
                 view: Callable[[], CoreView], advertise: Callable[[], HostPort | None]) -> None:
        self._pump = pump
        self._gossip_config = gossip_config
        self._events = events
        self._view = view
        self._advertise = advertise
        self._join_waiters: list[_JoinWaiter] = []
        self._dial_errors: dict[Address, str] = {}
        self.leaving = False
        self._left = trio.Event()

    async def join(self, seeds: list[HostPort], timeout_s: float | None = None) -> dict[str, str | None]:
        """One join attempt: seed -> None (joined) or why it failed."""
        results: dict[str, str | None] = {}
        addrs: dict[Address, str] = {}
        me = self._advertise()
        for hp in seeds:
            try:
                infos = await trio.socket.getaddrinfo(hp.host, hp.port, type=socket.SOCK_STREAM)
                host = str(infos[0][4][0])
            except OSError as e:
                results[str(hp)] = f"cannot resolve {hp.host!r}: {e.strerror or e}"
                continue
            addr = Address(host, hp.port)
            if me is not None and addr == Address(me.host, me.port):
                results[str(hp)] = "that is this agent's own address"
                continue
            addrs[addr] = str(hp)
        if addrs:
            waiter = _JoinWaiter(set(addrs))
            self._join_waiters.append(waiter)
            try:
                await self._pump.feed(Join(tuple(addrs)))
                timeout = timeout_s if timeout_s is not None else self._gossip_config.tcp_timeout_s + 1.0
                with trio.move_on_after(timeout):
                    await waiter.done.wait()
            finally:
                self._join_waiters.remove(waiter)
            for addr, text in addrs.items():
                results[text] = waiter.results.get(addr, "no answer in time")
        return results

    async def join_with_retry(self, seeds: list[HostPort]) -> None:
        delay = JOIN_BACKOFF_START_S
        attempt = 1
        while True:
            results = await self.join(seeds)
            if any(err is None for err in results.values()):
                return
            for seed, err in results.items():
                log.warning("join %s failed (attempt %d): %s", seed, attempt, err)
            wait = delay * random.uniform(0.8, 1.2)
            log.info("retrying join in %.1fs", wait)
            await trio.sleep(wait)
            delay = min(delay * 2, JOIN_BACKOFF_MAX_S)
            attempt += 1

    def dial_result(self, cmd: OpenStream, error: str | None) -> None:
        """Called by the pump for each of our dials, before the core hears of it."""
        if error is not None:
            self._dial_errors[cmd.addr] = error
            if len(self._dial_errors) > DIAL_ERRORS_MAX:
                self._dial_errors.clear()
            log.debug("stream %s to %s (%s) failed: %s", cmd.stream_id, cmd.addr, cmd.purpose.value, error)
        else:
            self._dial_errors.pop(cmd.addr, None)

    def join_completed(self, ev: JoinCompleted) -> None:
        error = None
        if ev.ok:
            log.info("joined via %s (it knows %d members)", ev.seed, ev.learned)
        else:
            error = self._dial_errors.get(ev.seed) or ev.error or "failed"
        for w in list(self._join_waiters):
            if ev.seed in w.seeds and ev.seed not in w.results:
                w.results[ev.seed] = error
                if len(w.results) == len(w.seeds):
                    w.done.set()
        self._events.publish("join", seed=str(ev.seed), ok=ev.ok, error=error)

    async def leave(self) -> None:
        """Gossip our departure and wait (bounded) until it is out."""
        if self.leaving:
            await self._left.wait()
            return
        self.leaving = True
        await self._pump.feed(Leave())
        if alive_others(self._view()):
            with trio.move_on_after(LEAVE_WAIT_S):
                while self._view().pending_broadcasts() > 0:
                    await trio.sleep(self._gossip_config.gossip_interval_s / 2)
        log.info("left the cluster")
        self._left.set()
