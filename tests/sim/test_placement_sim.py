"""Decentralized placement in the simulator.

Safety is checked on every output while faults run (ClusterSim.violations):
no ledger over capacity, every start traces to an accepted award, at most one
accepted award per (slot, ballot).  Liveness after the network heals and
faults stop: every slot that fits somewhere runs exactly once.
"""

from __future__ import annotations

import math
import random
import re

import pytest

from auction.resources import Resources
from gossip.config import LAN, LOCAL, WAN
from node.core.inputs import ImageInventory, ReplicaGaveUp
from node.core.node_core import ClusterConfig
from auction.placement import PlacementConfig
from auction.placement_outputs import AwardAccepted
from node.sim import faults
from node.sim.cluster import ClusterSim
from node.sim.swarm import CLUSTER, COMFORTABLE_FIT, FAST, GiB, draw_capacities, fit_ratio, job

CFG = LOCAL.replace(enable_compression=False)


def make(seed, n, **kw):
    sim = ClusterSim(seed, n, CFG, placement_config=FAST, cluster_config=CLUSTER, **kw)
    sim.world.bootstrap(seeds="random")
    sim.world.run_for(3)
    return sim


def settle(sim, specs, timeout=60.0):
    took = sim.world.run_until_converged(lambda _: not sim.placement_problems(specs), timeout)
    return took


def test_a_job_is_placed_exactly_once_per_slot():
    sim = make(1, 5)
    spec = job("web", 10)
    sim.submit(2, spec)
    took = settle(sim, [spec], timeout=10)
    assert took is not None, sim.placement_problems([spec])
    assert not sim.violations
    # Placed as a batch: one round, not ten sequential ones.
    assert took < 2.0


def test_killed_node_replicas_are_healed_elsewhere_once():
    sim = make(2, 6)
    spec = job("api", 12)
    sim.submit(0, spec)
    assert settle(sim, [spec], timeout=10) is not None
    victim = next(i for i in range(1, 6) if sim.running[i])
    sim.world.crash(victim)
    took = settle(sim, [spec], timeout=30)
    assert took is not None, sim.placement_problems([spec])
    assert not sim.violations


def test_a_suspected_nodes_replicas_move_when_its_grace_ends_not_at_the_next_periodic_pass():
    # A suspect keeps its slots for a grace (auction.suspicion_rule), then
    # they are re-placed.  The re-auction must start when the grace ends, not
    # at the next periodic placement pass: with the pass every 30 s here,
    # only the grace's own timer can be the trigger, and the replicas must
    # run again before anyone has declared the node dead (lan: suspicion
    # ~1-2 s after the crash, grace 2 s, failure 4 s or more after it).
    from auction.suspicion_rule import GRACE_SHARE
    from gossip.events import MemberFailed, MemberSuspected

    cfg = LAN.replace(enable_compression=False)
    grace_s = GRACE_SHARE * cfg.suspicion_base_min_timeout_s()
    sim = ClusterSim(4, 6, cfg, cluster_config=CLUSTER,
                     placement_config=PlacementConfig(placement_interval_s=30.0, auction_ttl_s=0.1,
                                                      claim_wait_s=1.0, min_backoff_s=0.2))
    sim.world.bootstrap(seeds="random")
    sim.world.run_for(3)
    spec = job("api", 12)
    sim.submit(0, spec)
    assert settle(sim, [spec], timeout=40) is not None, sim.placement_problems([spec])
    victim = next(i for i in range(1, 6) if sim.running[i])
    victim_name = f"node-{victim}"
    first: dict[str, float] = {}

    def watch(t, _i, ev):
        if isinstance(ev, (MemberSuspected, MemberFailed)) and ev.member.name == victim_name:
            first.setdefault(type(ev).__name__, t)

    sim.world.subscribe(watch)
    sim.world.crash(victim)
    took = sim.world.run_until_converged(lambda _: not sim.placement_problems([spec]), 30, check_every=0.02)
    assert took is not None, sim.placement_problems([spec])
    assert not sim.violations
    healed_at = sim.world.now
    assert "MemberSuspected" in first
    assert healed_at < first.get("MemberFailed", float("inf")), (first, healed_at)
    assert grace_s <= healed_at - first["MemberSuspected"] < grace_s + 1.0, (first, healed_at)


