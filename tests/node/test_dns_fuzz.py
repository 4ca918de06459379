"""Fuzzed queries never make the DNS answerer raise, and what it sends back
is always a well-formed reply to that query within the client's limit."""

from __future__ import annotations

import dns.message
import dns.rdatatype
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from node.dns.answer import HEADER_BYTES, Drop, Forward, Reply, answer
from node.dns.settings import DnsSettings
from node.dns.zone import build_zone
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
