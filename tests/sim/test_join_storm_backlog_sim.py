"""After a join storm, a broadcast is not held behind the members' own news.

450 simulated nodes (`lan`) join node-0 at once.  Each fresh joiner learns
node-0's members from its join reply; memberlist would gossip every one of
them again, retransmit_limit(n) times, though the whole cluster knows them
(gossip.swim_sync, "A fresh joiner").  Those copies filled every queue
(449 broadcasts queued per node 8 virtual s in, against 167 without them),
and a user broadcast made then took 3.66 and 2.20 virtual s to reach every
node in seeds 1 and 2; without them 1.00 s in both.  At 1,000 nodes every
node saw all others alive at 15-21 virtual s, and at 3.6 s without them
(docs/benchmarks.md).
"""

from __future__ import annotations

import pytest

from gossip.config import LAN
from gossip.events import UserBroadcast
from node.sim import World, checkers

NODES = 450
BOUND_S = 1.6


@pytest.mark.parametrize("seed", [1, pytest.param(2, marks=pytest.mark.large)])  # ~8 s of CPU each
def test_a_broadcast_right_after_a_join_storm_reaches_every_node_quickly(seed):
    w = World(seed, NODES, LAN.replace(enable_compression=False), keep_trace=False)
    tracker = checkers.ViewTracker(w)
    w.bootstrap()
    w.run_until(8.0)
    assert tracker.all_alive()
    seen = checkers.FirstSeen(w, lambda ev: ev.__class__ is UserBroadcast and ev.data == b"after")
    t0 = w.now
    w.broadcast(NODES // 2, b"after")
    took = w.run_until_converged(lambda _: seen.count() >= NODES - 1, timeout=10.0, check_every=0.05)
    assert took is not None, f"reached {seen.count()} of {NODES - 1} in 10 s"
    assert max(seen.t.values()) - t0 <= BOUND_S
