"""The node core's side of the auctions (auction.placement holds the rules).

How this works: the core hands every auction message it receives here.  A
call for bids is answered by our bidder with the spec it names (the stored
one, or the one the call carries when ours is another version); bids and
declines feed our auctioneer, whose outputs (`SendTo`, `RoundClosed`) go out
through `auction_output`; an award becomes claims, written like any of our
claims and acknowledged to the coordinator directly; a release frees what
our bidder had reserved.  Kept apart from node.core.node_core so that file
stays about composition, not about auction steps.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from auction.auctioneer import RoundClosed, SendTo
from auction.messages import AuctionMessage, Award, Bid, CallForBids, Decline, Deferred, Release, RoundExtended
from auction.placement_outputs import AwardAccepted
from auction.spec import JobSpec
from node.core import admission, wire
from node.core.outputs import StateRefused

if TYPE_CHECKING:
    from node.core.node_core import NodeCore


def on_auction_message(core: NodeCore, msg: AuctionMessage, origin: str, now: float) -> None:
    match msg:
        case CallForBids():
            answer_call(core, msg, now)
        case Bid():
            for out in core.placement.auctioneer.on_bid(msg, now):
                auction_output(core, out, now)
        case Decline():
            for out in core.placement.auctioneer.on_decline(msg, now):
                auction_output(core, out, now)
        case Deferred():
            for out in core.placement.auctioneer.on_deferred(msg, now):
                auction_output(core, out, now)
        case RoundExtended():
            core.placement.bid_order.extended(msg.auction_id)
        case Award():
            on_award(core, msg, origin, now)
            answer_waiting_calls(core, now)
        case Release():
            core.placement.on_release(msg)
            core._update_allocated(now)
            answer_waiting_calls(core, now)


def answer_call(core: NodeCore, call: CallForBids, now: float, waited: bool = False) -> None:
    spec = core.placement.spec_of(core.store.get(call.job))
    if spec is None or spec.container_hash() != call.spec_hash:
        spec = core.placement.spec_from_call(call) or spec
    # A Deferred reply: the call waits for an earlier spread round (auction.bid_order).
    reply = core.placement.on_call(call, spec=spec, status=core.status(), now=now, waited=waited)
    core._send(call.coordinator, reply, now, reliable=False)
    if isinstance(reply, Bid):
        core._update_allocated(now)


def answer_waiting_calls(core: NodeCore, now: float) -> None:
    """The spread calls an award, a release or their wait's end let through,
    in order (auction.bid_order)."""
    while (call := core.placement.bid_order.next_ready(now)) is not None:
        answer_call(core, call, now, waited=True)


def handle_timers(core: NodeCore, now: float) -> None:
    """Rounds past their deadline close; calls that waited long enough are answered."""
    for out in core.placement.auctioneer.handle_timers(now):
        auction_output(core, out, now)
    answer_waiting_calls(core, now)


def auction_output(core: NodeCore, out: object, now: float) -> None:
    if isinstance(out, SendTo):
        core._send(out.node, out.msg, now, reliable=False)
    elif isinstance(out, RoundClosed):
        for ev in core.placement.on_round_closed(out, now):
            core._emit(ev)
        core._emit(out)
        if core.placement.retries.resample_due:  # a round failed by its draw: again now (auction.retry)
            core.placement.retries.resample_due = False
            core._kick(now)


def spec_for(core: NodeCore, job: str, spec_hash: str | None = None) -> JobSpec | None:
    """The job's spec from the store, or another version seen here
    (placement.known_spec: a call for bids, an older version)."""
    spec = core.placement.spec_of(core.store.get(job))
    if spec is not None and (spec_hash is None or spec.container_hash() == spec_hash):
        return spec
    if spec_hash is not None:
        return core.placement.known_spec(job, spec_hash) or spec
    return spec


def on_award(core: NodeCore, award: Award, origin: str, now: float) -> None:
    refusal = admission.award_refusal(award, core._claims.get)
    if refusal is not None:
        core._emit(StateRefused("award", award.job, origin, refusal))
        return
    spec = spec_for(core, award.job, award.spec_hash)
    claims = core.placement.on_award(award, spec=spec, now=now)
    if not claims:
        return
    accepted = core._write_claims(claims, now)
    for claim in accepted:
        if not claim.released:      # (the others: replicas the award preempted, auction.preemption)
            core._emit(AwardAccepted(claim))
    # Tell the coordinator directly, not only by gossip: it waits
    # claim_wait_s for these claims and then re-auctions the slots.
    # Under load a broadcast takes seconds to reach a given node (at
    # 500 simulated nodes, p90 3.9 s from award to coordinator), so
    # coordinators re-auctioned slots that already ran, and every
    # such award started a second copy that ran until its holder
    # heard of the newer claim.  For a claim that lost the merge
    # here, send the one that beat it.
    if origin != core.name:
        current = [core._claims.get(c.name) for c in claims]
        core._send(origin, wire.ClaimBroadcast(tuple(c for c in current if c is not None)),
                   now, reliable=False)
    core._relay.accepted(core, accepted, origin, now)  # and to its coordinators by our view (claim_relay)
    core._reconcile(now)
