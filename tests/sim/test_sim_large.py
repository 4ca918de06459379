"""Large clusters in the simulator: issue 2's list at 200 and 1,000 nodes.

One world per cluster size is bootstrapped (module-scoped fixture) and shared
by the tests, which run in file order: every node must see every other alive;
one node crashes and every live node must mark it failed within the bound
derived from the configuration; a node paused for less than its suspicion
timeout is not declared dead; 300 protocol periods at 10 % loss declare no
live node dead; and a partition into halves is detected on both sides and,
once healed, every live node sees every other alive again.  Convergence is
polled with the event-driven ViewTracker, which is cheap at 1,000 nodes.

Every property runs at 200 nodes in the default suite.  The 1,000-node runs
are the `large` tier (minutes of CPU each; `scripts/test --large`): the same
assertions, at the size issue 2 names.

Both sizes run with `enable_compression=False` (a documented GossipConfig
knob; memberlist has the same switch): a cold bootstrap of 1,000 lan-preset
nodes sends some 800k gossip packets in the first minute, and LZW in pure
Python would dominate the run; at 200 nodes it was half of the loss test's
CPU (the file took 70 s of CPU with it, the suite's second-largest share).
What these tests check (failure detection, suspicion, refutation, merges)
does not depend on it: compression changes the bytes of a message, not
which messages are sent.  LZW itself is checked against Go's bytes in
tests/gossip/test_lzw.py and runs in every lan-preset simulation of
tests/sim/test_sim_gossip.py.  On this project's 2-core machine the
1,000-node bootstrap takes ~30 s of CPU (all alive at 14.2 virtual s), the
crash test 10 s, the loss test ~200 s, the partition ~300 s (every node
learns of 500 deaths, then of 500 refutations).
"""

from __future__ import annotations

import time

import pytest

from gossip.config import preset
from node.sim import World, checkers, faults

CONFIG = preset("lan").replace(enable_compression=False)
SEED = 21
# 1,000 nodes: the large tier, with room for a slow machine (the loss and
# partition tests take ~200 and ~300 s of CPU on a 2-core machine).
LARGE = pytest.param(1000, marks=(pytest.mark.large, pytest.mark.timeout(1200)), id="1000")
SIZES = [200, LARGE]


def bootstrap_timeout(n: int) -> float:
    # Joins finish within a round trip; the post-join push/pull and gossip
    # fill in the rest in a few seconds.  Allow a full push/pull interval.
    return CONFIG.push_pull_interval_for(n)


@pytest.fixture(scope="module")
def clusters():
    cache: dict[int, tuple[World, checkers.ViewTracker, float | None, float]] = {}

    def get(n: int):
        if n not in cache:
            w = World(SEED, n, CONFIG, keep_trace=False)
            tracker = checkers.ViewTracker(w)
            t0 = time.process_time()
            w.bootstrap()
            took = w.run_until_converged(tracker.all_alive, bootstrap_timeout(n), check_every=0.25)
            cache[n] = (w, tracker, took, time.process_time() - t0)
        return cache[n]

    return get


def converged_world(clusters, n: int):
    """The shared world of n nodes and its config; skips if it never
    converged (test_bootstrap_converges reports that)."""
    w, _, took, _ = clusters(n)
    if took is None:
        pytest.skip("bootstrap did not converge (reported by test_bootstrap_converges)")
    return w, CONFIG