def test_a_coordinator_hears_of_its_awards_claims_without_waiting_for_gossip():
    # A coordinator that has not seen the winner's claim claim_wait_s after
    # an award re-auctions the slot.  In a large busy cluster a claim takes
    # seconds to reach a given node by gossip (at 500 simulated nodes, p90
    # 3.9 s from award to coordinator, over the 3 s default), and every such
    # re-auction moved a slot that already ran: a second copy started and
    # ran until the first holder heard of the newer claim.  Here gossip is
    # slowed the same way (no periodic gossip, a probe every 2 s, anti-entropy
    # every 30 s) against claim_wait_s = 0.5 s: each slot must still be
    # awarded exactly once, because the winner tells the coordinator itself.
    slow = LOCAL.replace(enable_compression=False, gossip_interval_s=30.0, probe_interval_s=2.0,
                         probe_timeout_s=1.0)
    sim = ClusterSim(7, 6, slow,
                     cluster_config=ClusterConfig(store_sync_interval_s=30.0, status_min_interval_s=0.5),
                     placement_config=PlacementConfig(placement_interval_s=0.25, auction_ttl_s=0.1,
                                                      claim_wait_s=0.5, min_backoff_s=0.2, max_backoff_s=2.0))
    sim.world.bootstrap(seeds="random")
    sim.world.run_for(3)
    accepted: list[tuple[str, str]] = []
    sim.world.subscribe(lambda t, i, ev: accepted.append((ev.claim.name, ev.claim.node))
                        if isinstance(ev, AwardAccepted) else None)
    spec = job("web", 8)
    sim.submit(0, spec)
    assert settle(sim, [spec], timeout=60) is not None, sim.placement_problems([spec])
    sim.world.run_for(10)
    assert not sim.placement_problems([spec])
    assert not sim.violations
    assert sorted(name for name, _ in accepted) == sorted(f"web/{i}" for i in range(8)), accepted


def test_claims_churning_elsewhere_do_not_make_every_agent_republish_its_status():
    # Every claim moves every agent's claims digest, which its status record
    # carries.  Publishing each move cost one status broadcast per agent per
    # status_min_interval_s while placement ran (at 500 simulated nodes ~450
    # a second, more than gossip can carry: suspicions of crashed nodes then
    # reached some agents 10+ s late).  A digest-only change now waits until
    # the digests are still; it is published then, so peers still converge.
    from gossip.events import PayloadUpdated

    n = 12
    labels = [{"pool": "busy" if i < 4 else "idle"} for i in range(n)]
    sim = make(3, n, labels=labels)
    published = [0] * n
    sim.world.subscribe(lambda t, i, ev: published.__setitem__(i, published[i] + 1)
                        if isinstance(ev, PayloadUpdated) and ev.node == f"node-{i}" else None)
    # Claims keep changing for 6 s: a 2-replica job every 0.3 s, all held by
    # the "busy" nodes, submitted through the idle ones.
    specs = [job(f"j{k}", 2, cpu=0.1, memory="64MiB", constraints=["pool == busy"]) for k in range(20)]
    for k, spec in enumerate(specs):
        sim.world.at(sim.world.now + 0.3 * k, sim.submit, 4 + k % (n - 4), spec)
    sim.world.run_for(6.5)
    during = list(published)
    assert settle(sim, specs, timeout=30) is not None, sim.placement_problems(specs)
    sim.world.run_for(5)
    assert not sim.violations
    # Idle agents: nothing of their own changed (was 13 publications each).
    assert max(during[4:]) <= 2, during
    # ... and once the claims are still, everyone shows everyone's digests.
    for i in range(n):
        view = sim.world.core(i).view
        mine = view.claims_digest()
        assert all(s.claims_digest == mine for s in view.live_statuses().values()), i
        assert all(s.store_digest == view.store_digest() for s in view.live_statuses().values()), i


