"""The rebalancing rule (auction.rebalance) and its spec fields."""

from __future__ import annotations

import pytest

from auction.rebalance import IMBALANCE, Rebalancer, SlotState, domain_key, domain_of, plan
from auction.spec import SpecError, validate


def slots(*held: tuple[str, str], running: bool = True) -> list[SlotState]:
    """(holder, domain) per slot, in index order."""
    return [SlotState(i, node, domain, running) for i, (node, domain) in enumerate(held)]


def spec(**fields):
    return validate({"name": "web", "image": "busybox", "replicas": 3, **fields})


# ---- what is balanced

def test_spread_jobs_balance_label_values_spread_strategy_nodes_and_binpack_nothing():
    assert domain_key(spec(spread="rack")) == "rack"
    assert domain_key(spec(strategy="spread")) == ""
    assert domain_key(spec()) is None                           # binpack, no spread label
    assert domain_key(spec(spread="rack", rebalance=False)) is None
    assert domain_key(spec(spread="rack", replicas=1)) is None
    # Data on the node (a Docker or host volume) is not moved for balance; a tmpfs is no data.
    assert domain_key(spec(spread="rack", volumes={"data": {"target": "/data"}})) is None
    assert domain_key(spec(spread="rack", volumes={"t": {"target": "/t", "type": "tmpfs"}})) == "rack"
    assert domain_of("rack", "node-1", {"rack": "a"}) == "a"
    assert domain_of("rack", "node-1", {}) == ""
    assert domain_of("", "node-1", {"rack": "a"}) == "node-1"


# ---- when and which

def test_the_quickstart_counts_move_one_replica_from_the_doubled_rack_to_the_empty_one():
    held = slots(("n1", "a"), ("n2", "b"), ("n1", "a"))        # rack c's node came back
    [move] = plan(held, {"a", "b", "c"}, max_disruption=1, label="rack")
    assert (move.index, move.from_node, move.from_domain, move.to_domains) == (2, "n1", "a", ("c",))
    assert move.why == "rack: a 2, b 1, c 0"


def test_counts_one_apart_are_as_good_as_it_gets_and_move_nothing():
    assert IMBALANCE == 2
    assert plan(slots(("n1", "a"), ("n1", "a"), ("n2", "b")), {"a", "b"}, 5) == []
    assert plan(slots(("n1", "a"), ("n2", "b"), ("n3", "c"), ("n4", "a")), {"a", "b", "c"}, 5) == []


def test_no_move_calls_for_the_reverse_move():
    # Apply each plan's first move to the counts and plan again: never back.
    for a, b in [(3, 0), (4, 0), (5, 1), (6, 2), (2, 0)]:
        held = slots(*([("na", "a")] * a + [("nb", "b")] * b))
        seen = []
        while True:
            moves = plan(held, {"a", "b"}, 1)
            if not moves:
                break
            m = moves[0]
            seen.append((m.from_domain, m.to_domains[0]))
            held[m.index] = SlotState(m.index, "nb" if m.to_domains[0] == "b" else "na", m.to_domains[0], True)
        assert seen == [("a", "b")] * ((a - b) // 2), (a, b, seen)


def test_only_open_domains_are_targets():
    held = slots(("n1", "a"), ("n1", "a"), ("n2", "b"))
    assert plan(held, {"a", "b"}, 1) == []                      # c has no node with room
    assert plan(held, {"a", "b", "c"}, 1)[0].to_domains == ("c",)


def test_a_full_domain_is_a_source_even_when_it_is_not_open():
    held = slots(("n1", "a"), ("n1", "a"), ("n1", "a"))
    [move] = plan(held, {"b"}, 1)
    assert move.from_domain == "a" and move.to_domains == ("b",)


def test_max_disruption_bounds_moves_and_slots_down_use_it_up():
    held = slots(*[("n1", "a")] * 6)
    assert len(plan(held, {"a", "b", "c"}, 1)) == 1
    assert len(plan(held, {"a", "b", "c"}, 3)) == 3
    assert len(plan(held, {"a", "b", "c"}, 10)) == 4            # then a 2, b 2, c 2
    starting = held[:5] + [SlotState(5, "n1", "a", running=False)]
    assert plan(starting, {"a", "b", "c"}, 1) == []             # a slot in flight spends the budget
    assert len(plan(starting, {"a", "b", "c"}, 2)) == 1


def test_the_highest_index_of_the_fullest_domain_moves_first_ties_by_name():
    held = slots(("n1", "b"), ("n2", "a"), ("n1", "b"), ("n2", "a"))
    [move] = plan(held, {"a", "b", "c"}, 1)
    assert (move.from_domain, move.index) == ("a", 3)


# ---- the settle delay

def test_nothing_is_settled_until_membership_and_holders_were_still_for_the_delay():
    rb = Rebalancer(settle_s=10)
    rb.observe_cluster(frozenset({"n1", "n2"}), 0.0)
    rb.observe_job("web", ("n1", "n2"), 0.0)
    assert not rb.settled("web", 9.9) and rb.settled("web", 10.0)
    rb.observe_cluster(frozenset({"n1", "n2", "n3"}), 12.0)     # a node returned
    assert not rb.settled("web", 21.9) and rb.settled("web", 22.0)
    rb.observe_job("web", ("n1", "n3"), 23.0)                   # a move (or a re-placement)
    assert not rb.settled("web", 32.9) and rb.settled("web", 33.0)
    rb.job_changed("web", 40.0)                                 # a move nobody could take
    assert not rb.settled("web", 49.9)
    assert not rb.settled("other", 100.0)                       # never seen: not settled


def test_a_pick_is_remembered_for_a_while_then_forgotten():
    rb = Rebalancer()
    rb.pick("web/2", 0.0)
    assert rb.picked("web/2", 5.0) and not rb.picked("web/1", 5.0)
    assert not rb.picked("web/2", 10.0)


# ---- the spec fields

def test_defaults_stay_out_of_the_canonical_form_so_hashes_do_not_move():
    plain = spec(spread="rack")
    explicit = spec(spread="rack", rebalance=True, max_disruption=1)
    assert plain.rebalance and plain.max_disruption == 1
    assert "rebalance" not in plain.to_dict() and "max_disruption" not in plain.to_dict()
    assert plain.spec_hash() == explicit.spec_hash()
    off = spec(spread="rack", rebalance=False, max_disruption=2)
    assert off.to_dict()["rebalance"] is False and off.to_dict()["max_disruption"] == 2
    assert validate(off.to_dict()) == off
    assert off.container_hash() == plain.container_hash()       # changing them replaces nothing


@pytest.mark.parametrize("fields,message", [
    ({"rebalance": "no"}, "rebalance: must be true or false, got a string"),
    ({"max_disruption": 0}, "max_disruption: must be between 1 and 1000 (got 0)"),
    ({"max_disruption": 1.5}, "max_disruption: must be an integer"),
])
def test_bad_values_are_refused_naming_the_field(fields, message):
    with pytest.raises(SpecError) as info:
        spec(**fields)
    assert message in str(info.value)
