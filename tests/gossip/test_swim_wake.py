"""Swim.next_wake: a driver that wakes only when a timer has work (the agent's
pump) sees the same membership as one that fires every timer where it is due
(the simulator), with far fewer wake-ups while the cluster is idle."""

from __future__ import annotations

import math

from gossip.config import LAN
from gossip.events import MemberFailed, MemberState, UserBroadcast
from gossip.swim import Swim
from tests.gossip.test_swim import Link

CFG = LAN.replace(enable_compression=False)


class WakeLink(Link):
    """Drives every node at `next_wake(now)` instead of `next_deadline()`,
    and counts the wake-ups (handle_timers calls) per node."""

    def __init__(self, seed: int = 1, config=CFG, wake: bool = True) -> None:
        super().__init__(seed, config)
        self.wake = wake
        self.wakes: dict[str, int] = {}

    def _next(self, node: Swim) -> float | None:
        return node.next_wake(self.now) if self.wake else node.next_deadline()

    def run_until(self, t: float) -> None:
        self.pump()
        while True:
            due = [(at, i, n) for i, n in enumerate(self.nodes.values()) if (at := self._next(n)) is not None]
            if not due:
                break
            at, _, node = min(due, key=lambda x: (x[0], x[1]))
            if at > t:
                break
            self.now = max(self.now, at)
            self.wakes[node.name] = self.wakes.get(node.name, 0) + 1
            node.handle_timers(self.now)
            self.pump()
        self.now = t


def settled(n: int, wake: bool, seed: int = 1) -> tuple[WakeLink, list[Swim]]:
    link = WakeLink(seed, wake=wake)
    nodes = [link.add(f"n{i}") for i in range(n)]
    first = list(link.nodes)[0]
    for node in nodes[1:]:
        node.join([first], link.now)
    link.run_until(link.now + 10.0)
    return link, nodes


def test_an_idle_member_is_woken_for_its_probes_not_for_empty_gossip_ticks_or_answered_probes():
    counts = {}
    for wake in (False, True):
        link, nodes = settled(3, wake)
        link.wakes.clear()
        link.run_until(link.now + 20.0)
        counts[wake] = link.wakes["n0"]
        assert all(link.state_in(v, m.name) is MemberState.ALIVE for v in nodes for m in nodes)
    # lan: a gossip tick every 0.2 s (100 in 20 s), a probe every second
    # (its timeout half way); what is left is about the probe round.
    assert counts[False] >= 120
    assert counts[True] <= 30, counts


def test_a_broadcast_waits_for_the_next_point_of_the_gossip_grid_then_goes_out():
    link, nodes = settled(3, wake=True)
    n0 = nodes[0]
    link.run_until(link.now + 0.55)
    # The idle tick is overdue but passed over.
    assert n0.next_deadline() is not None and n0.next_wake(link.now) > n0.next_deadline()
    overdue = n0.next_deadline()
    n0.broadcast(b"news", link.now)
    at = n0.next_wake(link.now)
    interval = CFG.gossip_interval_s
    assert link.now <= at < link.now + interval
    assert math.isclose((at - overdue) / interval, round((at - overdue) / interval))
    sent_before = len(link.sent)
    link.run_until(at)
    assert any(who == "n0" for who, _, _ in link.sent[sent_before:])
    link.run_until(link.now + 5)
    got = sorted(who for who, e in link.events if isinstance(e, UserBroadcast))
    assert got == ["n1", "n2"]


def test_driven_at_next_wake_a_silent_member_is_still_found_dead_by_all():
    link, nodes = settled(4, wake=True)
    link.down.add("n3")
    link.run_until(link.now + 30)
    failed = {who for who, e in link.events if isinstance(e, MemberFailed) and e.member.name == "n3"}
    assert failed == {"n0", "n1", "n2"}
    # Nobody else was declared dead (n3, cut off, sees the others go).
    assert all(e.member.name == "n3" for who, e in link.events if isinstance(e, MemberFailed) and who != "n3")
