"""Status records pulled from a random peer (node.core.status_sync): what
is offered, answered and merged, and what a quiet cluster sends (nothing)."""

from __future__ import annotations

import random

import msgpack
import pytest

from node.core import wire
from node.core.config import ClusterConfig
from node.core.status_sync import RECORDS_PER_EXCHANGE, StatusSync

CFG = ClusterConfig(status_sync_active_s=20.0)


def make(name="a"):
    sent: list[tuple[str, wire.NodeMessage]] = []
    counts: dict[str, int] = {}
    sync = StatusSync(name, random.Random(1), CFG, send=lambda peer, msg, now: sent.append((peer, msg)),
                      count=lambda what: counts.__setitem__(what, counts.get(what, 0) + 1))
    return sync, sent, counts


def test_a_quiet_cluster_sends_nothing_and_a_moving_one_offers_its_versions_to_one_live_peer():
    sync, sent, _ = make()
    payloads = {"a": (3, b"A"), "b": (7, b"B")}
    sync.tick(payloads, ["a", "b", "c"], now=10.0)
    assert sent == []  # no other node's record has reached us: nothing to mend
    sync.moved(now=10.0)
    sync.tick(payloads, ["a", "b", "c"], now=11.0)
    [(peer, msg)] = sent
    assert peer in ("b", "c")  # never ourselves
    assert msg == wire.StatusVersions((("a", 3), ("b", 7)))
    sent.clear()
    sync.tick(payloads, ["a", "b", "c"], now=10.0 + CFG.status_sync_active_s + 0.1)
    assert sent == []  # records stopped moving long enough ago
    sync.tick(payloads, ["a"], now=12.0)
    assert sent == []  # nobody else alive


def test_a_peer_answers_with_what_it_holds_newer_and_asks_for_what_it_lacks():
    sync, sent, _ = make("b")
    mine = {"a": (3, b"A3"), "b": (7, b"B7"), "c": (2, b"C2")}
    sync.on_versions("x", (("a", 5), ("b", 7), ("c", 1), ("d", 4)), mine, now=1.0)
    assert sent == [("x", wire.StatusRecords((("c", 2, b"C2"),), ("a", "d")))]
    sent.clear()
    sync.on_versions("x", (("a", 3), ("b", 7), ("c", 2)), mine, now=1.0)
    assert sent == []  # the same versions: nothing to say


def test_records_received_are_merged_and_the_wanted_ones_sent_back():
    sync, sent, counts = make()
    merged: list[tuple[str, int, bytes]] = []
    mine = {"a": (4, b"A4"), "d": (9, b"D9")}
    sync.on_records("b", (("c", 2, b"C2"),), ("a", "d", "zz"), mine,
                    lambda n, v, d, now: merged.append((n, v, d)), now=1.0)
    assert merged == [("c", 2, b"C2")]
    assert counts == {"status_records_pulled": 1}
    assert sent == [("b", wire.StatusRecords((("a", 4, b"A4"), ("d", 9, b"D9")), ()))]


def test_an_exchange_is_bounded_however_much_differs():
    sync, sent, _ = make()
    mine = {f"n{i:04d}": (2, b"x" * 200) for i in range(1000)}
    theirs = tuple((f"m{i:04d}", 1) for i in range(1000))
    sync.on_versions("x", theirs, mine, now=1.0)
    [(_, msg)] = sent
    assert isinstance(msg, wire.StatusRecords)
    assert len(msg.records) == RECORDS_PER_EXCHANGE and len(msg.want) == RECORDS_PER_EXCHANGE
    assert len(wire.encode(msg)) < 64 * 1024


@pytest.mark.parametrize("raw", [
    [wire.KIND_STATUS_VERSIONS, [["a", -1]]],
    [wire.KIND_STATUS_VERSIONS, [["a", (1 << 64) - 1]]],
    [wire.KIND_STATUS_VERSIONS, [["a"]]],
    [wire.KIND_STATUS_VERSIONS, "nope"],
    [wire.KIND_STATUS_VERSIONS, [[7, 1]]],
    [wire.KIND_STATUS_RECORDS, [["a", 1, b"x" * 2000]], []],
    [wire.KIND_STATUS_RECORDS, [["a", 1, "text"]], []],
    [wire.KIND_STATUS_RECORDS, [], [5]],
    [wire.KIND_STATUS_RECORDS, [], "a"],
])
def test_malformed_status_messages_are_refused(raw):

    with pytest.raises(wire.WireError):
        wire.decode(msgpack.packb(raw, use_bin_type=True), 1024)
