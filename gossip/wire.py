"""memberlist protocol v5 message codec (bytes <-> `gossip.messages`).

How this works: a memberlist message is one type byte followed by a msgpack
map whose keys are the Go struct field names.  Byte-identical output with
go-msgpack needs three things: keys in alphabetical order (we build the dict
in that order), legacy "raw" strings for both text and bytes (never
str8/bin), and Go `int` fields written with the *signed* markers (d0..d3)
while Go `uint*` fields use the unsigned ones.  msgpack-python's C packer
with use_bin_type=False gets the first two right and writes every
non-negative int with the unsigned markers, so it is byte-identical for the
messages whose Go fields are all uint/string/[]byte/bool (ping, indirect
ping, ack, nack, errResp, suspect, alive, dead, and pushNodeState, whose one
Go-int field `State` is 0..3, a fixint either way).  It is used for those
because they are the hot path (a large cluster encodes millions of them);
only the push/pull header and the TCP userMsgHeader, which carry Go `int`
counts that can exceed 127, go through our own tiny packer (`pack_go`,
with `GoInt` for the signed fields).  The golden vectors in
tests/gossip/test_wire_golden.py pin both.

Reading goes through msgpack-python with raw=True (any of bin/str/raw is
accepted, as Go does) and every field is then type-checked by hand: a value
of the wrong type, an out-of-range integer or invalid UTF-8 becomes
`DecodeError`, never anything else.  Unknown keys are ignored and missing
keys take Go's zero value, like go-msgpack.  A UDP body is one
`msgpack.unpackb` call with container limits, then per-type field checks.

UDP dispatch (`decode_messages`) mirrors memberlist's handleCommand: compound
(7) and compress (9) wrappers recurse, bounded in depth and decompressed size.
Stream-only forms (push/pull, the TCP user message, errResp) are produced by
`encode` / `encode_stream_user` and parsed by `gossip.packet.StreamDecoder`,
which uses the `parse_*` helpers exported here.
"""

from __future__ import annotations

import struct
from typing import Any

import msgpack

from gossip.config import MAX_DECOMPRESSED_BYTES
from gossip.messages import (
    AckResp,
    Alive,
    Dead,
    ErrResp,
    IndirectPingReq,
    Message,
    MessageType,
    NackResp,
    NodeStateCode,
    Ping,
    PushNodeState,
    PushPull,
    Suspect,
    UserMsg,
)

# Compound/compress wrappers may nest; Go does not bound this, we do so a
# crafted packet cannot recurse us into a RecursionError.
MAX_NESTING_DEPTH = 4
LZW_ALGO = 0

# Container limits handed to msgpack so a forged length prefix cannot make
# the C unpacker preallocate a huge list/dict before the bytes exist.
_MAX_ARRAY_LEN = 256
_MAX_MAP_LEN = 256
_MAX_EXT_LEN = 64


class DecodeError(ValueError):
    """Bytes from the network that we refuse.  `reason` is a short token for
    metrics ("malformed", "label", "decrypt", "crc", "too_large",
    "unencrypted", "unknown_type"); `detail` is for logs."""

    def __init__(self, reason: str, detail: str = ""):
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


# ---------------------------------------------------------------------------
# Packing (go-msgpack compatible)
# ---------------------------------------------------------------------------


class GoInt(int):
    """An int that go-msgpack would write from a Go `int`/`int64` field:
    signed markers (d0..d3) above 127 instead of the unsigned cc..cf."""

    __slots__ = ()


def _pack_raw(b: bytes, out: bytearray) -> None:
    n = len(b)
    if n < 32:
        out.append(0xA0 | n)
    elif n < 0x10000:
        out += b"\xda" + n.to_bytes(2, "big")
    elif n < 0x100000000:
        out += b"\xdb" + n.to_bytes(4, "big")
    else:
        raise ValueError("string too long for msgpack")
    out += b


