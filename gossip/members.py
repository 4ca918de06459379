"""The member table: who we know, in what state, and in what probe order.

How this works: one `Member` record per known name (including ourselves),
holding what memberlist's nodeState holds.  The table also keeps the
probe ring (below), a list of names for random picks, and per-state counts,
so picking probe and gossip targets and sizing timeouts never scans the
whole table.

The probe ring.  SWIM (§4.3) and memberlist probe in a round-robin order
that each node shuffles for itself: every member is probed once per round
by each node, but at any moment the probers of one member are independent,
so a member is probed about once per probe interval *on average*, at
random.  When a tenth of 1,000 nodes lose power at once, the last of the
100 victims is first probed about 5 s later (P(not yet) ~ e^-0.9t each),
which was half of the time to re-place their work.  Here every node walks
one shared ring instead: the live members and ourselves sorted by a hash of
the name (so that a rack of consecutively named machines is scattered over
the ring), and in probe slot k (the probe interval's count on the cluster's
wall clock, `gossip.swim_probe`) the node at ring position i probes
position i + 1 + k mod (n - 1).  With the same view everywhere, each member
then has exactly one prober per interval, and a victim waits a further
interval only while its prober of the moment is dead too: with 10 % dead,
P(a victim unprobed after j intervals) ~ 0.1^j.  (Simulated, 20 of 200
nodes crashed at once, seeds 1-6: the last victim first suspected 2.3-3.5 s
after the crash, median 2.6, against 3.6-7.1 s, median 4.9, with shuffled
rounds; scripts/bench/mass_failure.py.)
Each node still reaches every member
once in n - 1 slots, as a round-robin does.  A node whose health score
stretches its probe slots (gossip.awareness) steps to the next position
instead of following the clock, which would skip members it must reach by
itself when few are left to probe (GossipConfig.detection_bound_s); views
that differ, or clocks further apart than an interval, only make the
probers of a member less regular, as shuffled rounds are.

Address bytes are kept exactly as the member advertised them (4 or 16 bytes):
memberlist compares them with bytes.Equal, so the form is part of identity.

Each member also caches its encoded pushNodeState: a push/pull carries the
whole table, and re-encoding a thousand unchanged members for every exchange
made joins O(N^2) in encoding work.  The cache is keyed by the fields it
encodes, so any change to the member (by whatever path) invalidates it.

On top of that the table keeps the whole list joined (`node_states`),
rebuilt only when its `version` moved: every change to the table or to a
member's encoded fields bumps it (`add`, `set_state`, `readdress`, `remove`,
and `changed(member)`, which Swim calls after setting a member's
incarnation, meta or vsn).  Each of those also notes the member it touched,
and a rebuild re-encodes only the members noted since the last one, over a
per-member list of encodings kept in table order: walking all 1,000 members
to check their caches, for every push/pull built during a join storm (where
nearly every exchange follows some change), was 5 % of a 1,000-node
simulation.  That list is made at the first push/pull, not before: a
simulated 10,000-node cluster holds 100 million member records, and in its
first minute few of its nodes send a push/pull (the interval grows with
the cluster's size).

Memory per record matters for the same reason: ring keys are shared by
every table in the process (`ring_key`), as addresses are; a record costs
about 170 bytes with its table entries (16 GiB for 10,000 simulated nodes).
"""

from __future__ import annotations

import bisect
import ipaddress
import random
import zlib
from collections.abc import Callable

from .events import Address, MemberInfo, MemberState
from .limits import OLD_ALIVE_MAX, OLD_ALIVE_MAX_BYTES
from .messages import NodeStateCode
from .wire import encode_node_state_fields

_STATE_TO_CODE = {
    MemberState.ALIVE: int(NodeStateCode.ALIVE),
    MemberState.SUSPECT: int(NodeStateCode.SUSPECT),
    MemberState.DEAD: int(NodeStateCode.DEAD),
    MemberState.LEFT: int(NodeStateCode.LEFT),
}


def addr_to_bytes(host: str) -> bytes:
    return ipaddress.ip_address(host).packed


# bytes_to_host results: `ipaddress` costs microseconds per call and every
# Alive for a new member and every ping's source address needs one, while a
# cluster has only as many distinct addresses as members.  Bounded; cleared
# when full (the next calls simply refill it).
_HOSTS: dict[bytes, str] = {}
_HOSTS_MAX = 65_536


