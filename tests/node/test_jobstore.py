"""The job store CRDT: merge is commutative, associative and idempotent,
digests agree exactly when contents agree, and tombstones are collected only
when every live member holds them."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from node.core.hlc import HybridClock, Stamp
from gossip.lww import BUCKETS
from node.core.jobstore import Entry, JobStore

names = st.sampled_from(["web", "db", "cache", "api", "worker"])
stamps = st.builds(Stamp, st.integers(0, 5), st.integers(0, 3), st.sampled_from(["a", "b", "c"]))
specs = st.one_of(st.none(), st.binary(min_size=1, max_size=8))
entries = st.builds(Entry, names, stamps, specs)


def build(seq) -> JobStore:
    store = JobStore()
    for e in seq:
        store.merge(e)
    return store


def versions(store: JobStore):
    return {job: store.history.of(job) for job in store.history.jobs() if store.history.of(job)}


def state(store: JobStore):
    return dict(store.entries), versions(store), store.digest()


def everything(store: JobStore):
    """What a full sync sends: the current entries and every older version."""
    return store.entries_in(list(range(BUCKETS)))


@given(st.lists(entries, max_size=30), st.randoms())
def test_merge_order_and_duplicates_do_not_matter(seq, rnd):
    shuffled = list(seq) + list(seq[: len(seq) // 2])  # duplicates
    rnd.shuffle(shuffled)
    assert state(build(seq)) == state(build(shuffled))


@given(st.lists(entries, max_size=15), st.lists(entries, max_size=15), st.lists(entries, max_size=15))
def test_merging_whole_stores_is_associative_and_commutative(xs, ys, zs):
    def merged(*stores):
        out = JobStore()
        for s in stores:
            for e in everything(s):
                out.merge(e)
        return out

    a, b, c = build(xs), build(ys), build(zs)
    left = merged(merged(a, b), c)
    right = merged(a, merged(b, c))
    assert state(left) == state(right)
    assert state(merged(a, b)) == state(merged(b, a))
    assert state(merged(a, a)) == state(a)


@given(st.lists(entries, max_size=20), st.lists(entries, max_size=20))
@settings(max_examples=200)
def test_digest_equal_iff_contents_equal(xs, ys):
    a, b = build(xs), build(ys)
    assert (a.digest() == b.digest()) == ((a.entries, versions(a)) == (b.entries, versions(b)))
    diff = a.differing_buckets(b.bucket_digests())
    # Syncing only the differing buckets, both ways, makes them equal.
    for e in b.entries_in(diff):
        a.merge(e)
    for e in a.entries_in(diff):
        b.merge(e)
    assert state(a) == state(b)
    assert len(a.bucket_digests()) == BUCKETS


def test_delete_after_seeing_a_write_wins_even_with_a_slow_clock():
    fast, slow = HybridClock("fast"), HybridClock("slow")
    put = Entry("web", fast.tick(10_000), b"{}")
    slow.observe(put.stamp, 5_000)  # slow's wall clock is 5 s behind
    delete = Entry("web", slow.tick(5_000), None)
    store = build([delete, put])
    assert store.get("web").deleted
    assert store.live() == []


def test_tombstones_collected_only_when_every_live_peer_has_them():
    store = build([Entry("web", Stamp(1_000, 0, "a"), None), Entry("db", Stamp(1_000, 0, "a"), b"{}")])
    other = JobStore()
    assert store.collectable_tombstones(10_000, 5_000, [other.digest()]) == []
    assert store.collectable_tombstones(3_000, 5_000, [store.digest()]) == []  # too young
    assert store.collectable_tombstones(10_000, 5_000, [store.digest()]) == ["web"]
    store.forget(["web", "db"])  # a live entry is never forgotten
    assert store.get("web") is None and store.get("db") is not None


def test_stamps_from_far_future_do_not_drag_the_clock():
    clock = HybridClock("a", max_skew_ms=1_000)
    clock.observe(Stamp(10**12, 0, "liar"), 5_000)
    assert clock.tick(5_000).wall_ms == 5_000
