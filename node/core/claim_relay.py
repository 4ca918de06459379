"""Two copies of one slot, in a large cluster: ended within a round trip.

How this works: coordinators are picked by rendezvous hashing over each
agent's own view of who is alive (auction.coordination).  While views
differ (members still joining, a suspicion not yet everywhere), two agents
may each coordinate one slot and award it to two holders.  The claims
decide (auction.claims: the higher ballot wins and the other holder stops
its copy), but each holder learns of the other claim only by gossip, which
at 1,000 simulated agents took seconds while placement churned: the last
slots of placement_sim ran twice until 4.5 virtual s, long after every slot
had started (1.7 s).  So, when the cluster has more than
job_push.PUSH_MIN_MEMBERS members (job_push.large_cluster):

  * a holder that accepts an award sends its claims to the slot's
    coordinator under its own view too, when that is not the agent that
    awarded it (it already gets them: node.core.auction_link);
  * a coordinator that merges a claim beating a live claim of another
    holder sends the winner to that holder, which then stops its copy.

Each costs at most one message per award or per superseded claim, and
none while views agree.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from auction.claims import Claim
from node.core import wire
from node.core.job_push import large_cluster

if TYPE_CHECKING:
    from node.core.node_core import NodeCore


def accepted(core: NodeCore, claims: list[Claim], origin: str, now: float) -> None:
    """We hold these new claims, awarded by `origin`."""
    if not large_cluster(core):
        return
    to: dict[str, list[Claim]] = {}
    for claim in claims:
        spec = core.placement.spec_of(core.store.get(claim.job))
        coordinator = core.placement.coordination.coordinator_of(claim.job, claim.index, spec)
        if coordinator is not None and coordinator not in (origin, core.name):
            to.setdefault(coordinator, []).append(claim)
    for peer, batch in sorted(to.items()):
        core._send(peer, wire.ClaimBroadcast(tuple(batch)), now, reliable=False)


def merged(core: NodeCore, before: Mapping[str, Claim | None], changed: list[Claim], now: float) -> None:
    """`changed` won the merge here; `before` has what each slot had."""
    if not large_cluster(core):
        return
    for claim in changed:
        old = before.get(claim.name)
        if old is None or old.released or old.node in (claim.node, core.name):
            continue
        spec = core.placement.spec_of(core.store.get(claim.job))
        if core.placement.coordination.is_coordinator(claim.job, claim.index, spec, core.name):
            core._send(old.node, wire.ClaimBroadcast((claim,)), now, reliable=False)
