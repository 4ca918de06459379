"""Sockets for the gossip core: one UDP socket and one TCP listener on the same port.

How this works: `Transport.bind()` binds UDP and TCP to the same port (with
port 0 it picks one that is free for both) and returns the port, so the agent
can build the core with its real address; `Transport.run()` then runs three
kinds of tasks in its nursery:

- the UDP receiver: `recvfrom` in a loop, each datagram handed to the
  `on_datagram(data, src)` callback, which must not block (the agent puts it
  into the pump's bounded input channel and drops it when that is full, as
  memberlist drops past its handoff queue);
- the UDP sender: drains a bounded outgoing channel filled by
  `send_datagram()` (non-blocking; a full queue drops and counts);
- the TCP acceptor: one task per accepted connection.  A connection task
  reads bytes into a decoder from `decoder_factory(incoming=True)` until it
  yields one message, all within `tcp_timeout_s`, awaits `on_stream(message,
  src)` (the agent passes it to the pump and returns the core's reply bytes),
  writes the reply and closes.

Inbound bounds (finding: 140 idle connections once starved every gossip
stream, because each held one of 128 shared slots for up to 10 s before a
byte was read).  A connection is *pending* until its message type has been
read (the first byte, or the byte after a label header), then *active*:

- a pending connection must deliver its message type within
  `FIRST_BYTE_TIMEOUT_S` (2 s, or `tcp_timeout_s` if shorter), else it is
  closed; at most `MAX_PENDING_STREAMS` (256) are pending at once, and a new
  one past that closes the oldest pending one (so a flood of silent
  connections delays a real dialer by at most one round trip's worth of
  churn, instead of locking it out);
- only active connections take one of the `MAX_INBOUND_STREAMS` (128,
  memberlist's limit) shared slots; a connection that speaks when they are
  all taken is closed;
- one source address holds at most `MAX_STREAMS_PER_SOURCE` (32) inbound
  connections, pending and active together; more are closed at accept.

Every refusal is counted (`shoal_streams_refused_total{reason}`, also in
`shoal_packets_dropped_total` and `shoal_streams_in_total{outcome}`) and
ends only that connection.

`start_dial()` carries out an `OpenStream` command in a new task: connect,
write, and if a reply is expected read one framed message with a
`decoder_factory(incoming=False)` decoder, all within the command's timeout;
the outcome (message or None, and an error text) goes to `on_dial_result`.

Decoders come from the core's factory but run in the connection task; that is
safe because trio is single-threaded and a decoder call never awaits.  Only
decoded messages reach the core, through the pump.

Fault hook (for the testbed): `fault_delay_s` adds a fixed delay before every
outgoing UDP datagram.  Off by default; the env var `SHOAL_FAULT_DELAY_MS`
sets it at start, `PUT /v1/agent/fault` changes it at run time.  Delayed
datagrams are sent from their own tasks (at most `MAX_DELAYED` in flight) so a
delay shifts packets in time without throttling them.
"""

from __future__ import annotations

import errno
import logging
import os
import socket
from collections import Counter, OrderedDict
from collections.abc import Awaitable, Callable
from typing import Protocol

import trio

from gossip.events import Address, OpenStream
from gossip.messages import Message
from gossip.packet import LABEL_HEADER
from node.agent.config import HostPort
from node.telemetry.metrics import AgentMetrics

log = logging.getLogger("shoal.transport")

UDP_RECV_BYTES = 65_536
UDP_RCVBUF_BYTES = 2 * 1024 * 1024
TCP_READ_BYTES = 65_536
# Active inbound streams (message type read) at once: memberlist's limit.
MAX_INBOUND_STREAMS = 128
# A dialer writes its request right after connect, so its first byte follows
# the handshake by one round trip plus the dialer's own scheduling delay.  2 s
# covers a 1 s round trip (a congested WAN, a satellite hop) with as much again
# to spare, and is a fifth of the lan profile's 10 s stream timeout.
FIRST_BYTE_TIMEOUT_S = 2.0
# Connections from one address at once, pending and active: a quarter of the
# active slots, so it takes at least four addresses to fill them.  A real peer
# has a push/pull and a few reliable messages in flight to us at most; even
# the 30 loopback agents of a test cluster, all one address, stay far below.
MAX_STREAMS_PER_SOURCE = 32
# Pending (silent) connections kept at once; each is a socket and a task.
# Well under the common 1024 open-files limit, so a flood cannot exhaust the
# descriptors the agent needs for its own dials and state files.
MAX_PENDING_STREAMS = 256
SEND_QUEUE_DEPTH = 4096
MAX_DELAYED = 4096
PORT_TRIES = 32


class Decoder(Protocol):
    def feed(self, data: bytes) -> Message | None: ...
    def feed_eof(self) -> Message | None: ...


