"""max_per_node across concurrent auctions (auction.node_limit): a node bids
for a job's slots only up to the limit counting the slots it reserved for
other auctions of the job, accepts no award past it, and a holder over it
gives the extra slots back, the highest first."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from auction.bidder import Bidder
from auction.claims import Ballot, Claim
from auction.ledger import Ledger
from auction.messages import Award, Bid, CallForBids, Decline, Release
from auction.node_limit import to_give_up
from auction.resources import Resources
from auction.spec import JobSpec, validate

GiB = 1 << 30
CAPACITY = Resources(8000, 16 * GiB)


def job(name: str, replicas: int = 5, max_per_node: int | None = 1, strategy: str = "spread") -> JobSpec:
    extra = {} if max_per_node is None else {"max_per_node": max_per_node}
    return validate({"name": name, "image": "busybox", "replicas": replicas, "cpu": 0.1,
                     "memory": "64MiB", "strategy": strategy, **extra})


WEB = job("web")


def call(auction_id: str, spec: JobSpec, slots: list[int], coord: str = "coord") -> CallForBids:
    return CallForBids(auction_id, coord, spec.name, spec.container_hash(), tuple(sorted(slots)), 0.5)


def bid(bidder: Bidder, c: CallForBids, spec: JobSpec, now: float = 0.0) -> Bid | Decline:
    return bidder.on_call(c, spec=spec, spec_hash=spec.container_hash(), labels={}, eligible=True,
                          ineligible_reason="", already=0, now=now)


def award(bidder: Bidder, auction_id: str, spec: JobSpec, *indices: int,
          now: float = 0.05) -> tuple[list[tuple[int, int]], list[int]]:
    a = Award(auction_id, "coord", spec.name, spec.container_hash(), tuple((i, 1) for i in indices))
    return bidder.on_award(a, spec=spec, now=now)


def test_two_coordinators_auctioning_two_slots_at_once_cannot_both_win_the_same_node():
    # Slots 0 and 3 of one job have different coordinators, whose rounds
    # overlap: the node reserved for the first, so it declines the second.
    bidder = Bidder("n1", Ledger(CAPACITY))
    first = bid(bidder, call("a:1", WEB, [0], coord="c1"), WEB)
    second = bid(bidder, call("b:1", WEB, [3], coord="c2"), WEB, now=0.01)
    assert isinstance(first, Bid) and len(first.scores) == 1
    assert isinstance(second, Decline) and second.reason == "max_per_node=1 reached"
    # Even an award the second coordinator sends anyway is refused.
    assert award(bidder, "a:1", WEB, 0) == ([(0, 1)], [])
    assert award(bidder, "b:1", WEB, 3) == ([], [3])
    assert set(bidder.ledger.committed) == {"web/0"} and not bidder.ledger.reservations


def test_a_released_round_frees_the_job_for_the_next():
    bidder = Bidder("n1", Ledger(CAPACITY))
    assert isinstance(bid(bidder, call("a:1", WEB, [0, 1]), WEB), Bid)
    assert isinstance(bid(bidder, call("b:1", WEB, [2]), WEB), Decline)
    bidder.on_release(Release("a:1", "coord"))          # a:1 went elsewhere
    again = bid(bidder, call("b:2", WEB, [2]), WEB, now=0.02)
    assert isinstance(again, Bid) and len(again.scores) == 1


def test_a_late_award_whose_reservation_expired_does_not_go_past_the_limit():
    # a:1's reservation expired; the node then reserved for b:1.  a:1's late
    # award still fits (nothing committed), so it is taken; b:1's is then refused.
    bidder = Bidder("n1", Ledger(CAPACITY))
    assert isinstance(bid(bidder, call("a:1", WEB, [0]), WEB), Bid)
    assert isinstance(bid(bidder, call("b:1", WEB, [3]), WEB, now=5.0), Bid)
    assert award(bidder, "a:1", WEB, 0, now=5.1) == ([(0, 1)], [])
    assert award(bidder, "b:1", WEB, 3, now=5.1) == ([], [3])
    assert list(bidder.ledger.committed) == ["web/0"] and not bidder.ledger.reservations


def test_jobs_without_max_per_node_bid_in_every_round_as_before():
    free = job("free", max_per_node=None)
    bidder = Bidder("n1", Ledger(CAPACITY))
    assert isinstance(bid(bidder, call("a:1", free, [0]), free), Bid)
    assert isinstance(bid(bidder, call("b:1", free, [3]), free), Bid)
    assert award(bidder, "a:1", free, 0)[0] and award(bidder, "b:1", free, 3)[0]


def claim(key: str, node: str = "n1") -> Claim:
    return Claim(key, Ballot(1, "c"), node, False, "h", Resources(100, GiB))


def test_a_holder_over_the_limit_keeps_the_lowest_slots_and_gives_back_the_rest():
    mine = {k: claim(k) for k in ("web/4", "web/1", "web/3", "api/0", "api/7", "free/0", "free/1")}
    specs = {"web": job("web", max_per_node=1), "api": job("api", replicas=4, max_per_node=1),
             "free": job("free", max_per_node=None)}
    # web keeps slot 1; api/7 is beyond replicas (a scale-down releases it),
    # so api is within its limit; free has no limit.
    assert [c.name for c in to_give_up(mine, specs)] == ["web/4", "web/3"]
    specs["web"] = job("web", max_per_node=2)
    assert [c.name for c in to_give_up(mine, specs)] == ["web/4"]
    assert to_give_up(mine, {}) == []   # a job not known here: nothing to judge by


JOBS = [job("web", max_per_node=1), job("api", max_per_node=2), job("free", max_per_node=None)]


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["call", "award", "release", "stop"]),
                          st.integers(0, 2), st.lists(st.integers(0, 4), min_size=1, max_size=3),
                          st.floats(0, 1.0)), max_size=40))
def test_no_interleaving_of_auctions_puts_more_than_max_per_node_replicas_on_a_node(
        ops: list[tuple[str, int, list[int], float]]) -> None:
    bidder = Bidder("n", Ledger(CAPACITY))
    ledger = bidder.ledger
    now, auctions = 0.0, []  # (auction id, its job's spec)
    for op, j, slots, dt in ops:
        spec, now = JOBS[j], now + dt
        if op == "call":
            auctions.append((f"a{len(auctions)}", spec))
            answer = bid(bidder, call(auctions[-1][0], spec, sorted(set(slots))), spec, now=now)
            if isinstance(answer, Bid) and spec.max_per_node is not None:
                mine = {k for k in ledger.committed if k.startswith(f"{spec.name}/")}
                assert len(answer.scores) <= spec.max_per_node - len(mine)
        elif op == "award" and auctions:
            auction_id, of = auctions[j % len(auctions)]
            award(bidder, auction_id, of, *sorted(set(slots)), now=now)
        elif op == "release" and auctions:
            bidder.on_release(Release(auctions[j % len(auctions)][0], "coord"))
        elif op == "stop":
            ledger.release(f"{spec.name}/{slots[0]}")
        ledger.expire(now)
        for of in JOBS:
            if of.max_per_node is None:
                continue
            committed = [k for k in ledger.committed if k.startswith(f"{of.name}/")]
            assert len(committed) <= of.max_per_node, (of.name, committed)
