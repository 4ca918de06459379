"""The claim rule (auction.claims): which claim for a slot wins, ballots never
repeat, released claims hold nothing, and after a partition merge exactly
one node keeps running the slot while the other stops its copy."""

from __future__ import annotations

import random

from hypothesis import given
from hypothesis import strategies as st

from auction.claims import (
    Ballot,
    Claim,
    ballot_label,
    holds,
    live,
    next_round,
    release_of,
    slot_key,
    stop_reason,
)
from auction.placement import Placement, PlacementConfig
from auction.placement_outputs import StartReplica, StopReplica
from auction.resources import Resources
from auction.spec import JobSpec, validate
from gossip.lww import LwwMap

GiB = 1 << 30
DEMAND = Resources(1000, GiB)
SPEC = validate({"name": "web", "image": "busybox", "replicas": 1, "cpu": 1, "memory": "1GiB"})


def claim(rnd: int, coordinator: str, node: str, released: bool = False, name: str = "web/0",
          spec_hash: str = "h") -> Claim:
    return Claim(name, Ballot(rnd, coordinator), node, released, spec_hash, DEMAND)


claims_of_one_slot = st.builds(
    claim,
    rnd=st.integers(0, 3),
    coordinator=st.sampled_from(["", "a#1", "a#2", "b#1"]),
    node=st.sampled_from(["a", "b", "c"]),
    released=st.booleans(),
    spec_hash=st.sampled_from(["h", "i"]),
)


# ---- which claim wins: a total order ---------------------------------------------

@given(claims_of_one_slot, claims_of_one_slot)
def test_of_two_different_claims_exactly_one_beats_the_other(a, b):
    if a == b:
        assert not a.beats(b) and not b.beats(a)
    else:
        assert a.beats(b) != b.beats(a)


@given(claims_of_one_slot, claims_of_one_slot, claims_of_one_slot)
def test_beats_is_transitive(a, b, c):
    if a.beats(b) and b.beats(c):
        assert a.beats(c)


@given(claims_of_one_slot, claims_of_one_slot)
def test_a_newer_ballot_round_wins_whatever_else_differs(a, b):
    if a.ballot.round > b.ballot.round:
        assert a.beats(b)


def test_same_round_is_settled_by_coordinator_then_node():
    assert claim(2, "b#1", "a").beats(claim(2, "a#1", "z"))
    assert claim(2, "a#1", "b").beats(claim(2, "a#1", "a"))


@given(st.lists(claims_of_one_slot, min_size=1, max_size=8), st.randoms(use_true_random=False))
def test_every_merge_order_keeps_the_same_winner(claims, rnd):
    # What agents on both sides of a partition hold after it heals does not
    # depend on the order the claims reached them.
    expected = claims[0]
    for c in claims[1:]:
        if c.beats(expected):
            expected = c
    for _ in range(3):
        order = list(claims)
        rnd.shuffle(order)
        m: LwwMap[Claim] = LwwMap(100)
        for c in order:
            m.merge(c)
        assert m.get("web/0") == expected


@given(claims_of_one_slot)
def test_wire_form_round_trips(c):
    assert Claim.from_wire(c.to_wire()) == c


# ---- ballots never repeat; releases -------------------------------------------------

def test_next_round_is_above_the_current_claim_and_every_round_used_here():
    assert next_round(None, 0) == 1
    assert next_round(claim(4, "a#1", "a"), 0) == 5
    # A round used here whose claim has not come back yet still counts.
    assert next_round(claim(4, "a#1", "a"), 7) == 8


def test_a_release_under_the_next_round_beats_the_claim_it_releases_and_holds_nothing():
    held = claim(3, "b#1", "a")
    released = release_of(held, next_round(held, 0), "a#1")
    assert released.released and released.node == "a" and released.ballot == Ballot(4, "a#1")
    assert released.beats(held)
    assert live(released) is None and live(held) == held
    assert not holds(released, "a") and holds(held, "a") and not holds(held, "b")


def test_a_release_loses_to_a_newer_award():
    # A holder that gives the slot back while a coordinator re-awards it:
    # the award with the higher round stands.
    held = claim(3, "b#1", "a")
    released = release_of(held, 4, "a#1")
    reawarded = claim(5, "b#1", "c")
    assert reawarded.beats(released)


def test_stop_reason_names_the_winner_or_says_released():
    assert stop_reason(claim(5, "b#1", "c")) == "superseded by c (ballot 5)"
    assert stop_reason(claim(5, "b#1", "c", released=True)) == "released"
    assert stop_reason(None) == "released"


def test_ballot_label_tells_the_ballots_of_a_restarted_coordinator_apart():
    assert ballot_label(claim(3, "a#1", "x")) == "3/a#1"
    assert ballot_label(claim(3, "a#1", "x")) != ballot_label(claim(3, "a#2", "x"))


# ---- who stops which copy after a merge ---------------------------------------------

def node_with(name: str) -> Placement:
    return Placement(name, Resources(4000, 8 * GiB), random.Random(0), PlacementConfig(),
                     claims=LwwMap(100), ballot_id=f"{name}#1")


def specs(job: str, spec_hash: str) -> JobSpec | None:
    return SPEC if job == SPEC.name else None


def run(p: Placement, c: Claim) -> list[StartReplica | StopReplica]:
    p.claims.merge(c)
    return p.reconcile(specs, now=0.0)


def test_after_a_partition_merge_the_loser_stops_its_copy_and_the_winner_keeps_its_own():
    # During a partition each side's coordinator placed web/0: on side 1 at
    # node a (ballot 1 of coordinator x), on side 2 at node b (ballot 1 of y).
    a, b = node_with("a"), node_with("b")
    on_a = claim(1, "x#1", "a", spec_hash=SPEC.container_hash())
    on_b = claim(1, "y#1", "b", spec_hash=SPEC.container_hash())
    assert [type(c) for c in run(a, on_a)] == [StartReplica]
    assert [type(c) for c in run(b, on_b)] == [StartReplica]
    # The partition heals: both learn both claims, in opposite orders.
    after_a = run(a, on_b)
    after_b = run(b, on_a)
    assert on_b.beats(on_a)  # same round: coordinator "y#1" > "x#1"
    assert after_a == [StopReplica("web/0", "superseded by b (ballot 1)")]
    assert after_b == []
    assert a.running == set() and b.running == {"web/0"}
    assert "web/0" not in a.ledger.committed and "web/0" in b.ledger.committed


def test_a_holder_that_sees_its_slot_released_stops_its_copy():
    a = node_with("a")
    held = claim(1, "x#1", "a", spec_hash=SPEC.container_hash())
    run(a, held)
    assert run(a, release_of(held, 2, "x#1")) == [StopReplica("web/0", "released")]


def test_claims_for_other_slots_do_not_disturb_a_copy():
    a = node_with("a")
    run(a, claim(1, "x#1", "a", spec_hash=SPEC.container_hash()))
    assert run(a, claim(9, "y#1", "b", name=slot_key("web", 1))) == []
    assert a.running == {"web/0"}

