"""The coordinator's side of a round (auction.auctioneer): calls go to the
candidates, bids and declines come back, the round closes when all have
answered or at its deadline, winners get one Award each, losers a Release,
and the RoundClosed says what was placed and why the rest was not.  Then
placement's backoff for slots a round could not place."""

from __future__ import annotations

import random

from auction.auctioneer import MAX_OPEN_ROUNDS, Auctioneer, RoundClosed, SendTo
from auction.bid_order import DEFER_EXTRA_TTLS
from auction.messages import Award, Bid, CallForBids, Decline, Deferred, Release, RoundExtended
from auction.placement import Placement, PlacementConfig
from auction.placement_outputs import SlotPending
from auction.resources import Resources
from auction.spec import validate
from gossip.lww import LwwMap
from node.core.hlc import Stamp
from node.core.jobstore import Entry
from node.core.status import NodeStatus

GiB = 1 << 30


def open_web(a: Auctioneer, candidates: list[str], rounds: dict[int, int] | None = None,
             now: float = 0.0, max_per_node: int | None = None) -> list[object]:
    return list(a.open_round(job="web", spec_hash="h", rounds=rounds or {0: 1, 1: 1},
                             candidates=candidates, max_per_node=max_per_node, spread_counts={},
                             ttl_s=0.5, now=now, spec_json=b"{}"))


def sent(outs: list[object], kind: type) -> dict[str, object]:
    return {o.node: o.msg for o in outs if isinstance(o, SendTo) and isinstance(o.msg, kind)}


def closed(outs: list[object]) -> RoundClosed:
    [rc] = [o for o in outs if isinstance(o, RoundClosed)]
    return rc


def test_opening_a_round_calls_every_candidate_for_the_batch():
    a = Auctioneer("c", ballot_id="c#7")
    outs = open_web(a, ["n2", "n1"], rounds={3: 2, 1: 5})
    calls = sent(outs, CallForBids)
    assert list(calls) == ["n1", "n2"]
    call = calls["n1"]
    assert call == CallForBids("c#7:1", "c", "web", "h", (1, 3), 0.5, b"{}")
    assert a.busy_slots("web") == {1, 3} and a.busy_slots("db") == set()
    assert a.next_deadline() == 0.5


def test_the_round_closes_when_everyone_has_answered_and_awards_the_best_bids():
    a = Auctioneer("c", ballot_id="c#7")
    open_web(a, ["n1", "n2", "n3"], rounds={0: 4, 1: 6})
    assert a.on_bid(Bid("c#7:1", "n1", (0.2, 0.1), None, 0), now=0.1) == []
    assert a.on_bid(Bid("c#7:1", "n2", (0.9,), None, 0), now=0.1) == []
    outs = a.on_bid(Bid("c#7:1", "n3", (0.1,), None, 0), now=0.2)
    # n2's 0.9 takes slot 0; slot 1 goes to n1 (0.2 beats n3's 0.1).
    assert sent(outs, Award) == {
        "n2": Award("c#7:1", "c#7", "web", "h", ((0, 4),)),
        "n1": Award("c#7:1", "c#7", "web", "h", ((1, 6),)),
    }
    assert sent(outs, Release) == {"n3": Release("c#7:1", "c")}
    rc = closed(outs)
    assert rc.awarded == {0: ("n2", 4), 1: ("n1", 6)} and rc.unplaced == ()
    assert rc.silent == () and rc.declines == {}
    assert a.open_rounds() == 0 and a.busy_slots("web") == set()


def test_a_round_spread_over_nodes_counts_each_bidder_as_its_own_domain():
    # An agent older than the per-node rule bids without a domain; its
    # offers would all count as one domain "" and take replicas in turn
    # with the others.  The coordinator knows each bidder is its own.
    a = Auctioneer("c")
    outs = a.open_round(job="web", spec_hash="h", rounds={0: 1, 1: 1, 2: 1}, candidates=["a", "b", "c"],
                        max_per_node=None, spread_counts={"c": 2}, ttl_s=0.5, now=0.0, by_node=True)
    aid = next(iter(sent(outs, CallForBids).values())).auction_id
    a.on_bid(Bid(aid, "a", (0.9, 0.8), None, 0), now=0.1)
    a.on_bid(Bid(aid, "b", (0.5, 0.4), None, 0), now=0.1)
    outs = a.on_bid(Bid(aid, "c", (0.99, 0.98), "c", 2), now=0.1)
    # a and b hold none, c two: a, b, then the better of a and b again.
    assert closed(outs).awarded == {0: ("a", 1), 1: ("b", 1), 2: ("a", 1)}


