"""Placement (auction.placement) on given jobs, statuses and claims: which
slots need placing, that only a slot's coordinator auctions it, that a
gone or drained holder's slot is placed again, that indices >= replicas are
retired, that reconcile turns claims into StartReplica/StopReplica, and
that give_up hands a slot back, and that a settled job is skipped until
something moves (auction.settled).  One full round at the end."""

from __future__ import annotations

import random

import pytest

from auction.auctioneer import RoundClosed, SendTo
from auction.claims import Ballot, Claim, slot_key
from auction.coordination import coordination_key, coordinator_of
from auction.jobspec import ONE_ROUND_BINPACK_MAX
from auction.messages import Award, Bid, CallForBids, Decline
from auction.placement import Placement, PlacementConfig
from auction.placement_outputs import StartReplica, StopReplica
from auction.resources import Resources
from auction.spec import JobSpec, validate
from gossip.lww import LwwMap
from node.core.hlc import Stamp
from node.core.jobstore import Entry
from node.core.status import NodeStatus

GiB = 1 << 30
CAPACITY = Resources(8000, 16 * GiB)
NODES = ["a", "b", "c", "d", "e"]


def web(replicas: int, **more: object) -> JobSpec:
    return validate({"name": "web", "image": "busybox", "replicas": replicas, "cpu": 1,
                     "memory": "1GiB", **more})


def entry(spec: JobSpec) -> Entry:
    return Entry(spec.name, Stamp(1, 0, "a"), spec.canonical_json())


def status(name: str, **more: object) -> NodeStatus:
    return NodeStatus(name, CAPACITY, Resources(0, 0), **more)


def placement(name: str, claims: LwwMap[Claim] | None = None) -> Placement:
    return Placement(name, CAPACITY, random.Random(0), PlacementConfig(),
                     claims=claims if claims is not None else LwwMap(1000), ballot_id=f"{name}#1")


def held(spec: JobSpec, index: int, node: str, rnd: int = 1, released: bool = False) -> Claim:
    return Claim(slot_key(spec.name, index), Ballot(rnd, "x#1"), node, released,
                 spec.container_hash(), spec.demand())


def tick(p: Placement, specs: list[JobSpec], *, alive: set[str] | None = None,
         statuses: dict[str, NodeStatus] | None = None, deleted: frozenset[str] = frozenset(),
         now: float = 0.0) -> tuple[dict[str, CallForBids], list[Claim]]:
    alive = set(NODES) if alive is None else alive
    statuses = {n: status(n) for n in alive} if statuses is None else statuses
    outs, writes = p.tick(jobs={s.name: entry(s) for s in specs}, deleted=set(deleted),
                          statuses=statuses, alive=alive, now=now)
    calls = {o.node: o.msg for o in outs if isinstance(o, SendTo) and isinstance(o.msg, CallForBids)}
    return calls, writes


def coordinator(spec: JobSpec, index: int, alive: set[str], *claims: Claim) -> Placement:
    """The placement of the slot's coordinator, with these claims merged."""
    name = coordinator_of(spec.name, index, spec, alive)
    assert name is not None
    p = placement(name)
    for c in claims:
        p.claims.merge(c)
    return p


def auctioned(calls: dict[str, CallForBids]) -> set[int]:
    slots = {call.slots for call in calls.values()}
    assert len(slots) <= 1  # one call, sent to every candidate
    return set(next(iter(slots))) if slots else set()


# ---- who auctions what -------------------------------------------------------------

