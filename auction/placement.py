"""Placement: turns desired state and claims into auctions, awards and replicas.

How this works: every `placement_interval_s` (and right after anything
relevant changes) each agent walks the desired slots, (job, index) for index
< replicas of every live job, and looks up the slot's winning claim in the
replicated claims map.  A slot needs placing when it has no live claim or
its holder no longer keeps it (auction.membership; a suspect: auction.suspicion_rule).
If this agent is the slot's coordinator (auction.coordination), the slot
goes into this tick's batch for its job, and one auction round
(auction.auctioneer) places the whole batch; bids are scored by
auction.scoring and answered by auction.bidder.  A job found with nothing
to do is skipped by later ticks until its spec, one of its claims, or who
keeps or is drained changes (auction.settled).

As a bidder the agent answers calls from its own ledger.  An award it can
honour becomes a Claim (slot, ballot, us, and the host ports our ledger
gave it: auction.portbook) written to the claims map, and a `StartReplica`
command.  Claims are authoritative (auction.claims says which
wins and who stops which copy): `reconcile` (auction.reconcile_act) emits `StopReplica` for every
slot we run that the winning claim no longer gives us, and frees the
ledger.  A holder releases slots of deleted jobs and indices beyond
`replicas` (retire the highest first: they are exactly the ones >=
replicas), and those beyond a job's max_per_node here (auction.node_limit
has that rule, for bids and awards too); the coordinator of such a slot releases it for a holder that is
not alive.

A changed job reaches its running replicas through auction.rollout (the
pacing rule; auction.rollout_act applies it each tick): for every job some
of whose slots run another version, the holder of a slot that rule permits
moves it itself (`_move_to`): a new claim of its own for the new version
when the new demand fits its ledger (the runtime replaces the container, start-first
when `StartReplica.replaces` says so), else the slot's release (it moves
through an auction).  `reconcile` starts the new version of a slot whose
winning claim of ours changed version; a new ballot for the same version
changes nothing, as before.

A job whose spread drifted moves slots back start-first (auction.rebalance
has the rule; auction.rebalance_act opens the moves' auctions).

Failed rounds back off per slot (auction.retry; whom a round calls:
auction.candidates) and keep their reasons so `shoal job status` can say why a slot is pending.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Protocol

from auction import candidates, global_act, node_limit, rebalance_act, reconcile_act, rollout_act
from auction import preemption
from auction.preemption import Candidate, PreemptEvent
from auction.auctioneer import Auctioneer, AuctionOutput, RoundClosed, SendTo
from auction.bid_order import BidOrder
from auction.bidder import Bidder, is_room_decline, reservation_ttl_s
from auction.claims import (
    Ballot,
    Claim,
    ballot_label,
    holds,
    live,
    next_round,
    parse_slot_key,
    release_of,
    slot_key,
)
from auction.container_policy import SAFE_POLICY, ContainerPolicy
from auction.coordination import Coordination
from auction.global_jobs import SlotsByJob
from auction.ledger import Ledger
from auction.membership import NodeStatus, is_alive, keeps_slot
from auction.merge_rule import CopyLookup, MergeRule
from auction.placement_outputs import AwardAccepted, RuntimeCommand, SlotPending, StartReplica, StopReplica
from auction.messages import Award, Bid, CallForBids, Decline, Deferred, Release
from auction.ports import DEFAULT_PORT_RANGE
from auction.rebalance import DEFAULT_SETTLE_S, Rebalancer
from auction.retry import Retries
from auction.resources import Resources
from auction.rollout import HandOvers, Rollouts, RolloutEvent, Versions, start_first
from auction.settled import COORDINATE, SettledJobs, SettledSweep
from auction.spec import JobSpec, SpecError, Strategy, from_json

__all__ = ["AwardAccepted", "ClaimsMap", "JobEntry", "NodeStatus", "Placement", "PlacementConfig",
           "SlotPending", "StartReplica", "StopReplica", "normalize_image"]


class ClaimsMap(Protocol):
    """The replicated claims map (a gossip.lww.LwwMap of Claim, held by the node core)."""

    entries: dict[str, Claim]

    def get(self, name: str) -> Claim | None: ...

    def digest(self) -> bytes: ...

    def merge(self, entry: Claim) -> bool: ...


class JobEntry(Protocol):
    """What placement reads of a job-store entry (node.core.jobstore.Entry)."""

    @property
    def name(self) -> str: ...

    @property
    def stamp(self) -> object: ...

    @property
    def spec(self) -> bytes | None: ...

    @property
    def deleted(self) -> bool: ...


CALL_SPECS_MAX = 256


@dataclass(frozen=True, slots=True)
class PlacementConfig:
    placement_interval_s: float = 1.0
    auction_ttl_s: float = 0.5
    # After an award, how long to wait for the winner's claim before
    # re-auctioning (a lost award costs this much).
    claim_wait_s: float = 3.0
    min_backoff_s: float = 0.5
    max_backoff_s: float = 30.0
    # Large clusters: call at most max(sample_min, d * slots) random feasible
    # candidates (power-of-d choices), not every node.
    sample_d: int = 2
    sample_min: int = 16
    rebalance_settle_s: float = DEFAULT_SETTLE_S  # auction.rebalance


# (job, spec hash) -> that version of the job's spec, if known here.
SpecLookup = Callable[[str, str], JobSpec | None]
# (holder, job, index) -> what the holder reports of that slot: "running",
# "failed", "exited", "starting" or "unknown" (node.core.status.RuntimeSummary).
RunningLookup = Callable[[str, str, int], str]


def _all_running(node: str, job: str, index: int) -> str:
    return "running"


class Placement:
    def __init__(self, name: str, capacity: Resources, rng: random.Random, cfg: PlacementConfig,
                 claims: ClaimsMap, ballot_id: str | None = None,
                 container_policy: ContainerPolicy = SAFE_POLICY,
                 port_range: tuple[int, int] | None = None) -> None:
        self.name = name
        self.ballot_id = ballot_id or name  # see Auctioneer.ballot_id
        self.cfg = cfg
        self._rng = rng
        self.claims = claims
        # Host ports are a node resource as cpu and memory (auction.portbook):
        # dynamic ones come from this inclusive range (the agent's --port-range;
        # None: auction.ports.DEFAULT_PORT_RANGE).
        self.ledger = Ledger(capacity, port_range or DEFAULT_PORT_RANGE)
        # What jobs may ask of this node's containers (the agent's [containers]
        # table); a call for a job asking more is declined with the reason.
        self.bidder = Bidder(name, self.ledger, container_policy)
        self.bid_order = BidOrder()  # spread calls answered one round at a time (auction.bid_order)
        self.auctioneer = Auctioneer(name, self.ballot_id)
        self.running: set[str] = set()  # slots we told the runtime to run
        self.pending_reasons: dict[str, str] = {}
        self.retries = Retries(cfg.min_backoff_s, cfg.max_backoff_s)  # auction.retry
        self._awaiting_claim: dict[str, float] = {}  # slot -> give up waiting at
        self._last_round: dict[str, int] = {}
        self._spec_cache: dict[str, tuple[object, JobSpec | None]] = {}
        # job -> (until, reason, the container hash that failed here; None: any)
        self._penalties: dict[str, tuple[float, str, str | None]] = {}
        # Images present on this node (normalized "name:tag"), as the runtime
        # last reported them; None until it has (then every image counts as
        # present).  A bid for a missing one carries a pull cost.
        self.images: frozenset[str] | None = None
        self.call_specs: dict[tuple[str, str], JobSpec] = {}  # (job, container hash) -> spec
        self._my_claims: dict[str, Claim] = {}
        self._my_claims_digest: bytes | None = None
        # One for the life of the node, moved from view to view (it keeps the
        # coordinators the change does not affect).
        self._coordination = Coordination()
        # Rolling updates (auction.rollout): this agent's observations, the
        # versions it has seen, and what the core drains after each tick.
        self.rollouts = Rollouts()
        self.versions = Versions()
        self._started: dict[str, Claim] = {}        # slot -> the claim we last told the runtime
        self._start_first: dict[str, tuple[str, ...]] = {}  # slot -> ballot labels to hand over from
        self._handed: dict[str, tuple[str, ...]] = {}       # slot -> the last hand-over we asked for
        self.handovers = HandOvers()                # old copies still serving beside their start-first replacement
        self.rollout_events: list[RolloutEvent] = []
        self.reverts: list[JobSpec] = []
        self._targets: dict[str, tuple[JobSpec, str]] = {}   # job -> (spec, its container hash)
        self._handoff_until: dict[str, float] = {}  # drained: slot -> stop our copy by then at the latest
        self.merges = MergeRule()  # two copies of a slot after a merge (auction.merge_rule)
        self.revert_writes = 0      # the core's tokens for them (negative: no driver waits on them)
        self.rebalancer = Rebalancer(cfg.rebalance_settle_s)  # auction.rebalance; acts in rebalance_act
        self._keeping: set[str] = set()  # this tick's members that keep their slots (see tick)
        self.settled = SettledJobs()  # jobs the walks below skip while nothing changes (auction.settled)
        self.sweep = SettledSweep()   # the same for the tick's walk over every claim
        self._global_slots = SlotsByJob()          # auction.global_jobs
        # Slots this tick committed in the ledger for claims of ours not merged
        # yet (a global job's: auction.global_act); reconcile keeps them.
        self.claiming: set[str] = set()
        self.global_refusals: dict[str, str] = {}  # global job -> why we run no replica of it (auction.global_act)
        # Replicas we released for a global job's slot (auction.preemption), for the event stream;
        # drained every tick (bounded: a tick adds at most one per global job).
        self.preemptions: list[PreemptEvent] = []

    # ---- helpers
    def spec_from_call(self, call: CallForBids) -> JobSpec | None:
        """The spec a call for bids carries, if it is valid and is the version
        the call names (a forged or mismatched one is ignored)."""
        if not call.spec_json:
            return None
        try:
            spec = from_json(json.loads(call.spec_json))
        except (SpecError, ValueError, TypeError):
            return None
        if spec.name != call.job or spec.container_hash() != call.spec_hash:
            return None
        # Remember it for the award and the start, which may also come
        # before the job store has the job.
        self.call_specs[(spec.name, call.spec_hash)] = spec
        self.versions.remember(spec)
        if len(self.call_specs) > CALL_SPECS_MAX:
            self.call_specs.pop(next(iter(self.call_specs)))
        return spec

    def known_spec(self, job: str, spec_hash: str) -> JobSpec | None:
        """A version of the job seen here: carried by a call for bids (the
        store may not have it yet), or an older one (a slot a rollout has
        not reached yet, after a restart)."""
        return self.call_specs.get((job, spec_hash)) or self.versions.get(job, spec_hash)

    def spec_of(self, entry: JobEntry | None) -> JobSpec | None:
        """Parse (and cache by stamp) the spec of a job-store entry."""
        if entry is None or entry.deleted or entry.spec is None:
            return None
        cached = self._spec_cache.get(entry.name)
        if cached is not None and cached[0] == entry.stamp:
            return cached[1]
        spec: JobSpec | None
        try:
            spec = from_json(json.loads(entry.spec))
        except (SpecError, ValueError, TypeError):
            spec = None  # a forged or corrupted spec; validation happened at submit
        if spec is not None:
            self.versions.remember(spec)
        self._spec_cache[entry.name] = (entry.stamp, spec)
        return spec

    @property
    def coordination(self) -> Coordination:
        """Who coordinates which slot, under the view of the last tick."""
        return self._coordination

    def global_slots(self, job: str) -> dict[int, Claim]:
        """A global job's live slots, index -> claim (auction.global_jobs)."""
        return self._global_slots.of(self.claims.entries.values(), self.claims.digest(), job)

    def has_image(self, spec: JobSpec) -> bool | None:
        """Is the job's image on this node (None: the runtime has not said)?"""
        return None if self.images is None else normalize_image(spec.image) in self.images

    def winning_claim(self, key: str) -> Claim | None:
        """The slot's winning claim, None if it has none or it was released."""
        return live(self.claims.get(key))

    def my_claims(self) -> dict[str, Claim]:
        # Cached per claims-map digest: asked on every call for bids and tick.
        digest = self.claims.digest()
        if self._my_claims_digest != digest:
            self._my_claims = {k: c for k, c in self.claims.entries.items() if holds(c, self.name)}
            self._my_claims_digest = digest
        return self._my_claims

    def claims_merged(self, merged: list[Claim], digest_before: bytes) -> None:
        """The core merged these claims into the map, whose digest was
        `digest_before`: bring the my_claims cache along without rescanning
        the map (every claim anywhere moves the digest; at 1,000 agents a
        rescan per merge was 10^9 steps per placement of 1,000 slots).  A
        cache that was already stale is left to my_claims' rescan."""
        self.settled.claims_merged(merged, digest_before, self.claims.digest())
        if self._my_claims_digest != digest_before:
            return
        mine = dict(self._my_claims)  # a new dict: callers may hold the old one
        for claim in merged:
            if holds(claim, self.name):
                mine[claim.name] = claim
            else:
                mine.pop(claim.name, None)
        self._my_claims, self._my_claims_digest = mine, self.claims.digest()

    def next_round(self, key: str) -> int:
        return next_round(self.claims.get(key), self._last_round.get(key, 0))

    def adopt_stored(self) -> None:
        """Our claims read back from disk (a restart) hold their resources
        and ports from the start, as facts: the first reconcile may be a
        pass away, and a bid in between must not offer their room again."""
        for key, claim in sorted(self.my_claims().items()):
            self.ledger.adopt(key, claim.demand, claim.ports)

    # ---- the tick
    def tick(self, *, jobs: Mapping[str, JobEntry], deleted: set[str],
             statuses: Mapping[str, NodeStatus], alive: set[str],
             now: float, running: RunningLookup = _all_running,
             copies: CopyLookup | None = None,
             keeping: set[str] | None = None, wall_ms: int | None = None) -> tuple[list[AuctionOutput], list[Claim]]:
        """Returns (outputs, claims to write).  `running`: what holders report of their slots (for rollouts;
        default: every slot runs).  `copies`: auction.merge_rule rule 3.  `keeping`: who keeps the slots it
        holds (default `alive`: auction.suspicion_rule).  `wall_ms`: the cluster clock (auction ids sort by it)."""
        self._keeping, self.auctioneer.order_ms = (alive if keeping is None else keeping), wall_ms
        out: list[AuctionOutput] = []
        writes: list[Claim] = []
        specs = {name: self.spec_of(entry) for name, entry in jobs.items()}
        self.claiming = set()       # the last tick's claims were written (or lost) since
        self.ledger.expire(now)
        self.bid_order.forget_gone(alive)   # the core then answers what that lets through
        self.settled.start_tick(self._keeping, statuses, specs, self.claims.digest())

        # 1. Holder duties: give back slots that should no longer run.
        # A job we hold a claim for but do not have yet (its award came with
        # the call's copy of the spec) is not "gone": only a delete is.
        for key, claim in self.my_claims().items():
            job, index = parse_slot_key(key)
            spec = specs.get(job)
            if (spec is None and job in deleted) or (spec is not None and _retired(spec, index)):
                writes.append(self._release_claim(claim))
        # ... and slots beyond a job's max_per_node here (auction.node_limit rule 3).
        writes.extend(self._release_claim(c) for c in node_limit.to_give_up(self.my_claims(), specs))

        # 2. Claims of dead holders for slots nobody wants any more: the
        #    slot's coordinator releases them, so they do not linger.
        #    Skipped while nothing it reads moved since it found nothing (auction.settled).
        self._coordination.update(alive)
        sweep = (self.claims.digest(), self._coordination.view, specs, deleted)
        if not self.sweep.is_settled(*sweep):
            released = 0
            for key, claim in list(self.claims.entries.items()):
                if claim.released or is_alive(claim.node, alive):
                    continue
                job, index = parse_slot_key(key)
                spec = specs.get(job)
                gone = (spec is None and job in deleted) or (spec is not None and _retired(spec, index))
                if gone and self._coordination.is_coordinator(job, index, spec, self.name):
                    writes.append(self._release_claim(claim))
                    released += 1
            self.sweep.record(*sweep, found_nothing=released == 0)

        # 2b. Rollouts: the holder of a slot permitted to take its job's new
        #     version moves it (auction.rollout).
        writes.extend(rollout_act.tick(self, jobs, specs, statuses, running, now))

        # 3. Coordinator duties; a global job's slot is taken by each node
        #    for itself (auction.global_act), with no auction.
        writes.extend(global_act.tick(self, specs, statuses, alive, now))
        for job in sorted(specs):
            desired = specs[job]
            if desired is None or desired.is_global:
                continue
            out.extend(self._coordinate(job, desired, statuses, alive, now, copies))
        # 4. Rebalancing: moves the rule (auction.rebalance) picks, by their slots' coordinators.
        out.extend(rebalance_act.tick(self, specs, statuses, alive, running, now))
        return out, writes

    def _target_of(self, spec: JobSpec) -> str:
        """spec.container_hash(), computed once per spec object (asked every tick for every job)."""
        cached = self._targets.get(spec.name)
        if cached is None or cached[0] is not spec:
            cached = self._targets[spec.name] = (spec, spec.container_hash())
        return cached[1]

    def _move_to(self, claim: Claim, spec: JobSpec, now: float) -> Claim:
        """Our slot `claim` takes `spec`'s version: a new claim of ours for it
        when it fits here (the runtime replaces the container), else the
        slot's release (it moves through an auction)."""
        key, target = claim.name, self._target_of(spec)
        demand = spec.demand()
        free = self.ledger.free(now)
        held = self.ledger.committed.get(key, claim.demand)
        if demand.fits_in(free + held) and self.ledger.commit(key, demand, now, spec.ports):
            first = start_first(spec.update, spec, room_for_both=demand.fits_in(self.handovers.room(free, key)))
            rnd = self.next_round(key)
            self._last_round[key] = rnd
            if first:
                self.handovers.old[key] = held
                # The copy of the claim we replace, and the copy it was itself
                # replacing if that hand-over may not have finished.
                self._start_first[key] = (ballot_label(claim), *self._handed.get(key, ())[:1])
            self.rollout_events.append(RolloutEvent(claim.job, "replacing", target, slot=key,
                                                    detail="start-first" if first else "stop-first"))
            return Claim(key, Ballot(rnd, self.ballot_id), self.name, False, target, demand,
                         self.ledger.ports_of(key))
        self.rollout_events.append(RolloutEvent(claim.job, "moving", target, slot=key,
                                                detail=f"the new version does not fit on {self.name}"))
        return self._release_claim(claim)

    def drain_rollout(self) -> tuple[list[RolloutEvent], list[JobSpec]]:
        """Rollout events and revert writes since the last drain (the core emits them)."""
        out = (self.rollout_events, self.reverts)
        self.rollout_events, self.reverts = [], []
        return out

    def _release_claim(self, claim: Claim) -> Claim:
        rnd = self.next_round(claim.name)
        self._last_round[claim.name] = rnd
        return release_of(claim, rnd, self.ballot_id)

    def _slot_needs_placing(self, key: str, statuses: Mapping[str, NodeStatus], alive: set[str]) -> bool:
        claim = self.winning_claim(key)
        return claim is None or not keeps_slot(claim.node, self._keeping, statuses)

    def _coordinate(self, job: str, spec: JobSpec, statuses: Mapping[str, NodeStatus], alive: set[str],
                    now: float, copies: CopyLookup | None = None) -> list[AuctionOutput]:
        inputs = self.settled.inputs(spec)
        if self.settled.is_settled(COORDINATE, job, inputs):
            return []  # nothing new since the last tick (auction.settled)
        busy = self.auctioneer.busy_slots(job)
        batch: dict[int, int] = {}
        all_kept = not busy
        for index in range(spec.replicas):
            key = slot_key(job, index)
            if index in busy or not self._slot_needs_placing(key, statuses, alive):
                self._awaiting_claim.pop(key, None)
                if index not in busy:
                    self.pending_reasons.pop(key, None)
                continue
            all_kept = False
            if not self._coordination.is_coordinator(job, index, spec, self.name):
                continue
            if (held := self.merges.holds_off(self.claims.get(key), alive, copies, now)) is not None:
                self.pending_reasons[key] = held    # a copy runs elsewhere (auction.merge_rule rule 3)
                continue
            waiting = self._awaiting_claim.get(key)
            if waiting is not None and waiting > now:
                continue
            if self.retries.waiting(key, now):
                continue
            batch[index] = self._last_round[key] = self.next_round(key)
        self.settled.record(COORDINATE, job, inputs, all_kept)
        outs: list[AuctionOutput] = []
        for version, rounds in rollout_act.versions_to_place(self, spec, batch):   # a lost slot's version
            chosen = candidates.choose(job, version, statuses, alive, len(rounds), sample_min=self.cfg.sample_min,
                                       sample_d=self.cfg.sample_d, rng=self._rng,
                                       winning_claim=self.winning_claim, avoid=self.retries.avoid(job, now),
                                       holding_below=self._holding_below)
            opened = self.auctioneer.open_round(
                job=job, spec_hash=version.container_hash(), rounds=rounds, candidates=chosen.names,
                max_per_node=version.max_per_node, spread_counts=chosen.spread_counts,
                ttl_s=self.cfg.auction_ttl_s, now=now, spec_json=version.canonical_json(),
                ties_from=self.name if version.strategy is Strategy.SPREAD else "",    # winner.py: why
                max_wins=chosen.max_wins, by_node=version.spreads_over_nodes,
                hold_for_silent=self.retries.may_hold(slot_key(job, i) for i in rounds))
            if chosen.sampled or (chosen.max_wins is not None and chosen.max_wins < len(rounds)):  # auction.retry
                self.retries.opened(o.msg.auction_id for o in opened[:1] if isinstance(o, SendTo))
            outs.extend(opened)
        return outs

    # ---- coordinator results
    def on_round_closed(self, rc: RoundClosed, now: float) -> list[SlotPending]:
        if rebalance_act.closed(self, rc, now):
            return []  # a move's round: the slot still runs where it was
        room_declined = any(map(is_room_decline, rc.declines.values()))
        out, sampled = [], self.retries.closed(rc.auction_id, room_declined or rc.held)
        if sampled:  # who declined for room is passed over by the job's next draws (auction.retry)
            self.retries.declined(rc.job, (n for n, why in rc.declines.items() if is_room_decline(why)), now)
        for index in rc.awarded:
            key = slot_key(rc.job, index)
            self._awaiting_claim[key] = now + self.cfg.claim_wait_s
            self.retries.placed(key)
            self.pending_reasons.pop(key, None)
        if rc.unplaced:
            reason = rc.pending_reason()
            for index in rc.unplaced:
                key = slot_key(rc.job, index)
                self.retries.failed(key, now, sampled, held=rc.held)
                self.pending_reasons[key] = reason
                out.append(SlotPending(key, reason))
        return out

    # ---- giving a failing slot back
    def give_up(self, key: str, reason: str, penalty_s: float, now: float) -> Claim | None:
        """Our replica of `key` keeps failing here: release the slot so it is
        re-auctioned, and decline this job's calls for penalty_s so it lands
        elsewhere.  Returns the release claim to write, if we hold the slot.

        The penalty is for the version that failed (our claim's container
        hash): calls for another version of the job -- the fix, a rollback
        -- are bid for at once.  A rollout to an image no node could pull
        left a slot with no node willing to take it for a minute after
        `shoal job rollback`, every node declining for the bad version.
        A global job's slot is kept (None): it has no other node to go to."""
        job, _ = parse_slot_key(key)
        claim = self.claims.get(key)
        if claim is None or not holds(claim, self.name):
            self._penalties[job] = (now + penalty_s, reason, None)   # which version failed is not known
            return None
        self._penalties[job] = (now + penalty_s, reason, claim.spec_hash)
        cached = self._spec_cache.get(job)
        if cached is not None and cached[1] is not None and cached[1].is_global:
            # No other node takes it (auction.global_jobs): the copy stays here,
            # failed, and a rollout counts it so (released, the slot left the
            # rollout's view, and its pacing let every node take the failing version).
            return None
        return self._release_claim(claim)

    def penalty(self, job: str, now: float, spec_hash: str | None = None) -> str | None:
        """Why we decline calls of `job` for `spec_hash` (None: any version), or None."""
        entry = self._penalties.get(job)
        if entry is None:
            return None
        if entry[0] <= now:
            del self._penalties[job]
            return None
        failed_hash = entry[2]
        if failed_hash is not None and spec_hash is not None and failed_hash != spec_hash:
            return None
        return entry[1]

    # ---- bidder side
    def on_call(self, call: CallForBids, *, spec: JobSpec | None, status: NodeStatus,
                now: float, waited: bool = False) -> Bid | Decline | Deferred:
        """Deferred: it waits (auction.bid_order); the core answers it later, waited=True."""
        spread = spec is not None and spec.strategy is Strategy.SPREAD
        if spread and not waited and self.bid_order.defer(call, now):
            return Deferred(call.auction_id, self.name)
        answer = self._answer(call, spec, status, now)
        if spread and isinstance(answer, Bid):
            self.bid_order.bid_open(call, now + reservation_ttl_s(call), now)
        return answer

    def on_release(self, rel: Release) -> None:
        self.bidder.on_release(rel)
        self.bid_order.resolved(rel.auction_id)

    def _answer(self, call: CallForBids, spec: JobSpec | None, status: NodeStatus, now: float) -> Bid | Decline:
        penalty = self.penalty(call.job, now, call.spec_hash)
        if penalty is not None:
            return Decline(call.auction_id, self.name, f"recently failed here: {penalty}")
        claimed = [k for k, c in self.my_claims().items() if c.job == call.job]
        ineligible = "drained" if status.drained else status.unhealthy_reason or "unhealthy"
        spec_hash = spec.container_hash() if spec is not None else None
        # A node without the image bids with a pull cost, or declines for
        # pull = "never" (auction.bidder).
        has_image = None if spec is None else self.has_image(spec)
        return self.bidder.on_call(call, spec=spec, spec_hash=spec_hash, labels=status.labels, eligible=status.eligible,
                                   ineligible_reason=ineligible, already=len(claimed), now=now, has_image=has_image,
                                   claimed=claimed, answered_ahead=self.bid_order.answered_after(call),
                                   preemptible=lambda: self._preemptible(call.job))

    def _holding_below(self, priority: int) -> set[str]:
        """Nodes holding a live replica of a replicated job at `priority` or lower."""
        out = set()
        for claim in self.claims.entries.values():
            if claim.released or claim.node in out:
                continue
            cached = self._spec_cache.get(claim.job)
            spec = None if cached is None else cached[1]
            if spec is not None and not spec.is_global and spec.priority <= priority:
                out.add(claim.node)
        return out

    def _preemptible(self, job: str) -> list[Candidate]:
        """Our replicas of other jobs that a higher priority may preempt
        (auction.preemption), not those already promised to another."""
        def spec_of(name: str) -> JobSpec | None:
            cached = self._spec_cache.get(name)
            return None if cached is None or name == job else cached[1]

        return preemption.candidates(self.my_claims(), spec_of, self.ledger.committed,
                                     self.claiming | self.ledger.promised())

    def on_award(self, award: Award, *, spec: JobSpec | None, now: float) -> list[Claim]:
        if spec is not None and spec.container_hash() != award.spec_hash:
            spec = None
        claimed = [k for k, c in self.my_claims().items() if c.job == award.job]
        accepted, _refused = self.bidder.on_award(award, spec=spec, now=now, claimed=claimed)
        self.bid_order.resolved(award.auction_id)
        if spec is None:
            return []  # the bidder accepts nothing without the spec
        # The claim carries the host ports the ledger gave the slot
        # (auction.portbook), so every agent knows where the replica listens.
        writes = [Claim(slot_key(award.job, index), Ballot(rnd, award.coordinator), self.name, False,
                        award.spec_hash, spec.demand(), self.ledger.ports_of(slot_key(award.job, index)))
                  for index, rnd in accepted]
        if self.bidder.preempted:
            writes.extend(self._preempted(spec, [c.name for c in writes], self.bidder.preempted))
        return writes

    def _preempted(self, spec: JobSpec, slots: list[str], victims: list[str]) -> list[Claim]:
        """Release the claims of the replicas an award preempted (the ledger
        already gave their room to it), and say so."""
        mine = self.my_claims()
        gone = [v for v in victims if v in mine]
        priorities = {v: self._victim_priority(v) for v in gone}
        self.preemptions.append(PreemptEvent(spec.name, ", ".join(slots), tuple(gone), f"priority {spec.priority} over "
                                             + ", ".join(f"{v} ({priorities[v]})" for v in gone)))
        return [self._release_claim(mine[v]) for v in gone]

    def _victim_priority(self, slot: str) -> int | str:
        cached = self._spec_cache.get(parse_slot_key(slot)[0])
        return "?" if cached is None or cached[1] is None else cached[1].priority

    # ---- keeping the runtime in line with the claims (auction.reconcile_act)
    def reconcile(self, specs_by_job: SpecLookup, now: float,
                  drained: RunningLookup | None = None, merging: RunningLookup | None = None) -> list[RuntimeCommand]:
        return reconcile_act.reconcile(self, specs_by_job, now, drained, merging)


def _retired(spec: JobSpec, index: int) -> bool:
    """Is slot `index` beyond what the job wants (a scale-down)?  A global
    job has no count: its slots are given back by their holders (auction.global_jobs)."""
    return not spec.is_global and index >= spec.replicas


def normalize_image(image: str) -> str:
    """'busybox', 'busybox:latest' and 'docker.io/library/busybox' name the
    same image ('busybox:latest', as the Docker runtime lists local images);
    digests stay as they are."""
    if "@" in image or image.startswith("sha256:"):
        return image
    last = image.rsplit("/", 1)[-1]
    if ":" not in last:
        image += ":latest"
    for prefix in ("docker.io/library/", "index.docker.io/library/", "docker.io/"):
        if image.startswith(prefix):
            return image[len(prefix):]
    return image
