"""The codec's fast paths agree with the reference implementations.

How this works: `gossip.wire` encodes the hot fixed-shape messages with
msgpack's C packer and decodes them with plain type checks, keeping the
general code (`pack_go`, `_parse_checked`) as the reference.  Hypothesis
generates messages and msgpack maps (valid, lenient and wrong) and checks:
the C packer's bytes equal pack_go's for the same Go-ordered map; the fast
parsers return the same value, or raise a DecodeError with the same reason,
as the reference; `decode_parts` hands back a message's own bytes only when
its map has exactly the Go struct's fields.  The golden vectors in
test_wire_golden.py pin the bytes against Go itself.
"""

from __future__ import annotations

import msgpack
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_wire_fuzz import node_states, udp_messages

from gossip import compound, gopack, wire
from gossip.errors import DecodeError
from gossip.messages import (
    Alive,
    Dead,
    MessageType,
    NodeStateCode,
    Ping,
    PushNodeState,
    Suspect,
)

FUZZ = settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _go_map(msg) -> dict:
    """Go-ordered field map for a message, as pack_go takes it."""
    n = type(msg).__name__
    if n == "Ping" or n == "IndirectPingReq":
        d: dict = {"Nack": msg.nack, "Node": msg.node, "Port": msg.port, "SeqNo": msg.seq_no} \
            if n == "IndirectPingReq" else {"Node": msg.node, "SeqNo": msg.seq_no}
        if msg.source_addr:
            d["SourceAddr"] = msg.source_addr
        if msg.source_node:
            d["SourceNode"] = msg.source_node
        if msg.source_port:
            d["SourcePort"] = msg.source_port
        if n == "IndirectPingReq":
            d["Target"] = msg.target or None
        return d
    if n == "AckResp":
        return {"Payload": msg.payload or None, "SeqNo": msg.seq_no}
    if n == "NackResp":
        return {"SeqNo": msg.seq_no}
    if n in ("Suspect", "Dead"):
        return {"From": msg.from_node, "Incarnation": msg.incarnation, "Node": msg.node}
    if n == "Alive":
        return {"Addr": msg.addr or None, "Incarnation": msg.incarnation, "Meta": msg.meta or None,
                "Node": msg.node, "Port": msg.port, "Vsn": bytes(msg.vsn) or None}
    raise AssertionError(n)


@FUZZ
@given(udp_messages)
def test_c_packer_matches_pack_go(msg):
    data = wire.encode(msg)
    if type(msg).__name__ == "UserMsg":
        return
    assert data[1:] == gopack.pack_go(_go_map(msg))


@FUZZ
@given(node_states)
def test_node_state_matches_pack_go(n: PushNodeState):
    ref = gopack.pack_go({"Addr": n.addr or None, "Incarnation": n.incarnation, "Meta": n.meta or None,
                        "Name": n.name, "Port": n.port, "State": gopack.GoInt(int(n.state)),
                        "Vsn": bytes(n.vsn) or None})
    assert wire.encode_node_state(n) == ref
    assert wire.parse_node_state(msgpack.unpackb(ref, raw=True)) == n


def test_long_strings_and_big_ints_use_go_markers():
    # raw16 for a 40-byte name (never str8), cd/ce for uint16/uint32.
    a = Alive(incarnation=70_000, node="n" * 40, addr=b"\x0a\x00\x00\x01", port=7946, meta=b"m" * 300,
              vsn=(1, 5, 2, 2, 5, 4))
    assert wire.encode(a)[1:] == gopack.pack_go(_go_map(a))
    assert b"\xda\x00\x28" + b"n" * 40 in wire.encode(a)
    assert b"\xce\x00\x01\x11\x70" in wire.encode(a)


