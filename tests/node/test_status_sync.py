"""Status records pulled from a random peer (node.core.status_sync): what
is offered, answered and merged, and what a quiet cluster sends (nothing)."""

from __future__ import annotations

import random

import msgpack
import pytest

from node.core import wire
from gossip.config import LAN
from node.core.config import ClusterConfig
from node.core.status_sync import RECORDS_PER_EXCHANGE, StatusSync

CFG = ClusterConfig(status_sync_active_s=20.0)


class FakeSwim:
    """The parts of gossip.swim.Swim the exchange uses: payloads held, members known."""

    def __init__(self, payloads=None, members=(), strangers=()):
        self.held = dict(payloads or {})
        self.known = set(members)
        self.stranger_names = list(strangers)
        self.merged: list[tuple[str, int, bytes]] = []
        self.told: list[tuple[str, tuple[str, ...]]] = []
        self.config = LAN

    def payloads(self):
        return dict(self.held)

    def merge_payload(self, node, version, data, now):
        self.merged.append((node, version, data))
        self.held[node] = (version, data)

    def member(self, name):
        return name if name in self.known else None

    def strangers(self, held_for_s, now):
        assert held_for_s == self.config.probe_interval_s
        return self.stranger_names

    def tell_members(self, to, names, now):
        self.told.append((to, tuple(names)))
        return len(names)


def make(name="a", swim=None):
    sent: list[tuple[str, wire.NodeMessage]] = []
    counts: dict[str, int] = {}
    swim = swim or FakeSwim()

    def send(peer, msg, now, *, reliable):
        assert reliable is False  # best effort: a datagram when it fits (node.core.status_sync)
        sent.append((peer, msg))

    sync = StatusSync(name, random.Random(1), CFG, swim, send=send,
                      count=lambda what: counts.__setitem__(what, counts.get(what, 0) + 1))
    return sync, sent, counts


def test_a_quiet_cluster_sends_nothing_and_a_moving_one_offers_its_versions_to_one_live_peer():
    sync, sent, _ = make(swim=FakeSwim({"a": (3, b"A"), "b": (7, b"B")}))
    sync.tick(["a", "b", "c"], now=10.0)
    assert sent == []  # no other node's record has reached us: nothing to mend
    sync.moved(now=10.0)
    sync.tick(["a", "b", "c"], now=11.0)
    [(peer, msg)] = sent
    assert peer in ("b", "c")  # never ourselves
    assert msg == wire.StatusVersions((("a", 3), ("b", 7)))
    sent.clear()
    sync.tick(["a", "b", "c"], now=10.0 + CFG.status_sync_active_s + 0.1)
    assert sent == []  # records stopped moving long enough ago
    sync.tick(["a"], now=12.0)
    assert sent == []  # nobody else alive


def test_a_peer_answers_with_what_it_holds_newer_and_asks_for_what_it_lacks():
    sync, sent, _ = make("b", FakeSwim({"a": (3, b"A3"), "b": (7, b"B7"), "c": (2, b"C2")}))
    sync.on_versions("x", (("a", 5), ("b", 7), ("c", 1), ("d", 4)), now=1.0)
    assert sent == [("x", wire.StatusRecords((("c", 2, b"C2"),), ("a", "d")))]
    sent.clear()
    sync.on_versions("x", (("a", 3), ("b", 7), ("c", 2)), now=1.0)
    assert sent == []  # the same versions: nothing to say


def test_records_received_are_merged_and_the_wanted_ones_sent_back():
    swim = FakeSwim({"a": (4, b"A4"), "d": (9, b"D9")}, members={"a", "b", "c", "d"})
    sync, sent, counts = make(swim=swim)
    sync.on_records("b", (("c", 2, b"C2"),), ("a", "d", "zz"), now=1.0)
    assert swim.merged == [("c", 2, b"C2")]
    assert counts == {"status_records_pulled": 1}
    assert sent == [("b", wire.StatusRecords((("a", 4, b"A4"), ("d", 9, b"D9")), ()))]


def test_a_record_of_a_member_we_lack_names_it_to_the_peer_that_held_it():
    # Gossip missed e's alive here: the peer that had e's record is asked
    # for it, and a peer asked answers with the alives it holds.
    swim = FakeSwim(members={"a", "b", "c"})
    sync, sent, counts = make(swim=swim)
    sync.on_records("b", (("c", 2, b"C2"), ("e", 1, b"E1")), (), now=1.0)
    assert sent == [("b", wire.MembersWanted(("e",)))]
    assert counts["members_wanted"] == 1
    sync.on_message("b", wire.MembersWanted(("c", "e")), now=2.0)
    assert swim.told == [("b", ("c", "e"))]


def test_a_payload_whose_member_never_came_is_named_at_the_next_round():
    swim = FakeSwim({"a": (1, b"A"), "e": (1, b"E")}, members={"a", "b"}, strangers=["e"])
    sync, sent, _ = make(swim=swim)
    sync.moved(now=10.0)
    sync.tick(["a", "b"], now=11.0)
    assert sent == [("b", wire.StatusVersions((("a", 1), ("e", 1)))), ("b", wire.MembersWanted(("e",)))]
    swim.stranger_names = []
    sent.clear()
    sync.tick(["a", "b"], now=13.0)
    assert [type(m) for _, m in sent] == [wire.StatusVersions]  # nobody missing: no question


def test_an_exchange_is_bounded_however_much_differs():
    sync, sent, _ = make(swim=FakeSwim({f"n{i:04d}": (2, b"x" * 200) for i in range(1000)}))
    theirs = tuple((f"m{i:04d}", 1) for i in range(1000))
    sync.on_versions("x", theirs, now=1.0)
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
    [wire.KIND_MEMBERS_WANTED, "a"],
    [wire.KIND_MEMBERS_WANTED, [7]],
    [wire.KIND_MEMBERS_WANTED, [f"n{i}" for i in range(65)]],
    [wire.KIND_MEMBERS_WANTED, ["x" * 5000]],
])
def test_malformed_status_messages_are_refused(raw):

    with pytest.raises(wire.WireError):
        wire.decode(msgpack.packb(raw, use_bin_type=True), 1024)