def test_each_unclaimed_slot_is_auctioned_by_its_coordinator_only():
    replicas = 4 * ONE_ROUND_BINPACK_MAX + 8
    spec = web(replicas, cpu=0.01, memory="8MiB")  # a big binpack job: a coordinator per chunk of slots
    by_node = {n: auctioned(tick(placement(n), [spec])[0]) for n in NODES}
    for index in range(replicas):
        owners = [n for n, slots in by_node.items() if index in slots]
        assert owners == [coordinator_of("web", index, spec, NODES)]
    assert len({n for n, slots in by_node.items() if slots}) > 1  # shared, not one master
    for chunk in range(5):                                        # each chunk whole by one
        indices = range(chunk * ONE_ROUND_BINPACK_MAX, min(replicas, (chunk + 1) * ONE_ROUND_BINPACK_MAX))
        assert len({coordinator_of("web", index, spec, NODES) for index in indices}) == 1


def test_a_small_binpack_job_is_coordinated_whole_by_one_node():
    # Rounds opened at once for each slot of a binpack job pack only within
    # their own draws of a large cluster (auction.coordination): one round
    # fills the fullest node of its draw first.
    spec = web(12)
    by_node = {n: auctioned(tick(placement(n), [spec])[0]) for n in NODES}
    assert max(by_node.values(), key=len) == set(range(12))
    assert sum(len(s) for s in by_node.values()) == 12
    assert coordination_key("web", 0, spec) == "job:web"
    big = web(ONE_ROUND_BINPACK_MAX + 1)
    assert coordination_key("web", 0, big) == "job:web#0"
    assert coordination_key("web", ONE_ROUND_BINPACK_MAX, big) == "job:web#1"
    assert coordination_key("web", ONE_ROUND_BINPACK_MAX + 1, big) == f"web/{ONE_ROUND_BINPACK_MAX + 1}"  # not desired


@pytest.mark.parametrize("spreads", [{"spread": "rack"}, {"strategy": "spread"}])
def test_a_job_that_spreads_is_coordinated_whole_by_one_node(spreads):
    # Over a label or over nodes: concurrent coordinators of one job would
    # each even out the same imbalance (auction.coordination).
    spec = web(6, **spreads)
    by_node = {n: auctioned(tick(placement(n), [spec])[0]) for n in NODES}
    assert max(by_node.values(), key=len) == set(range(6))
    assert sum(len(s) for s in by_node.values()) == 6
    assert coordination_key("web", 0, spec) == coordination_key("web", 5, spec) == "job:web"
    # A slot no longer desired is coordinated per slot again.
    assert coordination_key("web", 6, spec) == "web/6"
    assert coordination_key("web", 0, None) == "web/0"


def test_a_call_of_a_job_spread_over_nodes_says_how_many_one_bidder_can_win():
    # Bidders reserve no more than the call's max_wins (auction.bidder):
    # six replicas over five idle nodes give at most 2 to one, three more
    # of eight over five nodes running one each 1; a binpack or label-spread
    # job's bidder may win the whole batch.
    def call_of(spec: JobSpec, *claims: Claim) -> CallForBids:
        calls, _ = tick(coordinator(spec, 0, set(NODES), *claims), [spec])
        assert set(calls) == set(NODES)
        return next(iter(calls.values()))
    spread = web(6, strategy="spread")
    assert call_of(spread).max_wins == 2
    eight = web(8, strategy="spread")
    assert call_of(eight, *(held(eight, i, n) for i, n in enumerate(NODES))).max_wins == 1
    assert call_of(web(6)).max_wins is None
    assert call_of(web(6, spread="rack")).max_wins is None


def test_a_capped_round_left_short_by_declines_is_retried_at_once():
    # Three slots over five nodes: one each at most.  Three nodes decline
    # (their containers policy, say), so the two bidders take one each and
    # one slot is left; they would have taken it with whole-batch
    # reservations, so it goes out again at once, not after the back-off.
    spread = web(3, strategy="spread")
    coord = coordinator(spread, 0, set(NODES))
    calls, _ = tick(coord, [spread])
    call = next(iter(calls.values()))
    assert call.max_wins == 1
    outs = []
    for name in NODES:
        if name in ("a", "b"):
            outs += coord.auctioneer.on_bid(Bid(call.auction_id, name, (0.5,), name, 0), now=0.1)
        else:
            outs += coord.auctioneer.on_decline(Decline(call.auction_id, name, "not allowed here"), now=0.1)
    closed = [o for o in outs if isinstance(o, RoundClosed)]
    assert len(closed) == 1 and len(closed[0].unplaced) == 1
    coord.on_round_closed(closed[0], now=0.1)
    assert coord.retries.resample_due
    left = slot_key("web", closed[0].unplaced[0])
    assert not coord.retries.waiting(left, now=0.11)


