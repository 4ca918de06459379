"""The coordinator's side of an auction round.

How this works: `open_round` sends a CallForBids for a batch of slots of one
job to the candidate nodes and sets a deadline (the TTL).  Bids and declines
come back; the round closes when every candidate has answered or the deadline
passes, whichever is first.  Closing runs the pure winner choice
(`auction.winner.choose_winners`) over the offers, sends one Award per winning
node, a Release to bidders that won nothing (so their reservations free up
before their TTL), and reports a `RoundClosed` with what was placed and why
the rest was not.  Bids that would preempt replicas count only when no
bid fits without (auction.preemption).  Nothing here waits on anything but its own deadline, so a
lost message or a dead bidder ends the round on time instead of hanging it.
A bidder answering earlier spread rounds first says so (`Deferred`): the
deadline then moves to DEFER_EXTRA_TTLS more of the round's ttl after it
opened, once and no further, and every bidder in the round hears of it
(`RoundExtended`: their calls behind this round may wait as long;
auction.bid_order says why).

A round of a job spread over nodes that closes at its deadline with
candidates still silent may hold slots back (`hold_for_silent`, which the
caller sets only for a slot's first tries: auction.retry): no slot goes to
a node that would then run more of the job than a silent candidate does
(`choose_winners`' level_cap).  On a loaded testbed a stack's last rounds
closed with 3-4 of 5 nodes still answering earlier rounds, and the
coordinator, whose own call needs no network, took a slot of a job it
already ran: a second replica on one node until rebalancing moved it.
The caller retries held slots at once; the silent node is then usually
done with its queue.

A bid for a round that has closed (it came after the deadline) gets a
Release if the bidder was called and won nothing in it (a winner's copy
of its bid changes nothing; anyone else was never in the round): its reservation and its place in
the bidder's answering order (auction.bid_order) free up at once, not at
their TTL.
"""

from __future__ import annotations

import heapq
import re
from dataclasses import dataclass, field

from .bid_order import DEFER_EXTRA_TTLS
from .messages import Award, Bid, CallForBids, Decline, Deferred, Release, RoundExtended
from .winner import Offer, choose_winners

MAX_OPEN_ROUNDS = 1024
CLOSED_REMEMBERED = 1024  # closed rounds whose late bidders get a Release


@dataclass(frozen=True, slots=True)
class SendTo:
    node: str
    msg: CallForBids | Award | Release | RoundExtended


@dataclass(frozen=True, slots=True)
class RoundClosed:
    auction_id: str
    job: str
    spec_hash: str
    awarded: dict[int, tuple[str, int]]  # slot index -> (node, ballot round)
    unplaced: tuple[int, ...]
    declines: dict[str, str]  # bidder -> reason
    silent: tuple[str, ...]  # candidates that never answered
    held: bool = False  # slots an answer could have taken wait for the silent (see the module doc)

    def pending_reason(self) -> str:
        """Why this round left slots pending, for `shoal job status`."""
        if not self.declines and not self.silent and not self.awarded:
            return "no node can fit it (by gossiped free resources and constraints)"
        parts = []
        # Declines that say the same but for the decliner's own name (a pull
        # that failed on every node: "could not be pulled on node-2: ...")
        # are one line naming the nodes, not one long line each.
        groups: dict[str, list[tuple[str, str]]] = {}
        for bidder, r in sorted(self.declines.items()):
            groups.setdefault(_on_each(r, bidder), []).append((bidder, r))
        lines = []
        for general, said in groups.items():
            if len(said) == 1 or all(r == general for _, r in said):
                lines.append((len(said), f"{len(said)} declined: {said[0][1]}"))
            else:
                lines.append((len(said), f"{len(said)} declined ({', '.join(b for b, _ in said)}): {general}"))
        for _, text in sorted(lines, key=lambda x: (-x[0], x[1]))[:3]:
            parts.append(text)
        if self.silent:
            parts.append(f"{len(self.silent)} did not answer")
        if self.held:
            parts.append("held for them rather than doubled up on a node")
        if self.awarded:
            parts.append(f"{len(self.awarded)} placed, {len(self.unplaced)} left over")
        return "; ".join(parts)


def _on_each(reason: str, node: str) -> str:
    """`reason` with " on NODE" / " on node NODE", its sender's own name, as " on each"."""
    return re.sub(rf" on (node )?{re.escape(node)}(?=[\s:;,)]|$)", " on each", reason)


# What the auctioneer asks its caller to do: send a message, or take note
# that a round closed.
AuctionOutput = SendTo | RoundClosed


