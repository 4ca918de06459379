"""SWIM + Lifeguard membership, speaking memberlist's protocol; sans-I/O.

How this works (the theory of operation)
----------------------------------------
`Swim` is one member's whole protocol state.  It never touches a socket or a
clock: the driver feeds it datagrams, stream messages and timer firings, each
with `now`, and afterwards drains a list of outputs (datagrams to send, TCP
streams to open, membership events).  The same object runs under the trio
agent and under the deterministic simulator.

Failure detection (SWIM §4, memberlist state.go):
  every probe_interval_s we ping the next member in a shuffled round-robin
  order.  No ack within probe_timeout_s -> ask `indirect_checks` random
  members to ping it for us (and, for peers that speak protocol >= 3, try a
  TCP ping too).  No ack by the end of the probe interval (scaled by our
  health score, below) -> we *suspect* it
  and gossip a Suspect message.  A suspect that does not refute (by gossiping
  Alive with a higher incarnation) before its suspicion timeout is declared
  Dead.  Only a node increments its own incarnation, so a live node can
  always out-vote a rumour about itself.

Lifeguard (Dadgar et al., 2018):
  * awareness: our own health score stretches the deadline of a probe that
    gets no direct ack (the time indirect and TCP probes get), not the
    direct ping's timeout; probes that are answered keep the probe tick's
    pace, as memberlist's probe ticker does;
  * suspicion timeouts start long and shrink as independent members confirm;
  * buddy system: a probe of a suspect carries the Suspect message, so the
    suspect learns of it directly and refutes at once.

Beyond memberlist (against false deaths under heavy loss): a refutation is
a broadcast like any other, and at 20 % loss some member regularly misses
every copy while it holds a suspicion, which then times out.  So
  * an accusation older than the alive we hold is answered, to its sender,
    with that alive (at most once per sender, subject and probe interval);
  * while we suspect a member we send it the accusation with a ping once per
    probe interval (not only when the round-robin reaches it), so a suspect
    that has refuted tells us so directly.
Both use plain memberlist messages; a memberlist peer just ignores the old
accusation.  In the simulator (N=30, 20 % loss, 300 s) they took false
deaths from 11 in 8 seeds to 0 in 12.

Dissemination: membership news and user data ride in a transmit-limited
broadcast queue, piggybacked on every UDP packet we send and pushed to
`gossip_nodes` random members every gossip_interval_s.  Anti-entropy: a full
state push/pull over TCP with one random member every push_pull_interval_s,
one right after joining (`post_join_sync_s`), and with failed members every
reconnect_interval_s so healed partitions merge.

Rules for remote state in push/pull (memberlist mergeState): Alive is
handled as an Alive message, Left as a graceful leave, and remote Dead or
Suspect only ever makes us *suspect* a node — we never accept a death we did
not time out ourselves.
"""

from __future__ import annotations

import heapq
import random

from . import userdata
from .awareness import Awareness
from .broadcast import USER_LANE, BroadcastQueue
from .config import (
    COMPOUND_MAX_PARTS,
    LABEL_MAX_BYTES,
    MAX_USER_MSG_BYTES,
    META_MAX_BYTES,
    VSN,
    GossipConfig,
)
from .events import (
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
    Output,
    PacketDropped,
    PayloadUpdated,
    SendDatagram,
    StreamPurpose,
    UserBroadcast,
    UserMessage,
    UserStateReceived,
)
from .members import Member, MemberTable, addr_to_bytes, bytes_to_host as _host_of
from .messages import (
    AckResp,
    Alive,
    Dead,
    IndirectPingReq,
    Message,
    NackResp,
    NodeStateCode,
    Ping,
    PushPull,
    Suspect,
    UserMsg,
)
from .packet import StreamDecoder, open_packet_parts, seal_packet, seal_stream
from .security import Keyring
from .suspicion import Suspicion
from .wire import DecodeError, encode, encode_alive, encode_push_pull, encode_stream_user, make_compound

# Bytes reserved in each packet for the compound header, label and CRC.
COMPOUND_HEADER_BYTES = 2
CRC_BYTES = 5
ENCRYPTION_OVERHEAD_BYTES = 29
PAYLOAD_MAX_BYTES = 1024  # one per-node payload must fit a single packet
USER_BROADCAST_MAX_BYTES = 1024
SEEN_BROADCASTS_MAX = 16_384
ACK_HANDLERS_MAX = 65_536
RECENT_USER_MAX = 4096
OLD_ALIVE_MAX = 65_536
CORRECTIONS_MAX = 4096

# timer kinds
_T_PROBE = 0
_T_PROBE_TIMEOUT = 1
_T_PROBE_END = 2
_T_RELAY_TIMEOUT = 3
_T_SUSPICION = 4
_T_GOSSIP = 5
_T_PUSH_PULL = 6
_T_RECONNECT = 7
_T_POST_JOIN = 8
_T_REAP = 9
_T_REASK = 10

# Suspects re-asked per probe interval (_reask_suspects): a few suspicions at
# a time are the normal case under loss; a partition makes hundreds.
REASK_MAX_PER_INTERVAL = 3


class _Probe:
    __slots__ = ("target", "incarnation", "acked", "nacks", "expected_nacks", "indirect_started")

    def __init__(self, target: str, incarnation: int) -> None:
        self.target = target
        # The incarnation we probed: a failed probe accuses only that one.
        self.incarnation = incarnation
        self.acked = False
        self.nacks = 0
        self.expected_nacks = 0
        self.indirect_started = False


