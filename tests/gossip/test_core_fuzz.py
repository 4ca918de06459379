"""Mutated and random memberlist traffic into a whole `Swim` core.

How this works: Hypothesis builds valid memberlist messages of every type
(about us, about a member we know, about strangers), then mutates them:
a field replaced by an absurd value (an integer past its Go type, a
string, a list, nil...), a field removed, an unknown field added, or bytes
flipped; shoal's own user data (payloads, broadcasts, direct messages,
push/pull state) is mutated the same way.  Each goes into a core, with and
without a keyring, over every entry point: a datagram, an accepted stream,
and the reply to a push/pull we dialed.  Then the core runs on as an agent
drives it (timers, payload and meta updates).

What must hold: nothing but the documented `DecodeError` from a stream
decoder ever escapes; everything the core sends afterwards still decodes
(nothing we store became unencodable); plain garbage is counted as dropped.
"""

from __future__ import annotations

import itertools
import random

import msgpack
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gossip import compound, limits, userdata, wire
from gossip.config import LOCAL, VSN
from gossip.errors import DecodeError
from gossip.events import Address, OpenStream, SendDatagram, StreamPurpose
from gossip.gopack import GoInt, pack_go
from gossip.messages import (
    AckResp,
    Alive,
    Dead,
    ErrResp,
    IndirectPingReq,
    NackResp,
    NodeStateCode,
    Ping,
    PushNodeState,
    PushPull,
    Suspect,
    UserMsg,
)
from gossip.packet import StreamDecoder, open_packet, seal_packet, seal_stream
from gossip.security import Keyring
from gossip.swim import Swim