def test_a_round_declined_for_room_is_retried_at_once_in_a_small_cluster():
    # Every feasible member was called (no sample), but one declined for
    # room its reservations for other open rounds held: the slot goes out
    # again at once, not after the 0.5 s back-off.
    spec = web(2)
    coord = coordinator(spec, 0, set(NODES))
    calls, _ = tick(coord, [spec])
    rounds = {c.auction_id for c in calls.values()}
    outs = []
    for aid in rounds:
        for name in NODES:
            why = "needs 1.0 cpu, 1.0 GiB; free 0.0 cpu, 1.0 GiB" if name == "a" else "not allowed here"
            outs += coord.auctioneer.on_decline(Decline(aid, name, why), now=0.1)
    closed = [o for o in outs if isinstance(o, RoundClosed)]
    assert closed and all(rc.unplaced for rc in closed)
    for rc in closed:
        coord.on_round_closed(rc, now=0.1)
    assert coord.retries.resample_due
    assert not any(coord.retries.waiting(slot_key("web", i), now=0.11) for rc in closed for i in rc.unplaced)


def test_calls_go_to_alive_eligible_nodes_only():
    statuses = {"a": status("a"), "b": status("b", drained=True),
                "c": status("c", healthy=False, unhealthy_reason="docker down"), "d": status("d")}
    # e is alive but its status has not arrived; d is not alive.
    alive = {"a", "b", "c", "e"}
    calls, _ = tick(coordinator(web(1), 0, alive), [web(1)], alive=alive, statuses=statuses)
    assert set(calls) == {"a"}


def test_a_slot_held_by_a_healthy_alive_node_is_left_alone():
    spec = web(1)
    alive = {"a", "b"}
    calls, writes = tick(coordinator(spec, 0, alive, held(spec, 0, "b")), [spec], alive=alive)
    assert calls == {} and writes == []


def test_a_slot_whose_holder_is_gone_or_drained_is_placed_again_but_not_for_an_unhealthy_one():
    spec = web(1)
    cases = {
        "not alive": ({"a", "c"}, {"a": status("a"), "c": status("c")}),
        "drained": ({"a", "b", "c"}, {"a": status("a"), "b": status("b", drained=True), "c": status("c")}),
        "unhealthy": ({"a", "b", "c"}, {"a": status("a"), "b": status("b", healthy=False), "c": status("c")}),
    }
    replaced = {}
    for case, (alive, statuses) in cases.items():
        p = coordinator(spec, 0, alive, held(spec, 0, "b"))
        calls, _ = tick(p, [spec], alive=alive, statuses=statuses)
        replaced[case] = auctioned(calls)
    assert replaced == {"not alive": {0}, "drained": {0}, "unhealthy": set()}


def test_a_released_claim_leaves_the_slot_to_be_placed_again():
    spec = web(1)
    p = placement("a")
    p.claims.merge(held(spec, 0, "b", rnd=2, released=True))
    calls, _ = tick(p, [spec], alive={"a"})
    assert auctioned(calls) == {0}
    # The new ballot is above the released one.
    assert p.next_round("web/0") == 4  # round 3 went to the call just sent


# ---- retiring what should no longer run --------------------------------------------

def test_a_holder_releases_indices_at_or_above_replicas_under_the_next_round():
    big, small = web(4), web(2)
    p = placement("a")
    for i in range(4):
        p.claims.merge(held(big, i, "a", rnd=3))
    _, writes = tick(p, [small], alive={"a"})
    assert sorted((w.name, w.ballot, w.node, w.released) for w in writes) == [
        ("web/2", Ballot(4, "a#1"), "a", True), ("web/3", Ballot(4, "a#1"), "a", True)]


