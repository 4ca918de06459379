"""Transmit-limited broadcast queue (infection-style dissemination).

How this works: every message we want the cluster to hear (alive / suspect /
dead about a member, a per-node payload, a user broadcast) is queued as
already-encoded bytes.  Each outgoing UDP packet has room left after its
primary message; `take(budget_bytes, limit)` fills that room with the queued
messages sent the fewest times so far (newest first among equals), and counts
one transmission for each.  A message is dropped after `limit` transmissions,
where limit = retransmit_mult * ceil(log10(n + 1)): with every node
re-gossiping what it hears, that many rounds reach all n members with high
probability (SWIM §4.1).

Each message is in a lane: failure news (a suspicion, a death, an alive
that refutes a suspicion) in lane 0, other membership news (joins, meta
updates) in lane 1, everything else (per-node payloads, user broadcasts) in
lane 2.  Among messages sent equally often, the lower lane goes first.  A
backlog of join news that has gone out a few times does not hold back fresh
user broadcasts (memberlist's strict priority for its own queue did that:
500 simulated agents placed 1,000 replicas in 11 s instead of 3 s while join
news drained).

Failure news goes first, in up to half of each packet's room
(FAILURE_PACKET_SHARE); the other lanes fill the rest of the room as above,
and failure news that did not fit takes whatever room they leave.  The
layers above queue fresh broadcasts all the time (claims, statuses), so
with ordering by count alone a suspicion, once sent, waited behind every
newer user message at every node that relayed it: after killing 30 of 300
simulated nodes right after a placement burst, the last survivor heard of
a victim up to 10 s after the first (90 % of them within 2.5-4.7 s), and
each survivor's placement waited that long before its grace
(auction.suspicion_rule) even began.  Now the last survivor hears of each
victim within 0.7-1.5 s of the first (one victim of the 30: 2.8 s); when
100 of 1,000 die at once their news competes with itself for that half
(median 3.7 s, docs/benchmarks.md).  Only half the room: a mass failure's news (hundreds of suspects and deaths, each
sent `limit` times by every relay) must not starve the lane that re-places
their replicas.  (Giving failure news the whole packet only for the first
half of its sends left stragglers: some survivors heard 3-9 s late.)

A message may carry a key (`("member", name)` for membership news about a
node, `("payload", name)` for its payload): queuing a new message with the same
key invalidates the older one, because only the newest fact matters.
The queue is bounded: past `max_items` the most-transmitted entries go first.

Entries are kept in buckets by (transmit count, lane) so `take` does not
sort: bucket transmits * LANES + lane.
`take` runs for every packet a node sends and picks a dozen or more entries
each time, so the layout is chosen to make that cheap: each bucket is a list,
oldest to newest; the entries picked from a bucket are, almost always, a run
at its end, which moves to the next bucket with one slice deletion and one
extend.  An invalidated entry is only marked dead (its bucket is not
searched); dead entries are dropped when `take` passes over them, and all at
once when they come to outnumber the live ones.
"""

from __future__ import annotations

from operator import itemgetter
from typing import Any

COMPOUND_ENTRY_OVERHEAD_BYTES = 2
LANES = 3
FAILURE_LANE = 0
MEMBERSHIP_LANE = 1
USER_LANE = 2
# Share of each packet's room that failure news may fill before the other lanes.
FAILURE_PACKET_SHARE = 0.5
MAX_MISSES = 16


# Fields of an entry: a small list shared by its bucket and the key index.
# [key: object, data: bytes, len: int, live: bool | None]; a list rather
# than an object because `take` reads these fields for every packet sent, so
# its element type is Any.
_KEY, _DATA, _LEN, _LIVE = range(4)
_Entry = list[Any]
_data_of = itemgetter(_DATA)


