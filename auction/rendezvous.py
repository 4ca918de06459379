"""Rendezvous (highest-random-weight) hashing: who coordinates a slot.

How this works: every agent scores each member it believes alive against the
slot key and picks the highest score.  Agents with the same view pick the
same coordinator without a vote; when that member dies, the next-highest
takes over, and no other slot changes hands (Thaler & Ravishankar, 1998).
Member hashes are computed once and combined with the slot's hash by a cheap
64-bit mixer, because this runs for every pending slot against every member.
"""

from __future__ import annotations

import hashlib

_MASK = (1 << 64) - 1


def _h64(text: str) -> int:
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "big")


def _mix(x: int) -> int:
    # splitmix64 finalizer: a full-avalanche bijection on 64 bits.
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9 & _MASK
    x = (x ^ (x >> 27)) * 0x94D049BB133111EB & _MASK
    return x ^ (x >> 31)


class Rendezvous:
    # Owners are cached per view: a Rendezvous is rebuilt when the member set
    # changes, and between changes the same slots are asked about every tick.
    CACHE_MAX = 100_000

    def __init__(self, members: list[str]) -> None:
        self.members = sorted(members)
        self._hashes = [(_h64(m), m) for m in self.members]
        self._cache: dict[str, str | None] = {}

    def owner(self, key: str) -> str | None:
        cached = self._cache.get(key, False)
        if cached is not False:
            return cached
        if not self._hashes:
            return None
        k = _h64(key)
        best_score, best = -1, None
        for h, m in self._hashes:
            x = (h ^ k)
            x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9 & _MASK
            x = (x ^ (x >> 27)) * 0x94D049BB133111EB & _MASK
            x ^= x >> 31
            if x > best_score:  # members are sorted, so ties go to the first name
                best_score, best = x, m
        if len(self._cache) >= self.CACHE_MAX:
            self._cache.clear()
        self._cache[key] = best
        return best
