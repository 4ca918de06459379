"""What the node core asks of its driver: the typed outputs of `NodeCore.drain()`.

How this works: every output is a frozen value; `NodeCore.drain()` returns
them in the order the core produced them, and the driver (the trio agent, the
simulator) acts on each in that order.  Three families come out of one list:

  * the core's own commands and events, defined here (durable writes with or
    without an ack token, job / claim / status changes);
  * placement's, defined next to their producer in `auction.placement` and
    `auction.auctioneer` and re-exported here so a driver imports every output
    type from one place (StartReplica, StopReplica, AwardAccepted, SlotPending,
    RoundClosed; RolloutEvent, the steps of a rolling update, from
    `auction.rollout`; RebalanceEvent, each rebalancing move, from
    `auction.rebalance`; PreemptEvent, replicas released for a
    higher-priority one, from `auction.preemption`);
  * gossip's (`gossip.events.Output`: SendDatagram, OpenStream, Member*,
    PayloadUpdated, PacketDropped, JoinCompleted, User*), passed through after
    the core consumed the ones meant for it.

Durability contract: `PersistEntries(token=t)` with a token is a local job
write; the driver writes it durably and then feeds `inputs.Persisted(t)` (or
`inputs.AbandonWrite(t)` if it could not), and only then does the core emit
`JobWriteDone(t)` and gossip the entry.  Every other durable write (token
None, claims, forgets) needs no ack: a peer holds the data too.
"""

from __future__ import annotations

from dataclasses import dataclass

from auction.auctioneer import RoundClosed
from auction.claims import Claim
from auction.placement_outputs import AwardAccepted, SlotPending, StartReplica, StopReplica
from auction.preemption import PreemptEvent
from auction.rebalance import RebalanceEvent
from auction.rollout import RolloutEvent
from gossip.events import Output as GossipOutput
from node.core.jobstore import Entry
from node.core.status import NodeStatus

__all__ = [
    "AwardAccepted", "ClaimChanged", "CoreOutput", "ForgetClaims", "ForgetEntries", "JobChanged",
    "JobWriteDone", "NodeStatusChanged", "PersistClaims", "PersistEntries", "PreemptEvent", "RebalanceEvent",
    "RolloutEvent",
    "RoundClosed", "SlotPending",
    "StartReplica", "StateRefused", "StopReplica",
]


@dataclass(frozen=True, slots=True)
class PersistEntries:
    """Write these entries durably; if token is not None, then feed
    `Persisted(token)` (or `AbandonWrite(token)` if the write failed).
    Every entry is also a version of its job's history; `history` holds
    older versions that did not change the current entry (history only)."""

    entries: tuple[Entry, ...]
    token: int | None
    history: tuple[Entry, ...] = ()


@dataclass(frozen=True, slots=True)
class ForgetEntries:
    """Tombstones collected: delete them from durable storage (no ack)."""

    names: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class JobWriteDone:
    """The local write fed with this token is durable here.  If
    `superseded_by` is set, a newer entry for the name won before ours could
    be merged: the write lost and must not be acknowledged as done (the API
    answers 409 with that entry's stamp)."""

    token: int
    entry: Entry
    superseded_by: Entry | None = None


@dataclass(frozen=True, slots=True)
class StateRefused:
    """Replicated state from a peer (or our state dir) that the core refused
    to merge (node.core.admission): `kind` is job | claim | award | status
    | message (a whole message from a name that is not a member),
    `name` the job, slot or node it was for, `origin` who sent it ("" when
    loaded from disk), `reason` why (a short code, counted per reason)."""

    kind: str
    name: str
    origin: str
    reason: str


@dataclass(frozen=True, slots=True)
class JobChanged:
    """The desired state changed (local write or learned from a peer)."""

    entry: Entry
    local: bool


@dataclass(frozen=True, slots=True)
class NodeStatusChanged:
    """Another node's published status record changed (ours comes as
    gossip's PayloadUpdated for our own name)."""

    status: NodeStatus


@dataclass(frozen=True, slots=True)
class PersistClaims:
    """Write our view of the claims durably (no ack): after a reboot with no
    peer reachable, an agent restarts the replicas it holds claims for."""

    claims: tuple[Claim, ...]


@dataclass(frozen=True, slots=True)
class ForgetClaims:
    names: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class ClaimChanged:
    claim: Claim


CoreOutput = (
    PersistEntries | ForgetEntries | JobWriteDone | JobChanged | NodeStatusChanged | PersistClaims
    | ForgetClaims | ClaimChanged | StateRefused | StartReplica | StopReplica | AwardAccepted | SlotPending
    | RoundClosed | RolloutEvent | RebalanceEvent | PreemptEvent | GossipOutput
)
