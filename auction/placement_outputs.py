"""What placement tells the node core to do or report: the runtime's commands and two events.

How this works: `Placement` (auction.placement) turns claims into commands
for this node's runtime, `StartReplica` and `StopReplica` (`reconcile`,
auction.reconcile_act), and reports `AwardAccepted` (for checkers and the
event stream) and `SlotPending` (why a slot waits).  They live apart from
Placement so that the modules that produce or consume them need not
import it.
"""

from __future__ import annotations

from dataclasses import dataclass

from .claims import Claim
from .spec import JobSpec


@dataclass(frozen=True, slots=True)
class StartReplica:
    """Run replica `claim.name` of `spec` here (the award was accepted, or
    we moved our own slot to a new version: auction.rollout).  `replaces`:
    the ballot labels (auction.claims.ballot_label) of our copies that keep
    serving until the new one runs (start-first; the slot's previous ballot,
    and the one before it when that copy may still serve because the
    previous hand-over never finished, as in a revert); empty: any copy of
    another ballot is stale and stops first.  `adopt_only`: a claim read
    from disk that peers have not confirmed yet (node.core.replay): keep a
    copy of it that still runs, start none; a full start follows."""

    claim: Claim
    spec: JobSpec
    replaces: tuple[str, ...] = ()
    adopt_only: bool = False


@dataclass(frozen=True, slots=True)
class StopReplica:
    slot: str
    reason: str


@dataclass(frozen=True, slots=True)
class AwardAccepted:
    """For checkers and the event stream: we accepted (slot, ballot)."""

    claim: Claim


@dataclass(frozen=True, slots=True)
class SlotPending:
    slot: str
    reason: str


RuntimeCommand = StartReplica | StopReplica