def _pack_int(v: int, signed: bool, out: bytearray) -> None:
    if 0 <= v < 128:
        out.append(v)
    elif -32 <= v < 0:
        out.append(v & 0xFF)
    elif signed or v < 0:
        if -0x80 <= v < 0x80:
            out += b"\xd0" + struct.pack(">b", v)
        elif -0x8000 <= v < 0x8000:
            out += b"\xd1" + struct.pack(">h", v)
        elif -0x80000000 <= v < 0x80000000:
            out += b"\xd2" + struct.pack(">i", v)
        elif -(1 << 63) <= v < (1 << 63):
            out += b"\xd3" + struct.pack(">q", v)
        else:
            raise ValueError(f"integer {v} out of int64 range")
    elif v < 0x100:
        out += b"\xcc" + bytes((v,))
    elif v < 0x10000:
        out += b"\xcd" + v.to_bytes(2, "big")
    elif v < 0x100000000:
        out += b"\xce" + v.to_bytes(4, "big")
    elif v < 0x10000000000000000:
        out += b"\xcf" + v.to_bytes(8, "big")
    else:
        raise ValueError(f"integer {v} out of uint64 range")


def _pack(obj: Any, out: bytearray) -> None:
    if obj is None:
        out.append(0xC0)
    elif obj is True:
        out.append(0xC3)
    elif obj is False:
        out.append(0xC2)
    elif isinstance(obj, int):
        _pack_int(int(obj), isinstance(obj, GoInt), out)
    elif isinstance(obj, (bytes, bytearray, memoryview)):
        _pack_raw(bytes(obj), out)
    elif isinstance(obj, str):
        _pack_raw(obj.encode("utf-8"), out)
    elif isinstance(obj, float):
        out += b"\xcb" + struct.pack(">d", obj)
    elif isinstance(obj, dict):
        n = len(obj)
        if n < 16:
            out.append(0x80 | n)
        elif n < 0x10000:
            out += b"\xde" + n.to_bytes(2, "big")
        else:
            out += b"\xdf" + n.to_bytes(4, "big")
        for k, v in obj.items():
            _pack(k, out)
            _pack(v, out)
    elif isinstance(obj, (list, tuple)):
        n = len(obj)
        if n < 16:
            out.append(0x90 | n)
        elif n < 0x10000:
            out += b"\xdc" + n.to_bytes(2, "big")
        else:
            out += b"\xdd" + n.to_bytes(4, "big")
        for v in obj:
            _pack(v, out)
    else:
        raise TypeError(f"cannot pack {type(obj).__name__}")


def pack_go(obj: Any) -> bytes:
    """msgpack exactly as go-msgpack's zero MsgpackHandle writes it.  Dict
    keys are written in insertion order: pass them sorted to match Go's
    struct encoding.  Use `GoInt` for Go `int` fields."""
    out = bytearray()
    _pack(obj, out)
    return bytes(out)


# The C packer, for the messages whose Go fields are all unsigned, string,
# []byte or bool: with use_bin_type=False it writes exactly what go-msgpack
# writes for them (see the module docstring), at a tenth of pack_go's cost.
# One shared instance: creating a Packer per call costs more than packing a
# small map.  The cores run on one thread, and pack() of builtin types runs
# entirely in C under the GIL, so sharing it is safe.
_fast_pack = msgpack.Packer(use_bin_type=False, autoreset=True).pack

_U32 = 0xFFFFFFFF
_U16 = 0xFFFF


def _nil_if_empty(b: bytes) -> bytes | None:
    # Go writes a nil []byte as msgpack nil; memberlist leaves empty slices nil.
    return b if b else None


def _u32(v: int) -> int:
    if not 0 <= v <= _U32:
        raise ValueError(f"{v} does not fit uint32")
    return v


def _u16(v: int) -> int:
    if not 0 <= v <= _U16:
        raise ValueError(f"{v} does not fit uint16")
    return v


def _vsn_bytes(vsn: tuple[int, ...]) -> bytes | None:
    # []uint8 is []byte to Go: a raw string, not an array.
    return bytes(vsn) if vsn else None


