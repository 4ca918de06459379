"""The pump survives any one input that fails (node.agent.pump).

A stand-in core raises on chosen inputs (a core bug, a poisoned state); the
pump must count the failure in shoal_input_failures_total{kind}, log it with
its traceback, drop that input and go on with the next one.  A request
whose caller is gone by the time the reply is ready (finding 7: a TCP
stream cancelled by the transport's deadline while the agent was starved
of CPU) is a counted no-op, not an exception that ends the agent.
"""

from __future__ import annotations

import logging

import trio

from gossip.events import Address
from gossip.messages import Ping
from node.agent.pump import TIMER_RETRY_S, Pump
from node.core.inputs import Datagram, StreamIn
from node.telemetry.metrics import AgentMetrics

SRC = Address("127.0.0.1", 4000)


class FlakyCore:
    """Records what it was fed; raises on datagrams b"boom" and, when told
    to, on every timer (its deadline then stays in the past)."""

    def __init__(self, failing_timers: bool = False) -> None:
        self.fed: list[object] = []
        self.failing_timers = failing_timers
        self.timer_calls = 0

    def feed(self, inp: object, now: float) -> object:
        if isinstance(inp, Datagram) and inp.data == b"boom":
            raise RuntimeError("a bug in the core")
        self.fed.append(inp)
        return b"reply" if isinstance(inp, StreamIn) else None

    def drain(self) -> list[object]:
        return []

    def next_deadline(self) -> float | None:
        return 0.0 if self.failing_timers else None

    def next_wake(self, now: float) -> float | None:  # what the pump sleeps until
        return self.next_deadline()

    def handle_timers(self, now: float) -> None:
        self.timer_calls += 1
        raise OverflowError("Integer value out of range")


def failures(metrics: AgentMetrics, kind: str) -> float:
    return metrics.registry.get_sample_value("shoal_input_failures_total", {"kind": kind}) or 0.0


def drops(metrics: AgentMetrics, reason: str) -> float:
    return metrics.registry.get_sample_value("shoal_packets_dropped_total", {"reason": reason}) or 0.0


async def wait_for(predicate, what: str, timeout_s: float = 5.0) -> None:
    with trio.move_on_after(timeout_s):
        while not predicate():
            await trio.sleep(0.01)
        return
    raise AssertionError(f"timed out waiting for {what}")


def make_pump(metrics: AgentMetrics, dispatched: list[object] | None = None) -> Pump:
    return Pump(metrics, lambda outs, now: (dispatched or []).extend(outs), lambda cmd, err: None)


async def test_a_failing_datagram_is_counted_logged_and_the_next_one_is_handled(nursery, caplog):
    metrics = AgentMetrics()
    core = FlakyCore()
    pump = make_pump(metrics)
    nursery.start_soon(pump.run, core)
    with caplog.at_level(logging.ERROR, logger="shoal.agent"):
        pump.offer_datagram(b"boom", SRC)
        pump.offer_datagram(b"fine", SRC)
        await wait_for(lambda: core.fed, "the next datagram")
    assert core.fed == [Datagram(b"fine", SRC)]
    assert failures(metrics, "datagram") == 1
    record = next(r for r in caplog.records if "failed" in r.getMessage())
    assert record.exc_info is not None and "a bug in the core" in str(record.exc_info[1])
    # a stream's message still gets its reply afterwards
    assert await pump.stream(Ping(1, "x"), SRC) == b"reply"


async def test_failures_are_logged_rate_limited_but_all_counted(nursery, caplog):
    metrics = AgentMetrics()
    core = FlakyCore()
    pump = make_pump(metrics)
    nursery.start_soon(pump.run, core)
    with caplog.at_level(logging.ERROR, logger="shoal.agent"):
        for _ in range(50):
            pump.offer_datagram(b"boom", SRC)
        pump.offer_datagram(b"fine", SRC)
        await wait_for(lambda: core.fed, "the datagram after the failures")
    assert failures(metrics, "datagram") == 50
    assert len([r for r in caplog.records if "failed" in r.getMessage()]) == 1


async def test_timers_that_always_raise_neither_kill_nor_spin_the_pump(nursery):
    metrics = AgentMetrics()
    core = FlakyCore(failing_timers=True)
    pump = make_pump(metrics)
    nursery.start_soon(pump.run, core)
    await trio.sleep(0.5)
    pump.offer_datagram(b"fine", SRC)
    await wait_for(lambda: core.fed, "a datagram while the timers fail")
    assert failures(metrics, "timers") == core.timer_calls >= 2
    # retried every TIMER_RETRY_S, not in a tight loop
    assert core.timer_calls <= 0.6 / TIMER_RETRY_S + 2


async def test_a_reply_to_a_stream_that_was_cancelled_is_a_counted_no_op(nursery):
    metrics = AgentMetrics()
    core = FlakyCore()
    pump = make_pump(metrics)
    # The stream's handler asks, then is cancelled (the transport's deadline)
    # before the pump, starved, gets to the request: its reply channel is gone.
    with trio.move_on_after(0.05):
        await pump.stream(Ping(1, "x"), SRC)
    nursery.start_soon(pump.run, core)
    await wait_for(lambda: drops(metrics, "stream_reply_gone") == 1, "the dropped reply to be counted")
    assert core.fed == [StreamIn(Ping(1, "x"), SRC)]
    # and the pump goes on
    assert await pump.stream(Ping(2, "x"), SRC) == b"reply"
    assert failures(metrics, "stream") == 0
