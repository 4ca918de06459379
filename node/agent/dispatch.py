"""What the agent does with each output of the node core.

How this works: the pump calls `Dispatcher.dispatch(outputs, now)` right
after feeding the core, with no `await` in between, and nothing here blocks:
datagrams go to the transport's bounded send queue, streams to new dial
tasks, durable writes to the persistence task's bounded channel, replicas to
the runtime's non-blocking `start`/`stop`, events to the event log (whose
subscribers are bounded too).  Every change also bumps the agent-local index
of the resources it touches (node.api.blocking: members, nodes, jobs), so
blocking reads wake up, and moves the counters in /v1/metrics.

One output that raises while being handled is dropped, counted
(shoal_input_failures_total{kind="dispatch"}) and logged with its traceback
(rate-limited, node.agent.droplog); the outputs after it still go out.
State the core refused to merge (`StateRefused`) is counted in
shoal_state_refused_total{reason} and logged, rate-limited.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from auction.auctioneer import RoundClosed
from auction.claims import Claim
from auction.spec import JobSpec
from gossip.events import (
    JoinCompleted,
    MemberFailed,
    MemberInfo,
    MemberJoined,
    MemberLeft,
    MemberSuspected,
    MemberUpdated,
    OpenStream,
    PacketDropped,
    PayloadUpdated,
    SendDatagram,
    UserBroadcast,
    UserMessage,
    UserStateReceived,
)
from node.telemetry import slot_trace
from node.agent.keys import read_key_message
from node.api.views import member_view
from node.core.jobstore import Entry
from node.core.outputs import (
    AwardAccepted,
    ClaimChanged,
    CoreOutput,
    ForgetClaims,
    ForgetEntries,
    JobChanged,
    JobWriteDone,
    NodeStatusChanged,
    PersistClaims,
    PersistEntries,
    PreemptEvent,
    RebalanceEvent,
    RolloutEvent,
    SlotPending,
    StartReplica,
    StateRefused,
    StopReplica,
)
from node.core.status import NodeStatus
from node.state.statedir import StoreOp

if TYPE_CHECKING:
    from node.agent.agent import Agent

log = logging.getLogger("shoal.agent")

STATUS_SEEN_MAX = 10_000


class Dispatcher:
    def __init__(self, agent: Agent) -> None:
        self.agent = agent
        self._status_seen: dict[str, tuple[object, ...]] = {}
        # Slot traces (node.agent.slot_trace): our record, and others'.
        self._published = slot_trace.RunningSeen("published", agent.name)
        self._seen = slot_trace.RunningSeen("seen", agent.name)

    def dispatch(self, outputs: list[CoreOutput], now: float) -> None:
        for out in outputs:
            try:
                self._one(out, now)
            except Exception:  # noqa: BLE001 -- one output's failure must not lose the rest
                self.agent.metrics.input_failed("dispatch")
                self.agent.drop_log.failure("dispatch", f"output {type(out).__name__}")

    def _one(self, out: CoreOutput, now: float) -> None:
        a = self.agent
        transport = a.transport
        core = a.core
        assert transport is not None and core is not None
        match out:
            case SendDatagram(addr, data):
                transport.send_datagram(addr, data)
            case OpenStream():
                transport.start_dial(out)
            case PersistEntries(entries, token, history):
                a.persistence.store(StoreOp("entries", entries, token, history), core)
            case ForgetEntries(names):
                a.persistence.store(StoreOp("forget_entries", names), core)
                a.indexes.bump("jobs")
            case PersistClaims(claims):
                a.persistence.store(StoreOp("claims", claims), core)
            case ForgetClaims(names):
                a.persistence.store(StoreOp("forget_claims", names), core)
            case JobWriteDone(token, entry, superseded_by):
                a.persistence.write_done(token, entry, superseded_by)
            case StateRefused(kind, name, origin, reason):
                a.metrics.refuse_state(reason)
                a.drop_log.refused(kind, name, origin, reason)
            case JobChanged(entry, local):
                self._job_changed(entry, local)
            case ClaimChanged(claim):
                a.indexes.bump("jobs")
                a.events.publish("claim", slot=claim.name, node=claim.node, released=claim.released,
                                 ballot=[claim.ballot.round, claim.ballot.coordinator])
            case NodeStatusChanged(status):
                self._node_status(status)
            case StartReplica(claim, spec, replaces, adopt_only):
                self._start_replica(claim, spec, replaces, adopt_only)
            case StopReplica(slot, reason):
                self._stop_replica(slot, reason)
            case AwardAccepted(claim):
                a.cluster_metrics.awards.inc()
                slot_trace.step(claim.name, "claimed", a.name)
                a.events.publish("award_accepted", slot=claim.name,
                                 ballot=[claim.ballot.round, claim.ballot.coordinator])
            case RolloutEvent(job, kind, target, slot, detail):
                a.indexes.bump("jobs")
                log.info("rollout of %s: %s %s %s", job, kind, slot, detail)
                a.events.publish("rollout_" + kind, job=job, target=target[:12], slot=slot, detail=detail)
            case PreemptEvent(job, slot, victims, detail):
                a.indexes.bump("jobs")
                log.info("preempted %s for %s: %s", ", ".join(victims), slot, detail)
                a.events.publish("preempted", job=job, slot=slot, victims=list(victims), detail=detail)
            case RebalanceEvent(job, kind, slot, detail):
                a.indexes.bump("jobs")
                log.info("rebalancing %s: %s %s %s", job, kind, slot, detail)
                a.events.publish("rebalance_" + kind, job=job, slot=slot, detail=detail)
            case SlotPending(slot, reason):
                a.indexes.bump("jobs")
                log.debug("slot %s pending: %s", slot, reason)
                a.events.publish("slot_pending", slot=slot, reason=reason)
            case RoundClosed():
                self._round_closed(out)
            case PacketDropped(reason, source):
                a.metrics.drop(reason)
                a.drop_log.report(reason, source)
            case MemberJoined(m):
                self._member_event("joined", m, now, logging.INFO)
            case MemberUpdated(m):
                self._member_event("updated", m, now, logging.DEBUG)
            case MemberSuspected(m):
                self._member_event("suspected", m, now, logging.INFO)
            case MemberFailed(m):
                self._member_event("failed", m, now, logging.INFO)
            case MemberLeft(m):
                self._member_event("left", m, now, logging.INFO)
            case JoinCompleted():
                a.membership.join_completed(out)
            case UserMessage(origin, data):
                self._user_message(origin, data)
            case UserBroadcast(origin, data):
                a.events.publish("user_broadcast", origin=origin, size=len(data))
            case PayloadUpdated(node=node):
                # Our own status (others' come as NodeStatusChanged too).
                a.indexes.bump("nodes", "jobs")
                if node == a.name:
                    self._node_status(core.view.status)
            case UserStateReceived(origin, data, join):
                log.debug("user state from %s (%d bytes, join=%s)", origin, len(data), join)
            case _:
                log.debug("unhandled core output %r", out)

    def _job_changed(self, entry: Entry, local: bool) -> None:
        a = self.agent
        a.indexes.bump("jobs")
        kind = "job_deleted" if entry.deleted else "job_updated"
        meta = entry.meta  # the version's number and why (node.core.history)
        a.events.publish(kind, name=entry.name, local=local,
                         version=[entry.stamp.wall_ms, entry.stamp.counter, entry.stamp.node],
                         job_version=meta.version if meta else None, why=meta.why if meta else None,
                         by=meta.by if meta else None, ref=meta.ref if meta else None)
        log.log(logging.INFO if local else logging.DEBUG, "job %s %s%s%s", entry.name,
                "stopped" if entry.deleted else "written", " here" if local else f" by {entry.stamp.node}",
                f" (version {meta.version}, {meta.why}{' ' + meta.ref if meta.ref else ''})" if meta else "")

    def _node_status(self, status: NodeStatus) -> None:
        a = self.agent
        runtime = status.runtime.jobs if status.runtime is not None else None
        (self._published if status.name == a.name else self._seen).update(status.name, runtime)
        a.indexes.bump("nodes", "jobs")
        # Events only for what people watch (not every allocation or digest).
        key = (status.capacity, tuple(sorted(status.labels.items())), status.drained, status.healthy,
               status.unhealthy_reason, status.agent_version)
        if self._status_seen.get(status.name) == key:
            return
        if len(self._status_seen) > STATUS_SEEN_MAX:
            self._status_seen.clear()
        self._status_seen[status.name] = key
        a.events.publish("node_status", node=status.name, drained=status.drained, healthy=status.healthy,
                         eligible=status.eligible, capacity=str(status.capacity), labels=status.labels)

    def _start_replica(self, claim: Claim, spec: JobSpec, replaces: tuple[str, ...] = (),
                       adopt_only: bool = False) -> None:
        a = self.agent
        if adopt_only:
            # A claim read from disk (node.core.replay): the full start follows once peers confirm it.
            log.info("keep %s here if it still runs (ballot %d by %s, from before the restart); start it "
                     "once peers confirm the claim", claim.name, claim.ballot.round, claim.ballot.coordinator)
            try:
                a.runtime.start(claim, spec, replaces, adopt_only=True)
            except Exception:
                log.exception("runtime failed to take start of %s", claim.name)
            return
        a.cluster_metrics.placements.inc()
        slot_trace.step(claim.name, "desired", a.name)
        log.info("start %s here (ballot %d by %s)", claim.name, claim.ballot.round, claim.ballot.coordinator)
        a.events.publish("replica_start", slot=claim.name, image=spec.image,
                         ballot=[claim.ballot.round, claim.ballot.coordinator])
        try:
            a.runtime.start(claim, spec, replaces)
        except Exception:
            log.exception("runtime failed to take start of %s", claim.name)

    def _stop_replica(self, slot: str, reason: str) -> None:
        a = self.agent
        a.cluster_metrics.stops.inc()
        log.info("stop %s here: %s", slot, reason)
        a.events.publish("replica_stop", slot=slot, reason=reason)
        try:
            a.runtime.stop(slot, reason)
        except Exception:
            log.exception("runtime failed to take stop of %s", slot)

    def _round_closed(self, rc: RoundClosed) -> None:
        a = self.agent
        a.indexes.bump("jobs")
        outcome = "unplaced" if not rc.awarded else "partial" if rc.unplaced else "placed"
        a.cluster_metrics.rounds.labels(outcome=outcome).inc()
        slot_trace.awarded(rc.job, rc.awarded, a.name)
        log.debug("auction %s for %s closed: awarded %s, unplaced %s", rc.auction_id, rc.job,
                  rc.awarded, rc.unplaced)
        a.events.publish("auction_closed", job=rc.job, auction=rc.auction_id,
                         awarded={str(i): node for i, (node, _) in sorted(rc.awarded.items())},
                         unplaced=list(rc.unplaced), declines=dict(rc.declines), silent=list(rc.silent))

    def _member_event(self, kind: str, m: MemberInfo, now: float, level: int) -> None:
        a = self.agent
        a.indexes.bump("members", "nodes", "jobs")
        a.metrics.member_events.labels(event=kind).inc()
        a.events.publish(f"member_{kind}", member=member_view(m, now))
        log.log(level, "member %s: %s (%s)", kind, m.name, m.addr)

    def _user_message(self, origin: str, data: bytes) -> None:
        """Other agents' cluster-wide key changes arrive as user messages
        (node.agent.keys checks their epoch, applies, counts and logs)."""
        a = self.agent
        outcome = a.keys.receive(data, origin)
        if outcome is None:
            a.events.publish("user_message", origin=origin, size=len(data))
            return
        if outcome in ("applied", "unchanged"):
            msg = read_key_message(data)  # it parsed a moment ago
            a.events.publish("key", origin=origin, action=msg.action if msg else None,
                             changed=outcome == "applied")
