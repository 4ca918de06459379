"""Cluster time (node.core.cluster_clock): the estimate, and what the core does with it.

The estimate is the median of the live peers' clock offsets (plus ours at 0);
the core stamps, admits and judges ages in its raw wall clock plus the
correction, so a node whose clock is far off neither stamps writes its
peers refuse nor refuses theirs.
"""

from __future__ import annotations

import random

import msgpack
import pytest

from node.core.cluster_clock import (
    CORRECT_FROM_MS,
    MAX_CORRECTION_MS,
    MAX_SAMPLE_AGE_S,
    QUORUM_MAX,
    ClockAheadError,
    ClusterClock,
    decode_state,
    encode_state,
)
from node.core.hlc import Stamp
from node.core.inputs import Datagram, WriteJob
from node.core.jobstore import Entry
from node.core.outputs import StateRefused
from test_core_contract import FORGER, Link, _forged, _spec, _write

PEERS = ("a", "b", "c", "d")
EPOCH_S = 1_764_900_000  # the wall clock at the link's time 0 (December 2025)


def _clock(offsets_ms: dict[str, int], now: float = 100.0, live=PEERS) -> ClusterClock:
    clock = ClusterClock()
    for peer, offset in offsets_ms.items():
        clock.sample(peer, 1_000_000 + offset, 1_000_000, now)
    clock.update(live, now)
    return clock


def test_the_estimate_is_the_median_of_the_peers_and_ourselves():
    clock = _clock({"a": 90_000, "b": 91_000, "c": 89_000, "d": 90_500})  # we run 90 s behind
    assert clock.estimate_ms == 90_000  # median of 0, 89, 90, 90.5, 91 s
    assert clock.correction_ms == 90_000 and clock.peers == 4
    assert "90 s behind" in clock.problem()


def test_a_lying_minority_cannot_move_it():
    honest = {"a": 10, "b": -20}
    liars = {"c": 10 ** 12, "d": 10 ** 12}
    clock = _clock(honest | liars)
    assert clock.correction_ms == 0 and clock.problem() is None  # median of 0, -20 ms, 10 ms, liars


def test_a_majority_of_liars_moves_it_at_most_by_the_cap():
    clock = _clock({p: 10 ** 12 for p in PEERS})
    assert clock.correction_ms == MAX_CORRECTION_MS


def test_without_samples_or_with_peers_that_send_none_the_raw_clock_is_used():
    assert _clock({}).correction_ms == 0
    assert _clock({}).to_json(60_000) == {"offset_s": 0.0, "corrected_by_s": 0.0, "peers": 0, "problem": None}
    # An older peer sends no user state at all; another protocol's state is not ours.
    assert decode_state(b"") is None
    assert decode_state(b"\x53\x04garbage") is None


def test_gossip_delays_change_nothing():
    clock = _clock({"a": -300, "b": -250, "c": -400, "d": CORRECT_FROM_MS - 1})
    assert clock.correction_ms == 0 and clock.problem() is None
    assert clock.write_refusal(60_000) is None


@pytest.mark.parametrize("seed", range(20))
def test_every_node_that_heard_the_same_clocks_reaches_the_same_cluster_time(seed):
    # Clocks spread as a long chaos run leaves them (each up to 2 minutes
    # off): every node's corrected clock is the same, so a stamp one admits,
    # all admit.  Taking of two middle values the one nearer our own clock
    # instead split a 4-node cluster into +51 s and -30 s.
    rng = random.Random(seed)
    raw_ms = {f"n{i}": rng.randrange(-120_000, 120_000) for i in range(rng.choice((2, 3, 4, 5, 8)))}
    corrected = set()
    for me, mine in raw_ms.items():
        clock = ClusterClock()
        for peer, theirs in raw_ms.items():
            if peer != me:
                clock.sample(peer, theirs, mine, 0.0)
        clock.update(set(raw_ms) - {me}, 0.0)
        corrected.add(mine + clock.estimate_ms)
    assert max(corrected) - min(corrected) <= 1  # integer halves


def test_an_estimate_needs_samples_of_more_than_half_of_the_live_peers():
    assert _clock({"a": 120_000}).estimate_ms == 0  # one of four: it may be the broken one
    assert _clock({"a": 120_000, "b": 120_000}).estimate_ms == 0  # two of four
    assert _clock({"a": 120_000, "b": 120_000, "c": 120_000}).estimate_ms == 120_000
    assert _clock({"a": 120_000}, live=("a",)).estimate_ms == 60_000  # two nodes meet halfway
    clock = _clock({p: 90_000 for p in PEERS})
    clock.update(("a", "b", "c", "d", "e", "f", "g", "h", "i"), 101.0)  # four of nine: it holds
    assert clock.estimate_ms == 90_000 and clock.correction_ms == 90_000
    many = [f"p{i}" for i in range(999)]
    assert _clock({p: 90_000 for p in many[:QUORUM_MAX]}, live=many).estimate_ms == 90_000  # a large cluster
    assert _clock({"a": 120_000, "b": -120_000, "c": 30}).estimate_ms == 15  # one fast, one slow: stays


