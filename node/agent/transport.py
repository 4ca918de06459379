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
- the TCP acceptor: one task per accepted connection, at most
  `MAX_INBOUND_STREAMS` (128, memberlist's limit) at a time; extra
  connections are closed at once.  A connection task reads bytes into a
  decoder from `decoder_factory(incoming=True)` until it yields one message,
  all within `tcp_timeout_s`, awaits `on_stream(message, src)` (the agent
  passes it to the pump and returns the core's reply bytes), writes the reply
  and closes.

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
from typing import Awaitable, Callable, Protocol

import trio

from gossip.events import Address, OpenStream
from gossip.messages import Message
from node.agent.config import HostPort
from node.telemetry.metrics import AgentMetrics

log = logging.getLogger("shoal.transport")

UDP_RECV_BYTES = 65_536
UDP_RCVBUF_BYTES = 2 * 1024 * 1024
TCP_READ_BYTES = 65_536
MAX_INBOUND_STREAMS = 128
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
    ) -> None:
        self.bind_addr = bind
        self.metrics = metrics
        self.tcp_timeout_s = tcp_timeout_s
        self.decoder_factory = decoder_factory
        self.on_drop = on_drop
        self.fault_delay_s = fault_delay_from_env() if fault_delay_s is None else fault_delay_s
        self.max_inbound_streams = max_inbound_streams
        self.port: int | None = None
        self.inbound_streams = 0
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
            if self.inbound_streams >= self.max_inbound_streams:
                self.metrics.drop("too_many_streams")
                await stream.aclose()
                continue
            self.inbound_streams += 1
            self._nursery.start_soon(self._serve_connection, stream, on_stream)

    async def _serve_connection(self, stream: trio.SocketStream, on_stream: OnStream) -> None:
        try:
            peer = stream.socket.getpeername()
            src = Address(peer[0], peer[1])
        except OSError:
            src = None
        outcome = "ok"
        try:
            with trio.move_on_after(self.tcp_timeout_s) as scope:
                msg = await self._read_message(stream, self.decoder_factory(True))
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
            self.inbound_streams -= 1
            self.metrics.streams_in.labels(outcome=outcome).inc()
            with trio.CancelScope(shield=True):
                with trio.move_on_after(1):
                    await stream.aclose()

    async def _read_message(self, stream: trio.SocketStream, decoder: Decoder) -> Message | None:
        """Feed bytes until the decoder yields a message; None on a clean EOF with nothing read."""
        got_any = False
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
