"""How long a rolling update takes, against its floor (the simulator).

The scene of the testbed benchmark (scripts/bench/rollout_bench.py, R=10):
5 nodes with default agent settings (`lan` gossip, 1 s placement passes,
default status publishing), 10 replicas spread, start-first, max_parallel 2,
min_healthy_s 1.  A new container takes START_S to run (create, start and
its first passing health check, as Docker runs it one interval after the
start).  The floor of a batch is START_S + min_healthy_s: nothing can let
the next batch go sooner.  What a user would notice:

  * each holder's new container starts as soon as its holder moved the slot
    (the runtime's per-node rule, node.runtime.decision.rolling_allowed,
    which the simulated runtime applies, must not hold back a second slot
    of the same batch on the same node: that doubled a batch's time);
  * the whole rollout ends within its floor (4 batches of START_S +
    min_healthy_s, then the last one's START_S) plus a few tenths of a
    second of gossip and reporting per batch -- also when gossip missed
    one member with a holder's status record (seed 1: node-2 never got
    node-0's record saying web/6 ran, and waited 3.2 s for node-0's next
    publication, until node.core.publish repeated such records), and
    when a holder's record after it moved its slot waited out the 1 s
    publication interval (seeds 1, 2, 6, 9 took 13.97-14.17 s against a
    floor of 12.5 s; now such a record is urgent).
"""

from __future__ import annotations

import pytest

from auction.resources import Resources
from auction.rollout import RolloutEvent
from auction.spec import validate
from gossip.config import LAN
from node.sim.checkers_catalog import UP, SimRuntime
from node.sim.cluster import ClusterSim

GiB = 1 << 30
N = 5
REPLICAS = 10
MAX_PARALLEL = 2
MIN_HEALTHY_S = 1.0
START_S = 1.7       # docker create + start, then the first health probe one 1 s interval later
# Per batch: the holder of the next slot learns from gossip that the last
# one runs (a status record, 0.1-0.3 s here) and counts min_healthy_s from
# then.  The per-node hold-back cost a whole START_S; a holder's record
# after it moved a slot, held back by the 1 s publication interval, up to
# another 1 s (its other slots of the job read as unknown meanwhile).
SLACK_S = 0.28 * -(-REPLICAS // MAX_PARALLEL)


def version(image: str):
    return validate({"name": "web", "image": image, "replicas": REPLICAS, "cpu": 0.05, "memory": "16MiB",
                     "strategy": "spread", "update": {"max_parallel": MAX_PARALLEL, "min_healthy_s": MIN_HEALTHY_S,
                                                      "order": "start-first"}})


@pytest.mark.parametrize("seed", [1, 2, 3, 4, 6, 9])
def test_a_rollout_takes_its_floor_per_batch(seed):
    sim = ClusterSim(seed, N, LAN.replace(enable_compression=False), capacities=[Resources(8000, 16 * GiB, 0)] * N)
    runtime = SimRuntime(sim, start_delay_s=START_S)
    sim.world.bootstrap(seeds="random")
    sim.world.run_for(5)
    sim.submit(0, version("app:1"))
    sim.world.run_for(30)
    v2 = version("app:2")
    target = v2.container_hash()
    moved: dict[str, float] = {}     # slot -> when its holder moved it (the rollout permitted it)
    up: dict[str, float] = {}        # slot -> when its new container ran

    def on_event(t, i, ev):
        if ev.__class__ is RolloutEvent and ev.kind == "replacing":
            moved.setdefault(ev.slot, t)

    def on_report(i):
        for slot, box in runtime.containers[i].items():
            if box[2] == target and box[0] == UP:
                up.setdefault(slot, sim.world.now)

    sim.world.subscribe(on_event)
    runtime.on_report.append(on_report)
    t0 = sim.world.now
    sim.submit(1, v2)
    took = sim.world.run_until_converged(lambda _: len(up) == REPLICAS, 120, 0.05)
    assert took is not None, (moved, up)
    assert not sim.violations, sim.violations[:5]
    # Every new container ran START_S after its holder moved the slot (plus
    # the runtime's report): none waited for another slot's hand-over.
    waited = {slot: round(up[slot] - moved[slot] - START_S, 2) for slot in up}
    assert max(waited.values()) < 0.2, waited
    batches = -(-REPLICAS // MAX_PARALLEL)
    floor_s = (batches - 1) * (START_S + MIN_HEALTHY_S) + START_S
    finished = max(up.values()) - t0
    assert finished <= floor_s + SLACK_S, (finished, floor_s, waited)
