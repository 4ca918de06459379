"""Durable storage of the job store: SQLite in WAL mode in the agent's state dir.

How this works: the replicated job store (node/jobstore.py) lives in memory;
this module keeps a copy of every entry on disk, one row per job name, in
`<state_dir>/jobs.db`, so a restarted agent (or a whole restarted cluster)
still holds every job.  The agent writes each `PersistEntries` batch with
`EntryStore.write` and acknowledges a local submission only when it returns:
the connection runs with `journal_mode=WAL` and `synchronous=FULL`, so when
the transaction commits, its WAL frames have been fsynced.  `ForgetEntries`
becomes `EntryStore.forget` (only tombstones are ever deleted that way).

A write keeps the last-writer-wins rule of the in-memory store
(`jobstore.wins`): an entry replaces the stored row only if it beats it, so
batches applied late or twice never roll a job back.

Nothing read from disk is trusted:

* every row carries a checksum (blake2b over a length-prefixed encoding of
  name, stamp and spec), checked on load together with the types and bounds
  of every field.  SQLite has no page checksums, so a flipped bit inside a
  spec would otherwise come back as a valid-looking job.  A bad row is
  reported (`LoadReport.problems`, naming the row), skipped and deleted; the
  in-memory store then differs from the peers' digests and anti-entropy
  fetches the real entry back from a peer;
* the file itself is checked on open: SQLite's own header, our
  `application_id` and schema version, the table layout and
  `PRAGMA quick_check`.  A file that fails any of them (garbage, truncated,
  torn, someone else's database) is moved aside to `jobs.db.corrupt-<n>`
  (the newest `KEEP_CORRUPT` are kept for a post-mortem, with their WAL),
  reported, and the agent starts from an empty store that peers refill.
  Only corruption is handled that way: a locked or unreadable file, a full
  disk or a permission problem raises `PersistError` (moving a good
  database aside because of a transient error would throw data away).

Opening, checking and moving aside the file, the pragmas, deleting bad
rows, the report and the lock are node/sqlitefile.py, shared with the claim
store (node/claimstore.py); this module holds the job store's schema, row
format and checksum, bounds and merge rule.

A new database is built as `jobs.db.new` and renamed into place, so a
`jobs.db` that exists was complete once: an empty or headerless one is
damage, never a crash in the middle of creating it.  A torn tail of the WAL
(a crash in the middle of a commit) is SQLite's business: its frames carry
checksums and an uncommitted tail is ignored, which is right, because that
transaction was never acknowledged.

Bounds: a spec larger than `max_spec_bytes` (64 KiB) or a name outside
1..255 characters is refused before anything is written (`EntryRejected`),
and so is a new row beyond `max_entries` (the job store's own bound).
`PRAGMA max_page_count` caps the file at what that many maximal entries
need, with slack, so even a bug cannot grow it without bound.

Threading: every method blocks (fsync).  The agent calls them through
`trio.to_thread.run_sync` with a `CapacityLimiter(1)`, so worker threads
take turns on one connection; it is opened with `check_same_thread=False`
and every method also holds a lock, so a call from a second thread waits
rather than interleaving a transaction.
"""

from __future__ import annotations

import hashlib
import sqlite3
import struct
from collections.abc import Iterable
from pathlib import Path

from node.core.hlc import Stamp
from node.core.jobstore import MAX_ENTRIES, Entry, wins
from node.state.layout import JOBS_DB, EntryRejected
from node.state.sqlitefile import (KEEP_CORRUPT, BadRow, FileLayout, LoadReport, PersistError,
                         SqliteStore, is_corruption, open_file, scan_rows)

DB_NAME = JOBS_DB
MAX_SPEC_BYTES = 64 * 1024
MAX_NAME_CHARS = 255  # as Entry.from_wire
MAX_NODE_CHARS = 512  # as Stamp.from_wire
CHECKSUM_BYTES = 16
BUSY_TIMEOUT_MS = 5000

# Identifies the file as ours: a valid SQLite file with another id is not a
# job store (and a zero id is an empty file SQLite treats as a blank database).
APPLICATION_ID = 0x73686F6C  # "shol"
SCHEMA_VERSION = 1
_COLUMNS = ("name", "wall_ms", "counter", "node", "spec", "checksum")
_SCHEMA = """
CREATE TABLE entries (
    name     TEXT PRIMARY KEY NOT NULL,
    wall_ms  INTEGER NOT NULL,
    counter  INTEGER NOT NULL,
    node     TEXT NOT NULL,
    spec     BLOB,              -- canonical JSON of the spec; NULL = tombstone
    checksum BLOB NOT NULL      -- row_checksum() of the other columns
)
"""
_SELECT = "SELECT rowid, name, wall_ms, counter, node, spec, checksum FROM entries"
_UPSERT = """
INSERT INTO entries (name, wall_ms, counter, node, spec, checksum) VALUES (?, ?, ?, ?, ?, ?)
ON CONFLICT (name) DO UPDATE SET
    wall_ms = excluded.wall_ms, counter = excluded.counter, node = excluded.node,
    spec = excluded.spec, checksum = excluded.checksum
"""

