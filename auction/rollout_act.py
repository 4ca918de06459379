"""Placement's side of rolling updates (auction.rollout holds the rule).

How this works: at every placement tick, before the coordinator duties,
`tick` looks at each job some of whose slots run another version than its
spec's (skipping jobs auction.settled found with none, while nothing
changes): for each slot the claim its holder keeps and what the holder
reports of it (running, failed, not yet known), and asks the rule which
slots may move now (`Rollouts.step`).  A slot we hold that it permits
moves here: a new claim of ours for the new version when it fits our
ledger, else its release (Placement._move_to).  The job's coordinator
(slot 0's) may also revert a rollout whose new version fails; the revert's
spec is queued for the core to write (`Placement.reverts`).  A coordinator
asks `versions_to_place` which version each slot it places goes on (a slot
lost during a rollout: the one it ran).  Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from .claims import Claim, live, parse_slot_key, slot_key
from .global_jobs import kept_indices
from .membership import NodeStatus, keeps_slot
from .rollout import UNVERIFIED, RolloutEvent, SlotView, is_revert, promoted_of
from .settled import ROLL
from .spec import JobSpec

if TYPE_CHECKING:
    from .placement import JobEntry, Placement, RunningLookup


def tick(p: Placement, jobs: Mapping[str, JobEntry], specs: Mapping[str, JobSpec | None],
         statuses: Mapping[str, NodeStatus], running: RunningLookup, now: float) -> list[Claim]:
    """The rule's step for every job some of whose slots run another
    version; returns the claims to write for the slots we hold that it
    permits to move (Placement._move_to)."""
    writes: list[Claim] = []
    p.rollouts.forget_others(set(specs))
    p.handovers.end_running(lambda key: running(p.name, *parse_slot_key(key)) == "running")
    for gone in set(p._targets) - set(specs):
        del p._targets[gone]
    for job in sorted(specs):
        spec = specs[job]
        if spec is None:
            continue
        target, inputs = p._target_of(spec), p.settled.inputs(spec)
        if job not in p.rollouts.jobs and p.settled.is_settled(ROLL, job, inputs):
            continue  # nothing new since the last tick (auction.settled)
        indices = desired_indices(p, spec, statuses)
        claims = [p.winning_claim(slot_key(job, i)) for i in indices]
        unrolled = job not in p.rollouts.jobs and all(c is None or c.spec_hash == target for c in claims)
        p.settled.record(ROLL, job, inputs, unrolled)
        if unrolled:
            continue  # the common case: nothing runs another version
        views = []
        for index, claim in zip(indices, claims):
            kept = claim if claim is not None and keeps_slot(claim.node, p._keeping, statuses) else None
            state = running(kept.node, job, index) if kept is not None else "unknown"
            views.append(SlotView(index, kept, state == "running", state in ("failed", "exited"),
                                  state not in ("unknown", UNVERIFIED), state == UNVERIFIED))
        writer = p._coordination.coordinator_of(job, 0, spec) == p.name
        step = p.rollouts.step(job, spec, views, now, may_revert=writer,
                               promoted=promoted_of(jobs.get(job)) == target,
                               revertible=not is_revert(jobs.get(job)))
        p.rollout_events.extend(step.events)
        if step.reverting:   # back to what the old slots serve, else the version before (auction.rollout)
            old, why = p.versions.revert_to(job, target, step.revert_to)
            p.reverts.extend([old] if old is not None else [])
            kind = "reverting" if old is not None else "revert_impossible"
            p.rollout_events.append(RolloutEvent(job, kind, target, detail=why))
        for position in step.permitted:      # positions in `views` (a global job's indices have gaps)
            claim = views[position].claim
            if claim is not None and claim.node == p.name:
                writes.append(p._move_to(claim, spec, now))
    return writes


def desired_indices(p: Placement, spec: JobSpec, statuses: Mapping[str, NodeStatus]) -> Sequence[int]:
    """The job's slots a rollout paces: 0 to replicas - 1, or a global job's
    slots whose holders keep them (auction.global_jobs rule 4: a dead
    member's slot is not re-placed, so a rollout must not wait for it)."""
    if not spec.is_global:
        return range(spec.replicas)
    return kept_indices(p.global_slots(spec.name), p._keeping, statuses)


def versions_to_place(p: Placement, spec: JobSpec, batch: dict[int, int]) -> list[tuple[JobSpec, dict[int, int]]]:
    """The coordinator's slots to place (index -> ballot round) by the
    version each goes on: the job's spec, or for a slot lost during a
    rollout, the older version it ran (auction.rollout, "Lost slots") when
    its spec is known here."""
    if spec.name not in p.rollouts.jobs:
        return [(spec, batch)] if batch else []     # the common case
    target = p._target_of(spec)
    by_hash: dict[str, tuple[JobSpec, dict[int, int]]] = {}
    for index, rnd in batch.items():
        back = p.rollouts.way_back(spec.name, live(p.claims.get(slot_key(spec.name, index))))
        old = p.known_spec(spec.name, back) if back is not None else None
        version, h = (old, back) if old is not None and back is not None else (spec, target)
        by_hash.setdefault(h, (version, {}))[1][index] = rnd
    return [by_hash[h] for h in sorted(by_hash)]
