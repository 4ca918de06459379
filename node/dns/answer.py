"""One DNS query in, one decision out: a reply, a drop, or a forward.

How this works: `answer(wire, zone, settings, tcp=...)` checks the query in
the order below, cheapest first, and stops at the first rule that applies:

    shorter than a header (12 bytes)             drop    "short"
    longer than settings.query_max_bytes         drop    "oversized"
    QR set (a response, maybe a reflection)      drop    "response"
    opcode other than QUERY                      NOTIMP  "opcode"
    not exactly one question                     FORMERR "questions"
    does not parse (dnspython)                   FORMERR "malformed" (UDP over 512 bytes:
                                                         drop "oversized")
    UDP, over 512 bytes without EDNS             drop    "oversized"
    EDNS version other than 0                    BADVERS "edns_version"
    class other than IN                          REFUSED
    a name in our zone                           the zone's answer (AA set):
        zone transfer (AXFR, IXFR)                  REFUSED
        name does not exist                         NXDOMAIN, the SOA in authority
        name exists, no record of the type          NOERROR, empty, the SOA in authority
        otherwise                                   the records (ANY: all of them); SRV
                                                    targets' addresses in additional
    another zone, resolvers configured           forward (node.dns.forward does it)
    another zone, none configured                REFUSED

Drops get no answer at all (a reply to a short or response packet could be
aimed at a spoofed victim); the others cost at most a header.  A reply is
rendered for the client's limit: 512 bytes over UDP, or its EDNS size
(capped by ours); what does not fit is cut by whole RRsets with TC set (the
client asks again over TCP, where the limit is 65535).  The order of equal
records rotates with the query id, so clients that take the first address
spread over the instances.  Pure: no I/O, no clock.
"""

from __future__ import annotations

from dataclasses import dataclass

import dns.edns
import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.opcode
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rrset

from node.dns.settings import DnsSettings
from node.dns.zone import Zone

HEADER_BYTES = 12
UDP_PLAIN_MAX_BYTES = 512      # RFC 1035, without EDNS
TCP_MAX_BYTES = 65535
TRANSFER_TYPES = (dns.rdatatype.AXFR, dns.rdatatype.IXFR)


@dataclass(frozen=True, slots=True)
class Reply:
    wire: bytes
    outcome: str            # what is counted: answer, nodata, nxdomain, refused, formerr, notimp, badvers
    bad: str | None = None  # the bad-input reason, if the query was bad
    truncated: bool = False


@dataclass(frozen=True, slots=True)
class Drop:
    reason: str


@dataclass(frozen=True, slots=True)
class Forward:
    query: dns.message.Message
    limit_bytes: int        # the client's limit for the reply


Decision = Reply | Drop | Forward


def answer(wire: bytes, zone: Zone, settings: DnsSettings, *, tcp: bool) -> Decision:
    if len(wire) < HEADER_BYTES:
        return Drop("short")
    if len(wire) > settings.query_max_bytes:
        return Drop("oversized")
    flags = int.from_bytes(wire[2:4], "big")
    if flags & dns.flags.QR:
        return Drop("response")
    if dns.opcode.from_flags(flags) != dns.opcode.QUERY:
        return Reply(header_reply(wire, dns.rcode.NOTIMP), "notimp", "opcode")
    if int.from_bytes(wire[4:6], "big") != 1:
        return Reply(header_reply(wire, dns.rcode.FORMERR), "formerr", "questions")
    try:
        query = dns.message.from_wire(wire)
    except Exception:  # dnspython raises many kinds on bad input; all mean the same to us
        if not tcp and len(wire) > UDP_PLAIN_MAX_BYTES:
            return Drop("oversized")
        return Reply(header_reply(wire, dns.rcode.FORMERR), "formerr", "malformed")
    if not tcp and query.edns < 0 and len(wire) > UDP_PLAIN_MAX_BYTES:
        return Drop("oversized")
    limit = client_limit(query, settings, tcp)
    if query.edns > 0:
        response = _response(query, settings)
        response.set_rcode(dns.rcode.BADVERS)
        return _render(response, limit, "badvers", "edns_version")
    question = query.question[0]
    if question.rdclass != dns.rdataclass.IN:
        return _refused(query, settings, limit)
    qname = question.name
    if not qname.is_subdomain(zone.origin):
        if settings.forward:
            return Forward(query, limit)
        return _refused(query, settings, limit)
    if question.rdtype in TRANSFER_TYPES:
        return _refused(query, settings, limit)
    response, outcome = _zone_answer(query, zone, settings)
    return _render(response, limit, outcome)


