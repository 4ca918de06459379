"""Rendezvous hashing: the cached, incrementally updated owner must always be
the naive argmax of the scores over the current view, whatever sequence of
views it went through; and a change of view moves only the keys it must."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from auction.rendezvous import Rendezvous, score

NAMES = [f"node-{i}" for i in range(12)]
KEYS = [f"job-{j}/{i}" for j in range(3) for i in range(8)]


def naive(members, key):
    best = None
    for m in sorted(members):
        if best is None or score(m, key) > score(best, key):
            best = m
    return best


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.sets(st.sampled_from(NAMES)), st.lists(st.sampled_from(KEYS), max_size=10)),
                min_size=1, max_size=8))
def test_owner_is_the_naive_argmax_through_any_sequence_of_views(steps):
    rv = Rendezvous()
    for view, asked in steps:
        rv.update(view)
        for key in asked + KEYS[:4]:
            assert rv.owner(key) == naive(view, key), (view, key)


def test_a_member_leaving_moves_only_its_own_keys_and_a_member_joining_takes_only_what_it_beats():
    members = NAMES[:10]
    rv = Rendezvous(members)
    before = {k: rv.owner(k) for k in KEYS}
    gone = before[KEYS[0]]
    rv.update(set(members) - {gone})
    after = {k: rv.owner(k) for k in KEYS}
    assert {k for k in KEYS if after[k] != before[k]} == {k for k in KEYS if before[k] == gone}
    rv.update(set(members) - {gone} | {NAMES[11]})
    joined = {k: rv.owner(k) for k in KEYS}
    for k in KEYS:
        assert joined[k] in (after[k], NAMES[11])
        assert (joined[k] == NAMES[11]) == (score(NAMES[11], k) > score(after[k], k))


def test_an_empty_view_has_no_owner():
    rv = Rendezvous(["a"])
    rv.update([])
    assert rv.owner("job/0") is None


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.sets(st.sampled_from(NAMES)), st.lists(st.sampled_from(KEYS), max_size=10),
                          st.sampled_from(NAMES)), min_size=1, max_size=8))
def test_is_owner_answers_as_the_naive_argmax_through_any_sequence_of_views(steps):
    # Asked before and after owner() for the same keys, by members in and
    # out of the view: the cached "beaten by" answers must never go stale.
    rv = Rendezvous()
    for view, asked, me in steps:
        rv.update(view)
        for key in asked + KEYS[:4]:
            assert rv.is_owner(key, me) == (naive(view, key) == me), (view, key, me)
        for key in asked:
            rv.owner(key)
            for member in view:
                assert rv.is_owner(key, member) == (naive(view, key) == member)


@settings(max_examples=200, deadline=None)
@given(st.sets(st.sampled_from(NAMES)), st.sampled_from(KEYS))
def test_ranked_names_the_owner_then_whoever_owns_the_key_once_the_owner_leaves(view, key):
    rv = Rendezvous(view)
    ranked = rv.ranked(key, 2)
    assert len(ranked) == min(2, len(view))
    if view:
        assert ranked[0] == naive(view, key)
    if len(view) > 1:
        assert ranked[1] == naive(view - {ranked[0]}, key)
