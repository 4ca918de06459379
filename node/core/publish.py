"""When a node publishes its status record: at most once per interval.

How this works: every change of our status record costs a broadcast to the
whole cluster, so `PublishSchedule.ask(now, digests_only)` lets a change go
out at most once per `status_min_interval_s`; a change that comes sooner is
published when that interval ends (`status_due`), together with whatever
else changed meanwhile.

`urgent`: one of our slots turned running, or failed; or a rollout moved one
of our slots to a new claim (node.core.node_core's claim writes: the
record's claims fingerprint moved, and until the new one is out, agents
holding the new claim read our other slots of that job as unknown, so the
next slots wait: 0.8 s in a batch of tests/sim/test_rollout_pace_sim.py's
scene, seed 3).  Other agents wait on exactly that word (a rolling
update's next step counts min_healthy_s from when it sees a replacement
run; a coordinator re-places a failed slot), so such a change waits only
`status_slot_min_interval_s` since the last publication (on the testbed the
1 s interval was half of the time from a container running to the cluster
knowing it).  A node whose slots come up one by one still publishes at most
once per that shorter interval.

`repeat`: that change is about a job being rolled out here.  It goes out
again `status_repeat_s` later, as a fresh version with whatever is current:
the gossip layer's epidemic has a small chance of missing a member (about
1 record in 30 on 5 simulated nodes, whose limit of 4 transmissions per
holder can all go to members that have it), and that member's rollout then
waits for this node's next publication, which may come only with the
digests, seconds later (3.2 s in tests/sim/test_rollout_pace_sim.py's
scene, seed 1, with the whole cluster waiting on it).  Rollouts move at most
max_parallel slots at once, so this costs a few broadcasts.
The same goes for a change in which of our slots run (one came up, stopped,
or turned unhealthy or healthy again: `status.listing_moved`): every
agent's service catalog lists exactly the running slots, and a member that
missed the record listed a replica that passed its health check again, or
kept listing one that failed, until push/pull (~9 s later in
tests/sim/test_catalog_sim.py's scene, seeds 39 and 268 of 16 nodes; about
1 change in 60 missed some member there).  A node whose slots move one
after the other repeats only its last publication: each one re-arms the
same deadline.

`digests_only`: all that changed is the job-store or claims digest.  Those
only steer anti-entropy (whom to sync with) and tombstone collection, and
while placement churns they move on every agent with every claim anywhere,
so publishing them at once cost one broadcast per agent per
status_min_interval_s: in placement_sim at 500 nodes, about 450 status
broadcasts a second, each relayed ~12 times by every node, on a gossip layer
whose queues then held ~1,600 messages per node and delivered suspicions of
crashed nodes seconds late.  Such changes now wait until the digests are
still for status_digest_quiet_s (at most status_digest_max_delay_s after the
first one, `digests_due`), and ride along for free with any other change
published meanwhile.  A stale digest in a peer's view only makes a sync less
targeted.

The owner (`NodeCore`) asks before every publication, includes both
deadlines in its `next_deadline()`, and asks again (clearing the deadline
first) once one has passed.
"""

from __future__ import annotations

from node.core.config import ClusterConfig


class PublishSchedule:
    __slots__ = ("cfg", "digests_due", "digests_moved_since", "published_at", "repeat_waiting", "status_due",
                 "urgent_waiting")

    def __init__(self, cfg: ClusterConfig) -> None:
        self.cfg = cfg
        self.published_at: float | None = None
        self.status_due: float | None = None  # a change waits for the interval to end
        self.digests_due: float | None = None  # digest-only changes wait until then
        self.digests_moved_since: float | None = None  # first unpublished digest change
        self.urgent_waiting = False  # an urgent change waits for status_due
        self.repeat_waiting = False  # ... and is published again status_repeat_s after it went

    def ask(self, now: float, digests_only: bool, urgent: bool = False, repeat: bool = False) -> bool:
        """True: publish now (recorded as done).  False: not yet; a deadline
        says when to ask again."""
        cfg = self.cfg
        self.repeat_waiting = self.repeat_waiting or repeat
        interval = cfg.status_min_interval_s
        if urgent or self.urgent_waiting:
            interval = min(interval, cfg.status_slot_min_interval_s)
        earliest = now if self.published_at is None else self.published_at + interval
        if digests_only:
            if self.digests_moved_since is None:
                self.digests_moved_since = now
            self.digests_due = max(earliest, min(now + cfg.status_digest_quiet_s,
                                                 self.digests_moved_since + cfg.status_digest_max_delay_s))
            if self.digests_due > now:
                return False
        elif now < earliest:
            self.status_due = earliest if self.status_due is None else min(self.status_due, earliest)
            self.urgent_waiting = self.urgent_waiting or urgent
            return False
        self.published_at = now
        self.urgent_waiting = False
        self.status_due = None
        self.digests_due = None
        self.digests_moved_since = None
        if self.repeat_waiting:
            self.repeat_waiting = False
            self.status_due, self.urgent_waiting = now + cfg.status_repeat_s, True
        return True
