"""What the runtime reports to the node core: its images, its slots, a replica given up.

How this works: the agent's runtime (node.runtime) tells the core three
things as inputs (node.core.inputs): which images are present
(`ImageInventory`), what it runs of the slots it holds (`RuntimeSlots`),
and that a replica keeps failing here (`ReplicaGaveUp`).  Each changes
what this node offers or publishes: an image gained may let a pending slot
fit here (placement looks again); the slots' states go into our status
record (node.core.status.RuntimeSummary), at once when one turned running
or failed; a replica given up hands its slot back to the auction and keeps
the job off this node for a while (auction.placement.give_up).  Pure, as
the core: `now` in, the core's outputs out.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from node.core import rollout_link
from node.core.status import RuntimeSummary, listing_moved, slots_moved

if TYPE_CHECKING:
    from node.core.node_core import NodeCore


def image_inventory(core: NodeCore, images: frozenset[str] | None, now: float) -> None:
    """The runtime's list of local images (normalized name:tag), or None
    if unknown.  A bid for an image not here carries a pull cost, and a
    job with pull = "never" is declined (auction.bidder)."""
    placement = core.placement
    if images == placement.images:
        return
    gained = images is None or placement.images is None or not images <= placement.images
    placement.images = images
    if gained:
        core._kick(now)  # pending slots may fit here now


def runtime_slots(core: NodeCore, states: Mapping[str, tuple[str, str]] | None, now: float,
                  rounds: Mapping[str, int] | None = None) -> None:
    """The runtime's view of the slots it runs here (node.core.inputs.RuntimeSlots),
    published in our status record (node.core.status.RuntimeSummary)."""
    summary = None if states is None else RuntimeSummary.from_states(dict(states), rounds)
    if summary == core.runtime_summary:
        return
    old, core.runtime_summary = core.runtime_summary, summary
    rolling, urgent = rollout_link.moved_in_rollout(core, old, summary), slots_moved(old, summary)
    core._update_status(now, urgent, (rolling and urgent) or listing_moved(old, summary), runtime=summary)
    if rolling:
        core._kick(now)


def replica_gave_up(core: NodeCore, slot: str, reason: str, now: float, penalty_s: float) -> None:
    """The runtime reports our replica of `slot` keeps failing here (restart
    policy exhausted, crash loop): hand the slot back to the auction and
    keep this job off this node for penalty_s."""
    release = core.placement.give_up(slot, reason, penalty_s, now)
    if release is not None:
        core._write_claims([release], now)
        core._reconcile(now)
        core._kick(now)
