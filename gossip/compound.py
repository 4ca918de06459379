"""UDP message dispatch: compound (7) and compress (9) wrappers around messages.

How this works: one UDP packet (label, encryption and CRC already removed by
`gossip.packet`) holds one memberlist message, or a compound of up to 255
length-prefixed parts (`make_compound`), or a compress wrapper around either.
`decode_parts` mirrors memberlist's handleCommand: wrappers recurse, bounded
in depth (Go does not bound it; a crafted packet must not recurse us into a
RecursionError) and in decompressed size, counted over all the compress
wrappers of one datagram together (`gossip.limits` says why); the plain
messages go to the codec (`gossip.wire`).  A compound whose tail is
truncated yields its complete leading parts; inside a compound a bad part is
skipped, as memberlist logs it and handles the others.

Gossiped membership news (alive/suspect/dead) is handed back with its own
received bytes so the receiver can re-gossip it verbatim, and recent
decodings are remembered by their bytes, since every member receives the
same news many times over (`gossip.memo`: only canonical, small messages).
"""

from __future__ import annotations

import struct
from collections.abc import Collection

from gossip.errors import DecodeError
from gossip.gopack import unpack_one
from gossip.limits import MAX_NESTING_DEPTH, PACKET_DECOMPRESSED_MAX_BYTES
from gossip.memo import Memo
from gossip.messages import Message, MessageType, UserMsg
from gossip.wire import decompress_body, parse_body

# A decoded UDP message and, for canonical gossip, its own bytes.
Part = tuple[Message, bytes | None]

_COMPOUND_HEADERS: dict[int, struct.Struct] = {}


def make_compound(parts: list[bytes]) -> bytes:
    """0x07 | count u8 | len u16be ... | parts.  Callers split at 255 parts."""
    n = len(parts)
    if n > 255:
        raise ValueError(f"compound of {n} parts; at most 255")
    # One struct.pack and one join: every gossip packet is a compound of a
    # dozen or more parts, and a Python loop per part showed in profiles.
    header = _COMPOUND_HEADERS.get(n)
    if header is None:
        header = _COMPOUND_HEADERS[n] = struct.Struct(f">BB{n}H")
    try:
        return header.pack(7, n, *map(len, parts)) + b"".join(parts)  # 7: MessageType.COMPOUND
    except struct.error:  # a part of 64 KiB or more does not fit its u16 length
        raise ValueError(f"compound part of {max(map(len, parts))} bytes; must be < 65536") from None


# UDP types handled by memberlist's handleCommand; anything else is
# "unknown message type" there, and so here.
_UDP_SIMPLE: frozenset[int] = frozenset(
    (
        MessageType.PING,
        MessageType.INDIRECT_PING,
        MessageType.ACK,
        MessageType.NACK,
        MessageType.SUSPECT,
        MessageType.ALIVE,
        MessageType.DEAD,
    )
)

# Membership messages a receiver re-gossips.  memberlist re-encodes them; we
# hand the received bytes back with the message instead (`decode_parts`), so
# rebroadcasting costs nothing, but only when the map holds exactly the Go
# struct's fields, so nothing unknown rides along into our queue.
_FORWARDABLE_KEYS: dict[int, frozenset[bytes]] = {
    MessageType.ALIVE: frozenset((b"Addr", b"Incarnation", b"Meta", b"Node", b"Port", b"Vsn")),
    MessageType.SUSPECT: frozenset((b"From", b"Incarnation", b"Node")),
    MessageType.DEAD: frozenset((b"From", b"Incarnation", b"Node")),
}


def decode_messages(buf: bytes) -> list[Message]:
    """Every message in one UDP message (label/encryption/CRC already
    removed).  A compound whose tail is truncated yields its complete
    leading parts.  Inside a compound a bad part is skipped, as memberlist
    logs it and handles the others; if no part at all decodes the first
    error is raised so the packet counts as dropped."""
    return [m for m, _ in decode_parts(buf)]


def decode_parts(buf: bytes, skip: Collection[bytes] = ()) -> list[Part]:
    """Like `decode_messages`, each message paired with its own encoded
    bytes (type byte + body) when it is an Alive/Suspect/Dead in canonical
    form, ready to be queued for rebroadcast as is; None otherwise.

    A compound's part whose bytes are in `skip` is left out, as if the
    receiver had dropped it on arrival: the receiver passes the messages it
    knows to be old news (gossip.members.MemberTable.old_alive), which are
    most of a gossip packet in a large cluster, so they are neither decoded
    nor looked up nor handed back.  Such a part still counts as decoded
    (a compound of nothing but old news is not malformed)."""
    out: list[Part] = []
    _decode(bytes(buf), 0, out, [PACKET_DECOMPRESSED_MAX_BYTES], skip)
    return out


