"""Hostile input never raises anything but DecodeError; valid input round-trips.

How this works: Hypothesis generates arbitrary bytes, truncations and bit
flips of valid packets and streams, and hand-made frames whose declared
lengths are absurd, and pushes them through `open_packet` (plain, labelled,
encrypted) and `StreamDecoder` (fed in random chunks, then EOF).  The only
acceptable failure is `DecodeError`; anything else (IndexError,
UnicodeDecodeError, msgpack's own errors, MemoryError...) fails the test.
A second group generates random valid messages and checks
decode(encode(m)) == m through every pipeline.
"""

from __future__ import annotations

import itertools

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gossip import compound, gopack, packet, wire
from gossip.errors import DecodeError
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
from gossip.security import Keyring

KEY = bytes(range(16))
LABEL = b"prod"
FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def keyring() -> Keyring:
    counter = itertools.count()
    return Keyring([KEY], lambda n: next(counter).to_bytes(n, "big"))


# ---- strategies -----------------------------------------------------------

u32 = st.integers(0, 2**32 - 1)
u16 = st.integers(0, 2**16 - 1)
names = st.text(max_size=40)
ips = st.sampled_from([b"", b"\x0a\x00\x00\x01", bytes(10) + b"\xff\xff\x7f\x00\x00\x01", bytes(range(16))])
vsns = st.lists(st.integers(0, 255), max_size=8).map(tuple)
blobs = st.binary(max_size=600)

pings = st.builds(Ping, seq_no=u32, node=names, source_addr=ips, source_port=u16, source_node=names)
indirect_pings = st.builds(
    IndirectPingReq,
    seq_no=u32,
    target=ips,
    port=u16,
    node=names,
    nack=st.booleans(),
    source_addr=ips,
    source_port=u16,
    source_node=names,
)
acks = st.builds(AckResp, seq_no=u32, payload=blobs)
nacks = st.builds(NackResp, seq_no=u32)
suspects = st.builds(Suspect, incarnation=u32, node=names, from_node=names)
deads = st.builds(Dead, incarnation=u32, node=names, from_node=names)
alives = st.builds(Alive, incarnation=u32, node=names, addr=ips, port=u16, meta=blobs, vsn=vsns)
user_msgs = st.builds(UserMsg, payload=blobs)
udp_messages = st.one_of(pings, indirect_pings, acks, nacks, suspects, deads, alives, user_msgs)

node_states = st.builds(
    PushNodeState,
    name=names,
    addr=ips,
    port=u16,
    meta=blobs,
    incarnation=u32,
    state=st.sampled_from(list(NodeStateCode)),
    vsn=vsns,
)
push_pulls = st.builds(
    PushPull,
    join=st.booleans(),
    nodes=st.lists(node_states, max_size=6).map(tuple),
    user_state=st.binary(max_size=2000),
)
err_resps = st.builds(ErrResp, error=st.text(max_size=100))


def stream_bytes(msg) -> bytes:
    if isinstance(msg, UserMsg):
        return wire.encode_stream_user(msg)
    return wire.encode(msg)


stream_messages = st.one_of(push_pulls, pings, acks, err_resps, user_msgs)

# Pipeline configurations: (label, use keyring, crc, compress)
packet_configs = st.tuples(st.sampled_from([b"", LABEL]), st.booleans(), st.booleans(), st.booleans())
stream_configs = st.tuples(st.sampled_from([b"", LABEL]), st.booleans(), st.booleans())


def only_decode_errors(fn, *args, **kwargs):
    try:
        return fn(*args, **kwargs)
    except DecodeError as e:
        assert e.reason in {"malformed", "label", "decrypt", "crc", "too_large", "unencrypted", "unknown_type"}
        return None


def open_all_ways(data: bytes) -> None:
    kr = keyring()
    for label in (b"", LABEL):
        for ring in (None, kr):
            only_decode_errors(packet.open_packet, data, label=label, keyring=ring)
        only_decode_errors(packet.open_packet, data, label=label, keyring=None, skip_inbound_label_check=True)


