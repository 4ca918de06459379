"""Golden answers of the DNS answerer (node.dns.answer) for a fixed catalog."""

from __future__ import annotations

import dns.flags
import dns.message
import dns.rcode
import pytest

from node.agent.config import build_config
from node.agent.errors import ConfigError
from node.core.catalog import Catalog, ServiceInstance
from node.dns.answer import Drop, Forward, Reply, answer
from node.dns.settings import DnsSettings
from node.dns.zone import build_zone
from dns_fixtures import CATALOG, ask, big_catalog, section

SOA = "shoal. 5 IN SOA ns.shoal. hostmaster.shoal. {serial} 3600 600 86400 5"


def serial(msg: dns.message.Message) -> int:
    return msg.authority[0][0].serial


def test_service_a_lists_distinct_instance_addresses() -> None:
    reply, msg = ask("api.service.shoal", "A")
    assert msg.rcode() == dns.rcode.NOERROR and reply.outcome == "answer"
    assert msg.flags & dns.flags.AA
    assert section(msg.answer) == ["api.service.shoal. 5 IN A 10.0.0.1", "api.service.shoal. 5 IN A 10.0.0.2"]


def test_srv_per_port_label_with_node_addresses_in_additional() -> None:
    _, msg = ask("_http._tcp.api.service.shoal", "SRV")
    assert section(msg.answer) == [
        "_http._tcp.api.service.shoal. 5 IN SRV 1 1 20001 node-1.node.shoal.",
        "_http._tcp.api.service.shoal. 5 IN SRV 1 1 20002 node-2.node.shoal.",
        "_http._tcp.api.service.shoal. 5 IN SRV 1 1 20005 node-2.node.shoal.",
    ]
    assert section(msg.additional) == ["node-1.node.shoal. 5 IN A 10.0.0.1", "node-2.node.shoal. 5 IN A 10.0.0.2"]


def test_slot_name_answers_for_one_replica() -> None:
    _, msg = ask("2.api.service.shoal", "A")
    assert section(msg.answer) == ["2.api.service.shoal. 5 IN A 10.0.0.2"]
    _, msg = ask("_grpc._tcp.2.api.service.shoal", "SRV")
    assert section(msg.answer) == ["_grpc._tcp.2.api.service.shoal. 5 IN SRV 1 1 20006 node-2.node.shoal."]


def test_a_stacks_job_answers_by_its_service_name_in_the_stacks_domain() -> None:
    """Job shop-db (service db of stack shop) is also db.shop.stack.shoal:
    the stack's containers search shop.stack.shoal first, so `db` finds it."""
    catalog = Catalog((ServiceInstance("shop-db", 0, "node-1", "10.0.0.1", (("pg", 25432),)),
                       ServiceInstance("shop-db-main", 0, "node-2", "10.0.0.2", ()),
                       ServiceInstance("web", 0, "node-2", "10.0.0.2", ())),
                      {"node-1": "10.0.0.1", "node-2": "10.0.0.2"})
    for name in ("db.shop.stack.shoal", "0.db.shop.stack.shoal", "shop-db.service.shoal"):
        _, msg = ask(name, "A", catalog=catalog)
        assert section(msg.answer) == [f"{name}. 5 IN A 10.0.0.1"], name
    _, msg = ask("_pg._tcp.db.shop.stack.shoal", "SRV", catalog=catalog)
    assert section(msg.answer) == ["_pg._tcp.db.shop.stack.shoal. 5 IN SRV 1 1 25432 node-1.node.shoal."]
    _, msg = ask("db-main.shop.stack.shoal", "A", catalog=catalog)
    assert section(msg.answer) == ["db-main.shop.stack.shoal. 5 IN A 10.0.0.2"]
    # ... and as Compose names it, service db_main (a job name has no '_'), under the name asked.
    _, msg = ask("db_main.shop.stack.shoal", "A", catalog=catalog)
    assert section(msg.answer) == ["db_main.shop.stack.shoal. 5 IN A 10.0.0.2"]
    _, msg = ask("db_other.shop.stack.shoal", "A", catalog=catalog)
    assert msg.rcode() == dns.rcode.NXDOMAIN
    # A job in no stack has no such name, and a stack has no job of another's.
    for name in ("web.stack.shoal", "web.shop.stack.shoal", "db.web.stack.shoal"):
        _, msg = ask(name, "A", catalog=catalog)
        assert msg.rcode() == dns.rcode.NXDOMAIN, name


def test_node_name_answers_every_live_node_even_without_replicas() -> None:
    _, msg = ask("node-4.node.shoal", "A")
    assert section(msg.answer) == ["node-4.node.shoal. 5 IN A 10.0.0.4"]


