"""Winner choice for a batch auction: the heap version against a naive re-scan.

How this works: `choose_winners_naive` below is the definition written out
plainly — for every slot, look at every offer and take the smallest key — and
Hypothesis checks that `auction.winner.choose_winners` returns exactly the
same assignment on thousands of generated auctions (small label and name
alphabets so that ties, full nodes, max_per_node and spreading all happen
often).  Hand-built cases pin the behaviour people rely on: three racks and
nine slots give three per rack, max_per_node is never exceeded, ties go to
the smaller node name, and the order of offers does not matter.
"""

from __future__ import annotations

import math
import random
from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from auction.winner import Offer, choose_winners, most_won_by_one


def choose_winners_naive(slots, offers, *, max_per_node, spread_counts, first="", level_cap=None):
    spreading = any(o.spread_value is not None for o in offers)
    taken = {o.node: 0 for o in offers}
    assigned_in: Counter[str] = Counter()
    result = {}
    for slot in sorted(slots):
        best_key, best = None, None
        for o in offers:
            t = taken[o.node]
            if t >= len(o.scores):
                continue
            if max_per_node is not None and o.already + t >= max_per_node:
                continue
            value = "" if o.spread_value is None else o.spread_value
            load = spread_counts.get(value, 0) + assigned_in[value] if spreading else 0
            key = (load, -o.scores[t], (o.node < first, o.node))
            if best_key is None or key < best_key:
                best_key, best = key, o
        if best is None or (level_cap is not None and best_key[0] > level_cap):
            continue
        result[slot] = best.node
        taken[best.node] += 1
        assigned_in["" if best.spread_value is None else best.spread_value] += 1
    return result


# ---- generated auctions ---------------------------------------------------------

# Few distinct scores and values so that ties are common.
scores_st = st.one_of(
    st.sampled_from([0.0, -0.0, 0.25, 0.5, 0.75, 1.0]),
    st.floats(-1e6, 1e6, allow_nan=False),
    st.sampled_from([math.inf, -math.inf]),
)


@st.composite
def auctions(draw, max_offers=12, max_slots=30):
    names = draw(st.lists(st.text("abcdef", min_size=1, max_size=3), unique=True,
                          max_size=max_offers))
    spread_on = draw(st.booleans())
    values = ["r1", "r2", "r3", ""]
    offers = []
    for name in names:
        scores = tuple(draw(st.lists(scores_st, max_size=6)))
        value = draw(st.sampled_from(values + [None])) if spread_on else None
        offers.append(Offer(name, scores, value, draw(st.integers(0, 4))))
    slots = draw(st.lists(st.integers(0, 200), unique=True, max_size=max_slots))
    max_per_node = draw(st.one_of(st.none(), st.integers(0, 5)))
    spread_counts = draw(st.dictionaries(st.sampled_from(values), st.integers(0, 5)))
    return slots, offers, max_per_node, spread_counts


@settings(max_examples=2000, deadline=None)
@given(auctions(), st.text("abcdef", max_size=3), st.one_of(st.none(), st.integers(0, 5)))
def test_matches_naive(case, first, level_cap):
    slots, offers, max_per_node, spread_counts = case
    fast = choose_winners(slots, offers, max_per_node=max_per_node, spread_counts=spread_counts, first=first,
                          level_cap=level_cap)
    naive = choose_winners_naive(slots, offers, max_per_node=max_per_node,
                                 spread_counts=spread_counts, first=first, level_cap=level_cap)
    assert fast == naive


@settings(max_examples=500, deadline=None)
@given(auctions(), st.randoms(use_true_random=False))
def test_offer_order_does_not_matter(case, rng):
    slots, offers, max_per_node, spread_counts = case
    expected = choose_winners(slots, offers, max_per_node=max_per_node,
                              spread_counts=spread_counts)
    shuffled_offers, shuffled_slots = list(offers), list(slots)
    rng.shuffle(shuffled_offers)
    rng.shuffle(shuffled_slots)
    assert choose_winners(shuffled_slots, shuffled_offers, max_per_node=max_per_node,
                          spread_counts=spread_counts) == expected


@settings(max_examples=500, deadline=None)
@given(auctions())
def test_invariants(case):
    slots, offers, max_per_node, spread_counts = case
    result = choose_winners(slots, offers, max_per_node=max_per_node,
                            spread_counts=spread_counts)
    by_name = {o.node: o for o in offers}
    per_node = Counter(result.values())
    assert set(result) <= set(slots)
    for name, n in per_node.items():
        assert n <= len(by_name[name].scores)
        if max_per_node is not None:
            assert by_name[name].already + n <= max_per_node
    # Unassigned slots are only left when every offer is exhausted, and the
    # assigned ones are the lowest slot numbers.
    room = sum(max(0, min(len(o.scores), (max_per_node - o.already)
                          if max_per_node is not None else len(o.scores))) for o in offers)
    assert len(result) == min(len(slots), room)
    assert sorted(result) == sorted(slots)[:len(result)]