def _enc_ping(msg: Ping) -> bytes:
    d: dict = {"Node": msg.node, "SeqNo": _u32(msg.seq_no)}
    # omitempty: only these three fields, only on ping / indirect ping.
    if msg.source_addr:
        d["SourceAddr"] = msg.source_addr
    if msg.source_node:
        d["SourceNode"] = msg.source_node
    if msg.source_port:
        d["SourcePort"] = _u16(msg.source_port)
    return b"\x00" + _fast_pack(d)


def _enc_indirect_ping(msg: IndirectPingReq) -> bytes:
    d = {
        "Nack": bool(msg.nack),
        "Node": msg.node,
        "Port": _u16(msg.port),
        "SeqNo": _u32(msg.seq_no),
    }
    if msg.source_addr:
        d["SourceAddr"] = msg.source_addr
    if msg.source_node:
        d["SourceNode"] = msg.source_node
    if msg.source_port:
        d["SourcePort"] = _u16(msg.source_port)
    d["Target"] = _nil_if_empty(msg.target)
    return b"\x01" + _fast_pack(d)


def _enc_ack(msg: AckResp) -> bytes:
    return b"\x02" + _fast_pack({"Payload": msg.payload or None, "SeqNo": _u32(msg.seq_no)})


def _enc_nack(msg: NackResp) -> bytes:
    return b"\x0b" + _fast_pack({"SeqNo": _u32(msg.seq_no)})


def _enc_err(msg: ErrResp) -> bytes:
    return b"\x0d" + _fast_pack({"Error": msg.error})


def _enc_suspect(msg: Suspect) -> bytes:
    return b"\x03" + _fast_pack({"From": msg.from_node, "Incarnation": _u32(msg.incarnation), "Node": msg.node})


def _enc_dead(msg: Dead) -> bytes:
    return b"\x05" + _fast_pack({"From": msg.from_node, "Incarnation": _u32(msg.incarnation), "Node": msg.node})


def encode_alive(incarnation: int, node: str, addr: bytes, port: int, meta: bytes,
                 vsn: tuple[int, ...]) -> bytes:
    """encode(Alive(...)) without building the message first."""
    if not 0 <= incarnation <= _U32:
        raise ValueError(f"{incarnation} does not fit uint32")
    if not 0 <= port <= _U16:
        raise ValueError(f"{port} does not fit uint16")
    return b"\x04" + _fast_pack({
        "Addr": addr or None,
        "Incarnation": incarnation,
        "Meta": meta or None,
        "Node": node,
        "Port": port,
        "Vsn": bytes(vsn) if vsn else None,
    })


def _enc_alive(msg: Alive) -> bytes:
    return encode_alive(msg.incarnation, msg.node, msg.addr, msg.port, msg.meta, msg.vsn)


def encode_node_state(n: PushNodeState) -> bytes:
    """One pushNodeState map as it appears in a push/pull stream."""
    return encode_node_state_fields(n.name, n.addr, n.port, n.meta, n.incarnation, int(n.state), n.vsn)


def encode_node_state_fields(name: str, addr: bytes, port: int, meta: bytes, incarnation: int,
                             state: int, vsn: tuple[int, ...]) -> bytes:
    """encode_node_state without building the PushNodeState first.  Go's
    `State` is an int, but 0..3 is a positive fixint under both markers."""
    if not 0 <= state < 128:
        raise ValueError(f"node state {state} out of range")
    return _fast_pack({
        "Addr": addr or None,
        "Incarnation": _u32(incarnation),
        "Meta": meta or None,
        "Name": name,
        "Port": _u16(port),
        "State": state,
        "Vsn": bytes(vsn) if vsn else None,
    })


