"""A bidder answers spread rounds one at a time, in auction-id order
(auction.bid_order): a call waits only for open bids of rounds that sort
before it, is answered once they close, or when its share of its time to
live is up."""

from __future__ import annotations

import random

from auction.bid_order import DEFER_EXTRA_TTLS, MAX_WAITING, WAIT_SHARE, BidOrder
from auction.messages import Award, Bid, CallForBids, Deferred, Release
from auction.placement import Placement, PlacementConfig
from auction.resources import Resources
from auction.spec import JobSpec, validate
from gossip.lww import LwwMap
from node.core.status import NodeStatus

GiB = 1 << 30


def call(auction_id: str, job: str = "web", ttl_s: float = 0.5) -> CallForBids:
    return CallForBids(auction_id, "c", job, "h", (0,), ttl_s)


def test_a_call_waits_only_for_an_open_bid_that_sorts_before_it():
    order = BidOrder()
    order.bid_open(call("b:1"), until=2.0)
    assert order.must_wait(call("c:1"), now=0.0)
    assert not order.must_wait(call("a:1"), now=0.0)   # never for a later round: no cycle
    order.resolved("b:1")
    assert not order.must_wait(call("c:1"), now=0.0)


def test_waiting_calls_come_back_smallest_first_once_nothing_open_precedes_them():
    order = BidOrder()
    order.bid_open(call("a:1"), until=2.0)
    for aid in ("d:1", "b:1", "c:1"):
        assert order.must_wait(call(aid), now=0.0)
        order.wait(call(aid), now=0.0)
    assert order.next_ready(now=0.01) is None          # a:1 still open
    order.resolved("a:1")
    first = order.next_ready(now=0.02)
    assert first is not None and first.auction_id == "b:1"
    order.bid_open(call("b:1"), until=2.0)                   # we bid in it: the others wait again
    assert order.next_ready(now=0.02) is None
    order.resolved("b:1")
    assert [order.next_ready(now=0.03).auction_id for _ in range(2)] == ["c:1", "d:1"]
    assert order.next_ready(now=0.03) is None


def test_a_call_waits_a_share_of_its_ttl_behind_a_round_not_known_alive():
    # A coordinator that died after its call sends neither award nor
    # release: the calls behind its open bid are answered anyway, in time
    # for their own rounds.
    order = BidOrder()
    order.bid_open(call("a:1"), until=1.5)
    order.wait(call("c:1", ttl_s=0.5), now=0.0)
    order.wait(call("b:1", ttl_s=0.5), now=0.01)
    assert order.due() == 0.5 * WAIT_SHARE < 0.5
    assert order.next_ready(now=0.5 * WAIT_SHARE - 0.001) is None
    assert order.next_ready(now=0.5 * WAIT_SHARE).auction_id == "c:1"
    assert order.next_ready(now=0.5 * WAIT_SHARE + 0.005) is None      # b:1 is due 0.01 s later
    assert order.next_ready(now=0.5 * WAIT_SHARE + 0.01).auction_id == "b:1"
    assert order.waiting() == 0 and order.due() is None


def test_behind_extended_rounds_a_call_waits_as_long_as_they_stay_open():
    # The rounds of a stack form a chain (module docstring): a round whose
    # coordinator says it waits for deferred bidders (RoundExtended) is alive
    # and moving, and a call behind it waits up to DEFER_EXTRA_TTLS more.
    order = BidOrder()
    order.bid_open(call("a:1"), until=2.0, now=0.0)
    order.wait(call("c:1", ttl_s=0.5), now=0.0)
    assert order.due() == 0.5 * WAIT_SHARE
    order.extended("a:1")
    order.extended("z:9")                          # no open bid of ours: nothing
    longest = 0.5 * (WAIT_SHARE + DEFER_EXTRA_TTLS)
    assert order.due() == longest
    assert order.next_ready(now=longest - 0.001) is None
    # A fresh bid of ours behind it, not confirmed yet, gets WAIT_SHARE from
    # when we made it (its coordinator's word may be on the way).
    order.bid_open(call("b:1"), until=2.0, now=0.6)
    assert order.due() == 0.6 + 0.5 * WAIT_SHARE
    order.extended("b:1")
    assert order.due() == longest
    order.resolved("a:1")
    order.resolved("b:1")
    assert order.next_ready(now=0.9).auction_id == "c:1"      # both closed: at once


def test_an_open_bid_stops_blocking_when_its_reservation_expires():
    order = BidOrder()
    order.bid_open(call("a:1"), until=1.5)
    assert order.must_wait(call("b:1"), now=1.0)
    assert not order.must_wait(call("b:1"), now=1.5)


def test_a_bid_whose_coordinator_is_gone_blocks_nothing():
    order = BidOrder()
    order.bid_open(CallForBids("a:1", "dead", "web", "h", (0,), 0.5), until=1.5)
    order.wait(call("b:1"), now=0.0)
    order.forget_gone({"c", "n1"})
    ready = order.next_ready(now=0.01)
    assert ready is not None and ready.auction_id == "b:1"


def test_waiting_calls_are_bounded():
    order = BidOrder()
    order.bid_open(call("a"), until=10.0)
    for k in range(MAX_WAITING):
        assert order.must_wait(call(f"b{k:04d}"), now=0.0)
        order.wait(call(f"b{k:04d}"), now=0.0)
    assert not order.must_wait(call("z"), now=0.0)     # answered at once, as before the rule


