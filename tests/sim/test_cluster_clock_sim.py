"""Clocks far off on the simulator: every acknowledged job write reaches every agent.

One node of five runs 5 % fast and another 5 % slow, each after a jump of
150 s, so both are far more than the HLC's max skew (60 s) from the rest.  Before
cluster time (node.core.cluster_clock) the fast node acknowledged writes
that every peer refused (`stamp_ahead`), and the slow one refused every
peer's new writes.
"""

from __future__ import annotations

import pytest

from auction.spec import validate
from gossip.config import LOCAL
from node.core.cluster_clock import ClockAheadError
from node.core.inputs import WriteJob
from node.core.node_core import ClusterConfig
from node.core.outputs import StateRefused
from node.sim.cluster import ClusterSim

FAST, SLOW = 1, 2
EPOCH_S = 1_764_900_000  # the wall clock at the simulator's time 0 (December 2025)


def _job(name: str, image: str = "busybox"):
    return validate({"name": name, "image": image, "replicas": 1, "cpu": 0.1, "memory": "64MiB"})


def _skewed_cluster(seed: int, jump_s: float, clocks: dict[int, tuple[float, float]] | None = None,
                    ) -> tuple[ClusterSim, list[StateRefused]]:
    """Five nodes; FAST jumps jump_s ahead and runs 5 % fast, SLOW the
    opposite (or `clocks`: node -> (rate, jump_s))."""
    sim = ClusterSim(seed, 5, LOCAL.replace(enable_compression=False),
                     cluster_config=ClusterConfig(store_sync_interval_s=1.0),
                     wall_offset_s=EPOCH_S)  # a wall clock of today: 150 s behind it is still a valid time
    refused: list[StateRefused] = []
    sim.world.subscribe(lambda t, i, ev: refused.append(ev) if isinstance(ev, StateRefused) else None)
    sim.world.bootstrap(seeds="random")
    sim.world.run_for(3)
    for node, (rate, jump) in (clocks or {FAST: (1.05, jump_s), SLOW: (0.95, -jump_s)}).items():
        sim.world.set_clock(node, rate=rate, offset_s=jump)
    # Long enough for push/pulls (15 s apart here) to carry the new clocks of
    # more than half of each node's peers (the jump voids what came before).
    sim.world.run_for(150)
    return sim, refused


@pytest.mark.parametrize("seed", range(1, 9))
def test_acknowledged_writes_reach_every_agent_though_two_clocks_are_far_off(seed):
    sim, refused = _skewed_cluster(seed, 150.0)
    fast = sim.world.core(FAST)
    assert sim.world.nodes[FAST].local(sim.world.now) - sim.world.now > 150  # far beyond the skew bound
    tokens = {sim.submit(FAST, _job("from-fast")): "from-fast",
              sim.submit(SLOW, _job("from-slow")): "from-slow",
              sim.submit(0, _job("from-0")): "from-0"}
    sim.world.run_for(5)
    tokens |= {sim.submit(FAST, _job("from-0", "nginx")): "from-0 (update via the fast node)"}
    sim.world.run_for(20)
    assert set(tokens) <= sim.done_tokens  # every write acknowledged
    for name in ("from-fast", "from-slow", "from-0"):
        held = {i: sim.world.core(i).view.job(name) for i in range(5)}
        assert all(e is not None for e in held.values()), f"{name} missing on {[i for i, e in held.items() if not e]}"
        assert len({e.stamp for e in held.values()}) == 1, f"{name}: agents disagree"
    assert b"nginx" in sim.world.core(3).view.job("from-0").spec  # the fast node's update won, everywhere
    assert not [r for r in refused if r.reason == "stamp_ahead"]
    assert fast.cluster_clock.problem() is not None and "ahead" in fast.cluster_clock.problem()
    assert "behind" in sim.world.core(SLOW).cluster_clock.problem()
    assert sim.world.core(0).cluster_clock.problem() is None  # the honest majority sees no change
    assert sim.world.core(0).cluster_clock.correction_ms == 0
    assert not sim.violations


def test_a_clock_beyond_what_is_corrected_refuses_writes_with_a_clear_error():
    sim, refused = _skewed_cluster(4, 2 * 3600.0)
    sim.world.run_for(1)
    with pytest.raises(ClockAheadError, match=r"clock is \d+ s ahead of the cluster's.*fix its clock"):
        sim.world.feed(FAST, WriteJob("late", b"{}", 999))
    # Nothing acknowledged, nothing spread: the cluster holds no such job.
    sim.world.run_for(5)
    assert all(sim.world.core(i).view.job("late") is None for i in range(5))


@pytest.mark.parametrize("seed", range(1, 5))
def test_clocks_spread_as_a_long_campaign_leaves_them_agree_on_cluster_time(seed):
    # Where seed 0 of a 30-minute clock-skew,kill,partition campaign leaves
    # four drifting clocks (+90, +51, -30 and -79 s) and one that is right.
    clocks = {0: (1.03, 51.0), 1: (0.95, -79.0), 2: (0.98, -30.0), 4: (1.05, 90.0)}
    sim, refused = _skewed_cluster(seed, 0.0, clocks)
    tokens = {sim.submit(i, _job(f"via-{i}")): i for i in range(5)}
    sim.world.run_for(20)
    assert set(tokens) <= sim.done_tokens
    for i in range(5):
        stamps = {sim.world.core(j).view.job(f"via-{i}").stamp if sim.world.core(j).view.job(f"via-{i}") else None
                  for j in range(5)}
        assert len(stamps) == 1 and None not in stamps, f"via-{i}: {stamps}"
    assert not [r for r in refused if r.reason == "stamp_ahead"]
