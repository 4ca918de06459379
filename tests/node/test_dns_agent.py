"""A real agent process serves DNS (node.dns) over UDP and TCP, counts bad
input in /v1/metrics, and keeps answering after a burst of garbage."""

from __future__ import annotations

import socket
import time

import dns.flags
import dns.message
import dns.query
import dns.rcode
import httpx
import pytest

from agentproc import running_agent

pytestmark = pytest.mark.real

CONFIG = 'dns_bind = "127.0.0.1:0"\n'


def dns_port(info: dict) -> int:
    assert info.get("dns"), info
    return int(info["dns"].rsplit(":", 1)[1])


def test_agent_answers_for_its_zone_over_udp_and_tcp(tmp_path):
    with running_agent(tmp_path, "dns1", CONFIG) as info:
        port = dns_port(info)
        for query in (dns.query.udp, dns.query.tcp):
            soa = query(dns.message.make_query("shoal", "SOA"), "127.0.0.1", port=port, timeout=5)
            assert soa.rcode() == dns.rcode.NOERROR and soa.flags & dns.flags.AA
            assert soa.answer[0][0].mname.to_text() == "ns.shoal."
            missing = query(dns.message.make_query("nope.service.shoal", "A"), "127.0.0.1", port=port, timeout=5)
            assert missing.rcode() == dns.rcode.NXDOMAIN
            other = query(dns.message.make_query("example.com", "A"), "127.0.0.1", port=port, timeout=5)
            assert other.rcode() == dns.rcode.REFUSED


def test_agent_survives_garbage_and_counts_it(tmp_path):
    with running_agent(tmp_path, "dns2", CONFIG) as info:
        port = dns_port(info)
        good = dns.message.make_query("shoal", "SOA").to_wire()
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            for i in range(300):
                junk = bytes((i * 7 + j) % 256 for j in range(i % 40))
                sock.sendto(junk, ("127.0.0.1", port))
                sock.sendto(good[:2] + bytes([good[2] | 0x80]) + good[3:], ("127.0.0.1", port))
        with socket.create_connection(("127.0.0.1", port), timeout=5) as conn:
            conn.sendall(b"\xff\xff" + bytes(64))   # a length over the bound
        deadline = time.monotonic() + 10
        text = ""
        while time.monotonic() < deadline:
            text = httpx.get(f"{info['api']}/v1/metrics", timeout=5).text
            if all(f'shoal_dns_bad_input_total{{reason="{r}"}}' in text for r in ("response", "short", "oversized")):
                break
            time.sleep(0.1)
        # (Not all 600 datagrams need arrive: a burst overflows the socket's
        # receive buffer, which is one of the bounds.)
        assert 'shoal_dns_bad_input_total{reason="response"}' in text
        assert 'shoal_dns_bad_input_total{reason="short"}' in text
        assert 'shoal_dns_bad_input_total{reason="oversized"}' in text
        assert 'reason="internal_error"' not in text
        soa = dns.query.udp(dns.message.make_query("shoal", "SOA"), "127.0.0.1", port=port, timeout=5)
        assert soa.rcode() == dns.rcode.NOERROR
        assert 'shoal_dns_queries_total{outcome="answer",transport="udp"}' in \
            httpx.get(f"{info['api']}/v1/metrics", timeout=5).text


def test_dns_off_serves_nothing(tmp_path):
    with running_agent(tmp_path, "dns3", 'dns_bind = "off"\n') as info:
        assert info.get("dns") is None
