"""Rolling updates in the simulator (auction.rollout, node.sim.checkers_rollout).

What a user would notice, seeded and small (6 nodes, one job):
  * a rollout always ends with every slot on one version (the new one, or
    the one it reverted to), one running copy each;
  * outside partitions, at most max_parallel serving slots are being
    replaced at once (a failed copy is replaced out of turn); during a
    partition in two, at most 2 * max_parallel (each side paces itself: the
    bound in auction.rollout's docstring);
  * no agent counts a new copy healthy before it has run min_healthy_s
    (not even while its holder's runtime has not yet reported the new
    claim: until then "running" is the old copy's);
  * with start-first and room, no slot is ever left without a running copy;
  * a version whose health check fails stops after the first batch and,
    with auto_revert, the job goes back to the version that ran (the old
    copies serving throughout);
  * the same with a node crashing, a partition, and random faults
    (node.sim.faults.swarm) mid-rollout; and, as one property over a few
    seeds, a crash and a partition at seeded moments of every rollout
    (a healthy one, and a failing one that reverts);
  * an automatic revert comes even when its writer restarted mid-rollout
    (the version to go back to is in the job history, not in its memory);
  * a revert ends with every slot on the old version even when the slots
    on the failed version are mostly "starting" (a slow engine restarting
    them) and the revert's own rollout misses a deadline;
  * canaries wait for a promote (or auto_promote); a version that no
    longer fits its node moves through an auction; a job with host ports
    goes stop-first and keeps its ports; changing only replicas or update
    settings replaces nothing.
"""

from __future__ import annotations

import random

import pytest

from auction.placement import PlacementConfig
from auction.resources import Resources
from auction.spec import validate
from gossip.config import LOCAL
from node.core.inputs import SetDrained
from node.core.node_core import ClusterConfig
from node.sim import faults
from node.sim.checkers_catalog import SimRuntime
from node.sim.checkers_rollout import RolloutChecker
from node.sim.cluster import ClusterSim
from auction.rollout import promoted_spec

CFG = LOCAL.replace(enable_compression=False)
GiB = 1 << 30
N = 6
FAST = PlacementConfig(placement_interval_s=0.25, auction_ttl_s=0.1, claim_wait_s=1.0,
                       min_backoff_s=0.2, max_backoff_s=2.0)
CLUSTER = ClusterConfig(store_sync_interval_s=0.5, status_min_interval_s=0.5)
MIN_HEALTHY_S = 2.0
SETTLE_S = 6.0      # after a crash or a heal: failure detection and re-placement


def version(image, replicas=8, fields=None, **update):
    update = {"max_parallel": 2, "min_healthy_s": MIN_HEALTHY_S, "healthy_deadline_s": 8,
              "progress_deadline_s": 20, **update}
    return validate({"name": "web", "image": image, "replicas": replicas, "cpu": 0.25, "memory": "128MiB",
                     **(fields or {}), "update": update})


def make(seed, replicas=8, **runtime_kw):
    sim = ClusterSim(seed, N, CFG, placement_config=FAST, cluster_config=CLUSTER,
                     capacities=[Resources(4000, 8 * GiB, 0)] * N)
    runtime = SimRuntime(sim, **runtime_kw)
    checker = RolloutChecker(sim, runtime, "web", replicas, min_healthy_s=MIN_HEALTHY_S, settle_s=SETTLE_S)
    sim.world.bootstrap(seeds="random")
    sim.world.run_for(3)
    return sim, runtime, checker


def settle(sim, checker, spec, timeout_s=90.0, clocks_drift=False):
    """Run until every slot runs `spec`'s version once and every agent saw the
    rollout end; no agent counted a slot healthy before its new container had
    been reported running for min_healthy_s (unless clocks drift: an agent
    measures min_healthy_s on its own clock)."""
    def done(_):
        return (not checker.versions_problems(spec.container_hash())
                and not any(sim.world.core(i).placement.rollouts.jobs for i in sim.live_indices()))

    took = sim.world.run_until_converged(done, timeout_s, 0.25)
    assert took is not None, (checker.versions_problems(spec.container_hash()),
                              [sim.world.core(i).placement.rollouts.jobs for i in sim.live_indices()])
    assert not sim.violations, sim.violations[:5]
    assert clocks_drift or not checker.early_healthy, checker.early_healthy[:5]
    return took