_INT64_MAX = (1 << 63) - 1
# Room per maximal entry: the spec's overflow pages, the row and index cells.
_ENTRY_OVERHEAD_BYTES = 8 * 1024
# Keep the WAL from staying at its high-water mark after checkpoints.
_WAL_SIZE_LIMIT_BYTES = 16 << 20

_LAYOUT = FileLayout(
    file_name=DB_NAME, store_name="job store", contents="jobs", row_noun="job",
    application_id=APPLICATION_ID, schema_version=SCHEMA_VERSION,
    table="entries", columns=_COLUMNS, schema_sql=_SCHEMA)


def row_checksum(name: str, wall_ms: int, counter: int, node: str, spec: bytes | None) -> bytes:
    """Checksum of one row.  Length prefixes make the encoding unambiguous
    (a byte moved from the name into the node changes it); the
    personalization keeps it apart from Entry.entry_hash, which may change
    for the wire without invalidating files on disk."""
    h = hashlib.blake2b(digest_size=CHECKSUM_BYTES, person=b"shoal-jobs-v1")
    name_b, node_b = name.encode(), node.encode()
    h.update(struct.pack(">I", len(name_b)) + name_b)
    h.update(struct.pack(">QQ", wall_ms, counter))
    h.update(struct.pack(">I", len(node_b)) + node_b)
    h.update(b"\0" if spec is None else b"\1" + struct.pack(">I", len(spec)) + spec)
    return h.digest()


def _text(raw, what: str, max_chars: int, min_chars: int) -> str:
    # The connection returns TEXT as bytes (text_factory=bytes) so that a
    # damaged, undecodable name fails this one row rather than the whole query.
    if not isinstance(raw, bytes):
        raise BadRow(f"{what} is {type(raw).__name__}, not text")
    try:
        text = raw.decode()
    except UnicodeDecodeError:
        raise BadRow(f"{what} is not UTF-8") from None
    if not min_chars <= len(text) <= max_chars:
        raise BadRow(f"{what} has {len(text)} characters (allowed {min_chars}..{max_chars})")
    return text


def _count(raw, what: str) -> int:
    if type(raw) is not int or not 0 <= raw <= _INT64_MAX:
        raise BadRow(f"{what} is {raw!r}, not a non-negative integer")
    return raw


def _decode_row(row, max_spec_bytes: int) -> Entry:
    """Entry from a (rowid, name, wall_ms, counter, node, spec, checksum) row,
    or BadRow saying what is wrong with it."""
    _, name, wall_ms, counter, node, spec, checksum = row
    name = _text(name, "name", MAX_NAME_CHARS, 1)
    wall_ms = _count(wall_ms, "wall_ms")
    counter = _count(counter, "counter")
    node = _text(node, "stamp node", MAX_NODE_CHARS, 0)
    if spec is not None and not isinstance(spec, bytes):
        raise BadRow(f"spec is {type(spec).__name__}, not bytes")
    if spec is not None and len(spec) > max_spec_bytes:
        raise BadRow(f"spec is {len(spec)} bytes (limit {max_spec_bytes})")
    if not isinstance(checksum, bytes) or len(checksum) != CHECKSUM_BYTES:
        raise BadRow("checksum missing or malformed")
    if row_checksum(name, wall_ms, counter, node, spec) != checksum:
        raise BadRow("checksum mismatch")
    return Entry(name, Stamp(wall_ms, counter, node), spec)