def client_limit(query: dns.message.Message, settings: DnsSettings, tcp: bool) -> int:
    if tcp:
        return TCP_MAX_BYTES
    if query.edns < 0:
        return UDP_PLAIN_MAX_BYTES
    return max(UDP_PLAIN_MAX_BYTES, min(query.payload, settings.udp_payload_max_bytes))


def header_reply(wire: bytes, rcode: dns.rcode.Rcode) -> bytes:
    """A bare header answering `wire` (which may not parse): same id, opcode
    and RD, QR set, no sections."""
    flags = int.from_bytes(wire[2:4], "big")
    out = dns.flags.QR | (flags & (dns.flags.RD | 0x7800)) | int(rcode)
    return wire[0:2] + out.to_bytes(2, "big") + bytes(8)


def render(response: dns.message.Message, limit: int) -> tuple[bytes, bool]:
    """The response in wire format within `limit` bytes, and whether it was
    truncated (TC set)."""
    wire = response.to_wire(max_size=limit, prefer_truncation=True)
    return wire, bool(int.from_bytes(wire[2:4], "big") & dns.flags.TC)


def _response(query: dns.message.Message, settings: DnsSettings) -> dns.message.Message:
    return dns.message.make_response(query, our_payload=settings.udp_payload_max_bytes, pad=0)


def _refused(query: dns.message.Message, settings: DnsSettings, limit: int) -> Reply:
    response = _response(query, settings)
    response.set_rcode(dns.rcode.REFUSED)
    return _render(response, limit, "refused")


def _render(response: dns.message.Message, limit: int, outcome: str, bad: str | None = None) -> Reply:
    wire, truncated = render(response, limit)
    return Reply(wire, outcome, bad, truncated)


def _zone_answer(query: dns.message.Message, zone: Zone,
                 settings: DnsSettings) -> tuple[dns.message.Message, str]:
    question = query.question[0]
    qname, qtype = question.name, question.rdtype
    response = _response(query, settings)
    response.flags |= dns.flags.AA
    records = zone.lookup(qname)
    if records is None:
        response.set_rcode(dns.rcode.NXDOMAIN)
        response.authority.append(_soa(zone))
        return response, "nxdomain"
    types = sorted(records) if qtype == dns.rdatatype.ANY else [qtype] if qtype in records else []
    if not types:
        response.authority.append(_soa(zone))
        return response, "nodata"
    targets: list[dns.name.Name] = []
    for rdtype in types:
        rdatas = _rotate(records[rdtype], query.id)
        response.answer.append(dns.rrset.from_rdata_list(qname, zone.ttl_s, rdatas))
        if rdtype == dns.rdatatype.SRV:
            targets += [r.target for r in rdatas if r.target not in targets]
    for target in targets:
        at = zone.at(target)
        for rdtype in (dns.rdatatype.A, dns.rdatatype.AAAA):
            if rdtype in at:
                response.additional.append(dns.rrset.from_rdata_list(target, zone.ttl_s, at[rdtype]))
    return response, "answer"


def _soa(zone: Zone) -> dns.rrset.RRset:
    return dns.rrset.from_rdata_list(zone.origin, zone.ttl_s, [zone.soa])


def _rotate(rdatas: tuple, by: int) -> list:
    if len(rdatas) < 2:
        return list(rdatas)
    k = by % len(rdatas)
    return list(rdatas[k:] + rdatas[:k])
