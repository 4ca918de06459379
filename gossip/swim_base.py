"""The shared state of a SWIM member and how it sends: the base of `gossip.swim.Swim`.

How this works: `SwimBase` holds one member's whole protocol state (member
table, broadcast queue, timers, probes in flight, suspicions, payloads) and
the primitives every part of the protocol uses.  It never touches a socket
or a clock: sending appends a `SendDatagram` or `OpenStream` to the outputs
the driver drains, and a timer is an entry in a heap that the driver fires
through `Swim.handle_timers(now)`.

Dissemination: membership news and user data ride in a transmit-limited
broadcast queue (`gossip.broadcast`), piggybacked on every UDP packet we send
(`_send` fills the rest of the packet, as memberlist's sendMsg) and pushed to
`gossip_nodes` random members every gossip_interval_s (`_gossip`).

The protocol's parts build on it, each in its own module: `swim_user`
(payloads and user messages), `swim_membership` (the state rules: alive,
suspect, dead, refutation, suspicion timeouts), `swim_probe` (failure
detection), `swim_sync` (push/pull anti-entropy); `swim` puts them together.
"""

from __future__ import annotations

import heapq
import random

from .awareness import Awareness
from .broadcast import BroadcastQueue
from .compound import make_compound
from .config import VSN, GossipConfig
from .events import (
    Address,
    MemberState,
    OpenStream,
    Output,
    PacketDropped,
    SendDatagram,
    StreamPurpose,
)
from .limits import (
    COMPOUND_MAX_PARTS,
    LABEL_MAX_BYTES,
    META_MAX_BYTES,
)
from .members import Member, MemberTable, addr_to_bytes
from .messages import PushNodeState
from .packet import seal_packet, seal_stream
from .security import Keyring
from .suspicion import Suspicion
from .wire import encode_alive

# Bytes reserved in each packet for the compound header, label and CRC.
COMPOUND_HEADER_BYTES = 2
CRC_BYTES = 5
ENCRYPTION_OVERHEAD_BYTES = 29

# timer kinds
T_PROBE = 0
T_PROBE_TIMEOUT = 1
T_PROBE_END = 2
T_RELAY_TIMEOUT = 3
T_SUSPICION = 4
T_GOSSIP = 5
T_PUSH_PULL = 6
T_RECONNECT = 7
T_POST_JOIN = 8
T_REAP = 9
T_REASK = 10
T_PROBE_JUDGE = 11
T_DEAD_PING = 12

# A timer's key: a probe or relay sequence number, (name, generation) of a
# suspicion, the number of a post-join sync, or nothing.
TimerKey = int | tuple[str, int] | None
# What an open stream's reply is matched with: the seed a join push/pull
# went to (None for a periodic one), or the sequence number of a TCP ping.
StreamContext = Address | int | None


# Bookkeeping of probes (gossip.swim_probe), here with the rest of the state.
class Probe:
    """A probe we run: its target, and what has come back so far."""

    __slots__ = ("acked", "ended", "helpers", "incarnation", "indirect_started", "nack_helpers", "nacks",
                 "target")

    def __init__(self, target: str, incarnation: int) -> None:
        self.target = target
        # The incarnation we probed: a failed probe accuses only that one.
        self.incarnation = incarnation
        self.acked = False
        # Failed at its deadline; kept a little longer only to count late
        # nacks for our health score (Probing._probe_judged).
        self.ended = False
        self.nacks = 0
        # Who we asked for an indirect probe, and which of them owe us a
        # nack if the target stays silent (Lifeguard; protocol >= 4).
        self.helpers = 0
        self.nack_helpers: list[str] = []
        self.indirect_started = False


class Relay:
    """An indirect probe we run for someone else."""

    __slots__ = ("acked", "reply_to", "requester_seq", "want_nack")

    def __init__(self, requester_seq: int, reply_to: Address, want_nack: bool) -> None:
        self.requester_seq = requester_seq
        self.reply_to = reply_to
        self.want_nack = want_nack
        self.acked = False