class EntryStore(SqliteStore):
    """One SQLite connection to `<state_dir>/jobs.db`.  Build with `open`."""

    layout = _LAYOUT

    def __init__(self, path: Path, conn: sqlite3.Connection, rows: int, *, max_spec_bytes: int,
                 max_entries: int, report: LoadReport, loaded: list[Entry]) -> None:
        super().__init__(path, conn, rows, report)
        self._max_spec_bytes = max_spec_bytes
        self._max_entries = max_entries
        # What open() read and verified, handed to the first load() so a
        # large store is not read twice at startup; any write invalidates it.
        self._loaded: list[Entry] | None = loaded

    # ---- opening

    @classmethod
    def open(cls, state_dir: Path, *, max_spec_bytes: int = MAX_SPEC_BYTES,
             max_entries: int = MAX_ENTRIES, keep_corrupt: int = KEEP_CORRUPT,
             ) -> tuple["EntryStore", LoadReport]:
        """Open (or create) the job store in state_dir, verify it, and report.

        Never raises because of the file's contents: a corrupt file is moved
        aside and an empty store returned.  Raises PersistError if even an
        empty store cannot be created (permissions, full disk, locked)."""

        def read(conn: sqlite3.Connection, report: LoadReport) -> tuple[int, list[Entry]]:
            conn.execute(f"PRAGMA journal_size_limit={_WAL_SIZE_LIMIT_BYTES}")
            return cls._scan(conn, report, max_spec_bytes, max_entries)

        conn, (rows, loaded), report = open_file(
            state_dir, _LAYOUT, read, keep_corrupt=keep_corrupt,
            busy_timeout_s=BUSY_TIMEOUT_MS / 1000, max_rows=max_entries,
            max_row_bytes=max_spec_bytes + _ENTRY_OVERHEAD_BYTES)
        report.entries = len(loaded)
        report.tombstones = sum(1 for e in loaded if e.deleted)
        store = cls(report.path, conn, rows, max_spec_bytes=max_spec_bytes,
                    max_entries=max_entries, report=report, loaded=loaded)
        return store, report

    @staticmethod
    def _scan(conn: sqlite3.Connection, report: LoadReport, max_spec_bytes: int,
              max_entries: int) -> tuple[int, list[Entry]]:
        """Read and verify every row; delete the bad ones and add them to the
        report.  Returns the number of rows left and the good entries (at
        most max_entries of them)."""
        rows, entries = scan_rows(conn, _LAYOUT, report, _SELECT,
                                  lambda row: _decode_row(row, max_spec_bytes), max_entries)
        if rows > max_entries:
            report.problems.append(f"{DB_NAME} holds {rows} entries, more than {max_entries}; "
                                   f"loaded the first {max_entries}")
        return rows, entries

    # ---- use

    def _check(self, entry: Entry) -> None:
        if not isinstance(entry.name, str) or not 1 <= len(entry.name) <= MAX_NAME_CHARS:
            raise EntryRejected(f"job name {entry.name!r}: 1..{MAX_NAME_CHARS} characters")
        if entry.spec is not None:
            if not isinstance(entry.spec, bytes):
                raise EntryRejected(f"job {entry.name!r}: spec must be bytes")
            if len(entry.spec) > self._max_spec_bytes:
                raise EntryRejected(f"job {entry.name!r}: spec is {len(entry.spec)} bytes; "
                                    f"the limit is {self._max_spec_bytes}")
        s = entry.stamp
        if (type(s.wall_ms) is not int or type(s.counter) is not int or not isinstance(s.node, str)
                or not 0 <= s.wall_ms <= _INT64_MAX or not 0 <= s.counter <= _INT64_MAX
                or len(s.node) > MAX_NODE_CHARS):
            raise EntryRejected(f"job {entry.name!r}: malformed stamp {s!r}")
        try:
            entry.name.encode()
            s.node.encode()
        except UnicodeEncodeError:
            raise EntryRejected(f"job {entry.name!r}: name or stamp is not valid Unicode") from None

    def load(self) -> list[Entry]:
        """Every good entry, tombstones included.  Rows that fail verification
        are skipped, deleted and added to `self.report` (open's report: the
        rows open found are there already; later damage is appended)."""
        with self._lock:
            conn = self._connection()
            if self._loaded is not None:
                loaded, self._loaded = self._loaded, None
                return loaded
            try:
                self._rows, entries = self._scan(conn, self.report, self._max_spec_bytes,
                                                 self._max_entries)
            except sqlite3.Error as exc:
                raise PersistError(f"cannot read {self.path}: {exc}", is_corruption(exc)) from exc
            return entries

    def write(self, entries: Iterable[Entry]) -> int:
        """Store the entries in one transaction, each only if it beats the
        stored entry of its name.  Returns how many rows changed.  Durable
        (fsynced) when it returns."""
        batch = list(entries)
        for entry in batch:
            self._check(entry)
        with self._lock:
            conn = self._connection()
            written = added = 0
            with self.write_transaction(conn):
                for entry in batch:
                    row = conn.execute(_SELECT + " WHERE name = ?", (entry.name,)).fetchone()
                    if row is not None:
                        try:
                            stored = _decode_row(row, self._max_spec_bytes)
                        except BadRow:
                            stored = None  # a damaged row loses to anything
                        if stored is not None and not wins(entry, stored):
                            continue
                    elif self._rows + added >= self._max_entries:
                        raise EntryRejected(f"job {entry.name!r}: the store holds "
                                            f"{self._max_entries} entries already")
                    else:
                        added += 1
                    s = entry.stamp
                    conn.execute(_UPSERT, (entry.name, s.wall_ms, s.counter, s.node, entry.spec,
                                           row_checksum(entry.name, s.wall_ms, s.counter,
                                                        s.node, entry.spec)))
                    written += 1
            self._rows += added
            self._loaded = None
            return written

    def forget(self, names: Iterable[str]) -> int:
        """Delete the tombstones of these names (collected tombstones); a name
        whose stored entry is live is left alone.  Returns how many went."""
        gone = self.delete_each("DELETE FROM entries WHERE name = ? AND spec IS NULL", names)
        self._loaded = None
        return gone

    def close(self) -> None:
        """Close the connection (checkpointing the WAL).  Idempotent."""
        super().close()
        self._loaded = None