# msgpack values a hostile or lenient peer might put in any field.
values = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**63), 2**64 - 1), st.binary(max_size=20),
    st.text(max_size=20), st.floats(allow_nan=False), st.lists(st.integers(-1, 300), max_size=7),
)
field_names = st.sampled_from([
    b"SeqNo", b"Node", b"SourceAddr", b"SourcePort", b"SourceNode", b"Incarnation", b"Addr", b"Port",
    b"Meta", b"Vsn", b"From", b"Payload", b"Name", b"State", b"Other",
])


def outcome(fn, *args):
    try:
        return "ok", fn(*args)
    except DecodeError as e:
        return "error", e.reason


@FUZZ
@given(st.sampled_from([MessageType.PING, MessageType.ACK, MessageType.SUSPECT, MessageType.DEAD,
                        MessageType.ALIVE]),
       st.dictionaries(field_names, values, max_size=8), st.booleans())
def test_fast_parsers_agree_with_reference(t, fields, bin_type):
    obj = msgpack.unpackb(msgpack.packb(fields, use_bin_type=bin_type), raw=True, strict_map_key=False)
    assert outcome(wire.parse_body, t, obj) == outcome(wire._parse_checked, t, obj)


@FUZZ
@given(st.dictionaries(field_names, values, max_size=8), st.booleans())
def test_fast_node_state_parser_agrees_with_reference(fields, bin_type):
    obj = msgpack.unpackb(msgpack.packb(fields, use_bin_type=bin_type), raw=True, strict_map_key=False)

    def reference(o):
        f = wire._Fields(o, "pushNodeState")
        state = f._get(b"State")
        state = 0 if state is None else state
        if type(state) is not int or state not in (0, 1, 2, 3):
            raise DecodeError("malformed", "state")
        return PushNodeState(f.string(b"Name"), f.raw(b"Addr"), f.uint(b"Port", 16), f.raw(b"Meta"),
                             f.uint(b"Incarnation", 32), NodeStateCode(state), f.vsn(b"Vsn"))

    assert outcome(wire.parse_node_state, obj) == outcome(reference, obj)


def test_decode_parts_returns_forwardable_bytes():
    alive = wire.encode(Alive(3, "node-a", b"\x0a\x00\x00\x01", 7946, b"", (1, 5, 2, 2, 5, 4)))
    suspect = wire.encode(Suspect(3, "node-a", "node-b"))
    dead = wire.encode(Dead(3, "node-a", "node-b"))
    ping = wire.encode(Ping(1, "node-a"))
    parts = compound.decode_parts(compound.make_compound([alive, suspect, dead, ping]))
    assert [raw for _, raw in parts] == [alive, suspect, dead, None]
    # An extra (unknown) key or a missing one: the message still decodes,
    # but is re-encoded rather than forwarded as received.
    extra = b"\x03" + msgpack.packb({"From": "b", "Incarnation": 1, "Node": "a", "X": 1})
    missing = b"\x03" + msgpack.packb({"From": "b", "Node": "a"})
    assert compound.decode_parts(extra) == [(Suspect(1, "a", "b"), None)]
    assert compound.decode_parts(missing) == [(Suspect(0, "a", "b"), None)]


def test_decode_parts_leaves_out_the_parts_the_receiver_holds_as_old_news():
    old = wire.encode(Alive(3, "node-a", b"\x0a\x00\x00\x01", 7946, b"", (1, 5, 2, 2, 5, 4)))
    new = wire.encode(Alive(4, "node-a", b"\x0a\x00\x00\x01", 7946, b"", (1, 5, 2, 2, 5, 4)))
    packet = compound.make_compound([old, new, old])
    assert [raw for _, raw in compound.decode_parts(packet, skip={old})] == [new]
    # Nothing but old news is an ordinary packet with nothing to handle,
    # not a malformed one.
    assert compound.decode_parts(compound.make_compound([old, old]), skip={old}) == []
    # A truncated or broken compound is refused as before.
    with pytest.raises(DecodeError):
        compound.decode_parts(compound.make_compound([b"\x03\xc1"]), skip={old})