def test_a_deleted_job_is_released_but_one_not_heard_of_yet_is_kept():
    spec = web(1)
    p = placement("a")
    p.claims.merge(held(spec, 0, "a"))
    _, writes = tick(p, [], alive={"a"})
    assert writes == []  # the award came with the call's copy of the spec: keep it
    _, writes = tick(p, [], alive={"a"}, deleted=frozenset({"web"}))
    assert [(w.name, w.released) for w in writes] == [("web/0", True)]


def test_the_coordinator_releases_a_dead_holders_claim_for_a_slot_nobody_wants():
    spec = web(1)
    alive = {"a", "b", "c"}
    releaser = coordinator_of("web", 0, None, alive)
    for name in sorted(alive):
        p = placement(name)
        p.claims.merge(held(spec, 0, "dead"))
        _, writes = tick(p, [], alive=alive, deleted=frozenset({"web"}))
        expect = [("web/0", "dead", True)] if name == releaser else []
        assert [(w.name, w.node, w.released) for w in writes] == expect


# ---- reconcile: claims become runtime commands -------------------------------------

def specs_of(*specs: JobSpec):
    return lambda job, spec_hash: next((s for s in specs if s.name == job), None)


def test_reconcile_starts_what_our_claims_say_and_stops_what_they_no_longer_say():
    spec = web(3)
    p = placement("a")
    for i in range(2):
        p.claims.merge(held(spec, i, "a"))
    p.claims.merge(held(spec, 2, "b"))
    out = p.reconcile(specs_of(spec), now=0.0)
    assert [(type(c), c.claim.name) for c in out if isinstance(c, StartReplica)] == [
        (StartReplica, "web/0"), (StartReplica, "web/1")]
    assert p.ledger.committed == {"web/0": spec.demand(), "web/1": spec.demand()}
    assert p.reconcile(specs_of(spec), now=0.0) == []  # nothing changed, nothing to do
    p.claims.merge(held(spec, 0, "c", rnd=2))
    p.claims.merge(held(spec, 1, "a", rnd=2, released=True))
    assert p.reconcile(specs_of(spec), now=0.0) == [
        StopReplica("web/0", "superseded by c (ballot 2)"), StopReplica("web/1", "released")]
    assert p.ledger.committed == {} and p.running == set()


def test_reconcile_waits_for_a_spec_it_does_not_have():
    spec = web(1)
    p = placement("a")
    p.claims.merge(held(spec, 0, "a"))
    assert p.reconcile(specs_of(), now=0.0) == []
    assert [type(c) for c in p.reconcile(specs_of(spec), now=0.0)] == [StartReplica]


# ---- giving a failing slot back ----------------------------------------------------

def test_give_up_releases_our_slot_and_keeps_the_job_away_for_a_while():
    spec = web(1)
    p = placement("a")
    p.claims.merge(held(spec, 0, "a", rnd=5))
    release = p.give_up("web/0", "crash loop", penalty_s=60.0, now=100.0)
    assert release is not None and release.released and release.ballot == Ballot(6, "a#1")
    call = CallForBids("x:1", "x", "web", spec.container_hash(), (0,), 0.5)
    answer = p.on_call(call, spec=spec, status=status("a"), now=130.0)
    assert answer == Decline("x:1", "a", "recently failed here: crash loop")
    # The penalty is for the version that failed here: another one (a fix, a
    # rollback) is bid for at once.
    fixed = web(1, image="nginx:2")
    assert fixed.container_hash() != spec.container_hash()
    call2 = CallForBids("x:2", "x", "web", fixed.container_hash(), (0,), 0.5)
    assert isinstance(p.on_call(call2, spec=fixed, status=status("a"), now=130.0), Bid)
    assert isinstance(p.on_call(call, spec=spec, status=status("a"), now=160.0), Bid)