def test_scale_down_retires_highest_indices_and_delete_stops_everything():
    sim = make(3, 4)
    sim.submit(0, job("w", 8))
    assert settle(sim, [job("w", 8)], timeout=10) is not None
    sim.submit(1, job("w", 3))
    assert settle(sim, [job("w", 3)], timeout=10) is not None
    assert set(sim.replica_counts()) == {"w/0", "w/1", "w/2"}
    sim.stop_job(2, "w")
    assert sim.world.run_until_converged(lambda _: not sim.replica_counts(), 10) is not None
    assert not sim.violations


def test_a_slot_that_fits_nowhere_stays_pending_with_a_reason():
    sim = make(4, 3, capacities=[Resources(1000, 2 * GiB, 0)] * 3)
    big = job("big", 1, cpu=2.0)
    sim.submit(0, big)
    sim.world.run_for(5)
    assert sim.replica_counts() == {}
    reasons = [sim.world.core(i).view.pending_reasons().get("big/0") for i in range(3)]
    assert any(r for r in reasons), reasons
    assert not sim.violations


def test_spread_over_three_racks_and_losing_a_rack_loses_at_most_a_third():
    labels = [{"rack": "abc"[i % 3]} for i in range(9)]
    sim = make(5, 9, labels=labels)
    spec = job("s", 9, spread="rack")
    sim.submit(0, spec)
    assert settle(sim, [spec], timeout=10) is not None
    per_rack = {"a": 0, "b": 0, "c": 0}
    for i in sim.live_indices():
        per_rack[labels[i]["rack"]] += len(sim.running[i])
    assert per_rack == {"a": 3, "b": 3, "c": 3}
    # Kill rack b: at most ceil(9/3) replicas lost, and they come back.
    before = sum(sim.replica_counts().values())
    for i in range(9):
        if labels[i]["rack"] == "b":
            sim.world.crash(i)
    after = sum(sim.replica_counts().values())
    assert before - after <= math.ceil(9 / 3)
    assert settle(sim, [spec], timeout=30) is not None


def test_partition_both_sides_keep_placing_and_merge_to_exactly_once():
    sim = make(6, 6)
    spec = job("p", 6)
    sim.submit(0, spec)
    assert settle(sim, [spec], timeout=10) is not None
    faults.partition(sim.world, [[0, 1], [2, 3, 4, 5]])
    sim.world.run_for(15)
    # Each side re-placed the other side's slots on itself.
    side_a = sum(len(sim.running[i]) for i in (0, 1))
    side_b = sum(len(sim.running[i]) for i in (2, 3, 4, 5))
    assert side_a == 6 and side_b == 6, (side_a, side_b)
    faults.heal(sim.world)
    assert settle(sim, [spec], timeout=60) is not None, sim.placement_problems([spec])
    assert not sim.violations