class BroadcastQueue:
    __slots__ = ("max_items", "_buckets", "_where", "_size", "_dead", "_min_len", "_others")

    def __init__(self, max_items: int) -> None:
        self.max_items = max_items
        # _buckets[transmits * LANES + lane]: entries oldest to newest (so the last one is
        # the newest), live and dead.
        self._buckets: list[list[_Entry]] = []
        self._where: dict[object, _Entry] = {}  # key -> its live entry
        self._size = 0  # live entries
        self._dead = 0  # dead entries still in some bucket
        # A lower bound on the length of every queued message (the shortest
        # ever queued).  Once the room left in a packet is below it, nothing
        # else can fit and `take` stops scanning.
        self._min_len = 1 << 30
        self._others: list[int] = []  # indices of the buckets not of the failure lane (take)

    def __len__(self) -> int:
        return self._size

    def forget(self, key: object) -> None:
        """Drop the queued message with this key, if any (superseded by a
        fact we will not gossip ourselves)."""
        old = self._where.pop(key, None)
        if old is not None:
            old[_LIVE] = False
            self._size -= 1
            self._dead += 1

    def add(self, data: bytes, key: object = None, lane: int = MEMBERSHIP_LANE) -> None:
        if key is not None:
            old = self._where.pop(key, None)
            if old is not None:
                old[_LIVE] = False
                self._size -= 1
                self._dead += 1
        n = len(data)
        entry: _Entry = [key, data, n, True]
        while len(self._buckets) <= lane:
            self._buckets.append([])
        self._buckets[lane].append(entry)
        if key is not None:
            self._where[key] = entry
        self._size += 1
        if n < self._min_len:
            self._min_len = n
        if self._size > self.max_items:
            self._prune()
        elif self._dead > 256 and self._dead > self._size:
            self._compact()

    def _compact(self) -> None:
        self._buckets = [[e for e in b if e[_LIVE]] for b in self._buckets]
        self._dead = 0

    def _prune(self) -> None:
        # The oldest entries of the most-sent bucket go first.
        for bucket in reversed(self._buckets):
            i = 0
            while i < len(bucket) and self._size > self.max_items:
                entry = bucket[i]
                i += 1
                if entry[_LIVE]:
                    entry[_LIVE] = False
                    if entry[_KEY] is not None:
                        self._where.pop(entry[_KEY], None)
                    self._size -= 1
                else:
                    self._dead -= 1
            del bucket[:i]
            if self._size <= self.max_items:
                return

    def _fill(self, indices: range | list[int], budget_bytes: int, stop_below: int, overhead_bytes: int,
              moves: list[tuple[int, list[_Entry]]]) -> tuple[int, bool]:
        """Pick from the buckets at `indices`, in that order and newest first
        within each, what fits in budget_bytes; take the picks out of their
        buckets and note them in `moves`.  Returns the room left, and whether
        the scan stopped because nothing more would fit."""
        buckets = self._buckets
        # Stop scanning after a run of entries that do not fit: the packet is
        # as full as it is going to get, and queues can hold thousands.
        misses = 0
        full = False
        for index in indices:
            bucket = buckets[index]
            if not bucket:
                continue
            picked: list[_Entry] = []
            skipped = 0  # dead or not fitting, in the part of the bucket scanned
            for entry in reversed(bucket):
                if not entry[_LIVE]:
                    skipped += 1
                    continue
                cost = entry[_LEN] + overhead_bytes
                if cost <= budget_bytes:
                    budget_bytes -= cost
                    picked.append(entry)
                    misses = 0
                    if budget_bytes < stop_below:
                        full = True
                        break
                else:
                    skipped += 1
                    misses += 1
                    if misses >= MAX_MISSES:
                        full = True
                        break
            if picked:
                start = len(bucket) - len(picked) - skipped
                if skipped:
                    # Keep what was passed over (in order), dropping the
                    # picked and dead entries.
                    for entry in picked:
                        entry[_LIVE] = None  # a mark, reset below
                    kept = [e for e in bucket[start:] if e[_LIVE]]
                    self._dead -= sum(1 for e in bucket[start:] if e[_LIVE] is False)
                    for entry in picked:
                        entry[_LIVE] = True
                    bucket[start:] = kept
                else:
                    del bucket[start:]
                moves.append((index, picked))
            if full or budget_bytes < stop_below:
                return budget_bytes, True
        return budget_bytes, False

    def take(self, budget_bytes: int, limit: int, overhead_bytes: int = COMPOUND_ENTRY_OVERHEAD_BYTES) -> list[bytes]:
        """Messages that fit in budget_bytes (each costing its length plus
        overhead_bytes): failure news first, in up to FAILURE_PACKET_SHARE of
        the room, then the other lanes, then failure news again in whatever
        room is left; least-transmitted first within each; counts one
        transmission each."""
        if not self._size or budget_bytes <= overhead_bytes:
            return []
        # The packet is full once the room left is at most overhead + 8
        # bytes, or below the shortest queued message (nothing more could
        # fit, so stopping there gives the same result as scanning on).
        stop_below = max(overhead_bytes + 9, self._min_len + overhead_bytes)
        moves: list[tuple[int, list[_Entry]]] = []  # (bucket index, entries picked, in order)
        n = len(self._buckets)
        failure = range(FAILURE_LANE, n, LANES)
        failure_room = int(budget_bytes * FAILURE_PACKET_SHARE)
        if failure_room > overhead_bytes:
            left, _ = self._fill(failure, failure_room, stop_below, overhead_bytes, moves)
            budget_bytes -= failure_room - left
        if budget_bytes > overhead_bytes:
            if len(self._others) != n - len(failure):
                self._others = [i for i in range(n) if i % LANES != FAILURE_LANE]
            budget_bytes, full = self._fill(self._others, budget_bytes, stop_below, overhead_bytes, moves)
            if not full and budget_bytes > overhead_bytes:
                self._fill(failure, budget_bytes, stop_below, overhead_bytes, moves)
        if not moves:
            return []
        buckets = self._buckets
        out: list[bytes] = []
        for index, picked in moves:
            out += map(_data_of, picked)
            if index // LANES + 1 >= limit:
                for entry in picked:
                    if entry[_KEY] is not None:
                        self._where.pop(entry[_KEY], None)
                self._size -= len(picked)
            else:
                dest = index + LANES  # one more transmission, same lane
                while len(buckets) <= dest:
                    buckets.append([])
                buckets[dest] += picked
        return out
