"""Slot claims: who runs replica (job, index), under which ballot.

How this works: when a node accepts an award it records a `Claim` in the
replicated state (an LWW map shared by every agent, like the job store).
Claims for one slot are ordered by (ballot round, ballot coordinator, node):
a re-auction after a failure uses a higher round, so its claim supersedes the
old one everywhere it spreads, and a node that sees a newer claim for a slot
it runs stops its copy.  Two coordinators never award the same (slot, ballot),
because the coordinator is part of the ballot; and one coordinator never
twice, because it counts rounds up and the ballot names the coordinator's
*run* (`name#<its start time>`, node.core.node_core): a coordinator that crashes after
an award and restarts before hearing of the claim has lost count of its
rounds, but not its new identity.  So after any partition merge each slot
has exactly one winning claim.

A holder gives a slot back (scale-down, job stopped, crash-looping) by
writing a *released* claim with the next round, which beats its own claim.

Pure value type; the map machinery is gossip.lww.LwwMap, held by the node core.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from .resources import Resources

MAX_NAME_CHARS = 300


def slot_key(job: str, index: int) -> str:
    return f"{job}/{index}"


def parse_slot_key(key: str) -> tuple[str, int]:
    job, _, index = key.rpartition("/")
    return job, int(index)


@dataclass(frozen=True, slots=True)
class Ballot:
    round: int
    coordinator: str

    def next_for(self, coordinator: str) -> "Ballot":
        return Ballot(self.round + 1, coordinator)


ZERO_BALLOT = Ballot(0, "")


@dataclass(frozen=True, slots=True)
class Claim:
    name: str  # slot key "job/index"
    ballot: Ballot
    node: str
    released: bool
    spec_hash: str  # the job spec version this claim was awarded for
    demand: Resources

    @property
    def deleted(self) -> bool:
        return self.released

    @property
    def job(self) -> str:
        return parse_slot_key(self.name)[0]

    @property
    def index(self) -> int:
        return parse_slot_key(self.name)[1]

    def order_key(self) -> tuple:
        return (self.ballot.round, self.ballot.coordinator, self.node, self.released)

    def beats(self, other: "Claim") -> bool:
        if self.order_key() != other.order_key():
            return self.order_key() > other.order_key()
        return self.entry_hash() > other.entry_hash()

    def entry_hash(self) -> bytes:
        h = hashlib.blake2b(digest_size=16)
        h.update(repr(self.to_wire()).encode())
        return h.digest()

    def to_wire(self) -> list:
        d = self.demand
        return [self.name, self.ballot.round, self.ballot.coordinator, self.node, self.released,
                self.spec_hash, d.cpu_millis, d.memory_bytes, d.disk_bytes]

    @classmethod
    def from_wire(cls, raw) -> "Claim":
        if not isinstance(raw, (list, tuple)) or len(raw) != 9:
            raise ValueError("malformed claim")
        name, rnd, coord, node, released, spec_hash, cpu, mem, disk = raw
        if not (isinstance(name, str) and 0 < len(name) <= MAX_NAME_CHARS and "/" in name
                and isinstance(rnd, int) and rnd >= 0 and isinstance(coord, str) and len(coord) <= 512
                and isinstance(node, str) and len(node) <= 512 and isinstance(released, bool)
                and isinstance(spec_hash, str) and len(spec_hash) <= 128
                and all(isinstance(x, int) and x >= 0 for x in (cpu, mem, disk))):
            raise ValueError("malformed claim fields")
        try:
            parse_slot_key(name)
        except ValueError:
            raise ValueError("malformed slot key") from None
        return cls(name, Ballot(rnd, coord), node, released, spec_hash, Resources(cpu, mem, disk))