def job_spec_everywhere(sim):
    return {sim.world.core(i).placement.spec_of(sim.world.core(i).store.get("web")).container_hash()
            for i in sim.live_indices()}


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_a_new_version_reaches_every_replica_paced_and_start_first(seed):
    sim, runtime, checker = make(seed)
    v1, v2 = version("app:1"), version("app:2")
    sim.submit(0, v1)
    settle(sim, checker, v1)
    assert checker.kinds() == []                      # a new job is no rollout
    sim.submit(seed % N, v2)
    took = settle(sim, checker, v2)
    assert checker.kinds().count("replacing") == 8
    assert "done" in checker.kinds() and "failed" not in checker.kinds()
    assert 1 <= checker.max_replacing <= 2            # max_parallel
    assert checker.max_down == 0                      # start-first with room: never a slot without a copy
    print(f"seed {seed}: 8 replicas v1 -> v2 in {took:.1f} s, at most {checker.max_replacing} at once")


@pytest.mark.parametrize("seed", [4, 5])
def test_stop_first_never_takes_more_than_max_parallel_down(seed):
    sim, runtime, checker = make(seed)
    v1, v2 = version("app:1", order="stop-first"), version("app:2", order="stop-first")
    sim.submit(0, v1)
    settle(sim, checker, v1)
    sim.submit(1, v2)
    settle(sim, checker, v2)
    assert 1 <= checker.max_down <= 2
    assert checker.max_replacing <= 2


def test_changes_that_shape_no_container_replace_nothing():
    sim, runtime, checker = make(6)
    v1 = version("app:1")
    sim.submit(0, v1)
    settle(sim, checker, v1)
    starts = sim.starts
    sim.submit(2, version("app:1", max_parallel=3, replicas=10))
    sim.world.run_for(10)
    assert checker.kinds() == [] and sim.starts == starts + 2       # only the two new slots start


@pytest.mark.parametrize("seed", [7, 8])
def test_a_failing_version_stops_after_the_first_batch_and_reverts(seed):
    sim, runtime, checker = make(seed)
    v2, v3 = version("app:2", auto_revert=True), version("app:3", auto_revert=True)
    runtime.failing.add(v3.container_hash())            # v3's health check never passes
    sim.submit(0, v2)
    settle(sim, checker, v2)
    sim.submit(3, v3)
    sim.world.run_for(2)
    assert "replacing" in checker.kinds()
    settle(sim, checker, v2, timeout_s=120.0)            # back on v2 everywhere
    kinds = checker.kinds()
    assert "failed" in kinds and "reverting" in kinds
    # Only the first batch tried v3 (max_parallel 2); the revert was written once.
    tried = {slot for _, _, kind, slot in checker.events[:kinds.index("reverting")] if kind == "replacing"}
    assert len(tried) <= 2
    assert kinds.count("reverting") == 1
    assert job_spec_everywhere(sim) == {v2.container_hash()}
    # The v2 copies kept serving while v3 failed its checks, and through the revert.
    assert checker.max_down == 0
    # The job's history: v2, v3, then the revert naming the version it left.
    history = sim.world.core(1).view.history("web")
    assert [(e.meta.why, e.meta.ref) for e in history[-3:]] == [("submit", ""), ("submit", ""), ("revert", "2")]


def writer_of(sim, spec):
    """The node that writes the job's revert: the coordinator of its slot 0 (auction.rollout)."""
    name = sim.world.core(0).placement._coordination.coordinator_of(spec.name, 0, spec)
    return sim.world.idx(name)


@pytest.mark.parametrize("seed", [17, 18])
def test_the_revert_comes_even_when_its_writer_restarted_mid_rollout(seed):
    """The writer forgets everything it saw of the rollout and of the older
    versions when it restarts: the version to go back to comes from the job
    history (replicated like the job), not from its memory."""
    sim, runtime, checker = make(seed)
    v2, v3 = version("app:2", auto_revert=True), version("app:3", auto_revert=True)
    runtime.failing.add(v3.container_hash())
    sim.submit(0, v2)
    settle(sim, checker, v2)
    writer = writer_of(sim, v3)
    sim.submit((writer + 1) % N, v3)
    sim.world.run_for(2)
    assert "replacing" in checker.kinds() and "failed" not in checker.kinds()
    sim.world.restart(writer)
    settle(sim, checker, v2, timeout_s=120.0)            # back on v2 everywhere
    kinds = checker.kinds()
    assert kinds.count("reverting") == 1 and "revert_impossible" not in kinds, checker.events
    reverted_by = [name for _, name, kind, _ in checker.events if kind == "reverting"]
    assert reverted_by == [sim.world.nodes[writer].name]   # the restarted writer itself
    assert job_spec_everywhere(sim) == {v2.container_hash()}
    history = sim.world.core((writer + 2) % N).view.history("web")
    assert [e.meta.why for e in history[-3:]] == ["submit", "submit", "revert"]


