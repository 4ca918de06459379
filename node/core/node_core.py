"""The node core: gossip membership + cluster state, composed, sans-I/O.

How this works: `NodeCore` wraps a `gossip.swim.Swim` and adds what an agent
must know about the cluster: every node's published status (capacity, free
resources, labels) and the replicated job store.  It has the same driving
shape as Swim: one entry point `feed(input, now)` for every input
(`node.core.inputs`: datagrams, streams, joins, job writes and their acks,
drain / health / runtime reports, ...), `next_deadline()` / `handle_timers(now)`
for time, and `drain()` for the typed outputs (`node.core.outputs`), so the
trio agent and the simulator pump it the same way, with the same input
values.  Swim's outputs pass through `drain()`, after the core has consumed
the ones meant for it (payloads, user messages).  Readers (API, metrics,
checkers) use `view` (`node.core.view.CoreView`), a read-only facade over
the live core; `swim`, `placement` and `store` are the core's own parts.
The private helpers behind `feed` keep the names the inputs had when each
was a method of its own (`_write_job` for WriteJob, `_persisted`, ...).

Cluster-state traffic rides on Swim's user channels, inside a small envelope
(`node.core.wire`):
  * a job write is broadcast (if small) the moment it is accepted;
  * every node publishes its store digest in its status record, and every
    `store_sync_interval_s` syncs with one random peer whose digest differs:
    bucket digests one way, the differing buckets' entries back and forth;
  * tombstones are collected once old and every live member shows our digest
(node.core.antientropy); our status record goes out as node.core.publish says.

Durability: a local write is not acknowledged until the driver has made it durable: the core emits
`PersistEntries(token=...)` and reports `JobWriteDone(token)` only after the driver feeds `Persisted(token)`.
Remote entries are persisted too (token None), but nobody waits on them: a peer holds them.

Wall-clock time (for HLC stamps) is `now + wall_offset_s` (set by the driver; the simulator
gives each node its own), corrected towards cluster time when far off (node.core.cluster_clock).
"""

from __future__ import annotations

import heapq
import random
from functools import partial
from collections.abc import Sequence
from dataclasses import replace
from typing import Any, overload

from auction.claims import Claim
from auction.container_policy import SAFE_POLICY, ContainerPolicy
from auction.messages import Award, Bid, CallForBids, Decline, Deferred, Release, RoundExtended
from auction import suspicion_rule
from auction.placement import Placement, PlacementConfig
from auction.resources import Resources
from gossip.config import GossipConfig
from gossip.events import (
    Address,
    MemberFailed,
    MemberJoined,
    MemberLeft,
    MemberState,
    MemberSuspected,
    MemberUpdated,
    PayloadUpdated,
    UserBroadcast,
    UserMessage,
)
from gossip.lww import LwwMap
from gossip.messages import Message, PushNodeState
from gossip.packet import StreamDecoder
from gossip.security import Keyring
from gossip.swim import PAYLOAD_MAX_BYTES, Swim
from node.core import admission, auction_link, clock_link, cluster_clock, merge_link, replay, rollout_link, wire
from node.core import claim_relay, runtime_reports
from node.core.job_push import JobPush
from node.core.antientropy import AntiEntropy
from node.core.status_sync import StatusSync
from node.core.config import (
    BROADCAST_ENTRY_MAX_BYTES,
    PLACEMENT_KICK_S,
    UDP_USER_MAX_BYTES,
    ClusterConfig,
)
from node.core.history import Meta
from node.core.hlc import HybridClock, base36
from node.core.inputs import (
    AbandonWrite,
    Broadcast,
    Datagram,
    ImageInventory,
    ImagePulls,
    Input,
    Join,
    Leave,
    Persisted,
    PlainInput,
    ReplicaGaveUp,
    RuntimeSlots,
    SendToMembers,
    SetDrained,
    SetHealth,
    StreamIn,
    StreamReply,
    WriteJob,
)
from node.core.jobstore import MAX_ENTRIES, MAX_JOBS, Entry, JobStore
from node.core.outputs import (
    ClaimChanged,
    CoreOutput,
    JobChanged,
    JobWriteDone,
    NodeStatusChanged,
    PersistClaims,
    PersistEntries,
    StateRefused,
)
from node.core.publish import PublishSchedule
from node.core.image_progress import bounded
from node.core.status import NodeStatus, RuntimeSummary, StatusError
from node.core.view import CoreView

