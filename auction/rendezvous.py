"""Rendezvous (highest-random-weight) hashing: who coordinates a slot.

How this works: every agent scores each member it believes alive against the
slot key and picks the highest score (ties, which need equal 64-bit scores,
go to the smaller name).  Agents with the same view pick the same
coordinator without a vote; when that member dies, the next-highest takes
over, and no other slot changes hands (Thaler & Ravishankar, 1998).
Member hashes are computed once and combined with the slot's hash by a cheap
64-bit mixer, because this runs for every pending slot against every member.

Owners are cached with their winning score, and a change of view updates the
cache instead of emptying it: a member that joins is scored only against the
cached keys (it takes over the keys it beats), and a member that leaves
voids only the keys it owned.  In a 1,000-node cluster where members are
suspected or die one at a time, each change then costs one score per cached
key rather than a full recomputation of every pending slot (1,000 scores
each) on every agent.

Most questions are "do *I* own this key?" (every agent asks it for every
pending slot), and the answer is almost always no.  `is_owner` answers it
without finding the owner: it scores us, then the other members until one
beats us.  Our rank among n members is uniform, so that scan takes O(log n)
scores on average rather than n (placing 1,000 fresh slots on 1,000 agents:
10^9 scores before, about 10^7 now).  The member that beat us is remembered
for the key: while it stays in the view we cannot own the key (a score
never changes), so the next question costs a lookup.  The answer is the
same as `owner(key) == me`.
"""

from __future__ import annotations

import hashlib
import heapq
from collections.abc import Iterable
from typing import Any

_MASK = (1 << 64) - 1


def _h64(text: str) -> int:
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "big")


def _mix(x: int) -> int:
    # splitmix64 finalizer: a full-avalanche bijection on 64 bits.
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9 & _MASK
    x = (x ^ (x >> 27)) * 0x94D049BB133111EB & _MASK
    return x ^ (x >> 31)


def score(member: str, key: str) -> int:
    """The weight of `member` for `key` (the naive definition; `owner` is
    this maximised over the members)."""
    return _mix(_h64(member) ^ _h64(key))


def _argmax(key_hash: int, members: Iterable[tuple[str, int]], best_score: int,
            best: str | None) -> tuple[int, str | None]:
    """The best of (best_score, best) and `members` ((name, hash) pairs) for
    the key; the mixer is inlined because this is the hot loop.  `best` is
    None only with best_score -1, which every member beats."""
    for m, h in members:
        x = h ^ key_hash
        x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9 & _MASK
        x = (x ^ (x >> 27)) * 0x94D049BB133111EB & _MASK
        x ^= x >> 31
        if x > best_score or (x == best_score and best is not None and m < best):
            best_score, best = x, m
    return best_score, best


class Rendezvous:
    CACHE_MAX = 100_000

    def __init__(self, members: Iterable[str] = ()) -> None:
        self._hashes: dict[str, int] = {m: _h64(m) for m in members}
        self._view = frozenset(self._hashes)
        # key -> [key hash, best score, owner]; a list, updated in place.
        self._cache: dict[str, list[Any]] = {}
        # (key, me) -> a member that outscores `me` for key (see is_owner).
        self._beaten: dict[tuple[str, str], str] = {}

    @property
    def members(self) -> list[str]:
        return sorted(self._hashes)

    @property
    def view(self) -> frozenset[str]:
        """The current view; the same object until a change of view."""
        return self._view

    def update(self, members: Iterable[str]) -> None:
        """Move to a new view, keeping what the cache still knows."""
        view = members if isinstance(members, frozenset) else frozenset(members)
        if view == self._view:
            return
        removed = self._view - view
        added = view - self._view
        self._view = view
        for m in removed:
            del self._hashes[m]
        cache = self._cache
        if removed:
            for key in [k for k, e in cache.items() if e[2] in removed]:
                del cache[key]
        if not added:
            return
        if len(added) * 2 > len(view):
            cache.clear()  # mostly new members: recomputing on demand is cheaper
            for m in added:
                self._hashes[m] = _h64(m)
            return
        new = [(m, _h64(m)) for m in added]
        self._hashes.update(new)
        for entry in cache.values():
            entry[1], entry[2] = _argmax(entry[0], new, entry[1], entry[2])

    def is_owner(self, key: str, me: str) -> bool:
        """owner(key) == me, usually without scoring every member."""
        entry = self._cache.get(key)
        if entry is not None:
            return bool(entry[2] == me)
        mine = self._hashes.get(me)
        if mine is None:
            return self.owner(key) == me
        beater = self._beaten.get((key, me))
        if beater is not None and beater in self._hashes:
            return False
        k = _h64(key)
        my_score = _mix(mine ^ k)
        for m, h in self._hashes.items():  # the scan ends at the first member that beats us
            x = _mix(h ^ k)
            if x > my_score or (x == my_score and m < me):
                if len(self._beaten) >= self.CACHE_MAX:
                    self._beaten.clear()
                self._beaten[(key, me)] = m
                return False
        return self.owner(key) == me  # we beat everyone: cache the owner as owner() does

    def ranked(self, key: str, count: int) -> list[str]:
        """The `count` best-scoring members for `key`, best first: the owner,
        then who owns the key if the owner leaves, and so on.  Scores every
        member (not cached: asked once per accepted award, not per tick)."""
        k = _h64(key)
        return [m for _, m in heapq.nsmallest(count, ((-_mix(h ^ k), m) for m, h in self._hashes.items()))]

    def owner(self, key: str) -> str | None:
        entry = self._cache.get(key)
        if entry is not None:
            owner: str | None = entry[2]
            return owner
        if not self._hashes:
            return None
        k = _h64(key)
        best_score, best = _argmax(k, self._hashes.items(), -1, None)
        if len(self._cache) >= self.CACHE_MAX:
            self._cache.clear()
        self._cache[key] = [k, best_score, best]
        return best