def test_a_failing_version_that_reached_every_slot_reverts_to_the_version_before_it():
    """max_parallel = replicas: every slot's claim moves to v3 at once, so no
    slot serves an older version to name the way back; the job history does."""
    sim, runtime, checker = make(19)
    v2, v3 = version("app:2", auto_revert=True), version("app:3", auto_revert=True, max_parallel=8)
    runtime.failing.add(v3.container_hash())
    sim.submit(0, v2)
    settle(sim, checker, v2)
    sim.submit(1, v3)
    sim.world.run_for(2)
    assert checker.kinds().count("replacing") == 8
    settle(sim, checker, v2, timeout_s=120.0)
    kinds = checker.kinds()
    assert kinds.count("reverting") >= 1 and "revert_impossible" not in kinds, checker.events
    assert job_spec_everywhere(sim) == {v2.container_hash()}
    history = sim.world.core(2).view.history("web")
    assert history[-1].meta.why == "revert" and history[-2].meta.why in ("submit", "revert")


def test_a_revert_that_fails_in_turn_is_not_reverted_again():
    """v3 fails and goes back to v2; v2 now fails too (say, what it needs is
    gone): the revert stops there, for an operator, rather than go back to v3."""
    sim, runtime, checker = make(23)
    v2, v3 = version("app:2", auto_revert=True), version("app:3", auto_revert=True, max_parallel=8)
    runtime.failing.add(v3.container_hash())
    sim.submit(0, v2)
    settle(sim, checker, v2)
    sim.submit(1, v3)
    sim.world.run_until_converged(lambda _: "reverting" in checker.kinds(), 60.0, 0.25)
    runtime.failing.add(v2.container_hash())
    sim.world.run_for(60.0)
    kinds = checker.kinds()
    assert kinds[kinds.index("reverting") + 1:].count("failed") >= 1, kinds
    # Never back to v3.  Every revert goes to v2: when the designated writer
    # missed the rollout (here it learned v3 only once every slot ran it),
    # any agent that saw v3 fail writes the revert a deadline later, and two
    # may do so within the same instant (auction.rollout: the same spec).
    back_to_v2 = f"back to {v2.container_hash()[:12]}"
    assert all(d == back_to_v2 for d in checker.details("reverting")), checker.details("reverting")
    assert job_spec_everywhere(sim) == {v2.container_hash()}


@pytest.mark.parametrize("seed", [24, 25, 26])
def test_a_revert_whose_own_rollout_misses_a_deadline_still_ends_on_the_old_version(seed):
    """As on a loaded Docker engine: each v3 container fails its health check,
    and the runtime's restart of it then takes long (its starts time out and
    back off: "starting" for 50 s, `restart_failing`).  The v3 rollout fails
    for want of progress and reverts; the revert's own rollout has its slots
    on v2 healthy at once, then waits on the v3 slots, which are only
    "starting" (a slot replaced out of turn is one its holder reports
    failed), past v2's progress_deadline_s: the revert is judged failed.  It
    must not stop there with slots left on v3: the version it leaves is the
    one that failed, and nothing else would bring them back (a revert is not
    reverted again)."""
    sim, runtime, checker = make(seed, restart_failing=(0.5, 50.0))
    v2, v3 = version("app:2", auto_revert=True), version("app:3", auto_revert=True)
    runtime.failing.add(v3.container_hash())
    sim.submit(0, v2)
    settle(sim, checker, v2)
    sim.submit(3, v3)
    assert sim.world.run_until_converged(lambda _: "reverting" in checker.kinds(), 60.0, 0.25) is not None
    settle(sim, checker, v2, timeout_s=120.0)            # back on v2 everywhere, once each
    assert checker.kinds().count("reverting") == 1
    assert job_spec_everywhere(sim) == {v2.container_hash()}
    assert checker.max_down == 0                         # the v2 copies served throughout


