"""Preemption: a global job's replica takes the room of lower-priority replicas on its node.

How this works: a node that should run a global job (auction.global_jobs)
but lacks the room for it looks at the replicas it runs of replicated jobs
whose `priority` is at least PREEMPT_DELTA below the global job's (Nomad's
rule for its system jobs; jobs at the default 50 preempt nothing, so an
operator opts in by raising the global job's priority).  `pick_victims`
chooses the fewest of those, lowest priority first and then the largest,
whose room added to what is free fits the global replica; a choice that
needs none of some of them drops those.  The node then releases the
victims' claims (their coordinators place them again elsewhere, as after
any release: pending, saying why, if no node has room) and takes its global
slot in the same tick (auction.global_act), so no other auction gets the
room in between; its runtime stops the victims before it starts the
global replica (auction.reconcile_act stops first).

Never preempted: replicas with data on the node (a Docker or host volume:
moved, they would start empty elsewhere), and global jobs' replicas
(each node's own).  Replicated jobs do not preempt: a slot without room
stays pending, as before.  Host ports are not preempted either: a global
job whose port a replica holds waits, saying so.  Pure: no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass

from .resources import Resources

PREEMPT_DELTA = 10


@dataclass(frozen=True, slots=True)
class Candidate:
    slot: str
    priority: int
    demand: Resources


@dataclass(frozen=True, slots=True)
class PreemptEvent:
    """A node released `victims` to run its slot of global job `job`, for the event stream."""

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