def encode_push_pull(join: bool, node_states: list[bytes], user_state: bytes) -> bytes:
    """The push/pull stream form from already-encoded node states
    (`encode_node_state`), so a caller can reuse them between exchanges.
    The header's Nodes/UserStateLen are Go ints: signed markers (pack_go)."""
    out = bytearray((MessageType.PUSH_PULL,))
    _pack(
        {
            "Join": bool(join),
            "Nodes": GoInt(len(node_states)),
            "UserStateLen": GoInt(len(user_state)),
        },
        out,
    )
    out += b"".join(node_states)
    out += user_state
    return bytes(out)


_ENCODERS = {
    Ping: _enc_ping,
    IndirectPingReq: _enc_indirect_ping,
    AckResp: _enc_ack,
    NackResp: _enc_nack,
    ErrResp: _enc_err,
    Suspect: _enc_suspect,
    Dead: _enc_dead,
    Alive: _enc_alive,
}


def encode(msg: Message) -> bytes:
    """Type byte + body.  UserMsg gets the UDP form (raw bytes after 0x08);
    PushPull and ErrResp get their stream forms."""
    enc = _ENCODERS.get(type(msg))
    if enc is not None:
        return enc(msg)
    if isinstance(msg, UserMsg):
        return b"\x08" + bytes(msg.payload)
    if isinstance(msg, PushPull):
        return encode_push_pull(msg.join, [encode_node_state(n) for n in msg.nodes], msg.user_state)
    for cls, enc in _ENCODERS.items():  # a subclass of a message type
        if isinstance(msg, cls):
            return enc(msg)
    raise TypeError(f"not a memberlist message: {type(msg).__name__}")


def encode_stream_user(msg: UserMsg) -> bytes:
    """The TCP (SendReliable) form: 0x08 | userMsgHeader{UserMsgLen} | bytes."""
    out = bytearray((MessageType.USER,))
    _pack({"UserMsgLen": GoInt(len(msg.payload))}, out)
    out += msg.payload
    return bytes(out)


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


def compress_message(buf: bytes) -> bytes:
    """0x09 | compress{Algo: 0 (LZW), Buf: lzw(buf)}."""
    from gossip import lzw

    return b"\x09" + pack_go({"Algo": LZW_ALGO, "Buf": lzw.compress(buf)})


# ---------------------------------------------------------------------------
# Unpacking
# ---------------------------------------------------------------------------


def new_unpacker(max_buffer_bytes: int) -> msgpack.Unpacker:
    """A raw=True Unpacker with container limits small enough that forged
    headers cannot force big preallocations (streams read incrementally)."""
    return msgpack.Unpacker(
        raw=True,
        strict_map_key=False,
        max_buffer_size=max(1, max_buffer_bytes),
        max_str_len=max(1, max_buffer_bytes),
        max_bin_len=max(1, max_buffer_bytes),
        max_array_len=_MAX_ARRAY_LEN,
        max_map_len=_MAX_MAP_LEN,
        max_ext_len=_MAX_EXT_LEN,
    )


def unpack_one(body: bytes) -> Any:
    """The first msgpack object of `body` (Go's decoder ignores trailing
    bytes, so do we).  Anything wrong -> DecodeError("malformed").

    One `msgpack.unpackb` call rather than a streaming Unpacker: building an
    Unpacker (and its read buffer) per UDP message cost more than decoding
    the message.  unpackb bounds strings by len(body) itself; the container
    limits are the same as `new_unpacker`'s."""
    if not body:
        raise DecodeError("malformed", "empty body")
    try:
        return _unpackb(body, raw=True, strict_map_key=False, max_array_len=_MAX_ARRAY_LEN,
                        max_map_len=_MAX_MAP_LEN, max_ext_len=_MAX_EXT_LEN)
    except msgpack.ExtraData as e:
        return e.unpacked  # trailing bytes after the first object: ignored
    except Exception as e:  # ValueError (incl. truncated input)/FormatError/StackError/...
        raise DecodeError("malformed", f"msgpack: {type(e).__name__}") from None


_unpackb = msgpack.unpackb


