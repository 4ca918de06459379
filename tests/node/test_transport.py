"""node.agent.transport on real loopback sockets, without a gossip core."""

from __future__ import annotations

import base64
import socket
from functools import partial

import pytest
import trio

from gossip.events import Address, OpenStream, StreamPurpose
from gossip.messages import AckResp, MessageType, Ping
from gossip.packet import LABEL_HEADER, StreamDecoder, seal_stream
from gossip.wire import encode
from node.agent.agent import Agent
from node.agent.config import HostPort, load_config
from node.agent.transport import (
    MAX_STREAMS_PER_SOURCE,
    Transport,
    fault_delay_from_env,
    type_byte_read,
)
from node.telemetry.metrics import AgentMetrics


def make_transport(drops: list | None = None, **kw) -> Transport:
    return Transport(
        HostPort("127.0.0.1", 0),
        AgentMetrics(),
        tcp_timeout_s=kw.pop("tcp_timeout_s", 2.0),
        decoder_factory=lambda incoming: StreamDecoder(label=b"", keyring=None, expect_label_header=incoming),
        on_drop=lambda reason, src: (drops if drops is not None else []).append(reason),
        **kw,
    )


async def start(nursery, t: Transport, on_datagram=lambda d, s: None, on_stream=None, on_dial_result=None):
    async def no_stream(msg, src):
        return None

    async def no_result(cmd, reply, error):
        pass

    await nursery.start(
        lambda task_status: t.run(
            on_datagram=on_datagram,
            on_stream=on_stream or no_stream,
            on_dial_result=on_dial_result or no_result,
            task_status=task_status,
        )
    )
    return Address("127.0.0.1", t.port)


def test_fault_delay_from_env(monkeypatch):
    monkeypatch.delenv("SHOAL_FAULT_DELAY_MS", raising=False)
    assert fault_delay_from_env() == 0.0
    monkeypatch.setenv("SHOAL_FAULT_DELAY_MS", "40")
    assert fault_delay_from_env() == pytest.approx(0.04)
    monkeypatch.setenv("SHOAL_FAULT_DELAY_MS", "lots")
    assert fault_delay_from_env() == 0.0
    assert make_transport().fault_delay_s == 0.0  # "lots" is ignored


async def test_udp_and_tcp_share_one_port_and_datagrams_flow(nursery):
    got = []
    a, b = make_transport(), make_transport()
    addr_a = await start(nursery, a, on_datagram=lambda d, s: got.append((d, s)))
    addr_b = await start(nursery, b)
    b.send_datagram(addr_a, b"hello")
    with trio.fail_after(5):
        while not got:
            await trio.sleep(0.01)
    assert got == [(b"hello", addr_b)]
    assert a.metrics.packets_in._value.get() == 1 and b.metrics.bytes_out._value.get() == 5
    # the TCP listener is on the same port
    with socket.create_connection(("127.0.0.1", addr_a.port), timeout=2):
        pass


async def test_fault_delay_postpones_datagrams(nursery):
    got = []
    a = make_transport()
    b = make_transport(fault_delay_s=0.3)
    addr_a = await start(nursery, a, on_datagram=lambda d, s: got.append(trio.current_time()))
    await start(nursery, b)
    t0 = trio.current_time()
    b.send_datagram(addr_a, b"x")
    with trio.fail_after(5):
        while not got:
            await trio.sleep(0.01)
    assert got[0] - t0 >= 0.29


async def test_stream_request_reply(nursery):
    async def answer(msg, src):
        assert isinstance(msg, Ping)
        return seal_stream(encode(AckResp(msg.seq_no)), label=b"", keyring=None, compress=False, write_label=False)

    results = []

    async def on_result(cmd, reply, error):
        results.append((cmd.stream_id, reply, error))

    a, b = make_transport(), make_transport()
    addr_a = await start(nursery, a, on_stream=answer)
    await start(nursery, b, on_dial_result=on_result)
    data = seal_stream(encode(Ping(7, "")), label=b"", keyring=None, compress=False, write_label=True)
    b.start_dial(OpenStream(1, addr_a, data, True, 2.0, StreamPurpose.PING))
    with trio.fail_after(5):
        while not results:
            await trio.sleep(0.01)
    assert results == [(1, AckResp(7), None)]


async def test_dial_failures_have_reasons(nursery):
    b = make_transport()
    await start(nursery, b)
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    closed = Address("127.0.0.1", s.getsockname()[1])
    s.close()
    reply, error = await b.dial(closed, b"x", True, 2.0)
    assert reply is None and "refused" in error.lower()

    # a listener that accepts and never answers: the timeout is the reason
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(1)
    try:
        reply, error = await b.dial(Address("127.0.0.1", silent.getsockname()[1]), b"\x00", True, 0.3)
    finally:
        silent.close()
    assert reply is None and "within 0.3s" in error


