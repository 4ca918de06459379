"""Job history: the last 10 versions of each job, numbered, replicated with the
job store, the same on every agent after partitions heal."""

from __future__ import annotations

import msgpack
import pytest
from hypothesis import given
from hypothesis import strategies as st

from auction.placement import PlacementConfig
from auction.resources import Resources
from auction.spec import validate
from gossip.config import LOCAL
from gossip.lww import BUCKETS
from node.core.history import HISTORY_VERSIONS, Meta, find_version, version_id
from node.core.hlc import Stamp
from node.core.jobstore import Entry, JobStore
from node.core.node_core import ClusterConfig
from node.core.wire import EntryBroadcast, SyncEntries, MAP_JOBS, decode, encode
from node.sim import faults
from node.sim.cluster import ClusterSim

GiB = 1 << 30


def write(name: str, wall_ms: int, version: int, node: str = "a", spec: bytes | None = b"{}",
          why: str = "submit") -> Entry:
    return Entry(name, Stamp(wall_ms, 0, node), spec, Meta(version, why, "alice"))


def sync_all(a: JobStore, b: JobStore) -> None:
    """One anti-entropy exchange, both ways, of the buckets that differ."""
    diff = a.differing_buckets(b.bucket_digests())
    for e in b.entries_in(diff):
        a.merge(e)
    for e in a.entries_in(diff):
        b.merge(e)


def test_the_eleventh_version_drops_the_oldest_and_a_late_copy_of_it_is_refused():
    store = JobStore()
    for v in range(1, 12):
        store.merge(write("web", 1000 * v, v, spec=b'{"v":%d}' % v))
    kept = store.history.of("web")
    assert [e.meta.version for e in kept] == list(range(2, 12))
    assert len(kept) == HISTORY_VERSIONS and store.history.bytes == sum(len(e.spec) for e in kept)
    before = store.digest()
    assert not store.merge(write("web", 1000, 1, spec=b'{"v":1}'))  # version 1 comes back late
    assert store.history.of("web") == kept and store.digest() == before
    assert store.history_pending == []


def test_two_sides_of_a_partition_each_write_a_version_and_both_keep_both():
    left, right = JobStore(), JobStore()
    for store in (left, right):
        for v in range(1, 5):
            store.merge(write("web", 1000 * v, v))
    # Split: each side numbers its write 5; the right one is written later.
    assert left.next_version("web") == right.next_version("web") == 5
    left.merge(write("web", 9000, 5, node="node-a", spec=b'{"image":"a"}'))
    right.merge(write("web", 9500, 5, node="node-b", spec=b'{"image":"b"}'))
    sync_all(left, right)
    assert left.digest() == right.digest()
    assert left.get("web").spec == right.get("web").spec == b'{"image":"b"}'  # the later stamp is current
    records = left.history.of("web")
    assert [version_id(r, records) for r in records] == ["1", "2", "3", "4", "5@node-a", "5@node-b"]
    assert left.next_version("web") == 6  # numbers never go back
    with pytest.raises(LookupError, match="5@node-a or 5@node-b"):
        find_version(records, "5")
    assert find_version(records, "5@node-a").spec == b'{"image":"a"}'
    # The losing version reached the right side as history only, to persist.
    assert [e.stamp.node for e in right.take_history()] == ["node-a"]


versions = st.builds(lambda wall, node, v: write("web", wall, v, node=node),
                     st.integers(0, 30), st.sampled_from(["a", "b", "c"]), st.integers(1, 20))


