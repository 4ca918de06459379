"""The pump: the one task that touches the node core.

How this works
--------------
Everyone talks to the core through one bounded input channel, and the pump
task alone takes from it.  Each turn it waits for the next item or the core's
next deadline (`core.next_wake(now)`, on trio's clock: the core's timers
but those that would do nothing, such as an idle gossip tick, which then
fire at the next wake-up instead), feeds the item (an
input value from node.core.inputs: `core.feed(input, now)`) or fires the
timers (`core.handle_timers(now)`), drains the outputs and hands them to the
dispatcher, with no `await` between feeding and dispatching.  Dispatch never
blocks (see node.agent.dispatch).

What goes into the channel:
  * datagrams, with `offer_datagram` (`send_nowait`): dropped and counted as
    `input_queue_full` when the pump is behind, as memberlist drops past its
    handoff queue;
  * fire-and-forget inputs with `post` (the persistence task's `Persisted`);
  * requests with `feed(input)`: the pump feeds it and sends back what
    `core.feed` returned or raised (`StreamIn` for an inbound TCP stream,
    `WriteJob`, `Join`, `SetDrained`, ...).  `feed_tracked` also returns a
    `StreamTracker` for the TCP streams that input opened, so a caller can
    wait for e.g. the outcome of a cluster-wide key change;
  * the results of our own dials (`dial_result`), fed as `StreamReply`.

Reads do not go through the pump: they use the core's read-only view
(node.core.view) between pump turns; see there why that is consistent.

Failures: nothing an input does may end the pump (the pump ending ends the
agent).  Whatever raises while handling one input, a datagram, a stream's
message, a dial's result, a posted input, the timers, or the dispatch of
one output, is caught (`Exception`, never trio's Cancelled), counted in
shoal_input_failures_total{kind}, logged with its traceback at most once
per interval per kind (node.agent.droplog), and that input is dropped; the
pump goes on with the next.  Timers that raise are not fired again for
TIMER_RETRY_S, so a core that fails on every timer stays responsive
instead of spinning.  A request's caller may be gone by the time its reply
is ready (a TCP stream cancelled by the transport's deadline while the pump
was starved of CPU): that reply is dropped and counted
(`stream_reply_gone` in shoal_packets_dropped_total), never raised.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import trio

from gossip.events import Address, OpenStream
from gossip.messages import Message
from node.agent.droplog import DropLog
from node.core.inputs import Datagram, Input, StreamIn, StreamReply
from node.core.node_core import NodeCore
from node.core.outputs import CoreOutput
from node.telemetry.metrics import AgentMetrics

INPUT_QUEUE_DEPTH = 1024
TIMER_RETRY_S = 0.1  # after the timers raised, fire them again no sooner than this


@dataclass
class StreamTracker:
    """Outcomes of the TCP streams one fed input opened: stream id -> (addr, error or None)."""

    pending: set[int] = field(default_factory=set)
    outcomes: dict[int, tuple[Address, str | None]] = field(default_factory=dict)
    done: trio.Event = field(default_factory=trio.Event)

    def _opened(self, stream_id: int) -> None:
        self.pending.add(stream_id)

    def _closed(self, stream_id: int, addr: Address, error: str | None) -> None:
        self.pending.discard(stream_id)
        self.outcomes[stream_id] = (addr, error)
        if not self.pending:
            self.done.set()

    def _sealed(self) -> None:
        if not self.pending:
            self.done.set()

    async def wait(self, timeout_s: float) -> None:
        with trio.move_on_after(timeout_s):
            await self.done.wait()


@dataclass(slots=True)
class _Request:
    inp: Input
    reply: trio.MemorySendChannel[tuple[bool, Any]]
    tracker: StreamTracker | None


@dataclass(slots=True)
class _DialResult:
    cmd: OpenStream
    reply: Message | None
    error: str | None


Dispatch = Callable[[list[CoreOutput], float], None]


class Pump:
    def __init__(self, metrics: AgentMetrics, dispatch: Dispatch,
                 on_dial_result: Callable[[OpenStream, str | None], None],
                 drop_log: DropLog | None = None) -> None:
        self._metrics = metrics
        self._log = drop_log or DropLog()
        self._dispatch = dispatch
        self._on_dial_result = on_dial_result
        self._send, self._recv = trio.open_memory_channel[object](INPUT_QUEUE_DEPTH)
        self._trackers: dict[int, StreamTracker] = {}

    # ---- putting things in
    async def feed(self, inp: Input) -> Any:
        """Feed inp inside the pump; return what core.feed returned, or raise what it raised."""
        result, _ = await self._request(inp, None)
        return result

    async def feed_tracked(self, inp: Input) -> tuple[Any, StreamTracker]:
        tracker = StreamTracker()
        return await self._request(inp, tracker)

    async def _request(self, inp: Input, tracker: StreamTracker | None) -> tuple[Any, StreamTracker]:
        send, recv = trio.open_memory_channel[tuple[bool, Any]](1)
        await self._send.send(_Request(inp, send, tracker))
        async with recv:
            ok, value = await recv.receive()
        if not ok:
            raise value
        return value, tracker  # type: ignore[return-value]  # None only when not tracked

    async def post(self, inp: Input) -> None:
        """Queue inp for the pump; nobody waits for its result."""
        await self._send.send(inp)

    def offer_datagram(self, data: bytes, src: Address) -> None:
        try:
            self._send.send_nowait(Datagram(data, src))
        except trio.WouldBlock:
            self._metrics.drop("input_queue_full")

    async def stream(self, msg: Message, src: Address) -> bytes | None:
        """An inbound TCP stream's message: the reply bytes the core produced."""
        try:
            reply: bytes | None = await self.feed(StreamIn(msg, src))
        except Exception:  # noqa: BLE001 -- counted and logged inside the pump (_failed)
            return None
        return reply

    async def dial_result(self, cmd: OpenStream, reply: Message | None, error: str | None) -> None:
        await self._send.send(_DialResult(cmd, reply, error))

    # ---- the task
    async def run(self, core: NodeCore) -> None:
        recv = self._recv
        self._hand_out(core.drain(), trio.current_time(), None)  # our first status
        timers_after = -math.inf  # no sooner than this, after the timers raised
        while True:
            deadline = core.next_wake(trio.current_time())
            if deadline is not None:
                deadline = max(deadline, timers_after)
            item = None
            with trio.move_on_at(math.inf if deadline is None else deadline):
                item = await recv.receive()
            now = trio.current_time()
            # --- no await from here to the end of the loop body ---
            if item is not None:
                tracker = self._feed(core, item, now)
                self._hand_out(core.drain(), now, tracker)
                if tracker is not None:
                    tracker._sealed()
            deadline = core.next_wake(now)
            if deadline is not None and deadline <= now and timers_after <= now:
                try:
                    core.handle_timers(now)
                except Exception:  # noqa: BLE001 -- counted and logged; the agent goes on
                    self._failed("timers", "the core's timers")
                    timers_after = now + TIMER_RETRY_S
                # What the timers produced before failing still goes out.
                self._hand_out(core.drain(), now, None)

    def _failed(self, kind: str, what: str) -> None:
        """Call inside `except`: count the dropped input, log it (rate-limited, with traceback)."""
        self._metrics.input_failed(kind)
        self._log.failure(kind, what)

    def _reply(self, channel: trio.MemorySendChannel[tuple[bool, Any]], value: tuple[bool, Any]) -> None:
        """Answer a request; its caller may have gone (cancelled): then drop the answer."""
        try:
            channel.send_nowait(value)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            self._metrics.drop("stream_reply_gone")

    def _feed(self, core: NodeCore, item: object, now: float) -> StreamTracker | None:
        match item:
            case _Request(inp, reply, tracker):
                try:
                    result: tuple[bool, Any] = (True, core.feed(inp, now))
                except Exception as e:  # noqa: BLE001 -- the caller gets it, the pump goes on
                    result = (False, e)
                    # A refused write (ValueError: bad spec, job limit) is the
                    # caller's answer; anything else, or any failure on a
                    # peer's stream, is ours to count and show.
                    if isinstance(inp, StreamIn):
                        self._failed("stream", f"a stream from {inp.src}")
                    elif not isinstance(e, ValueError):
                        self._failed("request", type(inp).__name__)
                self._reply(reply, result)
                return tracker
            case _DialResult(cmd, reply, error):
                try:
                    self._on_dial_result(cmd, error)
                    tracker = self._trackers.pop(cmd.stream_id, None)
                    if tracker is not None:
                        tracker._closed(cmd.stream_id, cmd.addr, error)
                    core.feed(StreamReply(cmd.stream_id, reply), now)
                except Exception:  # noqa: BLE001 -- counted and logged; the agent goes on
                    self._failed("stream_reply", f"the reply of a stream to {cmd.addr}")
            case Datagram(_, src):
                try:
                    core.feed(item, now)
                except Exception:  # noqa: BLE001 -- counted and logged; the agent goes on
                    self._failed("datagram", f"a datagram from {src}")
            case _:
                try:
                    core.feed(item, now)  # type: ignore[call-overload]  # a posted Input
                except Exception:  # noqa: BLE001 -- counted and logged; the agent goes on
                    self._failed("posted", type(item).__name__)
        return None

    def _hand_out(self, outputs: list[CoreOutput], now: float, tracker: StreamTracker | None) -> None:
        if tracker is not None:
            for out in outputs:
                if isinstance(out, OpenStream):
                    tracker._opened(out.stream_id)
                    self._trackers[out.stream_id] = tracker
        try:
            self._dispatch(outputs, now)
        except Exception:  # noqa: BLE001 -- the dispatcher guards each output; this is the last net
            self._failed("dispatch", "the core's outputs")
