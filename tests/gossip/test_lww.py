"""gossip.lww.LwwMap with a tiny entry type: merge, digests, bucket exchange, bounds.

How this works: `Reg` is the smallest entry the map accepts, a named register
whose newer (version, value, deleted) wins.  The properties a replica relies
on are checked on random histories (Hypothesis): merging is commutative,
associative and idempotent; equal maps have equal digests; swapping the
entries of the buckets whose digests differ makes two replicas equal.
"""

from __future__ import annotations

import hashlib
import itertools
from dataclasses import dataclass
from functools import reduce

from hypothesis import given, settings
from hypothesis import strategies as st

from gossip.lww import BUCKETS, ZERO_DIGEST, LwwMap, bucket_of


@dataclass(frozen=True)
class Reg:
    name: str
    version: int
    value: int = 0
    deleted: bool = False

    def _order(self) -> tuple[int, int, bool]:
        return (self.version, self.value, self.deleted)

    def beats(self, other: Reg, /) -> bool:
        # A total order among one name's entries, so every replica picks the same winner.
        return self._order() > other._order()

    def entry_hash(self) -> bytes:
        return hashlib.blake2b(repr(self).encode(), digest_size=16).digest()


def lww(*entries: Reg, max_entries: int = 1000) -> LwwMap[Reg]:
    m: LwwMap[Reg] = LwwMap(max_entries)
    for e in entries:
        m.merge(e)
    return m


def merged(*maps: LwwMap[Reg]) -> LwwMap[Reg]:
    """A new map holding the merge of all the given maps' entries."""
    return lww(*(e for m in maps for e in m.entries.values()))


def same(a: LwwMap[Reg], b: LwwMap[Reg]) -> bool:
    return a.entries == b.entries and a.digest() == b.digest() and a.bucket_digests() == b.bucket_digests()


def names_in_distinct_buckets(n: int) -> list[str]:
    out: list[str] = []
    used: set[int] = set()
    for i in itertools.count():
        name = f"n{i}"
        if bucket_of(name) not in used:
            used.add(bucket_of(name))
            out.append(name)
            if len(out) == n:
                return out
    raise AssertionError("unreachable")


regs = st.builds(Reg, name=st.sampled_from([f"job-{i}" for i in range(12)]),
                 version=st.integers(0, 4), value=st.integers(0, 2), deleted=st.booleans())
histories = st.lists(regs, max_size=30)


# ---------------------------------------------------------------- merge


def test_merge_keeps_the_newer_entry_whatever_the_order():
    old, new = Reg("a", 1, value=7), Reg("a", 2, value=3)
    m = lww()
    assert m.merge(old) is True
    assert m.merge(new) is True
    assert m.merge(old) is False  # older news changes nothing
    assert m.get("a") == new
    assert lww(new, old).entries == lww(old, new).entries == {"a": new}


def test_merging_the_entry_we_hold_changes_nothing():
    m = lww(Reg("a", 1))
    digest = m.digest()
    assert m.merge(Reg("a", 1)) is False
    assert m.digest() == digest


def test_live_leaves_out_tombstones_and_is_sorted_by_name():
    m = lww(Reg("b", 1), Reg("a", 1), Reg("c", 1, deleted=True))
    assert [e.name for e in m.live()] == ["a", "b"]
    assert m.live_count == 2
    m.merge(Reg("a", 2, deleted=True))
    assert [e.name for e in m.live()] == ["b"]
    assert m.live_count == 1


@settings(max_examples=200, deadline=None)
@given(histories, st.randoms(use_true_random=False))
def test_any_order_of_the_same_entries_gives_the_same_map(history, rnd):
    shuffled = list(history)
    rnd.shuffle(shuffled)
    assert same(lww(*history), lww(*shuffled))


@settings(max_examples=200, deadline=None)
@given(histories, histories, histories)
def test_merge_is_commutative_associative_idempotent(xs, ys, zs):
    a, b, c = lww(*xs), lww(*ys), lww(*zs)
    assert same(merged(a, b), merged(b, a))
    assert same(merged(merged(a, b), c), merged(a, merged(b, c)))
    assert same(merged(a, a), a)
    # And merging into a replica in place agrees with building the merge.
    for e in b.entries.values():
        a.merge(e)
    assert same(a, merged(lww(*xs), b))


# ---------------------------------------------------------------- digests


def test_empty_maps_have_the_zero_digest():
    m = lww()
    assert m.digest() == ZERO_DIGEST
    assert m.bucket_digests() == [ZERO_DIGEST] * BUCKETS


