"""Cluster time: how far this node's wall clock is from its live peers'.

How this works: job writes are last-writer-wins on HLC stamps taken from
the wall clock (node.core.hlc), and a peer refuses a stamp more than
`max_skew_ms` ahead of its own time (node.core.admission).  A node whose
clock is far off would break that for honest writes: one running ahead
stamps writes every peer refuses (after acknowledging them to the user),
one running behind refuses every peer's new writes.  So each node
estimates cluster time and uses it, not its raw wall clock, wherever the
core reads the wall clock.

  * samples: every push/pull of the gossip layer (each node starts one
    with a random peer every push/pull interval, both directions answer)
    carries the sender's raw wall clock in its user state (`encode_state`,
    set fresh by the core just before the gossip layer may send one).  On
    receipt, offset = peer wall - our raw wall, one per peer, the latest
    kept.  Transit only makes a peer look a little behind (milliseconds on
    a LAN; a state set at most one probe interval before it goes out).
    Peers of older versions send no state: they simply give no sample.
  * estimate: the median of the fresh (MAX_SAMPLE_AGE_S: a few push/pull
    intervals, short enough that our own drift moves no sample far)
    samples of live peers, plus ourselves at 0 (of an even count, the mean
    of the middle two), so fewer than half of them, lying or broken, cannot
    move it.  It is a function of the clocks alone, not of which one is
    ours, so every node that has heard from the same members arrives at the
    same cluster time, however the clocks are spread (two nodes meet
    halfway).  It is taken only from a quorum, samples of more than half of
    the live peers: an honest node that has heard only from a broken one
    would move halfway to it.  In a large cluster, where push/pulls reach
    few of the peers in a while, a random QUORUM_MAX of them is quorum
    enough (a broken clock is a minority of them too), and samples live
    for MAX_SAMPLE_AGE_PULLS push/pull intervals (the gossip layer spaces
    them out with the cluster's size) if that is longer than
    MAX_SAMPLE_AGE_S.  Without a quorum the last estimate holds (0 until
    the first).
  * correction: the estimate, applied only when it is at least
    CORRECT_FROM_MS (honest clocks under NTP are milliseconds apart and see
    no change at all) and at most MAX_CORRECTION_MS either way.  A slow
    node then admits honest writes, and a fast node stamps its writes in
    cluster time, so peers admit them.  Peers report their raw clocks,
    never corrected ones, so corrections do not feed on each other.
  * what is left (`ahead_ms`): a clock more than MAX_CORRECTION_MS ahead
    stays ahead after the correction; when that exceeds half the skew
    bound the core refuses job writes here (`ClockAheadError`) rather than
    acknowledge what its peers would refuse.

The cap bounds what a member holding the key can do by speaking for most
members in push/pulls (the sender's name in a push/pull is only a claim):
it can shift our cluster time by at most MAX_CORRECTION_MS, so a forged
stamp wins for at most that plus the skew bound.

Pure: the caller passes its raw wall clock, local time and the live names.
"""

from __future__ import annotations

from collections.abc import Collection

import msgpack

from node.core.hlc import MAX_WALL_MS

CORRECT_FROM_MS = 5_000
MAX_CORRECTION_MS = 3_600_000  # one hour
MAX_SAMPLE_AGE_S = 180.0  # six LAN push/pull intervals; a clock 5 % off moves a sample 9 s in it
MAX_SAMPLE_AGE_PULLS = 6
QUORUM_MAX = 5
STATE_MAX_BYTES = 256  # our push/pull user state is ~15 bytes; more is not ours


class ClockAheadError(RuntimeError):
    """A job write refused here: our clock is too far ahead of the cluster's."""


def encode_state(wall_ms: int) -> bytes:
    """Our push/pull user state: a map, so later fields can join it."""
    return bytes(msgpack.packb({"w": wall_ms}))