@pytest.mark.slow
@pytest.mark.parametrize("n", SIZES)
def test_bootstrap_converges(clusters, n):
    w, tracker, took, wall = clusters(n)
    assert took is not None, (
        f"seed={SEED}: {n} nodes not all-alive after {bootstrap_timeout(n):.0f}s; "
        f"alive counts min={min(tracker.alive_others)} max={max(tracker.alive_others)}")
    # Spot-check the event-derived views against the cores' member tables.
    for i in (0, n // 2, n - 1):
        core = w.nodes[i].core
        assert all(m.state.value == "alive" for m in core.members()), f"seed={SEED}: node-{i}"
        assert len(core.members()) == n, f"seed={SEED}: node-{i} knows {len(core.members())}"
    print(f"seed={SEED}: {n} nodes all-alive at {took:.1f} virtual s ({wall:.1f} s CPU)")


@pytest.mark.slow
@pytest.mark.parametrize("n", SIZES)
def test_crash_detected_everywhere(clusters, n):
    w, _ = converged_world(clusters, n)
    victim = n // 3
    name = w.nodes[victim].name
    detector = checkers.FalseDeathDetector(w)
    failed: set[int] = set()
    w.subscribe(lambda t, i, ev: failed.add(i) if ev.__class__.__name__ == "MemberFailed"
                and ev.member.name == name else None)
    faults.crash(w, victim)
    bound = checkers.failure_detection_bound(CONFIG, n)
    t0 = time.process_time()
    took = w.run_until_converged(lambda w: checkers.dead_everywhere(w, name), bound, check_every=0.5)
    assert took is not None, f"seed={SEED}: {name} not dead everywhere {bound:.1f}s after crash"
    assert len(failed) == n - 1, f"seed={SEED}: {n - 1 - len(failed)} live nodes emitted no MemberFailed"
    assert detector.false_deaths == [], f"seed={SEED}: {detector.false_deaths[:5]}"
    print(f"seed={SEED}: {name} dead on all {n - 1} live nodes {took:.1f}s after crash "
          f"(bound {bound:.1f}s; {time.process_time() - t0:.1f} s CPU)")


# The same shared world, after the crash above: the rest of issue 2's list at
# scale.  They run in file order; each leaves the cluster converged.


@pytest.mark.slow
@pytest.mark.parametrize("n", SIZES)
def test_a_short_pause_is_not_death(clusters, n):
    w, config = converged_world(clusters, n)
    who = n // 5
    name = w.nodes[who].name
    failed: set[int] = set()
    w.subscribe(lambda t, i, ev: failed.add(i) if ev.__class__.__name__ == "MemberFailed"
                and ev.member.name == name else None)
    pause = 0.4 * config.suspicion_min_timeout_s(n)
    faults.pause(w, who, pause)
    w.run_for(pause + checkers.failure_detection_bound(config, n))
    assert failed == set(), f"seed={SEED}: {name} paused {pause:.1f}s was declared dead by {len(failed)}"


@pytest.mark.slow
@pytest.mark.parametrize("n", SIZES)
def test_no_false_deaths_over_300_periods_at_10pct_loss(clusters, n):
    w, config = converged_world(clusters, n)
    detector = checkers.FalseDeathDetector(w)
    t0 = time.process_time()
    w.network.set_loss(0.10)
    w.run_for(300 * config.probe_interval_s)
    w.network.set_loss(0.0)
    assert detector.false_deaths == [], f"seed={SEED}: live nodes declared dead: {detector.false_deaths[:5]}"
    print(f"seed={SEED}: {n} nodes, 300 periods at 10 % loss, no false death "
          f"({time.process_time() - t0:.1f} s CPU)")



@pytest.mark.slow
@pytest.mark.parametrize("n", SIZES)
def test_a_partition_into_halves_heals_and_the_views_reconverge(clusters, n):
    w, config = converged_world(clusters, n)
    tracker = clusters(n)[1]
    detector = checkers.FalseDeathDetector(w)
    live = {nd.idx for nd in w.nodes if nd.status is not checkers.CRASHED}
    a, b = faults.halves(w)
    t0 = time.process_time()
    faults.partition(w, [a, b])
    # failure_detection_bound assumes the Dead message spreads in
    # retransmit_limit gossip rounds, true of a few news items at a time.
    # 500 suspicions and deaths at once overflow every gossip packet, so a
    # member may first hear of a suspect late and wait out its own
    # suspicion timer: one more suspicion_max_timeout_s.
    bound = checkers.failure_detection_bound(config, n, probers=len(a), subjects=len(b)) + \
        config.suspicion_max_timeout_s(n)
    took = w.run_until_converged(
        lambda w: tracker.sees_dead(live & set(a), b) and tracker.sees_dead(live & set(b), a),
        bound, check_every=1.0)
    assert took is not None, f"seed={SEED}: the halves did not mark each other failed within {bound:.0f}s"
    assert detector.false_deaths == [], f"seed={SEED}: declared dead on its own side: {detector.false_deaths[:5]}"
    print(f"seed={SEED}: each half of {n} saw the other failed {took:.1f}s after the cut (bound {bound:.0f}s)")
    faults.heal(w)
    limit = config.push_pull_interval_for(n) * 1.5
    took = w.run_until_converged(tracker.all_alive, limit, check_every=1.0)
    assert took is not None, (
        f"seed={SEED}: no reconvergence {limit:.0f}s after heal: {checkers.disagreements(w)}")
    assert detector.false_deaths == [], f"seed={SEED}: {detector.false_deaths[:5]}"
    print(f"seed={SEED}: all {len(live)} live nodes see each other alive {took:.1f}s after the heal "
          f"({time.process_time() - t0:.1f} s CPU for cut and heal)")
