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

Pure: no I/O; persistence is the caller's job (it gets the changed entries).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from gossip.lww import DIGEST_BYTES, LwwMap
from node.core.hlc import Stamp

MAX_JOBS = 10_000  # live jobs accepted from local submissions
MAX_ENTRIES = 2 * MAX_JOBS  # including tombstones and remote writes; beyond this, merges are refused


@dataclass(frozen=True, slots=True)
class Entry:
    name: str
    stamp: Stamp
    spec: bytes | None  # canonical JSON of the spec; None = deleted

    @property
    def deleted(self) -> bool:
        return self.spec is None

    def entry_hash(self) -> bytes:
        h = hashlib.blake2b(digest_size=DIGEST_BYTES)
        h.update(self.name.encode())
        h.update(b"\0%d\0%d\0" % (self.stamp.wall_ms, self.stamp.counter))
        h.update(self.stamp.node.encode())
        h.update(b"\1" if self.spec is None else b"\2" + self.spec)
        return h.digest()

    def beats(self, other: "Entry") -> bool:
        """Total order for one name: the later stamp wins; equal stamps (only
        possible when forged or corrupted) are settled by the value hash."""
        if self.stamp != other.stamp:
            return self.stamp > other.stamp
        return self.entry_hash() > other.entry_hash()

    def to_wire(self) -> list[object]:
        return [self.name, self.stamp.to_wire(), self.spec]

    @classmethod
    def from_wire(cls, raw: object, max_spec_bytes: int) -> "Entry":
        if not isinstance(raw, (list, tuple)) or len(raw) != 3:
            raise ValueError("malformed entry")
        name, stamp, spec = raw
        if not isinstance(name, str) or not name or len(name) > 255:
            raise ValueError("malformed entry name")
        if spec is not None and (not isinstance(spec, bytes) or len(spec) > max_spec_bytes):
            raise ValueError("malformed entry spec")
        return cls(name, Stamp.from_wire(stamp), spec)


def wins(a: Entry, b: Entry) -> bool:
    """True if `a` beats `b` for the same name (total order)."""
    return a.beats(b)


class JobStore(LwwMap[Entry]):
    """The job store: an LwwMap of Entry with the rule for dropping deletes."""

    def __init__(self, max_entries: int = MAX_ENTRIES) -> None:
        super().__init__(max_entries)

    def collectable_tombstones(self, wall_ms: int, min_age_ms: int,
                               peer_digests: list[bytes]) -> list[str]:
        """Tombstones that may be dropped now: every live peer's published
        digest equals ours, and the delete is at least min_age_ms old."""
        if any(d != self._digest for d in peer_digests):
            return []
        return [e.name for e in self.entries.values()
                if e.deleted and wall_ms - e.stamp.wall_ms >= min_age_ms]
