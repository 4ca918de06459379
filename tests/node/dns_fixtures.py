"""A small catalog and helpers shared by the DNS tests."""

from __future__ import annotations

import dns.message
import dns.rdatatype

from node.core.catalog import Catalog, ServiceInstance
from node.dns.answer import Reply, answer
from node.dns.settings import DnsSettings
from node.dns.zone import build_zone

CATALOG = Catalog(
    instances=(
        ServiceInstance("api", 0, "node-1", "10.0.0.1", (("grpc", 20003), ("http", 20001))),
        ServiceInstance("api", 1, "node-2", "10.0.0.2", (("grpc", 20004), ("http", 20002))),
        ServiceInstance("api", 2, "node-2", "10.0.0.2", (("grpc", 20006), ("http", 20005))),
        ServiceInstance("web", 0, "node-3", "10.0.0.3", (("http", 21000),), "no check"),
    ),
    nodes={"node-1": "10.0.0.1", "node-2": "10.0.0.2", "node-3": "10.0.0.3", "node-4": "10.0.0.4"},
)


def big_catalog(n: int = 80) -> Catalog:
    """One job with n replicas on n nodes: its A answer is over 512 bytes."""
    instances = tuple(ServiceInstance("big", i, f"n{i}", f"10.1.{i // 250}.{i % 250 + 1}", (("http", 20000 + i),))
                      for i in range(n))
    return Catalog(instances, {i.node: i.address for i in instances})


def ask(name: str, rdtype: str = "A", *, catalog: Catalog = CATALOG, settings: DnsSettings | None = None,
        tcp: bool = False, **query_kw: object) -> tuple[Reply, dns.message.Message]:
    settings = settings or DnsSettings()
    zone = build_zone(catalog, settings.zone, settings.ttl_s)
    query = dns.message.make_query(name, rdtype, **query_kw)
    decision = answer(query.to_wire(), zone, settings, tcp=tcp)
    assert isinstance(decision, Reply), decision
    return decision, dns.message.from_wire(decision.wire)


def section(rrsets: list) -> list[str]:
    """Each record as text, sorted (the answerer rotates equal records)."""
    return sorted(line for rrset in rrsets for line in rrset.to_text().splitlines())


def rdtype(name: str) -> int:
    return dns.rdatatype.from_text(name)
