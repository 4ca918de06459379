"""A bidder answers the calls of spread jobs one round at a time, in order.

How this works: a `strategy = "spread"` bid is scored on what the node has
committed (auction.bidder: a reservation may lose).  Rounds of different jobs
open at once (a stack of services deployed together) were all answered
before any of them closed, so every node scored the same in every round and
the coordinators' tie orders alone decided: ten 3-replica jobs over five
idle nodes gave 8-9 replicas to two nodes and 2-3 to others.

So, as a late binding: while we hold an open bid (answered, neither awarded
nor released) in a spread round, a call of a spread round whose auction id
sorts after it waits; when the earlier round's award or release arrives,
the waiting calls are answered (`next_ready`), each scored on what the
earlier awards committed.  A call whose id sorts before every open bid is
answered at once, so a call only ever waits for rounds with smaller ids,
which never wait for it: no cycle.  Any total order would do for that, but
a call answered at once because its id sorts first is scored without the
open rounds' awards: auction ids start with the cluster clock at the pass
that opened the round (auction.auctioneer), so "smaller" mostly means
"opened earlier".  (Ids that began with the coordinator's name sent every
round of a node named earlier ahead, and a node answered those at once
behind its own round, which it always hears first: on the testbed the
fullest of 5 nodes still got 7-8 of 30.)  Healthy rounds close within a few
round trips (tens of milliseconds between loaded agents on the testbed,
where 0.125 s of waiting ran out behind a queue of earlier rounds), but a
coordinator that died or stalled after its call sends neither award nor
release: so a call waits a bounded time (`due`: the owner answers it
then, scored as before this rule).  An open bid stops
blocking when its coordinator leaves our view (`forget_gone`) or its
reservation expires.

How long a call may wait.  The rounds of a stack sent at once form a chain
at every node: a round closes once every candidate has answered, and each
answers it only after the round before it closed, one round trip later.
With WAIT_SHARE of the round's ttl alone (0.3 s) the chain ran out at ten
rounds and 10-50 ms between nodes (the loaded testbed's agents, or an edge
site's links): the later calls were answered together without the earlier
rounds' outcome, their rounds closed together, and the fullest of five
nodes held 7-9 of 30 replicas instead of 6 (docs/benchmarks.md, "The
stack on slow links").  So a bidder that defers a call says so
(`Deferred`, the call's answer for now), and its coordinator keeps the
round open up to DEFER_EXTRA_TTLS more of its ttl (auction.auctioneer)
and tells the bidders that have bid in it (`RoundExtended`).  A call waits
that much longer while every open bid of ours that it waits behind is in
such a round (its coordinator is alive and the chain is moving) or was
made less than WAIT_SHARE of a ttl ago (its word may still be on the
way).  Behind a round whose coordinator died (no word) it waits
WAIT_SHARE after the last of those bids, as before: other jobs are not
held up by a dead coordinator's open bids.  A round nobody defers closes
as before; one whose deferring bidder dies waits at most the extension.

Calls do not arrive in id order: rounds opened at the same moment reach a
node in network order, and its own round's call, which needs no network,
first of all.  A call that sorts before one of our open bids has nothing to
wait for and is answered at once; but we already offered that room to the
later round, so the bid counts those reservations
(`answered_after`; auction.bidder) instead of bidding as idle in both and
winning both: ten one-replica spread services sent at once to five nodes
put 3 on one node and 1 on another in 11 of 12 seeds, and now 2 on each.

Bounded: at most MAX_WAITING calls wait; past that a call is answered at
once.
"""

from __future__ import annotations

from dataclasses import dataclass

from .messages import CallForBids

MAX_WAITING = 256
WAIT_SHARE = 0.6    # of a call's ttl_s: at most 0.3 s with the default 0.5 s ...
DEFER_EXTRA_TTLS = 2.0  # ... plus this many ttl_s for a deferred call (the coordinator waits as long)


@dataclass(frozen=True, slots=True)
class _Waiting:
    call: CallForBids
    since: float        # when it came


class BidOrder:
    def __init__(self) -> None:
        self._open: dict[str, tuple[str, float, float]] = {}   # auction id -> (coordinator, reservation expiry, bid at)
        self._waiting: list[_Waiting] = []
        self._extended: set[str] = set()   # open bids whose coordinators keep their rounds open longer

    def must_wait(self, call: CallForBids, now: float) -> bool:
        """Does an open spread bid of ours sort before this spread call?"""
        self._expire(now)
        if len(self._waiting) >= MAX_WAITING:
            return False
        return any(auction_id < call.auction_id for auction_id in self._open)

    def defer(self, call: CallForBids, now: float) -> bool:
        """Keep the call waiting if it must; True if it does."""
        if not self.must_wait(call, now):
            return False
        self.wait(call, now)
        return True

    def wait(self, call: CallForBids, now: float) -> None:
        self._waiting.append(_Waiting(call, now))

    def extended(self, auction_id: str) -> None:
        """Its coordinator keeps the round open for deferred bidders."""
        if auction_id in self._open:
            self._extended.add(auction_id)

    def _answer_at(self, w: _Waiting) -> float:
        """When a waiting call is answered even if an earlier round is
        still open (module docstring, "How long a call may wait")."""
        ttl = w.call.ttl_s
        latest = w.since + ttl * (WAIT_SHARE + DEFER_EXTRA_TTLS)
        unconfirmed = [bid_at for auction_id, (_, _, bid_at) in self._open.items()
                       if auction_id < w.call.auction_id and auction_id not in self._extended]
        if not unconfirmed:
            return latest if any(auction_id < w.call.auction_id for auction_id in self._open) else w.since
        return min(latest, max(w.since, *unconfirmed) + ttl * WAIT_SHARE)

    def answered_after(self, call: CallForBids) -> set[str]:
        """Our open spread bids in rounds that sort after this call's: we
        answered them first because this call came late."""
        return {auction_id for auction_id in self._open if auction_id > call.auction_id}

    def bid_open(self, call: CallForBids, until: float, now: float = float("-inf")) -> None:
        """We bid in this spread round at `now`; our reservation lasts until `until`."""
        self._open[call.auction_id] = (call.coordinator, until, now)

    def resolved(self, auction_id: str) -> None:
        """Its award or release arrived."""
        self._open.pop(auction_id, None)
        self._extended.discard(auction_id)

    def forget_gone(self, alive: set[str]) -> None:
        """Open bids whose coordinators are gone block nothing any more."""
        for auction_id in [a for a, (coordinator, _, _) in self._open.items() if coordinator not in alive]:
            self.resolved(auction_id)

    def next_ready(self, now: float) -> CallForBids | None:
        """The waiting call to answer now, if any: the one with the smallest
        id once nothing open sorts before it, or one whose wait is up.  The
        caller answers it without asking `must_wait` again, then asks for
        the next."""
        if not self._waiting:
            return None
        self._expire(now)
        overdue = [w for w in self._waiting if self._answer_at(w) <= now]
        if overdue:
            chosen = min(overdue, key=lambda w: w.call.auction_id)
        else:
            chosen = min(self._waiting, key=lambda w: w.call.auction_id)
            if any(auction_id < chosen.call.auction_id for auction_id in self._open):
                return None
        self._waiting.remove(chosen)
        return chosen.call

    def due(self) -> float | None:
        """When the earliest waiting call must be answered regardless."""
        return min((self._answer_at(w) for w in self._waiting), default=None)

    def waiting(self) -> int:
        return len(self._waiting)

    def _expire(self, now: float) -> None:
        for auction_id in [a for a, (_, until, _) in self._open.items() if until <= now]:
            self.resolved(auction_id)