def stream_all_ways(data: bytes, cuts: list[int]) -> None:
    kr = keyring()
    for label, ring, expect in itertools.product((b"", LABEL), (None, kr), (False, True)):
        dec = packet.StreamDecoder(label=label, keyring=ring, expect_label_header=expect, max_bytes=1 << 20)

        def run():
            pos = 0
            for cut in sorted(c % (len(data) + 1) for c in cuts) + [len(data)]:
                if dec.feed(data[pos:cut]) is not None:
                    return
                pos = cut
            dec.feed_eof()

        only_decode_errors(run)


# ---- hostile input ---------------------------------------------------------


@FUZZ
@given(st.binary(max_size=400))
def test_arbitrary_bytes_into_packets(data):
    open_all_ways(data)
    only_decode_errors(compound.decode_messages, data)


@FUZZ
@given(st.sampled_from(range(14)), st.binary(max_size=300))
def test_arbitrary_bodies_after_each_type_byte(t, body):
    open_all_ways(bytes((t,)) + body)


@FUZZ
@given(st.binary(max_size=400), st.lists(st.integers(0, 1000), max_size=5))
def test_arbitrary_bytes_into_streams(data, cuts):
    stream_all_ways(data, cuts)


@FUZZ
@given(st.sampled_from([0, 2, 6, 8, 9, 10, 13, 0xF4]), st.binary(max_size=300),
       st.lists(st.integers(0, 400), max_size=4))
def test_arbitrary_bodies_into_streams(t, body, cuts):
    stream_all_ways(bytes((t,)) + body, cuts)


@st.composite
def sealed_packets(draw):
    msgs = draw(st.lists(udp_messages, min_size=1, max_size=4))
    parts = [wire.encode(m) for m in msgs]
    msg = parts[0] if len(parts) == 1 else compound.make_compound(parts)
    label, enc, crc, comp = draw(packet_configs)
    return packet.seal_packet(msg, label=label, keyring=keyring() if enc else None, crc=crc, compress=comp,
                              compress_min_bytes=0)


@st.composite
def sealed_streams(draw):
    msg = draw(stream_messages)
    label, enc, comp = draw(stream_configs)
    return packet.seal_stream(
        stream_bytes(msg), label=label, keyring=keyring() if enc else None, compress=comp, write_label=True
    )


@FUZZ
@given(sealed_packets(), st.integers(0, 10_000))
def test_truncated_packets(data, cut):
    open_all_ways(data[: cut % (len(data) + 1)])


