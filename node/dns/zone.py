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
    SERVICE.STACK.stack.shoal          the same names again for a stack's job STACK-SERVICE
      (and SLOT., _LABEL._tcp. under it)  (node.core.stack_names): its containers search
                                       STACK.stack.shoal first, so `db` is job shop-db
                                       (and `db_main`, asked as it is in Compose, shop-db-main)
    NODE.node.shoal                    A/AAAA: the node's address
    shoal                              SOA (names the zone; its minimum is the TTL, so
                                       NXDOMAIN is cached no longer than an answer)

A node whose name is not a DNS name gets no NODE.node name and its SRV
targets are the replica's SLOT.NAME name instead.  Names compare
case-insensitively (keys are lowercase labels).  Pure: no I/O.
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

from node.core.catalog import Catalog
from node.core.stack_names import service_of, stack_of

# Host names as RFC 1123 has them (plus '_', which Docker-ish names use), per label.
_LABEL = r"[A-Za-z0-9_]([A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?"
HOST_RE = re.compile(rf"{_LABEL}(\.{_LABEL})*", re.ASCII)
SRV_PRIORITY = 1
SRV_WEIGHT = 1
# SOA timers: the zone is never transferred, so only `minimum` (the
# negative-caching TTL) matters; the others are RFC 1912's suggestions.
SOA_REFRESH_S, SOA_RETRY_S, SOA_EXPIRE_S = 3600, 600, 86400

Records = dict[int, tuple[dns.rdata.Rdata, ...]]   # rdtype -> rdatas
# A name as the zone keys it: its labels, lowercase, root label included.
# (Hashing a tuple of bytes is done in C; hashing a dnspython Name is not.)
Labels = tuple[bytes, ...]
MAX_NAME_BYTES = 255


def labels_of(name: dns.name.Name) -> Labels:
    return tuple(label.lower() for label in name.labels)


@dataclass(frozen=True, slots=True)
class Zone:
    origin: dns.name.Name
    ttl_s: int
    records: dict[Labels, Records]
    names: frozenset[Labels]        # every name that exists (owners and their ancestors in the zone)
    soa: dns.rdata.Rdata

    def lookup(self, name: dns.name.Name) -> Records | None:
        """The records at `name` (empty if it exists without any), or None if
        the name does not exist in the zone.  A label with '_' inside it (not
        leading: `_http._tcp` keeps its own) is also read with '-': job names
        have none, and a Compose service `db_main` is job shop-db-main, which
        its stack's containers ask for as `db_main`, as under Compose."""
        key = labels_of(name)
        if key not in self.names:
            key = tuple(label[:1] + label[1:].replace(b"_", b"-") for label in key)
            if key not in self.names:
                return None
        return self.records.get(key, {})

    def at(self, name: dns.name.Name) -> Records:
        return self.records.get(labels_of(name), {})


def build_zone(catalog: Catalog, zone: str, ttl_s: int) -> Zone:
    origin = dns.name.from_text(zone)
    apex = labels_of(origin)
    service = (b"service",) + apex
    stacks = (b"stack",) + apex
    nodes = (b"node",) + apex
    # owner -> type -> sort key -> rdata: records deduplicated and ordered on
    # plain keys (comparing dnspython rdatas renders them to wire format).
    records: dict[Labels, dict[int, dict[tuple, dns.rdata.Rdata]]] = {}
    addresses: dict[str, dns.rdata.Rdata | None] = {}
    srvs: dict[tuple[int, Labels], dns.rdata.Rdata] = {}

    def add(owner: Labels, key: tuple, rdata: dns.rdata.Rdata) -> None:
        records.setdefault(owner, {}).setdefault(rdata.rdtype, {}).setdefault(key, rdata)

    def address(text: str) -> dns.rdata.Rdata | None:
        if text not in addresses:
            addresses[text] = _address(text)
        return addresses[text]

    node_names: dict[str, Labels] = {}
    node_addresses = dict(catalog.nodes)
    for inst in catalog.instances:
        node_addresses.setdefault(inst.node, inst.address)
    for node, text in sorted(node_addresses.items()):
        name = _child(node, nodes)
        rdata = address(text)
        if name is None or rdata is None:
            continue
        node_names[node] = name
        add(name, (text,), rdata)
    jobs: dict[str, tuple[Labels, ...]] = {}
    for inst in catalog.instances:
        if inst.job not in jobs:
            jobs[inst.job] = _job_names(inst.job, service, stacks)
        rdata = address(inst.address)
        if not jobs[inst.job] or rdata is None:
            continue
        # The node's name has the A record of the node's address; if the
        # node's name is no DNS name, the replica's own name has the same one.
        target = node_names.get(inst.node, (str(inst.index).encode(),) + jobs[inst.job][0])
        for job in jobs[inst.job]:
            slot = (str(inst.index).encode(),) + job
            add(job, (inst.address,), rdata)
            add(slot, (inst.address,), rdata)
            for label, port in inst.ports:
                srv = srvs.get((port, target))
                if srv is None:
                    srv = srvs[(port, target)] = dns.rdtypes.IN.SRV.SRV(
                        dns.rdataclass.IN, dns.rdatatype.SRV, SRV_PRIORITY, SRV_WEIGHT, port,
                        dns.name.Name(target))
                for base in (job, slot):
                    owner = _child(f"_{label}._tcp", base)
                    if owner is not None:
                        add(owner, (port, target), srv)
    serial = zlib.crc32(repr((catalog.instances, sorted(catalog.nodes.items()))).encode())
    soa = dns.rdtypes.ANY.SOA.SOA(dns.rdataclass.IN, dns.rdatatype.SOA,
                                  dns.name.Name((b"ns",) + origin.labels),
                                  dns.name.Name((b"hostmaster",) + origin.labels),
                                  serial, SOA_REFRESH_S, SOA_RETRY_S, SOA_EXPIRE_S, ttl_s)
    add(apex, (), soa)
    names = {apex}
    for owner in records:
        while owner not in names:
            names.add(owner)
            owner = owner[1:]
    frozen = {owner: {t: tuple(rs[k] for k in sorted(rs)) for t, rs in types.items()}
              for owner, types in records.items()}
    return Zone(origin, ttl_s, frozen, frozenset(names), soa)


def _job_names(job: str, service: Labels, stacks: Labels) -> tuple[Labels, ...]:
    """Where job's records go: NAME.service, and SERVICE.STACK.stack for a
    stack's job; none if the name is no DNS name."""
    name = _child(job, service)
    if name is None:
        return ()
    stack, part = stack_of(job), service_of(job)
    in_stack = _child(f"{part}.{stack}", stacks) if stack is not None and part is not None else None
    return (name,) if in_stack is None else (name, in_stack)


def _child(text: str, parent: Labels) -> Labels | None:
    """`text` (one or more labels) under `parent`, lowercase; None if it is
    not a host name or the name would be too long."""
    if not HOST_RE.fullmatch(text):
        return None
    name = tuple(p.lower().encode() for p in text.split(".")) + parent
    if sum(len(label) + 1 for label in name) > MAX_NAME_BYTES:
        return None
    return name


def _address(text: str) -> dns.rdata.Rdata | None:
    try:
        ip = ipaddress.ip_address(text)
    except ValueError:
        return None
    if ip.version == 4:
        return dns.rdtypes.IN.A.A(dns.rdataclass.IN, dns.rdatatype.A, str(ip))
    return dns.rdtypes.IN.AAAA.AAAA(dns.rdataclass.IN, dns.rdatatype.AAAA, str(ip))
