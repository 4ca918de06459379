"""Hostile input to the gossip core: refused, counted, never a crash, never unbounded.

How this works: each test feeds one `Swim` core the datagrams or streams an
attacker sent in the trust-boundary report (issue 11, findings 1 and 5),
then drives the core on as an agent would (timers, push/pull, payload and
meta updates) and checks what a caller notices: no exception, the input
counted as dropped in `stats()`, our own state still encodable and sent,
and the memory the input could make us hold under the bound of
`gossip.limits`.
"""

from __future__ import annotations

import itertools
import random
import tracemalloc

import msgpack
import pytest

from gossip import compound, limits, userdata, wire
from gossip.config import LOCAL, VSN
from gossip.errors import DecodeError
from gossip.events import Address, OpenStream, PacketDropped, StreamPurpose
from gossip.gopack import GoInt, pack_go
from gossip.messages import Alive, NodeStateCode, PushNodeState, PushPull, Suspect
from gossip.packet import StreamDecoder, seal_packet, seal_stream
from gossip.security import Keyring
from gossip.swim import Swim

CFG = LOCAL.replace(enable_compression=False)
IP = bytes([127, 0, 0, 1])
SRC = Address("127.0.0.1", 9999)
KEY = bytes(range(16))


def keyring() -> Keyring:
    counter = itertools.count()
    return Keyring([KEY], lambda n: next(counter).to_bytes(n, "big"))


def core(name: str = "a", keyring: Keyring | None = None, config=CFG) -> Swim:
    swim = Swim(name=name, addr=Address("127.0.0.1", 7000), config=config, rng=random.Random(1),
                now=0.0, keyring=keyring)
    swim.set_payload(b"status-1", 0.0)
    # One other member, so push/pull and gossip have someone to go to.
    swim.receive_datagram(datagram(swim, wire.encode(Alive(1, "b", IP, 7001, b"", VSN))), SRC, 0.0)
    swim.drain()
    return swim


def datagram(swim: Swim, msg: bytes) -> bytes:
    return seal_packet(msg, label=swim.label, keyring=swim.keyring, crc=False, compress=False)


def user_payload(node: str, version: int, data: bytes) -> bytes:
    return b"\x08" + userdata.encode_payload(node, version, data)


def stream_in(swim: Swim, msg: bytes) -> bytes | None:
    """Deliver one stream message as the agent does; returns our reply."""
    data = seal_stream(msg, label=swim.label, keyring=swim.keyring, compress=False, write_label=True)
    dec = swim.stream_decoder(incoming=True)
    got = dec.feed(data) or dec.feed_eof()
    return swim.receive_stream(got, SRC, 1.0)


def drive(swim: Swim, seconds: float, start: float = 1.0) -> list[object]:
    """Update payload and meta as an agent does, then run the core's timers
    for `seconds`; every output is returned."""
    swim.set_payload(b"status-2", start)
    swim.set_meta(b"role=web", start)
    out: list[object] = swim.drain()
    now = start
    end = start + seconds
    while now < end:
        swim.handle_timers(now)
        out += swim.drain()
        now += 0.05
    return out


def our_push_pulls(outputs: list[object], swim: Swim) -> list[PushPull]:
    """The push/pull states we sent, decoded as a peer would."""
    states = []
    for o in outputs:
        if isinstance(o, OpenStream) and o.purpose is StreamPurpose.PUSH_PULL:
            dec = StreamDecoder(label=swim.label, keyring=swim.keyring, expect_label_header=True)
            msg = dec.feed(o.data) or dec.feed_eof()
            assert isinstance(msg, PushPull)
            states.append(msg)
    return states


def our_payload(pp: PushPull, name: str = "a") -> tuple[int, bytes]:
    state = userdata.decode(pp.user_state, limits.MAX_USER_MSG_BYTES)
    assert isinstance(state, userdata.State)
    return state.payloads[name]


def dropped(swim: Swim, reason: str) -> int:
    return swim.stats().get(f"dropped_{reason}", 0)


# ---- finding 1: integers that overflow when bumped past --------------------


def test_the_crash_datagram_is_dropped_and_our_payload_still_encodes():
    a = core()
    crash = user_payload("a", 2**64 - 1, b"x")
    assert len(crash) == 18  # the datagram of the report
    a.receive_datagram(crash, SRC, 0.5)
    assert dropped(a, "user_invalid") == 1
    out = drive(a, 40.0)
    states = our_push_pulls(out, a)
    assert states, "no push/pull was sent"
    version, data = our_payload(states[-1])
    assert data == b"status-2" and version < 2**32


