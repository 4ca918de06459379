"""The replicated job store: a last-writer-wins map with tombstones.

How this works: every agent holds the whole desired state, a map from job
name to an `Entry` (stamp, spec bytes or None for a delete).  Merging two
entries for one name keeps the one with the greater HLC stamp, ties broken by
the value's hash, so merge is commutative, associative and idempotent: agents
that have seen the same writes, in any order and any number of times, hold
the same map (a state-based CRDT; tests/node/test_jobstore.py proves it with
Hypothesis).

Anti-entropy compares digests, not whole state.  Each entry hashes to 16
bytes; a bucket's digest is the XOR of its entries' hashes and the store's
digest the XOR of all of them, kept up to date incrementally.  Two agents
whose digests match hold identical maps; if not, they swap the bucket
digests, then only the entries of buckets that differ.

Deletes are tombstones.  A tombstone may be collected only when it is older
than `min_age_ms` *and* every live member publishes the same store digest as
ours (then every live member holds it, so no live member can bring the job
back); see `collectable_tombstones`.

History: each entry carries its version's `Meta` (number, why, by), and the
store keeps the last versions of every job, losers of the merge included, in
a `node.core.history.HistoryBook` whose record hashes are folded into the
same bucket digests, so anti-entropy carries history like the jobs
themselves (node.core.history states the rules).  `merge` returns whether
the current entry changed, as before; versions filed without changing it
wait in `history_pending` for the caller to persist.

Pure: no I/O; persistence is the caller's job (it gets the changed entries).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass

from gossip.lww import BUCKETS, DIGEST_BYTES, LwwMap
from node.core.history import HistoryBook, Meta, version_of
from node.core.hlc import Stamp

MAX_JOBS = 10_000  # live jobs accepted from local submissions
MAX_ENTRIES = 2 * MAX_JOBS  # including tombstones and remote writes; beyond this, merges are refused


@dataclass(frozen=True, slots=True)
class Entry:
    name: str
    stamp: Stamp
    spec: bytes | None  # canonical JSON of the spec; None = deleted
    meta: Meta | None = None  # the version's number, why, by (None: written by an older agent)

    @property
    def deleted(self) -> bool:
        return self.spec is None

    def entry_hash(self) -> bytes:
        h = hashlib.blake2b(digest_size=DIGEST_BYTES)
        h.update(self.name.encode())
        h.update(b"\0%d\0%d\0" % (self.stamp.wall_ms, self.stamp.counter))
        h.update(self.stamp.node.encode())
        h.update(b"\1" if self.spec is None else b"\2" + self.spec)
        if self.meta is not None:  # absent: hashes as an entry of an older agent did
            h.update(b"\3" + self.meta.hash_bytes())
        return h.digest()

    def beats(self, other: "Entry") -> bool:
        """Total order for one name: the later stamp wins; equal stamps are one
        write told two ways: with its Meta beats without (Meta lost, e.g.
        from an older agent's disk), else (forged or corrupted) the value
        hash settles it."""
        if self.stamp != other.stamp:
            return self.stamp > other.stamp
        if (self.meta is None) != (other.meta is None):
            return self.meta is not None
        return self.entry_hash() > other.entry_hash()

    def to_wire(self) -> list[object]:
        # Meta rides as a 4th element only when set: entries without encode as before.
        if self.meta is None:
            return [self.name, self.stamp.to_wire(), self.spec]
        return [self.name, self.stamp.to_wire(), self.spec, self.meta.to_wire()]

    @classmethod
    def from_wire(cls, raw: object, max_spec_bytes: int) -> "Entry":
        if not isinstance(raw, (list, tuple)) or len(raw) not in (3, 4):
            raise ValueError("malformed entry")
        name, stamp, spec = raw[:3]
        meta = Meta.from_wire(raw[3]) if len(raw) == 4 else None
        if not isinstance(name, str) or not name or len(name) > 255:
            raise ValueError("malformed entry name")
        if spec is not None and (not isinstance(spec, bytes) or len(spec) > max_spec_bytes):
            raise ValueError("malformed entry spec")
        return cls(name, Stamp.from_wire(stamp), spec, meta)


def _xor(a: bytes, b: bytes) -> bytes:
    return (int.from_bytes(a, "big") ^ int.from_bytes(b, "big")).to_bytes(DIGEST_BYTES, "big")


def wins(a: Entry, b: Entry) -> bool:
    """True if `a` beats `b` for the same name (total order)."""
    return a.beats(b)


class JobStore(LwwMap[Entry]):
    """The job store: an LwwMap of Entry with the rule for dropping deletes,
    and every job's history (node.core.history) under the same digests."""

    def __init__(self, max_entries: int = MAX_ENTRIES) -> None:
        super().__init__(max_entries)
        self.history: HistoryBook[Entry] = HistoryBook()
        self.history_pending: list[Entry] = []  # filed in history only, not yet persisted

    def merge(self, entry: Entry) -> bool:
        """Fold in an entry; True if the current entry of its name changed.
        A version that loses still goes into the job's history (if the name
        is held here and the version is among the newest kept)."""
        changed = super().merge(entry)
        if self.entries.get(entry.name) is not None and self.history.add(entry) and not changed:
            self.history_pending.append(entry)
        return changed

    def take_history(self) -> tuple[Entry, ...]:
        """The versions filed without changing the current entry, to persist."""
        out, self.history_pending = tuple(self.history_pending), []
        return out

    def next_version(self, name: str, pending: Iterable[Entry] = ()) -> int:
        """1 + the highest version known of the job, our writes in flight included."""
        return max([self.history.max_version(name), *(version_of(e) for e in pending if e.name == name)]) + 1

    # The digests cover jobs and history together (node.core.history).
    def digest(self) -> bytes:
        return _xor(self._digest, self.history.digest)

    def bucket_digests(self) -> list[bytes]:
        return [_xor(self._buckets[i], self.history.bucket(i)) for i in range(BUCKETS)]

    def differing_buckets(self, theirs: list[bytes]) -> list[int]:
        if len(theirs) != BUCKETS:
            return list(range(BUCKETS))
        mine = self.bucket_digests()
        return [i for i in range(BUCKETS) if theirs[i] != mine[i]]

    def entries_in(self, buckets: list[int]) -> list[Entry]:
        """The entries of these buckets, then their older versions (the
        current one's record the receiver files from the entry itself)."""
        current = super().entries_in(buckets)
        older = [r for r in self.history.in_buckets(set(buckets)) if self.entries.get(r.name) != r]
        return current + older

    def forget(self, names: list[str]) -> None:
        for name in names:
            entry = self.entries.get(name)
            if entry is not None and entry.deleted:
                self.history.forget(name)
        super().forget(names)

    def collectable_tombstones(self, wall_ms: int, min_age_ms: int,
                               peer_digests: list[bytes]) -> list[str]:
        """Tombstones that may be dropped now: every live peer's published
        digest equals ours, and the delete is at least min_age_ms old."""
        if any(d != self.digest() for d in peer_digests):
            return []
        return [e.name for e in self.entries.values()
                if e.deleted and wall_ms - e.stamp.wall_ms >= min_age_ms]