def test_max_per_node_limits_what_one_bidder_wins():
    a = Auctioneer("c")
    open_web(a, ["n1"], max_per_node=1)
    rc = closed(a.on_bid(Bid("c:1", "n1", (0.5, 0.4), None, 0), now=0.1))
    assert rc.awarded == {0: ("n1", 1)} and rc.unplaced == (1,)


def test_declines_close_the_round_with_their_reasons_and_nothing_awarded():
    a = Auctioneer("c")
    open_web(a, ["n1", "n2"])
    a.on_decline(Decline("c:1", "n1", "drained"), now=0.1)
    outs = a.on_decline(Decline("c:1", "n2", "needs 1 cpu; free 0"), now=0.1)
    assert sent(outs, Award) == {} and sent(outs, Release) == {}
    rc = closed(outs)
    assert rc.awarded == {} and rc.unplaced == (0, 1)
    assert rc.declines == {"n1": "drained", "n2": "needs 1 cpu; free 0"}


def test_at_the_deadline_the_round_closes_with_whoever_answered_and_names_the_silent():
    a = Auctioneer("c")
    open_web(a, ["n1", "n2", "n3"], now=10.0)
    a.on_bid(Bid("c:1", "n1", (0.5,), None, 0), now=10.1)
    a.on_decline(Decline("c:1", "n2", "filtered by rack == b"), now=10.1)
    assert a.handle_timers(now=10.4) == []
    outs = a.handle_timers(now=10.5)
    rc = closed(outs)
    assert rc.awarded == {0: ("n1", 1)} and rc.unplaced == (1,)
    assert rc.declines == {"n2": "filtered by rack == b"} and rc.silent == ("n3",)
    assert a.next_deadline() is None
    # A bid that arrives after the round closed places nothing; it gets a
    # Release so that n3's reservation frees up at once.  A winner's copy
    # of its bid (a duplicated datagram) gets nothing: its award stands.
    assert a.on_bid(Bid("c:1", "n3", (0.9,), None, 0), now=10.6) == [SendTo("n3", Release("c:1", "c"))]
    assert a.on_bid(Bid("c:1", "n1", (0.5,), None, 0), now=10.6) == []
    assert a.on_bid(Bid("c:9", "n3", (0.9,), None, 0), now=10.6) == []   # never ours
    assert a.on_bid(Bid("c:1", "intruder", (0.9,), None, 0), now=10.6) == []   # never called


def test_a_deferred_bidder_keeps_the_round_open_for_a_bounded_while():
    # A bidder answering earlier spread rounds first says so (auction.bid_order):
    # the round waits for it up to DEFER_EXTRA_TTLS more of its ttl, once.
    # Bidders in the round hear of it (RoundExtended): calls of theirs behind
    # this round may wait as long.
    a = Auctioneer("c")
    open_web(a, ["n1", "n2", "n3"], now=10.0)
    a.on_bid(Bid("c:1", "n1", (0.5,), None, 0), now=10.1)
    assert a.on_deferred(Deferred("c:1", "n1"), now=10.1) == []       # answered already: changes nothing
    assert a.on_deferred(Deferred("c:1", "intruder"), now=10.1) == []  # never called: ignored
    assert a.next_deadline() == 10.5
    assert a.on_deferred(Deferred("c:1", "n2"), now=10.1) == [SendTo("n1", RoundExtended("c:1", "c"))]
    assert a.on_deferred(Deferred("c:1", "n3"), now=10.2) == []        # once: no further
    latest = 10.0 + 0.5 * (1 + DEFER_EXTRA_TTLS)
    assert a.next_deadline() == latest
    assert a.handle_timers(now=10.5) == [] and a.open_rounds() == 1
    # n2's bid comes after the first deadline, and it hears of the extension
    # too; n3 (dead, say) never answers.
    assert a.on_bid(Bid("c:1", "n2", (0.9,), None, 0), now=11.0) == [SendTo("n2", RoundExtended("c:1", "c"))]
    outs = a.handle_timers(now=latest)
    rc = closed(outs)
    assert rc.awarded == {0: ("n2", 1), 1: ("n1", 1)} and rc.silent == ("n3",)
    assert a.next_deadline() is None


