"""What a driver tells the node core: one frozen value per kind of input.

How this works: the driver (the trio agent, the simulator, a unit test) hands
each input to `NodeCore.feed(input, now)`; the core changes its state and
queues outputs (`node.core.outputs`) that the driver collects with
`drain()`.  Both drivers feed the same values, so a simulated run exercises
exactly the calls a real agent makes.

Most inputs return nothing from `feed`: their effects come out of `drain()`.
Three return what the caller needs at once, in the same pump turn:

  * `WriteJob` returns the `Entry` it stamped (nothing is visible or gossiped
    until the driver feeds `Persisted(token)`; `JobWriteDone(token)` follows);
  * `StreamIn` returns the reply bytes for the peer's TCP stream (or None);
  * `SendToMembers` returns the names of the members it was sent to.

Time is not an input: as in gossip.swim (and aioquic), the driver asks
`next_deadline()` and calls `handle_timers(now)` once it has passed.  A timer
is not data the driver holds, and keeping the two calls leaves the
simulator's one-timer-per-node bookkeeping unchanged.

A feed with anything else raises TypeError.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from gossip.events import Address
from gossip.messages import Message
from node.core.image_progress import ImageProgress

# ---- transport (what the sockets received) ----------------------------------


@dataclass(frozen=True, slots=True)
class Datagram:
    """A UDP datagram from src."""

    data: bytes
    src: Address


@dataclass(frozen=True, slots=True)
class StreamIn:
    """A whole message a peer sent us over a TCP stream; feed returns the
    reply bytes to write back (None: close without a reply)."""

    msg: Message
    src: Address


@dataclass(frozen=True, slots=True)
class StreamReply:
    """How a stream the core opened (`OpenStream`) ended: the peer's reply,
    or None if the dial failed, timed out or brought no answer."""

    stream_id: int
    reply: Message | None


# ---- membership --------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Join:
    """Push/pull with each seed; `JoinCompleted` per seed follows."""

    seeds: tuple[Address, ...]


@dataclass(frozen=True, slots=True)
class Leave:
    """Gossip our departure; the driver keeps pumping until it is out
    (`CoreView.pending_broadcasts() == 0`)."""


@dataclass(frozen=True, slots=True)
class Broadcast:
    """Gossip opaque user data to every member (`UserBroadcast` there)."""

    data: bytes


@dataclass(frozen=True, slots=True)
class SendToMembers:
    """Send opaque user data to every other member believed alive or
    suspect, over TCP (the agent's cluster-wide key rotation); feed returns
    the names it was sent to.  The streams' outcomes come back as
    `StreamReply` inputs for the `OpenStream` outputs this produced."""

    data: bytes


# ---- the replicated job store ------------------------------------------------


@dataclass(frozen=True, slots=True)
class WriteJob:
    """Submit (spec: canonical JSON bytes) or stop (spec None) a job.  Raises
    JobLimitError / ValueError if the store or spec bound refuses it, and
    ClockAheadError (node.core.cluster_clock) if our clock is so far ahead
    that peers would refuse its stamp.  The core numbers the version; why / by / ref / promoted go into its
    history record as given (node.core.history.Meta; a stop is "delete")."""

    name: str
    spec: bytes | None
    token: int
    why: str = "submit"
    by: str = ""
    ref: str = ""
    promoted: str = ""


@dataclass(frozen=True, slots=True)
class Persisted:
    """The `PersistEntries` with this token is durable."""

    token: int


@dataclass(frozen=True, slots=True)
class AbandonWrite:
    """The `PersistEntries` with this token could not be made durable: the
    write leaves no trace."""

    token: int


# ---- this node's status and runtime -------------------------------------------


@dataclass(frozen=True, slots=True)
class SetDrained:
    """Take no new replicas and move ours elsewhere (published in our status)."""

    drained: bool


@dataclass(frozen=True, slots=True)
class SetHealth:
    """The runtime's health (unhealthy: nothing is placed here)."""

    healthy: bool
    reason: str


@dataclass(frozen=True, slots=True)
class ImageInventory:
    """The runtime's local images (normalized name:tag), or None if unknown:
    bids for an image not here carry a pull cost (declined for pull = "never")."""

    images: frozenset[str] | None


@dataclass(frozen=True, slots=True)
class RuntimeSlots:
    """The runtime's view of the slots it runs here, slot -> (state, reason)
    (node.runtime.docker's `slot_states()`), or None if it does not say;
    published in our status record.  The mapping is not copied: the driver
    hands over a fresh one and keeps no reference to change."""

    states: Mapping[str, tuple[str, str]] | None
    # slot -> the ballot round of the claim each state is about (the
    # runtime's `slot_rounds()`); None: the runtime does not say.
    rounds: Mapping[str, int] | None = None


@dataclass(frozen=True, slots=True)
class ImagePulls:
    """The images the runtime is pulling or fetching now, with how far each
    is (node.core.image_progress; the runtime refreshes each at most once a
    second): published in our status record."""

    pulls: tuple[ImageProgress, ...]


@dataclass(frozen=True, slots=True)
class ReplicaGaveUp:
    """Our replica of `slot` keeps failing here (restart policy exhausted,
    crash loop): release the claim and keep the job off this node for
    penalty_s."""

    slot: str
    reason: str
    penalty_s: float = 60.0


# Inputs whose feed returns None; Input is every one.
PlainInput = (
    Datagram | StreamReply | Join | Leave | Broadcast | Persisted | AbandonWrite | SetDrained | SetHealth
    | ImageInventory | RuntimeSlots | ImagePulls | ReplicaGaveUp
)
Input = PlainInput | StreamIn | WriteJob | SendToMembers
