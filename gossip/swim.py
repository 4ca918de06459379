"""SWIM + Lifeguard membership, speaking memberlist's protocol; sans-I/O.

How this works (the theory of operation)
----------------------------------------
`Swim` is one member's whole protocol state.  It never touches a socket or a
clock: the driver feeds it datagrams, stream messages and timer firings, each
with `now`, and afterwards drains a list of outputs (datagrams to send, TCP
streams to open, membership events).  The same object runs under the trio
agent and under the deterministic simulator.

The protocol is in parts, one concern each, which `Swim` puts together:
  * `swim_base`: the shared state, timers, and sending with piggybacked
    gossip (dissemination);
  * `swim_membership`: the alive / suspect / dead rules, refutation, and
    suspicion timeouts (Lifeguard), plus our answers to stale accusations;
  * `swim_probe`: failure detection by direct, indirect and TCP probes;
  * `swim_sync`: push/pull anti-entropy and joining;
  * `swim_user`: per-node payloads, user broadcasts and messages.
This module holds the driver-facing side: dispatching received datagrams and
streams to those parts, the controls (join, leave, meta), the reads, and the
timer loop.
"""

from __future__ import annotations

import heapq
import math
import random
from collections.abc import Callable, Sequence
from typing import Any

from .config import GossipConfig
from .errors import DecodeError
from .events import (
    Address,
    JoinCompleted,
    MemberInfo,
    MemberState,
    Output,
    StreamPurpose,
)
from .limits import (
    ACK_HANDLERS_MAX,
    INBOUND_STREAM_MIN_BYTES,
    INCARNATION_MAX,
    MAX_PUSH_STATE_BYTES,
    MEMBER_SYNC_MAX_BYTES,
    META_MAX_BYTES,
    STRANGER_PAYLOAD_KEEP_S,
)
from .messages import (
    AckResp,
    Alive,
    Dead,
    IndirectPingReq,
    Message,
    NackResp,
    Ping,
    PushNodeState,
    PushPull,
    Suspect,
    UserMsg,
)
from .packet import StreamDecoder, open_packet_parts, seal_stream
from .security import Keyring
from .suspicion import SuspicionInfo
from .swim_base import (
    T_DEAD_PING,
    T_GOSSIP,
    T_POST_JOIN,
    T_PROBE,
    T_PROBE_END,
    T_PROBE_JUDGE,
    T_PROBE_TIMEOUT,
    T_PUSH_PULL,
    T_REAP,
    T_REASK,
    T_RECONNECT,
    T_RELAY_TIMEOUT,
    T_SUSPICION,
    TimerKey,
)
from .swim_heal import HealDetection
from .swim_membership import REASK_MAX_PER_INTERVAL
from .swim_probe import Probing
from .swim_user import PAYLOAD_MAX_BYTES
from .wire import encode

__all__ = ["PAYLOAD_MAX_BYTES", "REASK_MAX_PER_INTERVAL", "Swim"]