def test_unknown_names_are_nxdomain_with_the_soa() -> None:
    for name in ("nope.service.shoal", "3.api.service.shoal", "_ftp._tcp.api.service.shoal", "node-9.node.shoal",
                 "x.shoal"):
        reply, msg = ask(name, "A")
        assert msg.rcode() == dns.rcode.NXDOMAIN, name
        assert reply.outcome == "nxdomain"
        assert msg.answer == []
        assert section(msg.authority) == [SOA.format(serial=serial(msg))]


def test_known_name_with_another_type_is_empty_noerror() -> None:
    for name, rdtype in (("api.service.shoal", "AAAA"), ("api.service.shoal", "SRV"),
                         ("_tcp.api.service.shoal", "A"), ("service.shoal", "A"), ("node-1.node.shoal", "TXT")):
        reply, msg = ask(name, rdtype)
        assert msg.rcode() == dns.rcode.NOERROR and msg.answer == [], (name, rdtype)
        assert reply.outcome == "nodata"
        assert len(msg.authority) == 1 and msg.authority[0].rdtype == dns.rdatatype.SOA


def test_names_are_case_insensitive_and_the_question_is_echoed() -> None:
    _, msg = ask("API.Service.SHOAL", "A")
    assert msg.question[0].name.to_text() == "API.Service.SHOAL."
    assert sorted(r.address for r in msg.answer[0]) == ["10.0.0.1", "10.0.0.2"]


def test_zone_and_ttl_are_configurable_and_ttl_zero_is_allowed() -> None:
    settings = DnsSettings(zone="cluster.internal", ttl_s=0)
    _, msg = ask("web.service.cluster.internal", "A", settings=settings)
    assert section(msg.answer) == ["web.service.cluster.internal. 0 IN A 10.0.0.3"]
    reply, _ = ask("web.service.shoal", "A", settings=settings)
    assert reply.outcome == "refused"


def test_other_zones_are_refused_without_resolvers_and_forwarded_with() -> None:
    reply, msg = ask("example.com", "A")
    assert msg.rcode() == dns.rcode.REFUSED and msg.answer == [] and not msg.flags & dns.flags.AA
    settings = DnsSettings(forward=(("127.0.0.1", 5353),))
    zone = build_zone(CATALOG, "shoal", 5)
    decision = answer(dns.message.make_query("example.com", "A").to_wire(), zone, settings, tcp=False)
    assert isinstance(decision, Forward) and decision.limit_bytes == 512
    # A name that only ends like the zone is another zone.
    reply, _ = ask("notshoal", "A")
    assert reply.outcome == "refused"


def test_zone_transfers_are_refused() -> None:
    reply, msg = ask("shoal", "AXFR", tcp=True)
    assert msg.rcode() == dns.rcode.REFUSED


def test_big_answer_over_udp_is_truncated_and_complete_over_tcp() -> None:
    catalog = big_catalog(80)
    reply, msg = ask("big.service.shoal", "A", catalog=catalog)
    assert len(reply.wire) <= 512 and reply.truncated and msg.flags & dns.flags.TC
    reply, msg = ask("big.service.shoal", "A", catalog=catalog, use_edns=0, payload=4096)
    assert len(reply.wire) <= 1232 and msg.flags & dns.flags.TC   # our EDNS cap, not the client's 4096
    reply, msg = ask("big.service.shoal", "A", catalog=catalog, tcp=True)
    assert not reply.truncated and not msg.flags & dns.flags.TC
    assert len(msg.answer[0]) == 80


def test_srv_additional_that_does_not_fit_is_left_out_without_tc() -> None:
    catalog = big_catalog(12)   # 12 SRV records fit in 512 bytes, with their 12 A records they do not
    reply, msg = ask("_http._tcp.big.service.shoal", "SRV", catalog=catalog)
    assert len(msg.answer[0]) == 12
    assert not reply.truncated and len(reply.wire) <= 512
    assert len(msg.additional) < 12
    _, msg = ask("_http._tcp.big.service.shoal", "SRV", catalog=catalog, tcp=True)
    assert len(msg.additional) == 12


def test_a_node_name_that_is_no_dns_name_gives_slot_targets() -> None:
    catalog = Catalog((ServiceInstance("db", 0, "rack 1/box", "10.0.0.9", (("pg", 25432),)),),
                      {"rack 1/box": "10.0.0.9"})
    _, msg = ask("_pg._tcp.db.service.shoal", "SRV", catalog=catalog)
    assert section(msg.answer) == ["_pg._tcp.db.service.shoal. 5 IN SRV 1 1 25432 0.db.service.shoal."]
    assert section(msg.additional) == ["0.db.service.shoal. 5 IN A 10.0.0.9"]


