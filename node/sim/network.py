"""The simulated network: delay, loss, duplication, partitions, per-link rules.

How this works: nothing is ever sent anywhere.  The world asks the network,
once per datagram, "if node `src` sends to node `dst` now, when does it
arrive?" and gets back a delay in seconds, or None when the datagram is lost.
Reordering is not a separate knob: two datagrams on the same link draw
independent jitter, so a later one can overtake an earlier one.  Duplication
is decided by the world with `duplicate()`, and the copy draws its own delay.

Streams (TCP) are reliable, but not immune to loss: a stream's data arrives
after a handshake, modelled as three one-way segments (SYN, SYN-ACK, ACK +
data), its reply after one more, and each segment is lost with the link's
loss probability and then resent after TCP's retransmission timeout, as
Linux does (1 s for SYN and SYN-ACK, 0.2 s for data, doubling on each
repeat).  At 20 % loss a quarter of the TCP fallback pings thus come a second
late, as they do on a real lossy link.  Partitions and downed links stop
streams entirely: `stream_delay()` returns None when the two nodes cannot
reach each other, and the world then reports the stream as failed after its
timeout.

A partition is a list of groups of node indices; a node in no listed group is
in one extra group with every other unlisted node.  Traffic between different
groups is dropped.  Per-link rules (`set_link`) override loss and add delay on
one directed link, or cut it (`down=True`), which also gives asymmetric
partitions.

Every random draw comes from the `random.Random` the world hands in, so a seed
replays the same losses and delays.  The hot path (`datagram_delay`) skips the
partition and link lookups entirely while none are set.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Iterable

# Linux's initial retransmission timeouts: 1 s for a SYN (and SYN-ACK),
# TCP_RTO_MIN 0.2 s for data on a fresh low-latency connection.
SYN_RTO_S = 1.0
DATA_RTO_S = 0.2


@dataclass(slots=True)
class NetworkConfig:
    # One-way delay = base_delay_s + jitter, jitter ~ Exponential(mean=jitter_s).
    base_delay_s: float = 0.0005
    jitter_s: float = 0.0005
    loss: float = 0.0  # probability a datagram is dropped
    duplicate: float = 0.0  # probability a delivered datagram arrives twice
    # Datagrams larger than this are dropped (IPv4 UDP payload limit).
    max_datagram_bytes: int = 65507


@dataclass(slots=True)
class LinkRule:
    """Overrides for one directed link src -> dst."""

    loss: float | None = None  # replaces the global loss if set
    extra_delay_s: float = 0.0
    down: bool = False  # drop everything, streams included


class Network:
    def __init__(self, config: NetworkConfig, rng: random.Random, n_nodes: int) -> None:
        self.config = config
        self.rng = rng
        self.n_nodes = n_nodes
        self._group: list[int] | None = None  # group id per node while partitioned
        self._links: dict[tuple[int, int], LinkRule] = {}
        # The world sets this so partitions are logged with their times.
        self.clock = lambda: 0.0
        # [group per node, start, end or None] for every partition so far.
        self.partition_log: list[list] = []
        self._refresh()

    # ---- knobs ----------------------------------------------------------
    def _refresh(self) -> None:
        c = self.config
        self._base = c.base_delay_s
        self._jitter_rate = 1.0 / c.jitter_s if c.jitter_s > 0 else 0.0
        self._loss = c.loss
        self._dup = c.duplicate
        self._simple = self._group is None and not self._links

    def set_loss(self, loss: float) -> None:
        self.config.loss = loss
        self._refresh()

    def set_duplicate(self, prob: float) -> None:
        self.config.duplicate = prob
        self._refresh()

    def set_delay(self, base_delay_s: float, jitter_s: float) -> None:
        self.config.base_delay_s = base_delay_s
        self.config.jitter_s = jitter_s
        self._refresh()

    def partition(self, groups: Iterable[Iterable[int]]) -> None:
        """Split the network: traffic only flows within a group."""
        extra = -1
        group = [extra] * self.n_nodes
        for gid, members in enumerate(groups):
            for i in members:
                group[i] = gid
        self._end_partition()
        self._group = group
        self.partition_log.append([group, self.clock(), None])
        self._refresh()

    def heal(self) -> None:
        """Remove the partition (per-link rules stay)."""
        self._end_partition()
        self._group = None
        self._refresh()

    def _end_partition(self) -> None:
        if self._group is not None and self.partition_log and self.partition_log[-1][2] is None:
            self.partition_log[-1][2] = self.clock()

    def cut_since(self, a: int, b: int, t: float) -> bool:
        """Whether a and b were on different sides of a partition at any time >= t."""
        for group, _start, end in reversed(self.partition_log):
            if end is not None and end < t:
                break
            if group[a] != group[b]:
                return True
        return False

    def set_link(self, src: int, dst: int, *, loss: float | None = None,
                 extra_delay_s: float = 0.0, down: bool = False, symmetric: bool = False) -> None:
        rule = LinkRule(loss=loss, extra_delay_s=extra_delay_s, down=down)
        self._links[(src, dst)] = rule
        if symmetric:
            self._links[(dst, src)] = rule
        self._refresh()

    def clear_link(self, src: int, dst: int, *, symmetric: bool = False) -> None:
        self._links.pop((src, dst), None)
        if symmetric:
            self._links.pop((dst, src), None)
        self._refresh()

    def clear_links(self) -> None:
        self._links.clear()
        self._refresh()

    # ---- queries ----------------------------------------------------------
    @property
    def partitioned(self) -> bool:
        return self._group is not None

    def same_side(self, a: int, b: int) -> bool:
        g = self._group
        return g is None or g[a] == g[b]

    def reachable(self, src: int, dst: int) -> bool:
        """Whether a stream from src to dst can be established right now."""
        if self._simple:
            return True
        g = self._group
        if g is not None and g[src] != g[dst]:
            return False
        rule = self._links.get((src, dst))
        return rule is None or not rule.down

    def one_way_delay(self) -> float:
        r = self._jitter_rate
        return self._base + (self.rng.expovariate(r) if r else 0.0)

    def datagram_delay(self, src: int, dst: int, size: int) -> float | None:
        """Delay for one datagram, or None if it is dropped."""
        rng = self.rng
        loss = self._loss
        extra = 0.0
        if not self._simple:
            g = self._group
            if g is not None and g[src] != g[dst]:
                return None
            rule = self._links.get((src, dst))
            if rule is not None:
                if rule.down:
                    return None
                if rule.loss is not None:
                    loss = rule.loss
                extra = rule.extra_delay_s
        if size > self.config.max_datagram_bytes:
            return None
        if loss and rng.random() < loss:
            return None
        r = self._jitter_rate
        return self._base + extra + (rng.expovariate(r) if r else 0.0)

    def duplicate(self) -> bool:
        return bool(self._dup) and self.rng.random() < self._dup

    def _link_loss_and_delay(self, src: int, dst: int) -> tuple[float, float]:
        loss, extra = self._loss, 0.0
        if not self._simple:
            rule = self._links.get((src, dst))
            if rule is not None:
                extra = rule.extra_delay_s
                if rule.loss is not None:
                    loss = rule.loss
        return loss, extra

    def _retransmit_wait(self, loss: float, rto_s: float) -> float:
        """Extra time a TCP segment takes when it (and maybe its resends) is
        lost: one retransmission timeout per loss, doubling each time."""
        wait = 0.0
        while loss and self.rng.random() < loss:
            wait += rto_s
            rto_s *= 2
        return wait

    def stream_delay(self, src: int, dst: int) -> float | None:
        """Time for a stream's data to reach dst (handshake included), or None."""
        if not self.reachable(src, dst):
            return None
        loss, extra = self._link_loss_and_delay(src, dst)
        t = self.one_way_delay() + self.one_way_delay() + self.one_way_delay() + 3 * extra
        if loss:
            t += (self._retransmit_wait(loss, SYN_RTO_S) + self._retransmit_wait(loss, SYN_RTO_S)
                  + self._retransmit_wait(loss, DATA_RTO_S))
        return t

    def reply_delay(self, src: int, dst: int) -> float | None:
        """Time for a stream reply from src back to dst, or None if cut."""
        if not self.reachable(src, dst):
            return None
        loss, extra = self._link_loss_and_delay(src, dst)
        return self.one_way_delay() + extra + (self._retransmit_wait(loss, DATA_RTO_S) if loss else 0.0)
