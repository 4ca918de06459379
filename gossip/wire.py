"""memberlist protocol v5 message codec (bytes <-> `gossip.messages`).

How this works: a memberlist message is one type byte followed by a msgpack
map whose keys are the Go struct field names.  Byte-identical output with
go-msgpack needs three things: keys in alphabetical order (we build the dict
in that order), legacy "raw" strings for both text and bytes (never
str8/bin), and Go `int` fields written with the *signed* markers (d0..d3)
while Go `uint*` fields use the unsigned ones (`gossip.gopack` says how).
The hot messages, whose Go fields are all uint/string/[]byte/bool (ping,
indirect ping, ack, nack, errResp, suspect, alive, dead, and pushNodeState,
whose one Go-int field `State` is 0..3, a fixint either way), go through
msgpack's C packer (`fast_pack`); only the push/pull header, the TCP
userMsgHeader and the compress wrapper, which carry Go `int` counts that can
exceed 127, go through `pack_go`.  The golden vectors in
tests/gossip/test_wire_golden.py pin both.

Reading: the body is decoded by `gossip.gopack` (raw=True: any of
bin/str/raw is accepted, as Go does) and every field is then type-checked by
hand: a value of the wrong type, an out-of-range integer or invalid UTF-8
becomes `DecodeError`, never anything else.  Unknown keys are ignored and
missing keys take Go's zero value, like go-msgpack.  The hot types have fast
parsers for the shape peers actually send, falling back to the checked one.

This module knows single messages.  Unwrapping a UDP packet's compound (7)
and compress (9) wrappers is `gossip.compound`; label, CRC and encryption
framing and the TCP stream reader are `gossip.packet`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from gossip import lzw
from gossip.errors import DecodeError
from gossip.gopack import GoInt, fast_pack, pack_go, pack_go_into, unpack_one
from gossip.limits import U16_MAX, U32_MAX
from gossip.memo import Memo
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

LZW_ALGO = 0

_U32 = U32_MAX
_U16 = U16_MAX


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
    d: dict[str, object] = {"Node": msg.node, "SeqNo": _u32(msg.seq_no)}
    # omitempty: only these three fields, only on ping / indirect ping.
    if msg.source_addr:
        d["SourceAddr"] = msg.source_addr
    if msg.source_node:
        d["SourceNode"] = msg.source_node
    if msg.source_port:
        d["SourcePort"] = _u16(msg.source_port)
    return b"\x00" + fast_pack(d)


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
    return b"\x01" + fast_pack(d)


def _enc_ack(msg: AckResp) -> bytes:
    return b"\x02" + fast_pack({"Payload": msg.payload or None, "SeqNo": _u32(msg.seq_no)})


def _enc_nack(msg: NackResp) -> bytes:
    return b"\x0b" + fast_pack({"SeqNo": _u32(msg.seq_no)})


def _enc_err(msg: ErrResp) -> bytes:
    return b"\x0d" + fast_pack({"Error": msg.error})


def _enc_suspect(msg: Suspect) -> bytes:
    return b"\x03" + fast_pack({"From": msg.from_node, "Incarnation": _u32(msg.incarnation), "Node": msg.node})


def _enc_dead(msg: Dead) -> bytes:
    return b"\x05" + fast_pack({"From": msg.from_node, "Incarnation": _u32(msg.incarnation), "Node": msg.node})


# Encodings of alives and node states by their fields.  In a cluster every
# member encodes the same alive and the same pushNodeState about each member
# (when it learns of it, when it builds a push/pull): with the simulator's
# members in one process that was a million encodings of a thousand
# distinct messages at 1,000 nodes.  A pure function of its fields, so
# shared; bounded, emptied when full (the next calls simply encode again).
# Only fields of the exact types members hold are remembered (a bytearray
# or list is not hashable, and a bool or float merely equals an int).
_ENCODED: dict[tuple[object, ...], bytes] = {}
_ENCODED_MAX = 65_536
_KEY_TYPES = frozenset((bytes, str, int, tuple))


def _encoded(key: tuple[object, ...]) -> bytes | None:
    try:
        return _ENCODED.get(key)
    except TypeError:  # an unhashable field
        return None


def _remember_encoding(key: tuple[object, ...], data: bytes) -> bytes:
    if all(type(f) in _KEY_TYPES for f in key) and all(type(v) is int for v in key[-1]):  # type: ignore[attr-defined]
        if len(_ENCODED) >= _ENCODED_MAX:
            _ENCODED.clear()
        _ENCODED[key] = data
    return data


def encode_alive(incarnation: int, node: str, addr: bytes, port: int, meta: bytes,
                 vsn: tuple[int, ...]) -> bytes:
    """encode(Alive(...)) without building the message first."""
    key = (b"\x04", incarnation, node, addr, port, meta, vsn)
    data = _encoded(key)
    if data is not None:
        return data
    if not 0 <= incarnation <= _U32:
        raise ValueError(f"{incarnation} does not fit uint32")
    if not 0 <= port <= _U16:
        raise ValueError(f"{port} does not fit uint16")
    return _remember_encoding(key, b"\x04" + fast_pack({
        "Addr": addr or None,
        "Incarnation": incarnation,
        "Meta": meta or None,
        "Node": node,
        "Port": port,
        "Vsn": bytes(vsn) if vsn else None,
    }))


def _enc_alive(msg: Alive) -> bytes:
    return encode_alive(msg.incarnation, msg.node, msg.addr, msg.port, msg.meta, msg.vsn)


def encode_node_state(n: PushNodeState) -> bytes:
    """One pushNodeState map as it appears in a push/pull stream."""
    return encode_node_state_fields(n.name, n.addr, n.port, n.meta, n.incarnation, int(n.state), n.vsn)


def encode_node_state_fields(name: str, addr: bytes, port: int, meta: bytes, incarnation: int,
                             state: int, vsn: tuple[int, ...]) -> bytes:
    """encode_node_state without building the PushNodeState first.  Go's
    `State` is an int, but 0..3 is a positive fixint under both markers."""
    key = (name, addr, port, meta, incarnation, state, vsn)
    data = _encoded(key)
    if data is not None:
        return data
    if not 0 <= state < 128:
        raise ValueError(f"node state {state} out of range")
    return _remember_encoding(key, fast_pack({
        "Addr": addr or None,
        "Incarnation": _u32(incarnation),
        "Meta": meta or None,
        "Name": name,
        "Port": _u16(port),
        "State": state,
        "Vsn": bytes(vsn) if vsn else None,
    }))


def encode_push_pull(join: bool, node_states: list[bytes], user_state: bytes) -> bytes:
    """The push/pull stream form from already-encoded node states
    (`encode_node_state`), so a caller can reuse them between exchanges."""
    return encode_push_pull_joined(join, len(node_states), b"".join(node_states), user_state)


def encode_push_pull_joined(join: bool, count: int, node_states: bytes, user_state: bytes) -> bytes:
    """encode_push_pull from `count` encoded node states already joined
    into one bytes (gossip.members.MemberTable.node_states).  The header's
    Nodes/UserStateLen are Go ints: signed markers (pack_go)."""
    out = bytearray((MessageType.PUSH_PULL,))
    pack_go_into(
        {
            "Join": bool(join),
            "Nodes": GoInt(count),
            "UserStateLen": GoInt(len(user_state)),
        },
        out,
    )
    out += node_states
    out += user_state
    return bytes(out)


# Each type's encoder takes that type: a relation a dict type cannot state,
# hence Any for the argument.
_ENCODERS: dict[type, Callable[[Any], bytes]] = {
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
    pack_go_into({"UserMsgLen": GoInt(len(msg.payload))}, out)
    out += msg.payload
    return bytes(out)


def compress_message(buf: bytes) -> bytes:
    """0x09 | compress{Algo: 0 (LZW), Buf: lzw(buf)}."""
    return b"\x09" + pack_go({"Algo": LZW_ALGO, "Buf": lzw.compress(buf)})


class _Fields:
    """Typed access to a decoded msgpack map with bytes keys.  Missing or
    nil fields read as Go's zero value."""

    __slots__ = ("d", "what")

    def __init__(self, obj: object, what: str):
        if not isinstance(obj, dict):
            raise DecodeError("malformed", f"{what}: body is not a map")
        self.d = obj
        self.what = what

    def _get(self, key: bytes) -> object:
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


