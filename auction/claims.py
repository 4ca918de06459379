"""Slot claims: who runs replica (job, index), and which claim wins a conflict.

The rule, in full (everything else calls the functions here):

1. Which claim wins.  When a node accepts an award it writes a `Claim`
   (slot, ballot, node) into the replicated claims map (a gossip.lww.LwwMap
   held by the node core, merged like the job store).  Two claims for one
   slot are ordered by `Claim.beats`, a total order:
   (ballot round, ballot coordinator, node, released), and for claims equal
   in all of those (only forged or corrupted ones) the entry hash.  The
   greater wins everywhere it spreads, so after any partition merge every
   agent agrees on one winning claim per slot.
2. Ballots never repeat.  A re-auction uses the next round (`next_round`:
   one above both the slot's current claim and the last round this agent
   used), so its claim supersedes the old one.  Two coordinators never award
   the same (slot, ballot), because the coordinator is part of the ballot;
   and one coordinator never twice, because the ballot names the
   coordinator's *run* (`name#<its start time>`, node.core.node_core): a
   coordinator that crashes after an award and restarts before hearing of
   the claim has lost count of its rounds, but not its new identity.
3. Giving a slot back.  A holder (scale-down, job stopped, crash-looping),
   or the coordinator of a slot no longer desired whose holder is gone,
   writes a *released* copy of the claim under the next round
   (`release_of`), which beats the claim it releases.  A released claim
   holds nothing (`live` is None).
4. Who stops which copy after a merge.  A node holds a slot exactly while
   the winning claim is live and names it (`holds`).  Whenever the winner
   names someone else (a newer ballot won the merge) or was released, the
   node stops its copy (`stop_reason` says why), whatever it was told
   before: a released slot at once, one that went to another node once that
   node is known to run it (auction.merge_rule, which bounds the wait); the
   winner's node keeps or starts its copy.  On one node, a container whose
   ballot (`ballot_label`) differs from the winning claim's is a stale copy
   and is replaced.  So at most one copy per slot survives once the merge
   has spread and the winners run.

Pure value types and functions; the map machinery is gossip.lww.LwwMap.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

from .ports import MAX_PORT, MAX_PORTS, MIN_PORT, label_problem
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

    def next_for(self, coordinator: str) -> Ballot:
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
    # The host ports the holder gave this replica, (label, port) sorted by
    # label (auction.ports); () for a job without ports, and on the wire
    # only when non-empty, so such claims encode as they did before ports.
    ports: tuple[tuple[str, int], ...] = ()

    @property
    def deleted(self) -> bool:
        return self.released

    @property
    def job(self) -> str:
        return parse_slot_key(self.name)[0]

    @property
    def index(self) -> int:
        return parse_slot_key(self.name)[1]

    def order_key(self) -> tuple[int, str, str, bool]:
        return (self.ballot.round, self.ballot.coordinator, self.node, self.released)

    def beats(self, other: Claim) -> bool:
        """Does this claim win over `other` for the same slot (rule 1)?"""
        if self.order_key() != other.order_key():
            return self.order_key() > other.order_key()
        return self.entry_hash() > other.entry_hash()

    def entry_hash(self) -> bytes:
        h = hashlib.blake2b(digest_size=16)
        h.update(repr(self.to_wire()).encode())
        return h.digest()

    def to_wire(self) -> list[Any]:
        d = self.demand
        wire: list[Any] = [self.name, self.ballot.round, self.ballot.coordinator, self.node, self.released,
                           self.spec_hash, d.cpu_millis, d.memory_bytes, d.disk_bytes]
        if self.ports:
            wire.append([[label, port] for label, port in self.ports])
        return wire

    @classmethod
    def from_wire(cls, raw: object) -> Claim:
        if not isinstance(raw, (list, tuple)) or len(raw) not in (9, 10):
            raise ValueError("malformed claim")
        name, rnd, coord, node, released, spec_hash, cpu, mem, disk = raw[:9]
        ports = _ports(raw[9]) if len(raw) == 10 else ()
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
        return cls(name, Ballot(rnd, coord), node, released, spec_hash, Resources(cpu, mem, disk), ports)


def _ports(raw: object) -> tuple[tuple[str, int], ...]:
    """A claim's (label, host port) pairs from the wire; ValueError if malformed."""
    if not isinstance(raw, (list, tuple)) or not 0 < len(raw) <= MAX_PORTS:
        raise ValueError("malformed claim ports")
    out = []
    for pair in raw:
        if not (isinstance(pair, (list, tuple)) and len(pair) == 2 and isinstance(pair[0], str)
                and label_problem(pair[0]) is None and isinstance(pair[1], int)
                and not isinstance(pair[1], bool) and MIN_PORT <= pair[1] <= MAX_PORT):
            raise ValueError("malformed claim port")
        out.append((pair[0], pair[1]))
    if len({label for label, _ in out}) != len(out):
        raise ValueError("duplicate claim port label")
    return tuple(sorted(out))


def live(claim: Claim | None) -> Claim | None:
    """The slot's winning claim if it holds the slot (not released), else None."""
    return None if claim is None or claim.released else claim


def holds(claim: Claim | None, node: str) -> bool:
    """Does `node` run the slot whose winning claim is `claim` (rule 4)?"""
    return claim is not None and not claim.released and claim.node == node


def next_round(current: Claim | None, last_used: int) -> int:
    """The round of the next ballot for a slot (rule 2): above the slot's
    winning claim and above every round this agent has used for it."""
    return max(current.ballot.round if current is not None else 0, last_used) + 1


def release_of(claim: Claim, round: int, coordinator: str) -> Claim:
    """The released copy of `claim` under ballot (round, coordinator) (rule 3).
    It holds nothing, so it keeps no ports."""
    return Claim(claim.name, Ballot(round, coordinator), claim.node, True, claim.spec_hash,
                 claim.demand)


def stop_reason(winner: Claim | None) -> str:
    """Why a node stops its copy of a slot it no longer holds (rule 4)."""
    live_winner = live(winner)
    if live_winner is None:
        return "released"
    return f"superseded by {live_winner.node} (ballot {live_winner.ballot.round})"


def ballot_label(claim: Claim) -> str:
    """The ballot as a container records it ("round/coordinator"): a copy
    whose label differs from the winning claim's is stale (rule 4)."""
    return f"{claim.ballot.round}/{claim.ballot.coordinator}"
