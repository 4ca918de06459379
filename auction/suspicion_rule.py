"""When a suspicion alone moves a holder's replicas: the one rule.

How this works: SWIM suspects a member whose probes go unanswered, and
declares it dead only if it does not refute within the suspicion timeout
(gossip.suspicion: at least `min_timeout_s`, the timeout once every wanted
confirmation has arrived).  Placement used to treat a suspect as gone at
once.  Under load that turned every false suspicion (a busy node answering a
probe late) into container moves: the coordinator re-placed the suspect's
slots, the replacements started, and the suspect, having refuted a moment
later, stopped its own copies because the newer claim won (auction.claims).

The rule: a suspected holder keeps the slots it holds (placement does not
re-place them) while its suspicion is younger than its grace,

    grace_s = GRACE_SHARE * base_min_timeout_s

measured on this agent's own suspicion timer.  `base_min_timeout_s` is the
shortest suspicion timeout without its cluster-size factor: the same at 5
members and at 1,000.  SWIM scales the timeout itself with log10(n) so that
news of the suspicion can reach the suspect, and its refutation come back,
in a big cluster too.  The grace has a different job: to outlast a short
stall of the suspect (a busy or paused process).  How long a stall lasts
does not grow with the cluster, and the round trip of the news grows only
a little, since failure news goes ahead of other gossip (gossip.broadcast):
from the first survivor's suspicion to the last one's about 1 s at 300
simulated nodes, against 0.2-0.4 s at 5.  Scaled like the timeout, the
grace was 6 s at 1,000 nodes, and a 10 % kill there healed in 12.75 s, 6
of them waiting for it (9.0 s with this grace of 2 s).  Once the suspicion is that
old, or the member is declared dead or has left, its slots are re-placed as
before.  Coordination and new awards are unchanged: a suspect coordinates
nothing and wins nothing new (auction.membership); only the slots it already
holds wait.

The bound on extra starts.  A false suspicion (one episode: the member
suspected, by one peer or several at once, until it refutes) refuted within
its grace costs no container start.  One that outlives its grace costs at
most one start per slot its member held (each slot is re-placed once; the
refuting member then stops its copy), which is what a real death of that
member costs anyway, so per false suspicion:

    extra starts <= slots held by the suspect, and 0 if refuted within grace_s.

(node/sim/churn.py measures both; tests/sim/test_sim_churn.py checks them.)

The price is heal time after a real death: a dead holder's slots are
re-placed `grace_s` after this agent first suspected it instead of at once.
Since no suspicion ends in death before `min_timeout_s` (at least
`base_min_timeout_s`), with GRACE_SHARE = 0.5 that is at most half the
earliest possible declaration of death (`local` profile: 0.3 s; `lan`:
2 s, at any cluster size), still ahead of it.

Pure: the caller hands in the alive set, its suspicions and `now`.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Protocol

# Share of a suspicion's minimum timeout that its member keeps its slots for.
GRACE_SHARE = 0.5


class SuspicionView(Protocol):
    """What the rule reads of one suspicion (gossip.suspicion.SuspicionInfo)."""

    @property
    def started_at(self) -> float: ...

    @property
    def base_min_timeout_s(self) -> float: ...


def grace_s(suspicion: SuspicionView) -> float:
    return GRACE_SHARE * suspicion.base_min_timeout_s


def in_grace(suspicion: SuspicionView, now: float) -> bool:
    """Does the suspected member still keep the slots it holds?"""
    return now < suspicion.started_at + grace_s(suspicion)


def keeping(alive: Collection[str], suspicions: Mapping[str, SuspicionView], now: float) -> set[str]:
    """Members that keep the slots they hold: the alive ones, and suspects
    whose suspicion is still in its grace."""
    out = set(alive)
    out.update(name for name, s in suspicions.items() if in_grace(s, now))
    return out


def next_expiry(suspicions: Mapping[str, SuspicionView], now: float) -> float | None:
    """When the next grace now running ends (placement must look again
    then: that suspect's slots become free to re-place), or None."""
    ends = [s.started_at + grace_s(s) for s in suspicions.values() if in_grace(s, now)]
    return min(ends) if ends else None
