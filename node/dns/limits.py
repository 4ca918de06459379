"""Flood bounds for DNS: token buckets, per source address and in total.

How this works: a bucket holds up to `burst` tokens and gains `rate_per_s`
tokens a second; a query takes one token or is dropped.  `SourceBuckets`
keeps one bucket per source address in a table of at most `max_sources`
entries; the least recently seen source is forgotten first (a forgotten
source comes back with a full bucket, which bounds what a spoofed-address
flood gains to the global bucket's rate).  A rate of 0 means no limit.
Pure: the caller passes `now`.
"""

from __future__ import annotations

from collections import OrderedDict


class Bucket:
    __slots__ = ("rate_per_s", "burst", "tokens", "at")

    def __init__(self, rate_per_s: float, burst: int, now: float) -> None:
        self.rate_per_s = rate_per_s
        self.burst = max(1, burst)
        self.tokens = float(self.burst)
        self.at = now

    def take(self, now: float) -> bool:
        if self.rate_per_s <= 0:
            return True
        elapsed = max(0.0, now - self.at)   # a clock that steps back adds nothing
        self.tokens = min(float(self.burst), self.tokens + elapsed * self.rate_per_s)
        self.at = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return True
        return False


class SourceBuckets:
    def __init__(self, rate_per_s: float, burst: int, max_sources: int) -> None:
        self.rate_per_s = rate_per_s
        self.burst = burst
        self.max_sources = max(1, max_sources)
        self._buckets: OrderedDict[str, Bucket] = OrderedDict()

    def take(self, source: str, now: float) -> bool:
        if self.rate_per_s <= 0:
            return True
        bucket = self._buckets.get(source)
        if bucket is None:
            bucket = self._buckets[source] = Bucket(self.rate_per_s, self.burst, now)
            while len(self._buckets) > self.max_sources:
                self._buckets.popitem(last=False)
        else:
            self._buckets.move_to_end(source)
        return bucket.take(now)

    def __len__(self) -> int:
        return len(self._buckets)
