"""Hybrid logical clock stamps for last-writer-wins cluster state.

How this works: a stamp is (wall_ms, counter, node).  `tick` gives a stamp
greater than every stamp this clock has issued or observed: it follows the
wall clock when that moves forward and bumps the counter when it does not,
so two writes on one node are always ordered even if the wall clock steps
back.  `observe` folds in a stamp seen from a peer, so a later local write
beats it (causality: a delete issued after seeing a submit wins over it).
The node name breaks ties, so any two stamps are totally ordered and every
agent picks the same winner without talking.

A peer whose clock runs far ahead would make its writes win for as long as
it is ahead; we do not adopt stamps more than `max_skew_ms` ahead of our own
wall clock (they still merge, they just do not drag our clock along).
Pure: the caller passes the wall clock in.
"""

from __future__ import annotations

from dataclasses import dataclass

DEFAULT_MAX_SKEW_MS = 60_000


@dataclass(frozen=True, slots=True, order=True)
class Stamp:
    wall_ms: int
    counter: int
    node: str

    def to_wire(self) -> list[object]:
        return [self.wall_ms, self.counter, self.node]

    @classmethod
    def from_wire(cls, raw: object) -> "Stamp":
        if (not isinstance(raw, (list, tuple)) or len(raw) != 3 or not isinstance(raw[0], int)
                or not isinstance(raw[1], int) or not isinstance(raw[2], str)
                or raw[0] < 0 or raw[1] < 0 or len(raw[2]) > 512):
            raise ValueError("malformed stamp")
        return cls(raw[0], raw[1], raw[2])


ZERO = Stamp(0, 0, "")


class HybridClock:
    __slots__ = ("node", "last", "max_skew_ms")

    def __init__(self, node: str, max_skew_ms: int = DEFAULT_MAX_SKEW_MS) -> None:
        self.node = node
        self.last = ZERO
        self.max_skew_ms = max_skew_ms

    def tick(self, wall_ms: int) -> Stamp:
        if wall_ms > self.last.wall_ms:
            self.last = Stamp(wall_ms, 0, self.node)
        else:
            self.last = Stamp(self.last.wall_ms, self.last.counter + 1, self.node)
        return self.last

    def observe(self, stamp: Stamp, wall_ms: int) -> None:
        if stamp.wall_ms - wall_ms > self.max_skew_ms:
            return
        if (stamp.wall_ms, stamp.counter) > (self.last.wall_ms, self.last.counter):
            self.last = Stamp(stamp.wall_ms, stamp.counter, self.node)