@pytest.mark.parametrize("version", [2**63 - 1, 2**63 - 2**32])
def test_a_payload_of_ours_too_close_to_the_top_is_not_jumped_past(version):
    a = core()
    a.receive_datagram(user_payload("a", version, b"forged"), SRC, 0.5)
    assert dropped(a, "payload_version_overflow") == 1
    assert a.payloads()["a"] == (1, b"status-1")
    states = our_push_pulls(drive(a, 40.0), a)
    assert our_payload(states[-1]) == (2, b"status-2")


def test_a_payload_of_ours_from_before_a_restart_is_still_jumped_past():
    a = core()
    a.receive_datagram(user_payload("a", 5_000, b"old"), SRC, 0.5)
    assert a.payloads()["a"] == (5_001, b"status-1")
    # Well below the top, still in range after jumping: accepted.
    high = limits.PAYLOAD_VERSION_MAX - limits.PAYLOAD_VERSION_HEADROOM
    a.receive_datagram(user_payload("a", high, b"old"), SRC, 0.6)
    assert a.payloads()["a"] == (high + 1, b"status-1")
    states = our_push_pulls(drive(a, 40.0), a)
    assert our_payload(states[-1]) == (high + 2, b"status-2")


def test_a_push_pull_carrying_absurd_versions_and_incarnations_is_refused_in_part():
    a = core()
    state = userdata._pack(userdata.Kind.STATE, {"p": {"a": [2**64 - 1, b"x"]}, "u": b""})
    nodes = (PushNodeState("b", IP, 7001, b"", 2, NodeStateCode.ALIVE, VSN),
             PushNodeState("a", IP, 7000, b"", 2**32 - 1, NodeStateCode.SUSPECT, VSN))
    reply = stream_in(a, wire.encode(PushPull(False, nodes, state)))
    assert reply is not None
    # Our reply is a valid push/pull: we could not refute at the top
    # incarnation, and the out-of-range payload version was refused.
    dec = StreamDecoder(label=b"", keyring=None, expect_label_header=False)
    assert isinstance(dec.feed(reply) or dec.feed_eof(), PushPull)
    assert dropped(a, "incarnation_overflow") == 1
    assert dropped(a, "user_state_invalid") == 1
    assert a.member("b").incarnation == 2
    states = our_push_pulls(drive(a, 40.0), a)
    assert our_payload(states[-1])[1] == b"status-2"


def test_an_accusation_at_the_top_incarnation_cannot_crash_us():
    a = core()
    a.receive_datagram(datagram(a, wire.encode(Suspect(2**32 - 2, "a", "b"))), SRC, 0.5)
    assert a.incarnation == 2**32 - 1  # refuted, at the top
    a.receive_datagram(datagram(a, wire.encode(Suspect(2**32 - 1, "a", "b"))), SRC, 0.6)
    assert dropped(a, "incarnation_overflow") == 1
    out = drive(a, 40.0)  # includes set_meta, which can no longer bump
    assert a.incarnation == 2**32 - 1
    assert a.stats()["incarnation_exhausted"] == 1
    assert our_push_pulls(out, a)


def test_decoded_integers_are_range_checked_at_decode():
    for body in ([("a"), -1, b""], ["a", 2**63, b""], ["a", True, b""]):
        with pytest.raises(userdata.UserDataError):
            userdata.decode(bytes((userdata.MAGIC, userdata.Kind.PAYLOAD)) + msgpack.packb(body), 4096)
    with pytest.raises(userdata.UserDataError):
        userdata.decode(userdata.encode_broadcast("a", 2**63, b""), 4096)
    with pytest.raises(DecodeError):
        compound.decode_messages(b"\x03" + pack_go({"Incarnation": 2**32, "Node": "a", "From": "b"}))


def test_an_alive_with_an_oversized_version_field_is_refused():
    a = core()
    a.receive_datagram(datagram(a, wire.encode(Alive(1, "c", IP, 7002, b"", VSN + (0,) * 60_000))), SRC, 0.5)
    assert a.member("c") is None
    assert a.stats()["alive_invalid"] == 1


# ---- finding 5a: payloads only for members, under a count cap ---------------


