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
import os
import re
import sqlite3
import struct
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from .hlc import Stamp
from .jobstore import MAX_ENTRIES, Entry, wins

DB_NAME = "jobs.db"
MAX_SPEC_BYTES = 64 * 1024
MAX_NAME_CHARS = 255  # as Entry.from_wire
MAX_NODE_CHARS = 512  # as Stamp.from_wire
KEEP_CORRUPT = 3  # moved-aside copies kept for a post-mortem
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

# SQLite primary result codes that mean "this file is damaged"; anything else
# (busy, I/O error, full, read-only, cannot open) is not the file's fault.
_SQLITE_CORRUPT = 11
_SQLITE_NOTADB = 26
_INT64_MAX = (1 << 63) - 1
# Room per maximal entry: the spec's overflow pages, the row and index cells.
_ENTRY_OVERHEAD_BYTES = 8 * 1024


class PersistError(Exception):
    """The job store cannot be read or written (not a corrupt file: those are
    moved aside at open).  `corruption` is true if SQLite found damage while
    running; the next open will move the file aside."""

    def __init__(self, message: str, corruption: bool = False) -> None:
        super().__init__(message)
        self.corruption = corruption


class EntryRejected(ValueError):
    """An entry this store will not hold (too large, malformed, store full).
    Raised before anything of the batch is written."""


@dataclass
class LoadReport:
    """What `EntryStore.open` found.  Every problem is also a line in
    `problems`, for the agent to log at ERROR; `bad_rows` and `corrupt_file`
    are for metrics."""

    path: Path
    entries: int = 0  # loaded, tombstones included
    tombstones: int = 0
    created: bool = False  # there was no usable database; started empty
    corrupt_file: str | None = None  # why the file was moved aside
    moved_to: Path | None = None
    bad_rows: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def clean(self) -> bool:
        return not self.problems


class _Corrupt(Exception):
    """The file is not a usable job store (found by our own checks)."""


class _BadRow(Exception):
    pass


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
        raise _BadRow(f"{what} is {type(raw).__name__}, not text")
    try:
        text = raw.decode()
    except UnicodeDecodeError:
        raise _BadRow(f"{what} is not UTF-8") from None
    if not min_chars <= len(text) <= max_chars:
        raise _BadRow(f"{what} has {len(text)} characters (allowed {min_chars}..{max_chars})")
    return text


def _count(raw, what: str) -> int:
    if type(raw) is not int or not 0 <= raw <= _INT64_MAX:
        raise _BadRow(f"{what} is {raw!r}, not a non-negative integer")
    return raw


def _decode_row(row, max_spec_bytes: int) -> Entry:
    """Entry from a (rowid, name, wall_ms, counter, node, spec, checksum) row,
    or _BadRow saying what is wrong with it."""
    _, name, wall_ms, counter, node, spec, checksum = row
    name = _text(name, "name", MAX_NAME_CHARS, 1)
    wall_ms = _count(wall_ms, "wall_ms")
    counter = _count(counter, "counter")
    node = _text(node, "stamp node", MAX_NODE_CHARS, 0)
    if spec is not None and not isinstance(spec, bytes):
        raise _BadRow(f"spec is {type(spec).__name__}, not bytes")
    if spec is not None and len(spec) > max_spec_bytes:
        raise _BadRow(f"spec is {len(spec)} bytes (limit {max_spec_bytes})")
    if not isinstance(checksum, bytes) or len(checksum) != CHECKSUM_BYTES:
        raise _BadRow("checksum missing or malformed")
    if row_checksum(name, wall_ms, counter, node, spec) != checksum:
        raise _BadRow("checksum mismatch")
    return Entry(name, Stamp(wall_ms, counter, node), spec)


def _describe(row) -> str:
    """How a problem names a row: its rowid and, as far as legible, its name."""
    rowid, name = row[0], row[1]
    if isinstance(name, bytes):
        name = name[:80].decode(errors="replace")
    return f"{DB_NAME} row {rowid} (job {name!r})"


def _is_corruption(exc: sqlite3.Error) -> bool:
    code = getattr(exc, "sqlite_errorcode", None)
    return code is not None and code & 0xFF in (_SQLITE_CORRUPT, _SQLITE_NOTADB)


def _fsync_dir(directory: Path) -> None:
    # A rename is durable only once the directory itself is synced.
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _remove(path: Path) -> None:
    try:
        path.unlink()
    except FileNotFoundError:
        pass


def _sidecars(path: Path) -> tuple[Path, Path]:
    return path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")


