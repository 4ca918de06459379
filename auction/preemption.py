"""Preemption: a replica of a higher-priority job takes the room of lower-priority ones.

How this works: a node without room for a replica looks at the replicas it
runs of replicated jobs whose `priority` is at least PREEMPT_DELTA below
the newcomer's (Nomad's rule; jobs at the default 50 preempt nothing, so an
operator opts in by raising a job's priority).  `pick_victims` chooses the
fewest of those, lowest priority first and then the largest, whose room
added to what is free fits the replica; a choice that needs none of some of
them drops those.  The victims' claims are released (their coordinators
place them again elsewhere, as after any release: pending, saying why, if
no node has room) in the same tick as the newcomer's slot is committed, so
no other auction gets the room in between; the runtime stops them before it
starts the newcomer (auction.reconcile_act stops first).

Two ways in:
- a global job's slot on its own node (auction.global_act), at once;
- a replicated job's auction (auction.bidder): a node that lacks the room
  bids with `preempts` (how many it would stop) on a reservation that
  counts on the victims' room (auction.ledger: no other reservation is
  promised it), for one slot per call.  The coordinator takes such bids
  only when no node bid without preempting (auction.auctioneer), as the
  Kubernetes scheduler preempts only when no node fits; the victims are
  released when the award comes, and not if it never does.

Never preempted: replicas with data on the node (a Docker or host volume:
moved, they would start empty elsewhere), global jobs' replicas (each
node's own), and host ports: a newcomer whose port a replica holds waits,
saying so.  Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .resources import Resources

if TYPE_CHECKING:
    from .claims import Claim
    from .spec import JobSpec

PREEMPT_DELTA = 10


@dataclass(frozen=True, slots=True)
class Candidate:
    slot: str
    priority: int
    demand: Resources


@dataclass(frozen=True, slots=True)
class PreemptEvent:
    """A node released `victims` to run slot `slot` of job `job`, for the event stream."""

    job: str
    slot: str
    victims: tuple[str, ...]
    detail: str = ""

    @property
    def name(self) -> str:   # the simulator's trace subject
        return self.job


def may_preempt(preemptor_priority: int, victim_priority: int) -> bool:
    return victim_priority <= preemptor_priority - PREEMPT_DELTA


def pick_victims(need: Resources, free: Resources, priority: int,
                 candidates: list[Candidate]) -> list[Candidate] | None:
    """The replicas to release so that `need` fits in `free` plus their room,
    or None if even all that may be preempted would not do."""
    if need.fits_in(free):
        return []
    allowed = sorted((c for c in candidates if may_preempt(priority, c.priority)),
                     key=lambda c: (c.priority, -c.demand.cpu_millis, -c.demand.memory_bytes, c.slot))
    chosen: list[Candidate] = []
    room = free
    for c in allowed:
        chosen.append(c)
        room = room + c.demand
        if need.fits_in(room):
            break
    else:
        return None
    # Keep only those still needed, the last chosen (the most needed) first.
    for c in list(reversed(chosen)):
        without = room - c.demand
        if need.fits_in(without):
            chosen.remove(c)
            room = without
    return chosen


def candidates(mine: Mapping[str, Claim], spec_of: Callable[[str], JobSpec | None],
               committed: Mapping[str, Resources], exclude: Collection[str] = ()) -> list[Candidate]:
    """The replicas of ours that a higher-priority one may preempt (see the
    module doc for what never is), with the room each holds."""
    out = []
    for slot, claim in mine.items():
        victim = spec_of(claim.job)
        if (victim is not None and not victim.is_global and not victim.node_local_data
                and slot in committed and slot not in exclude):
            out.append(Candidate(slot, victim.priority, committed[slot]))
    return out

