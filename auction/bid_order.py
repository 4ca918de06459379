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
release: so a call waits at most WAIT_SHARE of its round's time to live
(`due`: the owner answers it then, scored as before this rule) and leaves
the rest for the answer to arrive.  An open bid stops
blocking when its coordinator leaves our view (`forget_gone`) or its
reservation expires.

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
WAIT_SHARE = 0.6    # of a call's ttl_s: at most 0.3 s with the default 0.5 s


@dataclass(frozen=True, slots=True)
class _Waiting:
    call: CallForBids
    answer_at: float    # answered then even if an earlier round is still open


class BidOrder:
    def __init__(self) -> None:
        self._open: dict[str, tuple[str, float]] = {}   # auction id -> (coordinator, reservation expiry)
        self._waiting: list[_Waiting] = []

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
        self._waiting.append(_Waiting(call, now + call.ttl_s * WAIT_SHARE))

    def answered_after(self, call: CallForBids) -> set[str]:
        """Our open spread bids in rounds that sort after this call's: we
        answered them first because this call came late."""
        return {auction_id for auction_id in self._open if auction_id > call.auction_id}

    def bid_open(self, call: CallForBids, until: float) -> None:
        """We bid in this spread round; our reservation lasts until `until`."""
        self._open[call.auction_id] = (call.coordinator, until)

    def resolved(self, auction_id: str) -> None:
        """Its award or release arrived."""
        self._open.pop(auction_id, None)

    def forget_gone(self, alive: set[str]) -> None:
        """Open bids whose coordinators are gone block nothing any more."""
        for auction_id in [a for a, (coordinator, _) in self._open.items() if coordinator not in alive]:
            del self._open[auction_id]

    def next_ready(self, now: float) -> CallForBids | None:
        """The waiting call to answer now, if any: the one with the smallest
        id once nothing open sorts before it, or one whose wait is up.  The
        caller answers it without asking `must_wait` again, then asks for
        the next."""
        if not self._waiting:
            return None
        self._expire(now)
        overdue = [w for w in self._waiting if w.answer_at <= now]
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
        return min((w.answer_at for w in self._waiting), default=None)

    def waiting(self) -> int:
        return len(self._waiting)

    def _expire(self, now: float) -> None:
        for auction_id in [a for a, (_, until) in self._open.items() if until <= now]:
            del self._open[auction_id]
