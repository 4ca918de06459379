"""A real agent process serves DNS (node.dns) over UDP and TCP, counts bad
input in /v1/metrics, and keeps answering after a burst of garbage."""

from __future__ import annotations

import socket
import time

import dns.exception
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
        # The burst may still fill the socket's buffer (the counters above are
        # seen at the first of each kind), so a query can be dropped there:
        # ask as a resolver does, again after a timeout.
        soa = None
        deadline = time.monotonic() + 20
        while soa is None and time.monotonic() < deadline:
            try:
                soa = dns.query.udp(dns.message.make_query("shoal", "SOA"), "127.0.0.1", port=port, timeout=2)
            except dns.exception.Timeout:
                continue
        assert soa is not None, "the agent's DNS did not answer within 20 s of the burst"
        assert soa.rcode() == dns.rcode.NOERROR
        assert 'shoal_dns_queries_total{outcome="answer",transport="udp"}' in \
            httpx.get(f"{info['api']}/v1/metrics", timeout=5).text


def test_dns_off_serves_nothing(tmp_path):
    with running_agent(tmp_path, "dns3", 'dns_bind = "off"\n') as info:
        assert info.get("dns") is None


def _wait_for(what: str, check, timeout_s: float = 30.0):
    deadline = time.monotonic() + timeout_s
    last = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(0.1)
    raise AssertionError(f"{what} within {timeout_s} s; last: {last}")


def test_agent_answers_for_a_running_job_and_forgets_it_when_stopped(tmp_path):
    job = {"name": "api", "image": "busybox", "replicas": 2, "cpu": 0.1, "memory": "16MiB",
           "ports": {"http": {"to": 8080}}}
    with running_agent(tmp_path, "dnsjob", CONFIG, "--cpus", "2", "--memory", "2GiB") as info:
        port = dns_port(info)
        assert httpx.post(f"{info['api']}/v1/jobs", json=job, timeout=10).status_code == 201

        def ask(name: str, rdtype: str, tcp: bool = False) -> dns.message.Message:
            query = dns.query.tcp if tcp else dns.query.udp
            return query(dns.message.make_query(name, rdtype), "127.0.0.1", port=port, timeout=5)

        srv = _wait_for("SRV lists both replicas", lambda: (m := ask("_http._tcp.api.service.shoal", "SRV"))
                        .answer and len(m.answer[0]) == 2 and m)
        ports = sorted(r.port for r in srv.answer[0])
        assert all(20000 <= p <= 32000 for p in ports) and len(set(ports)) == 2   # dynamic host ports
        assert {r.target.to_text() for r in srv.answer[0]} == {"dnsjob.node.shoal."}
        assert [r.address for rrset in srv.additional for r in rrset] == ["127.0.0.1"]
        for tcp in (False, True):
            a = ask("API.service.shoal", "A", tcp)
            assert [r.address for r in a.answer[0]] == ["127.0.0.1"] and a.answer[0].ttl == 5
            assert [r.address for r in ask("1.api.service.shoal", "A", tcp).answer[0]] == ["127.0.0.1"]
            assert [r.address for r in ask("dnsjob.node.shoal", "A", tcp).answer[0]] == ["127.0.0.1"]
        assert ask("2.api.service.shoal", "A").rcode() == dns.rcode.NXDOMAIN
        assert httpx.delete(f"{info['api']}/v1/jobs/api", timeout=10).status_code in (200, 202, 204)
        _wait_for("the stopped job leaves DNS",
                  lambda: ask("api.service.shoal", "A").rcode() == dns.rcode.NXDOMAIN)