def bytes_to_host(raw: bytes) -> str:
    """Raw 4/16-byte IP to text; IPv4-mapped IPv6 (Go's default form) becomes
    plain IPv4 so our IPv4 sockets can reach it."""
    cacheable = type(raw) is bytes
    if cacheable:
        host = _HOSTS.get(raw)
        if host is not None:
            return host
    ip = ipaddress.ip_address(raw)  # ValueError for anything not 4 or 16 bytes
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        host = str(ip.ipv4_mapped)
    else:
        host = str(ip)
    if cacheable:
        if len(_HOSTS) >= _HOSTS_MAX:
            _HOSTS.clear()
        _HOSTS[raw] = host
    return host


# Address values by (raw IP, port), for the same reason as _HOSTS: a member
# record is made for every member every node learns of.  Address is frozen,
# so sharing one is safe.
_ADDRESSES: dict[tuple[bytes, int], Address] = {}


def _address(addr_bytes: bytes, port: int) -> Address:
    key = (addr_bytes, port)
    try:
        return _ADDRESSES[key]
    except (KeyError, TypeError):  # not seen yet / not hashable (not bytes)
        pass
    address = Address(bytes_to_host(addr_bytes), port)
    if type(addr_bytes) is bytes:
        if len(_ADDRESSES) >= _HOSTS_MAX:
            _ADDRESSES.clear()
        _ADDRESSES[key] = address
    return address


_LIVE = (MemberState.ALIVE, MemberState.SUSPECT)
_GONE = (MemberState.DEAD, MemberState.LEFT)


# ring_key results, shared by every table in the process: each node's ring
# holds a key per live member, and a simulator of N nodes holds N^2 of them
# (88 bytes each when not shared: a quarter of a member's memory).  Keys
# are immutable; bounded like _HOSTS.
_RING_KEYS: dict[str, tuple[int, str]] = {}


def ring_key(name: str) -> tuple[int, str]:
    """A member's place in the probe ring: a hash of its name (CRC-32: the
    same on every node and in every run), then the name, for ties."""
    key = _RING_KEYS.get(name)
    if key is None:
        key = (zlib.crc32(name.encode()), name)
        if len(_RING_KEYS) >= _HOSTS_MAX:
            _RING_KEYS.clear()
        _RING_KEYS[name] = key
    return key


class Member:
    __slots__ = (
        "_encoded",
        "addr_bytes",
        "address",
        "incarnation",
        "meta",
        "name",
        "old_news",
        "port",
        "state",
        "state_change_at",
        "vsn",
    )

    def __init__(self, name: str, addr_bytes: bytes, port: int, meta: bytes, vsn: tuple[int, ...],
                 incarnation: int, state: MemberState, now: float) -> None:
        self.name = name
        self.addr_bytes = addr_bytes
        self.port = port
        self.address = _address(addr_bytes, port)
        self.meta = meta
        self.vsn = vsn
        self.incarnation = incarnation
        self.state = state
        self.state_change_at = now
        # (incarnation, state, meta, vsn, addr_bytes, port, encoded bytes)
        self._encoded: tuple[int, MemberState, bytes, tuple[int, ...], bytes, int, bytes] | None = None
        # A decoded node state (gossip.messages.PushNodeState) found to be
        # old news about this member by the push/pull merge, which skips the
        # same object again by identity (node states are shared decodings,
        # gossip.wire's memo).  Valid while the member's address, meta and
        # vsn stay as they were; `set_address` and MemberTable.changed reset it.
        self.old_news: object = None

    def node_state_bytes(self) -> bytes:
        """This member as an encoded pushNodeState (cached; see the module
        docstring).  The cache is checked field by field, by identity where
        the field is an object: replacing it, even by an equal value, only
        costs one re-encoding."""
        c = self._encoded
        if (c is not None and c[0] == self.incarnation and c[1] is self.state and c[2] is self.meta
                and c[3] is self.vsn and c[4] is self.addr_bytes and c[5] == self.port):
            return c[6]
        data = encode_node_state_fields(self.name, self.addr_bytes, self.port, self.meta, self.incarnation,
                                        _STATE_TO_CODE[self.state], self.vsn)
        self._encoded = (self.incarnation, self.state, self.meta, self.vsn, self.addr_bytes, self.port, data)
        return data

    def set_address(self, addr_bytes: bytes, port: int) -> None:
        self.addr_bytes = addr_bytes
        self.port = port
        self.address = _address(addr_bytes, port)
        self.old_news = None

    @property
    def protocol_max(self) -> int:
        return self.vsn[1] if len(self.vsn) > 1 else 0

    def dead_or_left(self) -> bool:
        return self.state in _GONE

    def info(self) -> MemberInfo:
        return MemberInfo(self.name, self.address, self.state, self.incarnation, self.meta,
                          self.vsn, self.state_change_at)