class _Fields:
    """Typed access to a decoded msgpack map with bytes keys.  Missing or
    nil fields read as Go's zero value."""

    __slots__ = ("d", "what")

    def __init__(self, obj: Any, what: str):
        if not isinstance(obj, dict):
            raise DecodeError("malformed", f"{what}: body is not a map")
        self.d = obj
        self.what = what

    def _get(self, key: bytes) -> Any:
        return self.d.get(key)

    def _bad(self, key: bytes, why: str) -> DecodeError:
        return DecodeError("malformed", f"{self.what}.{key.decode()}: {why}")

    def uint(self, key: bytes, bits: int) -> int:
        v = self._get(key)
        if v is None:
            return 0
        if type(v) is not int:
            raise self._bad(key, f"expected int, got {type(v).__name__}")
        if not 0 <= v < (1 << bits):
            raise self._bad(key, f"{v} out of uint{bits} range")
        return v

    def goint(self, key: bytes, limit: int) -> int:
        """A Go `int` that memberlist uses as a count/length: 0..limit."""
        v = self._get(key)
        if v is None:
            return 0
        if type(v) is not int:
            raise self._bad(key, f"expected int, got {type(v).__name__}")
        if v < 0:
            raise self._bad(key, f"negative {v}")
        if v > limit:
            raise DecodeError("too_large", f"{self.what}.{key.decode()}={v} > {limit}")
        return v

    def boolean(self, key: bytes) -> bool:
        v = self._get(key)
        if v is None:
            return False
        if type(v) is not bool:
            raise self._bad(key, f"expected bool, got {type(v).__name__}")
        return v

    def raw(self, key: bytes) -> bytes:
        v = self._get(key)
        if v is None:
            return b""
        if type(v) is not bytes:
            raise self._bad(key, f"expected bytes, got {type(v).__name__}")
        return v

    def string(self, key: bytes) -> str:
        b = self.raw(key)
        try:
            return b.decode("utf-8")
        except UnicodeDecodeError:
            raise self._bad(key, "invalid UTF-8") from None

    def vsn(self, key: bytes) -> tuple[int, ...]:
        v = self._get(key)
        if v is None:
            return ()
        if type(v) is bytes:
            return tuple(v)
        # Go also accepts a msgpack array of small ints for []uint8.
        if type(v) is list and all(type(x) is int and 0 <= x < 256 for x in v):
            return tuple(v)
        raise self._bad(key, "expected bytes or array of uint8")


def _parse_checked(msg_type: int, obj: Any) -> Message:
    """The reference parser: every field through `_Fields`, which handles
    nil/missing fields, Go's lenient forms and produces the DecodeError for
    anything wrong.  The fast parsers below fall back to it."""
    if msg_type == MessageType.PING:
        f = _Fields(obj, "ping")
        return Ping(
            seq_no=f.uint(b"SeqNo", 32),
            node=f.string(b"Node"),
            source_addr=f.raw(b"SourceAddr"),
            source_port=f.uint(b"SourcePort", 16),
            source_node=f.string(b"SourceNode"),
        )
    if msg_type == MessageType.INDIRECT_PING:
        f = _Fields(obj, "indirectPingReq")
        return IndirectPingReq(
            seq_no=f.uint(b"SeqNo", 32),
            target=f.raw(b"Target"),
            port=f.uint(b"Port", 16),
            node=f.string(b"Node"),
            nack=f.boolean(b"Nack"),
            source_addr=f.raw(b"SourceAddr"),
            source_port=f.uint(b"SourcePort", 16),
            source_node=f.string(b"SourceNode"),
        )
    if msg_type == MessageType.ACK:
        f = _Fields(obj, "ackResp")
        return AckResp(seq_no=f.uint(b"SeqNo", 32), payload=f.raw(b"Payload"))
    if msg_type == MessageType.NACK:
        f = _Fields(obj, "nackResp")
        return NackResp(seq_no=f.uint(b"SeqNo", 32))
    if msg_type == MessageType.ERR:
        f = _Fields(obj, "errResp")
        return ErrResp(error=f.string(b"Error"))
    if msg_type == MessageType.SUSPECT:
        f = _Fields(obj, "suspect")
        return Suspect(
            incarnation=f.uint(b"Incarnation", 32),
            node=f.string(b"Node"),
            from_node=f.string(b"From"),
        )
    if msg_type == MessageType.DEAD:
        f = _Fields(obj, "dead")
        return Dead(
            incarnation=f.uint(b"Incarnation", 32),
            node=f.string(b"Node"),
            from_node=f.string(b"From"),
        )
    if msg_type == MessageType.ALIVE:
        f = _Fields(obj, "alive")
        return Alive(
            incarnation=f.uint(b"Incarnation", 32),
            node=f.string(b"Node"),
            addr=f.raw(b"Addr"),
            port=f.uint(b"Port", 16),
            meta=f.raw(b"Meta"),
            vsn=f.vsn(b"Vsn"),
        )
    raise DecodeError("unknown_type", f"type {msg_type}")


