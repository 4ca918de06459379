"""Per-node payloads, user broadcasts and user messages: a part of `gossip.swim.Swim`.

How this works: everything shoal sends through memberlist's opaque user
channel is encoded by `gossip.userdata`.  A per-node payload is a
(version, bytes) pair that only its node writes; merging keeps the highest
version, and a node that finds a payload of its own with a higher version
(from before a restart) jumps past it, as refuting does for incarnations.
Payloads are kept only for members (and, briefly, a few names not yet
known: gossip may bring a payload before its alive), at most PAYLOADS_MAX
of them, and a version of ours too close to the top to jump past is
refused, so nothing we store grows without bound or stops being encodable
(`gossip.limits`).
A payload held for a name that is not a member (a "stranger") is how a
consumer learns that gossip missed that member's alive; `tell_members` is
how a peer then sends it (node.core.status_sync asks for them).
A user broadcast is gossiped once per (origin, id) through the broadcast
queue's user lane; a direct message goes to one member over UDP or, when
reliable, over TCP.  Gossip repeats itself, so repeats of gossiped kinds
are recognised by their bytes before decoding.
"""

from __future__ import annotations

from collections.abc import Iterable

from . import userdata
from .broadcast import USER_LANE
from .compound import make_compound
from .events import Address, MemberState, PayloadUpdated, StreamPurpose, UserBroadcast, UserMessage
from .limits import (
    MAX_USER_MSG_BYTES,
    PAYLOAD_MAX_BYTES,
    PAYLOAD_VERSION_HEADROOM,
    PAYLOAD_VERSION_MAX,
    PAYLOADS_MAX,
    RECENT_USER_MAX,
    SEEN_BROADCASTS_MAX,
    STRANGER_PAYLOADS_MAX,
    TELL_MEMBERS_MAX,
    USER_BROADCAST_MAX_BYTES,
    USER_GOSSIP_MAX_BYTES,
)
from .messages import UserMsg
from .swim_base import SwimBase
from .wire import encode, encode_stream_user

__all__ = ["PAYLOAD_MAX_BYTES", "UserData", "userdata_msg"]


