"""Durable storage of job history: SQLite in WAL mode, `<state_dir>/versions.db`.

How this works: the job store's history (node.core.history: the last
versions of every job, with who wrote each and why) lives in memory; the
agent writes every version it files here, so a restarted agent, or a whole
restarted cluster, still shows `shoal job history` and can roll back.  Each
`PersistEntries` batch goes to the job store (node/persist.py, current
entries, without their Meta) and then here (every entry of the batch and
its `history`, with Meta).  On start both are read and merged into the job
store: the current entry and its version here are one write, and the one
with Meta wins (node.core.jobstore.Entry.beats), so the Meta comes back too.
A crash between the two writes loses at most that version's Meta here;
peers hold it and anti-entropy brings it back.

One row per version: the entry's wire form (msgpack of `Entry.to_wire()`,
checksummed as node/state/rowbody.py says), keyed by job name and HLC stamp.  A job keeps
HISTORY_VERSIONS rows, newest by stamp (the in-memory rule); a write prunes
the rest.  `forget` (a collected tombstone) deletes a job's rows.  The file
is handled by node/sqlitefile.py like the other two stores (checked on
open, moved aside when damaged, bad rows deleted and reported), and is a
file of its own so that damage to it never costs the jobs or claims.

Threading: as the other stores, every method blocks and holds the lock.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from functools import partial
from pathlib import Path

from node.core.history import HISTORY_VERSIONS
from node.core.jobstore import MAX_ENTRIES, Entry
from node.state.layout import VERSIONS_DB
from node.state.sqlitefile import (KEEP_CORRUPT, BadRow, FileLayout, LoadReport, PersistError,
                                   SqliteStore, open_file, scan_rows)
from node.state.rowbody import RowBody

DB_NAME = VERSIONS_DB
APPLICATION_ID = 0x73686F76  # "shov"
SCHEMA_VERSION = 1
MAX_SPEC_BYTES = 64 * 1024
MAX_ROW_BYTES = MAX_SPEC_BYTES + 4096  # the spec and a bounded Meta
MAX_ROWS = MAX_ENTRIES * HISTORY_VERSIONS
BUSY_TIMEOUT_S = 5.0
_ROW_OVERHEAD_BYTES = 8 * 1024
_COLUMNS = ("name", "wall_ms", "counter", "node", "body", "checksum")
_SCHEMA = """
CREATE TABLE versions (
    name     TEXT NOT NULL,
    wall_ms  INTEGER NOT NULL,
    counter  INTEGER NOT NULL,
    node     TEXT NOT NULL,
    body     BLOB NOT NULL,        -- msgpack of Entry.to_wire()
    checksum BLOB NOT NULL,        -- BODY.checksum(body)
    PRIMARY KEY (name, wall_ms, counter, node)
)
"""
_SELECT = "SELECT rowid, name, body, checksum FROM versions"
_UPSERT = """
INSERT INTO versions (name, wall_ms, counter, node, body, checksum) VALUES (?, ?, ?, ?, ?, ?)
ON CONFLICT (name, wall_ms, counter, node) DO UPDATE SET body = excluded.body, checksum = excluded.checksum
"""
_PRUNE = """
DELETE FROM versions WHERE name = ?1 AND rowid NOT IN (
    SELECT rowid FROM versions WHERE name = ?1 ORDER BY wall_ms DESC, counter DESC, node DESC LIMIT ?2)
"""

_LAYOUT = FileLayout(
    file_name=DB_NAME, store_name="version store", contents="job versions", row_noun="job version",
    application_id=APPLICATION_ID, schema_version=SCHEMA_VERSION,
    table="versions", columns=_COLUMNS, schema_sql=_SCHEMA, reports_stray_wal=False)


BODY = RowBody(b"shoal-versions1", MAX_ROW_BYTES, "version")


def _decode_row(row: tuple) -> Entry:
    _, name, body, checksum = row
    entry = BODY.decode(body, checksum, partial(Entry.from_wire, max_spec_bytes=MAX_SPEC_BYTES))
    if not isinstance(name, bytes) or name.decode(errors="replace") != entry.name:
        raise BadRow("row name does not match its version")
    return entry


def _read(conn: sqlite3.Connection, report: LoadReport) -> list[Entry]:
    _, versions = scan_rows(conn, _LAYOUT, report, _SELECT, _decode_row, MAX_ROWS)
    return versions


class VersionStore(SqliteStore):
    """One SQLite connection to `<state_dir>/versions.db`.  Build with `open`."""

    layout = _LAYOUT

    def __init__(self, path: Path, conn: sqlite3.Connection, rows: int, report: LoadReport,
                 loaded: list[Entry]) -> None:
        super().__init__(path, conn, rows, report)
        self.loaded = loaded  # what open() read, merged into NodeCore(stored_entries=...)

    @classmethod
    def open(cls, state_dir: Path, *, keep_corrupt: int = KEEP_CORRUPT) -> tuple["VersionStore", LoadReport]:
        """Open (or create) the version store; a damaged file is moved aside and
        reported.  Raises PersistError if even an empty store cannot be made."""
        conn, loaded, report = open_file(
            state_dir, _LAYOUT, _read, keep_corrupt=keep_corrupt, busy_timeout_s=BUSY_TIMEOUT_S,
            max_rows=MAX_ROWS, max_row_bytes=MAX_ROW_BYTES + _ROW_OVERHEAD_BYTES)
        report.entries = len(loaded)
        return cls(report.path, conn, len(loaded), report, loaded), report

    def write(self, entries: Iterable[Entry]) -> int:
        """Store these versions in one transaction (a version already stored is
        replaced only by one that beats it: the same write with its Meta),
        then keep each touched job's newest HISTORY_VERSIONS.  Returns how
        many rows changed; durable on return."""
        batch = list(entries)
        with self._lock:
            conn = self._connection()
            written = 0
            with self.write_transaction(conn):
                for entry in batch:
                    s = entry.stamp
                    row = conn.execute(_SELECT + " WHERE name = ? AND wall_ms = ? AND counter = ? AND node = ?",
                                       (entry.name, s.wall_ms, s.counter, s.node)).fetchone()
                    if row is not None:
                        try:
                            if not entry.beats(_decode_row(row)):
                                continue
                        except BadRow:
                            pass  # a damaged row loses to anything
                    elif self._rows >= MAX_ROWS:
                        raise PersistError(f"the version store holds {MAX_ROWS} versions already")
                    body, checksum = BODY.encode(entry.to_wire())
                    conn.execute(_UPSERT, (entry.name, s.wall_ms, s.counter, s.node, body, checksum))
                    written += 1
                    self._rows += row is None
                for name in {e.name for e in batch}:
                    self._rows -= conn.execute(_PRUNE, (name, HISTORY_VERSIONS)).rowcount
            return written

    def forget(self, names: Iterable[str]) -> int:
        """Delete these jobs' versions (their tombstones were collected)."""
        return self.delete_each("DELETE FROM versions WHERE name = ?", names)