# Fast parsers for the messages a large cluster decodes millions of times.
# Each handles only the shape our peers and Go's memberlist actually send
# (every field present with its usual msgpack type, or nil where Go writes
# nil) with plain type checks, and hands anything else to `_parse_checked`,
# which produces the same value or the same DecodeError as always.


def _parse_alive(d: Any) -> Message:
    if type(d) is dict:
        inc = d.get(b"Incarnation")
        node = d.get(b"Node")
        addr = d.get(b"Addr")
        port = d.get(b"Port")
        meta = d.get(b"Meta")
        vsn = d.get(b"Vsn")
        if (type(inc) is int and 0 <= inc <= _U32 and type(node) is bytes and type(addr) is bytes
                and type(port) is int and 0 <= port <= _U16 and type(vsn) is bytes
                and (meta is None or type(meta) is bytes)):
            try:
                name = node.decode()
            except UnicodeDecodeError:
                pass
            else:
                return Alive(inc, name, addr, port, meta or b"", tuple(vsn))
    return _parse_checked(MessageType.ALIVE, d)


def _parse_ping(d: Any) -> Message:
    if type(d) is dict:
        seq = d.get(b"SeqNo")
        node = d.get(b"Node")
        saddr = d.get(b"SourceAddr", b"")  # omitempty: usually present, may be absent
        sport = d.get(b"SourcePort", 0)
        snode = d.get(b"SourceNode", b"")
        if (type(seq) is int and 0 <= seq <= _U32 and type(node) is bytes and type(saddr) is bytes
                and type(sport) is int and 0 <= sport <= _U16 and type(snode) is bytes):
            try:
                return Ping(seq, node.decode(), saddr, sport, snode.decode())
            except UnicodeDecodeError:
                pass
    return _parse_checked(MessageType.PING, d)


def _parse_ack(d: Any) -> Message:
    if type(d) is dict:
        seq = d.get(b"SeqNo")
        payload = d.get(b"Payload")
        if type(seq) is int and 0 <= seq <= _U32 and (payload is None or type(payload) is bytes):
            return AckResp(seq, payload or b"")
    return _parse_checked(MessageType.ACK, d)


def _parse_suspect(d: Any) -> Message:
    if type(d) is dict:
        inc = d.get(b"Incarnation")
        node = d.get(b"Node")
        frm = d.get(b"From")
        if type(inc) is int and 0 <= inc <= _U32 and type(node) is bytes and type(frm) is bytes:
            try:
                return Suspect(inc, node.decode(), frm.decode())
            except UnicodeDecodeError:
                pass
    return _parse_checked(MessageType.SUSPECT, d)


def _parse_dead(d: Any) -> Message:
    if type(d) is dict:
        inc = d.get(b"Incarnation")
        node = d.get(b"Node")
        frm = d.get(b"From")
        if type(inc) is int and 0 <= inc <= _U32 and type(node) is bytes and type(frm) is bytes:
            try:
                return Dead(inc, node.decode(), frm.decode())
            except UnicodeDecodeError:
                pass
    return _parse_checked(MessageType.DEAD, d)


