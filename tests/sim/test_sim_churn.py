"""False suspicions under load move no replica; a real death still heals fast.

The scenes are node.sim.churn's (the benchmark scripts/bench/churn_bench.py
runs the same ones).  The rule and its bound are auction.suspicion_rule's: a
suspicion refuted within its grace costs no start; one that outlives it at
most one start per slot its member held.  Before the rule, the same scenes
cost 15-42 starts (0.25 s stalls, seeds 1-3) and 107-166 starts (0.45 s
stalls, seeds 1-5), for nothing: no node died.
"""

from __future__ import annotations

import pytest

from node.sim import churn

SEEDS = (1, 2, 3)


# Seeds 2 and 5 bring no suspicion of the busiest node since holders tell
# slots' next coordinators at every cluster size (which moved every trace;
# before, seed 1 brought none and seed 4 stood in for it): a scene without
# one shows nothing.
@pytest.mark.parametrize("seed", (1, 3, 4, 13))
def test_slow_nodes_suspected_again_and_again_lose_no_replica(seed):
    # Four of five nodes stall 0.25 s in every 0.75 s, in turns (local
    # profile: probes time out in 0.1 s, so stalls bring suspicions; the
    # grace is 0.3 s): a suspicion refuted within its grace costs no start.
    # Now and then a refutation reaches some observer only after the grace
    # (of seeds 1-20: the busiest node's in seed 18; another slow node's in
    # 13 and 19): that one may move the slots its node held, and no more.
    # The bound counts every slow node's such episodes, so with none of
    # them it is 0 and so must the starts be; an episode of another slow
    # node is no reason for starts to be 0 (seeds 13 and 19: 1-2 starts).
    r = churn.false_suspicions(seed, stall_s=0.25, run_s=0.5, slow_nodes=4)
    assert r.suspicions > 0, "the scene must bring suspicions, or it shows nothing"
    assert r.settled
    assert r.outlived_grace <= 1, r
    assert r.starts <= r.bound, r


def test_longer_stalls_cost_at_most_the_stated_bound():
    # 0.45 s stalls: most suspicions are refuted within the grace, a few
    # outlive it; each of those may move at most the slots its node holds.
    results = [churn.false_suspicions(seed, stall_s=0.45, run_s=0.5, slow_nodes=4) for seed in SEEDS + (4, 5)]
    for r in results:
        assert r.settled and r.suspicions > 0
        assert r.starts <= r.bound, r
    # Before the rule: 107-166 starts on each of these seeds, 710 in all.
    # One episode that outlives its grace moves its node's slots at once (up
    # to 13 here), so a seed's count jumps by that much with any change of
    # timing; the sum is what the rule bounds.
    assert sum(r.starts for r in results) <= 40, results


@pytest.mark.parametrize("seed", SEEDS)
def test_suspicions_that_outlive_their_grace_cost_at_most_the_suspects_slots_each(seed):
    # Stalls just under the shortest suspicion timeout (0.6 s): some
    # suspicions outlive the grace and their slots move, within the bound.
    r = churn.false_suspicions(seed, stall_s=0.55, run_s=0.5, slow_nodes=1)
    assert r.settled
    assert r.outlived_grace > 0, r
    assert r.starts <= r.bound, r


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("profile", ["local", "lan"])
def test_a_real_death_is_healed_once_per_slot_within_the_grace_and_a_little(seed, profile):
    r = churn.real_kill(seed, profile=profile)
    assert r.settled and r.victim_slots > 0
    assert r.starts == r.victim_slots, r          # one start per lost slot, no churn
    grace_s = churn.grace_s(profile)
    assert r.heal_after_suspicion_s is not None
    assert grace_s <= r.heal_after_suspicion_s < grace_s + 0.5, r