def test_give_up_of_a_slot_we_do_not_hold_writes_nothing():
    spec = web(1)
    p = placement("a")
    p.claims.merge(held(spec, 0, "b"))
    assert p.give_up("web/0", "crash loop", penalty_s=60.0, now=0.0) is None
    # With no claim of ours to say which version failed, every version waits.
    other = web(1, image="nginx:2")
    call = CallForBids("x:1", "x", "web", other.container_hash(), (0,), 0.5)
    assert p.on_call(call, spec=other, status=status("a"), now=30.0) == Decline(
        "x:1", "a", "recently failed here: crash loop")


# ---- one round, end to end ---------------------------------------------------------

def test_a_full_round_places_every_slot_and_the_winner_starts_its_replicas():
    # Spread over racks: one coordinator places both slots, one per rack.
    spec = web(2, spread="rack")
    claims: LwwMap[Claim] = LwwMap(1000)
    nodes = {n: placement(n, claims) for n in ("a", "b")}  # one shared view of the claims
    statuses = {n: status(n, labels={"rack": n}) for n in nodes}
    alive = set(nodes)
    name = coordinator_of("web", 0, spec, alive)
    assert name is not None
    coord = nodes[name]
    calls, _ = tick(coord, [spec], alive=alive, statuses=statuses)
    assert set(calls) == {"a", "b"} and auctioned(calls) == {0, 1}
    outs = []
    for name, call in sorted(calls.items()):
        answer = nodes[name].on_call(call, spec=nodes[name].spec_from_call(call), status=statuses[name], now=0.1)
        assert isinstance(answer, Bid)
        outs = coord.auctioneer.on_bid(answer, now=0.1)
    awards = [(o.node, o.msg) for o in outs if isinstance(o, SendTo) and isinstance(o.msg, Award)]
    assert awards  # every candidate answered: the round closed
    started = []
    for node, award in awards:
        winner = nodes[node]
        for c in winner.on_award(award, spec=spec, now=0.2):
            assert claims.merge(c)
        started += [(node, c.claim.name) for c in winner.reconcile(specs_of(spec), now=0.2)
                    if isinstance(c, StartReplica)]
    assert sorted(s for _, s in started) == ["web/0", "web/1"]
    assert len({node for node, _ in started}) == 2  # one per rack
    # Placed: the next tick auctions nothing.
    for p in nodes.values():
        assert tick(p, [spec], alive=alive, statuses=statuses, now=1.0)[0] == {}


def test_slots_handed_over_at_once_start_first_only_while_the_node_has_room_for_every_old_copy():
    """A rollout may move several of a node's slots in one pass (max_parallel);
    each start-first runs its old copy beside the new one until it runs, so
    a node with room for one more copy hands one slot over start-first and
    replaces the other stop-first (never running more than its capacity)."""
    v1 = web(2, update={"max_parallel": 2, "order": "start-first"})
    v2 = web(2, image="busybox:2", update={"max_parallel": 2, "order": "start-first"})
    p = Placement("a", Resources(3000, 3 * GiB), random.Random(0), PlacementConfig(), claims=LwwMap(1000),
                  ballot_id="a#1")
    for i in range(2):
        p.claims.merge(held(v1, i, "a"))
    p.reconcile(lambda job, spec_hash=None: v1, 0.0)          # both run here, in the ledger
    _, writes = tick(p, [v2], now=1.0)
    assert sorted(c.name for c in writes) == ["web/0", "web/1"]
    assert sorted(e.detail for e in p.drain_rollout()[0] if e.kind == "replacing") == ["start-first", "stop-first"]


# ---- settled jobs (auction.settled) ---------------------------------------------------
# placement's tick skips a job it found with nothing to do and looks again as
# soon as anything that could give it something to do moves.  Wrong, a slot
# whose holder died, was drained or gave it up (or a job scaled up) would be
# left unplaced; missing, a large cluster's agents re-read every slot's claim
# every tick.