def _parse_checked(msg_type: int, obj: object) -> Message:
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


def _parse_alive(d: object) -> Message:
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


def _parse_ping(d: object) -> Message:
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


def _parse_ack(d: object) -> Message:
    if type(d) is dict:
        seq = d.get(b"SeqNo")
        payload = d.get(b"Payload")
        if type(seq) is int and 0 <= seq <= _U32 and (payload is None or type(payload) is bytes):
            return AckResp(seq, payload or b"")
    return _parse_checked(MessageType.ACK, d)


def _parse_suspect(d: object) -> Message:
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


def _parse_dead(d: object) -> Message:
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


_PARSERS: dict[int, Callable[[object], Message]] = {
    MessageType.ALIVE: _parse_alive,
    MessageType.PING: _parse_ping,
    MessageType.ACK: _parse_ack,
    MessageType.SUSPECT: _parse_suspect,
    MessageType.DEAD: _parse_dead,
}


def parse_body(msg_type: int, obj: object) -> Message:
    """Build the message for a fixed-shape type from its decoded map."""
    fast = _PARSERS.get(msg_type)
    if fast is not None:
        return fast(obj)
    return _parse_checked(msg_type, obj)


def parse_push_pull_header(obj: object, max_nodes: int, max_user_state_bytes: int) -> tuple[bool, int, int]:
    """(join, nodes, user_state_len) with memberlist's receive limits."""
    f = _Fields(obj, "pushPullHeader")
    return (
        f.boolean(b"Join"),
        f.goint(b"Nodes", max_nodes),
        f.goint(b"UserStateLen", max_user_state_bytes),
    )