def test_only_fresh_samples_of_live_peers_count():
    clock = ClusterClock()
    clock.sample("a", -400_000, 100_000, now=0.0)  # 500 s behind, long ago
    clock.sample("b", -400_000, 100_000, now=500.0)  # from our future: our clock stepped back
    clock.sample("gone", 200_000, 100_000, now=90.0)
    clock.sample("c", 200_000, 100_000, now=90.0)
    clock.sample("d", 200_000, 100_000, now=91.0)
    clock.sample("e", 200_000, 100_000, now=92.0)
    clock.update({"a", "b", "c", "d", "e"}, now=MAX_SAMPLE_AGE_S + 1)
    assert clock.peers == 3  # c, d and e only (gone is no member): a quorum of five
    assert clock.estimate_ms == 100_000


def test_a_clock_ahead_beyond_the_cap_refuses_writes_with_a_clear_reason():
    clock = _clock({p: -(MAX_CORRECTION_MS + 120_000) for p in PEERS})
    assert clock.ahead_ms == 120_000
    why = clock.write_refusal(60_000)
    assert why is not None and "120 s ahead" in why and "NTP" in why and "another agent" in why
    assert clock.to_json(60_000)["offset_s"] == (MAX_CORRECTION_MS + 120_000) / 1000
    # Behind beyond the cap: our stamps are not ahead, writes go on.
    assert _clock({p: MAX_CORRECTION_MS + 120_000 for p in PEERS}).write_refusal(60_000) is None


@pytest.mark.parametrize("data", [
    msgpack.packb({"w": -1}), msgpack.packb({"w": 1 << 63}), msgpack.packb({"w": "1"}),
    msgpack.packb({"w": True}), msgpack.packb({"w": 1.5}), msgpack.packb([1, 2]), msgpack.packb({}),
    msgpack.packb({(1,): 2}, use_bin_type=True) if False else b"\x81\x91\x01\x02",  # a list as a key
    b"\xc1", msgpack.packb({"w": 1}) + b"\x00", msgpack.packb({"w": 1, "pad": "x" * 300}),
])
def test_a_malformed_state_is_not_ours(data):
    assert decode_state(data) is None


def test_the_state_round_trips_and_tolerates_later_fields():
    assert decode_state(encode_state(1_733_400_000_000)) == 1_733_400_000_000
    assert decode_state(msgpack.packb({"w": 5, "later": [1, 2]})) == 5


# ---- the core

def _skewed_link() -> Link:
    """n0 honest, n1's clock 2 minutes ahead, n2's 2 minutes behind."""
    link = Link(3)
    for core, off_s in zip(link.cores, (0, 120, -120), strict=True):
        core.wall_offset_s = EPOCH_S + off_s
    link.join_all()
    link.run(60.0)  # push/pulls (every 15 s here) carry every pair's clocks
    return link


def test_a_slow_node_admits_honest_writes_and_a_fast_nodes_writes_land_everywhere():
    link = _skewed_link()
    assert [c.cluster_clock.correction_ms // 1000 for c in link.cores] == [0, -120, 120]
    for i in range(3):
        link.take(i)
    (done,) = _write(link, 0, "honest", _spec("honest"), 1)
    (done_fast,) = _write(link, 1, "fast", _spec("fast"), 2)
    assert done.superseded_by is None and done_fast.superseded_by is None
    link.run(2.0)
    for core in link.cores:
        assert core.view.job("honest").stamp == done.entry.stamp
        assert core.view.job("fast").stamp == done_fast.entry.stamp
    assert not [o for i in range(3) for o in link.take(i) if isinstance(o, StateRefused)]


def test_a_forged_far_future_stamp_is_still_refused_by_the_slow_node():
    link = _skewed_link()
    ten_minutes_ahead_ms = int((EPOCH_S + link.now) * 1000) + 600_000  # of cluster time
    for i in range(3):
        link.take(i)
        link.feed(i, Datagram(_forged(Entry("forged", Stamp(ten_minutes_ahead_ms, 0, "evil"), _spec("f"))), FORGER))
        assert StateRefused("job", "forged", "n1", "stamp_ahead") in link.take(i)
    assert all(c.view.job("forged") is None for c in link.cores)


def test_a_node_too_far_ahead_refuses_a_write_and_says_why():
    link = Link(3)
    for core, off_s in zip(link.cores, (0, (MAX_CORRECTION_MS + 120_000) / 1000, 0), strict=True):
        core.wall_offset_s = EPOCH_S + off_s
    link.join_all()
    link.run(60.0)
    assert link.cores[1].view.cluster_clock()["problem"].startswith("this node's clock is 120 s ahead")
    with pytest.raises(ClockAheadError, match="write through another agent"):
        link.feed(1, WriteJob("web", _spec("web"), 1))
    (done,) = _write(link, 0, "web", _spec("web"), 2)  # the other agent writes
    assert done.superseded_by is None
