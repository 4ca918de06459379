"""Fuzzed queries never make the DNS answerer raise, and what it sends back
is always a well-formed reply to that query within the client's limit."""

from __future__ import annotations

import ipaddress
import socket
import threading
import time
from collections.abc import Iterator

import dns.flags
import dns.message
import dns.query
import dns.rdatatype
import pytest
import trio
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from node.dns.answer import HEADER_BYTES, Drop, Forward, Reply, answer
from node.core.catalog import Catalog, ServiceInstance
from node.dns.server import DnsServer
from node.dns.settings import DnsSettings
from node.dns.zone import HOST_RE, build_zone
from dns_fixtures import CATALOG, big_catalog

ZONE = build_zone(CATALOG, "shoal", 5)
BIG_ZONE = build_zone(big_catalog(80), "shoal", 5)
SETTINGS = DnsSettings(forward=(("127.0.0.1", 53),))
NAMES = ["api.service.shoal", "_http._tcp.api.service.shoal", "1.api.service.shoal", "node-1.node.shoal",
         "big.service.shoal", "x.shoal", "shoal", "example.com", "."]
TYPES = ["A", "AAAA", "SRV", "ANY", "SOA", "TXT", "AXFR", "NS", "PTR", "OPT", "TSIG"]


def valid_query(name: str, rdtype: str, edns: int | None, payload: int) -> bytes:
    q = dns.message.make_query(name, rdtype, use_edns=edns if edns is not None else False, payload=payload)
    return q.to_wire()


def check(wire: bytes, tcp: bool) -> None:
    for zone in (ZONE, BIG_ZONE):
        decision = answer(wire, zone, SETTINGS, tcp=tcp)
        if isinstance(decision, Drop):
            continue
        if isinstance(decision, Forward):
            assert decision.query.id == int.from_bytes(wire[:2], "big")
            continue
        assert isinstance(decision, Reply)
        out = decision.wire
        assert len(out) >= HEADER_BYTES and out[:2] == wire[:2]
        assert out[2] & 0x80                           # QR: a response
        assert len(out) <= (65535 if tcp else SETTINGS.udp_payload_max_bytes)
        if len(out) > HEADER_BYTES:
            reply = dns.message.from_wire(out)       # our own answers always parse
            assert len(reply.question) == 1


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=600), st.booleans())
def test_random_bytes(wire: bytes, tcp: bool) -> None:
    check(wire, tcp)


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    wire = bytearray(valid_query(draw(st.sampled_from(NAMES)), draw(st.sampled_from(["A", "SRV", "ANY", "AAAA"])),
                                 draw(st.sampled_from([None, 0])), draw(st.sampled_from([512, 1232, 4096]))))
    for _ in range(draw(st.integers(1, 6))):
        op = draw(st.sampled_from(["flip", "set", "cut", "insert", "dup"]))
        pos = draw(st.integers(0, max(0, len(wire) - 1)))
        if op == "flip" and wire:
            wire[pos] ^= 1 << draw(st.integers(0, 7))
        elif op == "set" and wire:
            wire[pos] = draw(st.integers(0, 255))
        elif op == "cut":
            del wire[pos:]
        elif op == "insert":
            wire[pos:pos] = draw(st.binary(min_size=1, max_size=8))
        elif op == "dup":
            wire += wire[pos:]
    return bytes(wire)


@settings(max_examples=3000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated(), st.booleans())
def test_mutated_valid_queries(wire: bytes, tcp: bool) -> None:
    check(wire, tcp)


@settings(max_examples=500, deadline=None)
@given(st.sampled_from(NAMES), st.sampled_from(TYPES), st.sampled_from([None, 0, 1]),
       st.integers(0, 65535), st.booleans())
def test_valid_queries_of_any_type(name: str, rdtype: str, edns: int | None, payload: int, tcp: bool) -> None:
    try:
        wire = valid_query(name, rdtype, edns, payload)
    except Exception:   # dnspython refuses to build some (meta types)
        return
    check(wire, tcp)


# ---- against a running server -------------------------------------------------------