def test_payloads_for_names_that_are_not_members_are_not_kept():
    a = core()
    for i in range(2_000):
        a.receive_datagram(user_payload(f"fake-{i}", 1, b"p" * 900), SRC, 0.5)
    assert len(a.payloads()) <= 2 + limits.STRANGER_PAYLOADS_MAX
    assert dropped(a, "payload_not_member") == 2_000 - limits.STRANGER_PAYLOADS_MAX
    # The few kept in case their member's alive was late are forgotten.
    out = drive(a, limits.STRANGER_PAYLOAD_KEEP_S + 10)
    assert set(a.payloads()) == {"a"}
    assert len(our_push_pulls(out, a)[-1].user_state) < 4096


def test_a_push_pull_of_25000_fake_payloads_does_not_grow_our_state():
    a = core()
    # (with the report's 1 KB payloads the stream itself is refused: it is
    # far more than a member of a two-member cluster can honestly send)
    fake = {f"fake-{i}": (1, b"p" * 8) for i in range(25_000)}
    stream_in(a, wire.encode(PushPull(False, (), userdata.encode_state(fake, b""))))
    assert len(a.payloads()) <= 2 + limits.STRANGER_PAYLOADS_MAX
    assert dropped(a, "payload_not_member") == 25_000 - limits.STRANGER_PAYLOADS_MAX


def test_payloads_are_capped_even_for_members():
    a = core()
    n = limits.PAYLOADS_MAX + 100
    nodes = tuple(PushNodeState(f"m{i}", IP, 8000 + i % 1000, b"", 1, NodeStateCode.ALIVE, VSN)
                  for i in range(n))
    payloads = {f"m{i}": (1, b"p") for i in range(n)}
    stream_in(a, wire.encode(PushPull(False, nodes, userdata.encode_state(payloads, b""))))
    assert len(a.payloads()) == limits.PAYLOADS_MAX
    assert dropped(a, "payloads_full") == n + 1 - limits.PAYLOADS_MAX


def test_made_up_members_are_capped():
    a = core()
    n = limits.MEMBERS_MAX + 100
    nodes = tuple(PushNodeState(f"m{i}", IP, 8000 + i % 1000, b"", 1, NodeStateCode.ALIVE, VSN)
                  for i in range(n))
    stream_in(a, wire.encode(PushPull(False, nodes, b"")))
    assert len(a.members()) == limits.MEMBERS_MAX
    assert dropped(a, "members_full") == n + 2 - limits.MEMBERS_MAX
    a.receive_datagram(datagram(a, wire.encode(Alive(1, "one-more", IP, 7002, b"", VSN))), SRC, 0.5)
    assert a.member("one-more") is None
    assert dropped(a, "members_full") == n + 3 - limits.MEMBERS_MAX


# ---- finding 5b: the decode caches take only small canonical messages -------


def retained_after(fn) -> int:
    compound._GOSSIP_MEMO.clear()
    wire._NODE_STATE_MEMO.clear()
    tracemalloc.start()
    try:
        fn()
        return tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()


def test_alives_with_60kb_of_unknown_fields_do_not_fill_the_decode_cache():
    a = core()

    def flood():
        for i in range(2_000):
            body = pack_go({"Addr": IP, "Incarnation": 2 + i, "Meta": b"", "Node": "b", "Port": 7001,
                            "Vsn": bytes(VSN), "Zzz": i.to_bytes(4, "big") * 15_000})
            a.receive_datagram(datagram(a, b"\x04" + body), SRC, 0.5)

    assert retained_after(flood) < 16 * 1024 * 1024  # was 115 MiB
    assert a.member("b").incarnation == 2_001  # still understood, as Go does
    assert compound._GOSSIP_MEMO.total_bytes <= limits.MEMO_MAX_BYTES


def test_node_states_with_unknown_fields_do_not_fill_the_decode_cache():
    a = core()

    def flood():
        for i in range(300):
            st = pack_go({"Addr": IP, "Incarnation": 2 + i, "Meta": b"", "Name": "b", "Port": 7001,
                          "State": 0, "Vsn": bytes(VSN), "Zzz": i.to_bytes(4, "big") * 15_000})
            msg = b"\x06" + pack_go({"Join": False, "Nodes": 1, "UserStateLen": 0}) + st
            stream_in(a, msg)

    assert retained_after(flood) < 8 * 1024 * 1024
    assert a.member("b").incarnation == 301


def test_old_alive_memory_is_bounded_in_bytes():
    a = core()
    name, meta = "n" * 500, b"m" * 512
    a.receive_datagram(datagram(a, wire.encode(Alive(100_000, name, IP, 7002, meta, VSN))), SRC, 0.5)
    for inc in range(20_000):  # each a distinct, valid, old alive of ~1.1 KB
        a.receive_datagram(datagram(a, wire.encode(Alive(inc, name, IP, 7002, meta, VSN))), SRC, 0.6)
    assert sum(map(len, a._members.old_alive)) <= limits.OLD_ALIVE_MAX_BYTES  # was 22 MB
    assert a.member(name).incarnation == 100_000


