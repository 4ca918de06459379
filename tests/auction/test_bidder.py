"""The bidder's side of an auction: reservations from the node's own ledger,
and awards committed against them."""

from __future__ import annotations

from auction.bidder import Bidder
from auction.ledger import Ledger
from auction.messages import Award, Bid, CallForBids
from auction.resources import Resources
from auction.spec import validate

GiB = 1 << 30
SPEC = validate({"name": "web", "image": "busybox", "replicas": 8, "cpu": 1, "memory": "1GiB"})
OTHER = validate({"name": "db", "image": "busybox", "replicas": 8, "cpu": 1, "memory": "1GiB"})


def call(auction_id, spec, slots, ttl_s=0.5):
    return CallForBids(auction_id, "coord", spec.name, spec.container_hash(), tuple(slots), ttl_s)


def bid(bidder, c, spec, now):
    return bidder.on_call(c, spec=spec, spec_hash=spec.container_hash(), labels={}, eligible=True,
                          ineligible_reason="", already=0, now=now)


def test_an_award_of_other_slots_than_those_reserved_uses_the_auctions_reservations():
    # The coordinator chooses which of a call's slots each winner gets; a
    # node that reserved room for two of them must be able to take any two,
    # even when a concurrent auction has taken the rest of its capacity.
    bidder = Bidder("n1", Ledger(Resources(3000, 8 * GiB, 0)))
    b = bid(bidder, call("a1", SPEC, [0, 1, 2, 3]), SPEC, now=0.0)
    assert isinstance(b, Bid) and len(b.scores) == 3  # room for three: reserved web/0..2
    other = bid(bidder, call("b1", OTHER, [0]), OTHER, now=0.01)
    assert not isinstance(other, Bid)  # full: the reservations hold every core
    accepted, refused = bidder.on_award(Award("a1", "coord", "web", SPEC.container_hash(), ((3, 1), (1, 1))),
                                        spec=SPEC, now=0.05)
    assert accepted == [(3, 1), (1, 1)] and refused == []
    assert set(bidder.ledger.committed) == {"web/3", "web/1"}


def test_what_an_award_leaves_of_its_auctions_reservations_is_freed_at_once():
    bidder = Bidder("n1", Ledger(Resources(3000, 8 * GiB, 0)))
    assert isinstance(bid(bidder, call("a1", SPEC, [0, 1, 2]), SPEC, now=0.0), Bid)
    bidder.on_award(Award("a1", "coord", "web", SPEC.container_hash(), ((2, 1),)), spec=SPEC, now=0.05)
    # One core committed; the other two reservations of a1 are not needed.
    assert bidder.ledger.reservations == {}
    assert isinstance(bid(bidder, call("b1", OTHER, [0, 1]), OTHER, now=0.06), Bid)


def _bid_with_image(spec, has_image):
    bidder = Bidder("n1", Ledger(Resources(4000, 8 * GiB, 0)))
    return bidder.on_call(call("a1", spec, [0, 1]), spec=spec, spec_hash=spec.container_hash(), labels={},
                          eligible=True, ineligible_reason="", already=0, now=0.0, has_image=has_image)


def test_a_node_without_the_image_bids_with_a_pull_cost_on_its_first_replica_only():
    from auction.scoring import PULL_COST
    have, lack, unknown = (_bid_with_image(SPEC, h) for h in (True, False, None))
    assert isinstance(have, Bid) and isinstance(lack, Bid) and isinstance(unknown, Bid)
    assert have.scores == unknown.scores        # an unknown inventory counts as present
    assert lack.scores[0] == have.scores[0] - PULL_COST
    assert lack.scores[1:] == have.scores[1:]   # pulled once per node


def test_a_node_without_the_image_declines_a_pull_never_job_saying_so():
    never = validate({"name": "web", "image": "app:1", "cpu": 1, "memory": "1GiB", "pull": "never"})
    d = _bid_with_image(never, False)
    assert not isinstance(d, Bid) and d.reason == "image app:1 is not on n1 (pull = never)"
    assert isinstance(_bid_with_image(never, True), Bid)


