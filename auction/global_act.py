"""Global jobs, applied each placement tick: this node takes or gives back its own slot.

How this works: for every global job (auction.global_jobs has the rule),
`tick` releases our claim of it when we are drained or no longer pass its
constraints, and otherwise, when we hold none, checks what a bidder checks
of a call (auction.bidder.Bidder.refusal: eligibility, the image for
pull = "never", the operator's container policy, the constraints), the
job's recent failure here (Placement.penalty), and then commits the slot in
our ledger -- resources and host ports, exactly as an award would -- and
writes our claim for it.  Without the room, it releases replicas of ours
that the job's priority preempts (auction.preemption), in the same tick.
The runtime then starts it (auction.reconcile_act).
Why we do not run one is kept per job (`refusals`) for `shoal job status`.
Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from .claims import Ballot, Claim, slot_key
from .global_jobs import must_give_up, pick_index
from .membership import NodeStatus
from .preemption import PREEMPT_DELTA, PreemptEvent, candidates, pick_victims
from .spec import JobSpec

if TYPE_CHECKING:
    from .placement import Placement


def tick(p: Placement, specs: Mapping[str, JobSpec | None], statuses: Mapping[str, NodeStatus],
         alive: set[str], now: float) -> list[Claim]:
    """Our claims to write for the global jobs: releases and new slots."""
    jobs = {name: spec for name, spec in specs.items() if spec is not None and spec.is_global}
    for gone in set(p.global_refusals) - set(jobs):
        del p.global_refusals[gone]
    if not jobs:
        return []
    writes: list[Claim] = []
    me = statuses.get(p.name)
    for job, spec in sorted(jobs.items()):
        slots = p.global_slots(job)
        mine = [c for c in slots.values() if c.node == p.name]
        why = must_give_up(spec, me)
        if mine:
            if why is not None:
                writes.extend(p._release_claim(c) for c in mine)
                p.global_refusals[job] = why
            continue                    # a second one of ours: auction.node_limit rule 3 gives it up
        refusal = why or _refusal(p, spec, me, now)
        if refusal is not None:
            p.global_refusals[job] = refusal
            continue
        key = slot_key(job, pick_index(p.name, spec, slots, statuses, alive))
        if not p.ledger.commit(key, spec.demand(), now, spec.ports) and not _preempt(p, spec, key, specs, now,
                                                                                      writes):
            free = p.ledger.free(now)
            port = p.ledger.port_refusal(key, spec.ports) if spec.ports else None
            p.global_refusals[job] = (port.text(p.name) if port is not None and spec.demand().fits_in(free)
                                      else f"needs {spec.demand()}; free {free}; {_no_victims(spec)}")
            continue
        p.global_refusals.pop(job, None)
        p.claiming.add(key)         # until the core writes the claim (Placement.claiming)
        rnd = p._last_round[key] = p.next_round(key)
        writes.append(Claim(key, Ballot(rnd, p.ballot_id), p.name, False, spec.container_hash(),
                            spec.demand(), p.ledger.ports_of(key)))
    return writes


def _preempt(p: Placement, spec: JobSpec, key: str, specs: Mapping[str, JobSpec | None], now: float,
             writes: list[Claim]) -> bool:
    """Release lower-priority replicas of ours so that the global slot `key`
    fits, and commit it (auction.preemption); False if that cannot be done."""
    if spec.ports and p.ledger.port_refusal(key, spec.ports) is not None:
        return False        # host ports are not preempted
    mine = p.my_claims()
    found = candidates(mine, specs.get, p.ledger.committed, p.claiming | p.ledger.promised())
    victims = pick_victims(spec.demand(), p.ledger.free(now), spec.priority, found)
    if not victims:
        return False
    for v in victims:
        p.ledger.release(v.slot)
    if not p.ledger.commit(key, spec.demand(), now, spec.ports):    # (the room was counted: not expected)
        for v in victims:
            p.ledger.adopt(v.slot, v.demand, mine[v.slot].ports)
        return False
    writes.extend(p._release_claim(mine[v.slot]) for v in victims)
    names = tuple(v.slot for v in victims)
    p.preemptions.append(PreemptEvent(spec.name, key, names, f"priority {spec.priority} over "
                                      + ", ".join(f"{v.slot} ({v.priority})" for v in victims)))
    return True


def _no_victims(spec: JobSpec) -> str:
    """What the operator can do about a global job without room (auction.preemption)."""
    lowest = spec.priority - PREEMPT_DELTA
    if lowest < 1:
        return f"priority {spec.priority} preempts nothing (raise it to preempt lower-priority replicas)"
    return f"replicas here at priority {lowest} or lower (without node-local data) free too little to preempt"


def _refusal(p: Placement, spec: JobSpec, me: NodeStatus | None, now: float) -> str | None:
    """Why we do not take a slot of the global job now (None: we may)."""
    if me is None:
        return "its own status is not published yet"
    penalty = p.penalty(spec.name, now, spec.container_hash())
    if penalty is not None:
        return f"recently failed here: {penalty}"
    return p.bidder.refusal(spec, me.labels, eligible=me.eligible,
                            ineligible_reason="drained" if me.drained else me.unhealthy_reason or "unhealthy",
                            has_image=p.has_image(spec))
