"""The shoal agent: one trio nursery around one gossip core.

How this works
--------------
`Agent.run()` builds, in order: the keyring (node.keys), the sockets
(node.transport, bound first so the core knows its real port), the HTTP API
(node.api, bound before the core so its address can go into our tags), the
core (`gossip.swim.Swim`), and then starts the tasks:

    UDP receiver ─┐
    TCP conns  ───┼──> input channel (bounded) ──> PUMP ──> UDP sender queue
    dial results ─┤                                 │  └──> dial tasks (OpenStream)
    API calls  ───┘                                 └────> event log, metrics, logs

EXACTLY ONE task, the pump, touches the core.  Each turn it waits for the next
input or the core's next deadline (`swim.next_deadline()`, on trio's clock),
feeds the input or fires the timers, drains the outputs and dispatches them,
with no `await` between feeding and dispatching.  Dispatch never blocks:
datagrams go to the transport's bounded send queue, streams to new dial
tasks, events to the event log (whose subscribers are bounded too).

Everyone else talks to the core through the input channel:
  * datagrams are put with `send_nowait` and dropped (counted as
    `input_queue_full`) when the pump is behind, as memberlist drops past its
    handoff queue;
  * an inbound TCP stream sends (message, reply channel) and awaits the reply
    bytes the core produced;
  * API handlers use `Agent.call(fn)`: `fn(swim, now)` runs inside the pump and
    its result (or exception) comes back.  `call(fn, track=True)` also
    returns a `StreamTracker` for the TCP streams the call opened, so a
    caller can wait for e.g. the outcome of a cluster-wide key change.

Joining: `--join` seeds are resolved and joined by push/pull; until at least
one seed answers we retry with exponential backoff (1 s doubling to 30 s,
with jitter), logging every failed seed with the reason (the transport's
error if the dial failed, else the core's).

Leaving: SIGINT/SIGTERM (or `POST /v1/agent/leave`) calls `swim.leave(now)`
and keeps the pump running until the leave broadcast is out
(`pending_broadcasts() == 0`) or `LEAVE_WAIT_S` passes, then exits cleanly.
A second signal exits at once.

Dropped packets are counted by reason in /v1/metrics; the ones that point at a
configuration problem (wrong key, missing encryption, wrong label) are also
logged at WARNING, at most once per `DROP_LOG_INTERVAL_S` per (packet or
stream, reason, host), with the count of the ones suppressed in between.
"""

from __future__ import annotations

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
from pathlib import Path
from typing import Any, Callable

import trio

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
from node.config import AgentConfig, HostPort, advertise_address
from node.eventlog import EventLog
from node.keys import KeyManager, KeyOpError, decode_key_message, encode_key_message, initial_keys
from node.metrics import AgentMetrics
from node.tags import decode_tags, encode_tags
from node.transport import Transport

log = logging.getLogger("shoal.agent")

INPUT_QUEUE_DEPTH = 1024
LEAVE_WAIT_S = 2.0
JOIN_BACKOFF_START_S = 1.0
JOIN_BACKOFF_MAX_S = 30.0
DROP_LOG_INTERVAL_S = 10.0
DROP_LOG_KEYS_MAX = 1024
API_SHUTDOWN_WAIT_S = 1.5

_DROP_EXPLAINED = {
    "decrypt": "no installed key decrypts it (different encryption key?)",
    "unencrypted": "it is not encrypted and this agent requires encryption",
    "label": "its cluster label does not match ours",
}


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
    fn: Callable[[Swim, float], Any]
    reply: trio.MemorySendChannel
    tracker: "StreamTracker | None" = None


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


# ---- views ----------------------------------------------------------------------

_STATUS = {
    MemberState.ALIVE: "alive",
    MemberState.SUSPECT: "suspect",
    MemberState.DEAD: "failed",
    MemberState.LEFT: "left",
}
_HEALTH = {
    MemberState.ALIVE: "passing",
    MemberState.SUSPECT: "warning",
    MemberState.DEAD: "critical",
    MemberState.LEFT: "critical",
}


def member_view(m: MemberInfo, now: float) -> dict[str, Any]:
    """A member as JSON: `status` is Serf's word (failed for dead), `state`
    the core's; `health` is Consul-style passing/warning/critical."""
    return {
        "name": m.name,
        "addr": m.addr.host,
        "port": m.addr.port,
        "status": _STATUS[m.state],
        "state": m.state.value,
        "incarnation": m.incarnation,
        "tags": decode_tags(m.meta),
        "meta": m.meta.hex(),
        "health": _HEALTH[m.state],
        "vsn": list(m.vsn),
        "since_s": round(max(0.0, now - m.state_change_at), 3),
    }