def roll_out_failing(seed, good, failing, writer=0):
    """`good` running and settled, then `failing` (its health check never
    passes) written at node `writer`."""
    sim, runtime, checker = make(seed)
    runtime.failing.add(failing.container_hash())
    sim.submit(0, good)
    settle(sim, checker, good)
    sim.submit(writer, failing)
    return sim, runtime, checker


def test_a_failing_version_without_auto_revert_stops_and_stays():
    v2, v3 = version("app:2"), version("app:3")
    sim, runtime, checker = roll_out_failing(9, v2, v3, writer=3)
    sim.world.run_for(40)
    kinds = checker.kinds()
    assert "failed" in kinds and "reverting" not in kinds
    assert checker.kinds().count("replacing") <= 2          # nothing after the first batch
    on_v3 = [i for i in range(8) if sim.world.core(0).placement.winning_claim(f"web/{i}").spec_hash
             == v3.container_hash()]
    assert len(on_v3) <= 2


@pytest.mark.parametrize("seed", [14, 15, 16])
def test_slots_lost_while_a_failing_version_rolls_out_come_back_on_the_version_they_ran(seed):
    """v3 fails its health check and there is no auto_revert: the rollout
    stops after its first batch, as an operator asked.  A node holding v2
    slots then dies.  Its slots used to be placed again on v3, the job's
    spec, and fail there too: every node lost took more of the job down, for
    good.  As a Deployment's old ReplicaSet keeps its count, a slot lost
    during a rollout comes back on the version it ran; the rollout moves it
    when its turn comes."""
    spread = {"strategy": "spread"}
    v2, v3 = version("app:2", 8, spread), version("app:3", 8, spread)
    sim, runtime, checker = roll_out_failing(seed, v2, v3)
    sim.world.run_for(1.0)
    old = v2.container_hash()

    def serving_old(i):
        return {slot for slot, box in runtime.containers[i].items() if box[0] == "running" and box[2] == old}
    victim = max(range(1, N), key=lambda i: (len(serving_old(i)), -i))
    lost = serving_old(victim)
    assert lost
    sim.world.crash(victim)
    sim.world.run_for(20)
    live = [i for i in range(N) if i != victim]
    back = {slot for i in live for slot in serving_old(i)}
    assert lost <= back, (sorted(lost), sorted(back))
    on_v3 = {slot for i in live for slot, box in runtime.containers[i].items() if box[2] == v3.container_hash()}
    assert len(on_v3) <= 2, sorted(on_v3)                # the first batch alone
    assert len(back) == 8 - len(on_v3)


@pytest.mark.parametrize("seed", [10, 11])
def test_a_node_crashing_mid_rollout(seed):
    sim, runtime, checker = make(seed)
    v1, v2 = version("app:1"), version("app:2")
    sim.submit(0, v1)
    settle(sim, checker, v1)
    sim.submit(0, v2)
    sim.world.run_for(3)
    victim = max(range(1, N), key=lambda i: (len(runtime.containers[i]), -i))
    sim.world.crash(victim)
    sim.world.run_for(10)
    sim.world.restart(victim)
    settle(sim, checker, v2)
    assert checker.max_replacing_calm <= 2
    assert checker.max_down == 0                         # outside the crash's own window, no slot lost its copy


@pytest.mark.parametrize("seed", [12, 13])
def test_a_partition_mid_rollout_each_side_paces_itself(seed):
    sim, runtime, checker = make(seed)
    spread = {"strategy": "spread", "max_per_node": 3}       # both sides hold slots
    v1, v2 = version("app:1", 8, spread, max_parallel=1), version("app:2", 8, spread, max_parallel=1)
    sim.submit(0, v1)
    settle(sim, checker, v1)
    sim.submit(0, v2)
    sim.world.run_for(1)
    split_at = sim.world.now
    faults.partition(sim.world, faults.halves(sim.world), heal_after=20.0)
    sim.world.run_for(21)
    assert checker.max_replacing <= 2                    # max_parallel per side
    sides = {name < "node-3" for t, name, kind, _ in checker.events if kind == "replacing" and t > split_at + 1}
    assert sides == {True, False}                        # both sides went on replacing while split
    settle(sim, checker, v2, timeout_s=120.0)
    assert checker.max_replacing <= 2
    assert checker.max_replacing_calm <= 1


