"""Finding a healed partition (gossip.swim_heal): dead pings and heal syncs.

On the instant network of test_swim.py, with `lan` timings: the sides of a
healed partition find each other within about a probe interval, where
Serf's reconnect alone (every 10 s with `lan`) took up to 10 s; a member
that really died costs a bare ping now and then, and a member that answers
costs one push/pull per HEAL_SYNC_GAP_PROBES probe intervals at most.
"""

from __future__ import annotations

from gossip.config import DEAD_PING_FANIN, LAN
from gossip.events import MemberState, OpenStream, StreamPurpose
from gossip.messages import Ping
from gossip.swim_heal import HEAL_SYNC_GAP_PROBES
from gossip.wire import encode
from test_swim import cluster  # same directory (pytest's default prepend import mode)

CFG = LAN.replace(enable_compression=False)


def all_alive(nodes) -> bool:
    names = {n.name for n in nodes}
    return all({m.name for m in v.members() if m.state is MemberState.ALIVE} == names for v in nodes)


def split(link, nodes, left: set[str]) -> None:
    link.apart = lambda a, b: (a in left) != (b in left)


def test_the_sides_of_a_healed_partition_find_each_other_within_two_probe_intervals():
    link, nodes = cluster(4, config=CFG)
    left = {"n0", "n1"}
    split(link, nodes, left)
    link.run_until(link.now + 40)
    for v in nodes:
        other = [n.name for n in nodes if (n.name in left) != (v.name in left)]
        assert all(link.state_in(v, name) is MemberState.DEAD for name in other), v.name
    # Past gossip_to_the_dead_s, so no gossip crosses the cut by itself, and
    # 9 s before the next reconnect (every node's fires at multiples of 10 s).
    link.run_until(71.0)
    heal_at = link.now
    link.apart = lambda a, b: False
    took = None
    while link.now < heal_at + 5:
        link.run_until(link.now + 0.1)
        if all_alive(nodes):
            took = link.now - heal_at
            break
    assert took is not None and took <= 2 * CFG.probe_interval_s, took
    assert sum(n.stats().get("heal_syncs_started", 0) for n in nodes) > 0
    assert sum(n.stats().get("reconnects_started", 0) for n in nodes) <= 4 * 7    # none after the heal


def test_a_member_that_really_died_gets_a_bare_ping_now_and_then_and_no_push_pull():
    link, nodes = cluster(4, config=CFG)
    link.down.add("n3")
    link.run_until(link.now + 40)
    assert all(link.state_in(v, "n3") is MemberState.DEAD for v in nodes[:3])
    link.sent.clear()
    link.events.clear()
    intervals = 20
    link.run_until(link.now + intervals * CFG.probe_interval_s)
    # Datagrams only (the reconnect's push/pulls are streams): dead pings,
    # each node's at least half an interval apart.
    to_dead = [data for _, addr, data in link.sent if link.nodes.get(addr) is nodes[3]]
    assert intervals <= len(to_dead) <= 3 * 2 * intervals
    assert all(len(data) < 100 for data in to_dead)     # bare pings, no gossip piggybacked
    assert sum(n.stats().get("heal_syncs_started", 0) for n in nodes[:3]) == 0


def test_pings_from_a_member_held_failed_start_one_push_pull_per_gap():
    link, nodes = cluster(3, config=CFG)
    split(link, nodes, {"n0"})
    link.run_until(link.now + 40)
    a, b = nodes[0], nodes[1]
    assert link.state_in(a, "n1") is MemberState.DEAD
    a.drain()
    ping = encode(Ping(7, "n0", bytes([127, 0, 0, 1]), b.addr.port, "n1"))
    syncs = []
    for k in range(3 * HEAL_SYNC_GAP_PROBES):
        t = link.now + k * CFG.probe_interval_s / 2
        a.receive_datagram(ping, b.addr, t)
        syncs += [o for o in a.drain() if isinstance(o, OpenStream) and o.purpose is StreamPurpose.PUSH_PULL
                  and o.addr == b.addr]
    # 6 probe intervals of pings: one sync at the first, one more a gap later.
    assert len(syncs) == 2
    assert a.stats()["heal_syncs_started"] == 2


def test_a_larger_cluster_stretches_each_nodes_dead_ping_interval():
    assert CFG.dead_ping_interval_for(5) == CFG.probe_interval_s
    assert CFG.dead_ping_interval_for(DEAD_PING_FANIN) == CFG.probe_interval_s
    for n in (20, 100, 1000):
        # the cluster as a whole: DEAD_PING_FANIN dead pings per probe interval
        assert n / CFG.dead_ping_interval_for(n) * CFG.probe_interval_s == DEAD_PING_FANIN