class _Relay:
    """An indirect probe we run for someone else."""

    __slots__ = ("requester_seq", "reply_to", "want_nack", "acked")

    def __init__(self, requester_seq: int, reply_to: Address, want_nack: bool) -> None:
        self.requester_seq = requester_seq
        self.reply_to = reply_to
        self.want_nack = want_nack
        self.acked = False


class Swim:
    def __init__(self, *, name: str, addr: Address, config: GossipConfig, rng: random.Random,
                 now: float, meta: bytes = b"", keyring: Keyring | None = None,
                 label: bytes = b"") -> None:
        if not name:
            raise ValueError("node name must not be empty")
        if len(meta) > META_MAX_BYTES:
            raise ValueError(f"meta is {len(meta)} bytes; the limit is {META_MAX_BYTES}")
        if len(label) > LABEL_MAX_BYTES:
            raise ValueError(f"label is {len(label)} bytes; the limit is {LABEL_MAX_BYTES}")
        self.name = name
        self.addr = addr
        self.config = config
        self.keyring = keyring
        self.label = label
        self._rng = rng
        self._addr_bytes = addr_to_bytes(addr.host)
        self._outputs: list[Output] = []
        self._members = MemberTable(rng, name)
        self._awareness = Awareness(config.awareness_max_multiplier)
        # One queue, two lanes: membership news goes ahead of payloads and
        # user broadcasts sent as often (gossip/broadcast.py says why).
        self._queue = BroadcastQueue(config.broadcast_queue_max)
        self._timers: list[tuple[float, int, int, object]] = []
        self._timer_seq = 0
        self._seq_no = 0
        self._probes: dict[int, _Probe] = {}
        # The probe round is a fixed tick, as memberlist's probe ticker: a
        # probe that is answered leaves the next one to the next tick; one
        # still running at a tick (it failed, and waits out its
        # awareness-scaled deadline) delays that one tick until it ends, as
        # a Go ticker buffers one tick for a busy receiver.
        self._probe_in_flight: int | None = None
        self._probe_tick_pending = False
        self._relays: dict[int, _Relay] = {}
        self._suspicions: dict[str, Suspicion] = {}
        self._reask_scheduled = False  # one _T_REASK timer while any suspicion is held
        self._suspicion_gen = 0
        # (sender, subject) -> when we last answered its stale accusation.
        self._corrections: dict[tuple[Address, str], float] = {}
        self._streams: dict[int, tuple[StreamPurpose, object]] = {}
        self._stream_id = 0
        self._leaving = False
        self._joined_once = False
        self._post_join_known = 0  # member count at the last post-join sync
        # per-node payloads and user data
        self._payloads: dict[str, tuple[int, bytes]] = {}
        self._broadcast_id = 0
        self._seen_broadcasts: dict[tuple[str, int], None] = {}
        self._user_state = b""
        self._recent_user: dict[bytes, None] = {}
        self.counters: dict[str, int] = {}

        # Incarnation starts at 1: Go memberlist stores a never-seen node at 0
        # and ignores an Alive whose incarnation is not above what it stores.
        me = Member(name, self._addr_bytes, addr.port, meta, VSN, 1, MemberState.ALIVE, now)
        self._members.add(me)
        self._me = me
        self._schedule(now + self._rng.uniform(0, config.probe_interval_s), _T_PROBE, None)
        self._schedule(now + config.gossip_interval_s, _T_GOSSIP, None)
        self._schedule(now + self._push_pull_interval(), _T_PUSH_PULL, None)
        self._schedule(now + config.reconnect_interval_s, _T_RECONNECT, None)
        self._schedule(now + config.probe_interval_s * 5, _T_REAP, None)

    # ------------------------------------------------------------------ util
    def _count(self, key: str, n: int = 1) -> None:
        self.counters[key] = self.counters.get(key, 0) + n

    def _schedule(self, at: float, kind: int, key: object) -> None:
        self._timer_seq += 1
        heapq.heappush(self._timers, (at, self._timer_seq, kind, key))

    def _next_seq(self) -> int:
        self._seq_no = (self._seq_no + 1) & 0xFFFFFFFF
        return self._seq_no

    def _push_pull_interval(self) -> float:
        # Spread the first push/pulls of nodes started together.
        base = self.config.push_pull_interval_for(max(1, self._members.live_count()))
        return base * self._rng.uniform(0.75, 1.25)

    def _emit(self, out: Output) -> None:
        self._outputs.append(out)

    def _alive_msg(self) -> bytes:
        me = self._me
        return encode_alive(me.incarnation, me.name, me.addr_bytes, me.port, me.meta, me.vsn)

    # ------------------------------------------------------------ sending
    def _send(self, member: Member | None, addr: Address, msg: bytes) -> None:
        """Send one message to addr, filling the rest of the packet with
        queued broadcasts (memberlist sendMsg)."""
        budget = self.config.packet_budget_bytes - len(msg) - COMPOUND_HEADER_BYTES
        if self.label:
            budget -= 2 + len(self.label)
        if self.keyring is not None:
            budget -= ENCRYPTION_OVERHEAD_BYTES
        budget -= CRC_BYTES
        extras = self._queue.take(budget, self._retransmit_limit())
        if extras:
            packets = [make_compound([msg, *extras[: COMPOUND_MAX_PARTS - 1]])]
        else:
            packets = [msg]
        self._send_raw(member, addr, packets[0])

    def _send_raw(self, member: Member | None, addr: Address, data: bytes) -> None:
        crc = member is not None and member.protocol_max >= 5
        try:
            sealed = seal_packet(data, label=self.label, keyring=self.keyring, crc=crc,
                                 compress=self.config.enable_compression,
                                 compress_min_bytes=self.config.compress_min_bytes)
        except ValueError:  # an oversize message cannot be sent; count it
            self._count("send_failed")
            return
        counters = self.counters  # (inline _count: this runs for every packet)
        counters["packets_sent"] = counters.get("packets_sent", 0) + 1
        counters["bytes_sent"] = counters.get("bytes_sent", 0) + len(sealed)
        self._outputs.append(SendDatagram(addr, sealed))

    def _open_stream(self, addr: Address, payload: bytes, purpose: StreamPurpose, context: object,
                     expect_reply: bool, timeout_s: float) -> None:
        self._stream_id += 1
        data = seal_stream(payload, label=self.label, keyring=self.keyring,
                           compress=self.config.enable_compression and purpose is StreamPurpose.PUSH_PULL,
                           write_label=True)
        if expect_reply:
            self._streams[self._stream_id] = (purpose, context)
        self._emit(OpenStream(self._stream_id, addr, data, expect_reply, timeout_s, purpose))

    def _retransmit_limit(self) -> int:
        return self.config.retransmit_limit(max(1, self._members.live_count()))

    # ------------------------------------------------------------ inputs
    def receive_datagram(self, data: bytes, src: Address, now: float) -> None:
        counters = self.counters  # (inline _count: this runs for every packet)
        counters["packets_received"] = counters.get("packets_received", 0) + 1
        counters["bytes_received"] = counters.get("bytes_received", 0) + len(data)
        try:
            parts = open_packet_parts(data, label=self.label, keyring=self.keyring)
        except DecodeError as exc:
            self._drop(exc.reason, src)
            return
        by_name = self._members.by_name
        old_alive = self._members.old_alive
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

    def _drop(self, reason: str, src: Address | None) -> None:
        self._count(f"dropped_{reason}")
        self._emit(PacketDropped(reason, src))

    def _handle(self, msg: Message, src: Address, now: float, raw: bytes | None = None) -> None:
        """One UDP message.  `raw` is its received encoding when it may be
        re-gossiped verbatim (see gossip.wire.decode_parts)."""
        # Dispatch on the exact type with a dict: a large cluster handles
        # millions of messages, and a chain of class patterns costs one
        # isinstance per case.  The decoder only produces these types.
        handler = _HANDLERS.get(type(msg))
        if handler is None:
            self._drop("unexpected", src)
        else:
            handler(self, msg, src, now, raw)

    def stream_decoder(self, incoming: bool) -> StreamDecoder:
        return StreamDecoder(label=self.label, keyring=self.keyring, expect_label_header=incoming)

    def receive_stream(self, msg: Message, src: Address, now: float) -> bytes | None:
        """An accepted TCP connection delivered `msg`; returns the bytes to
        write back, if any."""
        self._count("streams_received")
        match msg:
            case PushPull():
                self._merge_remote(msg, now)
                reply = self._local_push_pull(join=msg.join)
                return seal_stream(reply, label=self.label, keyring=self.keyring,
                                   compress=self.config.enable_compression, write_label=False)
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
            join_seed = context
            if isinstance(reply, PushPull):
                self._merge_remote(reply, now)
                if join_seed is not None:
                    self._emit(JoinCompleted(join_seed, True, "", len(reply.nodes)))
            else:
                self._count("push_pull_failed")
                if join_seed is not None:
                    why = "no reply (connection failed or timed out)" if reply is None else \
                        f"unexpected reply {type(reply).__name__}"
                    self._emit(JoinCompleted(join_seed, False, why, 0))
        elif purpose is StreamPurpose.PING:
            if isinstance(reply, AckResp) and reply.seq_no == context:
                self._on_ack(reply.seq_no, now)

    # ------------------------------------------------------------ controls
    def join(self, seeds: list[Address], now: float) -> None:
        payload = self._local_push_pull(join=True)
        for seed in seeds:
            self._open_stream(seed, payload, StreamPurpose.PUSH_PULL, seed, True,
                              self.config.tcp_timeout_s)
        if not self._joined_once:
            self._joined_once = True
            self._schedule(now + self.config.post_join_sync_s, _T_POST_JOIN, 1)

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
        self._me.incarnation += 1
        self._queue.add(self._alive_msg(), ("member", self.name))

    def set_payload(self, data: bytes, now: float) -> None:
        if len(data) > PAYLOAD_MAX_BYTES:
            raise ValueError(f"payload is {len(data)} bytes; the limit is {PAYLOAD_MAX_BYTES}")
        version = self._payloads.get(self.name, (0, b""))[0] + 1
        self._store_payload(self.name, version, data)

    def _store_payload(self, node: str, version: int, data: bytes) -> None:
        self._payloads[node] = (version, data)
        self._queue.add(userdata_msg(userdata.encode_payload(node, version, data)), ("payload", node),
                        lane=USER_LANE)
        self._emit(PayloadUpdated(node, version, data))

    def broadcast(self, data: bytes, now: float) -> None:
        if len(data) > USER_BROADCAST_MAX_BYTES:
            raise ValueError(f"broadcast is {len(data)} bytes; the limit is {USER_BROADCAST_MAX_BYTES}")
        self._broadcast_id += 1
        self._remember_broadcast((self.name, self._broadcast_id))
        self._queue.add(userdata_msg(userdata.encode_broadcast(self.name, self._broadcast_id, data)),
                        lane=USER_LANE)

    def send_user_message(self, node: str, data: bytes, reliable: bool, now: float) -> bool:
        """Best effort over UDP, or reliable over TCP.  False if the node is
        unknown or not alive."""
        member = self._members.get(node)
        if member is None or member.dead_or_left():
            return False
        body = userdata.encode_direct(self.name, data)
        if reliable:
            if len(body) > MAX_USER_MSG_BYTES:
                raise ValueError("user message too large")
            self._open_stream(member.address, encode_stream_user(UserMsg(body)), StreamPurpose.USER,
                              None, False, self.config.tcp_timeout_s)
        else:
            if len(body) + 1 > self.config.packet_budget_bytes - 64:
                raise ValueError("user message too large for one datagram; send it reliably")
            self._send(member, member.address, userdata_msg(body))
        return True

    def set_user_state(self, data: bytes) -> None:
        self._user_state = data

    # ------------------------------------------------------------ reads
    def members(self) -> list[MemberInfo]:
        return sorted((m.info() for m in self._members.by_name.values()), key=lambda i: i.name)

    def alive_names(self) -> set[str]:
        """Names of members we believe alive (cheap: no MemberInfo built)."""
        return {n for n, m in self._members.by_name.items() if m.state is MemberState.ALIVE}

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

    def handle_timers(self, now: float) -> None:
        timers = self._timers
        # Bounded: each firing may schedule new timers, but only in the future
        # of `now` except zero-delay follow-ups, which we cap.
        for _ in range(100_000):
            if not timers or timers[0][0] > now:
                return
            _, _, kind, key = heapq.heappop(timers)
            self._fire(kind, key, now)

    def _fire(self, kind: int, key: object, now: float) -> None:
        cfg = self.config
        if kind == _T_PROBE:
            self._schedule(now + cfg.probe_interval_s, _T_PROBE, None)
            if self._probe_in_flight is not None:
                self._probe_tick_pending = True
            else:
                self._probe(now)
        elif kind == _T_PROBE_TIMEOUT:
            self._probe_timeout(key, now)
        elif kind == _T_PROBE_END:
            self._probe_end(key, now)
        elif kind == _T_RELAY_TIMEOUT:
            relay = self._relays.pop(key, None)
            if relay is not None and not relay.acked and relay.want_nack:
                self._send(None, relay.reply_to, encode(NackResp(relay.requester_seq)))
        elif kind == _T_SUSPICION:
            name, gen = key
            susp = self._suspicions.get(name)
            if susp is not None and susp.generation == gen:
                self._suspicion_expired(name, now)
        elif kind == _T_GOSSIP:
            if not self._leaving:
                self._gossip(now)
            self._schedule(now + cfg.gossip_interval_s, _T_GOSSIP, None)
        elif kind == _T_PUSH_PULL:
            if not self._leaving:
                self._push_pull_random(now)
            self._schedule(now + self._push_pull_interval(), _T_PUSH_PULL, None)
        elif kind == _T_RECONNECT:
            if not self._leaving:
                self._reconnect(now)
            self._schedule(now + cfg.reconnect_interval_s, _T_RECONNECT, None)
        elif kind == _T_POST_JOIN:
            # Sync k (from 1): the first always; the next ones only while
            # the member count still changes, i.e. while others are joining
            # too.  In a join storm a member whose own alive spreads late
            # can miss every copy of another's (each member sends it only
            # retransmit_limit times, to members it knows by then), and
            # only a push/pull tells it; otherwise that is the periodic one.
            known = len(self._members.by_name)
            if key == 1 or known != self._post_join_known:
                self._push_pull_random(now)
                self._count("post_join_syncs")
                if key < cfg.post_join_syncs:
                    self._schedule(now + cfg.post_join_sync_s, _T_POST_JOIN, key + 1)
            self._post_join_known = known
        elif kind == _T_REAP:
            self._reap(now)
            self._schedule(now + cfg.probe_interval_s * 5, _T_REAP, None)
        elif kind == _T_REASK:
            self._reask_scheduled = False
            if self._suspicions:
                self._reask_suspects(now)
                self._schedule_reask(now)

    # ------------------------------------------------------------ probing
    def _probe(self, now: float) -> None:
        """Start probing the next member.  It ends at its first ack, or
        failed at the awareness-scaled probe interval (_probe_done)."""
        if self._leaving:
            return
        target = self._members.next_probe_target()
        if target is None:
            return
        interval = self._awareness.scale(self.config.probe_interval_s)
        # The direct ping's timeout is not scaled by our health score (as in
        # memberlist): waiting longer rarely gets a UDP ack through, while
        # the longer probe interval leaves the indirect pings and the TCP
        # fallback more time.
        timeout = self.config.probe_timeout_s
        seq = self._next_seq()
        self._probes[seq] = _Probe(target.name, target.incarnation)
        self._probe_in_flight = seq
        if target.state is MemberState.SUSPECT:
            # Buddy system: tell the suspect directly that it is suspected.
            self._send_ping_with_suspicion(target, seq)
        else:
            self._send(target, target.address,
                       encode(Ping(seq, target.name, self._addr_bytes, self.addr.port, self.name)))
        self._count("probes_sent")
        self._schedule(now + timeout, _T_PROBE_TIMEOUT, seq)
        self._schedule(now + interval, _T_PROBE_END, seq)

    def _probe_done(self, seq: int, now: float) -> None:
        """Probe `seq` ended (acked, or failed at its deadline): a tick that
        came while it ran starts the next probe now."""
        if seq != self._probe_in_flight:
            return
        self._probe_in_flight = None
        if self._probe_tick_pending:
            self._probe_tick_pending = False
            self._probe(now)

    def _probe_timeout(self, seq: int, now: float) -> None:
        probe = self._probes.get(seq)
        if probe is None or probe.acked:
            return
        target = self._members.get(probe.target)
        if target is None or target.dead_or_left():
            return
        probe.indirect_started = True
        helpers = self._members.random_members(
            self.config.indirect_checks,
            lambda m: m.state is MemberState.ALIVE and m.name != target.name)
        for helper in helpers:
            want_nack = helper.protocol_max >= 4
            if want_nack:
                probe.expected_nacks += 1
            req = IndirectPingReq(seq, target.addr_bytes, target.port, target.name, want_nack,
                                  self._addr_bytes, self.addr.port, self.name)
            self._send(helper, helper.address, encode(req))
        if not self.config.disable_tcp_pings and target.protocol_max >= 3:
            remaining = self._awareness.scale(self.config.probe_interval_s) - self.config.probe_timeout_s
            ping = encode(Ping(seq, target.name, self._addr_bytes, self.addr.port, self.name))
            self._open_stream(target.address, ping, StreamPurpose.PING, seq, True, max(remaining, 0.01))

    def _probe_end(self, seq: int, now: float) -> None:
        probe = self._probes.pop(seq, None)
        if probe is None or probe.acked:
            return
        self._probe_failed(probe, now)
        self._probe_done(seq, now)

    def _probe_failed(self, probe: _Probe, now: float) -> None:
        # Lifeguard: missing nacks mean *we* may be the problem.
        if probe.expected_nacks > 0:
            delta = max(0, probe.expected_nacks - probe.nacks)
        else:
            delta = 1
        self._awareness.apply_delta(delta)
        self._count("probes_failed")
        target = self._members.get(probe.target)
        if target is None or target.dead_or_left():
            return
        # The incarnation we probed, not the one we hold now (memberlist
        # probes a copy of the node's state): a member that restarted and
        # rejoined, or refuted, while our ping to its old self went
        # unanswered is not accused.
        self._on_suspect(Suspect(probe.incarnation, target.name, self.name), now)

    def _on_ping(self, ping: Ping, src: Address) -> None:
        if ping.node and ping.node != self.name:
            self._count("ping_wrong_node")
            return
        if ping.source_addr and ping.source_port:
            try:
                reply_to = Address(_host_of(ping.source_addr), ping.source_port)
            except ValueError:
                self._drop("malformed", src)
                return
        else:
            reply_to = src
        member = self._members.get(ping.source_node) if ping.source_node else None
        self._send(member, reply_to, encode(AckResp(ping.seq_no)))

    def _on_indirect_ping(self, req: IndirectPingReq, src: Address, now: float) -> None:
        if req.source_addr and req.source_port:
            try:
                reply_to = Address(_host_of(req.source_addr), req.source_port)
            except ValueError:
                self._drop("malformed", src)
                return
        else:
            reply_to = src
        try:
            target_addr = Address(_host_of(req.target), req.port or self.addr.port)
        except ValueError:
            self._drop("malformed", src)
            return
        if len(self._relays) >= ACK_HANDLERS_MAX:
            self._count("relays_dropped")
            return
        seq = self._next_seq()
        self._relays[seq] = _Relay(req.seq_no, reply_to, req.nack)
        self._send(self._members.get(req.node), target_addr,
                   encode(Ping(seq, req.node, self._addr_bytes, self.addr.port, self.name)))
        self._schedule(now + self.config.probe_timeout_s, _T_RELAY_TIMEOUT, seq)

    def _on_ack(self, seq: int, now: float) -> None:
        probe = self._probes.get(seq)
        if probe is not None:
            if not probe.acked:
                probe.acked = True
                # Any ack, direct, relayed or over TCP, means the probe
                # worked, which improves our own health (memberlist probeNode).
                self._awareness.apply_delta(-1)
                self._count("acks_received")
                self._probe_done(seq, now)
            return
        relay = self._relays.get(seq)
        if relay is not None and not relay.acked:
            relay.acked = True
            self._send(None, relay.reply_to, encode(AckResp(relay.requester_seq)))

    def _on_nack(self, seq: int) -> None:
        probe = self._probes.get(seq)
        if probe is not None:
            probe.nacks += 1

    # ------------------------------------------------------------ state rules
    def _refute(self, accused_incarnation: int) -> None:
        me = self._me
        me.incarnation = max(me.incarnation, accused_incarnation) + 1
        self._queue.add(self._alive_msg(), ("member", self.name))
        self._awareness.apply_delta(1)
        self._count("refutations")

    def _on_alive(self, a: Alive, now: float, bootstrap: bool = False, raw: bytes | None = None) -> None:
        if self._leaving and a.node == self.name:
            return
        vsn = a.vsn
        if len(vsn) < 3 or vsn[0] == 0 or vsn[1] == 0 or vsn[0] > vsn[1]:
            self._count("alive_bad_version")
            return
        if len(a.meta) > META_MAX_BYTES or not a.node or len(a.node) > 512:
            self._count("alive_invalid")
            return
        if len(a.addr) not in (4, 16):
            self._count("alive_invalid")
            return
        member = self._members.by_name.get(a.node)
        is_new = member is None
        updates_addr = False
        if member is None:
            member = Member(a.node, a.addr, a.port or self.addr.port, a.meta, a.vsn, a.incarnation,
                            MemberState.DEAD, now)
            self._members.add(member)
        elif member.addr_bytes != a.addr or member.port != (a.port or self.addr.port):
            reclaimable = member.state is MemberState.LEFT or (
                member.state is MemberState.DEAD
                and now - member.state_change_at > self.config.dead_node_reclaim_s)
            if a.node == self.name or not reclaimable:
                self._count("alive_conflict")
                return
            updates_addr = True
        is_local = a.node == self.name
        if not is_new and not is_local and a.incarnation <= member.incarnation and not updates_addr:
            return
        if is_local and a.incarnation < member.incarnation:
            return
        self._suspicions.pop(a.node, None)
        if is_local:
            if a.incarnation == member.incarnation and a.meta == member.meta and tuple(a.vsn) == member.vsn:
                return  # our own alive coming back to us
            self._refute(a.incarnation)
            return
        # Rebroadcast the bytes we received when we have them (memberlist
        # re-encodes; the result is the same message).
        self._queue.add(raw if raw is not None else encode(a), ("member", a.node))
        old_state = member.state
        meta_changed = member.meta != a.meta
        if updates_addr:
            self._members.readdress(member, a.addr, a.port or self.addr.port)
        member.incarnation = a.incarnation
        member.meta = a.meta
        member.vsn = tuple(a.vsn)
        self._members.set_state(member, MemberState.ALIVE, now)
        self._remember_old_alive(raw)  # applied: from now on, old news
        if is_new or old_state is MemberState.DEAD or old_state is MemberState.LEFT:
            self._emit(MemberJoined(member.info()))
        elif meta_changed or updates_addr or old_state is MemberState.SUSPECT:
            self._emit(MemberUpdated(member.info()))

    def _remember_old_alive(self, raw: bytes | None) -> None:
        if raw is not None:
            old = self._members.old_alive
            if len(old) >= OLD_ALIVE_MAX:
                old.clear()
            old.add(raw)

    def _on_suspect(self, s: Suspect, now: float, raw: bytes | None = None,
                    src: Address | None = None) -> None:
        member = self._members.get(s.node)
        if member is None:
            return
        if s.incarnation < member.incarnation:
            if src is not None:
                self._correct_stale_accusation(member, src, now)
            return
        susp = self._suspicions.get(s.node)
        if susp is not None:
            if susp.confirm(s.from_node):
                self._queue.add(raw if raw is not None else encode(s), ("member", s.node))
                self._schedule(susp.deadline(), _T_SUSPICION, (s.node, susp.generation))
            return
        if member.state is not MemberState.ALIVE:
            return
        if s.node == self.name:
            self._refute(s.incarnation)
            return
        self._queue.add(raw if raw is not None else encode(s), ("member", s.node))
        member.incarnation = s.incarnation
        self._members.set_state(member, MemberState.SUSPECT, now)
        n = self._members.live_count()
        k = self.config.suspicion_confirmations_wanted()
        if n - 2 < k:
            k = 0
        self._suspicion_gen += 1
        susp = Suspicion(from_node=s.from_node, k=k,
                         min_timeout_s=self.config.suspicion_min_timeout_s(n),
                         max_timeout_s=self.config.suspicion_max_timeout_s(n),
                         now=now, generation=self._suspicion_gen)
        self._suspicions[s.node] = susp
        self._schedule(susp.deadline(), _T_SUSPICION, (s.node, susp.generation))
        if not self._reask_scheduled:
            self._schedule_reask(now)
        self._emit(MemberSuspected(member.info()))

    def _correct_stale_accusation(self, member: Member, src: Address, now: float) -> None:
        """`src` gossiped a suspect or dead message about `member` older than
        the alive we hold: it has not heard the refutation, and may itself be
        counting down to declaring a live node dead.  Tell it, directly.

        Why: a refutation spreads like any broadcast, each member sending it
        retransmit_limit times within a few gossip rounds, so under heavy
        loss a member can miss every copy; nothing but the next push/pull
        (30 s with lan) would then tell it, and its suspicion timer (6 s at
        N=30) expires first.  A member still gossiping the old accusation is
        exactly such a member, and every up-to-date member that hears it can
        answer.  At most one answer per (sender, subject) per probe interval.
        memberlist ignores the old message; the answer is a plain alive
        message, so memberlist peers take it like any other."""
        if member.state is not MemberState.ALIVE:
            return
        key = (src, member.name)
        last = self._corrections.get(key)
        if last is not None and now - last < self.config.probe_interval_s:
            return
        if len(self._corrections) >= CORRECTIONS_MAX:
            self._corrections.clear()
        self._corrections[key] = now
        if member.name == self.name:
            data = self._alive_msg()
        else:
            data = encode_alive(member.incarnation, member.name, member.addr_bytes, member.port,
                                member.meta, member.vsn)
        self._send(None, src, data)
        self._count("stale_accusations_answered")

    def _send_ping_with_suspicion(self, target: Member, seq: int) -> None:
        """A ping to a member we suspect, carrying our Suspect message."""
        ping = encode(Ping(seq, target.name, self._addr_bytes, self.addr.port, self.name))
        suspect = encode(Suspect(target.incarnation, target.name, self.name))
        self._send_raw(target, target.address, make_compound([ping, suspect]))

    def _schedule_reask(self, now: float) -> None:
        self._reask_scheduled = True
        self._schedule(now + self.config.probe_interval_s, _T_REASK, None)

    def _reask_suspects(self, now: float) -> None:
        """Once per probe interval while we suspect anyone: send up to
        REASK_MAX_PER_INTERVAL of our suspects (picked at random) a ping
        carrying the accusation (the buddy system's message, outside the
        probe round).

        Why: our round-robin probes reach a given member only once per N
        probe intervals, so the buddy system alone rarely tells a suspect
        that *we* still suspect it.  If it has refuted already and we missed
        every copy of the refutation (heavy loss can do that), it answers
        our stale accusation with its current alive message
        (_correct_stale_accusation) and our suspicion ends; if it has not
        heard of the accusation, it refutes.  The ping's ack is not waited
        for: only a newer incarnation clears a suspicion, as in SWIM.

        Why a bound: a partition makes every node suspect the whole other
        side at once; re-asking each of them every interval would send
        hundreds of datagrams per node per second into the cut."""
        names = list(self._suspicions)
        if len(names) > REASK_MAX_PER_INTERVAL:
            names = self._rng.sample(names, REASK_MAX_PER_INTERVAL)
        for name in names:
            member = self._members.get(name)
            if member is None or member.state is not MemberState.SUSPECT:
                continue
            self._send_ping_with_suspicion(member, self._next_seq())
            self._count("suspects_reasked")

    def _suspicion_expired(self, name: str, now: float) -> None:
        member = self._members.get(name)
        self._suspicions.pop(name, None)
        if member is None or member.state is not MemberState.SUSPECT:
            return
        self._count("suspicions_expired")
        self._on_dead(Dead(member.incarnation, name, self.name), now)

    def _on_dead(self, d: Dead, now: float, raw: bytes | None = None,
                 src: Address | None = None) -> None:
        member = self._members.get(d.node)
        if member is None:
            return
        if d.incarnation < member.incarnation:
            if src is not None:
                self._correct_stale_accusation(member, src, now)
            return
        self._suspicions.pop(d.node, None)
        if member.dead_or_left():
            return
        if d.node == self.name:
            if not self._leaving:
                self._refute(d.incarnation)
            return
        self._queue.add(raw if raw is not None else encode(d), ("member", d.node))
        member.incarnation = d.incarnation
        if d.from_node == d.node:
            self._members.set_state(member, MemberState.LEFT, now)
            self._emit(MemberLeft(member.info()))
        else:
            self._members.set_state(member, MemberState.DEAD, now)
            self._emit(MemberFailed(member.info()))

    # ------------------------------------------------------------ gossip
    def _gossip(self, now: float) -> None:
        if not len(self._queue):
            return
        cutoff = now - self.config.gossip_to_the_dead_s
        targets = self._members.random_members(
            self.config.gossip_nodes,
            lambda m: not m.dead_or_left() or m.state_change_at > cutoff)
        overhead = COMPOUND_HEADER_BYTES + CRC_BYTES + (2 + len(self.label) if self.label else 0) + \
            (ENCRYPTION_OVERHEAD_BYTES if self.keyring is not None else 0)
        limit = self._retransmit_limit()
        for target in targets:
            msgs = self._queue.take(self.config.packet_budget_bytes - overhead, limit)
            if not msgs:
                return
            data = msgs[0] if len(msgs) == 1 else make_compound(msgs[:COMPOUND_MAX_PARTS])
            self._send_raw(target, target.address, data)
            self._count("gossip_sent")

    # ------------------------------------------------------------ push/pull
    def _local_push_pull(self, join: bool) -> bytes:
        # Each member's pushNodeState is encoded once and reused until it
        # changes (Member.node_state_bytes): a push/pull carries the whole
        # table, and a large cluster's joins exchange it thousands of times.
        nodes = [m.node_state_bytes() for m in self._members.by_name.values()]
        user = userdata.encode_state(self._payloads, self._user_state)
        return encode_push_pull(join, nodes, user)

    def _push_pull_random(self, now: float) -> None:
        peers = self._members.random_members(1, lambda m: m.state is MemberState.ALIVE)
        if peers:
            self._count("push_pulls_started")
            self._open_stream(peers[0].address, self._local_push_pull(join=False),
                              StreamPurpose.PUSH_PULL, None, True, self.config.tcp_timeout_s)

    def _reconnect(self, now: float) -> None:
        if not self._members.counts[MemberState.DEAD]:
            # Nobody to reconnect to.  Without this check random_members
            # would spend its 3 * n random tries finding no one, every
            # reconnect interval, on every node of a healthy cluster.
            return
        peers = self._members.random_members(1, lambda m: m.state is MemberState.DEAD)
        if peers:
            self._count("reconnects_started")
            self._open_stream(peers[0].address, self._local_push_pull(join=False),
                              StreamPurpose.PUSH_PULL, None, True, self.config.tcp_timeout_s)

    def _merge_remote(self, pp: PushPull, now: float) -> None:
        by_name = self._members.by_name
        default_port = self.addr.port
        for st in pp.nodes:
            if st.state == NodeStateCode.ALIVE:
                # A push/pull carries the whole table, mostly members we hold
                # exactly as sent: the old-news test of receive_datagram,
                # made before building an Alive for it.
                m = by_name.get(st.name)
                if (m is not None and st.incarnation <= m.incarnation and st.addr == m.addr_bytes
                        and st.meta == m.meta and st.vsn == m.vsn and (st.port or default_port) == m.port
                        and st.name != self.name):
                    continue
                self._on_alive(Alive(st.incarnation, st.name, st.addr, st.port, st.meta, st.vsn),
                               now, bootstrap=True)
            elif st.state == NodeStateCode.LEFT:
                self._on_dead(Dead(st.incarnation, st.name, st.name), now)
            else:
                # Never accept a remote death: at most suspect it ourselves.
                self._on_suspect(Suspect(st.incarnation, st.name, self.name), now)
        if pp.user_state and userdata.is_ours(pp.user_state):
            try:
                kind, value = userdata.decode(pp.user_state, MAX_USER_MSG_BYTES)
            except userdata.UserDataError:
                self._count("user_state_invalid")
                return
            if kind is not userdata.Kind.STATE:
                self._count("user_state_invalid")
                return
            payloads, user = value
            for node, (version, data) in payloads.items():
                self._merge_payload(node, version, data)
            if user:
                origin = pp.nodes[0].name if pp.nodes else ""
                self._emit(UserStateReceived(origin, user, pp.join))

    # ------------------------------------------------------------ user data
    def _merge_payload(self, node: str, version: int, data: bytes) -> None:
        current = self._payloads.get(node)
        if node == self.name:
            # Someone holds a payload of ours from before a restart: jump
            # past it so our current payload wins everywhere (the same move
            # as refuting with a higher incarnation).
            # An equal version with equal bytes is just our own payload
            # gossiped back to us: bumping on it would loop forever.
            if current is not None and (version > current[0] or
                                        (version == current[0] and data != current[1])):
                self._store_payload(self.name, version + 1, current[1])
            return
        if len(data) > PAYLOAD_MAX_BYTES:
            self._count("payload_invalid")
            return
        if current is None or version > current[0]:
            self._store_payload(node, version, data)

    def _remember_broadcast(self, key: tuple[str, int]) -> bool:
        if key in self._seen_broadcasts:
            return False
        self._seen_broadcasts[key] = None
        if len(self._seen_broadcasts) > SEEN_BROADCASTS_MAX:
            self._seen_broadcasts.pop(next(iter(self._seen_broadcasts)))
        return True

    def _on_user(self, payload: bytes, now: float, src: Address) -> None:
        if not userdata.is_ours(payload):
            self._count("user_foreign")  # e.g. a Serf event; not for us
            return
        # Infection-style gossip delivers the same payload or broadcast
        # several times; recognise repeats by their bytes before decoding.
        # Only gossiped kinds are idempotent, so direct messages skip this.
        if len(payload) > 1 and payload[1] != userdata.Kind.DIRECT:
            if payload in self._recent_user:
                self._count("user_repeats")
                return
            self._recent_user[payload] = None
            if len(self._recent_user) > RECENT_USER_MAX:
                self._recent_user.pop(next(iter(self._recent_user)))
        try:
            kind, value = userdata.decode(payload, MAX_USER_MSG_BYTES)
        except userdata.UserDataError:
            self._drop("user_invalid", src)
            return
        if kind is userdata.Kind.PAYLOAD:
            node, version, data = value
            self._merge_payload(node, version, data)
        elif kind is userdata.Kind.BROADCAST:
            origin, msg_id, data = value
            if len(data) <= USER_BROADCAST_MAX_BYTES and self._remember_broadcast((origin, msg_id)):
                self._queue.add(userdata_msg(payload), lane=USER_LANE)
                self._emit(UserBroadcast(origin, data))
        elif kind is userdata.Kind.DIRECT:
            origin, data = value
            self._emit(UserMessage(origin, data))
        else:
            self._count("user_unexpected")

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
        # Forget probe bookkeeping that no timer will clear (bounded maps).
        if len(self._probes) > ACK_HANDLERS_MAX:
            self._probes.clear()


# UDP message handlers by exact message type (Swim._handle).
_HANDLERS = {
    Ping: lambda self, msg, src, now, raw: self._on_ping(msg, src),
    IndirectPingReq: lambda self, msg, src, now, raw: self._on_indirect_ping(msg, src, now),
    AckResp: lambda self, msg, src, now, raw: self._on_ack(msg.seq_no, now),
    NackResp: lambda self, msg, src, now, raw: self._on_nack(msg.seq_no),
    Alive: lambda self, msg, src, now, raw: self._on_alive(msg, now, raw=raw),
    Suspect: lambda self, msg, src, now, raw: self._on_suspect(msg, now, raw, src),
    Dead: lambda self, msg, src, now, raw: self._on_dead(msg, now, raw, src),
    UserMsg: lambda self, msg, src, now, raw: self._on_user(msg.payload, now, src),
}


def userdata_msg(body: bytes) -> bytes:
    """A memberlist user message (UDP form) carrying `body`."""
    return encode(UserMsg(body))
