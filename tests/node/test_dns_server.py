"""The DNS server on loopback (node.dns.server): UDP and TCP, truncation,
forwarding to a fake upstream, the flood and connection bounds."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import dns.asyncbackend
import dns.asyncquery
import dns.flags
import dns.message
import dns.rcode
import dns.rrset
import trio

from dns_fixtures import CATALOG, big_catalog
from node.core.catalog import Catalog
from node.dns.server import DnsServer
from node.dns.settings import DnsSettings

BACKEND = dns.asyncbackend.get_backend("trio")
TIMEOUT_S = 5.0


@asynccontextmanager
async def serving(settings: DnsSettings | None = None, catalog: Catalog = CATALOG) -> AsyncIterator[DnsServer]:
    async with trio.open_nursery() as nursery:
        server = await nursery.start(DnsServer(settings or DnsSettings(), lambda: catalog).run)
        await server.listen("127.0.0.1", 0)
        yield server
        nursery.cancel_scope.cancel()


async def closed_by_server(stream: trio.SocketStream) -> bool:
    """True once the server closed the connection (EOF, or a reset when it
    closed with our bytes unread)."""
    try:
        return await stream.receive_some(10) == b""
    except trio.BrokenResourceError:
        return True


def port_of(server: DnsServer) -> int:
    return server.addresses[0][1]


async def udp(server: DnsServer, name: str, rdtype: str = "A", **kw: object) -> dns.message.Message:
    q = dns.message.make_query(name, rdtype, **kw)
    return await dns.asyncquery.udp(q, "127.0.0.1", timeout=TIMEOUT_S, port=port_of(server), backend=BACKEND)


async def tcp(server: DnsServer, name: str, rdtype: str = "A") -> dns.message.Message:
    q = dns.message.make_query(name, rdtype)
    return await dns.asyncquery.tcp(q, "127.0.0.1", timeout=TIMEOUT_S, port=port_of(server), backend=BACKEND)


async def test_udp_and_tcp_answer_from_the_catalog() -> None:
    async with serving() as server:
        for ask in (udp, tcp):
            msg = await ask(server, "api.service.shoal")
            assert sorted(r.address for r in msg.answer[0]) == ["10.0.0.1", "10.0.0.2"]
            msg = await ask(server, "_http._tcp.web.service.shoal", "SRV")
            assert [(r.port, r.target.to_text()) for r in msg.answer[0]] == [(21000, "node-3.node.shoal.")]
        assert server.stats.queries[("udp", "answer")] == 2 and server.stats.queries[("tcp", "answer")] == 2


async def test_the_zone_follows_the_catalog() -> None:
    catalogs = [CATALOG]
    async with trio.open_nursery() as nursery:
        server = await nursery.start(DnsServer(DnsSettings(refresh_s=0.05), lambda: catalogs[-1]).run)
        await server.listen("127.0.0.1", 0)
        assert (await udp(server, "web.service.shoal")).rcode() == dns.rcode.NOERROR
        catalogs.append(Catalog(tuple(i for i in CATALOG.instances if i.job != "web"), CATALOG.nodes))
        with trio.fail_after(TIMEOUT_S):
            while (await udp(server, "web.service.shoal")).rcode() != dns.rcode.NXDOMAIN:
                await trio.sleep(0.02)
        nursery.cancel_scope.cancel()


async def test_big_answer_truncated_over_udp_complete_over_tcp() -> None:
    async with serving(catalog=big_catalog(80)) as server:
        q = dns.message.make_query("big.service.shoal", "A")
        msg, used_tcp = await dns.asyncquery.udp_with_fallback(q, "127.0.0.1", timeout=TIMEOUT_S,
                                                                port=port_of(server), backend=BACKEND)
        assert used_tcp and len(msg.answer[0]) == 80
        assert server.stats.queries[("udp", "truncated")] == 1


@asynccontextmanager
async def fake_upstream(answer_ip: str | None) -> AsyncIterator[tuple[int, list[dns.message.Message]]]:
    """A resolver on loopback that answers every A query with answer_ip
    (or never answers, if None); yields its port and the queries it saw."""
    sock = trio.socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    await sock.bind(("127.0.0.1", 0))
    seen: list[dns.message.Message] = []

    async def serve() -> None:
        while True:
            wire, addr = await sock.recvfrom(4096)
            q = dns.message.from_wire(wire)
            seen.append(q)
            if answer_ip is None:
                continue
            r = dns.message.make_response(q)
            r.answer.append(dns.rrset.from_text(q.question[0].name, 60, "IN", "A", answer_ip))
            await sock.sendto(r.to_wire(), addr)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(serve)
        yield sock.getsockname()[1], seen
        nursery.cancel_scope.cancel()
    sock.close()


async def test_other_zones_forwarded_to_the_configured_resolver() -> None:
    async with fake_upstream("192.0.2.7") as (up_port, seen):
        async with serving(DnsSettings(forward=(("127.0.0.1", up_port),))) as server:
            q = dns.message.make_query("www.example.com", "A")
            msg = await dns.asyncquery.udp(q, "127.0.0.1", timeout=TIMEOUT_S, port=port_of(server),
                                           backend=BACKEND)
            assert msg.id == q.id and [r.address for r in msg.answer[0]] == ["192.0.2.7"]
            assert len(seen) == 1 and seen[0].question[0].name.to_text() == "www.example.com."
            msg = await tcp(server, "www.example.com")
            assert [r.address for r in msg.answer[0]] == ["192.0.2.7"]
            # Our own zone is never forwarded.
            assert (await udp(server, "nope.service.shoal")).rcode() == dns.rcode.NXDOMAIN
            assert len(seen) == 2
            assert server.stats.queries[("udp", "forwarded")] == 1


async def test_a_silent_resolver_gives_servfail_never_an_answer() -> None:
    async with fake_upstream(None) as (up_port, seen):
        settings = DnsSettings(forward=(("127.0.0.1", up_port),), forward_timeout_s=0.2)
        async with serving(settings) as server:
            msg = await udp(server, "www.example.com")
            assert msg.rcode() == dns.rcode.SERVFAIL and msg.answer == []


async def test_without_resolvers_other_zones_are_refused() -> None:
    async with serving() as server:
        assert (await udp(server, "www.example.com")).rcode() == dns.rcode.REFUSED


async def test_a_flooding_source_is_bounded_and_counted() -> None:
    async with serving(DnsSettings(source_qps=5, source_burst=10)) as server:
        sock = trio.socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        await sock.connect(("127.0.0.1", port_of(server)))
        wire = dns.message.make_query("api.service.shoal", "A").to_wire()
        for _ in range(200):
            await sock.send(wire)
        got = 0
        with trio.move_on_after(0.5):
            while True:
                await sock.recv(4096)
                got += 1
        sock.close()
        assert 10 <= got <= 20          # the burst, and what refilled meanwhile
        assert server.stats.bad["rate_source"] >= 180


async def test_tcp_connections_are_bounded_per_source_and_idle_ones_closed() -> None:
    async with serving(DnsSettings(tcp_max_conns_per_source=2, tcp_idle_s=0.3)) as server:
        streams = [await trio.open_tcp_stream("127.0.0.1", port_of(server)) for _ in range(3)]
        with trio.fail_after(TIMEOUT_S):
            assert await closed_by_server(streams[2])       # over the bound: closed at once
            start = trio.current_time()
            assert await closed_by_server(streams[0])       # idle: closed after tcp_idle_s
            assert trio.current_time() - start >= 0.2
        assert server.stats.bad["tcp_conns_source"] == 1
        for s in streams:
            await s.aclose()


async def test_tcp_oversized_length_closes_the_connection() -> None:
    async with serving() as server:
        stream = await trio.open_tcp_stream("127.0.0.1", port_of(server))
        await stream.send_all((60000).to_bytes(2, "big") + bytes(100))
        with trio.fail_after(TIMEOUT_S):
            assert await closed_by_server(stream)
        assert server.stats.bad["oversized"] == 1
        await stream.aclose()


async def test_tcp_pipelined_queries_answered_in_order() -> None:
    async with serving() as server:
        stream = await trio.open_tcp_stream("127.0.0.1", port_of(server))
        queries = [dns.message.make_query(n, "A") for n in ("api.service.shoal", "nope.service.shoal")]
        await stream.send_all(b"".join(q.to_wire(prepend_length=True) for q in queries))
        buf = b""
        with trio.fail_after(TIMEOUT_S):
            replies = []
            while len(replies) < 2:
                buf += await stream.receive_some(4096)
                while len(buf) >= 2 and len(buf) >= 2 + int.from_bytes(buf[:2], "big"):
                    n = int.from_bytes(buf[:2], "big")
                    replies.append(dns.message.from_wire(buf[2:2 + n]))
                    buf = buf[2 + n:]
        assert [r.id for r in replies] == [q.id for q in queries]
        assert [r.rcode() for r in replies] == [dns.rcode.NOERROR, dns.rcode.NXDOMAIN]
        await stream.aclose()


async def test_a_catalog_that_raises_leaves_the_server_answering() -> None:
    def broken() -> Catalog:
        raise RuntimeError("not yet")

    async with trio.open_nursery() as nursery:
        server = await nursery.start(DnsServer(DnsSettings(), broken).run)
        await server.listen("127.0.0.1", 0)
        assert (await udp(server, "api.service.shoal")).rcode() == dns.rcode.NXDOMAIN
        nursery.cancel_scope.cancel()


async def test_reuse_port_lets_two_servers_share_one_address() -> None:
    # As agents sharing one dockerd share its bridge gateway's port 53.
    async with trio.open_nursery() as nursery:
        first = await nursery.start(DnsServer(DnsSettings(), lambda: CATALOG).run)
        second = await nursery.start(DnsServer(DnsSettings(), lambda: CATALOG).run)
        port = await first.listen("127.0.9.2", 0, reuse_port=True)
        assert await second.listen("127.0.9.2", port, reuse_port=True) == port
        q = dns.message.make_query("api.service.shoal", "A")
        for _ in range(4):
            msg = await dns.asyncquery.udp(q, "127.0.9.2", timeout=TIMEOUT_S, port=port, backend=BACKEND)
            assert len(msg.answer[0]) == 2
        nursery.cancel_scope.cancel()


async def test_forwards_in_flight_are_bounded_and_the_rest_get_servfail_at_once() -> None:
    async with fake_upstream(None) as (up_port, seen):
        settings = DnsSettings(forward=(("127.0.0.1", up_port),), forward_timeout_s=3.0, forward_max_pending=1)
        async with serving(settings) as server:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(udp, server, "slow.example.com")     # holds the one forward slot
                with trio.fail_after(TIMEOUT_S):
                    while not seen:
                        await trio.sleep(0.01)
                start = trio.current_time()
                msg = await udp(server, "other.example.com")
                assert msg.rcode() == dns.rcode.SERVFAIL and trio.current_time() - start < 1.0
                assert server.stats.bad["forward_busy"] == 1 and len(seen) == 1
                nursery.cancel_scope.cancel()