async def test_inbound_garbage_and_limits(nursery):
    drops: list[str] = []
    a = make_transport(drops, tcp_timeout_s=2.0, first_byte_timeout_s=0.3, max_inbound_streams=1)
    addr = await start(nursery, a)
    # garbage: decode error counted, connection closed
    async with await trio.open_tcp_stream("127.0.0.1", addr.port) as c:
        await c.send_all(b"\x63garbage")
        with trio.fail_after(2):
            assert await c.receive_some(10) == b""
    # a silent client is closed at the first-byte deadline, well before tcp_timeout_s
    silent = await trio.open_tcp_stream("127.0.0.1", addr.port)
    with trio.fail_after(1.5):
        assert await silent.receive_some(10) == b""
    await silent.aclose()
    # a client that sent its message type and stalls holds the only slot until
    # tcp_timeout_s; one that speaks meanwhile is refused at once
    stalled = await trio.open_tcp_stream("127.0.0.1", addr.port)
    await stalled.send_all(bytes([int(MessageType.COMPRESS)]))
    with trio.fail_after(1):
        while not a.inbound_streams:
            await trio.sleep(0.01)
    async with await trio.open_tcp_stream("127.0.0.1", addr.port) as c2:
        await c2.send_all(bytes([int(MessageType.COMPRESS)]))
        with trio.fail_after(1):  # well before the 2 s timeout frees the slot
            assert await c2.receive_some(10) == b""
    with trio.fail_after(3):
        assert await stalled.receive_some(10) == b""  # closed by the timeout
    await stalled.aclose()
    with trio.fail_after(3):
        while a.inbound_streams:
            await trio.sleep(0.01)
    assert drops and a.metrics.drop_counts["stream_global_cap"] == 1
    assert refused(a, "first_byte_timeout") == 1 and refused(a, "global_cap") == 1
    assert a.metrics.streams_in.labels(outcome="timeout")._value.get() == 1


def refused(t: Transport, reason: str) -> float:
    return t.metrics.streams_refused.labels(reason=reason)._value.get()


async def connect_from(source_ip: str, port: int) -> trio.socket.SocketType:
    """A TCP connection to 127.0.0.1:port from another loopback address
    (all of 127.0.0.0/8 is this host), so it counts as another source."""
    s = trio.socket.socket()
    await s.bind((source_ip, 0))
    await s.connect(("127.0.0.1", port))
    return s


def ping_stream(seq: int) -> bytes:
    return seal_stream(encode(Ping(seq, "")), label=b"", keyring=None, compress=False, write_label=True)


async def answer_pings(msg, src):
    return seal_stream(encode(AckResp(msg.seq_no)), label=b"", keyring=None, compress=False, write_label=False)


async def test_type_byte_read_after_label_header():
    assert not type_byte_read(b"")
    assert type_byte_read(bytes([int(MessageType.PING)]))
    assert not type_byte_read(bytes([LABEL_HEADER]))
    assert not type_byte_read(bytes([LABEL_HEADER, 3]) + b"abc")
    assert type_byte_read(bytes([LABEL_HEADER, 3]) + b"abc" + bytes([int(MessageType.PING)]))


async def test_a_source_over_its_cap_is_refused_while_another_is_served(nursery):
    a = make_transport()
    addr = await start(nursery, a, on_stream=answer_pings)
    b = make_transport()
    await start(nursery, b)
    hogs = [await connect_from("127.0.0.2", addr.port) for _ in range(MAX_STREAMS_PER_SOURCE)]
    try:
        with trio.fail_after(2):
            while len(a._pending) < MAX_STREAMS_PER_SOURCE:
                await trio.sleep(0.01)
        # one more from the same address: closed at accept
        extra = await connect_from("127.0.0.2", addr.port)
        try:
            with trio.fail_after(1):
                assert await extra.recv(10) == b""
        finally:
            extra.close()
        assert refused(a, "source_cap") == 1
        # another address is served at once
        with trio.fail_after(1):
            reply, error = await b.dial(addr, ping_stream(9), True, 1.0)
        assert (reply, error) == (AckResp(9), None)
    finally:
        for h in hogs:
            h.close()


async def test_silent_connections_never_lock_out_a_dialer(nursery):
    # More silent connections than the pending pool holds: the oldest are
    # closed to make room, and a dialer that speaks is still answered.
    a = make_transport(max_pending_streams=8)
    addr = await start(nursery, a, on_stream=answer_pings)
    b = make_transport()
    await start(nursery, b)
    idle = [await connect_from(f"127.0.0.{2 + i % 4}", addr.port) for i in range(12)]
    try:
        with trio.fail_after(2):
            while refused(a, "evicted") < 4:
                await trio.sleep(0.01)
        with trio.fail_after(1):
            reply, error = await b.dial(addr, ping_stream(5), True, 1.0)
        assert (reply, error) == (AckResp(5), None)
        assert len(a._pending) <= 8
    finally:
        for s in idle:
            s.close()


async def test_140_idle_connections_do_not_starve_a_join(nursery, tmp_path):
    """Finding 4: 140 idle TCP connections to an agent's gossip port (from ten
    addresses, each under the per-source cap) starved every gossip stream for
    14 s, encryption on.  Now a real peer's join (a push/pull) succeeds at once."""
    key = base64.b64encode(bytes(range(32))).decode()

    async def start_agent(name: str) -> Agent:
        cfg = load_config(None, {"name": name, "bind": "127.0.0.1:0", "api": "127.0.0.1:0", "profile": "lan",
                                 "encrypt": key, "state_dir": str(tmp_path / name)})
        agent = Agent(cfg)
        await nursery.start(partial(agent.run, handle_signals=False))
        return agent

    a = await start_agent("a")
    b = await start_agent("b")
    idle = [await connect_from(f"127.0.0.{2 + i % 10}", a.gossip_port) for i in range(140)]
    try:
        with trio.fail_after(2):
            while len(a.transport._pending) < 140:
                await trio.sleep(0.01)
        with trio.fail_after(3):
            result = await b.membership.join([HostPort(a.advertise.host, a.advertise.port)], timeout_s=3.0)
        assert list(result.values()) == [None]
        with trio.fail_after(3):
            while not {"a", "b"} <= a.view.alive_names():
                await trio.sleep(0.05)
    finally:
        for s in idle:
            s.close()
    assert refused(a.transport, "source_cap") == 0
