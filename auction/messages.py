"""Auction messages between a coordinator and its bidders.

How this works: these messages make one round.
  CallForBids  coordinator -> candidates: "who can take these slots of job J
               (spec version H)?  answer within ttl_s"  (a TTL, never an
               absolute time: clocks differ between machines)
  Bid          bidder -> coordinator: marginal scores for the 1st..k-th slot
               it can take (it has reserved k slots' worth for a short TTL)
  Decline      bidder -> coordinator: why it cannot take any
  Deferred     bidder -> coordinator: it answers after earlier spread rounds
               it bid in have closed (auction.bid_order); the round stays
               open for its answer, a bounded while longer
  RoundExtended coordinator -> bidders: the round waits for deferred bidders
  Award        coordinator -> winner: these slots, under these ballots
  Release      coordinator -> bidders that won nothing: drop the reservation
A lost message costs at most one TTL: the coordinator closes the round at its
deadline with whatever it has, and slots not awarded are retried.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class CallForBids:
    auction_id: str
    coordinator: str
    job: str
    spec_hash: str
    slots: tuple[int, ...]
    ttl_s: float
    # The spec itself (canonical JSON), so a bidder that has not yet heard of
    # a job just submitted can still bid: otherwise the submitting agent is
    # the only bidder of a fresh job's first round.
    spec_json: bytes = b""
    # The most of these slots one bidder can win (auction.winner's
    # most_won_by_one, for a job whose every node is its own spread
    # domain); a bidder reserves no more.  None: any number.
    max_wins: int | None = None


@dataclass(frozen=True, slots=True)
class Bid:
    auction_id: str
    bidder: str
    scores: tuple[float, ...]  # one per slot the bidder reserved, best first
    spread_value: str | None
    already: int  # replicas of this job the bidder already holds
    preempts: int = 0  # replicas the bidder would stop for this slot (auction.preemption); 0: it fits


@dataclass(frozen=True, slots=True)
class Decline:
    auction_id: str
    bidder: str
    reason: str


@dataclass(frozen=True, slots=True)
class Deferred:
    auction_id: str
    bidder: str


@dataclass(frozen=True, slots=True)
class RoundExtended:
    auction_id: str
    coordinator: str


@dataclass(frozen=True, slots=True)
class Award:
    auction_id: str
    coordinator: str
    job: str
    spec_hash: str
    slots: tuple[tuple[int, int], ...]  # (slot index, ballot round)


@dataclass(frozen=True, slots=True)
class Release:
    auction_id: str
    coordinator: str


AuctionMessage = CallForBids | Bid | Decline | Deferred | RoundExtended | Award | Release