def test_a_version_that_no_longer_fits_its_node_moves_through_an_auction():
    sim = ClusterSim(14, N, CFG, placement_config=FAST, cluster_config=CLUSTER,
                     capacities=[Resources(4000, 1 * GiB, 0)] * N)
    runtime = SimRuntime(sim)
    checker = RolloutChecker(sim, runtime, "web", 8, min_healthy_s=MIN_HEALTHY_S, settle_s=SETTLE_S)
    sim.world.bootstrap(seeds="random")
    sim.world.run_for(3)
    v1 = version("app:1", fields={"memory": "256MiB"})
    v2 = version("app:2", fields={"memory": "512MiB"})    # binpacked nodes are full: no room in place
    sim.submit(0, v1)
    settle(sim, checker, v1)
    sim.submit(0, v2)
    settle(sim, checker, v2, timeout_s=120.0)
    assert "moving" in checker.kinds()
    assert checker.max_down <= 2                           # a moving slot is down; still paced
    assert not any(sim.world.core(i).view.overcommit(sim.world.nodes[i].local(sim.world.now))
                   for i in sim.live_indices())


@pytest.mark.parametrize("seed", [15, 16])
def test_canaries_first_then_the_rest_after_a_promote(seed):
    sim, runtime, checker = make(seed)
    v1, v2 = version("app:1", canary=2, max_parallel=3), version("app:2", canary=2, max_parallel=3)
    sim.submit(0, v1)
    settle(sim, checker, v1)
    sim.submit(1, v2)
    waiting = sim.world.run_until_converged(lambda _: "waiting_promotion" in checker.kinds(), 30.0, 0.25)
    assert waiting is not None
    sim.world.run_for(25)                                # longer than progress_deadline_s: waiting is no failure
    new = v2.container_hash()
    on_new = {i for i in range(8) if sim.world.core(2).placement.winning_claim(f"web/{i}").spec_hash == new}
    assert on_new == {0, 1} and "failed" not in checker.kinds()
    sim.submit(4, promoted_spec(v2))                     # shoal job promote
    settle(sim, checker, promoted_spec(v2))
    assert checker.kinds().count("replacing") == 8 and checker.max_replacing <= 3


def test_auto_promote_lets_the_rest_follow_once_the_canaries_are_healthy():
    sim, runtime, checker = make(17)
    v1 = version("app:1", canary=1, auto_promote=True)
    v2 = version("app:2", canary=1, auto_promote=True)
    sim.submit(0, v1)
    settle(sim, checker, v1)
    sim.submit(1, v2)
    settle(sim, checker, v2)
    kinds = checker.kinds()
    first_promote = kinds.index("promoted")
    assert [k for k in kinds[:first_promote] if k == "replacing"] == ["replacing"]   # the canary alone first


def test_every_agent_can_say_how_far_a_rollout_is():
    sim, runtime, checker = make(18)
    v1, v2 = version("app:1", max_parallel=1), version("app:2", max_parallel=1)
    sim.submit(0, v1)
    settle(sim, checker, v1)
    assert sim.world.core(3).view.rollout("web") is None
    sim.submit(0, v2)
    sim.world.run_for(3)
    seen = sim.world.core(3).view.rollout("web")
    assert seen["target"] == v2.container_hash() and len(seen["slots"]) == 8 and seen["failed"] is None
    assert seen["counts"].get("old-serving", 0) >= 6 and seen["counts"].get("new-healthy", 0) <= 1
    settle(sim, checker, v2)
    assert all(sim.world.core(i).view.rollout("web") is None for i in sim.live_indices())


