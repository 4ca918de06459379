"""A node's published facts: capacity, allocation, labels, eligibility.

How this works: each agent publishes one `NodeStatus` record as its gossip
per-node payload (latest version wins, spread by broadcast and push/pull;
never in the 512-byte memberlist meta).  Every agent therefore holds every
node's record and can judge where a replica might fit without asking.  The
record also carries the agent's job-store digest, so agents can see who
disagrees with them about the desired state and sync with exactly those.

Encoded as a compact msgpack array; it must fit one gossip payload (1 KiB),
so labels are bounded.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import msgpack

from auction.resources import Resources

MAX_LABELS = 32
MAX_LABEL_CHARS = 63
STATUS_VERSION = 1


class StatusError(ValueError):
    pass


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

    @property
    def free(self) -> Resources:
        return self.capacity - self.allocated

    @property
    def eligible(self) -> bool:
        return self.healthy and not self.drained

    def encode(self) -> bytes:
        return msgpack.packb([
            STATUS_VERSION, self.name,
            [self.capacity.cpu_millis, self.capacity.memory_bytes, self.capacity.disk_bytes],
            [self.allocated.cpu_millis, self.allocated.memory_bytes, self.allocated.disk_bytes],
            self.labels, self.drained, self.healthy, self.unhealthy_reason, self.agent_version,
            self.store_digest, self.jobs, self.claims_digest,
        ], use_bin_type=True)

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
                and isinstance(drained, bool) and isinstance(healthy, bool) and isinstance(reason, str)
                and isinstance(version, str) and isinstance(digest, bytes) and isinstance(jobs, int)
                and isinstance(claims, bytes)):
            raise StatusError("malformed status fields")
        return cls(name, Resources(*cap), Resources(*alloc), labels, drained, healthy, reason, version,
                   digest, jobs, claims)


def _triple(v) -> bool:
    return isinstance(v, list) and len(v) == 3 and all(isinstance(x, int) and x >= 0 for x in v)


def validate_labels(labels: dict[str, str]) -> None:
    if len(labels) > MAX_LABELS:
        raise ValueError(f"at most {MAX_LABELS} labels")
    for k, v in labels.items():
        if not k or len(k) > MAX_LABEL_CHARS or len(v) > MAX_LABEL_CHARS:
            raise ValueError(f"label {k!r}: keys and values are 1..{MAX_LABEL_CHARS} characters")