DecoderFactory = Callable[[bool], Decoder]
OnDatagram = Callable[[bytes, Address], None]
OnStream = Callable[[Message, Address], Awaitable[bytes | None]]
OnDialResult = Callable[[OpenStream, "Message | None", "str | None"], Awaitable[None]]
OnDrop = Callable[[str, "Address | None"], None]


def fault_delay_from_env() -> float:
    text = os.environ.get("SHOAL_FAULT_DELAY_MS", "").strip()
    if not text:
        return 0.0
    try:
        return max(0.0, float(text) / 1000.0)
    except ValueError:
        log.warning("ignoring SHOAL_FAULT_DELAY_MS=%r: not a number", text)
        return 0.0


def oserror_text(exc: OSError) -> str:
    """The most specific reason: trio wraps connect failures in a group."""
    cause = exc.__cause__
    if isinstance(cause, BaseExceptionGroup):
        inner = [e for e in cause.exceptions if isinstance(e, OSError)]
        if inner:
            return "; ".join(os.strerror(e.errno) if e.errno else str(e) for e in inner)
    return exc.strerror or str(exc)


def _decode_error_reason(exc: BaseException) -> str:
    return str(getattr(exc, "reason", None) or "malformed")


def _is_decode_error(exc: BaseException) -> bool:
    # gossip.wire.DecodeError, without importing the codec at module import.
    return type(exc).__name__ == "DecodeError"


def type_byte_read(head: bytes | bytearray) -> bool:
    """True once `head` (the first bytes of an inbound stream) holds the
    message type: the first byte, or the byte after a label header
    (0xF4, length, label).  Whether the type is valid is the decoder's call."""
    if not head:
        return False
    if head[0] != LABEL_HEADER:
        return True
    return len(head) >= 2 and len(head) > 2 + head[1]


