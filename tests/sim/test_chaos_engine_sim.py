"""The simulated container engine of `shoal chaos sim` (node.chaos.simengine):
an engine stall withholds everything the agent would hear from its engine,
and the campaign, now that the engine reports running slots, exercises
rebalancing and rolling updates with every invariant holding."""

from __future__ import annotations

from auction.resources import Resources
from node.chaos.simengine import ChaosEngine
from node.chaos.simrun import CLUSTER, PLACEMENT, SimOptions, _config, run_seed
from node.sim.cluster import ClusterSim
from node.sim.swarm import job

GiB = 1 << 30


def _cluster(n: int = 3) -> tuple[ClusterSim, ChaosEngine]:
    sim = ClusterSim(5, n, _config(n), placement_config=PLACEMENT, cluster_config=CLUSTER,
                     capacities=[Resources(2000, 4 * GiB, 0)] * n)
    engine = ChaosEngine(sim)
    sim.world.bootstrap(seeds="random")
    sim.world.run_for(3)
    return sim, engine


def _running_on(sim: ClusterSim, i: int) -> set[int]:
    summary = sim.world.core(i).view.runtime_summary
    return set(summary.jobs.get("web", ((), ()))[0]) if summary is not None else set()


def test_a_stalled_engine_tells_its_agent_nothing_until_it_resumes():
    sim, engine = _cluster()
    w = sim.world
    engine.stall(1)
    sim.submit(0, job("web", 3, cpu=0.2, memory="64MiB", max_per_node=1))
    w.run_for(6)
    assert "web/0" in sim.running[1] or any(s.startswith("web/") for s in sim.running[1])  # told to start one
    assert not any(engine.running(1, s) for s in sim.running[1])  # ... which does not come up
    assert _running_on(sim, 1) == set()  # and the agent has heard nothing
    assert _running_on(sim, 0) and _running_on(sim, 2)  # the other engines answer
    engine.unstall(1)
    w.run_for(2)
    assert all(engine.running(1, s) for s in sim.running[1])
    assert len(_running_on(sim, 1)) == 1  # the report arrived


def test_engine_stalls_leave_no_violation():
    # (seed 4: four stalls with today's job mix; the mix's draws pick the plan)
    r = run_seed(4, SimOptions(nodes=5, faults=("engine-stall", "restart"), duration_s=20, mean_gap_s=1.5))
    assert r["engine_stalls"] > 0
    assert r["ok"], r["violations"]


def test_the_campaign_rebalances_after_a_failure_and_converges():
    # seed 5 (4 nodes, every kind): replicas pushed aside by the faults move back, start-first
    kinds = ("kill", "restart", "partition", "loss", "delay", "pause", "engine-stall", "clock-skew")
    r = run_seed(5, SimOptions(nodes=4, faults=kinds, duration_s=20))
    assert r["ok"], r["violations"]
    assert r["rebalance"].get("moved", 0) > 0, r["rebalance"]
    assert r["converged_s"] is not None
    assert r["doubled"]["by_cause"].get("rebalance", 0) >= 1  # the move's two copies, said so