# ---- hand-built cases -------------------------------------------------------------

def test_three_racks_nine_slots_three_each():
    offers = [Offer(f"n{i}", (0.5,) * 9, f"rack-{i % 3}", 0) for i in range(9)]
    # rack-0's nodes score much better, but spreading comes first.
    offers = [Offer(o.node, (0.99,) * 9, o.spread_value, 0) if o.spread_value == "rack-0" else o
              for o in offers]
    result = choose_winners(list(range(9)), offers, max_per_node=None, spread_counts={})
    rack_of = {o.node: o.spread_value for o in offers}
    assert Counter(rack_of[n] for n in result.values()) == {"rack-0": 3, "rack-1": 3, "rack-2": 3}


def test_spread_counts_existing_replicas():
    offers = [Offer("a", (0.9,) * 5, "r1", 0), Offer("b", (0.1,) * 5, "r2", 0)]
    # r1 already runs 3 replicas: the next 3 go to r2 before r1 gets another.
    result = choose_winners([0, 1, 2, 3, 4], offers, max_per_node=None,
                            spread_counts={"r1": 3})
    assert result == {0: "b", 1: "b", 2: "b", 3: "a", 4: "b"}


def test_no_slot_goes_above_the_level_cap():
    # Every node its own domain; a holds one replica of the job, b none.  A
    # silent candidate with none (cap 0) would have taken a slot without
    # going above anyone: b takes one, the other two wait rather than give
    # a or b a second.  A silent candidate with one (cap 1): a and b may go
    # to two each.
    offers = [Offer("a", (0.9,) * 3, "a", 1), Offer("b", (0.1,) * 3, "b", 0)]
    counts = {"a": 1}
    assert choose_winners([0, 1, 2], offers, max_per_node=None, spread_counts=counts, level_cap=0) == {0: "b"}
    assert choose_winners([0, 1, 2], offers, max_per_node=None, spread_counts=counts,
                          level_cap=1) == {0: "b", 1: "a", 2: "b"}
    assert choose_winners([0, 1, 2], offers, max_per_node=None, spread_counts=counts) == {0: "b", 1: "a", 2: "b"}


def test_unlabelled_nodes_form_their_own_domain():
    offers = [Offer("a", (1.0,) * 4, "r1", 0), Offer("b", (0.5,) * 4, None, 0),
              Offer("c", (0.7,) * 4, None, 0)]
    result = choose_winners([0, 1, 2, 3], offers, max_per_node=None, spread_counts={"": 1})
    # "" starts at 1, r1 at 0: a, then (r1=1, ""=1) tie -> a (score 1.0 beats 0.7),
    # then r1=2 > ""=1 -> c, then both 2 -> a.
    assert result == {0: "a", 1: "a", 2: "c", 3: "a"}


def test_without_spread_best_score_then_name():
    offers = [Offer("b", (0.5, 0.6), None, 0), Offer("a", (0.5,), None, 0),
              Offer("c", (0.4, 0.4, 0.4), None, 0)]
    result = choose_winners([5, 1, 3, 9, 7], offers, max_per_node=None, spread_counts={"x": 9})
    # slot 1: a/b tie at 0.5 -> a; slot 3: b 0.5; slot 5: b's 2nd 0.6; then c, c.
    assert result == {1: "a", 3: "b", 5: "b", 7: "c", 9: "c"}


def test_max_per_node_counts_existing_replicas():
    offers = [Offer("a", (0.9,) * 10, None, 1), Offer("b", (0.8,) * 10, None, 0),
              Offer("c", (0.7,) * 10, None, 3)]
    result = choose_winners(list(range(10)), offers, max_per_node=2, spread_counts={})
    assert Counter(result.values()) == {"a": 1, "b": 2}
    assert result == {0: "a", 1: "b", 2: "b"}


def test_max_per_node_zero_places_nothing():
    offers = [Offer("a", (1.0,), None, 0)]
    assert choose_winners([0], offers, max_per_node=0, spread_counts={}) == {}


def test_no_offers_or_no_slots():
    assert choose_winners([0, 1], [], max_per_node=None, spread_counts={}) == {}
    assert choose_winners([], [Offer("a", (1.0,), "r", 0)], max_per_node=None,
                          spread_counts={}) == {}


def test_rejects_duplicates_and_nan():
    with pytest.raises(ValueError, match="duplicate slots"):
        choose_winners([1, 1], [], max_per_node=None, spread_counts={})
    with pytest.raises(ValueError, match="more than one offer"):
        choose_winners([1], [Offer("a", (1.0,), None, 0), Offer("a", (2.0,), None, 0)],
                       max_per_node=None, spread_counts={})
    with pytest.raises(ValueError, match="NaN"):
        choose_winners([1], [Offer("a", (math.nan,), None, 0)], max_per_node=None,
                       spread_counts={})