@pytest.mark.parametrize("seed", range(30, 36))
def test_a_rollout_under_random_faults_ends_on_one_version(seed):
    """Crashes, pauses, partitions, clock drift, loss and duplication (node.sim.faults.swarm)
    for 40 s from the moment v2 is submitted; after the heal every slot runs v2, once."""
    sim, runtime, checker = make(seed)
    slow = {"progress_deadline_s": 600, "healthy_deadline_s": 300}      # faults are not a failed version
    v1, v2 = version("app:1", **slow), version("app:2", **slow)
    sim.submit(0, v1)
    settle(sim, checker, v1)
    sim.submit(0, v2)
    plan = faults.swarm(sim.world, sim.world.now, sim.world.now + 40.0)
    sim.world.run_for(40.0)
    settle(sim, checker, v2, timeout_s=180.0, clocks_drift=True)
    assert "failed" not in checker.kinds(), plan
    assert checker.max_replacing_calm <= 2, plan
    # (No max_down check here: with message loss and clock drift, slots lose
    # their copy for a moment with or without a rollout -- the same seeds
    # without one show it too; the crash-and-partition property below checks it.)


def test_a_job_with_host_ports_rolls_stop_first_and_keeps_its_ports():
    sim, runtime, checker = make(19)
    ports = {"ports": {"http": {"to": 8080}}}
    v1, v2 = version("app:1", 8, ports), version("app:2", 8, ports)
    sim.submit(0, v1)
    settle(sim, checker, v1)
    before = {f"web/{i}": sim.world.core(0).placement.winning_claim(f"web/{i}") for i in range(8)}
    sim.submit(0, v2)
    settle(sim, checker, v2)
    after = {slot: sim.world.core(0).placement.winning_claim(slot) for slot in before}
    # Two copies could not both bind the port: stop-first, paced.
    assert all(detail == "stop-first" for detail in checker.details("replacing"))
    assert 1 <= checker.max_down <= 2
    assert all((after[s].node, after[s].ports) == (before[s].node, before[s].ports) for s in before)


@pytest.mark.parametrize("seed", [20, 21, 22])
def test_a_drain_starts_each_replacement_before_it_stops_the_old_copy(seed):
    sim, runtime, checker = make(seed)
    v1 = version("app:1", 8, {"strategy": "spread"})
    sim.submit(0, v1)
    settle(sim, checker, v1)
    victim = max(range(1, N), key=lambda i: (len(runtime.containers[i]), -i))
    assert runtime.containers[victim]
    sim.world.feed(victim, SetDrained(True))

    def moved(_):
        return not runtime.containers[victim] and not checker.versions_problems(v1.container_hash())

    assert sim.world.run_until_converged(moved, 60.0, 0.25) is not None
    assert checker.max_down == 0                          # every moved slot ran somewhere all along


@pytest.mark.parametrize("seed", [50, 51, 52, 53])
def test_property_a_crash_and_a_partition_during_every_rollout(seed):
    """The three properties of a rollout, with one node crashing (and coming
    back) and the cluster split in two, at seeded moments while it runs:
    it ends with every slot on one version (the new one; or, for the odd
    seeds, whose new version fails its health check, the one it reverted
    to), once each; outside partitions and crash windows at most
    max_parallel slots are being replaced at once; and there (room for
    start-first: 6 nodes of 4 cpu, 8 slots of 0.25) no slot is ever left
    without a running copy."""
    rng = random.Random(seed)
    failing = seed % 2 == 1
    sim, runtime, checker = make(seed)
    v1 = version("app:1", auto_revert=True)
    v2 = version("app:2", auto_revert=True, **({} if failing else {"healthy_deadline_s": 300,
                                                                   "progress_deadline_s": 600}))
    if failing:
        runtime.failing.add(v2.container_hash())
    sim.submit(0, v1)
    settle(sim, checker, v1)
    sim.submit(rng.randrange(N), v2)
    t0 = sim.world.now
    victim = rng.randrange(1, N)
    crash_at = t0 + rng.uniform(0.5, 6.0)
    faults.crash(sim.world, victim, at=crash_at)
    faults.restart(sim.world, victim, at=crash_at + rng.uniform(2.0, 8.0))
    faults.partition(sim.world, faults.halves(sim.world), at=t0 + rng.uniform(1.0, 10.0),
                     heal_after=rng.uniform(3.0, 15.0))
    sim.world.run_for(30.0)
    end = v1 if failing else v2
    settle(sim, checker, end, timeout_s=180.0)
    assert not checker.versions_problems(end.container_hash())
    assert job_spec_everywhere(sim) == {end.container_hash()}
    assert ("reverting" in checker.kinds()) is failing, checker.kinds()
    assert checker.max_replacing_calm <= 2, checker.events
    assert checker.max_down == 0, checker.events