def test_a_round_whose_deferred_bidders_all_answer_closes_at_once():
    a = Auctioneer("c")
    open_web(a, ["n1", "n2"], now=0.0)
    a.on_deferred(Deferred("c:1", "n2"), now=0.01)
    a.on_bid(Bid("c:1", "n1", (0.5,), None, 0), now=0.02)
    rc = closed(a.on_bid(Bid("c:1", "n2", (0.6,), None, 0), now=0.7))
    assert rc.awarded == {0: ("n2", 1), 1: ("n1", 1)}
    assert a.next_deadline() is None and a.handle_timers(now=5.0) == []


def _spread_round_at_its_deadline(hold: bool) -> RoundClosed:
    # A job spread over nodes; c already runs one of its replicas, n1 and
    # n2 none.  c and n1 bid for both slots; n2 says nothing.
    a = Auctioneer("c")
    a.open_round(job="web", spec_hash="h", rounds={1: 1, 2: 1}, candidates=["c", "n1", "n2"],
                 max_per_node=None, spread_counts={"c": 1}, ttl_s=0.5, now=0.0, spec_json=b"{}",
                 by_node=True, hold_for_silent=hold)
    a.on_bid(Bid("c:1", "c", (0.9, 0.8), "c", 1), now=0.01)
    a.on_bid(Bid("c:1", "n1", (0.5, 0.4), "n1", 0), now=0.2)
    return closed(a.handle_timers(now=0.5))


def test_a_spread_round_holds_slots_for_silent_nodes_rather_than_double_up():
    rc = _spread_round_at_its_deadline(hold=True)
    # n1 (none yet) takes one; the other would be a second on c or n1 while
    # n2, which runs none, has not answered: it waits for the retry.
    assert rc.awarded == {1: ("n1", 1)} and rc.unplaced == (2,) and rc.silent == ("n2",)
    assert rc.held and "held for them" in rc.pending_reason()


def test_a_spread_round_without_the_hold_places_on_whoever_answered():
    rc = _spread_round_at_its_deadline(hold=False)
    assert rc.awarded == {1: ("n1", 1), 2: ("c", 1)} and not rc.held


def test_a_bidder_counts_the_replicas_it_holds_when_the_coordinator_has_not_heard_of_them():
    # n1 won one of the job's replicas a moment ago; its claim has not
    # reached the coordinator (spread_counts says none), but its bid says so.
    a = Auctioneer("c")
    a.open_round(job="web", spec_hash="h", rounds={2: 1}, candidates=["n1", "n2"], max_per_node=None,
                 spread_counts={}, ttl_s=0.5, now=0.0, spec_json=b"{}", by_node=True)
    a.on_bid(Bid("c:1", "n1", (0.9,), "n1", 1), now=0.01)
    outs = a.on_bid(Bid("c:1", "n2", (0.1,), "n2", 0), now=0.02)
    assert closed(outs).awarded == {2: ("n2", 1)}


def test_answers_from_outside_the_round_are_ignored():
    a = Auctioneer("c")
    open_web(a, ["n1"])
    assert a.on_bid(Bid("c:1", "intruder", (1.0,), None, 0), now=0.1) == []
    assert a.on_decline(Decline("c:2", "n1", "no such round"), now=0.1) == []
    assert a.open_rounds() == 1


def test_a_round_without_candidates_closes_at_once_with_every_slot_unplaced():
    a = Auctioneer("c")
    rc = closed(open_web(a, []))
    assert rc.unplaced == (0, 1) and rc.declines == {} and rc.silent == ()
    assert a.open_rounds() == 0


