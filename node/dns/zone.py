"""The records of the zone, built from the service catalog.

How this works: `build_zone(catalog, zone, ttl_s)` turns a Catalog
(node.core.catalog) into a table owner name -> record type -> rdatas, plus
the set of every name that exists (owners and the names between them and the
apex, which exist without records).  Every agent builds the same table from
its own catalog; nothing here is stored.  For the zone `shoal`:

    NAME.service.shoal                 A/AAAA: the distinct addresses of job NAME's instances
    SLOT.NAME.service.shoal            A/AAAA: replica SLOT of NAME
    _LABEL._tcp.NAME.service.shoal     SRV 1 1 PORT NODE.node.shoal, one per instance with
    _LABEL._tcp.SLOT.NAME.service.shoal    port LABEL (the host port); the answer carries
                                       the targets' A records in its additional section
    NODE.node.shoal                    A/AAAA: the node's address
    shoal                              SOA (names the zone; its minimum is the TTL, so
                                       NXDOMAIN is cached no longer than an answer)

A node whose name is not a DNS name gets no NODE.node name and its SRV
targets are the replica's SLOT.NAME name instead.  Names compare
case-insensitively (dnspython's Name).  Pure: no I/O.
"""

from __future__ import annotations

import ipaddress
import re
import zlib
from dataclasses import dataclass

import dns.name
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.rdtypes.ANY.SOA
import dns.rdtypes.IN.A
import dns.rdtypes.IN.AAAA
import dns.rdtypes.IN.SRV

from node.core.catalog import Catalog, ServiceInstance

# Host names as RFC 1123 has them (plus '_', which Docker-ish names use), per label.
_LABEL = r"[A-Za-z0-9_]([A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?"
HOST_RE = re.compile(rf"{_LABEL}(\.{_LABEL})*", re.ASCII)
SRV_PRIORITY = 1
SRV_WEIGHT = 1
# SOA timers: the zone is never transferred, so only `minimum` (the
# negative-caching TTL) matters; the others are RFC 1912's suggestions.
SOA_REFRESH_S, SOA_RETRY_S, SOA_EXPIRE_S = 3600, 600, 86400

Records = dict[int, tuple[dns.rdata.Rdata, ...]]   # rdtype -> rdatas


@dataclass(frozen=True, slots=True)
class Zone:
    origin: dns.name.Name
    ttl_s: int
    records: dict[dns.name.Name, Records]
    names: frozenset[dns.name.Name]        # every name that exists (owners and their ancestors in the zone)
    soa: dns.rdata.Rdata

    def lookup(self, name: dns.name.Name) -> Records | None:
        """The records at `name` (empty if it exists without any), or None if
        the name does not exist in the zone."""
        if name not in self.names:
            return None
        return self.records.get(name, {})


def build_zone(catalog: Catalog, zone: str, ttl_s: int) -> Zone:
    origin = dns.name.from_text(zone)
    service = dns.name.Name((b"service",) + origin.labels)
    nodes = dns.name.Name((b"node",) + origin.labels)
    records: dict[dns.name.Name, dict[int, list[dns.rdata.Rdata]]] = {}

    def add(owner: dns.name.Name, rdata: dns.rdata.Rdata) -> None:
        bucket = records.setdefault(owner, {}).setdefault(rdata.rdtype, [])
        if rdata not in bucket:
            bucket.append(rdata)

    node_names: dict[str, dns.name.Name] = {}
    node_addresses = dict(catalog.nodes)
    for inst in catalog.instances:
        node_addresses.setdefault(inst.node, inst.address)
    for node, address in sorted(node_addresses.items()):
        name = _child(node, nodes)
        rdata = _address(address)
        if name is None or rdata is None:
            continue
        node_names[node] = name
        add(name, rdata)
    for inst in catalog.instances:
        job = _child(inst.job, service)
        rdata = _address(inst.address)
        if job is None or rdata is None:
            continue
        slot = dns.name.Name((str(inst.index).encode(),) + job.labels)
        add(job, rdata)
        add(slot, rdata)
        target = _srv_target(inst, node_names, slot)
        for label, port in inst.ports:
            srv = dns.rdtypes.IN.SRV.SRV(dns.rdataclass.IN, dns.rdatatype.SRV, SRV_PRIORITY, SRV_WEIGHT, port,
                                         target)
            for base in (job, slot):
                owner = _child(f"_{label}._tcp", base)
                if owner is not None:
                    add(owner, srv)
    serial = zlib.crc32(repr((catalog.instances, sorted(catalog.nodes.items()))).encode())
    soa = dns.rdtypes.ANY.SOA.SOA(dns.rdataclass.IN, dns.rdatatype.SOA,
                                  dns.name.Name((b"ns",) + origin.labels),
                                  dns.name.Name((b"hostmaster",) + origin.labels),
                                  serial, SOA_REFRESH_S, SOA_RETRY_S, SOA_EXPIRE_S, ttl_s)
    add(origin, soa)
    names = set()
    for owner in records:
        name = owner
        while name != origin and len(name) > len(origin):
            names.add(name)
            name = name.parent()
    names.add(origin)
    frozen = {owner: {t: tuple(sorted(rs, key=_order)) for t, rs in types.items()} for owner, types in records.items()}
    return Zone(origin, ttl_s, frozen, frozenset(names), soa)


def _srv_target(inst: ServiceInstance, node_names: dict[str, dns.name.Name],
                slot: dns.name.Name) -> dns.name.Name:
    # The node's name has the A record of the node's address; if the node's
    # name is no DNS name, the replica's own name has the same address.
    name = node_names.get(inst.node)
    return name if name is not None else slot


def _child(text: str, parent: dns.name.Name) -> dns.name.Name | None:
    """`text` (one or more labels) under `parent`, lowercase; None if it is not a host name."""
    if not HOST_RE.fullmatch(text):
        return None
    try:
        return dns.name.Name(tuple(p.lower().encode() for p in text.split(".")) + parent.labels)
    except dns.name.NameTooLong:
        return None


def _address(text: str) -> dns.rdata.Rdata | None:
    try:
        ip = ipaddress.ip_address(text)
    except ValueError:
        return None
    if ip.version == 4:
        return dns.rdtypes.IN.A.A(dns.rdataclass.IN, dns.rdatatype.A, str(ip))
    return dns.rdtypes.IN.AAAA.AAAA(dns.rdataclass.IN, dns.rdatatype.AAAA, str(ip))


def _order(rdata: dns.rdata.Rdata) -> str:
    return rdata.to_text()