def _swarm_case(seed: int, n: int | None = None, fault_window_s: float = 25.0, config=CFG) -> None:
    rng = random.Random(seed)
    n = n or rng.choice([5, 5, 6, 8, 10, 12])
    caps = draw_capacities(rng, n)
    sim = ClusterSim(seed, n, config, placement_config=FAST, cluster_config=CLUSTER, capacities=caps)
    w = sim.world
    w.bootstrap(seeds="random")
    w.run_for(2)
    specs = []
    for k in range(rng.randint(1, 4)):
        s = job(f"j{k}", rng.randint(1, 2 * n), cpu=rng.choice([0.25, 0.5, 1.0]),
                memory=rng.choice(["128MiB", "512MiB", "1GiB"]))
        specs.append(s)
        sim.submit(rng.randrange(n), s)
    plan = faults.swarm(w, w.now + 1, w.now + 1 + fault_window_s, mean_gap_s=3.0)
    w.run_for(fault_window_s + 2)
    assert not sim.violations, f"seed {seed}\n{plan}\n" + "\n".join(sim.violations[:5])
    # Liveness: after heal, everything that fits runs exactly once
    # (node.sim.swarm: comfortably fits, fragmentation cannot strand a replica).
    def no_duplicates(_):
        return all(v == 1 for v in sim.replica_counts().values())

    if fit_ratio(specs, caps) <= COMFORTABLE_FIT:  # comfortably fits: must all run, exactly once
        took = w.run_until_converged(lambda _: not sim.placement_problems(specs), timeout=90)
        assert took is not None, f"seed {seed}\n{plan}\n{sim.placement_problems(specs)[:5]}"
    # Whatever fits: within the bound, no slot runs twice (right after the
    # heal, both sides of a partition may still run a copy).
    took = w.run_until_converged(no_duplicates, timeout=90)
    assert took is not None, f"seed {seed}: duplicates {sim.replica_counts()}\n{plan}"
    assert not sim.violations, f"seed {seed}\n{plan}\n" + "\n".join(sim.violations[:5])


# Seeds 0..49 run in every suite run (~0.6 s of CPU each), 50..99 in the
# large tier (`scripts/test --large`); scripts/sim-sweep runs the same case
# for as many seeds from 100 on as one cares to wait for.
SWARM_SEEDS_IN_CI = 50
SWARM_SEEDS_IN_LARGE = 100
SWARM_SEEDS = [*range(SWARM_SEEDS_IN_CI),
               *(pytest.param(s, marks=pytest.mark.large) for s in range(SWARM_SEEDS_IN_CI, SWARM_SEEDS_IN_LARGE))]


@pytest.mark.parametrize("seed", SWARM_SEEDS)
def test_swarm_safety_and_liveness(seed):
    _swarm_case(seed)


# 100 nodes is the large tier: ~27 s of CPU, a quarter of this file's.
@pytest.mark.slow
@pytest.mark.timeout(900)
@pytest.mark.parametrize("seed,n", [(1001, 50), pytest.param(1002, 100, marks=pytest.mark.large)])
def test_swarm_at_50_and_100_nodes(seed, n):
    # The lan preset: a quarter of local's protocol traffic per virtual
    # second, which is what keeps 100 simulated agents affordable in CI.
    _swarm_case(seed, n=n, fault_window_s=20.0, config=LAN.replace(enable_compression=False))


def test_a_crash_looping_replica_moves_to_another_node():
    sim = make(8, 3)
    spec = job("flaky", 1)
    sim.submit(0, spec)
    assert settle(sim, [spec], timeout=10) is not None
    first = next(i for i in range(3) if sim.running[i])
    sim.world.feed(first, ReplicaGaveUp("flaky/0", "exited 1 five times"))
    took = sim.world.run_until_converged(
        lambda _: not sim.placement_problems([spec]) and not sim.running[first], timeout=20)
    assert took is not None, (sim.replica_counts(), [len(r) for r in sim.running])
    assert not sim.violations


def test_a_new_version_is_placed_at_once_where_the_last_one_failed_everywhere():
    """Every node gave up on v1 (its image could be pulled nowhere, say):
    each declines v1's calls for a minute, so the slot waits.  v2 -- the
    fix, or `shoal job rollback` -- changes the container, and the nodes
    bid for it at once.  (They declined v2 too, for the rest of the minute
    after the last failure: the penalty named the job, not the version.)"""
    sim = make(10, 3)
    v1 = job("app", 1)
    sim.submit(0, v1)
    assert settle(sim, [v1], timeout=10) is not None
    failed: set[int] = set()
    while len(failed) < 3:
        holder = next(i for i in range(3) if "app/0" in sim.running[i])
        assert holder not in failed, "a node that gave up on v1 took it again within the minute"
        sim.world.feed(holder, ReplicaGaveUp("app/0", "image busybox could not be pulled"))
        failed.add(holder)
        took = sim.world.run_until_converged(
            lambda _: len(failed) == 3 or any("app/0" in sim.running[i] for i in set(range(3)) - failed),
            timeout=10)
        assert took is not None, f"v1 not placed again after {sorted(failed)} gave up"
    sim.world.run_for(3)
    assert not any("app/0" in sim.running[i] for i in range(3))    # every node declines v1
    v2 = job("app", 1, image="busybox:2")
    sim.submit(1, v2)
    took = settle(sim, [v2], timeout=10)
    assert took is not None and took < 3.0, (took, sim.placement_problems([v2]))
    assert not sim.violations


