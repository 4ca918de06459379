"""Detection when most members die at once (gossip.awareness).

Killing 3 of 5 (or 7 of 10) nodes at once leaves the survivors probing
mostly dead members through mostly dead helpers.  Every dead member must be
declared dead by every survivor within GossipConfig.detection_bound_s(n),
and the survivors' health scores must stay low: silence from dead helpers is
not evidence that the survivor itself is slow.  And Lifeguard must still
slow down a node that really is slow.  Every assertion message starts with
the seed.
"""

from __future__ import annotations

import pytest

from gossip.config import preset
from gossip.events import MemberFailed
from node.sim import World, checkers
from node.sim.most_dead import kill_most

SAMPLE_S = 0.05
SLOW_S = 1.2


def _kill_most(seed: int, profile: str, n: int, kill: int):
    r = kill_most(seed, profile, n, kill, SAMPLE_S)
    assert r.took_s is not None, (
        f"seed={seed}: {profile} {kill} of {n} killed, not all declared dead within "
        f"{r.config.detection_bound_s(n):.1f}s: {checkers.disagreements(r.world)}")
    return r.world, r.config, r.detector, r.survivors, r.took_s, r.health


@pytest.mark.parametrize("profile,n,kill,seed", [
    ("lan", 5, 3, 1), ("lan", 5, 3, 2), ("lan", 5, 3, 3), ("lan", 5, 3, 4),
    ("local", 5, 3, 1), ("local", 5, 3, 2), ("local", 5, 3, 3), ("local", 5, 3, 4),
    ("lan", 10, 7, 1), ("lan", 10, 7, 2), ("lan", 10, 7, 3),
    ("local", 10, 7, 1), ("local", 10, 7, 2),
])
def test_most_members_killed_at_once_are_declared_dead_within_the_bound(profile, n, kill, seed):
    w, config, detector, survivors, took, health = _kill_most(seed, profile, n, kill)
    # The silence of dead helpers does not count against the survivors: their
    # scores never reach the cap (before: the cap, 7, with 7 of 10 killed),
    # and once the dead are declared they are back to 0.
    cap = config.awareness_max_multiplier - 1
    assert health < cap, f"seed={seed}: a survivor's health score reached the cap ({health})"
    scores = {w.nodes[i].name: w.core(i).health_score() for i in survivors}
    assert set(scores.values()) == {0}, f"seed={seed}: survivors' health scores after detection: {scores}"
    # The bound at the score actually reached: the formula must hold for it.
    assert took <= config.detection_bound_s(n, health) + SAMPLE_S, (
        f"seed={seed}: {took:.1f}s > {config.detection_bound_s(n, health):.1f}s at health {health}")
    assert detector.false_deaths == [], f"seed={seed}: {detector.false_deaths[:5]}"
    names = {w.nodes[i].name for i in survivors}
    assert all(names <= w.core(i).alive_names() | {w.nodes[i].name} for i in survivors), (
        f"seed={seed}: the survivors lost each other: {checkers.disagreements(w)}")
    print(f"seed={seed}: {profile} {kill} of {n}: all dead on every survivor after {took:.1f}s "
          f"(bound {config.detection_bound_s(n):.1f}s, {config.detection_bound_s(n, health):.1f}s at "
          f"health {health})")


@pytest.mark.parametrize("seed", [21, 22, 23])
def test_lifeguard_still_slows_a_slow_node_and_nobody_is_falsely_declared_dead(seed):
    # node-3 handles what it receives SLOW_S late (an overloaded host with a
    # backlog on its socket): the acks to its probes come after the probe
    # timeout, often after the probe's deadline, and it suspects live
    # members.  Lifeguard must raise its health score, so that it accuses
    # slowly, and no live member may be declared dead by anyone.
    config = preset("lan")
    n = 10
    w = World(seed, n, config)
    w.bootstrap()
    assert w.run_until_converged(checkers.all_agree_alive, 30.0) is not None, f"seed={seed}"
    detector = checkers.FalseDeathDetector(w)
    slow = 3
    failed = []
    w.subscribe(lambda t, i, ev: failed.append((i, ev.member.name)) if isinstance(ev, MemberFailed) else None)
    for j in range(n):
        if j != slow:
            w.network.set_link(j, slow, extra_delay_s=SLOW_S)
    start = w.now
    health = 0
    while w.now < start + 60.0:
        w.run_for(SAMPLE_S)
        health = max(health, w.core(slow).health_score())
    assert health >= 1, f"seed={seed}: the slow node's health score never rose"
    assert failed == [], f"seed={seed}: members declared dead: {failed[:5]}"
    assert detector.false_deaths == [], f"seed={seed}: {detector.false_deaths[:5]}"
    w.network.clear_links()
    assert w.run_until_converged(checkers.all_agree_alive, 30.0) is not None, (
        f"seed={seed}: {checkers.disagreements(w)}")
    print(f"seed={seed}: slow node's health score reached {health}")
