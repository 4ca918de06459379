"""Rebalancing in the simulator (auction.rebalance): what a user would notice.

  * the quickstart scene: three replicas spread over racks a, b, c; the
    rack-c node dies and its replica goes to rack a; the node comes back,
    and within a bounded time the job is on a, b, c again, one copy per
    slot, never fewer than R - 1 running (R from the moment the move starts:
    it is start-first), each move an event saying why;
  * no oscillation: a node flapping faster than the settle delay draws no
    replica back, two equally good placements move nothing, and after a
    rebalance the job stays put;
  * `rebalance = false` leaves the job where failure handling put it.
"""

from __future__ import annotations

from auction.placement import PlacementConfig
from auction.rebalance import RebalanceEvent
from auction.resources import Resources
from gossip.config import LOCAL
from node.core.node_core import ClusterConfig
from node.sim.checkers_catalog import SimRuntime
from node.sim.cluster import ClusterSim
from node.sim.swarm import job

CFG = LOCAL.replace(enable_compression=False)
GiB = 1 << 30
SETTLE_S = 5.0
FAST = PlacementConfig(placement_interval_s=0.25, auction_ttl_s=0.1, claim_wait_s=1.0,
                       min_backoff_s=0.2, max_backoff_s=2.0, rebalance_settle_s=SETTLE_S)
CLUSTER = ClusterConfig(store_sync_interval_s=0.5, status_min_interval_s=0.5)


class Scene:
    """n nodes (1 cpu, 512 MiB, as the quickstart's) on racks a, b, c, ...;
    a runtime that reports its slots; every rebalancing event recorded."""

    def __init__(self, seed: int, racks: str = "abc") -> None:
        n = len(racks)
        self.racks = racks
        self.sim = ClusterSim(seed, n, CFG, placement_config=FAST, cluster_config=CLUSTER,
                              capacities=[Resources(1000, GiB // 2, 0)] * n,
                              labels=[{"rack": r} for r in racks])
        self.runtime = SimRuntime(self.sim, start_delay_s=2.0)  # a container takes a while to run
        self.events: list[RebalanceEvent] = []
        self.sim.world.subscribe(self._on)
        self.sim.world.bootstrap(seeds="random")
        self.sim.world.run_for(3)

    def _on(self, t, i, ev) -> None:
        if isinstance(ev, RebalanceEvent) and ev.kind == "moving":
            self.events.append(ev)

    def running(self, name: str, replicas: int) -> int:
        """Slots of the job with at least one running copy anywhere."""
        return sum(1 for k in range(replicas)
                   if any(self.runtime.running(i, f"{name}/{k}") for i in self.sim.live_indices()))

    def racks_of(self, name: str, replicas: int) -> list[str]:
        return sorted(self.racks[i] for i in self.sim.live_indices() for k in range(replicas)
                      if self.runtime.running(i, f"{name}/{k}"))

    def run(self, seconds: float, check=None, step_s: float = 0.05) -> None:
        end = self.sim.world.now + seconds
        while self.sim.world.now < end:
            self.sim.world.run_for(step_s)
            if check is not None:
                check()

    def until(self, predicate, timeout_s: float, check=None) -> float | None:
        start = self.sim.world.now
        while self.sim.world.now - start < timeout_s:
            self.run(0.25, check)
            if predicate():
                return self.sim.world.now - start
        return None


def test_the_quickstart_scene_comes_back_to_three_racks():
    s = Scene(1)
    spec = job("web", 3, cpu=0.25, memory="64MiB", spread="rack")
    s.sim.submit(0, spec)
    assert s.until(lambda: s.racks_of("web", 3) == ["a", "b", "c"], 10) is not None
    s.sim.world.crash(2)                                    # rack c
    assert s.until(lambda: s.racks_of("web", 3) in (["a", "a", "b"], ["a", "b", "b"]), 15) is not None
    assert not s.events
    lowest = [3]

    def floor() -> None:
        lowest[0] = min(lowest[0], s.running("web", 3))

    s.sim.world.restart(2)
    took = s.until(lambda: s.racks_of("web", 3) == ["a", "b", "c"] and not s.sim.placement_problems([spec]),
                   SETTLE_S + 20, floor)
    assert took is not None, (s.racks_of("web", 3), s.sim.placement_problems([spec]))
    assert lowest[0] >= 3, "the move is start-first: every slot kept a running copy"
    assert len(s.events) == 1, s.events
    assert "rack" in s.events[0].detail and "to c" in s.events[0].detail, s.events[0]
    # And it stays there.
    s.run(3 * SETTLE_S, floor)
    assert s.racks_of("web", 3) == ["a", "b", "c"] and len(s.events) == 1
    assert not s.sim.violations, s.sim.violations[:3]


def test_rebalance_false_leaves_the_job_where_failure_handling_put_it():
    s = Scene(2)
    spec = job("web", 3, cpu=0.25, memory="64MiB", spread="rack", rebalance=False)
    s.sim.submit(0, spec)
    assert s.until(lambda: s.racks_of("web", 3) == ["a", "b", "c"], 10) is not None
    s.sim.world.crash(2)
    assert s.until(lambda: len(s.racks_of("web", 3)) == 3 and "c" not in s.racks_of("web", 3), 15) is not None
    s.sim.world.restart(2)
    s.run(3 * SETTLE_S)
    assert "c" not in s.racks_of("web", 3) and not s.events


def test_a_node_flapping_faster_than_the_settle_delay_draws_nothing_back():
    s = Scene(3)
    spec = job("web", 3, cpu=0.25, memory="64MiB", spread="rack")
    s.sim.submit(0, spec)
    assert s.until(lambda: s.racks_of("web", 3) == ["a", "b", "c"], 10) is not None
    for _ in range(4):          # down 6 s, up 3 s: never up for the settle delay
        s.sim.world.crash(2)
        s.run(6)
        s.sim.world.restart(2)
        s.run(SETTLE_S * 0.6)
    assert not s.events, s.events
    # Once it stays up, one move brings rack c back, and that is all.
    assert s.until(lambda: s.racks_of("web", 3) == ["a", "b", "c"], SETTLE_S + 20) is not None
    s.run(3 * SETTLE_S)
    assert len(s.events) == 1, s.events


def test_equally_good_placements_move_nothing():
    # Four replicas over three racks: 2, 1, 1 in some order is as good as it
    # gets; nothing should move whichever rack holds the two.
    s = Scene(4, racks="abcabc")
    spec = job("web", 4, cpu=0.25, memory="64MiB", spread="rack")
    s.sim.submit(0, spec)
    assert s.until(lambda: not s.sim.placement_problems([spec]), 10) is not None
    s.sim.world.crash(0)
    s.sim.world.crash(3)      # rack a gone: 2, 2 over b and c
    assert s.until(lambda: not s.sim.placement_problems([spec])
                   and sorted(s.racks_of("web", 4)) == ["b", "b", "c", "c"], 20) is not None
    s.sim.world.restart(0)
    s.sim.world.restart(3)
    # b 2, c 2, a 0: one move (to 1, 2, 1 or 2, 1, 1), then nothing.
    s.run(SETTLE_S * 5)
    assert len(s.events) == 1, s.events
    counts = sorted(s.racks_of("web", 4).count(r) for r in "abc")
    assert counts == [1, 1, 2], s.racks_of("web", 4)