# ---- the agent ------------------------------------------------------------------


class Agent:
    def __init__(self, config: AgentConfig, *, gossip_config: GossipConfig | None = None) -> None:
        self.config = config
        self.gossip_config = gossip_config or preset(config.profile)
        self.name = config.name
        self.metrics = AgentMetrics()
        self.events = EventLog()
        self.swim: Swim | None = None
        self.transport: Transport | None = None
        self.keys: KeyManager = KeyManager(None, None)
        self.advertise: HostPort | None = None
        self.api_url: str | None = None
        self.gossip_port: int | None = None
        self.started_at = time.time()
        self._in_send, self._in_recv = trio.open_memory_channel[object](INPUT_QUEUE_DEPTH)
        self._exit = trio.Event()
        self._api_shutdown = trio.Event()
        self._api_done = trio.Event()
        self._leaving = False
        self._left = trio.Event()
        self._drop_log = _DropLog()
        self._join_waiters: list[_JoinWaiter] = []
        self._trackers: dict[int, StreamTracker] = {}
        self._dial_errors: dict[Address, str] = {}
        self._nursery: trio.Nursery | None = None

    # ---- lifecycle ------------------------------------------------------------

    async def run(
        self, *, handle_signals: bool = False, task_status: trio.TaskStatus["Agent"] = trio.TASK_STATUS_IGNORED
    ) -> None:
        from node.api import serve_api  # api imports agent for types

        cfg = self.config
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
            self.gossip_port = await self.transport.bind()
            self.advertise = advertise_address(cfg, self.gossip_port)
            async with trio.open_nursery() as nursery:
                self._nursery = nursery
                self.api_url = await nursery.start(serve_api, self, self._api_shutdown, self._api_done)
                api_hp = self.api_url.split("://", 1)[-1]
                tags = {**dict(cfg.tags), "role": "shoal", "api": api_hp}
                self.swim = Swim(
                    name=cfg.name,
                    addr=Address(self.advertise.host, self.advertise.port),
                    config=self.gossip_config,
                    rng=random.Random(int.from_bytes(os.urandom(8), "big")),
                    now=trio.current_time(),
                    meta=encode_tags(tags),
                    keyring=keyring,
                    label=cfg.label.encode(),
                )
                await nursery.start(self._run_transport)
                nursery.start_soon(self._pump)
                if handle_signals:
                    nursery.start_soon(self._watch_signals)
                if cfg.join:
                    nursery.start_soon(self._join_with_retry, list(cfg.join))
                self._write_state_file()
                log.info(
                    "agent %s running: gossip on %s (advertised %s), api %s, profile %s, encryption %s%s",
                    cfg.name,
                    HostPort(cfg.bind.host, self.gossip_port),
                    self.advertise,
                    self.api_url,
                    self.gossip_config.profile,
                    f"on ({len(keys)} key{'s' if len(keys) != 1 else ''})" if keys else "off",
                    f", label {cfg.label!r}" if cfg.label else "",
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
            self._remove_state_file()
        log.info("agent %s stopped", cfg.name)

    def request_exit(self) -> None:
        self._exit.set()

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

        def start_leave(swim: Swim, now: float) -> list[str]:
            swim.leave(now)
            return _alive_others(swim, self.name)

        others = await self.call(start_leave)
        if others:
            with trio.move_on_after(LEAVE_WAIT_S):
                while await self.call(lambda s, now: s.pending_broadcasts()) > 0:
                    await trio.sleep(self.gossip_config.gossip_interval_s / 2)
        log.info("left the cluster")
        self._left.set()

    async def leave_and_exit(self) -> None:
        await self.leave()
        self.request_exit()

    # ---- talking to the pump --------------------------------------------------

    async def call(self, fn: Callable[[Swim, float], Any]) -> Any:
        """Run fn(swim, now) inside the pump; return its result or raise its error."""
        result, _ = await self._call(fn, None)
        return result

    async def call_tracked(self, fn: Callable[[Swim, float], Any]) -> tuple[Any, StreamTracker]:
        tracker = StreamTracker()
        return await self._call(fn, tracker)

    async def _call(self, fn: Callable[[Swim, float], Any], tracker: StreamTracker | None) -> tuple[Any, Any]:
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
        # A pure factory of the core (label + keyring); see node.transport.
        assert self.swim is not None
        return self.swim.stream_decoder(incoming)

    def _stream_dropped(self, reason: str, src: Address | None) -> None:
        self.metrics.drop(reason)
        self._drop_log.report(reason, src, "stream")

    # ---- the pump: the only task that touches the core ---------------------------

    async def _pump(self) -> None:
        swim = self.swim
        assert swim is not None
        recv = self._in_recv
        while True:
            deadline = swim.next_deadline()
            item = None
            with trio.move_on_at(math.inf if deadline is None else deadline):
                item = await recv.receive()
            now = trio.current_time()
            # --- no await from here to the end of the loop body ---
            if item is not None:
                tracker = self._feed(swim, item, now)
                self._dispatch(swim.drain(), now, tracker)
                if tracker is not None:
                    tracker._sealed()
            deadline = swim.next_deadline()
            if deadline is not None and deadline <= now:
                swim.handle_timers(now)
                self._dispatch(swim.drain(), now, None)

    def _feed(self, swim: Swim, item: object, now: float) -> StreamTracker | None:
        match item:
            case _Datagram(data, src):
                try:
                    swim.receive_datagram(data, src, now)
                except Exception:  # a core bug must not take the agent down
                    log.exception("core failed on a datagram from %s", src)
                    self.metrics.drop("core_error")
            case _Stream(msg, src, reply):
                out: bytes | None = None
                try:
                    out = swim.receive_stream(msg, src, now)
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
                swim.stream_reply(cmd.stream_id, reply, now)
            case _Call(fn, reply, tracker):
                try:
                    reply.send_nowait((True, fn(swim, now)))
                except Exception as e:
                    reply.send_nowait((False, e))
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
                case PayloadUpdated(node, version, data):
                    self.events.publish("payload_updated", node=node, version=version, size=len(data))
                case UserStateReceived(origin, data, join):
                    log.debug("user state from %s (%d bytes, join=%s)", origin, len(data), join)
                case _:
                    log.debug("unhandled core output %r", out)

    def _member_event(self, kind: str, m: MemberInfo, now: float, level: int) -> None:
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
                await self.call(lambda s, now: s.join(list(addrs), now))
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

        def fn(swim: Swim, now: float) -> list[str]:
            self.keys.apply(action, key)  # raises KeyOpError
            if not cluster:
                return []
            msg = encode_key_message(action, key)
            sent = []
            for name in _alive_others(swim, self.name):
                if swim.send_user_message(name, msg, reliable=True, now=now):
                    sent.append(name)
            return sent

        sent, tracker = await self.call_tracked(fn)
        if sent:
            await tracker.wait(self.gossip_config.tcp_timeout_s + 1.0)
        failed = {str(addr): err for addr, err in tracker.outcomes.values() if err is not None}
        unanswered = len(sent) - len(tracker.outcomes)
        listing = await self.call(lambda swim, now: self.keys.listing())
        return {
            "action": action,
            "local": "ok",
            "members": len(sent) + 1,
            "delivered": len(tracker.outcomes) - len(failed) + 1,
            "failed": failed,
            "unanswered": unanswered,
            **listing,
        }

    async def members(self) -> list[dict[str, Any]]:
        return await self.call(lambda s, now: [member_view(m, now) for m in s.members()])

    async def self_info(self) -> dict[str, Any]:
        def fn(swim: Swim, now: float) -> dict[str, Any]:
            me = swim.member(self.name)
            return {
                "name": self.name,
                "addr": self.advertise.host,
                "port": self.advertise.port,
                "bind": str(HostPort(self.config.bind.host, self.gossip_port or 0)),
                "api": self.api_url,
                "profile": self.gossip_config.profile,
                "label": self.config.label,
                "encrypted": self.keys.enabled,
                "health_score": swim.health_score(),
                "member": member_view(me, now) if me else None,
                "stats": swim.stats(),
                "transport": self.transport.statistics() if self.transport else {},
                "pid": os.getpid(),
                "uptime_s": round(time.time() - self.started_at, 3),
            }

        return await self.call(fn)

    async def render_metrics(self) -> bytes:
        states, health = await self.call(lambda s, now: ([m.state for m in s.members()], s.health_score()))
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
