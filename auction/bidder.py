"""The bidder's side: answer calls for bids from the node's own ledger.

How this works: a CallForBids names a job, its spec version and a batch of
slots.  The bidder checks what only it knows for sure (its spec version, its
eligibility, its operator's container policy (auction.container_policy: a
job asking for a capability, user, device or pids limit the node does not
allow is declined with that reason), hard constraints against its own
labels, max_per_node against the replicas it already holds or has reserved
for other auctions of the job: auction.node_limit has that rule), then
reserves as many of the slots as its ledger can fit for
`reservation_ttl_s`, but no more than the call's `max_wins` (what one bidder
can win at most), and answers with the marginal score of each.  A
spread job is scored on what the node has committed (reservations for
other open auctions count for what fits, not for the score: they may
lose), except the reservations of rounds that sort after this one but were
answered first because this call came late (`answered_ahead`,
auction.bid_order); binpack counts them all (a node filling up for other
rounds is the one it wants).  An Award commits the
awarded slots against the auction's reservations (the coordinator picks
which of the call's slots a winner gets, so a reservation stands for any
slot of its auction; what the award leaves
unused is freed at once).  If the reservations expired meanwhile, a slot is
committed only if it still fits; otherwise it is refused and the
coordinator will retry; so is a slot that would take the node over the
job's max_per_node.  Everything is decided from the ledger, not
from gossip, so concurrent auctions never overcommit the node.

A node without the room may still bid for one slot of a job whose
priority preempts replicas it runs (auction.preemption): the bid says how
many it would stop (`preempts`), its reservation counts on their room, and
the award releases them.

Host ports are part of what must fit (auction.portbook): a slot is
reserved only with its ports, and a call none of whose slots can have them
is declined saying which port is taken and by which slot, or which range
is used up (`port 80 is taken on node-2 by web/1`).  The ports an award
leaves the slot holding are what its claim carries (`Ledger.ports_of`).
"""

from __future__ import annotations

from collections.abc import Callable, Collection

from .claims import slot_key
from .container_policy import SAFE_POLICY, ContainerPolicy
from .ledger import Ledger
from .node_limit import committed_here, replicas_here
from .preemption import PREEMPT_DELTA, Candidate, may_preempt, pick_victims
from .messages import Award, Bid, CallForBids, Decline, Release
from .resources import ZERO
from .scoring import NodeView, filter_reason, marginal_scores, with_pull_cost
from .spec import JobSpec, PullPolicy, Strategy

# An award travels back after the round closes: keep the reservation a little
# longer than the round itself.
RESERVATION_TTL_FACTOR = 2.0
RESERVATION_TTL_EXTRA_S = 0.5


# Added to a spread bid that counts reservations it answered ahead
# (auction.bid_order): far less than one replica's share of a node.
RESERVED_TIE_BONUS = 0.0001

# A decline for room starts with this (reasons cross the wire as text):
# auction.retry passes such members over in a job's next sampled draws.
ROOM_DECLINE = "needs "


def is_room_decline(reason: str) -> bool:
    return reason.startswith(ROOM_DECLINE)


def reservation_ttl_s(call: CallForBids) -> float:
    """How long a bid's reservation lasts."""
    return call.ttl_s * RESERVATION_TTL_FACTOR + RESERVATION_TTL_EXTRA_S


