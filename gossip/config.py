"""Gossip timing and sizing, with the three presets.

How this works: a `GossipConfig` is a frozen bag of numbers.  The presets
mirror memberlist's DefaultLANConfig / DefaultWANConfig / DefaultLocalConfig so
a shoal agent and a Serf agent on the same profile detect failures on the same
clock.  The derived timeouts are functions of the cluster size n and are
computed here, in one place, so the core, the simulator and the docs agree:

- retransmit limit      = retransmit_mult * ceil(log10(n + 1))
- suspicion min timeout = suspicion_mult * max(1, log10(max(1, n))) * probe_interval_s
- suspicion max timeout = suspicion_max_timeout_mult * suspicion min timeout
- push/pull interval    = push_pull_interval_s, scaled up by
                          ceil(log2(n) - log2(32)) + 1 once n > 32 (memberlist's
                          pushPullScale), so anti-entropy cost stays flat per node
- probe timeout / interval under Lifeguard awareness = base * (1 + health score)
- time to declare a dead member dead, nobody confirming (gossip.awareness):
  detection_bound_s(n, h) = 2 (n - 1) (h + 1) probe_interval_s
                            + suspicion max timeout, h <= awareness_max_multiplier - 1
- dead ping interval    = probe_interval_s * max(1, n / DEAD_PING_FANIN)
                          (gossip.swim_heal), so the whole cluster sends about
                          DEAD_PING_FANIN pings to failed members per probe
                          interval, however large it is
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

from . import limits

PUSH_PULL_SCALE_THRESHOLD = 32
# Dead pings (gossip.swim_heal): up to this many nodes each ping a failed
# member every probe interval; a larger cluster stretches each node's interval
# so the cluster as a whole sends no more.  After a heal the first ping
# across takes about probe_interval_s / min(n, DEAD_PING_FANIN).
DEAD_PING_FANIN = 8

# Protocol versions we advertise: memberlist pmin/pmax/pcur and Serf's delegate
# versions, so a stock Serf agent accepts our push/pull (its verifyProtocol
# checks every node's pcur/dcur falls within everyone's [min, max]).
PROTOCOL_MIN = 1
PROTOCOL_MAX = 5
PROTOCOL_CUR = 2
DELEGATE_MIN = 2
DELEGATE_MAX = 5
DELEGATE_CUR = 4
VSN = (PROTOCOL_MIN, PROTOCOL_MAX, PROTOCOL_CUR, DELEGATE_MIN, DELEGATE_MAX, DELEGATE_CUR)

# The size bounds live in gossip.limits, with their reasons; these two are
# also read from here (by the agent's config and tags).
META_MAX_BYTES = limits.META_MAX_BYTES
LABEL_MAX_BYTES = limits.LABEL_MAX_BYTES



@dataclass(frozen=True, slots=True)
class GossipConfig:
    profile: str
    # Probing (SWIM failure detector)
    probe_interval_s: float
    probe_timeout_s: float
    indirect_checks: int
    disable_tcp_pings: bool
    # Suspicion (Lifeguard)
    suspicion_mult: int
    suspicion_max_timeout_mult: int
    awareness_max_multiplier: int
    # Dissemination
    retransmit_mult: int
    gossip_interval_s: float
    gossip_nodes: int
    gossip_to_the_dead_s: float
    # Anti-entropy
    push_pull_interval_s: float
    # A push/pull with one random member this long after joining, so a node
    # that joined while others were still joining learns of them without
    # waiting a whole push_pull_interval_s (Serf's N=60 joins can leave one
    # member unseen until the next periodic push/pull).  Repeated every
    # post_join_sync_s, up to post_join_syncs times in all, for as long as
    # the number of members we know keeps changing between two of them
    # (joining into a settled cluster costs one).
    post_join_sync_s: float
    post_join_syncs: int
    tcp_timeout_s: float
    # A failed member's name may be taken by a different address after this
    # long (memberlist's DeadNodeReclaimTime); a member that left may be
    # replaced at once.
    dead_node_reclaim_s: float
    # Serf-style reconnect: every reconnect_interval_s, push/pull with one
    # random failed member, so two sides of a healed partition find each
    # other again even when no gossip is in flight.
    reconnect_interval_s: float
    # Failed and left members are kept as tombstones this long (so they can
    # be reconnected to and their death spreads by push/pull), then forgotten.
    tombstone_keep_s: float
    # Bounds
    packet_budget_bytes: int = limits.UDP_PACKET_BUDGET_BYTES
    broadcast_queue_max: int = 4096
    # UDP compression: memberlist compresses when it makes the packet
    # smaller; we only try for packets at least this big because LZW in pure
    # Python costs CPU and a small ping never shrinks.
    enable_compression: bool = True
    compress_min_bytes: int = 512
    # Push/pulls (TCP) are compressed from this size on; memberlist
    # compresses every one.  LZW in pure Python costs about 0.1 ms per KB
    # on each side, and a push/pull is swapped once per push/pull interval
    # per node, plus at joins: a 60-member one (9 KB, 2 KB compressed) cost
    # its two ends some 3 ms of CPU for 7 KB not sent, and 60 agents started
    # at once on 2 cores swapped ~250 of them (their seed's joins waiting
    # behind it).  A push/pull carries ~150 B per member with its payload,
    # so this keeps compression from about 450 members up, where one
    # exchange is large enough for its bytes to matter.  The wan preset
    # compresses every one, as memberlist does: its links may be slow.
    push_pull_compress_min_bytes: int = 64 * 1024

    # ---- derived values (formulas in the module docstring) -------------
    def retransmit_limit(self, n: int) -> int:
        return self.retransmit_mult * math.ceil(math.log10(n + 1))

    def suspicion_base_min_timeout_s(self) -> float:
        """The shortest suspicion timeout before its cluster-size factor
        (what a cluster of 10 members or fewer uses)."""
        return self.suspicion_mult * self.probe_interval_s

    def suspicion_min_timeout_s(self, n: int) -> float:
        node_scale = max(1.0, math.log10(max(1, n)))
        return node_scale * self.suspicion_base_min_timeout_s()

    def suspicion_max_timeout_s(self, n: int) -> float:
        return self.suspicion_max_timeout_mult * self.suspicion_min_timeout_s(n)

    def detection_bound_s(self, n: int, health_score: int | None = None) -> float:
        """Upper bound on the time from a member's death to our declaring it
        dead, with nobody left to confirm (gossip.awareness derives it), at
        a health score of at most `health_score` (default: the cap)."""
        h = self.awareness_max_multiplier - 1 if health_score is None else health_score
        return 2 * (max(1, n) - 1) * (h + 1) * self.probe_interval_s + self.suspicion_max_timeout_s(n)

    def suspicion_confirmations_wanted(self) -> int:
        # memberlist: k = SuspicionMult - 2, at least 0.
        return max(0, self.suspicion_mult - 2)

    def push_pull_interval_for(self, n: int) -> float:
        if n <= PUSH_PULL_SCALE_THRESHOLD:
            return self.push_pull_interval_s
        mult = math.ceil(math.log2(n) - math.log2(PUSH_PULL_SCALE_THRESHOLD)) + 1
        return self.push_pull_interval_s * mult

    def dead_ping_interval_for(self, n: int) -> float:
        return self.probe_interval_s * max(1.0, n / DEAD_PING_FANIN)

    def replace(self, **changes: Any) -> GossipConfig:
        return dataclasses.replace(self, **changes)


LAN = GossipConfig(
    profile="lan",
    probe_interval_s=1.0,
    probe_timeout_s=0.5,
    indirect_checks=3,
    disable_tcp_pings=False,
    suspicion_mult=4,
    suspicion_max_timeout_mult=6,
    awareness_max_multiplier=8,
    retransmit_mult=4,
    gossip_interval_s=0.2,
    gossip_nodes=3,
    gossip_to_the_dead_s=30.0,
    push_pull_interval_s=30.0,
    post_join_sync_s=1.0,
    post_join_syncs=3,
    tcp_timeout_s=10.0,
    dead_node_reclaim_s=30.0,
    reconnect_interval_s=10.0,
    tombstone_keep_s=3600.0,
)

WAN = GossipConfig(
    profile="wan",
    probe_interval_s=5.0,
    probe_timeout_s=3.0,
    indirect_checks=3,
    disable_tcp_pings=False,
    suspicion_mult=6,
    suspicion_max_timeout_mult=6,
    awareness_max_multiplier=8,
    retransmit_mult=4,
    gossip_interval_s=0.5,
    gossip_nodes=4,
    gossip_to_the_dead_s=60.0,
    push_pull_interval_s=60.0,
    post_join_sync_s=5.0,
    post_join_syncs=3,
    tcp_timeout_s=30.0,
    dead_node_reclaim_s=60.0,
    reconnect_interval_s=30.0,
    tombstone_keep_s=3600.0,
    push_pull_compress_min_bytes=0,
)

LOCAL = GossipConfig(
    profile="local",
    probe_interval_s=0.2,
    probe_timeout_s=0.1,
    indirect_checks=1,
    disable_tcp_pings=False,
    suspicion_mult=3,
    suspicion_max_timeout_mult=6,
    awareness_max_multiplier=8,
    retransmit_mult=3,
    gossip_interval_s=0.05,
    gossip_nodes=3,
    gossip_to_the_dead_s=15.0,
    push_pull_interval_s=15.0,
    post_join_sync_s=0.3,
    post_join_syncs=3,
    tcp_timeout_s=1.0,
    dead_node_reclaim_s=5.0,
    reconnect_interval_s=2.0,
    tombstone_keep_s=600.0,
)

PRESETS = {"lan": LAN, "wan": WAN, "local": LOCAL}


def preset(name: str) -> GossipConfig:
    try:
        return PRESETS[name]
    except KeyError:
        raise ValueError(f"unknown gossip profile {name!r}; choose one of {sorted(PRESETS)}") from None
