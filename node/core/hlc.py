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
it is ahead, and a forged stamp far in the future would win for ever (a
stamp of 2^62 ms beats every honest write until the year 146 million).  So
`max_skew_ms` (DEFAULT_MAX_SKEW_MS, one minute) bounds what we accept: a
stamp more than that ahead of our wall clock is refused where state is
merged (node.core.admission), and never adopted by `observe`.  The wall
clock the core passes to `tick` and `observe` is cluster time: its own,
corrected towards the median of its peers' clocks once it is seconds off
(node.core.cluster_clock), so a node whose clock drifted or booted wrong
neither stamps writes its peers refuse nor refuses theirs.  Honest agents
run NTP and are milliseconds apart, and see no correction; one minute
leaves room for estimates that differ, and is how far ahead a member
holding the key can push its writes (plus what it can shift our cluster
time by, at most cluster_clock.MAX_CORRECTION_MS, and only by speaking
for most members).

Decoding (`Stamp.from_wire`) refuses what could not be re-encoded or would
overflow as it grows: wall_ms must fit 63 bits, and the counter, which
`tick` bumps, 32 bits.  `observe` adopts no counter of MAX_ADOPTED_COUNTER
or more, so our own counter stays far from that bound.
Pure: the caller passes the wall clock in.
"""

from __future__ import annotations

from dataclasses import dataclass

DEFAULT_MAX_SKEW_MS = 60_000
MAX_WALL_MS = (1 << 63) - 1  # msgpack's signed range; skew refuses far less at merge
MAX_COUNTER = (1 << 32) - 1
# A counter grows by one per write within one millisecond; 2^31 is never
# honest, and leaves 2^31 ticks of room below MAX_COUNTER.
MAX_ADOPTED_COUNTER = 1 << 31


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
                or not 0 <= raw[0] <= MAX_WALL_MS or not 0 <= raw[1] <= MAX_COUNTER
                or len(raw[2]) > 512):
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
        if stamp.wall_ms - wall_ms > self.max_skew_ms or stamp.counter >= MAX_ADOPTED_COUNTER:
            return
        if (stamp.wall_ms, stamp.counter) > (self.last.wall_ms, self.last.counter):
            self.last = Stamp(stamp.wall_ms, stamp.counter, self.node)


def base36(n: int) -> str:
    """n >= 0 in base 36: how a node names one run of itself by its start
    time in wall ms (its ballot id, node.core.node_core)."""
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    out = ""
    while True:
        n, r = divmod(n, 36)
        out = digits[r] + out
        if n == 0:
            return out
