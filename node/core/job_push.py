"""A fresh job write goes straight to the coordinators of its slots.

How this works: a job write spreads by broadcast (node.core.node_core) and
digest sync, but a slot is placed only once its coordinator
(auction.coordination) has the job.  In a large cluster the epidemic takes
several gossip rounds to reach a given member, and while placement churns the
broadcast queues are full of fresh claims that go out first (gossip.broadcast
sends the least-transmitted first): in placement_sim at 1,000 nodes the last
coordinators heard of a job seconds after it was written.  So when the
cluster has more than PUSH_MIN_MEMBERS members, the writer also sends the
entry directly to every member that coordinates one of the job's slots under
its own view (at most one message per coordinator; a deleted job's entry goes
nowhere: its slots are released by their holders, which learn it by gossip).
A coordinator that gets it twice merges it once; one the push misses, or whose
view differs, still learns it by gossip.

In a small cluster the epidemic reaches a member in a round or two (0.2-0.4
s with `lan`), and a coordinator that misses the first copies holds its
slots until a later one: a job placed in one round (JobSpec.one_round:
one that spreads, or a small binpack job) has one coordinator
(auction.coordination), pushed to there too, one message per write.  A big
binpack job has a coordinator per chunk of its slots, and handed the job at
once they would all open their rounds at the same moment and none would see
the others' awards (8 replicas of 0.25 cpu on 6 four-core nodes landed on 4
nodes at the median, seeds 1-20, when such a job had a coordinator per
slot); such a job keeps the broadcast alone in a small cluster.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from auction.coordination import Coordination
from node.core import wire
from node.core.jobstore import Entry

if TYPE_CHECKING:
    from node.core.node_core import NodeCore

PUSH_MIN_MEMBERS = 32


def large_cluster(core: NodeCore) -> bool:
    """Where direct messages beat gossip's epidemic (here, and
    node.core.claim_relay): more than PUSH_MIN_MEMBERS members alive or
    suspect."""
    return core.swim.live_count() > PUSH_MIN_MEMBERS


class JobPush:
    """Per core: the coordinators under the last view we pushed with (kept
    from push to push, so a write does not rehash every member)."""

    def __init__(self) -> None:
        self._coordination = Coordination()

    def targets(self, core: NodeCore, entry: Entry) -> list[str]:
        """The members other than us that coordinate a slot of `entry`'s job."""
        if entry.deleted:
            return []
        spec = core.placement.spec_of(entry)
        if spec is None or not (spec.one_round or large_cluster(core)):
            return []
        alive = core.swim.alive_names()
        self._coordination.update(frozenset(alive))
        found = {self._coordination.coordinator_of(entry.name, index, spec) for index in range(spec.replicas)}
        return sorted(n for n in found if n is not None and n != core.name)

    def push(self, core: NodeCore, entry: Entry, now: float) -> None:
        targets = self.targets(core, entry)
        if not targets:
            return
        msg = wire.EntryBroadcast(entry)
        for peer in targets:
            core._send(peer, msg, now, reliable=False)  # larger than a datagram: _send uses TCP
        core._count("job_pushes")