def test_auction_ids_are_unique_per_run_and_open_rounds_are_bounded():
    a = Auctioneer("c", ballot_id="c#1")
    ids = set()
    for i in range(MAX_OPEN_ROUNDS):
        [call] = sent(open_web(a, ["n1"], rounds={i: 1}), CallForBids).values()
        ids.add(call.auction_id)
    assert len(ids) == MAX_OPEN_ROUNDS
    assert open_web(a, ["n1"], rounds={MAX_OPEN_ROUNDS: 1}) == []


def test_declines_that_differ_only_by_the_decliners_name_are_one_line():
    from auction.auctioneer import RoundClosed

    pulled = "recently failed here: image app:2 could not be pulled on {n}: manifest unknown"
    rc = RoundClosed("x:1", "web", "h", {}, (0,), {n: pulled.format(n=n) for n in ("node-1", "node-2", "node-3")}
                     | {"a": "user 'root' is not allowed on a", "b": "filtered by rack == b",
                        "c": "filtered by rack == b"}, ())
    assert rc.pending_reason() == (
        "3 declined (node-1, node-2, node-3): recently failed here: image app:2 could not be pulled on each: "
        "manifest unknown; 2 declined: filtered by rack == b; 1 declined: user 'root' is not allowed on a")
    # A port another process holds on a node: "... in use on node node-2".
    port = "host port 127.0.0.1:80 (http) is already in use on node {n}"
    rc = RoundClosed("x:2", "web", "h", {}, (0,), {n: port.format(n=n) for n in ("node-1", "node-2")}, ())
    assert rc.pending_reason() == ("2 declined (node-1, node-2): host port 127.0.0.1:80 (http) is already in use "
                                   "on each")


# ---- backoff of slots a round could not place (auction.placement) -----------------

SPEC_JSON = validate({"name": "web", "image": "busybox", "cpu": 1, "memory": "1GiB"}).canonical_json()


def test_an_unplaced_slot_is_retried_after_a_backoff_that_doubles_up_to_the_cap():
    cfg = PlacementConfig(min_backoff_s=0.5, max_backoff_s=1.5)
    p = Placement("a", Resources(4000, 8 * GiB), random.Random(0), cfg, claims=LwwMap(100))
    jobs = {"web": Entry("web", Stamp(1, 0, "a"), SPEC_JSON)}
    statuses = {"a": NodeStatus("a", Resources(4000, 8 * GiB), Resources(0, 0))}
    # (A decline for room is retried at once a few times first: auction.retry.)
    reason = "1 declined: filtered by rack == b"

    def tick(now: float) -> list[object]:
        outs, _ = p.tick(jobs=jobs, deleted=set(), statuses=statuses, alive={"a"}, now=now)
        return list(outs)

    now = 0.0
    outs = tick(now)
    delays = []
    for _ in range(4):
        [call] = sent(outs, CallForBids).values()
        rc = closed(p.auctioneer.on_decline(Decline(call.auction_id, "a", "filtered by rack == b"), now=now))
        assert p.on_round_closed(rc, now) == [SlotPending("web/0", reason)]
        assert p.pending_reasons == {"web/0": reason}  # what `shoal job status` shows
        t = now
        while not sent(outs := tick(t := t + 0.25), CallForBids):
            pass
        delays.append(t - now)
        now = t
    assert delays == [0.5, 1.0, 1.5, 1.5]


def test_auction_ids_sort_by_when_their_rounds_opened_across_coordinators():
    # auction.bid_order answers spread rounds in id order: a round opened
    # later by "node-1" must not sort before one opened earlier by "node-9".
    early, late = Auctioneer("node-9"), Auctioneer("node-1")
    early.order_ms, late.order_ms = 1_765_000_000_000, 1_765_000_000_040
    first = next(iter(sent(open_web(early, ["a"]), CallForBids).values())).auction_id
    second = next(iter(sent(open_web(late, ["a"]), CallForBids).values())).auction_id
    assert first < second
    assert next(iter(sent(open_web(Auctioneer("n"), ["a"]), CallForBids).values())).auction_id == "n:1"
