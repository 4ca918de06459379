"""Global jobs: one replica on every node that may run it.  The one rule.

How this works.  A job with `mode = "global"` (Swarm's global services,
Nomad's system jobs, Kubernetes' DaemonSets) has no replica count and no
auctions: the replica belongs to the node, so each node decides for itself,
from its own ledger, as a bidder does.  Its slots are ordinary slots (job,
index) with ordinary claims (auction.claims), so the runtime, the status
records, DNS, `shoal ps` and rolling updates treat them as any others.

1. Who should run one (`may_run`).  An alive member whose status is known,
   eligible (not drained, healthy) and passing the job's constraints.
   The job's desired count is the number of such members (`wanting`).
2. Taking a slot.  At every placement tick a node that may run the job,
   holds no live claim of it, has room in its ledger (cpu, memory, host
   ports) and no recent failure of this version (auction.placement's
   penalty), writes a claim for itself under the next round of a slot
   index (`pick_index`): the free indices (no live claim) in order, the
   k-th for the k-th of the members that want one and hold none, by name.
   Agents that see the same members pick different indices; two that
   picked the same one are ordered by the claims' total order, and the
   loser stops its copy and picks again at its next tick.
3. Giving it back.  The holder releases its claim when it is drained or no
   longer passes the constraints (the job changed, or its labels did), and
   when the job is deleted (as for any job).  Nothing moves elsewhere.
4. A member that dies or leaves keeps its claim: no other node takes its
   slot (each node has its own), it runs its replica again when it returns,
   and the two sides of a partition never write over each other's slots,
   so a merge changes nothing.  Its slot is not desired meanwhile: status,
   rollouts and counts look at the slots whose holder keeps them
   (`kept_indices`, auction.membership).  The claim of a member gone for
   good stays until the job is deleted (its coordinator then releases it,
   as any claim of a deleted job); a new member never reuses an index a
   live claim names.

Pure: no I/O, no clock; the caller gives the claims, the statuses and `now`.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping

from .claims import Claim
from .membership import NodeStatus, is_alive, keeps_slot
from .scoring import NodeView, filter_reason
from .spec import JobSpec


def node_view(status: NodeStatus) -> NodeView:
    return NodeView(status.name, status.capacity, status.allocated, status.labels, status.eligible)


def may_run(spec: JobSpec, status: NodeStatus | None, alive: Collection[str]) -> bool:
    """Rule 1: should this member run one replica of the global job?"""
    return (status is not None and is_alive(status.name, alive)
            and filter_reason(spec, node_view(status)) is None)


def must_give_up(spec: JobSpec, status: NodeStatus | None) -> str | None:
    """Rule 3: why the holder releases its slot of the job, or None.  An
    unhealthy node keeps what it runs (auction.membership); a status not yet
    known here says nothing."""
    if status is None:
        return None
    if status.drained:
        return "drained"
    for constraint in spec.constraints:
        if not constraint.matches(status.labels):
            return f"no longer passes {constraint}"
    return None


def wanting(spec: JobSpec, statuses: Mapping[str, NodeStatus], alive: Collection[str]) -> list[str]:
    """The members that should run the job (rule 1), by name."""
    return sorted(name for name, status in statuses.items() if may_run(spec, status, alive))


def pick_index(me: str, spec: JobSpec, slots: Mapping[int, Claim], statuses: Mapping[str, NodeStatus],
               alive: Collection[str]) -> int:
    """Rule 2: the index `me` claims: the k-th free one for the k-th of the
    members that want a slot and hold none (me counted, whatever the
    others see of me)."""
    holders = {c.node for c in slots.values()}
    waiting = sorted({*(n for n in wanting(spec, statuses, alive) if n not in holders), me})
    rank = waiting.index(me)
    index, free = 0, -1
    while True:
        if index not in slots:
            free += 1
            if free == rank:
                return index
        index += 1


def kept_indices(slots: Mapping[int, Claim], keeping: Collection[str],
                 statuses: Mapping[str, NodeStatus]) -> list[int]:
    """The desired slots of a global job as rollouts and status count them:
    those whose holder keeps its slots (rule 4), in index order."""
    return sorted(i for i, c in slots.items() if keeps_slot(c.node, keeping, statuses))


class SlotsByJob:
    """Every job's live slots, job -> index -> claim, from one walk of the
    claims map per change of it (asked every tick while a global job
    exists, and by the API)."""

    def __init__(self) -> None:
        self._digest: bytes | None = None
        self._slots: dict[str, dict[int, Claim]] = {}

    def of(self, claims: Iterable[Claim], digest: bytes, job: str) -> dict[int, Claim]:
        if digest != self._digest:
            slots: dict[str, dict[int, Claim]] = {}
            for claim in claims:
                if not claim.released:
                    slots.setdefault(claim.job, {})[claim.index] = claim
            self._digest, self._slots = digest, slots
        return self._slots.get(job, {})
