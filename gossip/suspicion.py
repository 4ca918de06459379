"""Lifeguard suspicion timeouts that shrink with independent confirmations.

How this works: when we suspect a member we start a timer between
`min_timeout_s` and `max_timeout_s`.  Each *other* member that independently
suspects the same node (a Suspect message with a new `From`) is a
confirmation; after n of the k wanted confirmations the timeout is

    timeout = max - (max - min) * log(n + 1) / log(k + 1)     (floored at min)

so a node many peers agree is down is declared dead quickly, while a lone
suspicion (maybe our own link is bad) waits long enough for the suspect to
refute.  With k = 0 the timeout is min at once.  (Lifeguard paper §IV-B;
memberlist suspicion.go.)  Pure: the caller owns the clock and the timer.

The upper bound holds whatever happens: `max` is where the timer starts,
confirmations only shorten it, and neither bound depends on our own health
score (gossip.awareness), so a node whose score is at its cap still declares
an unconfirmed suspect dead suspicion_max_timeout_s(n) after suspecting it.
That is what bounds detection when most members die at once and nobody is
left to confirm (GossipConfig.detection_bound_s).

A suspicion can also start from a Dead message about a member we held alive
(`hearsay`, gossip.swim_membership says why): further Dead messages then
only confirm it, like Suspect messages; it ends in our own timeout or in
the member's refutation.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


def suspicion_timeout_s(n: int, k: int, min_timeout_s: float, max_timeout_s: float) -> float:
    if k <= 0:
        return min_timeout_s
    frac = math.log(n + 1.0) / math.log(k + 1.0)
    raw = max_timeout_s - frac * (max_timeout_s - min_timeout_s)
    return max(raw, min_timeout_s)


@dataclass(frozen=True, slots=True)
class SuspicionInfo:
    """A read-only copy of one suspicion, for readers outside gossip (the
    node core's placement: auction.suspicion_rule).  `min_timeout_s`: the
    shortest this suspicion can last before its member is declared dead
    (every confirmation counted); `confirmations`: independent accusers
    beyond the first."""

    started_at: float
    min_timeout_s: float
    deadline: float
    confirmations: int
    # min_timeout_s without its cluster-size factor (GossipConfig.suspicion_base_min_timeout_s)
    base_min_timeout_s: float


class Suspicion:
    __slots__ = ("k", "n", "min_timeout_s", "base_min_timeout_s", "max_timeout_s", "started_at", "confirmers",
                 "generation", "hearsay")

    def __init__(self, *, from_node: str, k: int, min_timeout_s: float, max_timeout_s: float,
                 now: float, generation: int, hearsay: bool = False, base_min_timeout_s: float | None = None) -> None:
        self.k = k
        self.n = 0
        self.min_timeout_s = min_timeout_s
        self.base_min_timeout_s = min_timeout_s if base_min_timeout_s is None else base_min_timeout_s
        self.max_timeout_s = max_timeout_s if k > 0 else min_timeout_s
        self.started_at = now
        # The first accuser does not count as a confirmation of itself.
        self.confirmers = {from_node}
        self.generation = generation
        # Started by somebody else's verdict (a Dead), not by a suspicion:
        # no other verdict ends it early.
        self.hearsay = hearsay

    def deadline(self) -> float:
        return self.started_at + suspicion_timeout_s(self.n, self.k, self.min_timeout_s, self.max_timeout_s)

    def info(self) -> SuspicionInfo:
        return SuspicionInfo(self.started_at, self.min_timeout_s, self.deadline(), self.n, self.base_min_timeout_s)

    def confirm(self, from_node: str) -> bool:
        """Record an independent accusation; True if it was new and counted."""
        if self.n >= self.k or from_node in self.confirmers:
            return False
        self.confirmers.add(from_node)
        self.n += 1
        return True
