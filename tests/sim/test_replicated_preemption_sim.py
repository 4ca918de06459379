"""Preemption by replicated jobs in the simulator (auction.preemption): a
job whose priority is at least 10 above another's places its replicas on
the room of that job's replicas when no node has room without, and only
then; the preempted replicas are placed again where there is room, or wait.

Safety is checked on every output (ClusterSim.violations): no node's
running replicas over capacity at any start, every start from an accepted
claim.
"""

from __future__ import annotations

from auction.preemption import PreemptEvent
from auction.resources import Resources
from auction.spec import validate
from node.sim.swarm import GiB
from test_preemption_sim import CAPS, fill_with_batch, make, running  # same directory


def web(priority: int, replicas: int = 2, **extra):
    return validate({"name": "web", "image": "busybox", "cpu": 0.5, "memory": "64MiB", "replicas": replicas,
                     "priority": priority, **extra})


def watch_preemptions(sim) -> list[PreemptEvent]:
    seen: list[PreemptEvent] = []
    sim.world.subscribe(lambda _t, _i, ev: seen.append(ev) if isinstance(ev, PreemptEvent) else None)
    return seen


def victims(seen: list[PreemptEvent]) -> list[str]:
    return [v for e in seen for v in e.victims]


def test_a_high_priority_job_takes_the_room_of_low_priority_replicas_when_none_is_free():
    sim = make(41)
    fill_with_batch(sim)
    seen = watch_preemptions(sim)
    sim.submit(1, web(80))
    took = sim.world.run_until_converged(lambda _: sum(running(sim, "web").values()) == 2, 10)
    assert took is not None and took < 4.0, running(sim, "web")
    sim.world.run_for(10)
    # exactly as many batch replicas gave way as web needed (0.5 cpu each), and they wait: no room anywhere
    assert sum(running(sim, "web").values()) == 2 and sum(running(sim, "batch").values()) == 4
    assert all(n == 1 for n in sim.replica_counts().values())
    gone = victims(seen)
    assert len(gone) == 2 and all(s.startswith("batch/") for s in gone), gone
    assert all(e.job == "web" and e.detail.startswith("priority 80 over batch/") for e in seen), seen
    assert not sim.violations, sim.violations


def test_a_node_with_room_wins_and_nothing_is_preempted():
    sim = make(42, CAPS + [Resources(1000, 1 * GiB, 0)])
    sim.submit(0, validate({"name": "batch", "image": "busybox", "cpu": 0.5, "memory": "64MiB", "replicas": 7,
                            "strategy": "spread", "priority": 20}))
    assert sim.world.run_until_converged(lambda _: sum(running(sim, "batch").values()) == 7, 15) is not None
    [roomy] = [i for i, n in running(sim, "batch").items() if n == 1]     # 2, 2, 2, 1: room for one there
    seen = watch_preemptions(sim)
    sim.submit(1, web(80, replicas=1))
    assert sim.world.run_until_converged(lambda _: sum(running(sim, "web").values()) == 1, 10) is not None
    sim.world.run_for(5)
    assert running(sim, "web")[roomy] == 1 and not seen
    assert sum(running(sim, "batch").values()) == 7
    assert not sim.violations, sim.violations


def test_a_job_less_than_10_above_preempts_nothing():
    for low, high in ((20, 29), (50, 50), (45, 50)):
        sim = make(43)
        fill_with_batch(sim, priority=low)
        seen = watch_preemptions(sim)
        sim.submit(1, web(high))
        sim.world.run_for(10)
        assert sum(running(sim, "web").values()) == 0 and not seen, (low, high)
        # nobody is called on the room of others it may not take: the coordinator says so itself
        reasons = {s: r for i in sim.live_indices() for s, r in sim.world.core(i).view.pending_reasons().items()}
        assert reasons["web/0"] == "no node can fit it (by gossiped free resources and constraints)", reasons
        assert sum(running(sim, "batch").values()) == 6
        assert not sim.violations, sim.violations


def test_the_preempted_are_placed_again_where_there_is_room():
    sim = make(44, CAPS + [Resources(1500, 1 * GiB, 0)])
    sim.submit(0, validate({"name": "filler", "image": "busybox", "cpu": 1.5, "memory": "64MiB", "priority": 90}))
    assert sim.world.run_until_converged(lambda _: running(sim, "filler")[3] == 1, 10) is not None
    sim.submit(0, validate({"name": "batch", "image": "busybox", "cpu": 0.5, "memory": "64MiB", "replicas": 6,
                            "strategy": "spread", "priority": 20}))
    assert sim.world.run_until_converged(lambda _: running(sim, "batch") == {0: 2, 1: 2, 2: 2, 3: 0}, 15)
    seen = watch_preemptions(sim)
    sim.submit(1, web(80, replicas=3, max_per_node=1))   # no node has room: one batch replica each gives way
    assert sim.world.run_until_converged(lambda _: sum(running(sim, "web").values()) == 3, 15) is not None
    sim.world.run_for(5)
    assert len(victims(seen)) == 3 and running(sim, "batch") == {0: 1, 1: 1, 2: 1, 3: 0}
    assert running(sim, "filler")[3] == 1                  # 90: above web, never its victim
    sim.stop_job(0, "filler")
    # room again: the preempted replicas run there (and web, at 80, is never preempted back by batch)
    done = sim.world.run_until_converged(lambda _: running(sim, "batch") == {0: 1, 1: 1, 2: 1, 3: 3}, 15)
    assert done is not None, running(sim, "batch")
    assert sum(running(sim, "web").values()) == 3 and len(victims(seen)) == 3
    assert all(n == 1 for n in sim.replica_counts().values())
    assert not sim.violations, sim.violations


def test_a_slot_that_preempting_would_not_place_says_so():
    sim = make(45)
    fill_with_batch(sim)                                   # 2 x 0.5 cpu (priority 20) on each 1-cpu node
    sim.submit(1, web(80, replicas=1, cpu=1.5))            # more than a whole node: preempting cannot help
    sim.world.run_for(8)
    assert sum(running(sim, "web").values()) == 0 and sum(running(sim, "batch").values()) == 6
    reasons = [r for i in sim.live_indices() for s, r in sim.world.core(i).view.pending_reasons().items()
               if s == "web/0"]
    assert reasons and "its replicas at priority 70 or lower would not make room" in reasons[0], reasons
    assert not sim.violations, sim.violations
