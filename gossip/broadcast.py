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

A message may carry a key (`("member", name)` for membership news about a
node, `("payload", name)` for its payload): queuing a new message with the same
key invalidates the older one, because only the newest fact matters.
The queue is bounded: past `max_items` the most-transmitted entries go first.

Entries are kept in buckets by transmit count so `take` does not sort.  Each
entry is one small mutable list [transmits, entry_id, key, data, length]
shared by its bucket and the key index, so counting a transmission moves it
to the next bucket without rebuilding anything: `take` runs for every packet
a node sends and picks a dozen or more entries each time.
"""

from __future__ import annotations

COMPOUND_ENTRY_OVERHEAD_BYTES = 2
MAX_MISSES = 16


# Fields of an entry (a list, so a transmission updates it in place).
_TX, _ID, _KEY, _DATA, _LEN = range(5)


class BroadcastQueue:
    __slots__ = ("max_items", "_buckets", "_where", "_next_id", "_size", "_min_len")

    def __init__(self, max_items: int) -> None:
        self.max_items = max_items
        # transmits -> {entry_id: entry}; dicts keep insertion order, so the
        # last entry in a bucket is the newest.
        self._buckets: dict[int, dict[int, list]] = {}
        self._where: dict[object, list] = {}  # key -> its entry
        self._next_id = 0
        self._size = 0
        # A lower bound on the length of every queued message (the shortest
        # ever queued).  Once the room left in a packet is below it, nothing
        # else can fit and `take` stops scanning.
        self._min_len = 1 << 30

    def __len__(self) -> int:
        return self._size

    def add(self, data: bytes, key: object = None) -> None:
        if key is not None:
            old = self._where.pop(key, None)
            if old is not None:
                del self._buckets[old[_TX]][old[_ID]]
                self._size -= 1
        entry_id = self._next_id
        self._next_id += 1
        n = len(data)
        entry = [0, entry_id, key, data, n]
        bucket = self._buckets.get(0)
        if bucket is None:
            bucket = self._buckets[0] = {}
        bucket[entry_id] = entry
        if key is not None:
            self._where[key] = entry
        self._size += 1
        if n < self._min_len:
            self._min_len = n
        if self._size > self.max_items:
            self._prune()

    def _prune(self) -> None:
        for transmits in sorted(self._buckets, reverse=True):
            bucket = self._buckets[transmits]
            while bucket and self._size > self.max_items:
                entry_id = next(iter(bucket))  # oldest of the most-sent
                key = bucket.pop(entry_id)[_KEY]
                if key is not None:
                    self._where.pop(key, None)
                self._size -= 1
            if self._size <= self.max_items:
                return

    def take(self, budget_bytes: int, limit: int, overhead_bytes: int = COMPOUND_ENTRY_OVERHEAD_BYTES) -> list[bytes]:
        """Messages that fit in budget_bytes (each costing its length plus
        overhead_bytes), least-transmitted first; counts one transmission each."""
        if not self._size or budget_bytes <= overhead_bytes:
            return []
        buckets = self._buckets
        picked: list[list] = []
        # The packet is full once the room left is at most overhead + 8
        # bytes, or below the shortest queued message (nothing more could
        # fit, so stopping there gives the same result as scanning on).
        stop_below = max(overhead_bytes + 9, self._min_len + overhead_bytes)
        # Stop scanning after a run of entries that do not fit: the packet is
        # as full as it is going to get, and queues can hold thousands.
        misses = 0
        for transmits in sorted(buckets):
            for entry in reversed(buckets[transmits].values()):
                cost = entry[_LEN] + overhead_bytes
                if cost <= budget_bytes:
                    budget_bytes -= cost
                    picked.append(entry)
                    misses = 0
                    if budget_bytes < stop_below:
                        break
                else:
                    misses += 1
                    if misses >= MAX_MISSES:
                        break
            if budget_bytes < stop_below or misses >= MAX_MISSES:
                break
        emptied = False
        for entry in picked:
            transmits = entry[_TX]
            bucket = buckets[transmits]
            del bucket[entry[_ID]]
            if not bucket:
                emptied = True
            sent = transmits + 1
            if sent >= limit:
                key = entry[_KEY]
                if key is not None:
                    self._where.pop(key, None)
                self._size -= 1
            else:
                entry[_TX] = sent
                nxt = buckets.get(sent)
                if nxt is None:
                    nxt = buckets[sent] = {}
                nxt[entry[_ID]] = entry
        if emptied:
            for transmits in [t for t, b in buckets.items() if not b]:
                del buckets[transmits]
        return [entry[_DATA] for entry in picked]
