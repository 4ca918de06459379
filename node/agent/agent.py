"""The shoal agent: one trio nursery around one node core.

How this works
--------------
`Agent.run()` builds, in order: the keyring (node.agent.keys), the sockets
(node.agent.transport, bound first so the core knows its real port), the node's
capacity and labels (node.agent.probe and the config), the durable stores in the
state dir (node.state.persist for jobs, node.state.claimstore for claims: opened and
read in a worker thread; every problem they report is logged at ERROR and
counted in `shoal_state_problems_total`), the HTTP API (node.api.server, bound
before the core so its address can go into our tags), the core
(`node.core.node_core.NodeCore`: gossip.swim.Swim + job store + node status +
placement, given what the stores held), the container runtime
(node/runtime_fake.py documents the interface), and then starts the tasks:

    UDP receiver ─┐                                 ┌──> UDP sender queue
    TCP conns  ───┤                                 ├──> dial tasks (OpenStream)
    dial results ─┼──> input channel ──> PUMP ──────┼──> persistence task ──> SQLite
    API calls  ───┤      (bounded)        │         │      (bounded channel)  (threads)
    persisted ────┘                       │         └──> runtime.start/stop
         ^                                └──> event log, indexes, metrics, logs
         └──────── persistence task: core.persisted(token) after a durable write

EXACTLY ONE task, the pump, touches the core.  Each turn it waits for the next
input or the core's next deadline (`core.next_deadline()`, on trio's clock),
feeds the input or fires the timers, drains the outputs and dispatches them,
with no `await` between feeding and dispatching.  Dispatch never blocks:
datagrams go to the transport's bounded send queue, streams to new dial
tasks, writes to the persistence task's bounded channel, replicas to the
runtime's non-blocking `start`/`stop`, events to the event log (whose
subscribers are bounded too).

Everyone else talks to the core through the input channel:
  * datagrams are put with `send_nowait` and dropped (counted as
    `input_queue_full`) when the pump is behind, as memberlist drops past its
    handoff queue;
  * an inbound TCP stream sends (message, reply channel) and awaits the reply
    bytes the core produced;
  * API handlers use `Agent.call(fn)`: `fn(core, now)` runs inside the pump
    and its result (or exception) comes back; membership is `core.swim`.
    `call(fn, track=True)` also returns a `StreamTracker` for the TCP
    streams the call opened, so a caller can wait for e.g. the outcome of a
    cluster-wide key change.

Durability of a submission (`POST /v1/jobs`, `DELETE /v1/jobs/NAME`): the API
task registers a waiter under a fresh token and calls `core.write_job(...,
token)`; the core emits `PersistEntries(token)`; the persistence task writes
it (SQLite, WAL, synchronous=FULL: fsynced on commit) and only then feeds
`core.persisted(token)` back through the input channel; the core answers
`JobWriteDone(token)` (and starts gossiping the entry), which wakes the
waiter, and the API answers 201.  A failed write, or a persistence queue
that is full, fails the waiter instead: the API answers 503 with the reason
and nothing is acknowledged.  Entries learned from peers, claims, and
collections (`ForgetEntries`, `PersistClaims`, `ForgetClaims`) go the same
way without a waiter.  Without a state dir nothing is durable: writes are
acknowledged as soon as they are in memory (logged as a warning at start).

Blocking queries: every change the pump dispatches bumps the agent-local
index of the resources it touches (node.api.blocking: members, nodes, jobs);
reads return the index with their answer and can wait for it to move.

Joining: `--join` seeds are resolved and joined by push/pull; until at least
one seed answers we retry with exponential backoff (1 s doubling to 30 s,
with jitter), logging every failed seed with the reason (the transport's
error if the dial failed, else the core's).

Leaving: SIGINT/SIGTERM (or `POST /v1/agent/leave`) calls `core.leave(now)`
and keeps the pump running until the leave broadcast is out
(`pending_broadcasts() == 0`) or `LEAVE_WAIT_S` passes, then exits cleanly.
A second signal exits at once.

Dropped packets are counted by reason in /v1/metrics; the ones that point at a
configuration problem (wrong key, missing encryption, wrong label) are also
logged at WARNING, at most once per `DROP_LOG_INTERVAL_S` per (packet or
stream, reason, host), with the count of the ones suppressed in between.
"""

from __future__ import annotations

import itertools
import json
import logging
import math
import os
import random
import signal
import socket
import tempfile
import time
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any, Callable

import trio