ALIVE = {"a", "b", "c"}


def settled_on_a(spec: JobSpec) -> tuple[Placement, list[Claim]]:
    """Agent a, every slot of `spec` held by b, after a tick that found
    nothing to do."""
    p = placement("a")
    claims = [held(spec, i, "b") for i in range(spec.replicas)]
    for c in claims:
        p.claims.merge(c)
    assert tick(p, [spec], alive=ALIVE) == ({}, [])
    return p, claims


def coordinated_by_a(spec: JobSpec, alive: set[str], slots: range) -> set[int]:
    mine = {i for i in slots if coordinator_of(spec.name, i, spec, alive) == "a"}
    assert mine  # (the test needs some)
    return mine


def test_a_settled_job_is_placed_again_when_its_holder_dies():
    spec = web(12)
    p, _ = settled_on_a(spec)
    assert tick(p, [spec], alive=ALIVE, now=1.0) == ({}, [])     # still nothing to do
    alive = ALIVE - {"b"}
    calls, _ = tick(p, [spec], alive=alive, now=2.0)
    assert auctioned(calls) == coordinated_by_a(spec, alive, range(12))


def test_a_settled_job_is_placed_again_when_its_holder_is_drained():
    spec = web(12)
    p, _ = settled_on_a(spec)
    statuses = {"a": status("a"), "b": status("b", drained=True), "c": status("c")}
    calls, _ = tick(p, [spec], alive=ALIVE, statuses=statuses, now=1.0)
    assert auctioned(calls) == coordinated_by_a(spec, ALIVE, range(12))


def test_a_settled_job_is_placed_again_when_a_claim_is_released_or_it_is_scaled_up():
    spec = web(12)
    p, claims = settled_on_a(spec)
    first = min(coordinated_by_a(spec, ALIVE, range(12)))
    c = claims[first]
    p.claims.merge(Claim(c.name, Ballot(2, "b#1"), "b", True, c.spec_hash, c.demand))  # b gives it back
    assert auctioned(tick(p, [spec], alive=ALIVE, now=1.0)[0]) == {first}

    p, _ = settled_on_a(spec)
    bigger = web(20)
    outs, _ = p.tick(jobs={"web": Entry("web", Stamp(2, 0, "a"), bigger.canonical_json())}, deleted=set(),
                     statuses={n: status(n) for n in ALIVE}, alive=ALIVE, now=1.0)
    calls = {o.node: o.msg for o in outs if isinstance(o, SendTo) and isinstance(o.msg, CallForBids)}
    assert auctioned(calls) == coordinated_by_a(bigger, ALIVE, range(12, 20))


class CountingClaims(LwwMap[Claim]):
    def __init__(self) -> None:
        super().__init__(1000)
        self.lookups = 0

    def get(self, name: str) -> Claim | None:
        self.lookups += 1
        return super().get(name)


def test_a_settled_job_costs_no_claim_look_ups_until_one_of_its_claims_changes():
    spec = web(50)
    claims = CountingClaims()
    p = placement("a", claims)
    for i in range(50):
        claims.merge(held(spec, i, "b"))
    tick(p, [spec], alive=ALIVE)
    assert claims.lookups >= 2 * 50                        # both walks read every slot once

    def merge_told(claim: Claim) -> None:                  # as the core merges: the placement is told
        before = claims.digest()
        assert claims.merge(claim)
        p.claims_merged([claim], before)

    claims.lookups = 0
    tick(p, [spec], alive=ALIVE, now=1.0)
    assert claims.lookups == 0
    merge_told(held(web(1, name="api"), 0, "c"))          # another job's claim
    tick(p, [spec], alive=ALIVE, now=2.0)
    assert claims.lookups == 0
    merge_told(held(spec, 7, "c", rnd=2))                  # one of web's
    tick(p, [spec], alive=ALIVE, now=3.0)
    assert claims.lookups >= 2 * 50
    claims.lookups = 0
    claims.merge(held(spec, 8, "c", rnd=2))                # a change it was not told of
    tick(p, [spec], alive=ALIVE, now=4.0)
    assert claims.lookups >= 2 * 50


