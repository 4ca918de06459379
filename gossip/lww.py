"""A replicated last-writer-wins map with bucketed digests, for anti-entropy.

How this works: a map from name to entry, where any two entries for one name
are ordered by `entry.beats(other)`; merging keeps the winner, so merge is
commutative, associative and idempotent (a state-based CRDT): replicas that
have seen the same entries, in any order and any number of times, are equal.

Anti-entropy compares digests, not whole state.  Each entry hashes to
DIGEST_BYTES bytes (`entry.entry_hash()`); a bucket's digest is the XOR of its
entries' hashes and the map's digest the XOR of all of them, kept up to date
incrementally.  Two replicas whose digests match hold identical maps; if not,
they swap the BUCKETS bucket digests, then only the entries of buckets that
differ.  Deletes are tombstones (`entry.deleted`); when one may be dropped is
the owner's rule (`forget` drops only tombstones).

Generic: the node core keeps its job store (node.core.jobstore) and the slot
claims (auction.claims.Claim) in LwwMaps.  The entry type needs `name`,
`deleted`, `beats(other)` and `entry_hash()`.  Pure: no I/O.
"""

from __future__ import annotations

import hashlib
from typing import Generic, Protocol, Self, TypeVar

BUCKETS = 64
DIGEST_BYTES = 16
ZERO_DIGEST = bytes(DIGEST_BYTES)


class Mergeable(Protocol):
    @property
    def name(self) -> str: ...

    @property
    def deleted(self) -> bool: ...

    def beats(self, other: Self, /) -> bool: ...  # against an entry of its own type

    def entry_hash(self) -> bytes: ...


E = TypeVar("E", bound=Mergeable)


def bucket_of(name: str) -> int:
    return hashlib.blake2b(name.encode(), digest_size=2).digest()[0] % BUCKETS


def _xor(a: bytes, b: bytes) -> bytes:
    return (int.from_bytes(a, "big") ^ int.from_bytes(b, "big")).to_bytes(DIGEST_BYTES, "big")


class LwwMap(Generic[E]):
    """The map itself; at most `max_entries` names (tombstones included):
    beyond that, merges of new names are refused (the caller counts them)."""

    def __init__(self, max_entries: int) -> None:
        self.max_entries = max_entries
        self.entries: dict[str, E] = {}
        self._hashes: dict[str, bytes] = {}
        self._buckets = [ZERO_DIGEST] * BUCKETS
        self._digest = ZERO_DIGEST
        self.live_count = 0

    # ---- reads
    def get(self, name: str) -> E | None:
        return self.entries.get(name)

    def live(self) -> list[E]:
        return sorted((e for e in self.entries.values() if not e.deleted), key=lambda e: e.name)

    def digest(self) -> bytes:
        return self._digest

    def bucket_digests(self) -> list[bytes]:
        return list(self._buckets)

    def differing_buckets(self, theirs: list[bytes]) -> list[int]:
        if len(theirs) != BUCKETS:
            return list(range(BUCKETS))
        return [i for i in range(BUCKETS) if theirs[i] != self._buckets[i]]

    def entries_in(self, buckets: list[int]) -> list[E]:
        wanted = set(buckets)
        return [e for e in self.entries.values() if bucket_of(e.name) in wanted]

    # ---- writes
    def merge(self, entry: E) -> bool:
        """Fold in an entry; True if it changed our state."""
        current = self.entries.get(entry.name)
        if current is not None and not entry.beats(current):
            return False
        if current is None and len(self.entries) >= self.max_entries:
            return False
        self._replace(current, entry)
        return True

    def _replace(self, old: E | None, new: E | None) -> None:
        either = new if new is not None else old
        assert either is not None, "_replace needs an old or a new entry"
        name = either.name
        b = bucket_of(name)
        if old is not None:
            h = self._hashes.pop(name)
            self._buckets[b] = _xor(self._buckets[b], h)
            self._digest = _xor(self._digest, h)
            del self.entries[name]
            if not old.deleted:
                self.live_count -= 1
        if new is not None:
            h = new.entry_hash()
            self._hashes[name] = h
            self._buckets[b] = _xor(self._buckets[b], h)
            self._digest = _xor(self._digest, h)
            self.entries[name] = new
            if not new.deleted:
                self.live_count += 1

    def forget(self, names: list[str]) -> None:
        for name in names:
            entry = self.entries.get(name)
            if entry is not None and entry.deleted:
                self._replace(entry, None)
