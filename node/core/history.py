"""Job history: the last versions of every job, who wrote each, when and why.

How this works: every job write carries `Meta` (version number, why, by,
ref) inside its job-store entry (node.core.jobstore.Entry), so any agent
that merges the entry can file it here itself: the history of a job is the
set of that job's entries this agent has seen, winners and losers of the
last-writer-wins merge alike, keyed by their HLC stamp.  A `HistoryBook`
keeps the HISTORY_VERSIONS newest of them by stamp; an older one is dropped
(or refused when it arrives).  "The newest N of the union" is itself a
merge that is commutative, associative and idempotent, so agents that have
seen the same entries keep the same history, whatever the order.

Replication rides on the job store: the store's digest (and each bucket's)
is the XOR of its entries' hashes and of its history records' hashes
(domain-separated from the entry hash), and a record lies in its job's
bucket, so anti-entropy notices a missing version exactly like a missing
job and sends the bucket's entries and records together (one `SyncEntries`
of entries: an old version is just an entry that loses the merge).  The
record of the current entry is not sent twice: the receiver files the
entry itself.  A job's history goes when its tombstone is collected.

Version numbers (the rule): a write gets 1 + the highest version this agent
knows for the job (its history, the current entry, its own writes still
being persisted).  Writes that saw each other are numbered in the order
they happened; two writes made on two sides of a partition may get the
same number.  Both are kept: history is ordered by HLC stamp (the current
version, the last-writer-wins winner, is always the newest), and where
numbers collide the versions are told apart by their writer, `5@node-b`
(a writer never numbers two of its writes alike, since it knows its own).
The first write after the merge sees both and takes the next number, so
numbers never go back.  An entry without Meta (written by an older agent)
is version 0.

Bounds: HISTORY_VERSIONS records per job, each at most the spec bound
(ClusterConfig.max_spec_bytes) plus bounded Meta text; `bytes` counts what
the book holds.  Pure: no I/O.
"""

from __future__ import annotations

import hashlib
import struct
from dataclasses import dataclass
from typing import Generic, Protocol, Self, TypeVar

from gossip.lww import BUCKETS, DIGEST_BYTES, ZERO_DIGEST, bucket_of
from node.core.hlc import Stamp

HISTORY_VERSIONS = 10
# Why a version was written.  "revert": the rollout went back on its own
# (ref names the version it reverted from); "rollback": an operator asked
# for an earlier version (ref names it); "promote": canaries promoted.
WHYS = ("submit", "delete", "revert", "rollback", "scale", "restart", "promote")
MAX_VERSION = (1 << 53) - 1  # exact as a JSON number
MAX_BY_CHARS = 128
MAX_REF_CHARS = 160  # a version id: number@node
MAX_PROMOTED_CHARS = 64  # a container hash (hex sha256)


@dataclass(frozen=True, slots=True)
class Meta:
    version: int
    why: str = "submit"
    by: str = ""  # the API client, when it said who it is
    ref: str = ""  # revert: the version reverted from; rollback: the version rolled back to
    # The container hash whose canaries are promoted (`shoal job promote`);
    # carried over by writes that keep the container hash, "" otherwise.
    promoted: str = ""

    def to_wire(self) -> list[object]:
        out: list[object] = [self.version, self.why, self.by, self.ref]
        if self.promoted:
            out.append(self.promoted)
        return out

    @classmethod
    def from_wire(cls, raw: object) -> "Meta":
        if not isinstance(raw, (list, tuple)) or len(raw) not in (4, 5):
            raise ValueError("malformed version meta")
        version, why, by, ref, *rest = raw
        promoted = rest[0] if rest else ""
        if (not isinstance(version, int) or isinstance(version, bool) or not 0 <= version <= MAX_VERSION
                or why not in WHYS or not isinstance(by, str) or len(by) > MAX_BY_CHARS
                or not isinstance(ref, str) or len(ref) > MAX_REF_CHARS
                or not isinstance(promoted, str) or len(promoted) > MAX_PROMOTED_CHARS):
            raise ValueError("malformed version meta")
        return cls(version, why, by, ref, promoted)

    def hash_bytes(self) -> bytes:
        """Length-prefixed, so no two metas encode alike."""
        parts = [p.encode() for p in (self.why, self.by, self.ref, self.promoted)]
        return struct.pack(">Q", self.version) + b"".join(struct.pack(">I", len(p)) + p for p in parts)


