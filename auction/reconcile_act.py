"""Keeping the runtime in line with the claims: which replicas this node starts and stops.

How this works: at every pass the core asks `reconcile` (Placement.reconcile)
what to tell the runtime.  It starts what our winning claims say we run and
stops what they no longer say (auction.claims, rule 4), freeing the ledger.
A copy whose slot moved keeps serving while a start-first hand-over needs
it: drained (until the new holder runs it, at most DRAIN_HANDOFF_S), moved
by rebalancing (auction.rebalance), or kept by the merge rule
(auction.merge_rule rule 2).  A slot we run whose winning claim of ours is
now for another version (we moved it: auction.rollout) is replaced; a new
ballot for the same version changes nothing.  Pure: no I/O.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .claims import Claim, live, stop_reason
from .placement_outputs import RuntimeCommand, StartReplica, StopReplica

if TYPE_CHECKING:
    from .placement import Placement, RunningLookup, SpecLookup

# A drained node keeps its copy of a slot that moved until the new holder
# reports it running, but never longer than this (start before stop).
DRAIN_HANDOFF_S = 60.0


def reconcile(p: Placement, specs_by_job: SpecLookup, now: float,
              drained: RunningLookup | None = None, merging: RunningLookup | None = None) -> list[RuntimeCommand]:
    """Start what our winning claims say we run, stop what they no longer
    say (auction.claims, rule 4).  Returns runtime commands.  `drained`
    (given while this node is drained: what holders report of their
    slots): a slot that moved off us keeps our copy until its new holder
    runs it, at most DRAIN_HANDOFF_S (a drain starts each replacement
    before it stops the old copy).  `merging`: auction.merge_rule rule 2."""
    out: list[RuntimeCommand] = []
    mine = p.my_claims()
    for key in sorted(p.running - set(mine)):
        # Start-first: drained, or the slot moved by rebalancing (auction.rebalance).
        lookup = drained or (p.rebalancer.running if p.rebalancer.picked(key, now) else None)
        if lookup is not None and _handing_off(p, key, lookup, now):
            continue
        if p.merges.keeps_copy(p.claims.get(key), p.name, None if drained else merging, now):
            continue
        p._handoff_until.pop(key, None)
        p.running.discard(key)
        p._started.pop(key, None)
        p._start_first.pop(key, None)
        p._handed.pop(key, None)
        p.handovers.old.pop(key, None)
        p.ledger.release(key)
        out.append(StopReplica(key, stop_reason(p.claims.get(key))))
    out.extend(_new_versions(p, mine, specs_by_job))
    for key in sorted(set(mine) - p.running):
        claim = mine[key]
        if claim.ports and not p.ledger.holds(key):
            # Its host ports are ours from the claim on, spec known or not
            # (after a restart, calls must not hand them to other slots).
            p.ledger.adopt(key, claim.demand, claim.ports)
        spec = specs_by_job(claim.job, claim.spec_hash)
        if spec is None:
            continue
        if not p.ledger.holds(key):
            p.ledger.adopt(key, claim.demand)
        p.running.add(key)
        p._started[key] = claim
        out.append(StartReplica(claim, spec))
    for key in list(p.ledger.committed):
        # (`claiming`: committed by this tick for a claim the core writes after
        # the tick's auction messages, whose awards reconcile too: released
        # here, its room went to them, and the claim's adoption overcommitted
        # the node -- a chaos campaign found it.)
        if key not in mine and key not in p._handoff_until and not p.merges.keeping(key) and key not in p.claiming:
            p.ledger.release(key)
    return out


def _handing_off(p: Placement, key: str, running: RunningLookup, now: float) -> bool:
    """Keep our copy of `key` (we are drained and it moved) for now?"""
    winner = live(p.claims.get(key))
    if winner is None or winner.node == p.name:
        return False    # released (job stopped, scaled down) or ours again: as before
    until = p._handoff_until.setdefault(key, now + DRAIN_HANDOFF_S)
    return now < until and running(winner.node, winner.job, winner.index) != "running"


def _new_versions(p: Placement, mine: dict[str, Claim], specs_by_job: SpecLookup) -> list[RuntimeCommand]:
    """Slots we run whose winning claim is now for another version (we
    moved it: auction.rollout): the runtime replaces the container.  A
    new ballot for the same version changes nothing, as before."""
    out: list[RuntimeCommand] = []
    for key in sorted(set(mine) & p.running):
        claim, started = mine[key], p._started.get(key)
        if started is None or started.spec_hash == claim.spec_hash:
            continue
        spec = specs_by_job(claim.job, claim.spec_hash)
        if spec is None:
            continue
        p._started[key] = claim
        replaces = p._handed[key] = p._start_first.pop(key, ())
        out.append(StartReplica(claim, spec, replaces))
    return out