_NODE_STATES = tuple(NodeStateCode)  # indexed by the wire value 0..3


def parse_node_state(obj: object) -> PushNodeState:
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
# gossip.compound's memo.  Only canonical encodings (the Go struct's seven
# fields) are remembered, and the memo is bounded in count and bytes.
_NODE_STATE_MEMO: Memo[PushNodeState] = Memo()
# parse_node_state_bytes' lookup alone (None when not remembered), for the
# stream parser's loop over a push/pull's node states.  Memo.get is its
# dict's own get, which stays valid across clear().
remembered_node_state = _NODE_STATE_MEMO.get
_NODE_STATE_KEYS = frozenset((b"Addr", b"Incarnation", b"Meta", b"Name", b"Port", b"State", b"Vsn"))


def parse_node_state_bytes(raw: bytes) -> PushNodeState:
    """parse_node_state of one encoded pushNodeState (exactly one msgpack
    object), remembered by its bytes."""
    st = _NODE_STATE_MEMO.get(raw)
    if st is None:
        obj = unpack_one(raw)
        st = parse_node_state(obj)
        if type(obj) is dict and obj.keys() == _NODE_STATE_KEYS:
            _NODE_STATE_MEMO.put(raw, st)
    return st


def parse_user_msg_header(obj: object, max_bytes: int) -> int:
    return _Fields(obj, "userMsgHeader").goint(b"UserMsgLen", max_bytes)


def decompress_body(obj: object, max_output_bytes: int) -> bytes:
    """The payload of a compress{Algo, Buf} map."""
    f = _Fields(obj, "compress")
    algo = f.uint(b"Algo", 8)
    if algo != LZW_ALGO:
        raise DecodeError("malformed", f"unknown compression algorithm {algo}")
    return lzw.decompress(f.raw(b"Buf"), max_output_bytes)