class Swim(Probing, HealDetection):
    """One member: see the module docstring and gossip/__init__.py for the API."""

    def __init__(self, *, name: str, addr: Address, config: GossipConfig, rng: random.Random,
                 now: float, meta: bytes = b"", keyring: Keyring | None = None,
                 label: bytes = b"", formed: Sequence[PushNodeState] = ()) -> None:
        super().__init__(name=name, addr=addr, config=config, rng=rng, now=now, meta=meta,
                         keyring=keyring, label=label)
        if formed:
            self._start_formed(formed, now)

    # ------------------------------------------------------------ inputs
    def receive_datagram(self, data: bytes, src: Address, now: float) -> None:
        counters = self.counters  # (inline _count: this runs for every packet)
        counters["packets_received"] = counters.get("packets_received", 0) + 1
        counters["bytes_received"] = counters.get("bytes_received", 0) + len(data)
        old_alive = self._members.old_alive
        try:
            # Parts already in old_alive are left out by the decoder (the
            # check below would drop them); the check stays for parts that
            # become old news while this packet is handled.
            parts = open_packet_parts(data, label=self.label, keyring=self.keyring, skip=old_alive)
        except DecodeError as exc:
            self._drop(exc.reason, src)
            return
        by_name = self._members.by_name
        default_port = self.addr.port
        for msg, raw in parts:
            if raw in old_alive:  # bytes we know to be old news (MemberTable.old_alive)
                continue
            if type(msg) is Alive:  # most of what gossip carries
                # Old news, tested here before calling _on_alive: most
                # Alives a member receives repeat what it holds (each one is
                # retransmitted retransmit_limit(n) times by every member),
                # and this loop runs for every one of them.  A known member
                # (not us) with our incarnation or older and the same
                # address, port, meta and version: _on_alive's checks would
                # pass (what we hold was validated) and end in its early
                # return for "not new, not local, incarnation <= ours".
                m = by_name.get(msg.node)
                if (m is not None and msg.incarnation <= m.incarnation and msg.addr == m.addr_bytes
                        and msg.meta == m.meta and msg.vsn == m.vsn
                        and (msg.port or default_port) == m.port and msg.node != self.name):
                    self._remember_old_alive(raw)
                    continue
                self._on_alive(msg, now, False, raw)
            else:
                self._handle(msg, src, now, raw)

    def _handle(self, msg: Message, src: Address, now: float, raw: bytes | None = None) -> None:
        """One UDP message.  `raw` is its received encoding when it may be
        re-gossiped verbatim (see gossip.compound.decode_parts)."""
        # Dispatch on the exact type with a dict: a large cluster handles
        # millions of messages, and a chain of class patterns costs one
        # isinstance per case.  The decoder only produces these types.
        handler = _HANDLERS.get(type(msg))
        if handler is None:
            self._drop("unexpected", src)
        else:
            handler(self, msg, src, now, raw)

    def stream_decoder(self, incoming: bool) -> StreamDecoder:
        if not incoming:
            # The reply of the peer we dialed: memberlist's cap.
            return StreamDecoder(label=self.label, keyring=self.keyring, expect_label_header=False)
        return StreamDecoder(label=self.label, keyring=self.keyring, expect_label_header=True,
                             max_bytes=self.inbound_stream_max_bytes())

    def inbound_stream_max_bytes(self) -> int:
        """The largest message (and encrypted frame) an accepted connection
        may send us: what a member of our cluster can honestly send
        (gossip.limits, INBOUND_STREAM_MIN_BYTES says why), so a sender
        without the key cannot make us buffer 20 MiB per connection before
        authenticating it, nor anyone inflate a small stream to 40 MiB."""
        known = len(self._members.by_name)
        return min(MAX_PUSH_STATE_BYTES, INBOUND_STREAM_MIN_BYTES + known * MEMBER_SYNC_MAX_BYTES)

    def receive_stream(self, msg: Message, src: Address, now: float) -> bytes | None:
        """An accepted TCP connection delivered `msg`; returns the bytes to
        write back, if any."""
        self._count("streams_received")
        match msg:
            case PushPull():
                self._merge_remote(msg, now, src)
                reply = self._local_push_pull(join=msg.join)
                return seal_stream(reply, label=self.label, keyring=self.keyring,
                                   compress=self.config.enable_compression, write_label=False,
                                   compress_min_bytes=self.config.push_pull_compress_min_bytes)
            case Ping():
                if msg.node and msg.node != self.name:
                    self._count("ping_wrong_node")
                    return None
                return seal_stream(encode(AckResp(msg.seq_no)), label=self.label,
                                   keyring=self.keyring, compress=False, write_label=False)
            case UserMsg():
                self._on_user(msg.payload, now, src)
                return None
            case _:
                self._drop("unexpected_stream", src)
                return None

    def stream_reply(self, stream_id: int, reply: Message | None, now: float) -> None:
        entry = self._streams.pop(stream_id, None)
        if entry is None:
            return
        purpose, context = entry
        if purpose is StreamPurpose.PUSH_PULL:
            # The seed of a join (an Address), or None for a periodic push/pull.
            join_seed = context if isinstance(context, Address) else None
            if isinstance(reply, PushPull):
                self._merge_remote(reply, now, join_reply=join_seed is not None)
                if join_seed is not None:
                    self._emit(JoinCompleted(join_seed, True, "", len(reply.nodes)))
            else:
                self._count("push_pull_failed")
                if join_seed is not None:
                    why = "no reply (connection failed or timed out)" if reply is None else \
                        f"unexpected reply {type(reply).__name__}"
                    self._emit(JoinCompleted(join_seed, False, why, 0))
            if join_seed is not None:
                self._join_reply_settled()
        elif purpose is StreamPurpose.PING and isinstance(reply, AckResp) and reply.seq_no == context:
            self._on_ack(reply.seq_no, now)

    def _ping_in(self, ping: Ping, src: Address, now: float) -> None:
        self._on_ping(ping, src)
        if ping.source_node and ping.source_node != self.name and (not ping.node or ping.node == self.name):
            self._pinged_by(ping.source_node, now)

    def _ack_in(self, seq: int, now: float) -> None:
        if not (self._dead_pings and self._dead_ping_acked(seq, now)):
            self._on_ack(seq, now)

    # ------------------------------------------------------------ controls
    def leave(self, now: float) -> None:
        """Gossip our graceful departure.  The driver should keep running us
        until `pending_broadcasts()` is 0 or a short timeout passes."""
        if self._leaving:
            return
        self._leaving = True
        me = self._me
        dead = encode(Dead(me.incarnation, me.name, me.name))
        self._queue.add(dead, ("member", me.name))
        self._members.set_state(me, MemberState.LEFT, now)
        # Push it out now rather than waiting for the next gossip tick.
        self._gossip(now)

    def pending_broadcasts(self) -> int:
        return len(self._queue)

    def set_meta(self, meta: bytes, now: float) -> None:
        if len(meta) > META_MAX_BYTES:
            raise ValueError(f"meta is {len(meta)} bytes; the limit is {META_MAX_BYTES}")
        self._me.meta = meta
        self._members.changed(self._me)
        if self._me.incarnation >= INCARNATION_MAX:
            # Pushed to the top by an accusation we refuted: the new meta
            # stays ours but cannot be announced (gossip.limits).
            self._count("incarnation_exhausted")
            return
        self._me.incarnation += 1
        self._members.changed(self._me)
        self._queue.add(self._alive_msg(), ("member", self.name))

    # ------------------------------------------------------------ reads
    def members(self) -> list[MemberInfo]:
        return sorted((m.info() for m in self._members.by_name.values()), key=lambda i: i.name)

    def live_count(self) -> int:
        """Members alive or suspect, us included (kept up to date: O(1))."""
        return self._members.live_count()

    def alive_names(self) -> set[str]:
        """Names of members we believe alive (cheap: no MemberInfo built)."""
        return {n for n, m in self._members.by_name.items() if m.state is MemberState.ALIVE}

    def suspicions(self) -> dict[str, SuspicionInfo]:
        """Our running suspicions, by member name (read-only copies): when
        each started, how soon it could end in death, its confirmations."""
        return {name: s.info() for name, s in self._suspicions.items()}

    def member(self, name: str) -> MemberInfo | None:
        m = self._members.get(name)
        return m.info() if m else None

    def payloads(self) -> dict[str, tuple[int, bytes]]:
        return dict(self._payloads)

    def health_score(self) -> int:
        return self._awareness.score

    @property
    def incarnation(self) -> int:
        return self._me.incarnation

    def stats(self) -> dict[str, int]:
        out = dict(self.counters)
        for state, n in self._members.counts.items():
            out[f"members_{state.value}"] = n
        out["health_score"] = self._awareness.score
        out["broadcast_queue"] = len(self._queue)
        return out

    def drain(self) -> list[Output]:
        out, self._outputs = self._outputs, []
        return out

    # ------------------------------------------------------------ timers
    def next_deadline(self) -> float | None:
        return self._timers[0][0] if self._timers else None

    def next_wake(self, now: float) -> float | None:
        """When a timer next has work: `next_deadline()`, passing over what
        would do nothing if it fired now, so that a driver paying for each
        wake-up (the agent's pump) sleeps through it: the gossip tick while
        nothing is queued, and the timeout of a probe already acked.  Both
        stay in the heap and fire, as the no-ops they are, in the next
        `handle_timers`.  Once something is queued, an overdue gossip tick
        counts again at the first point of its grid (its deadline plus whole
        gossip intervals) not before `now`: a broadcast waits for the tick as
        it always did, and rounds stay at least gossip_interval_s apart.
        Timing of everything else is next_deadline()'s; the simulator keeps
        using that (its traces fire every timer where it is due)."""
        timers = self._timers
        best: float | None = None  # an overdue gossip tick's next grid point
        # Best-first walk down the heap: only passed-over entries (at most a
        # gossip tick and a few acked probes) have their children looked at.
        walk = [(timers[0], 0)] if timers else []
        while walk:
            entry, i = heapq.heappop(walk)
            at, _, kind, key = entry
            if best is not None and at >= best:
                return best
            if kind == T_GOSSIP:
                if len(self._queue):
                    interval = self.config.gossip_interval_s
                    if at < now and interval > 0:
                        at += math.ceil((now - at) / interval) * interval
                    best = at if best is None else min(best, at)
            elif kind == T_PROBE_TIMEOUT and isinstance(key, int) and self._probe_acked(key):
                pass
            else:
                return at if best is None else min(at, best)
            for child in (2 * i + 1, 2 * i + 2):
                if child < len(timers):
                    heapq.heappush(walk, (timers[child], child))
        return best

    def _probe_acked(self, seq: int) -> bool:
        probe = self._probes.get(seq)
        return probe is None or probe.acked

    def handle_timers(self, now: float) -> None:
        timers = self._timers
        # Bounded: each firing may schedule new timers, but only in the future
        # of `now` except zero-delay follow-ups, which we cap.
        for _ in range(100_000):
            if not timers or timers[0][0] > now:
                return
            _, _, kind, key = heapq.heappop(timers)
            self._fire(kind, key, now)

    def _fire(self, kind: int, key: TimerKey, now: float) -> None:
        # Each kind is scheduled with one type of key (TimerKey says which);
        # the asserts state that for the type checker.
        cfg = self.config
        if kind == T_PROBE:
            self._probe_tick(now)
        elif kind == T_PROBE_TIMEOUT:
            assert isinstance(key, int)
            self._probe_timeout(key, now)
        elif kind == T_PROBE_END:
            assert isinstance(key, int)
            self._probe_end(key, now)
        elif kind == T_PROBE_JUDGE:
            assert isinstance(key, int)
            self._probe_judged(key)
        elif kind == T_RELAY_TIMEOUT:
            assert isinstance(key, int)
            self._relay_timeout(key)
        elif kind == T_SUSPICION:
            assert isinstance(key, tuple)
            self._suspicion_timeout(key[0], key[1], now)
        elif kind == T_GOSSIP:
            if not self._leaving:
                self._gossip(now)
            self._schedule(now + cfg.gossip_interval_s, T_GOSSIP, None)
        elif kind == T_PUSH_PULL:
            if not self._leaving:
                self._push_pull_random(now)
            self._schedule(now + self._push_pull_interval(), T_PUSH_PULL, None)
        elif kind == T_RECONNECT:
            if not self._leaving:
                self._reconnect(now)
            self._schedule(now + cfg.reconnect_interval_s, T_RECONNECT, None)
        elif kind == T_DEAD_PING:
            self._dead_ping_tick(now)
        elif kind == T_POST_JOIN:
            assert isinstance(key, int)
            self._post_join_sync(key, now)
        elif kind == T_REAP:
            self._reap(now)
            self._schedule(now + cfg.probe_interval_s * 5, T_REAP, None)
        elif kind == T_REASK:
            self._reask_scheduled = False
            if self._suspicions:
                self._reask_suspects(now)
                self._schedule_reask(now)

    # ------------------------------------------------------------ tombstones
    def _reap(self, now: float) -> None:
        keep = self.config.tombstone_keep_s
        counts = self._members.counts
        # Scan the table only when it holds tombstones: this runs every few
        # seconds on every node, and a healthy cluster has none.
        if counts[MemberState.DEAD] or counts[MemberState.LEFT]:
            gone = {name for name, m in self._members.by_name.items()
                    if m.dead_or_left() and name != self.name and now - m.state_change_at > keep}
        else:
            gone = set()
        if gone:
            self._members.remove(gone)
            for name in gone:
                self._payloads.pop(name, None)
        if self._payload_strangers:
            self._reap_stranger_payloads(now)
        if self._heard_dead:
            self._forget_heard_dead(now)
        if self._heal_synced:
            self._forget_heal_syncs(now)
        # Forget probe bookkeeping that no timer will clear (bounded maps).
        if len(self._probes) > ACK_HANDLERS_MAX:
            self._probes.clear()

    def _reap_stranger_payloads(self, now: float) -> None:
        """Forget payloads of names that did not become members in time."""
        by_name = self._members.by_name
        for name, since in list(self._payload_strangers.items()):
            if name in by_name:
                del self._payload_strangers[name]
            elif now - since > STRANGER_PAYLOAD_KEEP_S:
                del self._payload_strangers[name]
                self._payloads.pop(name, None)


# UDP message handlers by exact message type (Swim._handle).  Each takes its
# own message type, which a dict's value type cannot state: hence Any.
_HANDLERS: dict[type, Callable[[Swim, Any, Address, float, bytes | None], None]] = {
    Ping: lambda self, msg, src, now, raw: self._ping_in(msg, src, now),
    IndirectPingReq: lambda self, msg, src, now, raw: self._on_indirect_ping(msg, src, now),
    AckResp: lambda self, msg, src, now, raw: self._ack_in(msg.seq_no, now),
    NackResp: lambda self, msg, src, now, raw: self._on_nack(msg.seq_no),
    Alive: lambda self, msg, src, now, raw: self._on_alive(msg, now, raw=raw),
    Suspect: lambda self, msg, src, now, raw: self._on_suspect(msg, now, raw, src),
    Dead: lambda self, msg, src, now, raw: self._on_dead(msg, now, raw, src),
    UserMsg: lambda self, msg, src, now, raw: self._on_user(msg.payload, now, src),
}
