"""BroadcastQueue picks exactly what the plain algorithm picks.

How this works: `ReferenceQueue` below is the queue's contract written
plainly (buckets by transmit count and lane, failure news first in up to
half of the room and again in the room the other lanes leave, newest first
within a bucket, greedy fill with a miss
limit, keyed invalidation, eviction of the oldest most-sent entries).  Random sequences of add/take with varied sizes,
budgets, limits and overheads run through both; every take must return the
same messages in the same order, and the lengths must agree throughout.
"""

from __future__ import annotations

import random

import pytest

from gossip.broadcast import FAILURE_LANE, FAILURE_PACKET_SHARE, LANES, MAX_MISSES, MEMBERSHIP_LANE, BroadcastQueue


class ReferenceQueue:
    def __init__(self, max_items: int) -> None:
        self.max_items = max_items
        # (transmits, lane) -> {id: (key, data)}, oldest id first
        self.buckets: dict[tuple[int, int], dict[int, tuple[object, bytes]]] = {}
        self.where: dict[object, tuple[tuple[int, int], int]] = {}
        self.next_id = 0

    def __len__(self) -> int:
        return sum(len(b) for b in self.buckets.values())

    def add(self, data: bytes, key: object = None, lane: int = MEMBERSHIP_LANE) -> None:
        if key is not None and key in self.where:
            t, i = self.where.pop(key)
            del self.buckets[t][i]
        self.buckets.setdefault((0, lane), {})[self.next_id] = (key, data)
        if key is not None:
            self.where[key] = ((0, lane), self.next_id)
        self.next_id += 1
        while len(self) > self.max_items:
            t = max(t for t, b in self.buckets.items() if b)
            i = next(iter(self.buckets[t]))  # oldest of the most-sent
            key, _ = self.buckets[t].pop(i)
            if key is not None:
                del self.where[key]

    def take(self, budget: int, limit: int, overhead: int = 2) -> list[bytes]:
        if not len(self) or budget <= overhead:
            return []
        picked: list[tuple[tuple[int, int], int]] = []

        def fill(bucket_keys: list[tuple[int, int]], budget: int) -> tuple[int, bool]:
            misses = 0
            for t in bucket_keys:
                for i in reversed(list(self.buckets[t])):
                    if (t, i) in picked:
                        continue
                    data = self.buckets[t][i][1]
                    if len(data) + overhead <= budget:
                        budget -= len(data) + overhead
                        picked.append((t, i))
                        misses = 0
                        if budget <= overhead + 8:
                            break
                    else:
                        misses += 1
                        if misses >= MAX_MISSES:
                            break
                if budget <= overhead + 8 or misses >= MAX_MISSES:
                    return budget, True
            return budget, False

        # Failure news first, in up to its share of the room; then the other
        # lanes, least-sent first, lower lane first among equals; then more
        # failure news in the room left.
        def lane(failure: bool) -> list[tuple[int, int]]:
            return sorted(t for t, b in self.buckets.items() if b and (t[1] == FAILURE_LANE) == failure)

        room = int(budget * FAILURE_PACKET_SHARE)
        if room > overhead:
            budget -= room - fill(lane(True), room)[0]
        if budget > overhead:
            budget, full = fill(lane(False), budget)  # an empty bucket is no bucket
            if not full and budget > overhead:
                fill(lane(True), budget)
        out = []
        for t, i in picked:
            key, data = self.buckets[t].pop(i)
            out.append(data)
            if t[0] + 1 >= limit:
                if key is not None:
                    del self.where[key]
            else:
                self.buckets.setdefault((t[0] + 1, t[1]), {})[i] = (key, data)
                if key is not None:
                    self.where[key] = ((t[0] + 1, t[1]), i)
        return out


@pytest.mark.parametrize("seed", range(60))
def test_same_picks_as_reference(seed):
    rng = random.Random(seed)
    max_items = rng.choice([5, 50, 4096])
    ref, q = ReferenceQueue(max_items), BroadcastQueue(max_items)
    for _ in range(1500):
        if rng.random() < 0.5:
            size = rng.choice([rng.randint(1, 200), rng.randint(60, 90), rng.randint(30, 40)])
            data = bytes([rng.randrange(256)]) * size
            key = ("member", rng.randrange(30)) if rng.random() < 0.8 else None
            lane = rng.randrange(LANES)
            ref.add(data, key, lane)
            q.add(data, key, lane)
        else:
            budget = rng.choice([rng.randint(0, 1500), 1300, 1360])
            limit = rng.randint(1, 20)
            overhead = rng.choice([2, 2, 0, 5])
            assert q.take(budget, limit, overhead) == ref.take(budget, limit, overhead)
        assert len(q) == len(ref)
