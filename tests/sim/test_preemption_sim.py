"""Preemption in the simulator (auction.preemption): a global job whose
priority is at least 10 above a replicated job's takes that job's room on
full nodes; the preempted replicas are placed again where there is room,
or wait, saying so.  Jobs at equal priority, and replicas with data on
their node, are never preempted.

Safety is checked on every output (ClusterSim.violations): no node's
running replicas over capacity at any start, every start from an accepted
claim.
"""

from __future__ import annotations

from auction.resources import Resources
from auction.spec import validate
from gossip.config import LOCAL
from node.sim.cluster import ClusterSim
from node.sim.swarm import CLUSTER, FAST, GiB

CFG = LOCAL.replace(enable_compression=False)
CAPS = [Resources(1000, 1 * GiB, 0)] * 3


def make(seed: int, caps=CAPS) -> ClusterSim:
    sim = ClusterSim(seed, len(caps), CFG, placement_config=FAST, cluster_config=CLUSTER, capacities=caps)
    sim.world.bootstrap(seeds="random")
    sim.world.run_for(3)
    return sim


def running(sim: ClusterSim, job: str) -> dict[int, int]:
    return {i: sum(1 for slot in sim.running[i] if slot.rpartition("/")[0] == job) for i in sim.live_indices()}


def fill_with_batch(sim: ClusterSim, **extra) -> None:
    """Two 0.5-cpu replicas on each of the three 1-cpu nodes: nothing else fits."""
    sim.submit(0, validate({"name": "batch", "image": "busybox", "cpu": 0.5, "memory": "64MiB", "replicas": 6,
                            "strategy": "spread", "priority": 20, **extra}))
    assert sim.world.run_until_converged(lambda _: running(sim, "batch") == {0: 2, 1: 2, 2: 2}, 15) is not None


def agent(priority: int):
    return validate({"name": "agent", "image": "busybox", "mode": "global", "cpu": 0.2, "memory": "32MiB",
                     "priority": priority})


def test_a_high_priority_global_job_takes_the_room_of_low_priority_replicas():
    sim = make(31)
    fill_with_batch(sim)
    sim.submit(1, agent(80))
    took = sim.world.run_until_converged(lambda _: running(sim, "agent") == {0: 1, 1: 1, 2: 1}, 10)
    assert took is not None and took < 3.0, running(sim, "agent")
    # One batch replica per node gave way; with no room left anywhere for them they wait.
    sim.world.run_for(10)
    assert running(sim, "batch") == {0: 1, 1: 1, 2: 1} and running(sim, "agent") == {0: 1, 1: 1, 2: 1}
    assert all(n == 1 for n in sim.replica_counts().values())
    pending = sim.world.core(0).view.pending_reasons()
    assert len([s for s in pending if s.startswith("batch/")]) <= 3
    assert not sim.violations, sim.violations


def test_the_preempted_replicas_run_again_where_there_is_room():
    sim = make(32, CAPS + [Resources(4000, 4 * GiB, 0)])
    sim.submit(0, validate({"name": "batch", "image": "busybox", "cpu": 0.5, "memory": "64MiB", "replicas": 8,
                            "strategy": "spread", "priority": 20}))
    assert sim.world.run_until_converged(lambda _: running(sim, "batch") == {0: 2, 1: 2, 2: 2, 3: 2}, 15)
    sim.submit(1, agent(80))
    done = sim.world.run_until_converged(
        lambda _: running(sim, "agent") == {0: 1, 1: 1, 2: 1, 3: 1} and sum(running(sim, "batch").values()) == 8, 20)
    assert done is not None, (running(sim, "agent"), running(sim, "batch"))
    assert running(sim, "batch") == {0: 1, 1: 1, 2: 1, 3: 5}     # each preempted replica went where there is room
    assert all(n == 1 for n in sim.replica_counts().values())
    assert not sim.violations, sim.violations


def test_equal_priorities_and_node_local_data_are_never_preempted():
    sim = make(34)
    fill_with_batch(sim, priority=50)
    sim.submit(1, agent(55))                       # only 5 above: no preemption
    sim.world.run_for(10)
    assert running(sim, "agent") == {0: 0, 1: 0, 2: 0} and running(sim, "batch") == {0: 2, 1: 2, 2: 2}
    assert sim.world.core(2).view.global_refusal("agent").endswith(
        "replicas here at priority 45 or lower (without node-local data) free too little to preempt")

    sim = make(35)
    fill_with_batch(sim, volumes={"data": {"target": "/data"}})
    sim.submit(1, agent(80))                       # batch keeps data on its nodes: not moved
    sim.world.run_for(10)
    assert running(sim, "agent") == {0: 0, 1: 0, 2: 0} and running(sim, "batch") == {0: 2, 1: 2, 2: 2}
    assert not sim.violations, sim.violations
