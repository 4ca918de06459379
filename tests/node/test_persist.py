"""The durable job store: entries survive a reopen, writes keep the
last-writer-wins rule, and damage on disk is reported and never used."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import pytest

import node.state.persist as persist
from node.core.hlc import Stamp
from node.core.jobstore import Entry, wins
from node.state.persist import (
    DB_NAME,
    KEEP_CORRUPT,
    MAX_SPEC_BYTES,
    EntryRejected,
    EntryStore,
    PersistError,
)


def entry(name: str, wall_ms: int, spec: bytes | None, node: str = "n1", counter: int = 0) -> Entry:
    return Entry(name, Stamp(wall_ms, counter, node), spec)


def by_name(entries) -> dict[str, Entry]:
    return {e.name: e for e in entries}


def reopen(state_dir: Path):
    store, report = EntryStore.open(state_dir)
    try:
        return by_name(store.load()), report
    finally:
        store.close()


def test_a_new_state_dir_starts_empty_and_clean(tmp_path):
    store, report = EntryStore.open(tmp_path / "state")
    with store:
        assert store.load() == []
        assert report.created and report.clean and report.moved_to is None
    assert (tmp_path / "state" / DB_NAME).exists()
    assert not (tmp_path / "state" / (DB_NAME + ".new")).exists()


def test_entries_and_tombstones_survive_close_and_reopen(tmp_path):
    web = entry("web", 100, b'{"image":"nginx"}')
    gone = entry("old", 200, None)
    store, _ = EntryStore.open(tmp_path)
    with store:
        assert store.write([web, gone]) == 2
    loaded, report = reopen(tmp_path)
    assert loaded == {"web": web, "old": gone}
    assert report.clean and not report.created
    assert (report.entries, report.tombstones) == (2, 1)


def test_the_database_runs_in_wal_mode(tmp_path):
    store, _ = EntryStore.open(tmp_path)
    with store:
        store.write([entry("web", 1, b"x")])
        conn = sqlite3.connect(tmp_path / DB_NAME)
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        conn.close()


def test_write_keeps_the_entry_that_wins(tmp_path):
    store, _ = EntryStore.open(tmp_path)
    with store:
        newer = entry("web", 200, b"v2")
        assert store.write([newer]) == 1
        assert store.write([entry("web", 100, b"v1")]) == 0  # older: ignored
        assert store.write([newer]) == 0  # the same again: nothing changes
        delete = entry("web", 300, None)
        assert store.write([delete]) == 1
        # Equal stamps: the tie-break of jobstore.wins decides, as in memory.
        a, b = entry("db", 5, b"a"), entry("db", 5, b"b")
        store.write([a, b])
        expected = a if wins(a, b) else b
        assert by_name(store.load()) == {"web": delete, "db": expected}
    loaded, _ = reopen(tmp_path)
    assert loaded == {"web": delete, "db": expected}


def test_a_batch_with_an_oversized_spec_is_refused_whole(tmp_path):
    store, _ = EntryStore.open(tmp_path)
    with store:
        ok = entry("ok", 1, b"x")
        big = entry("big", 1, b"x" * (MAX_SPEC_BYTES + 1))
        with pytest.raises(EntryRejected, match="big"):
            store.write([ok, big])
        assert store.load() == []
        store.write([entry("edge", 1, b"x" * MAX_SPEC_BYTES)])
        assert len(store.load()) == 1


def test_the_store_refuses_rows_beyond_its_bound(tmp_path):
    store, _ = EntryStore.open(tmp_path, max_entries=2)
    with store:
        store.write([entry("a", 1, b"x"), entry("b", 1, b"x")])
        with pytest.raises(EntryRejected, match="2 entries"):
            store.write([entry("c", 1, b"x")])
        assert store.write([entry("a", 2, None)]) == 1  # replacing a row is fine
        assert store.forget(["a"]) == 1
        assert store.write([entry("c", 1, b"x")]) == 1


def test_forget_removes_only_tombstones(tmp_path):
    store, _ = EntryStore.open(tmp_path)
    with store:
        store.write([entry("live", 1, b"x"), entry("dead", 1, None)])
        assert store.forget(["live", "dead", "absent"]) == 1
        assert set(by_name(store.load())) == {"live"}
    loaded, _ = reopen(tmp_path)
    assert set(loaded) == {"live"}


def _corrupt_spec_byte_in_file(path: Path, marker: bytes) -> None:
    data = bytearray(path.read_bytes())
    at = data.index(marker)
    assert data.find(marker, at + 1) == -1
    data[at] ^= 0x01
    path.write_bytes(bytes(data))


def test_a_bit_flipped_in_a_spec_on_disk_is_reported_skipped_and_deleted(tmp_path):
    store, _ = EntryStore.open(tmp_path)
    with store:
        store.write([entry("web", 1, b'{"image":"MARKER-web"}'), entry("db", 1, b'{"image":"pg"}')])
    # close() checkpointed the WAL: the rows are in jobs.db itself.
    _corrupt_spec_byte_in_file(tmp_path / DB_NAME, b"MARKER-web")

    store, report = EntryStore.open(tmp_path)
    with store:
        assert set(by_name(store.load())) == {"db"}
    assert report.bad_rows == 1 and report.moved_to is None
    assert len(report.problems) == 1
    assert "'web'" in report.problems[0] and "checksum" in report.problems[0]
    # Deleted, so it does not come back on the next start; a peer resends it.
    loaded, report = reopen(tmp_path)
    assert set(loaded) == {"db"} and report.clean


def test_a_spec_changed_through_sqlite_fails_its_checksum(tmp_path):
    store, _ = EntryStore.open(tmp_path)
    with store:
        store.write([entry("web", 1, b"abcdef"), entry("db", 1, b"x")])
    conn = sqlite3.connect(tmp_path / DB_NAME)
    with conn:
        conn.execute("UPDATE entries SET spec = ? WHERE name = 'web'", (b"abcdeg",))
    conn.close()
    loaded, report = reopen(tmp_path)
    assert set(loaded) == {"db"}
    assert report.bad_rows == 1 and "'web'" in report.problems[0]


@pytest.mark.parametrize("column, value, words", [
    ("wall_ms", "soon", "wall_ms"),
    ("counter", -1, "counter"),
    ("checksum", b"short", "checksum"),
    ("name", b"\xff\xfe", "UTF-8"),
    ("spec", "text, not bytes", "checksum"),  # comes back as bytes; the checksum catches it
])
def test_malformed_fields_are_reported_not_used(tmp_path, column, value, words):
    store, _ = EntryStore.open(tmp_path)
    with store:
        store.write([entry("web", 1, b"spec"), entry("db", 1, b"x")])
    conn = sqlite3.connect(tmp_path / DB_NAME)
    with conn:
        if column == "name":  # store undecodable text under the name column
            conn.execute("UPDATE entries SET name = CAST(? AS TEXT) WHERE name = 'web'", (value,))
        else:
            conn.execute(f"UPDATE entries SET {column} = ? WHERE name = 'web'", (value,))
    conn.close()
    loaded, report = reopen(tmp_path)
    assert set(loaded) == {"db"}
    assert report.bad_rows == 1 and words in report.problems[0]
    assert "row " in report.problems[0]
    loaded, report = reopen(tmp_path)
    assert set(loaded) == {"db"} and report.clean


def test_a_row_damaged_while_open_loses_to_any_write(tmp_path):
    store, _ = EntryStore.open(tmp_path)
    with store:
        store.write([entry("web", 500, b"spec")])
        conn = sqlite3.connect(tmp_path / DB_NAME)
        with conn:
            conn.execute("UPDATE entries SET spec = ? WHERE name = 'web'", (b"spex",))
        conn.close()
        # A peer's older-stamped copy replaces the damaged row.
        assert store.write([entry("web", 400, b"from a peer")]) == 1
    loaded, report = reopen(tmp_path)
    assert loaded["web"].spec == b"from a peer" and report.clean


def test_damage_found_by_a_later_load_is_added_to_the_report(tmp_path):
    store, report = EntryStore.open(tmp_path)
    with store:
        store.write([entry("web", 1, b"spec"), entry("db", 1, b"x")])
        conn = sqlite3.connect(tmp_path / DB_NAME)
        with conn:
            conn.execute("UPDATE entries SET spec = ? WHERE name = 'web'", (b"spex",))
        conn.close()
        assert set(by_name(store.load())) == {"db"}
        assert store.report is report and report.bad_rows == 1 and "'web'" in report.problems[0]
        assert len(store) == 1


def _fill(state_dir: Path, n: int = 300) -> None:
    store, _ = EntryStore.open(state_dir)
    with store:
        store.write([entry(f"job-{i}", i, b'{"image":"busybox"}' * 20) for i in range(n)])


def _assert_fresh_and_working(state_dir: Path, report) -> None:
    assert report.moved_to is not None and report.moved_to.exists()
    assert report.corrupt_file and report.created
    assert any("moved aside" in p for p in report.problems)
    store, _ = EntryStore.open(state_dir)
    with store:
        assert store.load() == []
        store.write([entry("web", 1, b"x")])
    loaded, again = reopen(state_dir)
    assert set(loaded) == {"web"} and again.clean


def test_a_file_overwritten_with_garbage_is_moved_aside(tmp_path):
    _fill(tmp_path)
    db = tmp_path / DB_NAME
    garbage = bytes(range(256)) * 64
    db.write_bytes(garbage)
    store, report = EntryStore.open(tmp_path)
    with store:
        assert store.load() == []
    assert report.moved_to == tmp_path / f"{DB_NAME}.corrupt-1"
    assert report.moved_to.read_bytes() == garbage  # kept for a post-mortem
    _assert_fresh_and_working(tmp_path, report)


def test_a_file_truncated_halfway_is_moved_aside(tmp_path):
    _fill(tmp_path)
    db = tmp_path / DB_NAME
    size = db.stat().st_size
    assert size > 8 * 4096  # several pages, so half of it loses real data
    with open(db, "r+b") as f:
        f.truncate(size // 2)
    store, report = EntryStore.open(tmp_path)
    store.close()
    _assert_fresh_and_working(tmp_path, report)


def test_an_empty_file_is_damage_not_a_new_database(tmp_path):
    _fill(tmp_path, 3)
    (tmp_path / DB_NAME).write_bytes(b"")
    store, report = EntryStore.open(tmp_path)
    store.close()
    assert "application_id" in report.corrupt_file
    _assert_fresh_and_working(tmp_path, report)


def test_someone_elses_sqlite_file_is_moved_aside(tmp_path):
    conn = sqlite3.connect(tmp_path / DB_NAME)
    conn.execute("CREATE TABLE t (x)")
    conn.commit()
    conn.close()
    store, report = EntryStore.open(tmp_path)
    store.close()
    _assert_fresh_and_working(tmp_path, report)


def test_damaged_btree_pages_are_detected(tmp_path):
    _fill(tmp_path)
    db = tmp_path / DB_NAME
    data = bytearray(db.read_bytes())
    page_size = int.from_bytes(data[16:18], "big")
    # Scribble over the b-tree page headers of a few pages past the schema.
    for page in range(2, 6):
        start = page_size * (page - 1)
        data[start:start + 12] = b"\xff" * 12
    db.write_bytes(bytes(data))
    store, report = EntryStore.open(tmp_path)
    store.close()
    _assert_fresh_and_working(tmp_path, report)


def test_only_a_few_corrupt_copies_are_kept(tmp_path):
    for _ in range(KEEP_CORRUPT + 2):
        _fill(tmp_path, 1)
        (tmp_path / DB_NAME).write_bytes(b"garbage" * 100)
        store, report = EntryStore.open(tmp_path)
        store.close()
    kept = sorted(p.name for p in tmp_path.glob(f"{DB_NAME}.corrupt-*"))
    assert kept == [f"{DB_NAME}.corrupt-{n}" for n in range(3, KEEP_CORRUPT + 3)]
    assert report.moved_to.name == f"{DB_NAME}.corrupt-{KEEP_CORRUPT + 2}"


def test_a_wal_without_its_database_is_discarded_and_reported(tmp_path):
    (tmp_path / f"{DB_NAME}-wal").write_bytes(b"stale")
    store, report = EntryStore.open(tmp_path)
    with store:
        assert store.load() == []
    assert report.created and len(report.problems) == 1 and "-wal" in report.problems[0]


def test_a_locked_database_is_an_error_not_corruption(tmp_path, monkeypatch):
    store, _ = EntryStore.open(tmp_path)
    store.write([entry("web", 1, b"x")])
    store.close()
    other = sqlite3.connect(tmp_path / DB_NAME, isolation_level=None)
    other.execute("PRAGMA locking_mode=EXCLUSIVE")
    other.execute("BEGIN EXCLUSIVE")
    monkeypatch.setattr(persist, "BUSY_TIMEOUT_MS", 0)
    try:
        with pytest.raises(PersistError, match="locked") as info:
            EntryStore.open(tmp_path)
        assert not info.value.corruption
    finally:
        other.execute("ROLLBACK")
        other.close()
    assert not list(tmp_path.glob(f"{DB_NAME}.corrupt-*"))  # nothing moved aside
    loaded, report = reopen(tmp_path)
    assert set(loaded) == {"web"} and report.clean


def test_calls_from_worker_threads_take_turns(tmp_path):
    store, _ = EntryStore.open(tmp_path)
    errors = []

    def writer(k: int) -> None:
        try:
            for i in range(20):
                store.write([entry(f"t{k}-{i}", i, b"x")])
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    with store:
        assert not errors
        assert len(store.load()) == 80 == len(store)


def test_a_closed_store_raises(tmp_path):
    store, _ = EntryStore.open(tmp_path)
    store.close()
    store.close()
    with pytest.raises(PersistError, match="closed"):
        store.load()