def test_empty_catalog_still_answers_for_the_zone() -> None:
    reply, msg = ask("api.service.shoal", "A", catalog=Catalog())
    assert msg.rcode() == dns.rcode.NXDOMAIN
    _, msg = ask("shoal", "SOA", catalog=Catalog())
    assert msg.answer[0].rdtype == dns.rdatatype.SOA


# ---- bad input ------------------------------------------------------------------

def _decide(wire: bytes, tcp: bool = False) -> Reply | Drop | Forward:
    return answer(wire, build_zone(CATALOG, "shoal", 5), DnsSettings(), tcp=tcp)


def _query(name: str = "api.service.shoal", rdtype: str = "A", **kw: object) -> bytes:
    return dns.message.make_query(name, rdtype, **kw).to_wire()


def test_short_and_response_packets_are_dropped_unanswered() -> None:
    assert _decide(b"") == Drop("short")
    assert _decide(_query()[:11]) == Drop("short")
    wire = bytearray(_query())
    wire[2] |= 0x80   # QR
    assert _decide(bytes(wire)) == Drop("response")


def test_oversized_queries_are_dropped() -> None:
    padded = dns.message.make_query("api.service.shoal", "A")
    assert _decide(_query() + bytes(600)) == Drop("oversized")
    assert _decide(bytes(5000)) == Drop("oversized")
    # Over 512 bytes is fine with EDNS (here an EDNS padding option).
    padded.use_edns(0, pad=700)
    decision = _decide(padded.to_wire())
    assert isinstance(decision, Reply) and decision.outcome == "answer"


def test_malformed_queries_get_formerr_with_their_id() -> None:
    wire = _query()
    for bad in (wire[:-3], wire + b"junk", wire[:12] + b"\xff" * 20):
        decision = _decide(bad)
        assert isinstance(decision, Reply) and decision.outcome == "formerr" and decision.bad == "malformed"
        assert decision.wire[:2] == bad[:2] and len(decision.wire) == 12
        assert dns.message.from_wire(decision.wire).rcode() == dns.rcode.FORMERR


def test_two_questions_get_formerr_and_other_opcodes_notimp() -> None:
    wire = bytearray(_query())
    wire[5] = 2
    decision = _decide(bytes(wire))
    assert isinstance(decision, Reply) and decision.bad == "questions" and decision.outcome == "formerr"
    notify = dns.message.make_query("api.service.shoal", "SOA")
    notify.set_opcode(dns.opcode.NOTIFY)
    decision = _decide(notify.to_wire())
    assert isinstance(decision, Reply) and decision.bad == "opcode"
    assert dns.message.from_wire(decision.wire).rcode() == dns.rcode.NOTIMP


def test_edns_version_1_gets_badvers() -> None:
    decision = _decide(_query(use_edns=1))
    assert isinstance(decision, Reply) and decision.outcome == "badvers"
    assert dns.message.from_wire(decision.wire).rcode() == dns.rcode.BADVERS


# ---- settings --------------------------------------------------------------------

@pytest.mark.parametrize("values, field, words", [
    ({"dns_bind": "dns.example:53"}, "dns_bind", "expected an IP address"),
    ({"dns_bind": 8600}, "dns_bind", "or \"off\""),
    ({"dns_ttl_s": 1.5}, "dns_ttl_s", "whole number"),
    ({"dns_ttl_s": -1}, "dns_ttl_s", "whole number"),
    ({"dns_zone": "a..b"}, "dns_zone", "not a DNS name"),
    ({"dns_forward": ["resolver.example"]}, "dns_forward", "expected an IP address"),
    ({"dns_forward": ["127.0.0.1:8600"]}, "dns_forward", "queries would loop"),
    ({"dns_on_bridge": "yes"}, "dns_on_bridge", "true or false"),
    ({"dns_source_qps": -5}, "dns_source_qps", ">= 0"),
])
def test_bad_dns_settings_name_the_setting(values: dict, field: str, words: str) -> None:
    with pytest.raises(ConfigError) as e:
        build_config({"bind": "127.0.0.1:7946", **values})
    assert e.value.field == field and words in str(e.value), str(e.value)


def test_dns_settings_parse() -> None:
    cfg = build_config({"bind": "127.0.0.1:7946", "dns_bind": "off", "dns_zone": "Cluster.Internal.",
                        "dns_ttl_s": 0, "dns_forward": ["192.0.2.53", "[2001:db8::53]:5353"]})
    assert cfg.dns_bind is None and cfg.dns_zone == "cluster.internal" and cfg.dns_ttl_s == 0
    assert cfg.dns_forward == (("192.0.2.53", 53), ("2001:db8::53", 5353))
    default = build_config({"bind": "127.0.0.1:7946"})
    assert default.dns_bind == ("127.0.0.1", 8600) and default.dns_on_bridge and default.dns_ttl_s == 5
