"""Lifeguard local health awareness (LHA).

How this works: a node that is itself slow (CPU starved, GC, packet loss on
its own link) misses acks and would wrongly suspect healthy peers.  Lifeguard
keeps a small integer health score: a missed nack or a failed probe raises it,
a clean direct ack lowers it, having to refute a suspicion about ourselves
raises it.  Probe timeouts and intervals are multiplied by (score + 1), so an
unhealthy node slows its own accusations instead of spreading them.
Score range is [0, max_multiplier - 1] (memberlist awareness.go).
"""

from __future__ import annotations


class Awareness:
    __slots__ = ("max_multiplier", "score")

    def __init__(self, max_multiplier: int) -> None:
        self.max_multiplier = max_multiplier
        self.score = 0

    def apply_delta(self, delta: int) -> None:
        self.score = min(max(self.score + delta, 0), self.max_multiplier - 1)

    def scale(self, timeout_s: float) -> float:
        return timeout_s * (self.score + 1)