class Bidder:
    def __init__(self, name: str, ledger: Ledger, policy: ContainerPolicy = SAFE_POLICY) -> None:
        self.name = name
        self.ledger = ledger
        self.policy = policy
        self.preempted: list[str] = []      # what the last award's slots preempted (on_award)

    def on_call(self, call: CallForBids, *, spec: JobSpec | None, spec_hash: str | None,
                labels: dict[str, str], eligible: bool, ineligible_reason: str, already: int,
                now: float, has_image: bool | None = None, claimed: Collection[str] = (),
                answered_ahead: Collection[str] = (),
                preemptible: Callable[[], list[Candidate]] | None = None) -> Bid | Decline:
        """has_image: is the job's image in this node's engine (None: not
        known, e.g. the fake runtime; counted as present).  `already`: how
        many of the job's slots our claims name; `claimed`: those slot keys
        (counted with our ledger's for max_per_node: auction.node_limit).
        `preemptible`: our replicas a higher-priority job may preempt
        (auction.preemption), asked only when the slot does not fit."""
        def decline(reason: str) -> Decline:
            return Decline(call.auction_id, self.name, reason)

        if spec is None:
            return decline("job unknown here yet")
        if spec_hash != call.spec_hash:
            return decline("spec version differs here")
        refused = self.refusal(spec, labels, eligible=eligible, ineligible_reason=ineligible_reason,
                               has_image=has_image)
        if refused is not None:
            return decline(refused)
        view = NodeView(self.name, self.ledger.capacity, self.ledger.used(now), labels, True)
        room = len(call.slots)
        if call.max_wins is not None:
            room = min(room, call.max_wins)  # no more than we can win (auction.winner)
        if spec.max_per_node is not None:
            already = max(already, replicas_here(call.job, claimed, self.ledger, auction_id=call.auction_id))
            room = min(room, spec.max_per_node - already)
            if room <= 0:
                return decline(f"max_per_node={spec.max_per_node} reached")
        keys = [slot_key(call.job, i) for i in call.slots[:room]]
        reserved = self.ledger.reserve(call.auction_id, keys, spec.demand(), reservation_ttl_s(call), now,
                                       spec.ports)
        if not reserved:
            free = self.ledger.free(now)
            if spec.ports and spec.demand().fits_in(free):
                refusal = self.ledger.port_refusal(keys[0], spec.ports)
                if refusal is not None:
                    return decline(refusal.text(self.name))
            preempting = self._preempting_bid(call, spec, keys[0], labels, already, now, preemptible)
            if isinstance(preempting, Bid):
                return preempting
            return decline(f"{ROOM_DECLINE}{spec.demand()}; free {free}{preempting}")
        # Spread is scored on what the node has committed, not on what it
        # reserved for other auctions still open: a reservation may lose.
        # Counting them, each coordinator of a job's concurrent rounds found
        # its own node emptiest (it bid in its own round first) and gave it
        # its whole batch: `spread` put 8 to 29 of 100 replicas on each of 5
        # nodes.  What fits is still checked against the reservations.
        # Binpack keeps counting them: scored on committed resources alone,
        # the re-placement after a node's death in tests/sim/test_sim_churn.py
        # healed 1.3 s later (a third of the slots waited for a retry).
        # Reservations in rounds that sort after this one count for spread
        # too: we answered them before this call arrived (auction.bid_order).
        ahead = self.ledger.reserved_for(answered_ahead) if spec.strategy is Strategy.SPREAD else None
        load = view.used if ahead is None else self.ledger.committed_total() + ahead
        scored = NodeView(self.name, self.ledger.capacity, load, labels, True)
        scores = with_pull_cost(marginal_scores(spec.strategy, scored, spec.demand(), len(reserved)),
                                has_image is False)
        if ahead is not None and ahead != ZERO:
            # Those reservations may still lose: a hair above a node that has
            # committed as much, which wins nothing more by a tie (its
            # coordinator's name order) than it holds.
            scores = [score + RESERVED_TIE_BONUS for score in scores]
        return Bid(call.auction_id, self.name, tuple(scores), spec.spread_domain(self.name, labels), already)

    def _preempting_bid(self, call: CallForBids, spec: JobSpec, key: str, labels: dict[str, str], already: int,
                        now: float, preemptible: Callable[[], list[Candidate]] | None) -> Bid | str:
        """A bid for one slot on the room of lower-priority replicas of ours
        (auction.preemption), reserved so that no other auction is promised
        it; else what to add to the room decline (why preempting would not
        do, when we run replicas it might have preempted).  Among such bids
        the fewest and lowest victims score best."""
        if preemptible is None or spec.priority <= PREEMPT_DELTA:
            return ""
        found = [c for c in preemptible() if may_preempt(spec.priority, c.priority)]
        victims = pick_victims(spec.demand(), self.ledger.free(now), spec.priority, found)
        if not victims or not self.ledger.reserve_preempting(
                call.auction_id, key, spec.demand(), reservation_ttl_s(call), now,
                tuple(v.slot for v in victims), spec.ports):
            return (f"; its replicas at priority {spec.priority - PREEMPT_DELTA} or lower would not make room"
                    if found else "")
        score = -len(victims) - max(v.priority for v in victims) / 1000
        return Bid(call.auction_id, self.name, (score,), spec.spread_domain(self.name, labels), already,
                   preempts=len(victims))

    def refusal(self, spec: JobSpec, labels: dict[str, str], *, eligible: bool, ineligible_reason: str,
                has_image: bool | None) -> str | None:
        """Why this node takes no replica of `spec` whatever its room (None:
        it may): not eligible, the image missing with pull = "never", the
        operator's container policy, a constraint.  Also asked by a node
        taking its own slot of a global job (auction.global_act)."""
        if not eligible:
            return ineligible_reason or "not eligible"
        if has_image is False and spec.pull is PullPolicy.NEVER:
            return f"image {spec.image} is not on {self.name} (pull = never)"
        refused = self.policy.refusal(spec, self.name)
        if refused is not None:
            return refused
        reason = filter_reason(spec, NodeView(self.name, self.ledger.capacity, ZERO, labels, True))
        return None if reason is None else f"filtered by {reason}"

    def on_award(self, award: Award, *, spec: JobSpec | None, now: float,
                 claimed: Collection[str] = ()) -> tuple[list[tuple[int, int]], list[int]]:
        """Returns (accepted (index, round) pairs, refused indices).
        `claimed`: the job's slots our claims name (for max_per_node).
        The replicas an accepted slot preempted are in `preempted` then
        (auction.preemption): their claims are to be released now."""
        self.preempted = []
        if spec is None:
            return [], [i for i, _ in award.slots]
        ledger = self.ledger
        awarded = [slot_key(award.job, index) for index, _ in award.slots]
        # We reserved room for k of the call's slots, under the first k
        # keys; the coordinator may award any k of them.  The reservations
        # belong to the auction, not to particular slots: an awarded slot
        # without one takes one of the auction's spare ones.
        awarded_set = set(awarded)
        spare = [s for s in ledger.reserved_by(award.auction_id) if s not in awarded_set]
        accepted, refused = [], []
        held = committed_here(award.job, claimed, ledger)
        for (index, rnd), key in zip(award.slots, awarded):
            if spec.max_per_node is not None and key not in held and len(held) >= spec.max_per_node:
                refused.append(index)  # auction.node_limit rule 2
                if key in ledger.reservations and ledger.reservations[key].auction_id == award.auction_id:
                    ledger.drop_reservation(key)
                continue
            if key not in ledger.reservations and key not in ledger.committed:
                # A spare may have expired meanwhile (commit() expires
                # reservations as it goes): take one that still stands.
                while spare and spare[-1] not in ledger.reservations:
                    spare.pop()
                if spare:
                    ledger.move_reservation(spare.pop(), key)
            victims = ledger.victims_of(key)
            if ledger.commit(key, spec.demand(), now, spec.ports):
                accepted.append((index, rnd))
                self.preempted.extend(victims)
                held.add(key)
            else:
                refused.append(index)
        # One award per winner per round: what is left of this auction's
        # reservations will not be used; free it now rather than at its TTL.
        for key in spare:
            ledger.drop_reservation(key)
        return accepted, refused

    def on_release(self, rel: Release) -> None:
        for slot in self.ledger.reserved_by(rel.auction_id):
            self.ledger.drop_reservation(slot)