FUZZ = settings(max_examples=200, deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
CFG = LOCAL.replace(enable_compression=False)
IP_A = bytes([127, 0, 0, 1])
SRC = Address("127.0.0.1", 9999)
KEY = bytes(range(16))


def keyring() -> Keyring:
    counter = itertools.count()
    return Keyring([KEY], lambda n: next(counter).to_bytes(n, "big"))


# ---- valid messages ----------------------------------------------------------

# Names the core knows ("a" is the core, "b" a member) and strangers.
# (one_of picks a branch uniformly: the interesting values are drawn often)
names = st.one_of(st.just("a"), st.just("b"), st.sampled_from(["", "c"]), st.text(max_size=12))
edge_u32 = st.one_of(st.sampled_from([2**32 - 2, 2**32 - 1]), st.sampled_from([0, 1, 2, 2**31]),
                     st.integers(0, 2**32 - 1))
edge_u16 = st.one_of(st.sampled_from([0, 1, 7000, 7001, 2**16 - 1]), st.integers(0, 2**16 - 1))
ips = st.sampled_from([b"", IP_A, bytes(10) + b"\xff\xff" + IP_A, bytes(range(16)), b"\x01\x02\x03"])
vsns = st.one_of(st.just(VSN), st.lists(st.integers(0, 255), max_size=8).map(tuple))
blobs = st.binary(max_size=64)

udp_messages = st.one_of(
    st.builds(Ping, seq_no=edge_u32, node=names, source_addr=ips, source_port=edge_u16, source_node=names),
    st.builds(IndirectPingReq, seq_no=edge_u32, target=ips, port=edge_u16, node=names, nack=st.booleans(),
              source_addr=ips, source_port=edge_u16, source_node=names),
    st.builds(AckResp, seq_no=edge_u32, payload=blobs),
    st.builds(NackResp, seq_no=edge_u32),
    st.builds(Suspect, incarnation=edge_u32, node=names, from_node=names),
    st.builds(Dead, incarnation=edge_u32, node=names, from_node=names),
    st.builds(Alive, incarnation=edge_u32, node=names, addr=ips, port=edge_u16, meta=blobs, vsn=vsns),
)
node_states = st.builds(PushNodeState, name=names, addr=ips, port=edge_u16, meta=blobs, incarnation=edge_u32,
                        state=st.sampled_from(list(NodeStateCode)), vsn=vsns)

# Integers around every boundary a field may have, and values of wrong types.
edge_ints = st.sampled_from([-(2**63), -1, 0, 1, 3, 4, 255, 256, 2**16, 2**31, 2**32 - 1, 2**32,
                             2**53, 2**63 - 2**32, 2**63 - 1, 2**63, 2**64 - 1])
absurd = st.one_of(edge_ints, st.integers(-(2**63), 2**64 - 1), st.booleans(), st.none(),
                   st.floats(allow_nan=True), st.binary(max_size=40), st.text(max_size=10),
                   st.lists(edge_ints, max_size=3), st.dictionaries(st.text(max_size=3), edge_ints, max_size=2))
versions = st.one_of(st.sampled_from([2**63 - 2, 2**63 - 1, 2**64 - 2, 2**64 - 1]), edge_ints,
                     st.integers(0, 2**64 - 1))


@st.composite
def mutated_map(draw, body: dict) -> bytes:
    """A msgpack map with one of: a value replaced, a key dropped, an
    unknown key added (Go-style legacy raw strings, like memberlist)."""
    body = dict(body)
    how = draw(st.sampled_from(["replace", "drop", "add", "none"]))
    if body and how in ("replace", "drop"):
        key = draw(st.sampled_from(sorted(body)))
        if how == "replace":
            body[key] = draw(absurd)
        else:
            del body[key]
    elif how == "add":
        body[draw(st.text(max_size=8))] = draw(st.one_of(absurd, st.binary(min_size=100, max_size=3000)))
    return msgpack.packb(body, use_bin_type=False)


def _go_map(packed: bytes) -> dict:
    # raw=True: keys and strings stay bytes, packed back as legacy raw.
    return msgpack.unpackb(packed, raw=True, strict_map_key=False)


@st.composite
def mutated_udp_message(draw) -> bytes:
    msg = wire.encode(draw(udp_messages))
    return msg[:1] + draw(mutated_map(_go_map(msg[1:])))


@st.composite
def shoal_user_data(draw) -> bytes:
    """shoal's own user data, valid in shape or mutated."""
    kind = draw(st.sampled_from(list(userdata.Kind)))
    if kind is userdata.Kind.PAYLOAD:
        body: object = [draw(names), draw(versions), draw(st.binary(max_size=1100))]
    elif kind is userdata.Kind.BROADCAST:
        body = [draw(names), draw(versions), draw(blobs)]
    elif kind is userdata.Kind.DIRECT:
        body = [draw(names), draw(blobs)]
    else:
        body = {"p": draw(st.dictionaries(names, st.tuples(versions, blobs).map(list), max_size=4)),
                "u": draw(blobs)}
    if draw(st.booleans()) and isinstance(body, list):
        body[draw(st.integers(0, len(body) - 1))] = draw(absurd)
    try:
        packed = msgpack.packb(body, use_bin_type=True)
    except (OverflowError, ValueError, TypeError):
        packed = draw(st.binary(max_size=30))
    return bytes((userdata.MAGIC, kind)) + packed


@st.composite
def mutated_push_pull(draw) -> bytes:
    nodes = draw(st.lists(node_states, max_size=4))
    raw_states = []
    for n in nodes:
        raw_states.append(draw(mutated_map(_go_map(wire.encode_node_state(n)))))
    user = draw(st.one_of(st.just(b""), shoal_user_data(), st.binary(max_size=50)))
    header = {"Join": draw(st.booleans()), "Nodes": GoInt(len(raw_states)), "UserStateLen": GoInt(len(user))}
    if draw(st.booleans()):
        header[draw(st.sampled_from(["Join", "Nodes", "UserStateLen"]))] = draw(absurd)
    try:
        head = pack_go(header)
    except (OverflowError, ValueError, TypeError):
        head = pack_go({"Join": False, "Nodes": GoInt(len(raw_states)), "UserStateLen": GoInt(len(user))})
    return b"\x06" + head + b"".join(raw_states) + user


def flip(data: bytes, flips: list[int]) -> bytes:
    buf = bytearray(data)
    for f in flips:
        if buf:
            buf[(f // 8) % len(buf)] ^= 1 << (f % 8)
    return bytes(buf)


datagram_bodies = st.one_of(
    mutated_udp_message(),
    shoal_user_data().map(lambda b: b"\x08" + b),
    st.lists(st.one_of(mutated_udp_message(), shoal_user_data().map(lambda b: b"\x08" + b)),
             min_size=1, max_size=5).map(compound.make_compound),
    st.binary(max_size=200),
)
stream_bodies = st.one_of(
    mutated_push_pull(),
    shoal_user_data().map(lambda b: wire.encode_stream_user(UserMsg(b))),
    shoal_user_data().map(lambda b: wire.encode(PushPull(False, (), b))),
    mutated_udp_message(),
    st.builds(ErrResp, error=st.text(max_size=20)).map(wire.encode),
    st.binary(max_size=200),
)


# ---- the core and its checks ---------------------------------------------------


def new_core(encrypted: bool) -> Swim:
    swim = Swim(name="a", addr=Address("127.0.0.1", 7000), config=CFG, rng=random.Random(3), now=0.0,
                keyring=keyring() if encrypted else None)
    swim.set_payload(b"status", 0.0)
    swim.receive_datagram(seal_packet(wire.encode(Alive(1, "b", IP_A, 7001, b"", VSN)), label=b"",
                                      keyring=swim.keyring, crc=False, compress=False), SRC, 0.0)
    swim.drain()
    return swim


def drops(swim: Swim) -> int:
    return sum(v for k, v in swim.stats().items() if k.startswith("dropped_"))


def run_on(swim: Swim, start: float, seconds: float = 12.0) -> None:
    """Drive the core as an agent would; everything it sends must decode."""
    swim.set_payload(b"status-2", start)
    swim.set_meta(b"m", start)
    now = start
    while now < start + seconds:
        swim.handle_timers(now)
        for out in swim.drain():
            if isinstance(out, SendDatagram):
                open_packet(out.data, label=b"", keyring=swim.keyring)
            elif isinstance(out, OpenStream):
                dec = StreamDecoder(label=b"", keyring=swim.keyring, expect_label_header=True)
                assert dec.feed(out.data) is not None
        now += 0.25
    wire.encode_push_pull(False, [m.node_state_bytes() for m in swim._members.by_name.values()],
                          userdata.encode_state(swim.payloads(), b""))
    for info in swim.members():
        assert 0 <= info.incarnation <= limits.INCARNATION_MAX


def deliver_stream(swim: Swim, data: bytes, now: float) -> None:
    dec = swim.stream_decoder(incoming=True)
    try:
        msg = dec.feed(data) or dec.feed_eof()
    except DecodeError:
        return  # the documented refusal; the driver counts it
    reply = swim.receive_stream(msg, SRC, now)
    if reply is not None:
        back = StreamDecoder(label=b"", keyring=swim.keyring, expect_label_header=False)
        assert back.feed(reply) is not None


def deliver_reply(swim: Swim, data: bytes, now: float) -> None:
    """`data` as the reply to a push/pull we dialed."""
    swim.join([Address("127.0.0.1", 7001)], now)
    [dial] = [o for o in swim.drain() if isinstance(o, OpenStream) and o.purpose is StreamPurpose.PUSH_PULL]
    dec = swim.stream_decoder(incoming=False)
    try:
        msg = dec.feed(data) or dec.feed_eof()
    except DecodeError:
        msg = None
    swim.stream_reply(dial.stream_id, msg, now)


# ---- the properties ----------------------------------------------------------------


@FUZZ
@given(st.lists(datagram_bodies, min_size=1, max_size=6), st.booleans(), st.booleans(),
       st.lists(st.integers(0, 10**5), max_size=2))
def test_mutated_datagrams_never_break_the_core(bodies, encrypted, seal, flips):
    swim = new_core(encrypted)
    for i, body in enumerate(bodies):
        data = seal_packet(body, label=b"", keyring=swim.keyring, crc=False, compress=False) if seal else body
        swim.receive_datagram(flip(data, flips) if i == 0 else data, SRC, 0.1 + i * 0.01)
    run_on(swim, 1.0)


@settings(FUZZ, max_examples=400)
@given(stream_bodies, st.booleans(), st.lists(st.integers(0, 10**5), max_size=2), st.booleans())
def test_mutated_streams_never_break_the_core(body, encrypted, flips, as_reply):
    swim = new_core(encrypted)
    data = seal_stream(body, label=b"", keyring=swim.keyring, compress=False, write_label=not as_reply)
    data = flip(data, flips)
    if as_reply:
        deliver_reply(swim, data, 0.5)
    else:
        deliver_stream(swim, data, 0.5)
    run_on(swim, 1.0)


@FUZZ
@given(st.binary(min_size=1, max_size=300), st.booleans())
def test_garbage_datagrams_are_counted_as_dropped(data, encrypted):
    swim = new_core(encrypted)
    before = drops(swim)
    swim.receive_datagram(b"\xfe" + data, SRC, 0.5)  # 0xfe: no message type, version or label
    assert drops(swim) == before + 1
    run_on(swim, 1.0)
