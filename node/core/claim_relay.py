"""Two copies of one slot: ended within a round trip, or never started.

How this works: coordinators are picked by rendezvous hashing over each
agent's own view of who is alive (auction.coordination).  While views
differ (members still joining, a suspicion not yet everywhere), two agents
may each coordinate one slot and award it to two holders.  The claims
decide (auction.claims: the higher ballot wins and the other holder stops
its copy), but each holder learns of the other claim only by gossip, which
at 1,000 simulated agents took seconds while placement churned: the last
slots of placement_sim ran twice until 4.5 virtual s, long after every slot
had started (1.7 s).  So:

  * at any cluster size, a holder that accepts an award sends its claims
    to the slot's coordinator under its own view too, when that is not
    the agent that awarded it (it already gets them:
    node.core.auction_link), and to the slot's next coordinator, who
    takes the slot over if the coordinator leaves; and while it holds the
    slot it keeps those two told: when one of them leaves its view, it
    sends the claim to whoever is now among the slot's first two (see
    below);
  * when the cluster has more than job_push.PUSH_MIN_MEMBERS members
    (job_push.large_cluster), an agent that merges a claim and so holds
    two live claims of one slot naming two holders tells the losing
    holder, directly, the winning claim, when it is placed to learn of
    the conflict first: the claim was addressed to it (a holder's
    acknowledgement or the relay above), it holds the winning claim, its
    run awarded it, or it coordinates the slot under its own view.  Both
    ways round: an arriving claim that beats a live one here (the old
    holder lost), and one that loses to a live one here (its own holder
    lost).

The second way was missing at first, and it is the common one: a lagging
coordinator (it did not see the first coordinator alive yet, nor its
claim) awards a slot already placed; its holder relays the claim to the
first coordinator, which holds the winner; the winner had been placed
earlier under a higher round, so the relayed claim lost there and nobody
said so.  In placement_sim at 1,000 nodes both such slots of seed 3 ran
twice for 1.6 and 1.8 virtual s, until gossip brought the loser the winner.

The next coordinator was added when a kill 0.1 s after a deploy of 1,000
replicas on 1,000 simulated agents ran 13 slots twice for 0.9-5.2 virtual
s: their coordinators had died with their awards made, the claims were
still spreading by gossip, and each successor, holding no claim for its
slot, took it for unplaced and awarded it again.  Told at the award, the
successor holds the claim a round trip later, long before anyone can
suspect its coordinator.  When the coordinator and its successor both die
(three agents killed among 64, one slot in 1,000 in one seed), the third
in line is told as soon as the holder sees either gone, and it can take
the slot over only once it sees both gone.  Small clusters need it too:
16 simulated agents under the `local` profile, whose suspicions come
within 0.6 s, ran one slot twice in 1 of 12 seeds the same way while it
applied to large clusters only, none since (scripts/bench/coordinator_kill.py
--nodes 16 --profile local --jobs 4 --replicas 20 --kills 1 --seeds 1-12).

Each (slot, losing holder, winning ballot) is told once (a bounded memo):
a gossiped claim reaches an agent several times.  So the rules cost one
message per award while views agree (to the next coordinator), two when
the awarder is not the holder's coordinator, one per slot held when a
coordinator it told leaves, and one per conflict.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from auction.claims import Claim, live
from auction.spec import JobSpec
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
        # Slots we hold -> the coordinators (by our view) that know our claim.
        self._next_told: dict[str, frozenset[str]] = {}
        self._view: frozenset[str] = frozenset()

    def accepted(self, core: NodeCore, claims: list[Claim], origin: str, now: float) -> None:
        """We hold these new claims, awarded by `origin`: tell the slot's
        coordinator and next coordinator by our view (but not `origin`)."""
        if len(self._next_told) > 2 * len(core.placement.my_claims()) + len(claims) + 16:
            self._forget_released(core)
        to: dict[str, list[Claim]] = {}
        for claim in claims:
            told = self._next_coordinators(core, claim)
            self._next_told[claim.name] = told
            for peer in told - {origin}:
                to.setdefault(peer, []).append(claim)
        self._send(core, to, now)

    def placed(self, core: NodeCore, now: float) -> None:
        """After a placement pass: if the view changed, a slot we hold whose
        told coordinators have left it is told to those now first in line."""
        view = core.placement.coordination.view
        if view is self._view:
            return
        gone, self._view = self._view - view, view
        if not gone or not self._next_told:
            return
        mine = self._forget_released(core)
        to: dict[str, list[Claim]] = {}
        for key, told in list(self._next_told.items()):
            if told.isdisjoint(gone):
                continue
            claim = mine[key]
            now_told = self._next_coordinators(core, claim)
            self._next_told[key] = now_told
            for peer in now_told - told:
                to.setdefault(peer, []).append(claim)
        self._send(core, to, now)

    @staticmethod
    def _next_coordinators(core: NodeCore, claim: Claim) -> frozenset[str]:
        """The slot's coordinator and next coordinator by our view, not us."""
        spec = ClaimRelay._spec(core, claim)
        return frozenset(core.placement.coordination.coordinators_of(claim.job, claim.index, spec, 2)) - {core.name}

    def _forget_released(self, core: NodeCore) -> dict[str, Claim]:
        """Drops the slots we no longer hold; returns those we do."""
        mine = core.placement.my_claims()
        self._next_told = {k: v for k, v in self._next_told.items() if k in mine}
        return mine

    @staticmethod
    def _send(core: NodeCore, to: dict[str, list[Claim]], now: float) -> None:
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
        spec = ClaimRelay._spec(core, winner)
        return core.placement.coordination.is_coordinator(winner.job, winner.index, spec, core.name)

    @staticmethod
    def _spec(core: NodeCore, claim: Claim) -> JobSpec | None:
        """The job's spec, which decides who coordinates the slot
        (auction.coordination): the store's, or the version the claim is for
        when a call carried it (an award can come before the store has the
        job)."""
        return (core.placement.spec_of(core.store.get(claim.job))
                or core.placement.known_spec(claim.job, claim.spec_hash))

    def _tell(self, core: NodeCore, holder: str, winner: Claim, now: float) -> None:
        key = (winner.name, holder, winner.order_key())
        if key in self._told:
            return
        self._told[key] = None
        if len(self._told) > TOLD_MAX:
            del self._told[next(iter(self._told))]
        core._count("claim_conflicts_told")
        core._send(holder, wire.ClaimBroadcast((winner,)), now, reliable=False)