# The release sweep (a coordinator releases a dead holder's claim of a slot
# nobody wants) reads every claim; it is skipped while nothing it reads moved
# since it found nothing.  Wrong, such a claim would linger; missing, every
# tick of a large cluster's agents at rest reads every claim.

def test_the_release_sweep_reads_no_claim_at_rest_and_runs_again_when_what_it_reads_moves(monkeypatch):
    import auction.placement as placement_module
    reads: list[str] = []
    real_is_alive = placement_module.is_alive
    monkeypatch.setattr(placement_module, "is_alive",
                        lambda node, alive: (reads.append(node), real_is_alive(node, alive))[1])

    def released_by(p: Placement, specs: list[JobSpec], alive: set[str], now: float,
                    deleted: frozenset[str] = frozenset(), stamp: int = 1) -> list[tuple[str, bool]]:
        reads.clear()
        outs, writes = p.tick(jobs={s.name: Entry(s.name, Stamp(stamp, 0, "a"), s.canonical_json()) for s in specs},
                              deleted=set(deleted), statuses={n: status(n) for n in alive}, alive=alive, now=now)
        return [(w.name, w.released) for w in writes]

    three = web(3)
    # Who is alive: b holds web/5 (past replicas) and gives it up itself while alive.
    p = coordinator(three, 5, ALIVE - {"b"}, *[held(three, i, "c") for i in range(3)], held(three, 5, "b"))
    assert released_by(p, [three], ALIVE, 0.0) == [] and reads
    assert released_by(p, [three], ALIVE, 1.0) == [] and reads == []      # at rest: no claim read
    assert released_by(p, [three], ALIVE - {"b"}, 2.0) == [("web/5", True)]
    # The spec: web/2 of a dead holder is wanted, then scaled away.
    p = coordinator(web(2), 2, ALIVE, *[held(three, i, "c") for i in range(2)], held(three, 2, "dead"))
    released_by(p, [three], ALIVE, 0.0)
    assert released_by(p, [three], ALIVE, 1.0) == [] and reads == []
    assert released_by(p, [web(2)], ALIVE, 2.0, stamp=2) == [("web/2", True)]
    # The deleted jobs, and a claim merged: a dead holder's claim of a deleted job.
    p = coordinator(web(1, name="api"), 0, ALIVE)
    assert released_by(p, [], ALIVE, 0.0) == [] and released_by(p, [], ALIVE, 1.0) == []
    p.claims.merge(held(web(1, name="api"), 0, "dead"))
    assert released_by(p, [], ALIVE, 2.0) == [] and reads                  # read; not heard of as deleted yet
    assert released_by(p, [], ALIVE, 3.0, deleted=frozenset({"api"})) == [("api/0", True)]


@pytest.mark.parametrize("spreads,counts", [({"strategy": "spread"}, {"a": 2, "c": 1}),
                                            ({"spread": "rack"}, {"x": 2, "y": 1}),
                                            ({}, {})])
def test_a_round_counts_the_replicas_each_domain_holds(spreads, counts):
    # What auction.winner evens out first: per node with strategy = spread,
    # per label value with `spread`; nothing for binpack.
    from auction import candidates

    spec = web(4, **spreads)
    statuses = {n: status(n, labels={"rack": "x" if n in "ab" else "y"}) for n in NODES}
    claims = {slot_key("web", i): held(spec, i, node) for i, node in enumerate(["a", "a", "c"])}
    chosen = candidates.choose("web", spec, statuses, set(NODES), 1, sample_min=16, sample_d=2,
                               rng=random.Random(0), winning_claim=claims.get)
    assert chosen.spread_counts == counts