def test_big_user_messages_of_gossiped_kinds_are_not_remembered():
    a = core()

    def flood():
        for i in range(300):
            body = userdata.encode_broadcast("b", i, i.to_bytes(4, "big") * 15_000)
            a.receive_datagram(datagram(a, b"\x08" + body), SRC, 0.5)

    assert retained_after(flood) < 2 * 1024 * 1024  # was 18 MB
    assert dropped(a, "user_too_large") == 300


# ---- finding 5c: decompression of one datagram is capped far below streams ---


def test_a_small_datagram_cannot_inflate_to_megabytes():
    a = core()
    bomb = wire.compress_message(b"\x08" + bytes(4 << 20))
    assert len(bomb) < 8_000
    tracemalloc.start()
    try:
        a.receive_datagram(datagram(a, bomb), SRC, 0.5)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert dropped(a, "too_large") == 1
    assert peak < 1 << 20  # was over 4 MiB (and 40 MiB for the report's bomb)


def test_decompression_is_capped_per_datagram_not_per_wrapper():
    a = core()
    part = wire.compress_message(b"\x08" + b"\xee" * 40_000)  # one honest-sized part
    a.receive_datagram(datagram(a, compound.make_compound([part] * 100)), SRC, 0.5)
    # The first part fits the datagram's budget; the rest are refused.
    assert a.stats()["user_foreign"] == 1


# ---- finding 5d: encrypted streams are bounded before authentication --------


def test_an_encrypted_frame_over_the_inbound_bound_is_refused_from_its_header():
    a = core(keyring=keyring())
    dec = a.stream_decoder(incoming=True)
    header = b"\x0a" + (limits.MAX_PUSH_STATE_BYTES - 1).to_bytes(4, "big")
    with pytest.raises(DecodeError) as e:
        dec.feed(header)  # before: buffered up to 20 MiB waiting for the rest
    assert e.value.reason == "too_large"
    assert a.inbound_stream_max_bytes() < 5 * 1024 * 1024


def test_a_small_plain_stream_cannot_inflate_to_40_mib():
    a = core()
    inner = b"\x08" + pack_go({"UserMsgLen": GoInt(12 << 20)}) + bytes(12 << 20)
    bomb = wire.compress_message(inner)
    assert len(bomb) < 24_000
    dec = a.stream_decoder(incoming=True)
    tracemalloc.start()
    try:
        with pytest.raises(DecodeError) as e:
            dec.feed(bomb)  # before: a 12 MiB user message
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert e.value.reason == "too_large"
    # Output stops at twice the inbound bound (~8 MiB here); the LZW table
    # holds about as much again.
    assert peak < 24 << 20


def test_the_inbound_bound_admits_an_honest_push_pull_of_a_large_cluster():
    ring = keyring()
    a = core(keyring=ring)
    n = 4_000
    nodes = tuple(PushNodeState(f"m{i}", IP, 8000 + i % 1000, b"r" * 200, 1, NodeStateCode.ALIVE, VSN)
                  for i in range(n))
    payloads = {f"m{i}": (1, b"p" * 1000) for i in range(n)}
    # We know the members (gossip told us), and a member of our cluster
    # sends its state with their payloads: more than the minimum bound.
    assert stream_in(a, wire.encode(PushPull(False, nodes, b""))) is not None
    big = wire.encode(PushPull(False, nodes, userdata.encode_state(payloads, b"")))
    assert len(big) > limits.INBOUND_STREAM_MIN_BYTES
    assert stream_in(a, big) is not None
    assert len(a.payloads()) == n + 1
    assert a.inbound_stream_max_bytes() > len(big)
    # A dialed stream's reply is read with memberlist's cap.
    reply = seal_stream(big, label=b"", keyring=ring, compress=False, write_label=False)
    fresh = core(keyring=ring)
    dec = fresh.stream_decoder(incoming=False)
    assert isinstance(dec.feed(reply), PushPull)


def test_drops_are_reported_as_events_too():
    a = core()
    a.receive_datagram(user_payload("a", 2**64 - 1, b"x"), SRC, 0.5)
    assert [o for o in a.drain() if isinstance(o, PacketDropped)] == [PacketDropped("user_invalid", SRC)]