@dataclass(slots=True)
class _Round:
    auction_id: str
    job: str
    spec_hash: str
    rounds: dict[int, int]
    candidates: set[str]
    max_per_node: int | None
    spread_counts: dict[str, int]
    deadline: float
    latest_s: float             # the deadline a deferral may move it to
    ties_from: str = ""         # choose_winners' `first`
    by_node: bool = False       # every node is its own spread domain
    hold_for_silent: bool = False
    may_preempt: bool = True
    offers: dict[str, Offer] = field(default_factory=dict)
    declines: dict[str, str] = field(default_factory=dict)
    preempting: set[str] = field(default_factory=set)    # bidders that would stop replicas to win


class Auctioneer:
    def __init__(self, name: str, ballot_id: str | None = None) -> None:
        self.name = name  # where bids are sent back
        # Who the ballots (and auction ids) say coordinated: the name plus
        # something unique to this run of the node (see auction.claims), so
        # that a coordinator that restarted, and lost count of the rounds and
        # auction ids it used, never issues the same ones again.
        self.ballot_id = ballot_id or name
        self._rounds: dict[str, _Round] = {}
        self._deadlines: list[tuple[float, str]] = []
        self._seq = 0
        self._closed: dict[str, frozenset[str]] = {}   # auction id -> called, won nothing; oldest first
        # The cluster's wall clock (ms) at this placement pass, if known: auction
        # ids start with it, so they sort by when rounds opened across nodes
        # (auction.bid_order answers spread rounds in that order).
        self.order_ms: int | None = None

    def busy_slots(self, job: str) -> set[int]:
        return {i for r in self._rounds.values() if r.job == job for i in r.rounds}

    def open_rounds(self) -> int:
        return len(self._rounds)

    def open_round(self, *, job: str, spec_hash: str, rounds: dict[int, int], candidates: list[str],
                   max_per_node: int | None, spread_counts: dict[str, int], ttl_s: float,
                   now: float, spec_json: bytes = b"", ties_from: str = "",
                   max_wins: int | None = None, by_node: bool = False,
                   hold_for_silent: bool = False, may_preempt: bool = True) -> list[AuctionOutput]:
        """`may_preempt`: False for a round that only improves a placement
        (a rebalancing move): a bid that would preempt never wins it."""
        if len(self._rounds) >= MAX_OPEN_ROUNDS:
            return []
        self._seq += 1
        opened = f"{self.order_ms:013d}." if self.order_ms is not None else ""
        auction_id = f"{opened}{self.ballot_id}:{self._seq}"
        rnd = _Round(auction_id, job, spec_hash, dict(rounds), set(candidates), max_per_node,
                     dict(spread_counts), now + ttl_s, now + ttl_s * (1 + DEFER_EXTRA_TTLS), ties_from, by_node,
                     hold_for_silent, may_preempt)
        if not candidates:
            return [self._close_result(rnd)]
        self._rounds[auction_id] = rnd
        heapq.heappush(self._deadlines, (rnd.deadline, auction_id))
        call = CallForBids(auction_id, self.name, job, spec_hash, tuple(sorted(rounds)), ttl_s, spec_json,
                           max_wins)
        return [SendTo(node, call) for node in sorted(candidates)]

    def on_bid(self, bid: Bid, now: float) -> list[AuctionOutput]:
        rnd = self._rounds.get(bid.auction_id)
        if rnd is None:
            if bid.bidder not in self._closed.get(bid.auction_id, ()):
                return []
            return [SendTo(bid.bidder, Release(bid.auction_id, self.name))]   # late: see the module doc
        if bid.bidder not in rnd.candidates:
            return []
        # A job spread over nodes: the bidder is its domain, whatever the bid
        # says (an agent older than that rule sends none).
        domain = bid.bidder if rnd.by_node else bid.spread_value
        rnd.offers[bid.bidder] = Offer(bid.bidder, tuple(bid.scores), domain, bid.already)
        if bid.preempts:
            rnd.preempting.add(bid.bidder)
        else:
            rnd.preempting.discard(bid.bidder)
        out = self._maybe_close(rnd)
        if not out and rnd.deadline == rnd.latest_s:
            out = [SendTo(bid.bidder, RoundExtended(rnd.auction_id, self.name))]
        return out

    def on_decline(self, dec: Decline, now: float) -> list[AuctionOutput]:
        rnd = self._rounds.get(dec.auction_id)
        if rnd is None or dec.bidder not in rnd.candidates:
            return []
        rnd.declines[dec.bidder] = dec.reason
        return self._maybe_close(rnd)

    def on_deferred(self, msg: Deferred, now: float) -> list[AuctionOutput]:
        rnd = self._rounds.get(msg.auction_id)
        if (rnd is None or msg.bidder not in rnd.candidates or msg.bidder in rnd.offers
                or msg.bidder in rnd.declines or rnd.deadline >= rnd.latest_s):
            return []
        rnd.deadline = rnd.latest_s
        heapq.heappush(self._deadlines, (rnd.deadline, rnd.auction_id))
        return [SendTo(node, RoundExtended(rnd.auction_id, self.name)) for node in sorted(rnd.offers)]

    def _maybe_close(self, rnd: _Round) -> list[AuctionOutput]:
        if len(rnd.offers) + len(rnd.declines) >= len(rnd.candidates):
            return self._close(rnd)
        return []

    def next_deadline(self) -> float | None:
        # Entries of closed rounds, and a deferred round's first deadline, are stale.
        while self._deadlines and self._stale(*self._deadlines[0]):
            heapq.heappop(self._deadlines)
        return self._deadlines[0][0] if self._deadlines else None

    def _stale(self, at: float, auction_id: str) -> bool:
        rnd = self._rounds.get(auction_id)
        return rnd is None or at < rnd.deadline

    def handle_timers(self, now: float) -> list[AuctionOutput]:
        out: list[AuctionOutput] = []
        while self._deadlines and self._deadlines[0][0] <= now:
            at, auction_id = heapq.heappop(self._deadlines)
            if not self._stale(at, auction_id):
                out.extend(self._close(self._rounds[auction_id]))
        return out

    def _close(self, rnd: _Round) -> list[AuctionOutput]:
        del self._rounds[rnd.auction_id]
        counts, offers = self._counts(rnd), self._offers(rnd)
        cap = self._level_cap(rnd, counts)

        def choose(level_cap: int | None) -> dict[int, str]:
            return choose_winners(sorted(rnd.rounds), offers, max_per_node=rnd.max_per_node, spread_counts=counts,
                                  first=rnd.ties_from, level_cap=level_cap)
        winners = choose(cap)
        held = cap is not None and len(winners) < len(rnd.rounds) and len(choose(None)) > len(winners)
        self._closed[rnd.auction_id] = frozenset(rnd.candidates.difference(winners.values()))
        if len(self._closed) > CLOSED_REMEMBERED:
            del self._closed[next(iter(self._closed))]
        by_node: dict[str, list[tuple[int, int]]] = {}
        for index, node in winners.items():
            by_node.setdefault(node, []).append((index, rnd.rounds[index]))
        out: list[AuctionOutput] = []
        for node in sorted(by_node):
            out.append(SendTo(node, Award(rnd.auction_id, self.ballot_id, rnd.job, rnd.spec_hash,
                                          tuple(sorted(by_node[node])))))
        for node in sorted(rnd.offers):
            if node not in by_node:
                out.append(SendTo(node, Release(rnd.auction_id, self.name)))
        out.append(self._close_result(rnd, winners, held))
        return out

    @staticmethod
    def _offers(rnd: _Round) -> list[Offer]:
        """The offers the round chooses among: those that fit, if any does;
        else those that would preempt (auction.preemption).  Bidders left
        out get a Release, as any loser."""
        fitting = [o for o in rnd.offers.values() if o.node not in rnd.preempting]
        return fitting or (list(rnd.offers.values()) if rnd.may_preempt else [])

    @staticmethod
    def _counts(rnd: _Round) -> dict[str, int]:
        """The job's replicas per spread domain.  When every node is its own
        domain, a bidder's own count (`Bid.already`: the claims it holds)
        counts if it is higher: the coordinator counted the claims it had
        heard of when it opened the round, and an award of a round that
        closed a moment earlier may not have reached it as a claim yet (on
        slow links, a stack's second round gave a slot to the node that had
        just won one of the job's replicas, as if it ran none)."""
        if not rnd.by_node:
            return rnd.spread_counts
        counts = dict(rnd.spread_counts)
        for offer in rnd.offers.values():
            counts[offer.node] = max(counts.get(offer.node, 0), offer.already)
        return counts

    @staticmethod
    def _level_cap(rnd: _Round, counts: dict[str, int]) -> int | None:
        """The lowest count among the silent candidates, if this round holds
        slots for them (see the module doc)."""
        if not (rnd.by_node and rnd.hold_for_silent):
            return None
        silent = rnd.candidates - set(rnd.offers) - set(rnd.declines)
        return min((counts.get(node, 0) for node in silent), default=None)

    def _close_result(self, rnd: _Round, winners: dict[int, str] | None = None, held: bool = False) -> RoundClosed:
        winners = winners or {}
        answered = set(rnd.offers) | set(rnd.declines)
        return RoundClosed(
            rnd.auction_id, rnd.job, rnd.spec_hash,
            {i: (n, rnd.rounds[i]) for i, n in winners.items()},
            tuple(i for i in sorted(rnd.rounds) if i not in winners),
            dict(rnd.declines), tuple(sorted(rnd.candidates - answered)), held)