def test_with_pull_never_nodes_without_the_image_decline_and_say_why():
    sim = make(9, 3)
    for i in range(3):
        sim.world.feed(i, ImageInventory(frozenset({"other:latest"} if i != 2 else {"busybox:latest"})))
    spec = job("img", 2, pull="never")
    sim.submit(0, spec)
    assert settle(sim, [spec], timeout=10) is not None
    assert set(sim.running[2]) == {"img/0", "img/1"}
    for i in range(3):
        sim.world.feed(i, ImageInventory(frozenset({"other:latest"})))
    sim.submit(1, job("img2", 1, memory="128MiB", pull="never"))
    sim.world.run_for(3)
    reasons = [sim.world.core(i).view.pending_reasons().get("img2/0") for i in range(3)]
    assert any(r and re.search(r"image busybox is not on (node-\d|each) \(pull = never\)", r) for r in reasons), reasons


def test_the_node_that_has_the_image_wins_a_tie():
    sim = make(9, 3)
    for i in range(3):
        sim.world.feed(i, ImageInventory(frozenset({"other:latest"} if i != 1 else {"busybox:latest"})))
    spec = job("tie", 1, strategy="spread")
    sim.submit(0, spec)
    assert settle(sim, [spec], timeout=10) is not None
    assert set(sim.running[1]) == {"tie/0"}


@pytest.mark.parametrize("cpu,memory", [(0.5, "256MiB"), (0.1, "64MiB")])
def test_spread_replicas_go_to_idle_nodes_that_must_pull_not_onto_the_one_that_has_it(cpu, memory):
    sim = make(10, 4)
    for i in range(4):
        sim.world.feed(i, ImageInventory(frozenset({"other:latest"} if i != 2 else {"busybox:latest"})))
    spec = job("wide", 4, cpu=cpu, memory=memory, strategy="spread")
    sim.submit(0, spec)
    assert settle(sim, [spec], timeout=10) is not None
    assert [len(sim.running[i]) for i in range(4)] == [1, 1, 1, 1], sim.replica_counts()
    assert not sim.violations


@pytest.mark.parametrize("seed", range(10))
def test_spread_is_exact_over_two_racks_whatever_the_seed(seed):
    labels = [{"rack": "ab"[i % 2]} for i in range(6)]
    sim = make(100 + seed, 6, labels=labels)
    spec = job("even", 4, spread="rack")
    sim.submit(seed % 6, spec)
    assert settle(sim, [spec], timeout=10) is not None
    per_rack = {"a": 0, "b": 0}
    for i in sim.live_indices():
        per_rack[labels[i]["rack"]] += len(sim.running[i])
    assert per_rack == {"a": 2, "b": 2}, (seed, per_rack)


