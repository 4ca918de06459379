"""A simulation that starts from a formed cluster (World.start_formed).

Studies of failures, partitions or placement at a size start where a join
storm ends: every node holding every other alive, nothing left to gossip.
Forming by a real storm costs O(N^2 log N) alive messages (~30 s of CPU at
1,000 nodes); starting formed costs a member record per pair.  These tests
check that such a start is the state a storm leaves: all views full, quiet
(probes only, the push/pull timer set for the cluster's size, not for a
cluster of one), and that it then finds a crash as a joined cluster does.
"""

from __future__ import annotations

from gossip.config import preset
from gossip.events import MemberJoined
from node.sim import World, checkers

N = 60


def _formed(seed: int, n: int = N) -> tuple[World, checkers.ViewTracker, list]:
    w = World(seed, n, preset("lan"))
    tracker = checkers.ViewTracker(w)
    joined = checkers.FirstSeen(w, lambda ev: ev.__class__ is MemberJoined)
    w.start_formed()
    return w, tracker, joined


def test_every_node_starts_holding_every_other_alive():
    w, tracker, joined = _formed(1)
    assert tracker.all_alive()
    assert checkers.all_agree_alive(w)
    assert all(nd.core.live_count() == N for nd in w.running())
    assert joined.count() == 0  # the start says so once per node, not once per member
    assert [e for e in w.trace if e[2] == "formed"] == [(0.0, i, "formed", f"node-{i}", N - 1) for i in range(N)]


def test_a_formed_cluster_is_quiet_until_its_first_push_pull():
    w, tracker, _ = _formed(2)
    w.run_until(40.0)
    # Probes and their acks only: nothing was queued to gossip ...
    assert w.stats["datagrams_sent"] <= 2 * N * 40 * 1.05
    assert sum(nd.core.stats().get("gossip_sent", 0) for nd in w.running()) == 0
    # ... and no push/pull yet: at 60 nodes the interval is 60 s, times
    # 0.75-1.25, where a cluster of one would have pushed/pulled by 37.5 s.
    assert w.stats["streams_opened"] == 0
    assert checkers.all_agree_alive(w) and tracker.all_alive()


def test_a_formed_cluster_finds_a_crash_and_agrees():
    for seed in (3, 4):
        w, _, _ = _formed(seed)
        false_deaths = checkers.FalseDeathDetector(w)
        w.run_until(3.0)
        w.crash("node-17")
        bound = checkers.failure_detection_bound(w.config, N)
        w.run_until_converged(lambda w: checkers.dead_everywhere(w, "node-17"), bound, check_every=0.1)
        assert checkers.dead_everywhere(w, "node-17"), seed
        assert false_deaths.false_deaths == [], seed
        assert checkers.all_agree_alive(w), checkers.disagreements(w)  # the survivors, among themselves


def test_a_formed_start_replays_from_its_seed():
    def digest(seed: int) -> str:
        w = World(seed, 30, preset("lan"), keep_trace=False)
        w.start_formed()
        w.run_until(20.0)
        w.crash("node-3")
        w.run_until(40.0)
        return w.trace_digest()

    assert digest(5) == digest(5)
    assert digest(5) != digest(6)


def _formed_agents(seed: int, n: int = 30):
    from gossip.config import LAN
    from node.sim.cluster import ClusterSim

    sim = ClusterSim(seed, n, LAN.replace(enable_compression=False))
    sim.start_formed()
    return sim


def test_formed_agents_start_holding_every_status_and_place_at_once():
    # Whole agents (ClusterSim) start formed too: besides the members, each
    # holds every other's status record as published at its start, so it
    # can place at once (a status arriving by gossip only later would leave
    # the node out of every round until then: "no status yet", auction.membership).
    from auction.spec import validate

    n = 30
    sim = _formed_agents(5, n)
    w = sim.world
    assert all(len(w.core(i).live_statuses()) == n for i in range(n))
    assert sum(w.stats[k] for k in ("datagrams_sent", "streams_opened")) == 0
    spec = validate({"name": "web", "image": "busybox", "replicas": 2 * n, "cpu": "100m", "memory": "64MiB",
                     "strategy": "spread"})
    sim.submit(7, spec)
    took = w.run_until_converged(lambda _: not sim.placement_problems([spec]), 5, check_every=0.05)
    assert took is not None and took <= 1.0, took
    assert sorted(len(sim.running[i]) for i in range(n)) == [2] * n   # spread: every node was a candidate
    assert not sim.violations


def test_formed_agents_replay_from_their_seed():
    digests = []
    for _ in range(2):
        sim = _formed_agents(6, 12)
        sim.world.run_for(5)
        digests.append(sim.world.trace_digest())
    assert digests[0] == digests[1]
