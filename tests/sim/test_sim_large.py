"""Large clusters in the simulator: bootstrap convergence and crash detection.

One world per cluster size is bootstrapped (module-scoped fixture) and shared
by the two tests: first every node must see every other alive, then one node
crashes and every live node must mark it failed within the bound derived from
the configuration.  Convergence is polled with the event-driven ViewTracker,
which is cheap at 1,000 nodes; crash detection with core.member() lookups.

Both sizes run by default.  N=1,000 runs with `enable_compression=False`
(a documented GossipConfig knob; memberlist has the same switch): a cold
bootstrap of 1,000 lan-preset nodes sends some 800k gossip packets in the
first minute, and LZW in pure Python would dominate the run.  Without it,
on this project's 2-core machine, the 1,000-node bootstrap takes 44-46 s of
CPU (all-alive at 33.2 virtual s) and the crash test 10 s; the whole module
about 70 s (docs/benchmarks.md, "Simulator: 1,000 nodes").  N=200 keeps
compression on, so LZW still runs in a many-node simulation (~13 s).
"""

from __future__ import annotations

import time

import pytest

from gossip.config import preset
from node.sim import World, checkers, faults

LAN = preset("lan")
LAN_NO_LZW = LAN.replace(enable_compression=False)
SEED = 21
SIZES = [200, 1000]


def config_for(n: int):
    return LAN if n <= 200 else LAN_NO_LZW


def bootstrap_timeout(n: int) -> float:
    # Joins finish within a round trip; the post-join push/pull and gossip
    # fill in the rest in a few seconds.  Allow a full push/pull interval.
    return config_for(n).push_pull_interval_for(n)


@pytest.fixture(scope="module")
def clusters():
    cache: dict[int, tuple[World, checkers.ViewTracker, float | None, float]] = {}

    def get(n: int):
        if n not in cache:
            w = World(SEED, n, config_for(n), keep_trace=False)
            tracker = checkers.ViewTracker(w)
            t0 = time.process_time()
            w.bootstrap()
            took = w.run_until_converged(tracker.all_alive, bootstrap_timeout(n), check_every=0.25)
            cache[n] = (w, tracker, took, time.process_time() - t0)
        return cache[n]

    return get


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
    w, _, took, _ = clusters(n)
    if took is None:
        pytest.skip("bootstrap did not converge (reported by test_bootstrap_converges)")
    victim = n // 3
    name = w.nodes[victim].name
    detector = checkers.FalseDeathDetector(w)
    failed: set[int] = set()
    w.subscribe(lambda t, i, ev: failed.add(i) if ev.__class__.__name__ == "MemberFailed"
                and ev.member.name == name else None)
    faults.crash(w, victim)
    bound = checkers.failure_detection_bound(config_for(n), n)
    t0 = time.process_time()
    took = w.run_until_converged(lambda w: checkers.dead_everywhere(w, name), bound, check_every=0.5)
    assert took is not None, f"seed={SEED}: {name} not dead everywhere {bound:.1f}s after crash"
    assert len(failed) == n - 1, f"seed={SEED}: {n - 1 - len(failed)} live nodes emitted no MemberFailed"
    assert detector.false_deaths == [], f"seed={SEED}: {detector.false_deaths[:5]}"
    print(f"seed={SEED}: {name} dead on all {n - 1} live nodes {took:.1f}s after crash "
          f"(bound {bound:.1f}s; {time.process_time() - t0:.1f} s CPU)")
