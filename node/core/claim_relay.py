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
  * an agent that merges a claim and so holds two live claims of one slot
    naming two holders tells the losing holder, directly, the winning
    claim, when it is placed to learn of the conflict first: the claim was
    addressed to it (a holder's acknowledgement or the relay above), it
    holds the winning claim, its run awarded it, or it coordinates the
    slot under its own view.  Both ways round: an arriving claim that
    beats a live one here (the old holder lost), and one that loses to a
    live one here (its own holder lost).

The second way was missing at first, and it is the common one: a lagging
coordinator (it did not see the first coordinator alive yet, nor its
claim) awards a slot already placed; its holder relays the claim to the
first coordinator, which holds the winner; the winner had been placed
earlier under a higher round, so the relayed claim lost there and nobody
said so.  In placement_sim at 1,000 nodes both such slots of seed 3 ran
twice for 1.6 and 1.8 virtual s, until gossip brought the loser the winner.

Each (slot, losing holder, winning ballot) is told once (a bounded memo):
a gossiped claim reaches an agent several times.  So each rule costs at
most one message per award or per conflict, and none while views agree.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from auction.claims import Claim, live
from node.core import wire
from node.core.job_push import large_cluster

if TYPE_CHECKING:
    from node.core.node_core import NodeCore

# Conflicts told, remembered so that gossip's copies of one claim do not
# repeat the message; oldest forgotten first.
TOLD_MAX = 1024


class ClaimRelay:
    """Per core: the rules above, and the conflicts already told."""

    def __init__(self) -> None:
        self._told: dict[tuple[str, str, tuple[int, str, str, bool]], None] = {}

    def accepted(self, core: NodeCore, claims: list[Claim], origin: str, now: float) -> None:
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

    def merged(self, core: NodeCore, before: Mapping[str, Claim | None], incoming: list[Claim],
               changed: list[Claim], now: float, direct: bool) -> None:
        """`incoming` arrived (addressed to us when `direct`, else by gossip
        or sync); `changed` are those that won the merge here, and `before`
        has what each slot had."""
        if not large_cluster(core):
            return
        won = {id(c) for c in changed}
        for claim in incoming:
            if id(claim) in won:     # it beat what we had
                winner, loser = live(claim), live(before.get(claim.name))
            else:                    # it lost to (or equals) what we have
                winner, loser = live(core._claims.get(claim.name)), live(claim)
            if winner is None or loser is None or loser.node in (winner.node, core.name) or \
                    not winner.beats(loser):
                continue
            if direct or self._placed_to_know(core, winner):
                self._tell(core, loser.node, winner, now)

    @staticmethod
    def _placed_to_know(core: NodeCore, winner: Claim) -> bool:
        """Do we learn of this slot's claims before others do?"""
        if winner.node == core.name or winner.ballot.coordinator == core.ballot_id:
            return True
        spec = core.placement.spec_of(core.store.get(winner.job))
        return core.placement.coordination.is_coordinator(winner.job, winner.index, spec, core.name)

    def _tell(self, core: NodeCore, holder: str, winner: Claim, now: float) -> None:
        key = (winner.name, holder, winner.order_key())
        if key in self._told:
            return
        self._told[key] = None
        if len(self._told) > TOLD_MAX:
            del self._told[next(iter(self._told))]
        core._count("claim_conflicts_told")
        core._send(holder, wire.ClaimBroadcast((winner,)), now, reliable=False)