_PARSERS = {
    MessageType.ALIVE: _parse_alive,
    MessageType.PING: _parse_ping,
    MessageType.ACK: _parse_ack,
    MessageType.SUSPECT: _parse_suspect,
    MessageType.DEAD: _parse_dead,
}


def parse_body(msg_type: int, obj: Any) -> Message:
    """Build the message for a fixed-shape type from its decoded map."""
    fast = _PARSERS.get(msg_type)
    if fast is not None:
        return fast(obj)
    return _parse_checked(msg_type, obj)


def parse_push_pull_header(obj: Any, max_nodes: int, max_user_state_bytes: int) -> tuple[bool, int, int]:
    """(join, nodes, user_state_len) with memberlist's receive limits."""
    f = _Fields(obj, "pushPullHeader")
    return (
        f.boolean(b"Join"),
        f.goint(b"Nodes", max_nodes),
        f.goint(b"UserStateLen", max_user_state_bytes),
    )


_NODE_STATES = tuple(NodeStateCode)  # indexed by the wire value 0..3


def parse_node_state(obj: Any) -> PushNodeState:
    # Fast path (a push/pull carries one of these per member; see the fast
    # parsers above): the usual shape, plain checks; anything else below.
    if type(obj) is dict:
        name = obj.get(b"Name")
        addr = obj.get(b"Addr")
        port = obj.get(b"Port")
        meta = obj.get(b"Meta")
        inc = obj.get(b"Incarnation")
        state = obj.get(b"State")
        vsn = obj.get(b"Vsn")
        if (type(name) is bytes and type(addr) is bytes and type(port) is int and 0 <= port <= _U16
                and (meta is None or type(meta) is bytes) and type(inc) is int and 0 <= inc <= _U32
                and type(state) is int and 0 <= state <= 3 and type(vsn) is bytes):
            try:
                text = name.decode()
            except UnicodeDecodeError:
                pass
            else:
                return PushNodeState(text, addr, port, meta or b"", inc, _NODE_STATES[state], tuple(vsn))
    f = _Fields(obj, "pushNodeState")
    state = f._get(b"State")
    if state is None:
        state = 0
    if type(state) is not int or state not in (0, 1, 2, 3):
        raise f._bad(b"State", f"unknown node state {state!r}")
    return PushNodeState(
        name=f.string(b"Name"),
        addr=f.raw(b"Addr"),
        port=f.uint(b"Port", 16),
        meta=f.raw(b"Meta"),
        incarnation=f.uint(b"Incarnation", 32),
        state=NodeStateCode(state),
        vsn=f.vsn(b"Vsn"),
    )


# Decoded node states by their bytes: a push/pull carries every member, and
# members send the same (cached) encodings exchange after exchange, so most
# node states have been decoded before.  Pure and immutable, as with
# _GOSSIP_MEMO below.  Bounded; emptied when full.
_NODE_STATE_MEMO: dict[bytes, PushNodeState] = {}
_NODE_STATE_MEMO_MAX = 16_384


def parse_node_state_bytes(raw: bytes) -> PushNodeState:
    """parse_node_state of one encoded pushNodeState (exactly one msgpack
    object), remembered by its bytes."""
    st = _NODE_STATE_MEMO.get(raw)
    if st is None:
        st = parse_node_state(unpack_one(raw))
        if len(_NODE_STATE_MEMO) >= _NODE_STATE_MEMO_MAX:
            _NODE_STATE_MEMO.clear()
        _NODE_STATE_MEMO[raw] = st
    return st


def parse_user_msg_header(obj: Any, max_bytes: int) -> int:
    return _Fields(obj, "userMsgHeader").goint(b"UserMsgLen", max_bytes)


def decompress_body(obj: Any, max_output_bytes: int) -> bytes:
    """The payload of a compress{Algo, Buf} map."""
    from gossip import lzw

    f = _Fields(obj, "compress")
    algo = f.uint(b"Algo", 8)
    if algo != LZW_ALGO:
        raise DecodeError("malformed", f"unknown compression algorithm {algo}")
    return lzw.decompress(f.raw(b"Buf"), max_output_bytes)