# Gossiped membership news reaches every member many times over: each
# alive/suspect/dead is retransmitted retransmit_limit(n) times (16 at 1,000
# members) by every member that accepted it, so a member decodes the same
# bytes a dozen times, and the simulator, with every member in one process,
# thousands of times.  Decoding is a pure function of the bytes and its
# result an immutable value, so recent results are remembered by their
# bytes.  Only these types: pings and acks carry fresh sequence numbers and
# would never hit.  Only canonical ones are remembered (the same ones that
# may be re-gossiped verbatim), and the memo is bounded in bytes too.
_GOSSIP_MEMO: Memo[Part] = Memo()


def _decode_one(buf: bytes, out: list[Part]) -> None:
    """One fixed-shape UDP message (type byte + body) into `out`."""
    t = buf[0]
    keys = _FORWARDABLE_KEYS.get(t)
    if keys is None:
        out.append((parse_body(t, unpack_one(buf[1:])), None))
        return
    entry = _GOSSIP_MEMO.get(buf)
    if entry is None:
        obj = unpack_one(buf[1:])
        # (parse_body raises first for a body that is not a map.)
        msg = parse_body(t, obj)
        if isinstance(obj, dict) and obj.keys() == keys:
            entry = (msg, buf)
            _GOSSIP_MEMO.put(buf, entry)
        else:
            entry = (msg, None)
    out.append(entry)


def _no_memo(key: bytes) -> Part | None:
    return None


def _decode(buf: bytes, depth: int, out: list[Part], budget: list[int], skip: Collection[bytes] = ()) -> None:
    """`budget[0]`: decompressed bytes this datagram may still produce."""
    if not buf:
        raise DecodeError("malformed", "empty message")
    if depth > MAX_NESTING_DEPTH:
        raise DecodeError("malformed", "wrappers nested too deep")
    t = buf[0]
    if t in _UDP_SIMPLE:
        _decode_one(buf, out)
    elif t == MessageType.USER:
        out.append((UserMsg(payload=buf[1:]), None))
    elif t == MessageType.COMPOUND:
        _decode_compound(buf, depth, out, budget, skip)
    elif t == MessageType.COMPRESS:
        inner = decompress_body(unpack_one(buf[1:]), budget[0])
        budget[0] -= len(inner)
        _decode(inner, depth + 1, out, budget, skip)
    else:
        raise DecodeError("unknown_type", f"type {t} over UDP")


def _decode_compound(buf: bytes, depth: int, out: list[Part], budget: list[int],
                     skip: Collection[bytes] = ()) -> None:
    if len(buf) < 2:
        raise DecodeError("malformed", "compound: missing count")
    count = buf[1]
    pos = 2 + 2 * count
    if len(buf) < pos:
        raise DecodeError("malformed", "compound: truncated length table")
    first_error: DecodeError | None = None
    complete = 0
    skipped = 0
    before = len(out)
    end = len(buf)
    # A part is at depth + 1; past the nesting limit even a plain message is
    # refused, so the shortcuts below are only taken within it.
    shortcuts = depth < MAX_NESTING_DEPTH
    simple: frozenset[int] = _UDP_SIMPLE if shortcuts else frozenset()
    memo_get = _GOSSIP_MEMO.get if shortcuts else _no_memo
    if not shortcuts:
        skip = ()  # (such a part is refused below, as before)
    for n in struct.unpack_from(f">{count}H", buf, 2):
        if end - pos < n:
            break  # truncated: keep the complete leading parts
        part = buf[pos : pos + n]
        pos += n
        complete += 1
        if part in skip:  # old news to the receiver (decode_parts)
            skipped += 1
            continue
        # The common parts without the general dispatcher: gossip we have
        # decoded before (most of a gossip packet), then any plain message;
        # wrappers go through `_decode`.
        entry = memo_get(part)
        if entry is not None:
            out.append(entry)
            continue
        try:
            if part and part[0] in simple:
                _decode_one(part, out)
            else:
                _decode(part, depth + 1, out, budget, skip)
        except DecodeError as e:
            if first_error is None:
                first_error = e
    if len(out) == before and not skipped:
        if first_error is not None:
            raise first_error
        if complete < count:
            raise DecodeError("malformed", "compound: truncated before first part")
