"""This agent's clocks, and the fault hook that sets them apart from the
machine's (chaos testing only).

How this works: an agent keeps time with trio's clock (every timer: gossip
probes and suspicion, placement, the runtime's resync, HTTP timeouts) and
reads the wall clock through `wall_ms()` (peer credentials, key epochs); the
HLC stamps of its writes are trio's time plus a wall offset taken at start
from `skew_s()` (node.agent.agent).  Normally trio's own clock runs and the
skew is 0: the machine's clocks, unchanged.

With --enable-fault-hook, two variables read once at start make the node a
machine whose clock is off: SHOAL_FAULT_CLOCK_OFFSET_S (a jump, seconds,
|S| <= 3600) and SHOAL_FAULT_CLOCK_RATE (R, 0.5-2.0; 1.05 runs 5 % fast).
`fault_clock(cfg)` builds a `FaultClock` for `trio.run(clock=...)`: its time
runs at R times the machine's monotonic clock, so every timer of the agent
fires R times as often, and `skew_s()` (the jump plus (R - 1) times the time
run since start) puts its wall clock, and with it its HLC stamps, that far
ahead: both drift together, as on a machine whose oscillator runs fast or
slow.  A value out of bounds or not a number is ignored (logged); without
the hook both variables are ignored.

Long drift does not cut the node off: once its clock is 5 s off its
peers', the core keeps cluster time (node.core.cluster_clock): job writes
are stamped with it, and so are peer credentials (Agent.cluster_wall_ms,
checked the same way within PEER_AUTH_WINDOW_S); a node running slow admits
its peers' writes the same way.  Key epochs still use this clock as is.
"""

from __future__ import annotations

import logging
import math
import os
import time

import trio

from node.agent.config import AgentConfig

log = logging.getLogger("shoal.agent")

OFFSET_ENV = "SHOAL_FAULT_CLOCK_OFFSET_S"
RATE_ENV = "SHOAL_FAULT_CLOCK_RATE"
MAX_OFFSET_S = 3600.0
MIN_RATE, MAX_RATE = 0.5, 2.0


class FaultClock(trio.abc.Clock):
    """Trio's time at `rate` times the machine's monotonic clock, from start."""

    def __init__(self, rate: float = 1.0, offset_s: float = 0.0) -> None:
        self.rate = rate
        self.offset_s = offset_s
        self._t0 = time.perf_counter()

    def start_clock(self) -> None:
        self._t0 = time.perf_counter()

    def current_time(self) -> float:
        return self._t0 + self.rate * (time.perf_counter() - self._t0)

    def deadline_to_sleep_time(self, deadline: float) -> float:
        # A deadline `d` away on this clock is d / rate away on the machine's.
        return max(0.0, (deadline - self.current_time()) / self.rate)

    def skew_s(self) -> float:
        """How far this clock's wall time is ahead of the machine's now."""
        return self.offset_s + (self.rate - 1.0) * (time.perf_counter() - self._t0)


def _read(name: str, low: float, high: float, default: float) -> float:
    text = os.environ.get(name, "").strip()
    if not text:
        return default
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not low <= value <= high:  # NaN included
        log.warning("fault hook: %s=%r ignored (expected a number from %g to %g)", name, text, low, high)
        return default
    return value


def fault_clock_offset_s(cfg: AgentConfig) -> float:
    """SHOAL_FAULT_CLOCK_OFFSET_S with the fault hook on, else 0."""
    return _read(OFFSET_ENV, -MAX_OFFSET_S, MAX_OFFSET_S, 0.0) if cfg.enable_fault_hook else 0.0


def fault_clock_rate(cfg: AgentConfig) -> float:
    """SHOAL_FAULT_CLOCK_RATE with the fault hook on, else 1."""
    return _read(RATE_ENV, MIN_RATE, MAX_RATE, 1.0) if cfg.enable_fault_hook else 1.0


def fault_clock(cfg: AgentConfig) -> FaultClock | None:
    """The clock for `trio.run` if the fault hook sets one, else None (trio's own)."""
    offset_s, rate = fault_clock_offset_s(cfg), fault_clock_rate(cfg)
    if offset_s == 0.0 and rate == 1.0:
        return None
    log.warning("fault hook: this agent's clock is %+g s off the machine's and runs at %g of its rate "
                "(chaos testing only)", offset_s, rate)
    return FaultClock(rate, offset_s)


def skew_s() -> float:
    """How far this agent's wall clock is ahead of the machine's (0 unless a
    FaultClock runs; 0 outside trio)."""
    try:
        clock = trio.lowlevel.current_clock()
    except RuntimeError:
        return 0.0
    return clock.skew_s() if isinstance(clock, FaultClock) else 0.0


def wall_ms() -> int:
    """This agent's wall clock, unix milliseconds."""
    return time.time_ns() // 1_000_000 + round(skew_s() * 1000)


def clock_json() -> dict[str, float]:
    """What /v1/agent/self says of this agent's clock."""
    try:
        clock = trio.lowlevel.current_clock()
    except RuntimeError:
        clock = None
    rate = clock.rate if isinstance(clock, FaultClock) else 1.0
    return {"wall_ms": wall_ms(), "skew_s": round(skew_s(), 3), "rate": rate}