# ---- through the placement: spread calls wait, binpack ones do not --------------

def _spec(name: str, strategy: str) -> JobSpec:
    return validate({"name": name, "image": "busybox", "replicas": 1, "cpu": 1, "memory": "1GiB",
                     "strategy": strategy})


def _call(aid: str, spec: JobSpec) -> CallForBids:
    return CallForBids(aid, "c", spec.name, spec.container_hash(), (0,), 0.5, b"", 1)


def test_a_spread_call_is_answered_after_the_earlier_rounds_award_and_scored_on_it():
    # Two one-replica spread jobs' rounds open at once on idle nodes: the
    # second is answered after the first round's award, so the node that
    # won it bids lower and the other node wins the second job.
    p = Placement("n1", Resources(4000, 8 * GiB), random.Random(0), PlacementConfig(), claims=LwwMap(1000),
                  ballot_id="n1#1")
    status = NodeStatus("n1", Resources(4000, 8 * GiB), Resources(0, 0))
    first, second = _spec("a", "spread"), _spec("b", "spread")
    bid1 = p.on_call(_call("c#1:1", first), spec=first, status=status, now=0.0)
    assert isinstance(bid1, Bid)
    assert p.on_call(_call("c#1:2", second), spec=second, status=status, now=0.001) == Deferred("c#1:2", "n1")
    assert p.bid_order.next_ready(now=0.002) is None
    p.on_award(Award("c#1:1", "c#1", "a", first.container_hash(), ((0, 1),)), spec=first, now=0.003)
    waited = p.bid_order.next_ready(now=0.003)
    assert waited is not None and waited.auction_id == "c#1:2"
    bid2 = p.on_call(waited, spec=second, status=status, now=0.003, waited=True)
    assert isinstance(bid2, Bid) and bid2.scores[0] < bid1.scores[0]   # a core committed to a/0
    # A release lets waiting calls through too.
    third = _spec("c", "spread")
    assert isinstance(p.on_call(_call("c#1:3", third), spec=third, status=status, now=0.004), Deferred)
    p.on_release(Release("c#1:2", "c"))
    assert p.bid_order.next_ready(now=0.005) is not None


def test_a_call_that_came_after_a_later_round_was_answered_is_scored_with_that_bid_counted():
    # Rounds opened at the same moment reach a node in any order: its own
    # round's call (no network) first, then a call that sorts before it.
    # That one is answered at once, but the node has already offered its
    # room to the later round: it counts that reservation, or it bid as
    # idle in both and won both (ten one-replica spread services over five
    # nodes: 3 on one node and 1 on another, in 11 of 12 seeds).
    p = Placement("n1", Resources(4000, 8 * GiB), random.Random(0), PlacementConfig(), claims=LwwMap(1000),
                  ballot_id="n1#1")
    status = NodeStatus("n1", Resources(4000, 8 * GiB), Resources(0, 0))
    late, own, in_order = _spec("a", "spread"), _spec("b", "spread"), _spec("c", "spread")
    own_bid = p.on_call(_call("t5.n1#1:1", own), spec=own, status=status, now=0.0)
    late_bid = p.on_call(_call("t5.n0#1:1", late), spec=late, status=status, now=0.001)
    assert isinstance(own_bid, Bid) and isinstance(late_bid, Bid)
    assert late_bid.scores[0] < own_bid.scores[0]
    # Only rounds answered out of order count: a call answered in order
    # (here after a release) is scored on what is committed, as before.
    p.on_release(Release("t5.n0#1:1", "n0"))
    p.on_release(Release("t5.n1#1:1", "n1"))
    fresh = p.on_call(_call("t5.n2#1:1", in_order), spec=in_order, status=status, now=0.002)
    assert isinstance(fresh, Bid) and fresh.scores == own_bid.scores


def test_a_binpack_call_never_waits():
    p = Placement("n1", Resources(4000, 8 * GiB), random.Random(0), PlacementConfig(), claims=LwwMap(1000),
                  ballot_id="n1#1")
    status = NodeStatus("n1", Resources(4000, 8 * GiB), Resources(0, 0))
    spread, packed = _spec("a", "spread"), _spec("b", "binpack")
    assert isinstance(p.on_call(_call("c#1:1", spread), spec=spread, status=status, now=0.0), Bid)
    assert isinstance(p.on_call(_call("c#1:2", packed), spec=packed, status=status, now=0.0), Bid)


def test_the_ledger_is_untouched_by_a_waiting_call():
    p = Placement("n1", Resources(4000, 8 * GiB), random.Random(0), PlacementConfig(), claims=LwwMap(1000),
                  ballot_id="n1#1")
    status = NodeStatus("n1", Resources(4000, 8 * GiB), Resources(0, 0))
    first, second = _spec("a", "spread"), _spec("b", "spread")
    p.on_call(_call("c#1:1", first), spec=first, status=status, now=0.0)
    before = dict(p.ledger.reservations)
    assert isinstance(p.on_call(_call("c#1:2", second), spec=second, status=status, now=0.0), Deferred)
    assert p.ledger.reservations == before