def test_reservations_for_other_open_auctions_do_not_lower_the_score():
    # Five coordinators auction their shares of one spread job at once; a
    # node that already bid in four of them must score the fifth as an
    # untouched node does, or each coordinator (which bids in its own round
    # first) finds itself emptiest and keeps its whole share.
    spread = validate({"name": "web", "image": "busybox", "replicas": 100, "cpu": "10m", "memory": "8MiB",
                       "strategy": "spread"})
    busy, fresh = (Bidder(n, Ledger(Resources(1900, 4 * GiB, 0))) for n in ("n1", "n2"))
    for k in range(4):
        assert isinstance(bid(busy, call(f"a{k}", spread, range(20 * k, 20 * k + 20)), spread, now=0.0), Bid)
    mine, theirs = (bid(b, call("a4", spread, range(80, 100)), spread, now=0.01) for b in (busy, fresh))
    assert isinstance(mine, Bid) and isinstance(theirs, Bid)
    assert mine.scores == theirs.scores
    # What it committed does count: a node running replicas is fuller.
    busy.on_award(Award("a0", "coord", "web", spread.container_hash(), tuple((i, 1) for i in range(20))),
                  spec=spread, now=0.02)
    again = bid(busy, call("a5", spread, [100]), spread, now=0.03)
    assert isinstance(again, Bid) and again.scores[0] < theirs.scores[0]


def test_a_bid_names_the_domain_the_job_spreads_over():
    # A spread job's replicas are evened out per domain first (auction.winner):
    # its label's value, or with strategy = spread and no label the node
    # itself (as auction.rebalance counts them); a binpack job has none.
    rack = validate({"name": "r", "image": "busybox", "replicas": 4, "cpu": 1, "memory": "1GiB", "spread": "rack"})
    spread = validate({"name": "s", "image": "busybox", "replicas": 4, "cpu": 1, "memory": "1GiB",
                       "strategy": "spread"})
    for spec, labels, domain in ((rack, {"rack": "a"}, "a"), (rack, {}, ""), (spread, {"rack": "a"}, "n1"),
                                 (SPEC, {"rack": "a"}, None)):
        b = Bidder("n1", Ledger(Resources(4000, 8 * GiB, 0))).on_call(
            call("a1", spec, [0]), spec=spec, spec_hash=spec.container_hash(), labels=labels, eligible=True,
            ineligible_reason="", already=0, now=0.0)
        assert isinstance(b, Bid) and b.spread_value == domain, (spec.name, labels)
        assert spec.spread_domain("n1", labels) == domain


def test_a_bidder_reserves_no_more_than_the_call_says_it_can_win():
    # Ten 3-replica jobs spread over five idle nodes, in rounds open at
    # once: each gives a node one replica at most (the call's max_wins).
    # Reserving all three in every round ran a 1.9-core node out of room by
    # its seventh round, and it declined rounds it would have won.
    jobs = [validate({"name": f"s{k}", "image": "busybox", "replicas": 3, "cpu": "100m", "memory": "64MiB",
                      "strategy": "spread"}) for k in range(10)]

    def answers(max_wins):
        bidder = Bidder("n1", Ledger(Resources(1900, 2 * GiB, 0)))
        return [bid(bidder, CallForBids(f"a{k}", "coord", spec.name, spec.container_hash(), (0, 1, 2), 0.5, b"",
                                        max_wins), spec, now=0.0) for k, spec in enumerate(jobs)]
    capped = answers(1)
    assert all(isinstance(a, Bid) and len(a.scores) == 1 for a in capped)
    # Without a cap (as a binpack job needs: one node may win them all) the
    # whole batch is reserved, and the last rounds find no room.
    uncapped = answers(None)
    assert [len(a.scores) if isinstance(a, Bid) else 0 for a in uncapped] == [3, 3, 3, 3, 3, 3, 1, 0, 0, 0]
