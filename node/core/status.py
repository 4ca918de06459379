"""A node's published facts: capacity, allocation, labels, eligibility.

How this works: each agent publishes one `NodeStatus` record as its gossip
per-node payload (latest version wins, spread by broadcast and push/pull;
never in the 512-byte memberlist meta).  Every agent therefore holds every
node's record and can judge where a replica might fit without asking.  The
record also carries the agent's job-store digest, so agents can see who
disagrees with them about the desired state and sync with exactly those.

Encoded as a compact msgpack array; it must fit one gossip payload (1 KiB),
so labels are bounded.  Decoding refuses (StatusError) any integer outside
its range (resources and the job count up to MAX_INT, slot indices up to
MAX_SLOT_INDEX) and over-long text, so a forged record cannot make us do
arithmetic on, or re-encode, a value that overflows.

The record also says what this node's runtime does with the slots it holds
(`runtime`, a `RuntimeSummary`): per job, the indices whose container runs
and the ones that failed or exited, with a short reason; a slot the node
holds and does not list is starting.  That is how every agent can tell
whether a placed replica actually runs (`shoal job status`, the progress of
`shoal job run`) without reaching the holder's API, which may listen on its
loopback only.  It gets whatever room the record has left: `fit()` drops
whole jobs (last names first) until the record fits and marks the summary
`truncated`; a viewer then says "unknown" for those jobs, never "starting".
Older agents publish no summary (`runtime` None) and ignore it in ours.

`address` is the node's publish address (where its replicas' ports are
published; node.core.catalog lists instances at it).  It goes on the wire
as a trailing element only when set, so a record without one encodes
exactly as before; "" means "use the member's gossip address".

`pulls` says which images the node is pulling or fetching and how far it
is (node.core.image_progress: bounded, dropped first when the record does
not fit); it follows `address` and the ballots, only when there are any.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import Any

import msgpack

from auction.resources import Resources
from node.core.image_progress import ImageProgress, decode_all

MAX_LABELS = 32
MAX_LABEL_CHARS = 63
STATUS_VERSION = 1
MAX_RUNTIME_REASON_CHARS = 60
RUNTIME_STATES = ("failed", "exited")  # listed with a reason; "running" listed bare; others starting
MAX_INT = (1 << 63) - 1  # msgpack's signed range
MAX_SLOT_INDEX = 999_999  # as node.core.wire
MAX_TEXT_CHARS = 1024
MAX_FINGERPRINT = (1 << 24) - 1  # auction.rollout.running_fingerprint
MAX_ADDRESS_CHARS = 253  # a DNS name's limit; an IP literal is far shorter


class StatusError(ValueError):
    pass


@dataclass(frozen=True, slots=True)
class RuntimeSummary:
    """What a node's runtime does with its slots, per job:
    job -> (running indices, ((index, "failed"|"exited", reason), ...))."""

    jobs: dict[str, tuple[tuple[int, ...], tuple[tuple[int, str, str], ...]]] = field(default_factory=dict)
    truncated: bool = False
    # job -> which claims the running indices run under, as a fingerprint of
    # their (index, ballot round) (auction.rollout.running_fingerprint): an
    # agent whose claims differ knows the record is older or newer than the
    # claims it holds, so it does not count a replica on a new version as
    # running on the word of a record about the old one.  Set at publish.
    ballots: dict[str, int] = field(default_factory=dict)
    # Ours only, never published: (job, index) -> the ballot round of the
    # claim the runtime's state of that slot is about (its `slot_rounds()`;
    # empty when it does not say).  The runtime reports after it took a new
    # claim, so until it does, "running" here is the old claim's container:
    # node.core.rollout_link.current reads such a slot as starting.
    rounds: dict[tuple[str, int], int] = field(default_factory=dict)

    @classmethod
    def from_states(cls, states: dict[str, tuple[str, str]],
                    rounds: Mapping[str, int] | None = None) -> "RuntimeSummary":
        """From the runtime's `slot_states()`: slot key "job/index" -> (state,
        reason), and its `slot_rounds()` if it has one: slot key -> ballot round."""
        running: dict[str, list[int]] = {}
        other: dict[str, list[tuple[int, str, str]]] = {}
        about: dict[tuple[str, int], int] = {}
        for slot, (state, reason) in states.items():
            job, _, idx = slot.rpartition("/")
            if not job or not idx.isdigit():
                continue
            running.setdefault(job, [])
            other.setdefault(job, [])
            if state == "running":
                running[job].append(int(idx))
                if rounds is not None and slot in rounds:
                    about[(job, int(idx))] = rounds[slot]
            elif state in RUNTIME_STATES:
                other[job].append((int(idx), state, _short(reason)))
        return cls({job: (tuple(sorted(running[job])), tuple(sorted(other[job])))
                    for job in sorted(running)}, rounds=about)

    def state_of(self, job: str, index: int) -> tuple[str, str] | None:
        """(state, reason) of a slot this node holds; None when not published."""
        entry = self.jobs.get(job)
        if entry is None:
            return None if self.truncated else ("starting", "")
        if index in entry[0]:
            return "running", ""
        for i, state, reason in entry[1]:
            if i == index:
                return state, reason
        return "starting", ""

    def encode_raw(self) -> list[object]:
        return [self.truncated, {job: [list(r), [list(o) for o in other]] for job, (r, other) in self.jobs.items()}]

    @classmethod
    def decode_raw(cls, raw: Any) -> "RuntimeSummary | None":  # lenient: any shape
        """Lenient: a summary we cannot read is treated as absent."""
        try:
            truncated, jobs = raw
            out = {}
            for job, (r, other) in jobs.items():
                if not isinstance(job, str) or not all(_index(i) for i in r):
                    return None
                others = tuple((int(i), str(st), str(why)) for i, st, why in other)
                if not all(_index(i) for i, _, _ in others):
                    return None
                out[job] = (tuple(r), others)
            return cls(out, bool(truncated))
        except (TypeError, ValueError, AttributeError):
            return None


def _short(text: str) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= MAX_RUNTIME_REASON_CHARS else text[:MAX_RUNTIME_REASON_CHARS - 3] + "..."


@dataclass(frozen=True, slots=True)
class NodeStatus:
    name: str
    capacity: Resources  # what the node offers to jobs (after the host reserve)
    allocated: Resources  # committed to running and reserved replicas
    labels: dict[str, str] = field(default_factory=dict)
    drained: bool = False
    healthy: bool = True
    unhealthy_reason: str = ""
    agent_version: str = ""
    store_digest: bytes = b""
    jobs: int = 0
    claims_digest: bytes = b""
    runtime: RuntimeSummary | None = None
    address: str = ""  # publish address; "" = the member's gossip address
    pulls: tuple[ImageProgress, ...] = ()  # images being pulled or fetched here (node.core.image_progress)

    @property
    def free(self) -> Resources:
        return self.capacity - self.allocated

    @property
    def eligible(self) -> bool:
        return self.healthy and not self.drained

    def encode(self) -> bytes:
        fields: list[object] = [
            STATUS_VERSION, self.name,
            [self.capacity.cpu_millis, self.capacity.memory_bytes, self.capacity.disk_bytes],
            [self.allocated.cpu_millis, self.allocated.memory_bytes, self.allocated.disk_bytes],
            self.labels, self.drained, self.healthy, self.unhealthy_reason, self.agent_version,
            self.store_digest, self.jobs, self.claims_digest,
            self.runtime.encode_raw() if self.runtime is not None else None,
        ]
        ballots = self.runtime.ballots if self.runtime is not None else {}
        if self.address or ballots or self.pulls:  # only when set: records without them encode as before
            fields.append(self.address)
        if (ballots or self.pulls) and self.runtime is not None:  # aligned with the summary's jobs (-1: none)
            fields.append([ballots.get(job, -1) for job in self.runtime.jobs])
        elif self.pulls:
            fields.append(None)
        if self.pulls:
            fields.append([p.encode_raw() for p in self.pulls])
        data: bytes = msgpack.packb(fields, use_bin_type=True)
        return data

    def fit(self, limit: int, keep: Collection[str] = ()) -> "NodeStatus":
        """This record, with runtime summary jobs dropped (last names first,
        jobs in `keep` last: the ones being rolled out, which every agent
        paces by these records) until it encodes to at most `limit` bytes
        (marked truncated).  Pull progress goes first: it is a courtesy,
        the summary paces rollouts."""
        from dataclasses import replace
        if self.pulls and len(self.encode()) > limit:
            return replace(self, pulls=()).fit(limit, keep)
        if self.runtime is None or len(self.encode()) <= limit:
            return self
        jobs = dict(self.runtime.jobs)
        while True:
            if jobs:
                jobs.pop(max(jobs, key=lambda job: (job not in keep, job)))
            ballots = {job: fp for job, fp in self.runtime.ballots.items() if job in jobs}
            candidate = replace(self, runtime=RuntimeSummary(dict(jobs), True, ballots))
            if not jobs or len(candidate.encode()) <= limit:
                return candidate

    @classmethod
    def decode(cls, data: bytes) -> "NodeStatus":
        try:
            raw = msgpack.unpackb(data, raw=False, strict_map_key=True)
        except Exception as exc:  # msgpack raises several types on garbage
            raise StatusError(f"undecodable status: {exc!r}") from None
        if not isinstance(raw, list) or len(raw) < 12 or raw[0] != STATUS_VERSION:
            raise StatusError("unknown status layout")
        _, name, cap, alloc, labels, drained, healthy, reason, version, digest, jobs, claims = raw[:12]
        if not (isinstance(name, str) and _triple(cap) and _triple(alloc) and isinstance(labels, dict)
                and len(labels) <= MAX_LABELS
                and all(isinstance(k, str) and isinstance(v, str) for k, v in labels.items())
                and all(len(k) <= MAX_LABEL_CHARS and len(v) <= MAX_LABEL_CHARS for k, v in labels.items())
                and isinstance(drained, bool) and isinstance(healthy, bool) and isinstance(reason, str)
                and len(reason) <= MAX_TEXT_CHARS and isinstance(version, str) and len(version) <= MAX_TEXT_CHARS
                and isinstance(digest, bytes) and isinstance(jobs, int) and 0 <= jobs <= MAX_INT
                and isinstance(claims, bytes)):
            raise StatusError("malformed status fields")
        runtime = RuntimeSummary.decode_raw(raw[12]) if len(raw) > 12 and raw[12] is not None else None
        address = raw[13] if len(raw) > 13 else ""
        if not (isinstance(address, str) and len(address) <= MAX_ADDRESS_CHARS):
            raise StatusError("malformed status address")
        if runtime is not None and len(raw) > 14:
            runtime = _with_ballots(runtime, raw[14])
        pulls = decode_all(raw[15]) if len(raw) > 15 else ()
        return cls(name, Resources(*cap), Resources(*alloc), labels, drained, healthy, reason, version,
                   digest, jobs, claims, runtime, address, pulls)


def _with_ballots(runtime: RuntimeSummary, raw: object) -> RuntimeSummary:
    """The summary with its ballot fingerprints (lenient: unreadable ones are dropped)."""
    if not isinstance(raw, list) or len(raw) != len(runtime.jobs):
        return runtime
    ballots = {job: fp for job, fp in zip(runtime.jobs, raw, strict=True)
               if isinstance(fp, int) and not isinstance(fp, bool) and 0 <= fp <= MAX_FINGERPRINT}
    return RuntimeSummary(runtime.jobs, runtime.truncated, ballots)


def _triple(v: object) -> bool:
    return isinstance(v, list) and len(v) == 3 and all(isinstance(x, int) and 0 <= x <= MAX_INT for x in v)


def _index(i: object) -> bool:
    return isinstance(i, int) and 0 <= i <= MAX_SLOT_INDEX


def validate_labels(labels: dict[str, str]) -> None:
    if len(labels) > MAX_LABELS:
        raise ValueError(f"at most {MAX_LABELS} labels")
    for k, v in labels.items():
        if not k or len(k) > MAX_LABEL_CHARS or len(v) > MAX_LABEL_CHARS:
            raise ValueError(f"label {k!r}: keys and values are 1..{MAX_LABEL_CHARS} characters")


def slots_moved(old: RuntimeSummary | None, new: RuntimeSummary | None) -> bool:
    """Does `new` say a slot runs, or failed or exited, that `old` did not?
    (What other agents wait on: node.core.publish's `urgent`.)"""
    if new is None:
        return False
    before = old.jobs if old is not None else {}
    for job, (running, other) in new.jobs.items():
        was_running, was_other = before.get(job, ((), ()))
        if not set(running) <= set(was_running) or not {i for i, _, _ in other} <= {i for i, _, _ in was_other}:
            return True
    return False


def listing_moved(old: RuntimeSummary | None, new: RuntimeSummary | None) -> bool:
    """Does `new` say another set of slots runs than `old` (one started or
    stopped running, or turned unhealthy or healthy again)?  Every agent's
    service catalog lists exactly the running slots (node.core.catalog), so
    such a record is published twice (node.core.publish's `repeat`): a
    member that gossip missed would list or keep listing the replica until
    push/pull, seconds later."""
    def running(summary: RuntimeSummary | None) -> set[tuple[str, int]]:
        jobs = summary.jobs if summary is not None else {}
        return {(job, i) for job, (indices, _) in jobs.items() for i in indices}
    return running(old) != running(new)