class MemberTable:
    def __init__(self, rng: random.Random, local_name: str) -> None:
        self._rng = rng
        self.local_name = local_name
        self.by_name: dict[str, Member] = {}
        self.order: list[str] = []  # every name, ourselves included, for random picks
        # The probe ring (module docstring): ring keys of the live members
        # and ourselves, sorted; the key puts the name after a hash of it.
        # We are on it from the start and never leave it: our position is
        # where each walk starts.
        self._local_key = ring_key(local_name)
        self._ring: list[tuple[int, str]] = [self._local_key]
        self._last_slot: int | None = None
        self._last_offset = 0
        # Members per state, keyed by the state's value: hashing an Enum
        # member runs Python code (Enum.__hash__), and these counts move for
        # every member learned and every state change.  `counts` gives them
        # by MemberState.
        self._count_of: dict[str, int] = {state._value_: 0 for state in MemberState}
        # counts[ALIVE] + counts[SUSPECT], kept up to date: live_count() is
        # read for every packet sent, and hashing an Enum member runs Python
        # code.
        self._live = 0
        # Encoded Alive messages that are old news: each is a valid Alive
        # about a member in the table (not us) at that member's address and
        # port, with an incarnation no higher than the member's, so handling
        # it again changes nothing.  Incarnations never go down except when
        # a member is re-addressed, so the set stays true until a member is
        # removed or re-addressed, and both empty it.  Swim fills it and
        # drops repeats of these bytes on arrival (gossip repeats every
        # Alive many times over).  Bounded in count and bytes; emptied when
        # full (repeats are then simply handled again, to the same effect).
        self.old_alive: set[bytes] = set()
        self._old_alive_bytes = 0
        # Bumped on every change that can alter a member's pushNodeState or
        # the table's order (module docstring); node_states() is rebuilt
        # when it moved.
        self.version = 0
        self._node_states: tuple[int, int, bytes] = (-1, 0, b"")  # (version, count, joined)
        # Each member's encoded pushNodeState, in table order (by_name's),
        # as of the last node_states(); and the names touched since, whose
        # entries are stale.  None until the first node_states(): a member
        # that never sends a push/pull (most of a large simulation, whose
        # push/pull interval grows with the cluster) keeps neither.
        self._encodings: dict[str, bytes] | None = None
        self._touched: set[str] = set()

    def __len__(self) -> int:
        return len(self.by_name)

    @property
    def counts(self) -> dict[MemberState, int]:
        """Members per state (a fresh dict)."""
        count_of = self._count_of
        return {state: count_of[state._value_] for state in MemberState}

    def get(self, name: str) -> Member | None:
        return self.by_name.get(name)

    def _touch(self, name: str) -> None:
        if self._encodings is not None:
            self._touched.add(name)

    def changed(self, member: Member) -> None:
        """member's incarnation, meta or vsn was set (see `version`)."""
        self.version += 1
        self._touch(member.name)
        member.old_news = None

    def node_states(self) -> tuple[int, bytes]:
        """(count, every member's encoded pushNodeState joined), in table
        order: the node list of a push/pull."""
        cached = self._node_states
        if cached[0] == self.version:
            return cached[1], cached[2]
        by_name = self.by_name
        encodings = self._encodings
        if encodings is None:
            self._encodings = encodings = {name: m.node_state_bytes() for name, m in by_name.items()}
        else:
            for name in self._touched:
                member = by_name.get(name)
                if member is not None:
                    encodings[name] = member.node_state_bytes()
        self._touched.clear()
        joined = b"".join(encodings.values())
        self._node_states = (self.version, len(encodings), joined)
        return len(encodings), joined

    def add(self, member: Member) -> None:
        if self._add(member):
            bisect.insort(self._ring, ring_key(member.name))

    def add_all(self, members: list[Member]) -> None:
        """`add` each of members, with the ring sorted once: adding 10,000
        one by one into a sorted list moves ~25 million entries per table."""
        ring = self._ring
        for member in members:
            if self._add(member):
                ring.append(ring_key(member.name))
        ring.sort()

    def _add(self, member: Member) -> bool:
        """Everything of `add` but the ring; True if member goes on it."""
        self.version += 1
        self.by_name[member.name] = member
        if self._encodings is not None:
            # (A placeholder keeps _encodings in by_name's order; filled by node_states.)
            self._encodings[member.name] = b""
            self._touched.add(member.name)
        self._count_of[member.state._value_] += 1
        self.order.append(member.name)
        if member.state in _LIVE:
            self._live += 1
            return member.name != self.local_name
        return False

    def set_state(self, member: Member, state: MemberState, now: float) -> None:
        if member.state is not state:
            self.version += 1
            self._touch(member.name)
            count_of = self._count_of
            count_of[member.state._value_] -= 1
            count_of[state._value_] += 1
            was_live = member.state in _LIVE
            is_live = state in _LIVE
            self._live += is_live - was_live
            if was_live != is_live and member.name != self.local_name:
                key = ring_key(member.name)
                if is_live:
                    bisect.insort(self._ring, key)
                else:
                    self._ring_remove(key)
            member.state = state
            member.state_change_at = now

    def remember_old_alive(self, raw: bytes) -> None:
        old = self.old_alive
        if len(old) >= OLD_ALIVE_MAX or self._old_alive_bytes + len(raw) > OLD_ALIVE_MAX_BYTES:
            old.clear()
            self._old_alive_bytes = 0
        if raw not in old:
            old.add(raw)
            self._old_alive_bytes += len(raw)

    def _forget_old_alive(self) -> None:
        self.old_alive.clear()
        self._old_alive_bytes = 0

    def readdress(self, member: Member, addr_bytes: bytes, port: int) -> None:
        self.version += 1
        self._touch(member.name)
        member.set_address(addr_bytes, port)
        self._forget_old_alive()

    def remove(self, names: set[str]) -> None:
        self.version += 1
        self._forget_old_alive()
        for name in names:
            member = self.by_name.pop(name)
            if self._encodings is not None:
                self._encodings.pop(name, None)
            self._count_of[member.state._value_] -= 1
            if member.state in _LIVE:
                self._live -= 1
                if name != self.local_name:
                    self._ring_remove(ring_key(name))
        self.order = [n for n in self.order if n not in names]

    def _ring_remove(self, key: tuple[int, str]) -> None:
        ring = self._ring
        i = bisect.bisect_left(ring, key)
        if i < len(ring) and ring[i] == key:
            del ring[i]

    def live_count(self) -> int:
        """Members that count for timeouts: everyone not dead or left
        (memberlist's estNumNodes counts its node list; we exclude
        tombstones, which we keep much longer than memberlist does)."""
        return self._live

    def next_probe_target(self, slot: int | None) -> Member | None:
        """The member to probe in probe slot `slot` (the cluster-wide count
        of probe intervals), or, with None, the one after the last we
        probed; None when we know no live member (module docstring)."""
        ring = self._ring
        others = len(ring) - 1
        if others <= 0:
            return None
        if slot is None or slot == self._last_slot:
            offset = self._last_offset % others + 1
        else:
            offset = slot % others + 1
        self._last_slot = slot
        self._last_offset = offset
        i = bisect.bisect_left(ring, self._local_key)  # our own position
        return self.by_name[ring[(i + offset) % len(ring)][1]]

    def random_members(self, k: int, accept: Callable[[Member], bool]) -> list[Member]:
        """Up to k distinct random members for which accept(member) is true;
        3*len tries at most, like memberlist kRandomNodes."""
        out: list[Member] = []
        order = self.order
        n = len(order)
        if n == 0 or k <= 0:
            return out
        seen: set[str] = set()
        # rng.randrange(n), inlined (it is two Python calls deep, and this
        # runs for every gossip round): rejection sampling on getrandbits,
        # the algorithm randrange itself uses, so the draws are the same.
        getrandbits = self._rng.getrandbits
        bits = n.bit_length()
        for _ in range(3 * n):
            if len(out) >= k:
                break
            r = getrandbits(bits)
            while r >= n:
                r = getrandbits(bits)
            name = order[r]
            if name in seen or name == self.local_name:
                continue
            seen.add(name)
            member = self.by_name[name]
            if accept(member):
                out.append(member)
        return out