class SwimBase:
    """One member's protocol state and the primitives its parts share."""

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
        self._timers: list[tuple[float, int, int, TimerKey]] = []
        self._timer_seq = 0
        self._seq_no = 0
        self._probes: dict[int, Probe] = {}
        # The probe round is a fixed tick, as memberlist's probe ticker: a
        # probe that is answered leaves the next one to the next tick; one
        # still running at a tick (it failed, and waits out its
        # awareness-scaled deadline) delays that one tick until it ends, as
        # a Go ticker buffers one tick for a busy receiver.
        self._probe_in_flight: int | None = None
        self._probe_tick_pending = False
        # Our `now` plus this is the cluster's wall clock in seconds, which
        # numbers the probe slots (gossip.swim_probe).  The simulator's
        # nodes share one `now`; an agent's driver sets it (node.core).
        self.probe_clock_offset_s = 0.0
        self._relays: dict[int, Relay] = {}
        self._suspicions: dict[str, Suspicion] = {}
        self._reask_scheduled = False  # one T_REASK timer while any suspicion is held
        self._suspicion_gen = 0
        # Helper -> health-score points its silence cost us (gossip.awareness).
        self._silence_charges: dict[str, int] = {}
        # Unknown members a push/pull named as dead -> (their state, when).
        self._heard_dead: dict[str, tuple[PushNodeState, float]] = {}
        # (sender, subject) -> when we last answered its stale accusation.
        self._corrections: dict[tuple[Address, str], float] = {}
        self._streams: dict[int, tuple[StreamPurpose, StreamContext]] = {}
        # Dead pings in flight (seq -> member) and the failed members we
        # pushed/pulled with because they answered (name -> when): swim_heal.
        self._dead_pings: dict[int, str] = {}
        self._heal_synced: dict[str, float] = {}
        self._heal_sync_at: float | None = None   # our last heal sync (gossip.swim_heal: one a probe interval)
        self._dead_ping_armed = False   # a T_DEAD_PING timer is pending
        self._stream_id = 0
        self._leaving = False
        self._joined_once = False
        self._post_join_known = 0  # member count at the last post-join sync
        # Members learned from a join reply while we knew no one, and not
        # gossiped (gossip.swim_sync, "A fresh joiner"); kept while join
        # replies are still awaited, None otherwise.
        self._quiet_learned: set[str] | None = None
        self._join_replies_awaited = 0
        # per-node payloads and user data
        self._payloads: dict[str, tuple[int, bytes]] = {}
        # Names in _payloads that were not members when stored -> when.
        self._payload_strangers: dict[str, float] = {}
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
        self._schedule(now + self._rng.uniform(0, config.probe_interval_s), T_PROBE, None)
        self._schedule(now + config.gossip_interval_s, T_GOSSIP, None)
        self._schedule(now + self._push_pull_interval(), T_PUSH_PULL, None)
        self._schedule(now + config.reconnect_interval_s, T_RECONNECT, None)
        self._schedule(now + config.probe_interval_s * 5, T_REAP, None)

    # ------------------------------------------------------------------ util
    def _count(self, key: str, n: int = 1) -> None:
        self.counters[key] = self.counters.get(key, 0) + n

    def _schedule(self, at: float, kind: int, key: TimerKey) -> None:
        self._timer_seq += 1
        heapq.heappush(self._timers, (at, self._timer_seq, kind, key))

    def _arm_dead_pings(self, now: float) -> None:
        """A member just failed: dead pings (gossip.swim_heal) run from now
        until no failed member is left, and never in a cluster without one."""
        if not self._dead_ping_armed:
            self._dead_ping_armed = True
            interval = self.config.dead_ping_interval_for(max(1, self._members.live_count()))
            self._schedule(now + interval * self._rng.uniform(0.5, 1.5), T_DEAD_PING, None)

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
        return self._alive_of(self._me)

    @staticmethod
    def _alive_of(m: Member) -> bytes:
        """An encoded Alive saying what we hold of member m."""
        return encode_alive(m.incarnation, m.name, m.addr_bytes, m.port, m.meta, m.vsn)

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

    def _open_stream(self, addr: Address, payload: bytes, purpose: StreamPurpose, context: StreamContext,
                     expect_reply: bool, timeout_s: float) -> None:
        self._stream_id += 1
        data = seal_stream(payload, label=self.label, keyring=self.keyring,
                           compress=self.config.enable_compression and purpose is StreamPurpose.PUSH_PULL,
                           write_label=True, compress_min_bytes=self.config.push_pull_compress_min_bytes)
        if expect_reply:
            self._streams[self._stream_id] = (purpose, context)
        self._emit(OpenStream(self._stream_id, addr, data, expect_reply, timeout_s, purpose))

    def _retransmit_limit(self) -> int:
        return self.config.retransmit_limit(max(1, self._members.live_count()))

    def _drop(self, reason: str, src: Address | None) -> None:
        self._count(f"dropped_{reason}")
        self._emit(PacketDropped(reason, src))

    def _settle_silence(self, name: str, refund: bool) -> None:
        """`name`, an indirect-probe helper whose silence raised our health
        score, is now known to be down (refund: give the points back) or up
        (they stand)."""
        charged = self._silence_charges.pop(name, 0)
        if charged and refund:
            self._awareness.apply_delta(-charged)
            self._count("health_refunds")

    def _remember_old_alive(self, raw: bytes | None) -> None:
        if raw is not None:
            self._members.remember_old_alive(raw)

    def _packet_overhead_bytes(self) -> int:
        """What a compound datagram adds to its parts: header, label, encryption, CRC."""
        return COMPOUND_HEADER_BYTES + CRC_BYTES + (2 + len(self.label) if self.label else 0) + \
            (ENCRYPTION_OVERHEAD_BYTES if self.keyring is not None else 0)

    # ------------------------------------------------------------ gossip
    def _gossip(self, now: float) -> None:
        if not len(self._queue):
            return
        cutoff = now - self.config.gossip_to_the_dead_s
        targets = self._members.random_members(
            self.config.gossip_nodes,
            lambda m: not m.dead_or_left() or m.state_change_at > cutoff)
        overhead = self._packet_overhead_bytes()
        limit = self._retransmit_limit()
        for target in targets:
            msgs = self._queue.take(self.config.packet_budget_bytes - overhead, limit)
            if not msgs:
                return
            data = msgs[0] if len(msgs) == 1 else make_compound(msgs[:COMPOUND_MAX_PARTS])
            self._send_raw(target, target.address, data)
            self._count("gossip_sent")