def decode_state(data: bytes) -> int | None:
    """The sender's wall clock in ms from its push/pull user state, or None
    if the state is not ours or malformed (other keys are ignored)."""
    if len(data) > STATE_MAX_BYTES:
        return None
    try:
        raw = msgpack.unpackb(data, strict_map_key=False)
    except (ValueError, TypeError):  # msgpack's errors are ValueErrors; an unhashable key a TypeError
        return None
    wall = raw.get("w") if isinstance(raw, dict) else None
    if type(wall) is not int or not 0 <= wall <= MAX_WALL_MS:
        return None
    return wall


class ClusterClock:
    __slots__ = ("_samples", "estimate_ms", "correction_ms", "peers")

    def __init__(self) -> None:
        self._samples: dict[str, tuple[int, float]] = {}  # peer -> (offset ms, local time taken)
        self.estimate_ms = 0  # cluster time - our raw wall clock (median)
        self.correction_ms = 0  # what the core adds to its raw wall clock
        self.peers = 0  # peers the estimate rests on

    def sample(self, peer: str, peer_wall_ms: int, our_wall_ms: int, now: float) -> None:
        self._samples[peer] = (peer_wall_ms - our_wall_ms, now)

    def update(self, live: Collection[str], now: float, max_age_s: float = MAX_SAMPLE_AGE_S) -> None:
        """Recompute from the fresh samples of the `live` peers (ourselves
        not included); forget the rest (so the samples are bounded by the
        membership)."""
        # A sample from the future: our local clock stepped back (the
        # simulator's clock jumps), so the offset it holds is wrong too.
        self._samples = {p: s for p, s in self._samples.items()
                         if p in live and 0 <= now - s[1] <= max_age_s}
        if len(self._samples) < min(len(live) // 2 + 1, QUORUM_MAX):
            return  # no quorum: the last estimate holds
        offsets = sorted([0, *(offset for offset, _ in self._samples.values())])
        self.peers = len(offsets) - 1
        middle = len(offsets) // 2
        if len(offsets) % 2:
            self.estimate_ms = offsets[middle]
        else:
            self.estimate_ms = (offsets[middle - 1] + offsets[middle]) // 2
        if abs(self.estimate_ms) < CORRECT_FROM_MS:
            self.correction_ms = 0
        else:
            self.correction_ms = max(-MAX_CORRECTION_MS, min(MAX_CORRECTION_MS, self.estimate_ms))

    @property
    def ahead_ms(self) -> int:
        """How far our corrected clock is still ahead of cluster time."""
        return max(0, self.correction_ms - self.estimate_ms)

    def write_refusal(self, max_skew_ms: int) -> str | None:
        """Why a job write is refused here, or None: our stamps would be
        refused by peers (more than half the skew bound ahead: the other
        half is room for the estimate's error)."""
        if self.ahead_ms <= max_skew_ms // 2:
            return None
        return (f"this node's clock is {self.ahead_ms / 1000:.0f} s ahead of the cluster's (the median of "
                f"{self.peers} peers), beyond what it corrects; peers would refuse its writes: fix its "
                f"clock (NTP) or write through another agent")

    def problem(self) -> str | None:
        """What to show an operator while our clock is off (None: it is not)."""
        if abs(self.estimate_ms) < CORRECT_FROM_MS:
            return None
        way = "ahead of" if self.estimate_ms < 0 else "behind"
        return (f"this node's clock is {abs(self.estimate_ms) / 1000:.0f} s {way} the cluster's (the median of "
                f"{self.peers} peers); its job stamps use cluster time: fix its clock (NTP)")

    def to_json(self, max_skew_ms: int) -> dict[str, object]:
        """For /v1/agent/self: offset_s > 0 means our clock is ahead."""
        return {"offset_s": -self.estimate_ms / 1000, "corrected_by_s": self.correction_ms / 1000,
                "peers": self.peers, "problem": self.write_refusal(max_skew_ms) or self.problem()}
