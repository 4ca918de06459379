"""Which node coordinates a slot: the one rule, one key, one function.

The rule: the coordinator of slot (job, index) is the rendezvous-hash owner
(auction.rendezvous) of `coordination_key(job, index, spec)` among the
members this agent believes alive (see auction.membership.may_coordinate:
drained and unhealthy members coordinate too; suspect, failed and left ones
do not).  The key is

  - `job:<job>` for a slot of a job that spreads, over a label or over
    nodes (`strategy = "spread"`), while the slot is desired (index <
    replicas): spreading is a property of the whole set of replicas, and
    coordinators placing slots of one job concurrently would each correct
    the imbalance they see from claims that do not yet include the others'
    awards, all onto the same emptiest domain (a 3/1 split of 4 replicas
    over 2 racks, seen on real agents; 50 replicas over 5 idle nodes put
    14 on one and 8 on another, in the simulator: each of four concurrent
    rounds gave one more to the node an earlier round had given one
    fewer).  One round places the whole batch evenly; and for a binpack
    job of at most ONE_ROUND_BINPACK_MAX replicas (JobSpec.one_round): in
    a cluster larger than a round's draw (auction.candidates), rounds
    opened at once for each slot packed only within their own draws (8
    small replicas on 48 idle nodes went onto 5-7 of them), where one
    round fills the fullest node of its draw first;
  - `job:<job>#<chunk>` for a slot of a bigger binpack job, chunk =
    index // ONE_ROUND_BINPACK_MAX: the work of placing a big job is
    shared by many coordinators, and each packs its chunk in one round (a
    coordinator per slot, each round drawing its own candidates and seeing
    no other round's awards, put 100 replicas of 0.25 cpu on 38-41 of 48
    idle four-core nodes where 7 hold them);
  - the slot key `<job>/<index>` otherwise (any slot no longer desired, of
    a deleted job or at index >= replicas, whose claim a coordinator may
    have to release for a dead holder).

Agents with the same view of who is alive pick the same coordinator without
a vote.  Everything that asks (placement's tick, the API's job view) goes
through `coordination_key`, so they cannot disagree.
"""

from __future__ import annotations

from collections.abc import Iterable

from .claims import slot_key
from .jobspec import ONE_ROUND_BINPACK_MAX
from .rendezvous import Rendezvous
from .spec import JobSpec


def coordination_key(job: str, index: int, spec: JobSpec | None) -> str:
    """What rendezvous hashing is keyed on to pick the coordinator of slot
    (job, index); `spec` is the job's current spec, None if it is deleted."""
    if spec is None or index >= spec.replicas:
        return slot_key(job, index)
    if spec.one_round:
        return f"job:{job}"
    return f"job:{job}#{index // ONE_ROUND_BINPACK_MAX}"   # a big binpack job, in chunks


class Coordination:
    """Coordinators under one view of the alive members.  Long-lived: moving
    to a new view keeps what the change does not affect (see Rendezvous)."""

    def __init__(self, alive: Iterable[str] = ()) -> None:
        self._rv = Rendezvous(alive)

    def update(self, alive: Iterable[str]) -> None:
        self._rv.update(alive)

    @property
    def view(self) -> frozenset[str]:
        """The members coordinating (the same object until the view changes)."""
        return self._rv.view

    def coordinator_of(self, job: str, index: int, spec: JobSpec | None) -> str | None:
        """The coordinator of slot (job, index); None when nobody is alive."""
        return self._rv.owner(coordination_key(job, index, spec))

    def coordinators_of(self, job: str, index: int, spec: JobSpec | None, count: int = 2) -> list[str]:
        """The slot's coordinator, then the member that takes the slot over
        if it leaves, and so on (`count` of them, fewer if fewer are alive)."""
        return self._rv.ranked(coordination_key(job, index, spec), count)

    def is_coordinator(self, job: str, index: int, spec: JobSpec | None, me: str) -> bool:
        """coordinator_of(...) == me, cheaply when it is not (Rendezvous.is_owner)."""
        return self._rv.is_owner(coordination_key(job, index, spec), me)


def coordinator_of(job: str, index: int, spec: JobSpec | None, alive: Iterable[str]) -> str | None:
    """One-off form of `Coordination.coordinator_of` for a given view."""
    return Coordination(alive).coordinator_of(job, index, spec)