def test_large_batch_matches_naive_and_is_fast_enough():
    # 1,000 slots x 1,000 offers, as in the benchmarks.  The naive version is
    # O(slots x offers); this checks the heap version on a realistic size.
    rng = random.Random(7)
    offers = []
    for i in range(1000):
        k = rng.randint(0, 5)
        base = rng.random()
        offers.append(Offer(f"node-{i:04d}", tuple(min(1.0, base + 0.05 * j) for j in range(k)),
                            rng.choice(["r1", "r2", "r3", None]), rng.randint(0, 2)))
    slots = list(range(1000))
    fast = choose_winners(slots, offers, max_per_node=3, spread_counts={"r1": 10})
    naive = choose_winners_naive(slots, offers, max_per_node=3, spread_counts={"r1": 10})
    assert fast == naive
    assert len(fast) > 900


def test_rounds_of_different_coordinators_start_ties_on_different_nodes():
    # Five coordinators each auction two slots of one 10-replica job at once,
    # between five nodes that score the same: two per node, not five on "n1".
    offers = [Offer(f"n{k}", (0.9, 0.8), None, 0) for k in range(1, 6)]
    placed = Counter()
    for k in range(1, 6):
        placed.update(choose_winners([2 * k, 2 * k + 1], offers, max_per_node=None, spread_counts={},
                                     first=f"n{k}").values())
    assert sorted(placed.values()) == [2, 2, 2, 2, 2]
    assert choose_winners([0, 1], offers, max_per_node=None, spread_counts={}, first="n4") == {0: "n4", 1: "n5"}
    assert choose_winners([0, 1], offers, max_per_node=None, spread_counts={}, first="n5") == {0: "n5", 1: "n1"}


# ---- what one bidder can win when every node is its own domain -------------------

@st.composite
def node_domain_auctions(draw):
    names = draw(st.lists(st.text("abcdef", min_size=1, max_size=2), unique=True, min_size=1, max_size=8))
    slots = list(range(draw(st.integers(1, 25))))
    max_per_node = draw(st.one_of(st.none(), st.integers(0, 6)))
    counts = {name: draw(st.integers(0, 5)) for name in names}
    # Room for every slot, scores with many ties, as a node's bid would be.
    offers = [Offer(name, tuple(draw(st.lists(st.sampled_from([0.1, 0.5, 0.9]), min_size=len(slots),
                                              max_size=len(slots)))), name, counts[name]) for name in names]
    return slots, offers, max_per_node, counts


@settings(max_examples=2000, deadline=None)
@given(node_domain_auctions(), st.text("abcdef", max_size=2))
def test_offers_cut_to_most_won_by_one_place_the_same(case, first):
    # The call's bound lets a bidder reserve less without changing a
    # round's outcome: nobody wins more than it, whatever the scores and
    # the tie order, so offers cut to it give the same winners.
    slots, offers, max_per_node, counts = case
    bound = most_won_by_one(len(slots), list(counts.values()), max_per_node)
    full = choose_winners(slots, offers, max_per_node=max_per_node, spread_counts=counts, first=first)
    assert max(Counter(full.values()).values(), default=0) <= bound
    cut = [Offer(o.node, o.scores[:bound], o.spread_value, o.already) for o in offers]
    assert choose_winners(slots, cut, max_per_node=max_per_node, spread_counts=counts, first=first) == full


def test_most_won_by_one_is_what_the_emptiest_can_take():
    assert most_won_by_one(3, [0] * 5, None) == 1          # three slots over five idle nodes
    assert most_won_by_one(10, [0] * 5, None) == 2
    assert most_won_by_one(11, [0] * 5, None) == 3
    assert most_won_by_one(3, [3, 0, 0], None) == 2         # the empty two catch up first
    assert most_won_by_one(2, [0, 1], None) == 2            # the tie at 1 may go either way
    assert most_won_by_one(2, [5, 0], None) == 2
    assert most_won_by_one(10, [0] * 5, 1) == 1             # max_per_node caps it
    assert most_won_by_one(4, [1, 1], 1) == 1               # everyone full: at least 1 (bidders decline)
    assert most_won_by_one(4, [0], None) == 4
    # The bound is reached: the emptiest node, first in the tie order.
    offers = [Offer(n, (0.5,) * 3, n, c) for n, c in (("a", 0), ("b", 0), ("c", 3))]
    assert Counter(choose_winners([0, 1, 2], offers, max_per_node=None, spread_counts={"c": 3},
                                  first="a").values())["a"] == 2