class UserData(SwimBase):
    """Payloads, broadcasts and direct user messages."""

    def set_payload(self, data: bytes, now: float) -> None:
        if len(data) > PAYLOAD_MAX_BYTES:
            raise ValueError(f"payload is {len(data)} bytes; the limit is {PAYLOAD_MAX_BYTES}")
        version = self._payloads.get(self.name, (0, b""))[0] + 1
        if version > PAYLOAD_VERSION_MAX:
            # Unreachable but by 2^32 updates after a jump to the limit
            # (_merge_payload): keep the data, which no peer will take.
            self._count("payload_version_exhausted")
            self._payloads[self.name] = (PAYLOAD_VERSION_MAX, data)
            return
        self._store_payload(self.name, version, data)

    def _store_payload(self, node: str, version: int, data: bytes, relay: bool = True) -> None:
        self._payloads[node] = (version, data)
        if relay:
            self._queue.add(userdata_msg(userdata.encode_payload(node, version, data)), ("payload", node),
                            lane=USER_LANE)
        else:
            self._queue.forget(("payload", node))  # an older version we were still gossiping
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
        unknown or dead.  A member that left still hears what is sent to it:
        it runs until its replicas are handed over (node.agent.handover) and
        must hear the answers to what it asks meanwhile (the claims that
        replace its copies); once gone, a datagram to it is lost and a
        stream to it fails, as to any peer that went away."""
        member = self._members.get(node)
        if member is None or member.state is MemberState.DEAD:
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

    def merge_payload(self, node: str, version: int, data: bytes, now: float) -> None:
        """A payload the consumer fetched itself (not by gossip): merged as
        gossip's own, the highest version wins, but not gossiped on from
        here.  The consumer pulls what gossip missed; gossiping each pulled
        payload afresh from every puller would refill the very queues whose
        backlog made it miss (1,000 simulated nodes: placing 1,000 replicas
        took 5.6 s instead of 2.7 s)."""
        if not 0 <= version <= PAYLOAD_VERSION_MAX:
            self._count("payload_invalid")
            return
        self._merge_payload(node, version, data, now, None, relay=False)

    def _merge_payload(self, node: str, version: int, data: bytes, now: float, src: Address | None,
                       relay: bool = True) -> None:
        """A payload from the network (versions already range-checked by
        userdata.decode)."""
        current = self._payloads.get(node)
        if node == self.name:
            # Someone holds a payload of ours from before a restart: jump
            # past it so our current payload wins everywhere (the same move
            # as refuting with a higher incarnation).
            # An equal version with equal bytes is just our own payload
            # gossiped back to us: bumping on it would loop forever.
            if current is not None and (version > current[0] or
                                        (version == current[0] and data != current[1])):
                if version > PAYLOAD_VERSION_MAX - PAYLOAD_VERSION_HEADROOM:
                    self._drop("payload_version_overflow", src)
                    return
                self._store_payload(self.name, version + 1, current[1])
            return
        if len(data) > PAYLOAD_MAX_BYTES:
            self._count("payload_invalid")
            return
        if current is None:
            if len(self._payloads) >= PAYLOADS_MAX:
                self._drop("payloads_full", src)
                return
            if node not in self._members.by_name:
                # Gossip can bring a member's payload before its alive: a
                # few such strangers are kept, for STRANGER_PAYLOAD_KEEP_S
                # unless the name becomes a member (Swim._reap).
                if len(self._payload_strangers) >= STRANGER_PAYLOADS_MAX:
                    self._drop("payload_not_member", src)
                    return
                self._payload_strangers[node] = now
        if current is None or version > current[0]:
            self._store_payload(node, version, data, relay)

    # ---- members a payload names but gossip has not brought
    def strangers(self, held_for_s: float, now: float) -> list[str]:
        """Names whose payload we have held for at least `held_for_s`
        without holding them as members: gossip brought the payload but not
        (yet) the alive, which the consumer can ask a peer for
        (`tell_members`)."""
        by_name = self._members.by_name
        return sorted(n for n, since in self._payload_strangers.items()
                      if now - since >= held_for_s and n not in by_name)

    def tell_members(self, to: str, names: Iterable[str], now: float) -> int:
        """Send member `to` the alive of each named member we hold alive, in
        as few datagrams as they fit: plain memberlist Alive messages, taken
        as gossip's own (a memberlist peer would take them too).  The answer
        to a peer that holds a payload of a member it lacks: one infection-
        style alive can miss a member for good after a join storm, and only
        push/pull (`lan`: every 30 s and more) would mend it.  At most
        TELL_MEMBERS_MAX; returns how many were sent."""
        peer = self._members.get(to)
        if peer is None or peer.dead_or_left():
            return 0
        alives: list[bytes] = []
        for name in sorted(set(names)):
            m = self._members.get(name)
            if m is None or m.state is not MemberState.ALIVE or name == to:
                continue  # a suspect refutes to its accusers itself; a stranger we cannot vouch for
            alives.append(self._alive_of(m))
            if len(alives) == TELL_MEMBERS_MAX:
                break
        budget = self.config.packet_budget_bytes - self._packet_overhead_bytes()
        datagrams: list[list[bytes]] = []
        used = budget  # nothing open yet
        for msg in alives:
            if used + 2 + len(msg) > budget:
                datagrams.append([])
                used = 0
            datagrams[-1].append(msg)
            used += 2 + len(msg)  # each part's length prefix in the compound
        for parts in datagrams:
            self._send_raw(peer, peer.address, parts[0] if len(parts) == 1 else make_compound(parts))
        self._count("members_told", len(alives))
        return len(alives)

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
            if len(payload) > USER_GOSSIP_MAX_BYTES:
                self._drop("user_too_large", src)
                return
            if payload in self._recent_user:
                self._count("user_repeats")
                return
            self._recent_user[payload] = None
            if len(self._recent_user) > RECENT_USER_MAX:
                self._recent_user.pop(next(iter(self._recent_user)))
        try:
            value = userdata.decode(payload, MAX_USER_MSG_BYTES)
        except userdata.UserDataError:
            self._drop("user_invalid", src)
            return
        if isinstance(value, userdata.Payload):
            self._merge_payload(value.node, value.version, value.data, now, src)
        elif isinstance(value, userdata.Broadcast):
            origin, msg_id, data = value
            if len(data) <= USER_BROADCAST_MAX_BYTES and self._remember_broadcast((origin, msg_id)):
                self._queue.add(userdata_msg(payload), lane=USER_LANE)
                self._emit(UserBroadcast(origin, data))
        elif isinstance(value, userdata.Direct):
            self._emit(UserMessage(value.origin, value.data))
        else:
            self._count("user_unexpected")


def userdata_msg(body: bytes) -> bytes:
    """A memberlist user message (UDP form) carrying `body`."""
    return encode(UserMsg(body))
