"""auction.preemption: which replicas a higher-priority one takes the room of, and how a bid says so."""

from __future__ import annotations

from auction.preemption import Candidate, may_preempt, pick_victims
from auction.resources import Resources

MiB = 1 << 20


def r(cpu_millis: int, mib: int = 0) -> Resources:
    return Resources(cpu_millis, mib * MiB)


def test_only_replicas_ten_or_more_below_may_be_preempted():
    assert may_preempt(80, 70) and may_preempt(60, 1)
    assert not may_preempt(80, 71) and not may_preempt(50, 50)


def test_the_fewest_lowest_priority_replicas_that_make_room():
    cands = [Candidate("a/0", 40, r(500)), Candidate("b/0", 10, r(200)), Candidate("b/1", 10, r(300)),
             Candidate("c/0", 75, r(900))]                                   # c: too close to 80
    assert [c.slot for c in pick_victims(r(400), r(100), 80, cands)] == ["b/1"]          # lowest priority, larger
    assert sorted(c.slot for c in pick_victims(r(500), r(100), 80, cands)) == ["b/0", "b/1"]
    # b alone is not enough: a goes too, and b/0 is then not needed
    assert sorted(c.slot for c in pick_victims(r(800), r(100), 80, cands)) == ["a/0", "b/1"]
    assert pick_victims(r(2000), r(100), 80, cands) is None                  # c/0 may not go
    assert pick_victims(r(100), r(100), 80, cands) == []                     # it fits already


def test_memory_counts_as_cpu_does():
    cands = [Candidate("a/0", 10, r(100, 512)), Candidate("a/1", 10, r(900, 64))]
    assert [c.slot for c in pick_victims(r(100, 500), r(500, 100), 80, cands)] == ["a/0"]


# ---- a replicated job's preempting bid (auction.ledger, auction.auctioneer, the wire)

def test_a_preempting_reservation_takes_its_victims_room_once_and_gives_it_back_unused():
    from auction.ledger import Ledger

    led = Ledger(r(1000, 1000))
    assert led.commit("batch/0", r(500, 100), 0.0) and led.commit("batch/1", r(500, 100), 0.0)
    assert led.reserve_preempting("a1", "web/0", r(500, 100), 2.0, 0.0, ("batch/0",))
    assert led.free(0.1) == r(0, 800) and led.promised() == {"batch/0"}
    # the same victim is not promised twice; another one may be
    assert not led.reserve_preempting("a2", "api/0", r(500, 100), 2.0, 0.1, ("batch/0",))
    assert led.reserve_preempting("a2", "api/0", r(500, 100), 2.0, 0.1, ("batch/1",))
    assert not led.reserve("a3", ["x/0"], r(1, 0), 2.0, 0.2)             # nothing else gets that room
    # unawarded, it expires: the victims count again, untouched
    assert led.free(2.2) == r(0, 800) and led.reservations == {}
    assert led.promised() == set() and set(led.committed) == {"batch/0", "batch/1"}
    # awarded: the victim goes, the slot is committed, never over capacity
    assert led.reserve_preempting("a4", "web/0", r(500, 100), 2.0, 3.0, ("batch/1",))
    assert led.victims_of("web/0") == ("batch/1",)
    assert led.commit("web/0", r(500, 100), 3.1)
    assert set(led.committed) == {"batch/0", "web/0"} and led.free(3.1) == r(0, 800)


def test_a_round_takes_a_preempting_bid_only_when_no_bid_fits():
    from auction.auctioneer import Auctioneer, RoundClosed, SendTo
    from auction.messages import Bid, CallForBids, Release

    def round_with(bids: list[Bid], may_preempt: bool = True) -> list[object]:
        a = Auctioneer("c")
        outs = a.open_round(job="web", spec_hash="h", rounds={0: 1}, candidates=[b.bidder for b in bids],
                            max_per_node=None, spread_counts={}, ttl_s=0.5, now=0.0, spec_json=b"{}",
                            may_preempt=may_preempt)
        aid = next(o.msg for o in outs if isinstance(o, SendTo) and isinstance(o.msg, CallForBids)).auction_id
        out: list[object] = []
        for b in bids:
            out += a.on_bid(Bid(aid, b.bidder, b.scores, b.spread_value, b.already, b.preempts), now=0.1)
        return out

    # n2 would score better, but it would stop a replica: n1 fits, n1 wins, n2 is released
    outs = round_with([Bid("", "n1", (0.1,), None, 0), Bid("", "n2", (0.9,), None, 0, preempts=1)])
    [closed] = [o for o in outs if isinstance(o, RoundClosed)]
    assert closed.awarded == {0: ("n1", 1)}
    assert [o.node for o in outs if isinstance(o, SendTo) and isinstance(o.msg, Release)] == ["n2"]
    # nobody fits: the preempting bid that stops the fewest (its score) wins
    outs = round_with([Bid("", "n1", (-2.02,), None, 0, preempts=2), Bid("", "n2", (-1.02,), None, 0, preempts=1)])
    [closed] = [o for o in outs if isinstance(o, RoundClosed)]
    assert closed.awarded == {0: ("n2", 1)}
    # a rebalancing move's round: a better spread is no reason to stop replicas
    outs = round_with([Bid("", "n2", (-1.02,), None, 0, preempts=1)], may_preempt=False)
    [closed] = [o for o in outs if isinstance(o, RoundClosed)]
    assert closed.awarded == {} and [o.node for o in outs if isinstance(o, SendTo) and isinstance(o.msg, Release)] \
        == ["n2"]


def test_a_bid_says_it_preempts_only_when_it_does():
    from auction.messages import Bid
    from node.core import wire

    import msgpack

    fits, preempts = Bid("a1", "n1", (0.5,), None, 0), Bid("a1", "n1", (-1.02,), "rack-a", 3, preempts=2)
    assert len(msgpack.unpackb(wire.encode(fits))) == 6          # what older agents read
    assert wire.decode(wire.encode(fits), 65536) == fits
    assert wire.decode(wire.encode(preempts), 65536) == preempts