@FUZZ
@given(sealed_packets(), st.lists(st.integers(0, 10**6), min_size=1, max_size=4))
def test_bit_flipped_packets(data, flips):
    buf = bytearray(data)
    for f in flips:
        buf[(f // 8) % len(buf)] ^= 1 << (f % 8)
    open_all_ways(bytes(buf))


@FUZZ
@given(sealed_streams(), st.integers(0, 10_000), st.lists(st.integers(0, 5000), max_size=4))
def test_truncated_streams(data, cut, cuts):
    stream_all_ways(data[: cut % (len(data) + 1)], cuts)


@FUZZ
@given(sealed_streams(), st.lists(st.integers(0, 10**6), min_size=1, max_size=4),
       st.lists(st.integers(0, 5000), max_size=4))
def test_bit_flipped_streams(data, flips, cuts):
    buf = bytearray(data)
    for f in flips:
        buf[(f // 8) % len(buf)] ^= 1 << (f % 8)
    stream_all_ways(bytes(buf), cuts)


# Hand-made frames that declare far more than they carry.
OVERSIZED = [
    # compound claiming 255 parts of 65535 bytes
    b"\x07\xff" + b"\xff\xff" * 255 + b"\x00" * 10,
    # compound whose length table itself is cut short
    b"\x07\x10\x00\x05",
    # ping whose Node is a raw32 of 4 GiB
    b"\x00\x81\xa4Node\xdb\xff\xff\xff\xff",
    # ping whose body is an array32 / map32 of 4G entries
    b"\x00\xdd\xff\xff\xff\xff",
    b"\x00\xdf\xff\xff\xff\xff",
    # alive with Vsn as a huge array
    b"\x04\x81\xa3Vsn\xdc\xff\xff" + b"\x01" * 20,
    # compress wrapper whose Buf is huge / not bytes / wrong algorithm
    b"\x09\x82\xa4Algo\x00\xa3Buf\xdb\x7f\xff\xff\xff",
    b"\x09\x82\xa4Algo\x00\xa3Buf\x05",
    b"\x09\x82\xa4Algo\x01\xa3Buf\xa0",
    # CRC header on nothing
    b"\x0c\x00\x00",
    # label header longer than the packet
    b"\xf4\xff" + b"x" * 10,
    b"\xf4\x00\x00",
]


def nested_compress(depth: int) -> bytes:
    msg = wire.encode(NackResp(1))
    for _ in range(depth):
        msg = wire.compress_message(msg)
    return msg


def nested_compound(depth: int) -> bytes:
    msg = wire.encode(NackResp(1))
    for _ in range(depth):
        msg = compound.make_compound([msg])
    return msg


STREAM_OVERSIZED = [
    # push/pull claiming 2^31 nodes / 2^40 user bytes / negative counts
    b"\x06" + gopack.pack_go({"Join": False, "Nodes": gopack.GoInt(2**31), "UserStateLen": 0}),
    b"\x06" + gopack.pack_go({"Join": False, "Nodes": 0, "UserStateLen": gopack.GoInt(2**40)}),
    b"\x06" + gopack.pack_go({"Join": False, "Nodes": gopack.GoInt(-1), "UserStateLen": 0}),
    b"\x06" + gopack.pack_go({"Join": 1, "Nodes": 0, "UserStateLen": 0}),
    b"\x06" + gopack.pack_go({"Join": False, "Nodes": 1, "UserStateLen": 0}) + b"\x81\xa5State\x07",
    # user message claiming 4 GiB
    b"\x08" + gopack.pack_go({"UserMsgLen": gopack.GoInt(2**32)}),
    # encryption envelope claiming 4 GiB, and one claiming 0 bytes
    b"\x0a\xff\xff\xff\xff" + bytes(40),
    b"\x0a\x00\x00\x00\x00",
    # compress on a stream wrapping another compress
    wire.compress_message(wire.compress_message(wire.encode(Ping(1, "x")))),
    # a type that never travels on streams
    wire.encode(NackResp(3)),
]


@pytest.mark.parametrize("data", OVERSIZED + [nested_compress(8), nested_compound(8)])
def test_oversized_declared_lengths_in_packets(data):
    open_all_ways(data)
    with pytest.raises(DecodeError):
        compound.decode_messages(data)


@pytest.mark.parametrize("data", STREAM_OVERSIZED)
def test_oversized_declared_lengths_in_streams(data):
    dec = packet.StreamDecoder(label=b"", keyring=None, expect_label_header=False, max_bytes=1 << 20)
    with pytest.raises(DecodeError):
        if dec.feed(data) is None:
            dec.feed_eof()
    stream_all_ways(data, [1, 7])


def test_stream_max_bytes_enforced():
    big = PushPull(join=True, nodes=(), user_state=b"u" * 5000)
    data = wire.encode(big)
    with pytest.raises(DecodeError) as e:
        packet.StreamDecoder(label=b"", keyring=None, expect_label_header=False, max_bytes=4000).feed(data)
    assert e.value.reason == "too_large"
    sealed = packet.seal_stream(data, label=b"", keyring=keyring(), compress=False, write_label=False)
    with pytest.raises(DecodeError) as e:
        packet.StreamDecoder(label=b"", keyring=keyring(), expect_label_header=False, max_bytes=4000).feed(sealed)
    assert e.value.reason == "too_large"


def test_truncated_compound_yields_leading_parts():
    parts = [wire.encode(NackResp(i)) for i in range(3)]
    data = compound.make_compound(parts)
    assert compound.decode_messages(data[:-1]) == [NackResp(0), NackResp(1)]
    assert compound.decode_messages(data[: 2 + 6 + len(parts[0])]) == [NackResp(0)]
    with pytest.raises(DecodeError):
        compound.decode_messages(data[: 2 + 6 + 1])


def test_bad_part_in_compound_does_not_hide_good_parts():
    good = wire.encode(NackResp(5))
    assert compound.decode_messages(compound.make_compound([b"\x63junk", good])) == [NackResp(5)]
    with pytest.raises(DecodeError):
        compound.decode_messages(compound.make_compound([b"\x63junk", b"\x00\xc1"]))


def test_wrong_field_types_are_decode_errors():
    cases = [
        b"\x00" + gopack.pack_go({"Node": 5, "SeqNo": 1}),  # int where string expected
        b"\x00" + gopack.pack_go({"Node": "x", "SeqNo": "1"}),  # string where int expected
        b"\x00" + gopack.pack_go({"Node": b"\xff\xfe", "SeqNo": 1}),  # invalid UTF-8
        b"\x00" + gopack.pack_go({"Node": "x", "SeqNo": 2**32}),  # uint32 overflow
        b"\x00" + gopack.pack_go({"Node": "x", "SeqNo": -1}),
        b"\x01" + gopack.pack_go({"Nack": 1}),  # int where bool expected
        b"\x02" + gopack.pack_go({"SeqNo": True}),  # bool where int expected
        b"\x02" + gopack.pack_go({"SeqNo": 1.5}),
        b"\x04" + gopack.pack_go({"Addr": 7}),
        b"\x04" + gopack.pack_go({"Vsn": [1, 2, 300]}),
        b"\x04" + gopack.pack_go({"Vsn": ["a"]}),
        b"\x04" + gopack.pack_go({"Port": 70000}),
        b"\x0b" + gopack.pack_go([1]),  # array instead of map
        b"\x0b\xd4\x01\x00",  # ext type
        b"\x0b\xd6\xff\x00\x00\x00\x00",  # timestamp ext
        b"\x0b",  # no body at all
    ]
    for data in cases:
        with pytest.raises(DecodeError):
            compound.decode_messages(data)


def test_lenient_where_go_is_lenient():
    # Unknown keys ignored, missing keys zero, Vsn as array, bin/str8 types.
    import msgpack

    body = msgpack.packb({"SeqNo": 9, "Node": "n", "Extra": [1, 2, {"x": 1}]}, use_bin_type=True)
    assert compound.decode_messages(b"\x00" + body) == [Ping(seq_no=9, node="n")]
    alive = msgpack.packb({"Node": "a" * 40, "Vsn": [1, 5, 2, 0, 0, 0], "Meta": b"m"}, use_bin_type=True)
    assert compound.decode_messages(b"\x04" + alive) == [
        Alive(incarnation=0, node="a" * 40, addr=b"", port=0, meta=b"m", vsn=(1, 5, 2, 0, 0, 0))
    ]


# ---- valid input round-trips ---------------------------------------------


@FUZZ
@given(udp_messages)
def test_udp_message_roundtrip(msg):
    assert compound.decode_messages(wire.encode(msg)) == [msg]


@FUZZ
@given(st.lists(udp_messages, min_size=1, max_size=8), packet_configs)
def test_packet_pipeline_roundtrip(msgs, config):
    label, enc, crc, comp = config
    ring = keyring() if enc else None
    parts = [wire.encode(m) for m in msgs]
    msg = compound.make_compound(parts)
    data = packet.seal_packet(msg, label=label, keyring=ring, crc=crc, compress=comp, compress_min_bytes=0)
    assert packet.open_packet(data, label=label, keyring=ring) == msgs


@FUZZ
@given(stream_messages, stream_configs, st.lists(st.integers(0, 5000), max_size=6))
def test_stream_pipeline_roundtrip(msg, config, cuts):
    label, enc, comp = config
    ring = keyring() if enc else None
    data = packet.seal_stream(stream_bytes(msg), label=label, keyring=ring, compress=comp, write_label=True)
    dec = packet.StreamDecoder(label=label, keyring=ring, expect_label_header=True)
    got = None
    pos = 0
    for cut in sorted(c % (len(data) + 1) for c in cuts) + [len(data)]:
        got = dec.feed(data[pos:cut])
        pos = cut
        if got is not None:
            break
    assert pos == len(data), "decoder finished before the end of the frame"
    assert got == msg
    assert dec.feed_eof() == msg


@FUZZ
@given(st.lists(st.integers(-(2**63), 2**64 - 1), max_size=5), st.integers(-(2**63), 2**63 - 1))
def test_pack_go_ints_agree_with_msgpack(values, go_int):
    import msgpack

    assert msgpack.unpackb(gopack.pack_go(values)) == values
    assert msgpack.unpackb(gopack.pack_go(gopack.GoInt(go_int))) == go_int
    # Go int above 127 uses signed markers; below, the fixint byte.
    packed = gopack.pack_go(gopack.GoInt(go_int))
    assert packed[0] in range(0x80) or packed[0] >= 0xE0 or packed[0] in (0xD0, 0xD1, 0xD2, 0xD3)