# ClusterConfig lives in node.core.config; drivers take it from here, with the core.
__all__ = ["ClusterConfig", "JobLimitError", "NodeCore"]


class JobLimitError(ValueError):
    pass


class NodeCore:
    def __init__(self, *, name: str, addr: Address, gossip_config: GossipConfig, rng: random.Random,
                 now: float, capacity: Resources, labels: dict[str, str] | None = None,
                 agent_version: str = "", wall_offset_s: float = 0.0, meta: bytes = b"", address: str = "",
                 keyring: Keyring | None = None, label: bytes = b"", formed: Sequence[PushNodeState] = (),
                 cluster_config: ClusterConfig | None = None,
                 placement_config: PlacementConfig | None = None,
                 stored_entries: list[Entry] | None = None,
                 stored_claims: list[Claim] | None = None,
                 container_policy: ContainerPolicy = SAFE_POLICY, port_range: tuple[int, int] | None = None) -> None:
        self.name = name
        self.cfg = cluster_config or ClusterConfig()
        self.swim = Swim(name=name, addr=addr, config=gossip_config, rng=rng, now=now, meta=meta,
                         keyring=keyring, label=label, formed=formed)  # formed: World.start_formed
        self._rng = rng
        self.wall_offset_s = wall_offset_s
        self.clock = HybridClock(name)
        self.cluster_clock = cluster_clock.ClusterClock()  # no samples yet: our raw wall clock
        self.store = JobStore()
        stored, claims, self._outputs = admission.admit_stored(
            list(stored_entries or ()), list(stored_claims or ()), self._wall_ms(now), self.clock.max_skew_ms)
        for entry in stored:  # the current entries and the older versions of each job
            self.store.merge(entry)
            self.clock.observe(entry.stamp, self._wall_ms(now))
        self.store.take_history()  # read from disk: persisted already
        # Ballots name this run of the node, not just the node: name#<wall
        # clock ms at start, base 36>.  A coordinator that crashed after
        # sending an award, and restarted before hearing the winner's claim,
        # would otherwise reuse that round for the slot and two nodes could
        # accept the same ballot (found by the placement swarm, seed 65).
        self.ballot_id = f"{name}#{base36(self._wall_ms(now))}"
        # The claims map is placement's (`placement.claims`); the core keeps a
        # typed handle on it for anti-entropy, which needs more than
        # placement's view of it.
        self._claims: LwwMap[Claim] = LwwMap(MAX_ENTRIES)
        self.placement = Placement(name, capacity, rng, placement_config or PlacementConfig(),
                                   claims=self._claims, ballot_id=self.ballot_id,
                                   container_policy=container_policy, port_range=port_range)
        for claim in claims:
            self._claims.merge(claim)
        self.placement.adopt_stored()  # before any call for bids is answered
        self._replay = replay.ReplayHold(name, self._claims.entries.values(), now + self.cfg.replay_confirm_s)
        # A revert (and a slot still on an older version) finds that version's
        # spec in the job history, which outlives this agent's memory.
        self.placement.versions.older = rollout_link.older_versions(self)
        self.statuses: dict[str, NodeStatus] = {}
        self._status = NodeStatus(name, capacity, Resources(0, 0, 0), dict(labels or {}),
                                  agent_version=agent_version, address=address)  # address: publish address
        self._pending_writes: dict[int, Entry] = {}
        self._timers: list[tuple[float, int, str]] = []
        self._timer_seq = 0
        self.counters: dict[str, int] = {}
        self._place_at: float | None = None
        self._placed_at: float | None = None  # the last placement pass
        self._publish_when = PublishSchedule(self.cfg)
        self._sync = AntiEntropy(name, self.store, self._claims, rng, self.cfg, send=self._send, emit=self._emit,
                                 digests_moved=self._digests_moved, count=self._count)
        # Its own random stream (seeded from our name): its draws leave the core's other choices as they were.
        self._status_sync = StatusSync(name, random.Random(name), self.cfg, self.swim, send=self._send,
                                       count=self._count)
        self.runtime_summary: RuntimeSummary | None = None  # as reported, before fitting the record
        self._view = CoreView(self)
        self._job_push, self._relay = JobPush(), claim_relay.ClaimRelay()  # direct, not gossip (job_push, claim_relay)
        self._publish_status(now)
        self._schedule(now + self.cfg.store_sync_interval_s * rng.uniform(0.5, 1.0), "sync")
        self._schedule(now + self.placement.cfg.placement_interval_s * rng.uniform(0.5, 1.0), "place")

    # ---- plumbing shared with Swim's shape
    def _wall_ms(self, now: float) -> int:
        return clock_link.raw_wall_ms(self, now) + self.cluster_clock.correction_ms

    def _count(self, key: str) -> None:
        self.counters[key] = self.counters.get(key, 0) + 1

    def _schedule(self, at: float, kind: str) -> None:
        self._timer_seq += 1
        heapq.heappush(self._timers, (at, self._timer_seq, kind))

    # ---- the one entry point
    @overload
    def feed(self, inp: WriteJob, now: float) -> Entry: ...
    @overload
    def feed(self, inp: StreamIn, now: float) -> bytes | None: ...
    @overload
    def feed(self, inp: SendToMembers, now: float) -> tuple[str, ...]: ...
    @overload
    def feed(self, inp: PlainInput, now: float) -> None: ...

    def feed(self, inp: Input, now: float) -> Entry | bytes | tuple[str, ...] | None:
        """Apply one input (node.core.inputs) at local time `now`; collect
        what it caused with `drain()`.  Returns the Entry of a WriteJob, the
        reply bytes of a StreamIn, the members a SendToMembers went to, and
        None for every other input.  Raises TypeError for anything that is
        not an input, and what WriteJob raises for a refused write."""
        match inp:
            case Datagram(data, src):
                self._receive_datagram(data, src, now)
            case StreamIn(msg, src):
                return self._receive_stream(msg, src, now)
            case StreamReply(stream_id, reply):
                self._stream_reply(stream_id, reply, now)
            case Persisted(token):
                self._persisted(token, now)
            case WriteJob(name, spec, token):
                return self._write_job(name, spec, token, now, why=inp.why, by=inp.by, ref=inp.ref,
                                       promoted=inp.promoted)
            case AbandonWrite(token):  # the driver could not make the write durable: forget it
                self._pending_writes.pop(token, None)
            case Join(seeds):
                self._join(list(seeds), now)
            case Leave():
                self._leave(now)
            case Broadcast(data):
                self.swim.broadcast(data, now)
                self._absorb(now)
            case SendToMembers(data):
                return self._send_to_members(data, now)
            case SetDrained(drained):
                self._update_status(now, drained=drained)
            case SetHealth(healthy, reason):
                self._update_status(now, healthy=healthy, unhealthy_reason=reason)
            case ImageInventory(images):
                runtime_reports.image_inventory(self, images, now)
            case RuntimeSlots(states, rounds):
                runtime_reports.runtime_slots(self, states, now, rounds)
            case ImagePulls(pulls):  # progress, never urgent: the publish interval paces it
                self._update_status(now, pulls=bounded(pulls))
            case ReplicaGaveUp(slot, reason, penalty_s):
                runtime_reports.replica_gave_up(self, slot, reason, now, penalty_s)
            case _:
                raise TypeError(f"not a node core input: {inp!r}")
        return None

    @property
    def view(self) -> CoreView:
        """A read-only view of this core (node.core.view), built once."""
        return self._view

    def stream_decoder(self, incoming: bool) -> StreamDecoder:
        """A decoder for one TCP stream (pure: our label and keyring); the
        driver decodes a stream with it and feeds the message as StreamIn."""
        return self.swim.stream_decoder(incoming)

    def _receive_datagram(self, data: bytes, src: Address, now: float) -> None:
        self.swim.receive_datagram(data, src, now)
        self._absorb(now)

    def _receive_stream(self, msg: Message, src: Address, now: float) -> bytes | None:
        clock_link.offer(self, now)
        reply = self.swim.receive_stream(msg, src, now)
        self._absorb(now)
        return reply

    def _stream_reply(self, stream_id: int, reply: Message | None, now: float) -> None:
        self.swim.stream_reply(stream_id, reply, now)
        self._absorb(now)

    def _send_to_members(self, data: bytes, now: float) -> tuple[str, ...]:
        alive = (MemberState.ALIVE, MemberState.SUSPECT)
        sent = tuple(m.name for m in self.swim.members()
                     if m.name != self.name and m.state in alive
                     and self.swim.send_user_message(m.name, data, reliable=True, now=now))
        self._absorb(now)
        return sent

    def next_deadline(self) -> float | None:
        return self._next(self.swim.next_deadline())

    def next_wake(self, now: float) -> float | None:
        """As next_deadline(), with the gossip's timers that would do nothing
        passed over (Swim.next_wake): what the agent's pump sleeps until."""
        return self._next(self.swim.next_wake(now))

    def _next(self, swim_at: float | None) -> float | None:
        candidates = [t for t in (self._timers[0][0] if self._timers else None, swim_at,
                                  self.placement.auctioneer.next_deadline(), self.placement.bid_order.due(),
                                  self._place_at, self._publish_when.status_due,
                                  self._publish_when.digests_due, self._healthy_due()) if t is not None]
        return min(candidates) if candidates else None

    def handle_timers(self, now: float) -> None:
        clock_link.offer(self, now)  # before every call that may send a push/pull
        self.swim.handle_timers(now)
        while self._timers and self._timers[0][0] <= now:
            _, _, kind = heapq.heappop(self._timers)
            if kind == "sync":
                if self.name not in self.swim.alive_names():
                    # Leaving: ask for status records every round, moved lately or not: our
                    # copies stop once their replacements' records say they run (_place), and
                    # the agent waits for that before it exits (node.agent.handover).
                    self._status_sync.moved(now)
                self._sync.tick(self.live_statuses(), self._wall_ms(now), now)
                self._status_sync.tick(self.live_statuses(), now)
                self._schedule(now + self.cfg.store_sync_interval_s * self._rng.uniform(0.8, 1.2), "sync")
            elif kind == "place":
                self._place(now)
                self._schedule(now + self.placement.cfg.placement_interval_s * self._rng.uniform(0.8, 1.2),
                               "place")
        if self._place_at is not None and self._place_at <= now:
            self._place(now)
        if (due := self._healthy_due()) is not None and due <= now:
            self._place(now)  # a rolled-out slot has run min_healthy_s: the next ones may go
        when = self._publish_when
        if when.status_due is not None and when.status_due <= now:
            when.status_due = None
            self._publish_status(now)
        if when.digests_due is not None and when.digests_due <= now:
            when.digests_due = None
            self._publish_status(now)
        auction_link.handle_timers(self, now)
        self._absorb(now)

    def _join(self, seeds: list[Address], now: float) -> None:
        self.swim.join(seeds, now)
        self._absorb(now)

    def _leave(self, now: float) -> None:
        self.swim.leave(now)
        self._absorb(now)

    def drain(self) -> list[CoreOutput]:
        """Every output since the last drain, in the order produced."""
        out, self._outputs = self._outputs, []
        return out

    def _emit(self, out: CoreOutput) -> None:
        self._outputs.append(out)

    # ---- consuming Swim's outputs
    def _absorb(self, now: float) -> None:
        for out in clock_link.unread(self, self.swim.drain(), now):  # peers' clocks taken out
            if isinstance(out, PayloadUpdated):
                self._on_payload(out, now)
                self._emit(out)
            elif isinstance(out, UserBroadcast):
                self._on_message(out.origin, out.data, now, broadcast=True)
            elif isinstance(out, UserMessage):
                self._on_message(out.origin, out.data, now, broadcast=False)
            else:
                # A suspicion (or its refutation) changes who coordinates and who can win a slot:
                # re-place now, not up to placement_interval_s later.  A suspect's own slots wait
                # out their grace (_place looks again then).
                if isinstance(out, (MemberFailed, MemberLeft, MemberJoined, MemberSuspected, MemberUpdated)):
                    self._kick(now)
                self._emit(out)

    def _on_payload(self, out: PayloadUpdated, now: float) -> None:
        if out.node == self.name:
            return
        try:
            status: NodeStatus | None = NodeStatus.decode(out.data)
        except StatusError:
            status = None
        if status is None or status.name != out.node:
            self._count("status_invalid")
            why = "status_malformed" if status is None else "status_name_mismatch"
            self._emit(StateRefused("status", out.node, out.node, why))
            return
        old = self.statuses.get(out.node)
        self.statuses[out.node] = status
        self._status_sync.moved(now)
        merge_link.on_record(self, out.node, now)
        if old is None or old.drained != status.drained or old.healthy != status.healthy or \
                rollout_link.moved_in_rollout(self, old.runtime, status.runtime):
            self._kick(now)
        self._emit(NodeStatusChanged(status))

    def _on_message(self, origin: str, data: bytes, now: float, broadcast: bool) -> None:
        try:
            msg = wire.decode(data, self.cfg.max_spec_bytes)
        except wire.WireError:
            # Not ours: pass it on, the driver may speak other protocols over
            # user messages (the agent's cluster-wide key rotation does).
            self._count("node_message_invalid")
            self._emit(UserBroadcast(origin, data) if broadcast else UserMessage(origin, data))
            return
        if origin != self.name and self.swim.member(origin) is None:  # node.core.admission
            self._emit(StateRefused("message", origin, origin, "not_a_member"))
            return
        match msg:
            case wire.EntryBroadcast(entry):
                self._merge_remote([entry], now, origin)
            case wire.ClaimBroadcast(claims):
                self._merge_claims(list(claims), now, origin, direct=not broadcast)
            case wire.SyncDigest(map_id, buckets):
                self._sync.on_digest(origin, map_id, buckets, now)
            case wire.SyncEntries(map_id, entries, want):
                if map_id == wire.MAP_JOBS:
                    self._merge_remote(list(entries), now, origin)
                else:
                    self._merge_claims(list(entries), now, origin)
                if want:
                    self._sync.send_entries(origin, map_id, self._sync.maps[map_id].entries_in(list(want)), [], now)
            case wire.StatusVersions() | wire.StatusRecords() | wire.MembersWanted():
                self._status_sync.on_message(origin, msg, now)
                self._absorb(now)  # merged records' PayloadUpdated events, the alives told
            case CallForBids() | Bid() | Decline() | Deferred() | RoundExtended() | Award() | Release():
                auction_link.on_auction_message(self, msg, origin, now)
            case _:
                self._count("node_message_unexpected")

    # ---- status
    def status(self) -> NodeStatus:
        return self._status

    def _publish_status(self, now: float, digests_only: bool = False, urgent: bool = False,
                        repeat: bool = False) -> None:
        """Publish our status record, when node.core.publish's schedule lets
        it go (coalescing bursts; digest-only changes wait longer, a slot
        that turned running or failed less)."""
        if not self._publish_when.ask(now, digests_only, urgent, repeat):
            return
        self._status = replace(self._status, store_digest=self.store.digest(), jobs=self.store.live_count,
                               claims_digest=self._claims.digest(),
                               runtime=rollout_link.stamped(self.runtime_summary, self.name, self._claims.get),
                               ).fit(PAYLOAD_MAX_BYTES, keep=self.placement.rollouts.jobs)
        self.statuses[self.name] = self._status
        self.swim.set_payload(self._status.encode(), now)
        self._absorb(now)  # set_payload emits PayloadUpdated for ourselves: pass it through

    def _digests_moved(self, now: float) -> None:
        self._publish_status(now, digests_only=True)

    def _update_allocated(self, now: float) -> None:
        # Publish commitments only: reservations live for a fraction of a
        # second, and gossiping each one would flood the cluster for nothing
        # (bidders judge from their own ledger anyway).
        used = self.placement.ledger.committed_total()
        if used != self._status.allocated:
            self._update_status(now, allocated=used)

    def _update_status(self, now: float, urgent: bool = False, repeat: bool = False, **changes: Any) -> None:
        new = replace(self._status, **changes)
        if new != self._status:
            self._status = new
            self._publish_status(now, urgent=urgent, repeat=repeat)

    def live_statuses(self) -> dict[str, NodeStatus]:
        """Statuses of members currently believed alive (and ourselves)."""
        alive = self.swim.alive_names()
        return {n: s for n, s in self.statuses.items() if n in alive}

    # ---- jobs
    def _write_job(self, name: str, spec: bytes | None, token: int, now: float, *, why: str = "submit",
                   by: str = "", ref: str = "", promoted: str = "") -> Entry:
        """Submit (spec bytes) or delete (None) a job as its next version (node.core.history).  The
        driver persists the entry and feeds Persisted(token); JobWriteDone(token) follows."""
        if spec is not None and self.store.get(name) in (None,) and self.store.live_count >= MAX_JOBS:
            raise JobLimitError(f"the cluster holds {MAX_JOBS} jobs already")
        if spec is not None and len(spec) > self.cfg.max_spec_bytes:
            raise ValueError(f"spec is {len(spec)} bytes; the limit is {self.cfg.max_spec_bytes}")
        version = self.store.next_version(name, self._pending_writes.values())
        meta = Meta(version, "delete" if spec is None else why, by, ref, promoted)
        entry = Entry(name, self.clock.tick(clock_link.write_wall_ms(self, now)), spec, meta)
        # Not merged yet: nothing is visible, readable or synced to peers
        # until it is durable here (persisted), and a failed write leaves no
        # trace (abandon_write).
        self._pending_writes[token] = entry
        self._emit(PersistEntries((entry,), token))
        return entry

    def _persisted(self, token: int, now: float) -> None:
        entry = self._pending_writes.pop(token, None)
        if entry is None:
            return
        if not self.store.merge(entry):
            # A newer write for this name arrived meanwhile: ours is durable but
            # lost under last-writer-wins; say so (the API answers 409, not done).
            self._emit(JobWriteDone(token, entry, superseded_by=self.store.get(entry.name)))
            return
        # Spread only what is durable here: the ack and the gossip go together.
        self._emit(JobWriteDone(token, entry))
        self._emit(JobChanged(entry, True))
        encoded = wire.encode(wire.EntryBroadcast(entry))
        if len(encoded) <= BROADCAST_ENTRY_MAX_BYTES:
            self.swim.broadcast(encoded, now)
        self._job_push.push(self, entry, now)
        self._publish_status(now, digests_only=True)
        self._kick(now)

    def _merge_remote(self, entries: list[Entry], now: float, origin: str) -> None:
        changed = []
        wall = self._wall_ms(now)
        entries, refused = admission.admit_entries(entries, wall, self.clock.max_skew_ms, origin)
        self._outputs.extend(refused)
        for entry in entries:
            self.clock.observe(entry.stamp, wall)
            if self.store.merge(entry):
                changed.append(entry)
        if changed or self.store.history_pending:  # older versions filed: persist them too
            self._emit(PersistEntries(tuple(changed), None, self.store.take_history()))
            for entry in changed:
                self._emit(JobChanged(entry, False))
            self._publish_status(now, digests_only=True)
            if changed:
                self._kick(now)

    # ---- messages to peers (anti-entropy is node.core.antientropy)
    def _send(self, peer: str, msg: wire.NodeMessage, now: float, reliable: bool = True) -> None:
        data = wire.encode(msg)
        if not reliable and len(data) > UDP_USER_MAX_BYTES:
            reliable = True
        if peer == self.name:
            # Talking to ourselves (we coordinate and bid): skip the network.
            self._on_message(self.name, data, now, broadcast=False)
            return
        if not self.swim.send_user_message(peer, data, reliable=reliable, now=now):
            self._count("send_to_unknown_peer")
        self._absorb(now)

    # ---- placement
    def _kick(self, now: float) -> None:
        """Run a placement pass soon (coalescing bursts of changes)."""
        if self._place_at is None:
            self._place_at = now + PLACEMENT_KICK_S

    def _healthy_due(self) -> float | None:
        """When a rollout's running slot turns healthy, if no pass since saw it (auction.rollout)."""
        due = self.placement.rollouts.next_healthy_at()
        return due if due is not None and (self._placed_at is None or due > self._placed_at) else None

    def _place(self, now: float) -> None:
        self._place_at = None
        self._placed_at = now
        alive = self.swim.alive_names()
        if self.name not in alive:
            # Leaving: no new work, but our copies still stop as their
            # replacements run (auction.merge_rule), which the agent waits
            # for before it exits (node.agent.handover).
            self._reconcile(now)
            return
        jobs = {e.name: e for e in self.store.live()}
        deleted = {n for n, e in self.store.entries.items() if e.deleted}
        # A suspect keeps its slots through a grace (auction.suspicion_rule);
        # look again when the next one ends.
        suspicions = self.swim.suspicions()
        keeping = suspicion_rule.keeping(alive, suspicions, now)
        # ... and so does every holder our disk names, until our claims are
        # confirmed (node.core.replay): a restarted agent has not heard from them yet.
        keeping |= self._replay.keeping(now, self._view.claims_replayed)
        outs, writes = self.placement.tick(jobs=jobs, deleted=deleted, statuses=self.live_statuses(), alive=alive,
                                           now=now, running=rollout_link.lookup(self), wall_ms=self._wall_ms(now),
                                           copies=merge_link.copies(self, now), keeping=keeping)
        # Replicas this tick preempted (auction.preemption) have left the
        # ledger; their releases are written first, so that an award of ours
        # handled below, using the room they leave over, starts nothing
        # before they are stopped (reconcile stops first).
        preempted = bool(writes and self.placement.preemptions)
        if preempted:
            rollout_link.after_place(self, self._write_claims(writes, now), now)
        for out in outs:
            self._auction_output(out, now)
        auction_link.answer_waiting_calls(self, now)  # spread calls a gone coordinator held up (auction.bid_order)
        self._relay.placed(self, now)  # slots we hold: their next coordinators told
        if not preempted:
            rollout_link.after_place(self, self._write_claims(writes, now) if writes else [], now)
        self._reconcile(now)
        grace_ends = suspicion_rule.next_expiry(suspicions, now)
        if grace_ends is not None and (self._place_at is None or grace_ends < self._place_at):
            self._place_at = grace_ends

    def _auction_output(self, out: object, now: float) -> None:
        auction_link.auction_output(self, out, now)

    def _reconcile(self, now: float) -> None:
        cmds = self.placement.reconcile(partial(auction_link.spec_for, self), now, rollout_link.drained_lookup(self),
                                        merge_link.winner_state(self))
        for cmd in self._replay.filter(cmds, now, self._view.claims_replayed, self._claims.get):
            self._emit(cmd)
        self._update_allocated(now)

    def _write_claims(self, claims: list[Claim], now: float) -> list[Claim]:
        """Merge our own claim writes and spread them; returns those that won."""
        before = self._claims.digest()
        won = [c for c in claims if self._claims.merge(c)]
        self.placement.claims_merged(won, before)
        # Batch one award's claims into as few broadcasts as fit a packet.
        batch: list[Claim] = []
        for claim in won:
            self._emit(ClaimChanged(claim))
            if batch and len(wire.encode(wire.ClaimBroadcast((*batch, claim)))) > BROADCAST_ENTRY_MAX_BYTES:
                self.swim.broadcast(wire.encode(wire.ClaimBroadcast(tuple(batch))), now)
                batch = []
            batch.append(claim)
        if batch:
            data = wire.encode(wire.ClaimBroadcast(tuple(batch)))
            if len(data) <= BROADCAST_ENTRY_MAX_BYTES:
                self.swim.broadcast(data, now)
            # else: a single oversized claim spreads by digest sync only
        if won:
            self._emit(PersistClaims(tuple(won)))
            moved = merge_link.record_moved(self)  # a rollout's move: the next slots wait on our record
            self._publish_status(now, digests_only=not moved, urgent=moved)
        return won

    def _merge_claims(self, claims: list[Claim], now: float, origin: str, direct: bool = False) -> None:
        claims, refused = admission.admit_claims(claims, self._claims.get, origin)
        self._outputs.extend(refused)
        before, had = self._claims.digest(), {c.name: self._claims.get(c.name) for c in claims}
        changed = [c for c in claims if self._claims.merge(c)]
        self.placement.claims_merged(changed, before)
        self._relay.merged(self, had, claims, changed, now, direct)  # two copies of a slot, large clusters
        if changed:
            for claim in changed:
                self._emit(ClaimChanged(claim))
            self._emit(PersistClaims(tuple(changed)))
            self._publish_status(now, digests_only=not merge_link.record_moved(self))
            self._reconcile(now)
            self._kick(now)