def test_a_restarted_coordinator_never_reuses_a_ballot():
    # Swarm seed 65 found it: a coordinator crashed after sending an award,
    # restarted before the winner's claim reached it, re-auctioned the slot
    # under the same round, and two nodes accepted the same (slot, ballot).
    # Ballots name the coordinator's run, so the restart's are new.
    sim = make(3, 4)
    before = sim.world.core(1).view.ballot_id
    sim.world.crash(1)
    sim.world.run_for(0.5)
    sim.world.restart(1)
    after = sim.world.core(1).view.ballot_id
    assert before != after and before.startswith("node-1#") and after.startswith("node-1#")
    spec = job("api", 8)
    sim.submit(1, spec)
    assert settle(sim, [spec], timeout=10) is not None, sim.placement_problems([spec])
    ballots = {c.ballot.coordinator for c in sim.world.core(0).view.claims().values()}
    assert ballots <= {sim.world.core(i).view.ballot_id for i in range(4)}, ballots
    assert not sim.violations


@pytest.mark.parametrize("seed,replicas", [(3, 100), (1, 50), (5, 50), (9, 50)])
def test_a_spread_job_is_placed_evenly_over_equal_idle_nodes(seed, replicas):
    # Seen on the 5-node testbed (spread, 100 replicas): 8 to 29 per node,
    # while Swarm puts 20 on each; and the fullest node sets the time.
    # When every agent coordinated a share of the slots, each round
    # corrected the imbalance an earlier round had left, all onto the same
    # node: 14 of 50 on one node and 8 on another (seeds 5 and 9; 11 in
    # seed 1; up to 25 of 100).  One coordinator per spread job
    # (auction.coordination) places the batch in one round.
    from auction.spec import validate

    sim = ClusterSim(seed, 5, LAN.replace(enable_compression=False), capacities=[Resources(1900, 4 * GiB, 0)] * 5)
    sim.world.bootstrap(seeds="random")
    sim.world.run_for(5)
    sim.submit(3, validate({"name": "p", "image": "busybox", "replicas": replicas, "cpu": "10m", "memory": "8MiB",
                            "strategy": "spread"}))
    sim.world.run_for(3)
    counts = [len(sim.running[i]) for i in range(5)]
    assert counts == [replicas // 5] * 5, counts
    assert not sim.violations


def _stack_sent_at_once(seed: int, cores_millis: int, cpu: str, strategy: str, replicas: int = 3, *,
                        gossip=LAN, placement_config: PlacementConfig | None = None, delay_s: float = 0.0,
                        form_s: float = 5.0) -> tuple[ClusterSim, list]:
    """Five idle nodes, formed for `form_s` (`delay_s` between them from the
    start); ten jobs of `replicas` sent at once to nodes j mod 5 (a stack of
    services)."""
    from auction.spec import validate

    sim = ClusterSim(seed, 5, gossip.replace(enable_compression=False),
                     capacities=[Resources(cores_millis, 4 * GiB, 0)] * 5, placement_config=placement_config)
    if delay_s:
        sim.world.network.set_delay(delay_s, delay_s)
    sim.world.bootstrap(seeds="random")
    sim.world.run_for(form_s)
    specs = [validate({"name": f"s{j}", "image": "busybox", "replicas": replicas, "cpu": cpu, "memory": "64MiB",
                       "strategy": strategy}) for j in range(10)]
    for j, spec in enumerate(specs):
        sim.submit(j % 5, spec)
    return sim, specs


@pytest.mark.parametrize("seed", [1, 2, 3, 5])
def test_binpack_jobs_sent_together_are_placed_without_waiting_out_a_back_off(seed):
    # Ten 3-replica binpack jobs sent at once to 5 two-core nodes: every
    # node bids in every round, reserving for the whole batch, so its room
    # went to reservations and it declined rounds for room it had; those
    # slots waited out the back-off (0.65-1.45 s in 14 of seeds 1-15; 0.05-
    # 0.15 s now).  A round declined for room is retried at once (auction.retry).
    sim, specs = _stack_sent_at_once(seed, 2000, "250m", "binpack")
    took = sim.world.run_until_converged(lambda _: not sim.placement_problems(specs), 10, check_every=0.05)
    assert took is not None and took <= 0.3, took
    assert not sim.violations


@pytest.mark.parametrize("seed", [2, 3, 5, 7])
def test_spread_jobs_are_placed_at_once_when_a_coordinator_dies_with_its_rounds_open(seed):
    # A node answers spread rounds one at a time (auction.bid_order).  A
    # coordinator that dies after its calls sends neither award nor release,
    # and the bids every node made in its round held up their answers to
    # the other jobs' rounds: until the reservations expired and through
    # the retries' back-off, 2-7 s.  A call now waits WAIT_SHARE of its ttl
    # behind an open bid its coordinator has not confirmed alive
    # (auction.bid_order): the other jobs were placed in 0.6 s.  Rounds the
    # dead node itself had deferred (it answers spread rounds in order too)
    # now wait for its answer up to the extension a deferral buys
    # (auction.auctioneer): 1.55 s in seeds 2, 3, 5 and 7.
    from auction.bid_order import DEFER_EXTRA_TTLS
    from auction.coordination import coordinator_of

    sim, specs = _stack_sent_at_once(seed, 4000, "100m", "spread")
    victim = sim.world.core("node-0")
    for _ in range(500):
        if victim.placement.auctioneer.open_rounds():
            break
        sim.world.run_for(0.001)
    assert victim.placement.auctioneer.open_rounds()
    faults.crash(sim.world, "node-0")
    names = [f"node-{i}" for i in range(5)]
    others = [s for s in specs if coordinator_of(s.name, 0, s, names) != "node-0"]
    assert others

    def placed(_: object) -> bool:
        running = [key for i in range(1, 5) for key in sim.running[i]]
        return all(f"{s.name}/{k}" in running for s in others for k in range(3))
    took = sim.world.run_until_converged(placed, 10, check_every=0.05)
    extended_round_s = PlacementConfig().auction_ttl_s * (1 + DEFER_EXTRA_TTLS)
    assert took is not None and took <= extended_round_s + 0.1, took


@pytest.mark.parametrize("cores", [4, 1])
@pytest.mark.parametrize("seed", range(1, 7))
def test_spread_jobs_submitted_together_each_put_their_replicas_on_distinct_nodes(seed, cores):
    # Ten services of 3 replicas, `strategy = "spread"`, sent at once (a
    # compose stack): each job's round scored nodes by what they had
    # committed, and concurrent rounds saw the same emptiest node, so a
    # job's replicas could all go there (11-14 of the 30 on one node, 2 on
    # another) and rebalancing moved them again later.  A spread job now
    # evens out its replicas per node first (JobSpec.spread_domain, as
    # rebalancing counts them), then takes the emptiest.  One core a node:
    # each node reserved all three slots in each of the ten rounds open at
    # once, ran out of room and declined rounds it would have won, and 6-8
    # of the 30 replicas shared a node with a sibling; a bidder now reserves
    # only what it can win (the call's max_wins: one each here).  And the
    # ten rounds, open at once, all saw every node equally empty (a spread
    # bid counts what is committed) and the coordinators' tie orders decided:
    # 8-9 of the 30 on two nodes, 2-3 on others; a node now answers spread
    # rounds one at a time (auction.bid_order): 6-7 on each; and a call that
    # comes after a later round was answered counts that bid: 6 on each.
    sim, specs = _stack_sent_at_once(seed, cores * 1000, "100m", "spread")
    sim.world.run_for(3)
    assert not sim.placement_problems(specs)
    for spec in specs:
        nodes = [i for i in range(5) for key in sim.running[i] if key.startswith(spec.name + "/")]
        assert len(nodes) == len(set(nodes)) == 3, (spec.name, nodes)
    per_node = [len(sim.running[i]) for i in range(5)]
    assert per_node == [6] * 5, per_node
    assert not sim.violations


@pytest.mark.parametrize("seed", [1, 2, 6, 8, 15, 20])
def test_spread_jobs_sent_together_over_slow_links_never_put_two_replicas_on_a_node(seed):
    # The stack again, 50-150 ms between nodes (a loaded testbed's agents
    # answer that late): nodes answer one round at a time (auction.bid_order),
    # so the last rounds closed at their deadline with most nodes silent, and
    # the retry of a slot left over went to the coordinator, whose own call
    # needs no network, though it ran one of the job's replicas already: a
    # service with two replicas on a node in 10 of seeds 1-24 until
    # rebalancing moved it.  A round now holds such a slot for the silent
    # nodes (auction.auctioneer), and a bidder's count of what it holds
    # counts when the coordinator has not heard of its newest claim yet
    # (without that, seeds 8, 20, 22 and 24 still doubled up).
    sim, specs = _stack_sent_at_once(seed, 4000, "100m", "spread")
    sim.world.network.set_delay(0.05, 0.05)
    t0 = sim.world.now
    while sim.placement_problems(specs):
        assert sim.world.now - t0 < 3.0, sim.placement_problems(specs)
        sim.world.run_for(0.05)
        for spec in specs:
            nodes = [i for i in range(5) for key in sim.running[i] if key.startswith(spec.name + "/")]
            assert len(nodes) == len(set(nodes)), (round(sim.world.now - t0, 2), spec.name, nodes)
    assert not sim.violations


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_a_stack_sent_at_once_over_20_ms_links_is_dealt_evenly(seed):
    # Ten 3-replica spread services at once over five idle nodes, 20-40 ms
    # apart (an edge site's links, or loaded agents): each node answers the
    # rounds in order, one round trip each (auction.bid_order), and the
    # chain outran the 0.3 s a call could wait; the later calls were
    # answered together, blind to the earlier rounds, and the fullest node
    # held 7-8 of the 30 in every one of seeds 1-12 (Swarm: 6 on each).  A
    # bidder now tells a coordinator it deferred the call, and the round
    # waits for it (auction.auctioneer, bounded): 6 on each in seeds 1-12.
    sim, specs = _stack_sent_at_once(seed, 4000, "100m", "spread")
    sim.world.network.set_delay(0.02, 0.02)
    took = sim.world.run_until_converged(lambda _: not sim.placement_problems(specs), 10, check_every=0.05)
    assert took is not None and took <= 2.0, took
    assert [len(sim.running[i]) for i in range(5)] == [6] * 5
    assert not sim.violations


@pytest.mark.parametrize("seed", [1, 2, 4, 5, 6, 7])
def test_a_stack_over_50_ms_links_on_the_wan_profile_is_dealt_evenly(seed):
    # The stack on the `wan` profile, 50-100 ms between nodes: with the 0.5 s
    # round of lan the chain of deferred rounds (auction.bid_order) outran
    # even the extended round, and the fullest node held 7 of 30 in these
    # seeds.  The wan profile's rounds last 2 s (node.agent.tuning): 6 on each.
    from node.agent.tuning import placement_defaults

    sim, specs = _stack_sent_at_once(seed, 4000, "100m", "spread", gossip=WAN,
                                     placement_config=placement_defaults("wan"), delay_s=0.05, form_s=20)
    took = sim.world.run_until_converged(lambda _: not sim.placement_problems(specs), 20, check_every=0.05)
    assert took is not None and took <= 6.0, took
    assert [len(sim.running[i]) for i in range(5)] == [6] * 5
    assert not sim.violations


@pytest.mark.parametrize("seed", range(1, 7))
def test_one_replica_spread_services_sent_together_are_dealt_evenly(seed):
    # Ten one-replica spread services at once over five idle nodes: each
    # node answers its own round's call first (no network), then calls that
    # sort before it arrive and were answered as if it were idle: it won
    # both, 3 on one node and 1 on another in 11 of seeds 1-12.  A late call
    # is now scored with the bids already given counted (auction.bid_order).
    sim, specs = _stack_sent_at_once(seed, 4000, "100m", "spread", replicas=1)
    sim.world.run_for(3)
    assert not sim.placement_problems(specs)
    assert [len(sim.running[i]) for i in range(5)] == [2] * 5
    assert not sim.violations
