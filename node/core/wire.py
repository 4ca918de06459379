"""Messages between node cores, carried in gossip user messages/broadcasts.

How this works: one msgpack array `[kind, ...fields]` per message.  Decoding
checks every field's type and bound and raises `WireError` for anything
else, so a forged or corrupted message is counted and dropped, never trusted.
Every integer is range-checked: nothing we decode can overflow when we
re-encode it or count up from it (MAX_INT, MAX_SLOT_INDEX, ballot rounds
up to admission.MAX_BALLOT_ROUND, stamps as node.core.hlc bounds them);
scores must be finite.
A job entry carries its version's Meta (node.core.history) as an optional
4th element; one without it decodes as before, and a sync of the job map may
carry several entries of one job (its older versions).
Kinds are append-only numbers.  The auction's messages get kinds here too
when they arrive.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import math

import msgpack

from auction.claims import Claim
from auction.messages import Award, Bid, CallForBids, Decline, Deferred, Release, RoundExtended

from gossip.limits import PAYLOAD_MAX_BYTES, PAYLOAD_VERSION_MAX, PAYLOADS_MAX, TELL_MEMBERS_MAX
from gossip.lww import BUCKETS, DIGEST_BYTES
from node.core.admission import MAX_BALLOT_ROUND
from node.core.jobstore import Entry

KIND_ENTRY = 1
KIND_SYNC_DIGEST = 2
KIND_SYNC_ENTRIES = 3
KIND_CLAIM = 4
KIND_STATUS_VERSIONS = 5
KIND_STATUS_RECORDS = 6
KIND_MEMBERS_WANTED = 7
KIND_CALL = 10
KIND_BID = 11
KIND_DECLINE = 12
KIND_AWARD = 13
KIND_RELEASE = 14
KIND_DEFERRED = 15
KIND_ROUND_EXTENDED = 16
MAX_ENTRIES_PER_MESSAGE = 20_000
MAX_SLOTS_PER_MESSAGE = 1000
MAX_TEXT_CHARS = 1024
MAX_SLOT_INDEX = 999_999  # replicas are far fewer (auction.spec); this only bounds the integer
MAX_INT = (1 << 63) - 1  # resources in claims: msgpack's signed range

# The replicated maps that digest sync covers.
MAP_JOBS = 0
MAP_CLAIMS = 1
MAPS = (MAP_JOBS, MAP_CLAIMS)


class WireError(ValueError):
    pass


@dataclass(frozen=True, slots=True)
class EntryBroadcast:
    entry: Entry


@dataclass(frozen=True, slots=True)
class ClaimBroadcast:
    claims: tuple[Claim, ...]  # one award's claims travel together


@dataclass(frozen=True, slots=True)
class SyncDigest:
    map_id: int
    buckets: list[bytes]


@dataclass(frozen=True, slots=True)
class SyncEntries:
    map_id: int
    entries: tuple[Any, ...]  # Entry for MAP_JOBS, Claim for MAP_CLAIMS
    want: tuple[int, ...]  # buckets the sender wants back


@dataclass(frozen=True, slots=True)
class StatusVersions:
    versions: tuple[tuple[str, int], ...]  # (node, version of its status record held here)


@dataclass(frozen=True, slots=True)
class StatusRecords:
    records: tuple[tuple[str, int, bytes], ...]  # (node, version, encoded NodeStatus)
    want: tuple[str, ...]  # nodes whose records the sender holds older or not at all


@dataclass(frozen=True, slots=True)
class MembersWanted:
    names: tuple[str, ...]  # members whose status records the sender holds, but not their alive


NodeMessage = (EntryBroadcast | ClaimBroadcast | SyncDigest | SyncEntries | StatusVersions | StatusRecords
               | MembersWanted | CallForBids | Bid | Decline | Deferred | RoundExtended | Award | Release)


def encode(msg: NodeMessage) -> bytes:
    match msg:
        case EntryBroadcast(entry):
            body = [KIND_ENTRY, entry.to_wire()]
        case ClaimBroadcast(claims):
            body = [KIND_CLAIM, [c.to_wire() for c in claims]]
        case SyncDigest(map_id, buckets):
            body = [KIND_SYNC_DIGEST, map_id, list(buckets)]
        case SyncEntries(map_id, entries, want):
            body = [KIND_SYNC_ENTRIES, map_id, [e.to_wire() for e in entries], list(want)]
        case StatusVersions(versions):
            body = [KIND_STATUS_VERSIONS, [list(v) for v in versions]]
        case StatusRecords(records, want):
            body = [KIND_STATUS_RECORDS, [list(r) for r in records], list(want)]
        case MembersWanted(names):
            body = [KIND_MEMBERS_WANTED, list(names)]
        case CallForBids():
            body = [KIND_CALL, msg.auction_id, msg.coordinator, msg.job, msg.spec_hash,
                    list(msg.slots), msg.ttl_s, msg.spec_json]
            if msg.max_wins is not None:
                # Last and only when set: a call without it is the one older
                # agents read, so they still bid in rounds that do not cap.
                body.append(msg.max_wins)
        case Bid():
            body = [KIND_BID, msg.auction_id, msg.bidder, list(msg.scores), msg.spread_value,
                    msg.already]
            if msg.preempts:
                # Last and only when set: a bid that fits is the one older
                # agents read (they drop a preempting one as malformed).
                body.append(msg.preempts)
        case Decline():
            body = [KIND_DECLINE, msg.auction_id, msg.bidder, msg.reason]
        case Deferred():
            body = [KIND_DEFERRED, msg.auction_id, msg.bidder]
        case RoundExtended():
            body = [KIND_ROUND_EXTENDED, msg.auction_id, msg.coordinator]
        case Award():
            body = [KIND_AWARD, msg.auction_id, msg.coordinator, msg.job, msg.spec_hash,
                    [list(p) for p in msg.slots]]
        case Release():
            body = [KIND_RELEASE, msg.auction_id, msg.coordinator]
        case _:
            raise TypeError(f"not a node message: {msg!r}")
    data: bytes = msgpack.packb(body, use_bin_type=True)
    return data


def decode(data: bytes, max_spec_bytes: int) -> NodeMessage:
    try:
        raw = msgpack.unpackb(data, raw=False, strict_map_key=True)
    except Exception as exc:  # msgpack raises several types on garbage
        raise WireError(f"undecodable: {exc!r}") from None
    if not isinstance(raw, list) or not raw or not isinstance(raw[0], int):
        raise WireError("not a node message")
    kind = raw[0]
    try:
        if kind == KIND_ENTRY and len(raw) == 2:
            return EntryBroadcast(Entry.from_wire(raw[1], max_spec_bytes))
        if kind == KIND_CLAIM and len(raw) == 2:
            if not isinstance(raw[1], list) or len(raw[1]) > MAX_SLOTS_PER_MESSAGE:
                raise WireError("malformed claims")
            return ClaimBroadcast(tuple(_claim(c) for c in raw[1]))
        if kind == KIND_SYNC_DIGEST and len(raw) == 3:
            map_id, buckets = raw[1], raw[2]
            if (map_id not in MAPS or not isinstance(buckets, list) or len(buckets) != BUCKETS
                    or not all(isinstance(b, bytes) and len(b) == DIGEST_BYTES for b in buckets)):
                raise WireError("malformed digest")
            return SyncDigest(map_id, buckets)
        if kind == KIND_SYNC_ENTRIES and len(raw) == 4:
            map_id, entries, want = raw[1], raw[2], raw[3]
            if map_id not in MAPS:
                raise WireError("unknown map")
            if not isinstance(entries, list) or len(entries) > MAX_ENTRIES_PER_MESSAGE:
                raise WireError("malformed entries")
            if not isinstance(want, list) or not all(isinstance(b, int) and 0 <= b < BUCKETS for b in want):
                raise WireError("malformed want list")
            parsed: tuple[Entry, ...] | tuple[Claim, ...]
            if map_id == MAP_JOBS:
                parsed = tuple(Entry.from_wire(e, max_spec_bytes) for e in entries)
            else:
                parsed = tuple(_claim(e) for e in entries)
            return SyncEntries(map_id, parsed, tuple(want))
        if kind == KIND_STATUS_VERSIONS and len(raw) == 2:
            return StatusVersions(tuple(_status_rows(raw[1], 2)))
        if kind == KIND_STATUS_RECORDS and len(raw) == 3:
            want = raw[2]
            if not isinstance(want, list) or len(want) > PAYLOADS_MAX:
                raise WireError("malformed want list")
            _texts(*want)
            return StatusRecords(tuple(_status_rows(raw[1], 3)), tuple(want))
        if kind == KIND_MEMBERS_WANTED and len(raw) == 2:
            if not isinstance(raw[1], list) or len(raw[1]) > TELL_MEMBERS_MAX:
                raise WireError("malformed member names")
            _texts(*raw[1])
            return MembersWanted(tuple(raw[1]))
        if kind == KIND_CALL and len(raw) in (8, 9):
            _, aid, coord, job, spec_hash, slots, ttl, spec_json = raw[:8]
            max_wins = raw[8] if len(raw) == 9 else None
            _texts(aid, coord, job, spec_hash)
            if (not isinstance(slots, list) or len(slots) > MAX_SLOTS_PER_MESSAGE
                    or not all(isinstance(i, int) and 0 <= i <= MAX_SLOT_INDEX for i in slots)
                    or not isinstance(ttl, (int, float)) or not 0 < ttl <= 60
                    or not isinstance(spec_json, bytes) or len(spec_json) > max_spec_bytes
                    or not (max_wins is None or (type(max_wins) is int
                                                 and 1 <= max_wins <= MAX_SLOTS_PER_MESSAGE))):
                raise WireError("malformed call for bids")
            return CallForBids(aid, coord, job, spec_hash, tuple(slots), float(ttl), spec_json, max_wins)
        if kind == KIND_BID and len(raw) in (6, 7):
            _, aid, bidder, scores, spread_value, already, *rest = raw
            preempts = rest[0] if rest else 0
            _texts(aid, bidder)
            if (not isinstance(scores, list) or len(scores) > MAX_SLOTS_PER_MESSAGE
                    or not all(isinstance(x, (int, float)) and math.isfinite(x) for x in scores)
                    or not (spread_value is None or (isinstance(spread_value, str)
                                                     and len(spread_value) <= MAX_TEXT_CHARS))
                    or not isinstance(already, int) or not 0 <= already <= MAX_SLOT_INDEX
                    or not isinstance(preempts, int) or not 0 <= preempts <= MAX_SLOT_INDEX):
                raise WireError("malformed bid")
            return Bid(aid, bidder, tuple(float(x) for x in scores), spread_value, already, preempts)
        if kind == KIND_DECLINE and len(raw) == 4:
            _texts(*raw[1:])
            return Decline(raw[1], raw[2], raw[3])
        if kind == KIND_AWARD and len(raw) == 6:
            _, aid, coord, job, spec_hash, slots = raw
            _texts(aid, coord, job, spec_hash)
            if (not isinstance(slots, list) or len(slots) > MAX_SLOTS_PER_MESSAGE
                    or not all(isinstance(p, list) and len(p) == 2 and isinstance(p[0], int)
                               and isinstance(p[1], int) and 0 <= p[0] <= MAX_SLOT_INDEX
                               and 0 <= p[1] <= MAX_BALLOT_ROUND for p in slots)):
                raise WireError("malformed award")
            return Award(aid, coord, job, spec_hash, tuple((p[0], p[1]) for p in slots))
        if kind == KIND_RELEASE and len(raw) == 3:
            _texts(raw[1], raw[2])
            return Release(raw[1], raw[2])
        if kind == KIND_DEFERRED and len(raw) == 3:
            _texts(raw[1], raw[2])
            return Deferred(raw[1], raw[2])
        if kind == KIND_ROUND_EXTENDED and len(raw) == 3:
            _texts(raw[1], raw[2])
            return RoundExtended(raw[1], raw[2])
    except ValueError as exc:
        raise WireError(str(exc)) from None
    raise WireError(f"unknown message kind {kind}")


def _claim(raw: object) -> Claim:
    claim = Claim.from_wire(raw)
    d = claim.demand
    if (claim.ballot.round > MAX_BALLOT_ROUND or not 0 <= claim.index <= MAX_SLOT_INDEX
            or max(d.cpu_millis, d.memory_bytes, d.disk_bytes) > MAX_INT):
        raise WireError("claim field out of range")
    return claim


def _status_rows(rows: object, width: int) -> list[tuple[Any, ...]]:
    """[node, version] or [node, version, record] rows, each field bounded
    as gossip bounds a payload (gossip.limits)."""
    if not isinstance(rows, list) or len(rows) > PAYLOADS_MAX:
        raise WireError("malformed status rows")
    out = []
    for row in rows:
        if (not isinstance(row, list) or len(row) != width or not isinstance(row[1], int)
                or not 0 <= row[1] <= PAYLOAD_VERSION_MAX
                or (width == 3 and not (isinstance(row[2], bytes) and len(row[2]) <= PAYLOAD_MAX_BYTES))):
            raise WireError("malformed status row")
        _texts(row[0])
        out.append(tuple(row))
    return out


def _texts(*values: object) -> None:
    if not all(isinstance(v, str) and len(v) <= MAX_TEXT_CHARS for v in values):
        raise WireError("malformed text field")