# UDP types handled by memberlist's handleCommand; anything else is
# "unknown message type" there, and so here.
_UDP_SIMPLE = frozenset(
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
_FORWARDABLE_KEYS = {
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


def decode_parts(buf: bytes) -> list[tuple[Message, bytes | None]]:
    """Like `decode_messages`, each message paired with its own encoded
    bytes (type byte + body) when it is an Alive/Suspect/Dead in canonical
    form, ready to be queued for rebroadcast as is; None otherwise."""
    out: list[tuple[Message, bytes | None]] = []
    _decode(bytes(buf), 0, out)
    return out


# Gossiped membership news reaches every member many times over: each
# alive/suspect/dead is retransmitted retransmit_limit(n) times (16 at 1,000
# members) by every member that accepted it, so a member decodes the same
# bytes a dozen times, and the simulator, with every member in one process,
# thousands of times.  Decoding is a pure function of the bytes and its
# result an immutable value, so recent results are remembered by their
# bytes.  Only these types: pings and acks carry fresh sequence numbers and
# would never hit.  Bounded; emptied when full.
_GOSSIP_MEMO: dict[bytes, tuple[Message, bytes | None]] = {}
_GOSSIP_MEMO_MAX = 16_384


def _decode_one(buf: bytes, out: list) -> None:
    """One fixed-shape UDP message (type byte + body) into `out`."""
    t = buf[0]
    keys = _FORWARDABLE_KEYS.get(t)
    if keys is None:
        out.append((parse_body(t, unpack_one(buf[1:])), None))
        return
    entry = _GOSSIP_MEMO.get(buf)
    if entry is None:
        obj = unpack_one(buf[1:])
        entry = (parse_body(t, obj), buf if obj.keys() == keys else None)
        if len(_GOSSIP_MEMO) >= _GOSSIP_MEMO_MAX:
            _GOSSIP_MEMO.clear()
        _GOSSIP_MEMO[buf] = entry
    out.append(entry)


def _decode(buf: bytes, depth: int, out: list) -> None:
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
        _decode_compound(buf, depth, out)
    elif t == MessageType.COMPRESS:
        inner = decompress_body(unpack_one(buf[1:]), MAX_DECOMPRESSED_BYTES)
        _decode(inner, depth + 1, out)
    else:
        raise DecodeError("unknown_type", f"type {t} over UDP")


def _decode_compound(buf: bytes, depth: int, out: list) -> None:
    if len(buf) < 2:
        raise DecodeError("malformed", "compound: missing count")
    count = buf[1]
    pos = 2 + 2 * count
    if len(buf) < pos:
        raise DecodeError("malformed", "compound: truncated length table")
    first_error: DecodeError | None = None
    complete = 0
    before = len(out)
    end = len(buf)
    # A part is at depth + 1; past the nesting limit even a plain message is
    # refused, so the shortcuts below are only taken within it.
    shortcuts = depth < MAX_NESTING_DEPTH
    simple = _UDP_SIMPLE if shortcuts else frozenset()
    memo = _GOSSIP_MEMO if shortcuts else {}
    for n in struct.unpack_from(f">{count}H", buf, 2):
        if end - pos < n:
            break  # truncated: keep the complete leading parts
        part = buf[pos : pos + n]
        pos += n
        complete += 1
        # The common parts without the general dispatcher: gossip we have
        # decoded before (most of a gossip packet), then any plain message;
        # wrappers go through `_decode`.
        entry = memo.get(part)
        if entry is not None:
            out.append(entry)
            continue
        try:
            if part and part[0] in simple:
                _decode_one(part, out)
            else:
                _decode(part, depth + 1, out)
        except DecodeError as e:
            if first_error is None:
                first_error = e
    if len(out) == before:
        if first_error is not None:
            raise first_error
        if complete < count:
            raise DecodeError("malformed", "compound: truncated before first part")
