"""The node core's settings (the agent's `[cluster]` table) and fixed bounds.

How this works: `ClusterConfig` is a frozen dataclass handed to `NodeCore`;
the agent builds it from its config file, the simulator and tests directly.
The module constants are bounds no deployment needs to tune.
"""

from __future__ import annotations

from dataclasses import dataclass

BROADCAST_ENTRY_MAX_BYTES = 900  # larger writes spread by digest sync only
PLACEMENT_KICK_S = 0.02  # coalesce bursts of changes into one placement pass
SYNC_MESSAGE_MAX_BYTES = 1 << 20
UDP_USER_MAX_BYTES = 1200  # auction messages larger than this go over TCP


@dataclass(frozen=True, slots=True)
class ClusterConfig:
    store_sync_interval_s: float = 2.0
    # Every status change is a cluster-wide broadcast; coalesce changes
    # within this window (allocation lags by at most this much).
    status_min_interval_s: float = 1.0
    # ... but a change in which of our slots run or failed, which others
    # wait on (rollout pacing, re-placement), waits only this long.
    status_slot_min_interval_s: float = 0.2
    # ... and, for a job being rolled out or a slot that started or stopped
    # running, again this long after it went (gossip may miss a member now
    # and then; the rollout and every service catalog wait on it).
    status_repeat_s: float = 0.5
    # A change of the job-store or claims digest alone (we merged a job or a
    # claim) is published once the digests have not moved for this long, and
    # at the latest status_digest_max_delay_s after the first such change.
    # While placement churns, every claim moves every agent's claims digest:
    # publishing each move would be one broadcast per agent per
    # status_min_interval_s, which at hundreds of agents is far more than
    # gossip can carry (see node.core.publish).
    status_digest_quiet_s: float = 2.0
    status_digest_max_delay_s: float = 30.0
    # Status records are also pulled from a random peer every
    # store_sync_interval_s for this long after another node's record last
    # reached us (node.core.status_sync): gossip leaves a few members
    # without some record for seconds while a large deploy fills its queues.
    status_sync_active_s: float = 20.0
    tombstone_min_age_s: float = 3600.0
    # After a restart, the claims read from disk start nothing until our
    # claims digest matches every live peer's, or this long at the latest
    # (node.core.replay: a slot may have moved while we were down); nor
    # do we re-place the slots our disk says other nodes hold.
    replay_confirm_s: float = 10.0
    max_spec_bytes: int = 64 * 1024