class Transport:
    def __init__(
        self,
        bind: HostPort,
        metrics: AgentMetrics,
        *,
        tcp_timeout_s: float,
        decoder_factory: DecoderFactory,
        on_drop: OnDrop,
        fault_delay_s: float | None = None,
        max_inbound_streams: int = MAX_INBOUND_STREAMS,
        max_streams_per_source: int = MAX_STREAMS_PER_SOURCE,
        max_pending_streams: int = MAX_PENDING_STREAMS,
        first_byte_timeout_s: float = FIRST_BYTE_TIMEOUT_S,
    ) -> None:
        self.bind_addr = bind
        self.metrics = metrics
        self.tcp_timeout_s = tcp_timeout_s
        self.decoder_factory = decoder_factory
        self.on_drop = on_drop
        self.fault_delay_s = fault_delay_from_env() if fault_delay_s is None else fault_delay_s
        self.max_inbound_streams = max_inbound_streams
        self.max_streams_per_source = max_streams_per_source
        self.max_pending_streams = max_pending_streams
        self.first_byte_timeout_s = min(first_byte_timeout_s, tcp_timeout_s)
        self.port: int | None = None
        self.inbound_streams = 0  # active: message type read, holding a slot
        # Pending connections, oldest first: the scope that closes one early.
        self._pending: OrderedDict[int, trio.CancelScope] = OrderedDict()
        self._per_source: Counter[str] = Counter()
        self._family = socket.AF_INET6 if ":" in bind.host else socket.AF_INET
        self._udp: trio.socket.SocketType | None = None
        self._tcp: trio.socket.SocketType | None = None
        self._out_send, self._out_recv = trio.open_memory_channel[tuple[Address, bytes]](SEND_QUEUE_DEPTH)
        self._delayed = 0
        self._nursery: trio.Nursery | None = None

    # ---- lifecycle ---------------------------------------------------------

    async def bind(self) -> int:
        """UDP and TCP on one port; with port 0, find one free for both."""
        host = self.bind_addr.host or "0.0.0.0"
        tries = 1 if self.bind_addr.port else PORT_TRIES
        last: OSError | None = None
        for _ in range(tries):
            udp = trio.socket.socket(self._family, socket.SOCK_DGRAM)
            tcp = trio.socket.socket(self._family, socket.SOCK_STREAM)
            try:
                try:
                    udp.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, UDP_RCVBUF_BYTES)
                except OSError:
                    pass
                await udp.bind((host, self.bind_addr.port))
                port = udp.getsockname()[1]
                tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                await tcp.bind((host, port))
                tcp.listen(MAX_INBOUND_STREAMS)
            except OSError as e:
                udp.close()
                tcp.close()
                last = e
                if self.bind_addr.port or e.errno != errno.EADDRINUSE:
                    break
                continue
            self._udp, self._tcp = udp, tcp
            self.port = port
            return port
        raise OSError(last.errno if last else 0, f"cannot bind {self.bind_addr}: {last.strerror if last else '?'}")

    async def run(
        self,
        *,
        on_datagram: OnDatagram,
        on_stream: OnStream,
        on_dial_result: OnDialResult,
        task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        if self.port is None:
            await self.bind()
        self._on_dial_result = on_dial_result
        try:
            async with trio.open_nursery() as nursery:
                self._nursery = nursery
                nursery.start_soon(self._udp_receiver, on_datagram)
                nursery.start_soon(self._udp_sender)
                nursery.start_soon(self._tcp_acceptor, on_stream)
                task_status.started(self.port)
        finally:
            self._nursery = None
            self.close()

    def close(self) -> None:
        for s in (self._udp, self._tcp):
            if s is not None:
                s.close()

    def statistics(self) -> dict[str, int | float]:
        return {
            "port": self.port or 0,
            "inbound_streams": self.inbound_streams,
            "pending_streams": len(self._pending),
            "send_queue": self._out_send.statistics().current_buffer_used,
            "delayed_in_flight": self._delayed,
            "fault_delay_ms": self.fault_delay_s * 1000.0,
        }

    # ---- UDP ---------------------------------------------------------------

    async def _udp_receiver(self, on_datagram: OnDatagram) -> None:
        assert self._udp is not None
        while True:
            try:
                data, src = await self._udp.recvfrom(UDP_RECV_BYTES)
            except OSError as e:  # e.g. ECONNREFUSED echoed from an ICMP error
                log.debug("udp recv error: %s", e)
                continue
            self.metrics.packets_in.inc()
            self.metrics.bytes_in.inc(len(data))
            on_datagram(data, Address(src[0], src[1]))

    def send_datagram(self, addr: Address, data: bytes) -> None:
        """Queue a datagram; never blocks (a full queue drops it and counts)."""
        try:
            self._out_send.send_nowait((addr, data))
        except trio.WouldBlock:
            self.metrics.drop("send_queue_full")

    async def _udp_sender(self) -> None:
        async with self._out_recv:
            async for addr, data in self._out_recv:
                delay = self.fault_delay_s
                if delay > 0 and self._nursery is not None:
                    if self._delayed >= MAX_DELAYED:
                        self.metrics.drop("fault_delay_overflow")
                        continue
                    self._delayed += 1
                    self._nursery.start_soon(self._send_later, delay, addr, data)
                else:
                    await self._sendto(addr, data)

    async def _send_later(self, delay: float, addr: Address, data: bytes) -> None:
        try:
            await trio.sleep(delay)
            await self._sendto(addr, data)
        finally:
            self._delayed -= 1

    async def _sendto(self, addr: Address, data: bytes) -> None:
        assert self._udp is not None
        try:
            await self._udp.sendto(data, (addr.host, addr.port))
        except OSError as e:
            self.metrics.drop("send_error")
            log.debug("udp send to %s failed: %s", addr, e)
            return
        self.metrics.packets_out.inc()
        self.metrics.bytes_out.inc(len(data))

    # ---- TCP, inbound -------------------------------------------------------

    def _refuse(self, reason: str) -> None:
        self.metrics.refuse_stream(reason)
        self.metrics.streams_in.labels(outcome=reason).inc()

    def _gauge(self) -> None:
        self.metrics.inbound_streams_open.labels(phase="pending").set(len(self._pending))
        self.metrics.inbound_streams_open.labels(phase="active").set(self.inbound_streams)

    async def _tcp_acceptor(self, on_stream: OnStream) -> None:
        assert self._tcp is not None and self._nursery is not None
        listener = trio.SocketListener(self._tcp)
        while True:
            try:
                stream = await listener.accept()
            except OSError as e:  # EMFILE and friends: back off a little
                log.warning("tcp accept failed: %s", e)
                await trio.sleep(0.1)
                continue
            try:
                peer = stream.socket.getpeername()
                src: Address | None = Address(peer[0], peer[1])
            except OSError:
                src = None
            host = src.host if src is not None else ""
            if self._per_source[host] >= self.max_streams_per_source:
                self._refuse("source_cap")
                await stream.aclose()
                continue
            if len(self._pending) >= self.max_pending_streams:
                # Close the oldest silent connection rather than refuse the
                # new one: a real dialer speaks within a round trip, so it
                # survives unless the pool turns over faster than that.
                _, oldest = self._pending.popitem(last=False)
                oldest.cancel()
            self._per_source[host] += 1
            evict = trio.CancelScope()
            self._pending[id(evict)] = evict
            self._gauge()
            self._nursery.start_soon(self._serve_connection, stream, src, evict, on_stream)

    async def _serve_connection(
        self, stream: trio.SocketStream, src: Address | None, evict: trio.CancelScope, on_stream: OnStream
    ) -> None:
        outcome = "ok"
        active = False
        try:
            with trio.move_on_after(self.tcp_timeout_s) as scope:
                head = bytearray()
                eof = False
                with evict:
                    with trio.move_on_after(self.first_byte_timeout_s):
                        while not type_byte_read(head):
                            data = await stream.receive_some(TCP_READ_BYTES)
                            if not data:
                                eof = True
                                break
                            head += data
                self._pending.pop(id(evict), None)
                self.metrics.bytes_in.inc(len(head))
                if evict.cancelled_caught:
                    outcome = "evicted"
                elif not type_byte_read(head):
                    if not eof:
                        outcome = "first_byte_timeout"
                    elif head:
                        outcome = "truncated"
                        self.on_drop("truncated", src)
                    else:
                        outcome = "closed"
                elif self.inbound_streams >= self.max_inbound_streams:
                    outcome = "global_cap"
                else:
                    active = True
                    self.inbound_streams += 1
                    self._gauge()
                    msg = await self._read_message(stream, self.decoder_factory(True), bytes(head))
                    if msg is None:
                        outcome = "closed"
                    else:
                        reply = await on_stream(msg, src or Address("0.0.0.0", 0))
                        if reply:
                            await stream.send_all(reply)
                            self.metrics.bytes_out.inc(len(reply))
            if scope.cancelled_caught:
                outcome = "timeout"
        except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
            outcome = "reset"
        except EOFError:
            outcome = "truncated"
            self.on_drop("truncated", src)
        except Exception as e:
            if not _is_decode_error(e):
                raise
            outcome = "decode_error"
            self.on_drop(_decode_error_reason(e), src)
        finally:
            self._pending.pop(id(evict), None)
            if active:
                self.inbound_streams -= 1
            host = src.host if src is not None else ""
            self._per_source[host] -= 1
            if self._per_source[host] <= 0:
                del self._per_source[host]
            self._gauge()
            if outcome in ("evicted", "first_byte_timeout", "global_cap"):
                self._refuse(outcome)
            else:
                self.metrics.streams_in.labels(outcome=outcome).inc()
            with trio.CancelScope(shield=True):
                with trio.move_on_after(1):
                    await stream.aclose()

    async def _read_message(self, stream: trio.SocketStream, decoder: Decoder, head: bytes = b"") -> Message | None:
        """Feed `head` (bytes already read), then more until the decoder yields
        a message; None on a clean EOF with nothing read."""
        got_any = bool(head)
        if head:
            msg = decoder.feed(head)
            if msg is not None:
                return msg
        while True:
            data = await stream.receive_some(TCP_READ_BYTES)
            if not data:
                if not got_any:
                    return None
                msg = decoder.feed_eof()
                if msg is None:
                    raise EOFError("stream ended before a whole message")
                return msg
            got_any = True
            self.metrics.bytes_in.inc(len(data))
            msg = decoder.feed(data)
            if msg is not None:
                return msg

    # ---- TCP, outbound ------------------------------------------------------

    def start_dial(self, cmd: OpenStream) -> None:
        if self._nursery is None:
            return
        self._nursery.start_soon(self._dial, cmd)

    async def _dial(self, cmd: OpenStream) -> None:
        reply, error = await self.dial(cmd.addr, cmd.data, cmd.expect_reply, cmd.timeout_s)
        self.metrics.streams_out.labels(outcome="ok" if error is None else "failed").inc()
        await self._on_dial_result(cmd, reply, error)

    async def dial(
        self, addr: Address, data: bytes, expect_reply: bool, timeout_s: float
    ) -> tuple[Message | None, str | None]:
        """(reply, None) on success (reply None if none was expected), else (None, why)."""
        with trio.move_on_after(timeout_s):
            try:
                stream = await trio.open_tcp_stream(addr.host, addr.port)
            except OSError as e:
                return None, f"connect to {addr}: {oserror_text(e)}"
            try:
                await stream.send_all(data)
                self.metrics.bytes_out.inc(len(data))
                if not expect_reply:
                    return None, None
                try:
                    msg = await self._read_message(stream, self.decoder_factory(False))
                except EOFError:
                    msg = None
                if msg is None:
                    return None, (f"{addr} closed the connection without a reply "
                                  "(different encryption key or cluster label?)")
                return msg, None
            except (trio.BrokenResourceError, trio.ClosedResourceError, OSError) as e:
                return None, f"{addr}: connection error: {oserror_text(e) if isinstance(e, OSError) else e}"
            except Exception as e:
                if not _is_decode_error(e):
                    raise
                reason = _decode_error_reason(e)
                self.on_drop(reason, addr)
                return None, f"undecodable reply from {addr} ({reason})"
            finally:
                with trio.CancelScope(shield=True):
                    with trio.move_on_after(1):
                        await stream.aclose()
        return None, f"no reply from {addr} within {timeout_s:g}s"
