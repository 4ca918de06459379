"""node.agent.transport on real loopback sockets, without a gossip core."""

from __future__ import annotations

import socket

import pytest
import trio

from gossip.events import Address, OpenStream, StreamPurpose
from gossip.messages import AckResp, Ping
from gossip.packet import StreamDecoder, seal_stream
from gossip.wire import encode
from node.agent.config import HostPort
from node.telemetry.metrics import AgentMetrics
from node.agent.transport import Transport, fault_delay_from_env


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
    a = make_transport(drops, tcp_timeout_s=0.3, max_inbound_streams=1)
    addr = await start(nursery, a)
    # garbage: decode error counted, connection closed
    async with await trio.open_tcp_stream("127.0.0.1", addr.port) as c:
        await c.send_all(b"\x63garbage")
        with trio.fail_after(2):
            assert await c.receive_some(10) == b""
    # a silent client holds the only slot until tcp_timeout_s; a second is refused at once
    silent = await trio.open_tcp_stream("127.0.0.1", addr.port)
    await trio.sleep(0.05)
    async with await trio.open_tcp_stream("127.0.0.1", addr.port) as c2:
        with trio.fail_after(0.2):  # well before the 0.3 s timeout frees the slot
            assert await c2.receive_some(10) == b""
    with trio.fail_after(3):
        assert await silent.receive_some(10) == b""  # closed by the timeout
    await silent.aclose()
    with trio.fail_after(3):
        while a.inbound_streams:
            await trio.sleep(0.01)
    assert drops and a.metrics.drop_counts["too_many_streams"] == 1
    assert a.metrics.streams_in.labels(outcome="timeout")._value.get() == 1