class Versioned(Protocol):
    """What the book files: a job-store entry (node.core.jobstore.Entry)."""

    @property
    def name(self) -> str: ...
    @property
    def stamp(self) -> Stamp: ...
    @property
    def spec(self) -> bytes | None: ...
    @property
    def meta(self) -> Meta | None: ...

    def entry_hash(self) -> bytes: ...

    def beats(self, other: Self, /) -> bool: ...


V = TypeVar("V", bound=Versioned)


def version_of(entry: Versioned) -> int:
    return entry.meta.version if entry.meta is not None else 0


def record_hash(entry: Versioned) -> bytes:
    """A record's share of the digest, apart from the same entry's as the current one."""
    return hashlib.blake2b(entry.entry_hash(), digest_size=DIGEST_BYTES, person=b"shoal-history").digest()


def version_id(entry: Versioned, records: list[Versioned]) -> str:
    """How a version is named: its number, or number@writer where the number
    is shared (concurrent writes on two sides of a partition)."""
    v = version_of(entry)
    if sum(1 for r in records if version_of(r) == v) > 1:
        return f"{v}@{entry.stamp.node}"
    return str(v)


def find_version(records: list[Versioned], wanted: str) -> Versioned:
    """The record named `wanted` ("5" or "5@node-b"); raises LookupError
    saying why (unknown, or ambiguous: naming both)."""
    number, _, node = wanted.partition("@")
    if not number.isdigit():
        raise LookupError(f"{wanted!r} is not a version (a number, or number@node)")
    found = [r for r in records if version_of(r) == int(number) and (not node or r.stamp.node == node)]
    if not found:
        raise LookupError(f"no version {wanted} in the history (it keeps the last {HISTORY_VERSIONS})")
    if len(found) > 1:
        names = " or ".join(f"{number}@{r.stamp.node}" for r in found)
        raise LookupError(f"version {number} was written twice (during a partition): say {names}")
    return found[0]


def _xor(a: bytes, b: bytes) -> bytes:
    return (int.from_bytes(a, "big") ^ int.from_bytes(b, "big")).to_bytes(DIGEST_BYTES, "big")


class HistoryBook(Generic[V]):
    """Per job, the `keep` newest versions by stamp, with bucket digests."""

    def __init__(self, keep: int = HISTORY_VERSIONS) -> None:
        self.keep = keep
        self._jobs: dict[str, dict[Stamp, V]] = {}
        self._buckets = [ZERO_DIGEST] * BUCKETS
        self.digest = ZERO_DIGEST
        self.bytes = 0  # spec bytes held, for metrics and tests

    def of(self, job: str) -> list[V]:
        """The job's versions, oldest first."""
        return [recs[s] for recs in (self._jobs.get(job, {}),) for s in sorted(recs)]

    def jobs(self) -> list[str]:
        return sorted(self._jobs)

    def bucket(self, i: int) -> bytes:
        return self._buckets[i]

    def in_buckets(self, buckets: set[int]) -> list[V]:
        return [r for job, recs in self._jobs.items() if bucket_of(job) in buckets for r in recs.values()]

    def max_version(self, job: str) -> int:
        return max((version_of(r) for r in self._jobs.get(job, {}).values()), default=0)

    def add(self, entry: V) -> bool:
        """File one version; True if the book changed."""
        recs = self._jobs.setdefault(entry.name, {})
        old = recs.get(entry.stamp)
        if old is not None:
            # The same write twice; if they differ (meta lost on a disk, or
            # forged), the entry order decides, as the job store does.
            if old == entry or not entry.beats(old):
                return False
            self._drop(entry.name, old)
        elif len(recs) >= self.keep and entry.stamp < min(recs):
            return False  # older than every version kept
        recs[entry.stamp] = entry
        self._toggle(entry)
        self.bytes += len(entry.spec or b"")
        while len(recs) > self.keep:
            self._drop(entry.name, recs[min(recs)])
        return True

    def forget(self, job: str) -> None:
        for rec in list(self._jobs.get(job, {}).values()):
            self._drop(job, rec)
        self._jobs.pop(job, None)

    def _drop(self, job: str, rec: V) -> None:
        del self._jobs[job][rec.stamp]
        self._toggle(rec)
        self.bytes -= len(rec.spec or b"")

    def _toggle(self, rec: V) -> None:
        h = record_hash(rec)
        b = bucket_of(rec.name)
        self._buckets[b] = _xor(self._buckets[b], h)
        self.digest = _xor(self.digest, h)