from auction.auctioneer import RoundClosed
from auction.resources import Resources
from auction.spec import JobSpec
from gossip.config import GossipConfig, preset
from gossip.events import (
    Address,
    JoinCompleted,
    MemberFailed,
    MemberInfo,
    MemberJoined,
    MemberLeft,
    MemberState,
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
from gossip.messages import Message
from gossip.security import Keyring
from gossip.swim import Swim
from node.agent import probe
from node.api import views
from node.api.blocking import Indexes
from node.telemetry.clustermetrics import ClusterMetrics
from node.agent.config import AgentConfig, ConfigError, HostPort, advertise_address, check_status_size, tuning_json
from node.core.node_core import (
    ClaimChanged,
    ForgetClaims,
    ForgetEntries,
    JobChanged,
    JobWriteDone,
    NodeCore,
    NodeStatusChanged,
    PersistClaims,
    PersistEntries,
)
from node.telemetry.eventlog import EventLog
from node.core.jobstore import Entry
from node.agent.keys import KeyManager, KeyOpError, decode_key_message, encode_key_message, initial_keys
from node.telemetry.metrics import AgentMetrics
from node.state.persist import EntryRejected, PersistError
from auction.placement import AwardAccepted, SlotPending, StartReplica, StopReplica
from node.runtime.fake import FakeRuntime
from node.state.statedir import Loaded, StateDir, StoreOp
from node.core.status import NodeStatus
from node.agent.tags import encode_tags
from node.agent.transport import Transport
from node.api.views import member_view

log = logging.getLogger("shoal.agent")

INPUT_QUEUE_DEPTH = 1024
PERSIST_QUEUE_DEPTH = 256
WRITE_TIMEOUT_S = 10.0  # a submission not durable by then is answered 503
LEAVE_WAIT_S = 2.0
JOIN_BACKOFF_START_S = 1.0
JOIN_BACKOFF_MAX_S = 30.0
DROP_LOG_INTERVAL_S = 10.0
DROP_LOG_KEYS_MAX = 1024
API_SHUTDOWN_WAIT_S = 1.5
CLAIMS_REPLAYED_POLL_S = 0.5
RUNTIME_POLL_S = 0.5

_DROP_EXPLAINED = {
    "decrypt": "no installed key decrypts it (different encryption key?)",
    "unencrypted": "it is not encrypted and this agent requires encryption",
    "label": "its cluster label does not match ours",
}


def agent_version() -> str:
    try:
        return metadata.version("shoal")
    except metadata.PackageNotFoundError:  # running from a source tree
        return "0.0.0-dev"


# ---- errors the API maps to statuses ------------------------------------------------


class StateWriteError(Exception):
    """A job write was not made durable (HTTP 503): nothing acknowledged."""


class JobNotFound(LookupError):
    """No live job of that name (HTTP 404)."""


# ---- pump inputs ----------------------------------------------------------------


@dataclass(slots=True)
class _Datagram:
    data: bytes
    src: Address


@dataclass(slots=True)
class _Stream:
    msg: Message
    src: Address
    reply: trio.MemorySendChannel


@dataclass(slots=True)
class _DialResult:
    cmd: OpenStream
    reply: Message | None
    error: str | None


@dataclass(slots=True)
class _Call:
    fn: Callable[[NodeCore, float], Any]
    reply: trio.MemorySendChannel
    tracker: "StreamTracker | None" = None


@dataclass(slots=True)
class _Persisted:
    token: int


@dataclass
class _WriteWaiter:
    done: trio.Event = field(default_factory=trio.Event)
    entry: Entry | None = None
    error: str | None = None

    def succeed(self, entry: Entry) -> None:
        if not self.done.is_set():
            self.entry = entry
            self.done.set()

    def fail(self, error: str) -> None:
        if not self.done.is_set():
            self.error = error
            self.done.set()


@dataclass
class StreamTracker:
    """Outcomes of the TCP streams one `Agent.call` opened: addr -> error or None."""

    pending: set[int] = field(default_factory=set)
    outcomes: dict[int, tuple[Address, str | None]] = field(default_factory=dict)
    done: trio.Event = field(default_factory=trio.Event)

    def _opened(self, stream_id: int) -> None:
        self.pending.add(stream_id)

    def _closed(self, stream_id: int, addr: Address, error: str | None) -> None:
        self.pending.discard(stream_id)
        self.outcomes[stream_id] = (addr, error)
        if not self.pending:
            self.done.set()

    def _sealed(self) -> None:
        if not self.pending:
            self.done.set()

    async def wait(self, timeout_s: float) -> None:
        with trio.move_on_after(timeout_s):
            await self.done.wait()


@dataclass
class _JoinWaiter:
    seeds: set[Address]
    results: dict[Address, str | None] = field(default_factory=dict)
    done: trio.Event = field(default_factory=trio.Event)


class _DropLog:
    """Rate-limited WARNINGs for drops that mean misconfiguration."""

    def __init__(self, interval_s: float = DROP_LOG_INTERVAL_S) -> None:
        self.interval_s = interval_s
        self._last: dict[tuple[str, str, str], tuple[float, int]] = {}

    def report(self, reason: str, src: Address | None, what: str = "packet") -> None:
        why = _DROP_EXPLAINED.get(reason)
        host = src.host if src is not None else "?"
        if why is None:
            log.debug("%s from %s dropped: %s", what, src or "?", reason)
            return
        key = (what, reason, host)
        now = time.monotonic()
        last, suppressed = self._last.get(key, (-math.inf, 0))
        if now - last < self.interval_s:
            self._last[key] = (last, suppressed + 1)
            return
        if len(self._last) >= DROP_LOG_KEYS_MAX:
            self._last.clear()
        self._last[key] = (now, 0)
        more = f" ({suppressed} more since last report)" if suppressed else ""
        log.warning("%s from %s dropped: %s%s", what, src or "?", why, more)


def node_capacity(cfg: AgentConfig) -> Resources:
    """What this node offers to jobs: declared or measured, minus the reserve
    (declared, or node.agent.probe's default for the machine)."""
    measured = probe.measure(cfg.state_dir)
    machine = Resources(
        cfg.cpu_millis if cfg.cpu_millis is not None else measured.cpu_millis,
        cfg.memory_bytes if cfg.memory_bytes is not None else measured.memory_bytes,
        measured.disk_bytes,
    )
    default = probe.default_reserve(machine)
    reserve = Resources(
        cfg.reserve_cpu_millis if cfg.reserve_cpu_millis is not None else default.cpu_millis,
        cfg.reserve_memory_bytes if cfg.reserve_memory_bytes is not None else default.memory_bytes,
        default.disk_bytes,
    )
    return probe.capacity(cfg.state_dir, cpus=f"{machine.cpu_millis}m", memory_bytes=machine.memory_bytes,
                          reserve=reserve, measured=measured)


def node_labels(cfg: AgentConfig) -> dict[str, str]:
    labels = {"arch": probe.arch(), **dict(cfg.labels)}
    check_status_size(cfg.name, labels)
    return labels


# ---- the agent ------------------------------------------------------------------


class Agent:
    def __init__(self, config: AgentConfig, *, gossip_config: GossipConfig | None = None,
                 runtime: Any = None) -> None:
        self.config = config
        self.gossip_config = gossip_config or preset(config.profile)
        self.name = config.name
        self.metrics = AgentMetrics()
        self.cluster_metrics = ClusterMetrics(self.metrics)
        self.events = EventLog()
        self.indexes = Indexes()
        self.core: NodeCore | None = None
        self.runtime: Any = runtime
        self.transport: Transport | None = None
        self.keys: KeyManager = KeyManager(None, None)
        self.advertise: HostPort | None = None
        self.api_url: str | None = None
        self.gossip_port: int | None = None
        self.capacity: Resources | None = None
        self.labels: dict[str, str] = {}
        self.state_problems: list[str] = []
        self.started_at = time.time()
        self._in_send, self._in_recv = trio.open_memory_channel[object](INPUT_QUEUE_DEPTH)
        self.state = StateDir(config.state_dir)
        self._store_send, self._store_recv = trio.open_memory_channel[StoreOp](PERSIST_QUEUE_DEPTH)
        self._tokens = itertools.count(1)
        self._writes: dict[int, _WriteWaiter] = {}
        self._exit = trio.Event()
        self._api_shutdown = trio.Event()
        self._api_done = trio.Event()
        self._leaving = False
        self._left = trio.Event()
        self._drop_log = _DropLog()
        self._join_waiters: list[_JoinWaiter] = []
        self._trackers: dict[int, StreamTracker] = {}
        self._dial_errors: dict[Address, str] = {}
        self._status_seen: dict[str, tuple] = {}
        self._nursery: trio.Nursery | None = None

    @property
    def swim(self) -> Swim | None:
        """The gossip core inside the node core (membership)."""
        return self.core.swim if self.core is not None else None

    # ---- lifecycle ------------------------------------------------------------

    async def run(
        self, *, handle_signals: bool = False, task_status: trio.TaskStatus["Agent"] = trio.TASK_STATUS_IGNORED
    ) -> None:
        from node.api.server import serve_api  # api imports agent for types

        cfg = self.config
        self.capacity = node_capacity(cfg)
        self.labels = node_labels(cfg)  # ConfigError if they do not fit the status record
        self.runtime = self.runtime if self.runtime is not None else self._make_runtime()
        keys = initial_keys(cfg)
        keyring = Keyring(keys, os.urandom) if keys else None
        self.keys = KeyManager(keyring, cfg.keyring_file)
        self.transport = Transport(
            cfg.bind,
            self.metrics,
            tcp_timeout_s=self.gossip_config.tcp_timeout_s,
            decoder_factory=self._decoder,
            on_drop=self._stream_dropped,
        )
        try:
            loaded = await self._open_state()
            self.gossip_port = await self.transport.bind()
            self.advertise = advertise_address(cfg, self.gossip_port)
            async with trio.open_nursery() as nursery:
                self._nursery = nursery
                self.api_url = await nursery.start(serve_api, self, self._api_shutdown, self._api_done)
                api_hp = self.api_url.split("://", 1)[-1]
                tags = {**dict(cfg.tags), "role": "shoal", "api": api_hp}
                now = trio.current_time()
                self.core = NodeCore(
                    name=cfg.name,
                    addr=Address(self.advertise.host, self.advertise.port),
                    gossip_config=self.gossip_config,
                    rng=random.Random(int.from_bytes(os.urandom(8), "big")),
                    now=now,
                    capacity=self.capacity,
                    labels=self.labels,
                    agent_version=agent_version(),
                    wall_offset_s=time.time() - now,
                    meta=encode_tags(tags),
                    keyring=keyring,
                    label=cfg.label.encode(),
                    stored_entries=loaded.entries,
                    stored_claims=loaded.claims,
                    cluster_config=cfg.cluster, placement_config=cfg.placement,
                )
                if loaded.drained:
                    self.core.set_drained(True, now)
                    log.info("this node is drained (as it was before the restart)")
                nursery.start_soon(self._persist_loop)
                if hasattr(self.runtime, "run"):
                    await nursery.start(self.runtime.run)
                await nursery.start(self._run_transport)
                nursery.start_soon(self._pump)
                if hasattr(self.runtime, "desired_complete"):
                    nursery.start_soon(self._watch_claims_replayed)
                nursery.start_soon(self._watch_runtime)
                if handle_signals:
                    nursery.start_soon(self._watch_signals)
                if cfg.join:
                    nursery.start_soon(self._join_with_retry, list(cfg.join))
                self._write_state_file()
                log.info(
                    "agent %s running: gossip on %s (advertised %s), api %s, profile %s, encryption %s%s; "
                    "capacity %s, labels %s, runtime %s, %d jobs and %d claims from the state dir",
                    cfg.name,
                    HostPort(cfg.bind.host, self.gossip_port),
                    self.advertise,
                    self.api_url,
                    self.gossip_config.profile,
                    f"on ({len(keys)} key{'s' if len(keys) != 1 else ''})" if keys else "off",
                    f", label {cfg.label!r}" if cfg.label else "",
                    self.capacity,
                    ",".join(f"{k}={v}" for k, v in sorted(self.labels.items())),
                    getattr(self.runtime, "kind", type(self.runtime).__name__),
                    sum(1 for e in loaded.entries if not e.deleted),
                    sum(1 for c in loaded.claims if not c.released),
                )
                task_status.started(self)
                await self._exit.wait()
                self._api_shutdown.set()
                with trio.move_on_after(API_SHUTDOWN_WAIT_S):
                    await self._api_done.wait()
                nursery.cancel_scope.cancel()
        finally:
            self._nursery = None
            self.transport.close()
            try:
                self.state.close()
            except Exception:  # best effort: what was acknowledged is committed
                log.exception("closing the state stores failed")
            self._remove_state_file()
        log.info("agent %s stopped", cfg.name)

    def _make_runtime(self) -> Any:
        if self.config.runtime == "fake":
            return FakeRuntime()
        try:
            from node.runtime.docker import DockerRuntime, DockerRuntimeConfig
        except ImportError as e:
            raise ConfigError("runtime", f"the docker runtime cannot be loaded: {e}") from None
        rt_cfg = (DockerRuntimeConfig(docker_host=self.config.docker_host) if self.config.docker_host
                  else DockerRuntimeConfig())
        return DockerRuntime(self.name, rt_cfg, on_give_up=self._runtime_gave_up, on_health=self._runtime_health)

    def _runtime_gave_up(self, slot: str, reason: str):
        log.warning("runtime gave up on %s here: %s", slot, reason)
        return self.call(lambda core, now: core.replica_gave_up(slot, reason, now))

    def _runtime_health(self, healthy: bool, reason: str):
        return self.call(lambda core, now: core.set_health(healthy, reason, now))

    def request_exit(self) -> None:
        self._exit.set()

    # ---- the state dir ------------------------------------------------------------

    async def _open_state(self) -> Loaded:
        """Open the state dir; log every problem it reports at ERROR and count it."""
        if not self.state.durable:
            log.warning("no --state-dir: jobs and claims are kept in memory only; submissions are "
                        "acknowledged without a durable copy and lost when this agent stops")
        try:
            loaded = await self.state.open()
        except PersistError as e:
            raise OSError(f"state dir {self.config.state_dir}: {e}") from e
        for store, problem in loaded.problems:
            log.error("state dir problem (%s): %s", store, problem)
            self.state_problems.append(problem)
            self.cluster_metrics.problems.labels(store=store).inc()
        return loaded

    async def _persist_loop(self) -> None:
        """The persistence task: one store operation at a time, in order; a
        local job write is fed back to the core only once it is durable."""
        async for op in self._store_recv:
            try:
                await self.state.apply(op)
            except (PersistError, EntryRejected, OSError) as e:
                self.cluster_metrics.writes.labels(store=op.store, outcome="error").inc()
                log.error("state dir write failed (%s, %s): %s", op.store, op.kind, e)
                if op.token is not None and (waiter := self._writes.get(op.token)) is not None:
                    waiter.fail(f"the write to this agent's state dir failed: {e}")
                if op.token is not None:
                    token = op.token
                    await self.call(lambda core, now: core.abandon_write(token, now))
                continue
            self.cluster_metrics.writes.labels(store=op.store, outcome="ok").inc()
            if op.token is not None:
                await self._in_send.send(_Persisted(op.token))

    def _store(self, op: StoreOp) -> None:
        """Hand a write to the persistence task without blocking the pump."""
        try:
            self._store_send.send_nowait(op)
        except trio.WouldBlock:
            self.cluster_metrics.queue_full.inc()
            log.error("persistence queue full: %s of %d item(s) not written", op.kind, len(op.items))
            if op.token is not None and (waiter := self._writes.get(op.token)) is not None:
                waiter.fail("this agent's state dir is not keeping up (persistence queue full); retry")
            if op.token is not None and self.core is not None:
                # We are inside the pump (no await between feed and drain):
                # forget the write directly.
                self.core.abandon_write(op.token, trio.current_time())

    async def _watch_claims_replayed(self) -> None:
        """Tell the runtime once our claims match our live peers' (after the
        first placement pass replayed our own): containers it finds and that
        nobody wants may go from then on."""
        assert self.core is not None
        await trio.sleep(self.core.placement.cfg.placement_interval_s * 1.5)

        def replayed(core: NodeCore, now: float) -> bool:
            mine = core.placement.claims.digest()
            peers = [s.claims_digest for n, s in core.live_statuses().items() if n != core.name]
            return bool(peers) and all(d == mine for d in peers)

        while not await self.call(replayed):
            await trio.sleep(CLAIMS_REPLAYED_POLL_S)
        log.info("claims replayed and in agreement with peers: runtime may remove undesired containers")
        self.runtime.desired_complete()

    async def _watch_runtime(self) -> None:
        """Every RUNTIME_POLL_S, hand what the runtime reports to the core
        when it changed: its local images (bid declines for a missing image)
        and the state of each slot it runs (our status record, so any agent
        can say whether a placed replica runs), and publish each slot's
        change as a `container_state` event.  Both reads are non-blocking
        snapshots the runtime keeps up to date in its own passes."""
        images_fn = getattr(self.runtime, "images", None)
        slots_fn = getattr(self.runtime, "slot_states", None)
        last_images: object = ()  # never equal to a report: the first one goes through
        last_slots: dict[str, tuple[str, str]] | None = None
        while True:
            if callable(images_fn):
                try:
                    images = images_fn()
                except Exception:  # a runtime bug must not stop the reports
                    log.exception("runtime images() failed")
                    images = None
                if images != last_images:
                    await self.call(lambda core, now: core.set_image_inventory(images, now))
                    log.info("runtime images: %s", "unknown (nothing declined)" if images is None else
                             ", ".join(sorted(i for i in images if not i.startswith("sha256:"))) or "none")
                    last_images = images
            if callable(slots_fn):
                try:
                    slots = dict(slots_fn())
                except Exception:
                    log.exception("runtime slot_states() failed")
                    slots = last_slots or {}
                if slots != last_slots:
                    self._container_events(last_slots or {}, slots)
                    await self.call(lambda core, now: core.set_runtime_slots(slots, now))
                    last_slots = slots
            await trio.sleep(RUNTIME_POLL_S)

    def _container_events(self, old: dict[str, tuple[str, str]], new: dict[str, tuple[str, str]]) -> None:
        changed = False
        for slot, (state, reason) in sorted(new.items()):
            if old.get(slot) != (state, reason):
                changed = True
                self.events.publish("container_state", node=self.name, slot=slot, state=state, reason=reason)
                log.log(logging.WARNING if state == "failed" else logging.INFO, "slot %s here: %s%s",
                        slot, state, f" ({reason})" if reason else "")
        for slot in sorted(set(old) - set(new)):
            changed = True
            self.events.publish("container_state", node=self.name, slot=slot, state="gone", reason="")
        if changed:
            self.indexes.bump("jobs")

    async def _run_transport(self, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        assert self.transport is not None
        await self.transport.run(
            on_datagram=self._on_datagram,
            on_stream=self._on_stream,
            on_dial_result=self._on_dial_result,
            task_status=task_status,
        )

    async def _watch_signals(self) -> None:
        with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
            async for signum in signals:
                if self._leaving:
                    log.warning("second %s: exiting now", signal.Signals(signum).name)
                    self.request_exit()
                    return
                log.info("%s received: leaving the cluster", signal.Signals(signum).name)
                self._nursery.start_soon(self.leave_and_exit)

    async def leave(self) -> None:
        """Gossip our departure and wait (bounded) until it is out."""
        if self._leaving:
            await self._left.wait()
            return
        self._leaving = True

        def start_leave(core: NodeCore, now: float) -> list[str]:
            core.leave(now)
            return _alive_others(core.swim, self.name)

        others = await self.call(start_leave)
        if others:
            with trio.move_on_after(LEAVE_WAIT_S):
                while await self.call(lambda core, now: core.swim.pending_broadcasts()) > 0:
                    await trio.sleep(self.gossip_config.gossip_interval_s / 2)
        log.info("left the cluster")
        self._left.set()

    async def leave_and_exit(self) -> None:
        await self.leave()
        self.request_exit()

    # ---- talking to the pump --------------------------------------------------

    async def call(self, fn: Callable[[NodeCore, float], Any]) -> Any:
        """Run fn(core, now) inside the pump; return its result or raise its error."""
        result, _ = await self._call(fn, None)
        return result

    async def call_tracked(self, fn: Callable[[NodeCore, float], Any]) -> tuple[Any, StreamTracker]:
        tracker = StreamTracker()
        return await self._call(fn, tracker)

    async def _call(self, fn: Callable[[NodeCore, float], Any], tracker: StreamTracker | None) -> tuple[Any, Any]:
        send, recv = trio.open_memory_channel[tuple[bool, Any]](1)
        await self._in_send.send(_Call(fn, send, tracker))
        async with recv:
            ok, value = await recv.receive()
        if not ok:
            raise value
        return value, tracker

    def _on_datagram(self, data: bytes, src: Address) -> None:
        try:
            self._in_send.send_nowait(_Datagram(data, src))
        except trio.WouldBlock:
            self.metrics.drop("input_queue_full")

    async def _on_stream(self, msg: Message, src: Address) -> bytes | None:
        send, recv = trio.open_memory_channel[bytes | None](1)
        await self._in_send.send(_Stream(msg, src, send))
        async with recv:
            return await recv.receive()

    async def _on_dial_result(self, cmd: OpenStream, reply: Message | None, error: str | None) -> None:
        await self._in_send.send(_DialResult(cmd, reply, error))

    def _decoder(self, incoming: bool):
        # A pure factory of the core (label + keyring); see node.agent.transport.
        assert self.core is not None
        return self.core.stream_decoder(incoming)

    def _stream_dropped(self, reason: str, src: Address | None) -> None:
        self.metrics.drop(reason)
        self._drop_log.report(reason, src, "stream")

    # ---- the pump: the only task that touches the core ---------------------------

    async def _pump(self) -> None:
        core = self.core
        assert core is not None
        recv = self._in_recv
        self._dispatch(core.drain(), trio.current_time(), None)  # our first status
        while True:
            deadline = core.next_deadline()
            item = None
            with trio.move_on_at(math.inf if deadline is None else deadline):
                item = await recv.receive()
            now = trio.current_time()
            # --- no await from here to the end of the loop body ---
            if item is not None:
                tracker = self._feed(core, item, now)
                self._dispatch(core.drain(), now, tracker)
                if tracker is not None:
                    tracker._sealed()
            deadline = core.next_deadline()
            if deadline is not None and deadline <= now:
                core.handle_timers(now)
                self._dispatch(core.drain(), now, None)

    def _feed(self, core: NodeCore, item: object, now: float) -> StreamTracker | None:
        match item:
            case _Datagram(data, src):
                try:
                    core.receive_datagram(data, src, now)
                except Exception:  # a core bug must not take the agent down
                    log.exception("core failed on a datagram from %s", src)
                    self.metrics.drop("core_error")
            case _Stream(msg, src, reply):
                out: bytes | None = None
                try:
                    out = core.receive_stream(msg, src, now)
                except Exception:
                    log.exception("core failed on a stream from %s", src)
                    self.metrics.drop("core_error")
                reply.send_nowait(out)
            case _DialResult(cmd, reply, error):
                if error is not None:
                    self._dial_errors[cmd.addr] = error
                    if len(self._dial_errors) > 1024:
                        self._dial_errors.clear()
                    log.debug("stream %s to %s (%s) failed: %s", cmd.stream_id, cmd.addr, cmd.purpose.value, error)
                else:
                    self._dial_errors.pop(cmd.addr, None)
                tracker = self._trackers.pop(cmd.stream_id, None)
                if tracker is not None:
                    tracker._closed(cmd.stream_id, cmd.addr, error)
                core.stream_reply(cmd.stream_id, reply, now)
            case _Persisted(token):
                core.persisted(token, now)
            case _Call(fn, reply, tracker):
                try:
                    reply.send_nowait((True, fn(core, now)))
                except Exception as e:
                    reply.send_nowait((False, e))
                # fn may have used core.swim directly (key rotation sends user
                # messages): handle_timers also collects what Swim emitted, and
                # fires nothing that is not due.
                core.handle_timers(now)
                return tracker
            case _:
                raise AssertionError(f"unknown pump input {item!r}")
        return None

    def _dispatch(self, outputs: list, now: float, tracker: StreamTracker | None) -> None:
        transport = self.transport
        assert transport is not None
        for out in outputs:
            match out:
                case SendDatagram(addr, data):
                    transport.send_datagram(addr, data)
                case OpenStream():
                    if tracker is not None:
                        tracker._opened(out.stream_id)
                        self._trackers[out.stream_id] = tracker
                    transport.start_dial(out)
                case PersistEntries(entries, token):
                    self._store(StoreOp("entries", entries, token))
                case ForgetEntries(names):
                    self._store(StoreOp("forget_entries", names))
                    self.indexes.bump("jobs")
                case PersistClaims(claims):
                    self._store(StoreOp("claims", claims))
                case ForgetClaims(names):
                    self._store(StoreOp("forget_claims", names))
                case JobWriteDone(token, entry):
                    waiter = self._writes.get(token)
                    if waiter is not None:
                        waiter.succeed(entry)
                case JobChanged(entry, local):
                    self._job_changed(entry, local)
                case ClaimChanged(claim):
                    self.indexes.bump("jobs")
                    self.events.publish("claim", slot=claim.name, node=claim.node, released=claim.released,
                                        ballot=[claim.ballot.round, claim.ballot.coordinator])
                case NodeStatusChanged(status):
                    self._node_status(status)
                case StartReplica(claim, spec):
                    self._start_replica(claim, spec)
                case StopReplica(slot, reason):
                    self._stop_replica(slot, reason)
                case AwardAccepted(claim):
                    self.cluster_metrics.awards.inc()
                    self.events.publish("award_accepted", slot=claim.name,
                                        ballot=[claim.ballot.round, claim.ballot.coordinator])
                case SlotPending(slot, reason):
                    self.indexes.bump("jobs")
                    log.debug("slot %s pending: %s", slot, reason)
                    self.events.publish("slot_pending", slot=slot, reason=reason)
                case RoundClosed():
                    self._round_closed(out)
                case PacketDropped(reason, source):
                    self.metrics.drop(reason)
                    self._drop_log.report(reason, source)
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
                    self._join_completed(out)
                case UserMessage(origin, data):
                    self._user_message(origin, data)
                case UserBroadcast(origin, data):
                    self.events.publish("user_broadcast", origin=origin, size=len(data))
                case PayloadUpdated(node=node):
                    # Our own status (others' come as NodeStatusChanged too).
                    self.indexes.bump("nodes", "jobs")
                    if node == self.name:
                        self._node_status(self.core.status())
                case UserStateReceived(origin, data, join):
                    log.debug("user state from %s (%d bytes, join=%s)", origin, len(data), join)
                case _:
                    log.debug("unhandled core output %r", out)

    def _job_changed(self, entry: Entry, local: bool) -> None:
        self.indexes.bump("jobs")
        kind = "job_deleted" if entry.deleted else "job_updated"
        self.events.publish(kind, name=entry.name, local=local,
                            version=[entry.stamp.wall_ms, entry.stamp.counter, entry.stamp.node])
        log.log(logging.INFO if local else logging.DEBUG, "job %s %s%s", entry.name,
                "stopped" if entry.deleted else "written", " here" if local else f" by {entry.stamp.node}")

    def _node_status(self, status: NodeStatus) -> None:
        self.indexes.bump("nodes", "jobs")
        # Events only for what people watch (not every allocation or digest).
        key = (status.capacity, tuple(sorted(status.labels.items())), status.drained, status.healthy,
               status.unhealthy_reason, status.agent_version)
        if self._status_seen.get(status.name) == key:
            return
        if len(self._status_seen) > 10_000:
            self._status_seen.clear()
        self._status_seen[status.name] = key
        self.events.publish("node_status", node=status.name, drained=status.drained, healthy=status.healthy,
                            eligible=status.eligible, capacity=str(status.capacity), labels=status.labels)

    def _start_replica(self, claim, spec: JobSpec) -> None:
        self.cluster_metrics.placements.inc()
        log.info("start %s here (ballot %d by %s)", claim.name, claim.ballot.round, claim.ballot.coordinator)
        self.events.publish("replica_start", slot=claim.name, image=spec.image,
                            ballot=[claim.ballot.round, claim.ballot.coordinator])
        try:
            self.runtime.start(claim, spec)
        except Exception:
            log.exception("runtime failed to take start of %s", claim.name)

    def _stop_replica(self, slot: str, reason: str) -> None:
        self.cluster_metrics.stops.inc()
        log.info("stop %s here: %s", slot, reason)
        self.events.publish("replica_stop", slot=slot, reason=reason)
        try:
            self.runtime.stop(slot, reason)
        except Exception:
            log.exception("runtime failed to take stop of %s", slot)

    def _round_closed(self, rc: RoundClosed) -> None:
        self.indexes.bump("jobs")
        outcome = "unplaced" if not rc.awarded else "partial" if rc.unplaced else "placed"
        self.cluster_metrics.rounds.labels(outcome=outcome).inc()
        log.debug("auction %s for %s closed: awarded %s, unplaced %s", rc.auction_id, rc.job,
                  rc.awarded, rc.unplaced)
        self.events.publish("auction_closed", job=rc.job, auction=rc.auction_id,
                            awarded={str(i): node for i, (node, _) in sorted(rc.awarded.items())},
                            unplaced=list(rc.unplaced), declines=dict(rc.declines), silent=list(rc.silent))

    def _member_event(self, kind: str, m: MemberInfo, now: float, level: int) -> None:
        self.indexes.bump("members", "nodes", "jobs")
        self.metrics.member_events.labels(event=kind).inc()
        self.events.publish(f"member_{kind}", member=member_view(m, now))
        log.log(level, "member %s: %s (%s)", kind, m.name, m.addr)

    def _join_completed(self, ev: JoinCompleted) -> None:
        error = None
        if ev.ok:
            log.info("joined via %s (it knows %d members)", ev.seed, ev.learned)
        else:
            error = self._dial_errors.get(ev.seed) or ev.error or "failed"
        for w in list(self._join_waiters):
            if ev.seed in w.seeds and ev.seed not in w.results:
                w.results[ev.seed] = error
                if len(w.results) == len(w.seeds):
                    w.done.set()
        self.events.publish("join", seed=str(ev.seed), ok=ev.ok, error=error)

    def _user_message(self, origin: str, data: bytes) -> None:
        op = decode_key_message(data)
        if op is None:
            self.events.publish("user_message", origin=origin, size=len(data))
            return
        action, key = op
        if not self.keys.enabled:
            log.warning("ignoring key %s from %s: this agent does not use encryption", action, origin)
            return
        try:
            changed = self.keys.apply(action, key)
        except (KeyOpError, OSError) as e:
            log.warning("key %s from %s refused: %s", action, origin, e)
            return
        log.info("key %s from %s: %s", action, origin, "applied" if changed else "already so")
        self.events.publish("key", origin=origin, action=action, changed=changed)

    # ---- operations used by the API ---------------------------------------------

    async def join(self, seeds: list[HostPort], timeout_s: float | None = None) -> dict[str, str | None]:
        """One join attempt: seed -> None (joined) or why it failed."""
        results: dict[str, str | None] = {}
        addrs: dict[Address, str] = {}
        for hp in seeds:
            try:
                infos = await trio.socket.getaddrinfo(hp.host, hp.port, type=socket.SOCK_STREAM)
                host = infos[0][4][0]
            except OSError as e:
                results[str(hp)] = f"cannot resolve {hp.host!r}: {e.strerror or e}"
                continue
            addr = Address(host, hp.port)
            if addr == Address(self.advertise.host, self.advertise.port):
                results[str(hp)] = "that is this agent's own address"
                continue
            addrs[addr] = str(hp)
        if addrs:
            waiter = _JoinWaiter(set(addrs))
            self._join_waiters.append(waiter)
            try:
                await self.call(lambda core, now: core.join(list(addrs), now))
                timeout = timeout_s if timeout_s is not None else self.gossip_config.tcp_timeout_s + 1.0
                with trio.move_on_after(timeout):
                    await waiter.done.wait()
            finally:
                self._join_waiters.remove(waiter)
            for addr, text in addrs.items():
                results[text] = waiter.results.get(addr, "no answer in time")
        return results

    async def _join_with_retry(self, seeds: list[HostPort]) -> None:
        delay = JOIN_BACKOFF_START_S
        attempt = 1
        while True:
            results = await self.join(seeds)
            if any(err is None for err in results.values()):
                return
            for seed, err in results.items():
                log.warning("join %s failed (attempt %d): %s", seed, attempt, err)
            wait = delay * random.uniform(0.8, 1.2)
            log.info("retrying join in %.1fs", wait)
            await trio.sleep(wait)
            delay = min(delay * 2, JOIN_BACKOFF_MAX_S)
            attempt += 1

    async def key_operation(self, action: str, key: bytes, *, cluster: bool = True) -> dict[str, Any]:
        """Apply locally, then (cluster) send to every alive member over TCP."""

        def fn(core: NodeCore, now: float) -> list[str]:
            self.keys.apply(action, key)  # raises KeyOpError
            if not cluster:
                return []
            msg = encode_key_message(action, key)
            sent = []
            for name in _alive_others(core.swim, self.name):
                if core.swim.send_user_message(name, msg, reliable=True, now=now):
                    sent.append(name)
            return sent

        sent, tracker = await self.call_tracked(fn)
        if sent:
            await tracker.wait(self.gossip_config.tcp_timeout_s + 1.0)
        failed = {str(addr): err for addr, err in tracker.outcomes.values() if err is not None}
        unanswered = len(sent) - len(tracker.outcomes)
        listing = await self.call(lambda core, now: self.keys.listing())
        return {
            "action": action,
            "local": "ok",
            "members": len(sent) + 1,
            "delivered": len(tracker.outcomes) - len(failed) + 1,
            "failed": failed,
            "unanswered": unanswered,
            **listing,
        }

    async def write_job(self, name: str, spec: bytes | None) -> tuple[Entry, int]:
        """Submit (canonical spec bytes) or stop (None) a job; returns once the
        write is durable here: (entry, jobs index).  Raises StateWriteError
        (not durable, not acknowledged), core.JobLimitError, ValueError."""
        token = next(self._tokens)
        waiter = self._writes[token] = _WriteWaiter()
        try:
            await self.call(lambda core, now: core.write_job(name, spec, token, now))
            with trio.move_on_after(WRITE_TIMEOUT_S):
                await waiter.done.wait()
            if waiter.error is not None:
                raise StateWriteError(waiter.error)
            if waiter.entry is None:
                raise StateWriteError(f"the state dir did not confirm the write within {WRITE_TIMEOUT_S:g} s")
            return waiter.entry, self.indexes.get("jobs")
        finally:
            del self._writes[token]

    async def submit_job(self, spec: JobSpec) -> dict[str, Any]:
        entry, index = await self.write_job(spec.name, spec.canonical_json())
        return {"name": spec.name, "index": index, "durable": self.config.state_dir is not None,
                "version": [entry.stamp.wall_ms, entry.stamp.counter, entry.stamp.node]}

    async def stop_job(self, name: str) -> dict[str, Any]:
        def live(core: NodeCore, now: float) -> bool:
            entry = core.job(name)
            return entry is not None and not entry.deleted

        if not await self.call(live):
            raise JobNotFound(name)
        _, index = await self.write_job(name, None)
        return {"name": name, "stopped": True, "index": index}

    async def set_drained(self, drained: bool) -> dict[str, Any]:
        """Drain (or undrain) this node: its replicas move elsewhere and it
        takes no new ones.  Kept in the state dir across restarts."""
        await self.state.write_node_state(drained=drained)
        await self.call(lambda core, now: core.set_drained(drained, now))
        log.info("node %s", "drained" if drained else "undrained")
        return await self.call(lambda core, now: views.one_node_view(core, self.name, now))

    async def members(self) -> list[dict[str, Any]]:
        return await self.call(lambda core, now: [member_view(m, now) for m in core.swim.members()])

    async def read(self, resource: str, fn: Callable[[NodeCore, float], Any]) -> tuple[int, Any]:
        """(index of resource, fn(core, now)) from one snapshot of the core."""
        return await self.call(lambda core, now: (self.indexes.get(resource), fn(core, now)))

    async def self_info(self) -> dict[str, Any]:
        def fn(core: NodeCore, now: float) -> dict[str, Any]:
            swim = core.swim
            me = swim.member(self.name)
            status = core.status()
            runtime_stats = getattr(self.runtime, "stats", None)
            return {
                "name": self.name,
                "addr": self.advertise.host,
                "port": self.advertise.port,
                "bind": str(HostPort(self.config.bind.host, self.gossip_port or 0)),
                "api": self.api_url,
                "profile": self.gossip_config.profile,
                "settings": tuning_json(core.cfg, core.placement.cfg),  # [cluster], [placement] in effect
                "label": self.config.label,
                "encrypted": self.keys.enabled,
                "health_score": swim.health_score(),
                "member": member_view(me, now) if me else None,
                "capacity": views.resources_json(status.capacity),
                "allocated": views.resources_json(status.allocated),
                "free": views.resources_json(status.free),
                "labels": dict(sorted(status.labels.items())),
                "drained": status.drained,
                "healthy": status.healthy,
                "agent_version": status.agent_version,
                "jobs": core.store.live_count,
                "state_dir": str(self.config.state_dir) if self.config.state_dir else None,
                "state_problems": list(self.state_problems),
                "runtime": runtime_stats() if callable(runtime_stats) else {"kind": self.config.runtime},
                "stats": swim.stats(),
                "core_counters": dict(core.counters),
                "transport": self.transport.statistics() if self.transport else {},
                "pid": os.getpid(),
                "uptime_s": round(time.time() - self.started_at, 3),
            }

        return await self.call(fn)

    async def render_metrics(self) -> bytes:
        def snapshot(core: NodeCore, now: float):
            self.cluster_metrics.observe(core)
            return [m.state for m in core.swim.members()], core.swim.health_score()

        states, health = await self.call(snapshot)
        self.metrics.observe_members(states, health)
        return self.metrics.render()

    # ---- state file ---------------------------------------------------------------

    def _state_file(self) -> Path | None:
        return self.config.state_dir / "agent.json" if self.config.state_dir else None

    def _write_state_file(self) -> None:
        path = self._state_file()
        if path is None:
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        info = {
            "name": self.name,
            "pid": os.getpid(),
            "gossip": str(self.advertise),
            "bind": str(HostPort(self.config.bind.host, self.gossip_port or 0)),
            "api": self.api_url,
        }
        fd, tmp = tempfile.mkstemp(prefix=".agent-", dir=str(path.parent))
        with os.fdopen(fd, "w") as f:
            json.dump(info, f)
            f.write("\n")
        os.replace(tmp, path)

    def _remove_state_file(self) -> None:
        path = self._state_file()
        if path is None:
            return
        try:
            if json.loads(path.read_text()).get("pid") == os.getpid():
                path.unlink()
        except (OSError, ValueError):
            pass


def _alive_others(swim: Swim, me: str) -> list[str]:
    return [m.name for m in swim.members() if m.name != me and m.state in (MemberState.ALIVE, MemberState.SUSPECT)]


async def run_agent(
    config: AgentConfig,
    *,
    handle_signals: bool = True,
    task_status: trio.TaskStatus[Agent] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Run an agent until it leaves (signal or API) or is cancelled."""
    agent = Agent(config)
    await agent.run(handle_signals=handle_signals, task_status=task_status)