def test_a_merge_moves_the_digest_and_only_its_bucket_digest():
    m = lww(Reg("a", 1), Reg("b", 1))
    digest, buckets = m.digest(), m.bucket_digests()
    m.merge(Reg("a", 2))
    assert m.digest() != digest
    changed = [i for i in range(BUCKETS) if m.bucket_digests()[i] != buckets[i]]
    assert changed == [bucket_of("a")]


def test_bucket_digests_are_a_copy():
    m = lww(Reg("a", 1))
    m.bucket_digests()[bucket_of("a")] = ZERO_DIGEST
    assert m.bucket_digests()[bucket_of("a")] != ZERO_DIGEST


@settings(max_examples=200, deadline=None)
@given(histories, histories)
def test_digests_are_equal_exactly_when_the_maps_are(xs, ys):
    a, b = lww(*xs), lww(*ys)
    assert (a.digest() == b.digest()) == (a.entries == b.entries)
    # The map digest is the XOR of the bucket digests.
    xor = reduce(lambda acc, d: acc ^ int.from_bytes(d, "big"), a.bucket_digests(), 0)
    assert a.digest() == xor.to_bytes(len(ZERO_DIGEST), "big")


# ---------------------------------------------------------------- anti-entropy


def test_differing_buckets_and_entries_in_find_exactly_the_differing_entries():
    # Names in distinct buckets, so "the entries of differing buckets" are
    # exactly the entries that differ.
    a_name, b_name, c_name, d_name = names_in_distinct_buckets(4)
    common = Reg(a_name, 1)
    ours = lww(common, Reg(b_name, 2), Reg(c_name, 1))
    theirs = lww(common, Reg(b_name, 1), Reg(d_name, 1))
    buckets = ours.differing_buckets(theirs.bucket_digests())
    assert sorted(buckets) == sorted(bucket_of(n) for n in (b_name, c_name, d_name))
    assert theirs.differing_buckets(ours.bucket_digests()) == buckets
    assert sorted(e.name for e in ours.entries_in(buckets)) == sorted([b_name, c_name])
    assert sorted(e.name for e in theirs.entries_in(buckets)) == sorted([b_name, d_name])
    assert ours.differing_buckets(ours.bucket_digests()) == []


def test_a_bucket_list_of_the_wrong_length_asks_for_every_bucket():
    m = lww(Reg("a", 1))
    assert m.differing_buckets([]) == list(range(BUCKETS))
    assert m.differing_buckets([ZERO_DIGEST] * (BUCKETS + 1)) == list(range(BUCKETS))


@settings(max_examples=200, deadline=None)
@given(histories, histories)
def test_swapping_the_differing_buckets_makes_replicas_equal(xs, ys):
    a, b = lww(*xs), lww(*ys)
    buckets = a.differing_buckets(b.bucket_digests())
    # Every name whose entry differs is in a differing bucket; no other bucket is listed.
    differing = {n for n in a.entries.keys() | b.entries.keys() if a.get(n) != b.get(n)}
    assert set(buckets) == {bucket_of(n) for n in differing}
    to_b, to_a = a.entries_in(buckets), b.entries_in(buckets)
    for e in to_b:
        b.merge(e)
    for e in to_a:
        a.merge(e)
    assert same(a, b)
    assert same(a, merged(lww(*xs), lww(*ys)))


# ---------------------------------------------------------------- bounds, forgetting


def test_full_map_refuses_new_names_but_takes_newer_versions():
    m = lww(Reg("a", 1), Reg("b", 1, deleted=True), max_entries=2)  # tombstones count
    digest = m.digest()
    assert m.merge(Reg("c", 1)) is False
    assert m.get("c") is None
    assert m.digest() == digest
    assert m.merge(Reg("a", 2)) is True
    assert m.merge(Reg("b", 2)) is True
    assert m.get("a") == Reg("a", 2) and m.get("b") == Reg("b", 2)
    assert len(m.entries) == 2


def test_forget_drops_only_tombstones():
    m = lww(Reg("live", 1), Reg("gone", 2, deleted=True), Reg("other", 1))
    m.forget(["live", "gone", "never-there"])
    assert set(m.entries) == {"live", "other"}
    assert m.live_count == 2
    # As if the tombstone had never been merged.
    assert same(m, lww(Reg("live", 1), Reg("other", 1)))


def test_a_forgotten_name_can_come_back_with_any_version():
    m = lww(Reg("a", 5, deleted=True))
    m.forget(["a"])
    assert m.merge(Reg("a", 1)) is True
    assert m.get("a") == Reg("a", 1)