@given(st.lists(versions, max_size=25), st.randoms())
def test_history_is_the_same_whatever_order_versions_arrive_in(seq, rnd):
    a, b = JobStore(), JobStore()
    for e in seq:
        a.merge(e)
    shuffled = seq + seq[: len(seq) // 3]
    rnd.shuffle(shuffled)
    for e in shuffled:
        b.merge(e)
    assert a.history.of("web") == b.history.of("web") and a.digest() == b.digest()
    assert len(a.history.of("web")) == min(HISTORY_VERSIONS, len({e.stamp for e in seq}))


def test_a_collected_tombstone_takes_its_history_with_it():
    store = JobStore()
    store.merge(write("web", 1000, 1))
    store.merge(write("web", 2000, 2, spec=None, why="delete"))
    assert len(store.history.of("web")) == 2
    store.forget(["web"])
    assert store.history.of("web") == [] and store.digest() == JobStore().digest()


def test_meta_rides_on_the_wire_and_entries_without_it_still_decode():
    entry = Entry("web", Stamp(5, 1, "n1"), b"{}", Meta(3, "rollback", "alice@laptop", "1", "ab" * 32))
    assert decode(encode(EntryBroadcast(entry)), 1024) == EntryBroadcast(entry)
    old = msgpack.packb([1, ["web", [5, 1, "n1"], b"{}"]], use_bin_type=True)  # an older agent's entry
    assert decode(old, 1024) == EntryBroadcast(Entry("web", Stamp(5, 1, "n1"), b"{}"))
    # The same write with and without its meta: the one with it wins everywhere.
    bare = Entry("web", Stamp(5, 1, "n1"), b"{}")
    assert entry.beats(bare) and not bare.beats(entry)
    for bad in ([3, "reboot", "", ""], [-1, "submit", "", ""], [3, "submit", "x" * 200, ""], [3, "submit"]):
        raw = msgpack.packb([1, ["web", [5, 1, "n1"], b"{}", bad]], use_bin_type=True)
        with pytest.raises(ValueError):
            decode(raw, 1024)
    sync = SyncEntries(MAP_JOBS, (entry, bare), (1, 2))
    assert decode(encode(sync), 1024) == sync


def test_a_full_sync_carries_history_once():
    store = JobStore()
    for v in range(1, 4):
        store.merge(write("web", 1000 * v, v))
    sent = store.entries_in(list(range(BUCKETS)))
    assert [e.meta.version for e in sent] == [3, 1, 2]  # the current entry, then the older ones


FAST = PlacementConfig(placement_interval_s=0.25, auction_ttl_s=0.1, claim_wait_s=1.0,
                       min_backoff_s=0.2, max_backoff_s=2.0)
CLUSTER = ClusterConfig(store_sync_interval_s=0.5, status_min_interval_s=0.5, status_digest_quiet_s=0.5,
                        status_digest_max_delay_s=2.0)


def _spec(image: str) -> object:
    return validate({"name": "web", "image": image, "replicas": 2, "cpu": 0.1, "memory": "64MiB"})


@pytest.mark.parametrize("seed", [1, 2])
def test_versions_written_on_both_sides_of_a_partition_reach_every_agent(seed):
    sim = ClusterSim(seed, 6, LOCAL.replace(enable_compression=False), placement_config=FAST,
                     cluster_config=CLUSTER, capacities=[Resources(2000, 4 * GiB, 0)] * 6)
    sim.world.bootstrap(seeds="random")
    sim.world.run_for(3)
    sim.submit(0, _spec("busybox:1"))
    sim.world.run_for(3)
    faults.partition(sim.world, [range(0, 3), range(3, 6)])
    sim.world.run_for(1)
    sim.submit(1, _spec("busybox:left"))
    sim.world.run_for(0.5)
    sim.submit(4, _spec("busybox:right"))
    sim.world.run_for(3)
    faults.heal(sim.world)
    sim.world.run_for(20)
    histories = []
    for i in range(6):
        core = sim.world.core(i)
        records = core.view.history("web")
        histories.append([(version_id(r, records), r.stamp.node) for r in records])
        assert b"busybox:right" in core.view.job("web").spec  # written last: the current version
    assert all(h == histories[0] for h in histories), histories
    assert [v for v, _ in histories[0]] == ["1", "2@node-1", "2@node-4"]
    assert len({sim.world.core(i).view.store_digest() for i in range(6)}) == 1


def test_versions_survive_a_restart_with_their_meta(tmp_path):
    from node.state.persist import EntryStore
    from node.state.versionstore import VersionStore

    jobs, _ = EntryStore.open(tmp_path)
    versions, _ = VersionStore.open(tmp_path)
    written = [write("web", 1000 * v, v, spec=b'{"v":%d}' % v) for v in range(1, 13)]
    for e in written:  # as the agent does for each PersistEntries
        jobs.write([e])
        versions.write([e])
    versions.write([written[0]])  # a late copy of a pruned version is pruned again
    jobs.close()
    versions.close()
    jobs, _ = EntryStore.open(tmp_path)
    versions, report = VersionStore.open(tmp_path)
    assert report.problems == [] and len(versions.loaded) == HISTORY_VERSIONS
    store = JobStore()
    for e in jobs.load() + versions.loaded:  # what NodeCore(stored_entries=...) merges
        store.merge(e)
    assert store.get("web") == written[-1]  # the current entry, Meta included
    assert store.history.of("web") == written[2:]
    versions.forget(["web"])
    assert len(versions) == 0
    jobs.close()
    versions.close()