class EntryStore:
    """One SQLite connection to `<state_dir>/jobs.db`.  Build with `open`."""

    def __init__(self, path: Path, conn: sqlite3.Connection, rows: int, *, max_spec_bytes: int,
                 max_entries: int, report: LoadReport, loaded: list[Entry]) -> None:
        self.path = path
        self.report = report
        self._conn: sqlite3.Connection | None = conn
        self._rows = rows  # kept by hand: count(*) is a full scan in SQLite
        self._max_spec_bytes = max_spec_bytes
        self._max_entries = max_entries
        self._lock = threading.Lock()
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
        state_dir = Path(state_dir)
        path = state_dir / DB_NAME
        report = LoadReport(path)
        try:
            state_dir.mkdir(parents=True, exist_ok=True)
            if not path.exists():
                wal, shm = _sidecars(path)
                if wal.exists():
                    # A WAL without its database would be replayed into the
                    # fresh file; it belongs to a database that is gone.
                    report.problems.append(f"{wal.name} found without {DB_NAME}; discarded")
                    _remove(wal)
                _remove(shm)
                cls._create(path)
                report.created = True
            try:
                conn, rows, loaded = cls._open_existing(path, report, max_spec_bytes, max_entries)
            except (_Corrupt, sqlite3.DatabaseError) as exc:
                if isinstance(exc, sqlite3.Error) and not _is_corruption(exc):
                    raise
                reason = str(exc) or type(exc).__name__
                moved = cls._move_aside(path, keep_corrupt)
                report.corrupt_file = reason
                report.moved_to = moved
                report.problems.append(
                    f"{DB_NAME} is unusable ({reason}); moved aside to {moved.name}, "
                    "starting empty, peers will resend the jobs")
                report.bad_rows = 0
                report.created = True
                cls._create(path)
                conn, rows, loaded = cls._open_existing(path, report, max_spec_bytes, max_entries)
        except sqlite3.Error as exc:
            raise PersistError(f"cannot open the job store {path}: {exc}",
                               corruption=_is_corruption(exc)) from exc
        except OSError as exc:
            raise PersistError(f"cannot open the job store {path}: {exc}") from exc
        report.entries = len(loaded)
        report.tombstones = sum(1 for e in loaded if e.deleted)
        store = cls(path, conn, rows, max_spec_bytes=max_spec_bytes, max_entries=max_entries,
                    report=report, loaded=loaded)
        return store, report

    @staticmethod
    def _connect(path: Path) -> sqlite3.Connection:
        # isolation_level=None: we issue BEGIN/COMMIT ourselves, so a batch is
        # exactly one transaction and nothing is left open between calls.
        conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False,
                               timeout=BUSY_TIMEOUT_MS / 1000)
        conn.text_factory = bytes
        return conn

    @classmethod
    def _create(cls, path: Path) -> None:
        """Build an empty store beside `path` and rename it into place."""
        new = path.with_name(path.name + ".new")
        for p in (new, *_sidecars(new)):
            _remove(p)
        conn = cls._connect(new)
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=FULL")
            conn.execute("BEGIN IMMEDIATE")
            conn.execute(f"PRAGMA application_id={APPLICATION_ID}")
            conn.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
            conn.execute(_SCHEMA)
            conn.execute("COMMIT")
        finally:
            conn.close()  # last connection: checkpoints and removes the WAL
        fd = os.open(new, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        for p in _sidecars(path):
            _remove(p)
        os.replace(new, path)
        _fsync_dir(path.parent)

    @classmethod
    def _open_existing(cls, path: Path, report: LoadReport, max_spec_bytes: int,
                       max_entries: int) -> tuple[sqlite3.Connection, int, list[Entry]]:
        conn = cls._connect(path)
        try:
            # The first statement reads the header: garbage fails here (NOTADB),
            # a truncated file here or in quick_check (CORRUPT).
            app_id = conn.execute("PRAGMA application_id").fetchone()[0]
            if app_id != APPLICATION_ID:
                raise _Corrupt(f"application_id {app_id:#x}, not a shoal job store")
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            if version != SCHEMA_VERSION:
                raise _Corrupt(f"schema version {version}; this shoal reads {SCHEMA_VERSION}")
            columns = tuple(r[1].decode() for r in conn.execute("PRAGMA table_info(entries)"))
            if columns != _COLUMNS:
                raise _Corrupt(f"table entries has columns {columns}, expected {_COLUMNS}")
            check = [r[0] for r in conn.execute("PRAGMA quick_check")]
            if check != [b"ok"]:
                text = "; ".join(c.decode(errors="replace") for c in check[:3])
                raise _Corrupt(f"quick_check failed: {text}")
            mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
            if mode != b"wal":
                raise sqlite3.OperationalError(f"cannot use WAL mode (journal_mode is {mode!r})")
            conn.execute("PRAGMA synchronous=FULL")
            # Keep the WAL from staying at its high-water mark after checkpoints.
            conn.execute(f"PRAGMA journal_size_limit={16 << 20}")
            page_size = conn.execute("PRAGMA page_size").fetchone()[0]
            bound = max_entries * (max_spec_bytes + _ENTRY_OVERHEAD_BYTES) * 3 // 2
            conn.execute(f"PRAGMA max_page_count={bound // page_size + 64}")
            rows, loaded = cls._scan(conn, report, max_spec_bytes, max_entries)
        except BaseException:
            conn.close()
            raise
        return conn, rows, loaded

    @staticmethod
    def _scan(conn: sqlite3.Connection, report: LoadReport, max_spec_bytes: int,
              max_entries: int) -> tuple[int, list[Entry]]:
        """Read and verify every row; delete the bad ones and add them to the
        report.  Returns the number of rows left and the good entries (at
        most max_entries of them)."""
        entries: list[Entry] = []
        bad: list[int] = []
        problems: list[str] = []
        rows = 0
        for row in conn.execute(_SELECT + " ORDER BY rowid"):
            try:
                entry = _decode_row(row, max_spec_bytes)
            except _BadRow as why:
                bad.append(row[0])
                problems.append(f"{_describe(row)}: {why}; dropped, peers will resend it")
                continue
            rows += 1
            if len(entries) < max_entries:
                entries.append(entry)
        if rows > max_entries:
            problems.append(f"{DB_NAME} holds {rows} entries, more than {max_entries}; "
                            f"loaded the first {max_entries}")
        if bad:
            conn.execute("BEGIN IMMEDIATE")
            try:
                conn.executemany("DELETE FROM entries WHERE rowid = ?", [(r,) for r in bad])
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
        report.bad_rows += len(bad)
        report.problems.extend(problems)
        return rows, entries

    @classmethod
    def _move_aside(cls, path: Path, keep: int) -> Path:
        """Rename the damaged file (and its WAL) to jobs.db.corrupt-<n>; keep
        only the newest `keep` such copies."""
        pattern = re.compile(re.escape(path.name) + r"\.corrupt-(\d+)")
        numbers = sorted(int(m.group(1)) for p in path.parent.iterdir()
                         if (m := pattern.fullmatch(p.name)))
        n = (numbers[-1] if numbers else 0) + 1
        dest = path.with_name(f"{path.name}.corrupt-{n}")
        wal, shm = _sidecars(path)
        os.replace(path, dest)
        if wal.exists():
            os.replace(wal, _sidecars(dest)[0])
        _remove(shm)
        numbers.append(n)
        for old in numbers[:-keep] if keep > 0 else numbers:
            old_path = path.with_name(f"{path.name}.corrupt-{old}")
            _remove(old_path)
            _remove(_sidecars(old_path)[0])
        _fsync_dir(path.parent)
        return dest

    # ---- use

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            raise PersistError(f"the job store {self.path} is closed")
        return self._conn

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
                raise PersistError(f"cannot read {self.path}: {exc}", _is_corruption(exc)) from exc
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
            try:
                conn.execute("BEGIN IMMEDIATE")
                try:
                    for entry in batch:
                        row = conn.execute(_SELECT + " WHERE name = ?", (entry.name,)).fetchone()
                        if row is not None:
                            try:
                                stored = _decode_row(row, self._max_spec_bytes)
                            except _BadRow:
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
                    conn.execute("COMMIT")
                except BaseException:
                    if conn.in_transaction:
                        conn.execute("ROLLBACK")
                    raise
            except sqlite3.Error as exc:
                raise PersistError(f"cannot write to {self.path}: {exc}", _is_corruption(exc)) from exc
            self._rows += added
            self._loaded = None
            return written

    def forget(self, names: Iterable[str]) -> int:
        """Delete the tombstones of these names (collected tombstones); a name
        whose stored entry is live is left alone.  Returns how many went."""
        names = list(names)
        with self._lock:
            conn = self._connection()
            gone = 0
            try:
                conn.execute("BEGIN IMMEDIATE")
                try:
                    for name in names:
                        cur = conn.execute("DELETE FROM entries WHERE name = ? AND spec IS NULL",
                                           (name,))
                        gone += cur.rowcount
                    conn.execute("COMMIT")
                except BaseException:
                    if conn.in_transaction:
                        conn.execute("ROLLBACK")
                    raise
            except sqlite3.Error as exc:
                raise PersistError(f"cannot write to {self.path}: {exc}", _is_corruption(exc)) from exc
            self._rows -= gone
            self._loaded = None
            return gone

    def __len__(self) -> int:
        return self._rows

    def close(self) -> None:
        """Close the connection (checkpointing the WAL).  Idempotent."""
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None
                self._loaded = None

    def __enter__(self) -> "EntryStore":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