class ServerThread:
    """A DnsServer on 127.0.0.1 in its own thread and trio run."""

    def __init__(self) -> None:
        self.port = 0
        self.server: DnsServer | None = None
        self._ready = threading.Event()
        self._token: trio.lowlevel.TrioToken | None = None
        self._cancel: trio.CancelScope | None = None
        self._thread = threading.Thread(target=trio.run, args=(self._main,), daemon=True)
        self._thread.start()
        assert self._ready.wait(10)

    async def _main(self) -> None:
        settings = DnsSettings(source_qps=0, global_qps=0, tcp_idle_s=0.5)
        with trio.CancelScope() as self._cancel:
            async with trio.open_nursery() as nursery:
                self.server = await nursery.start(DnsServer(settings, lambda: big_catalog(80)).run)
                self.port = await self.server.listen("127.0.0.1", 0)
                self._token = trio.lowlevel.current_trio_token()
                self._ready.set()

    def stop(self) -> None:
        assert self._token is not None and self._cancel is not None
        trio.from_thread.run_sync(self._cancel.cancel, trio_token=self._token)
        self._thread.join(10)


@pytest.fixture(scope="module")
def running() -> Iterator[ServerThread]:
    thread = ServerThread()
    yield thread
    thread.stop()


def still_answers(port: int) -> None:
    q = dns.message.make_query("big.service.shoal", "A")
    msg = dns.query.udp(q, "127.0.0.1", port=port, timeout=5)
    assert msg.flags & dns.flags.TC


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                  HealthCheck.function_scoped_fixture])
@given(st.one_of(st.binary(max_size=600), mutated()), st.booleans())
def test_running_server_survives_fuzz(running: ServerThread, wire: bytes, tcp: bool) -> None:
    if tcp:
        with socket.create_connection(("127.0.0.1", running.port), timeout=5) as conn:
            conn.sendall(len(wire).to_bytes(2, "big") + wire if len(wire) < 65536 else wire)
            conn.shutdown(socket.SHUT_WR)
            try:
                while conn.recv(65536):
                    pass
            except OSError:
                pass
    else:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.sendto(wire, ("127.0.0.1", running.port))
    still_answers(running.port)


def test_running_server_counts_bad_input_by_reason(running: ServerThread) -> None:
    assert running.server is not None
    stats = running.server.stats
    before = dict(stats.bad)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.sendto(b"\x00" * 5, ("127.0.0.1", running.port))
        sock.sendto(b"\x00\x01\x80" + bytes(30), ("127.0.0.1", running.port))   # QR set
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and not (stats.bad["short"] > before.get("short", 0)
                                               and stats.bad["response"] > before.get("response", 0)):
        time.sleep(0.01)
    assert stats.bad["short"] > before.get("short", 0) and stats.bad["response"] > before.get("response", 0)
    still_answers(running.port)
    assert stats.bad["internal_error"] == 0     # nothing the fuzz sent raised inside


# ---- random catalogs ---------------------------------------------------------------

@st.composite
def catalogs(draw: st.DrawFn) -> Catalog:
    names = st.one_of(st.from_regex(r"[a-z][a-z0-9-]{0,10}[a-z0-9]", fullmatch=True), st.text(max_size=70))
    addresses = st.one_of(st.ip_addresses().map(str), st.text(max_size=20))
    instances = draw(st.lists(st.builds(
        ServiceInstance, names, st.integers(0, 50), names, addresses,
        st.lists(st.tuples(st.from_regex(r"[a-z][a-z0-9-]{0,13}", fullmatch=True), st.integers(1, 65535)),
                 max_size=3).map(lambda p: tuple(sorted(p)))), max_size=12))
    nodes = draw(st.dictionaries(names, addresses, max_size=6))
    return Catalog(tuple(sorted(instances)), nodes)


@settings(max_examples=300, deadline=None)
@given(catalogs())
def test_any_catalog_builds_a_zone_whose_answers_match_it(catalog: Catalog) -> None:
    zone = build_zone(catalog, "shoal", 5)
    for inst in catalog.instances:
        if not HOST_RE.fullmatch(inst.job) or not _is_ip(inst.address) or len(inst.job) > 63:
            continue
        rdtype = "A" if ":" not in inst.address else "AAAA"
        decision = answer(dns.message.make_query(f"{inst.index}.{inst.job}.service.shoal", rdtype).to_wire(),
                          zone, SETTINGS, tcp=True)
        assert isinstance(decision, Reply)
        msg = dns.message.from_wire(decision.wire)
        served = {ipaddress.ip_address(r.address) for rrset in msg.answer for r in rrset}
        assert ipaddress.ip_address(inst.address) in served


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
        return True
    except ValueError:
        return False
