"""One SQLite file of durable agent state, opened, checked and written the
same way for the job store (node/persist.py, `jobs.db`) and the claim store
(node/claimstore.py, `claims.db`).

How this works: a store describes its file with a `FileLayout` (file name,
`application_id`, schema version, table and columns, the words its messages
use) and calls `open_file`, which

* builds a missing file as `<name>.new` with `journal_mode=WAL` and renames
  it into place (so a file that exists was complete once), after deleting
  the WAL and shm of a database that is gone;
* checks an existing file: SQLite's header (the first statement reads it),
  our `application_id`, the schema version, the table's columns and
  `PRAGMA quick_check`; then sets `journal_mode=WAL`, `synchronous=FULL`
  (a committed transaction is fsynced) and `max_page_count` (the file cannot
  grow past what the store's bound on rows needs, with slack);
* hands the checked connection to the store's own `read` function, which
  verifies the rows (usually through `scan_rows`: a row that fails its
  check is deleted and reported, and peers resend it);
* if the file is damaged (our checks fail, or SQLite says CORRUPT or
  NOTADB), moves it aside to `<name>.corrupt-<n>` with its WAL, keeping the
  newest `keep_corrupt`, reports it and starts again from an empty file.
  Any other error (locked, unreadable, disk full) is a `PersistError`:
  moving a good file aside because of a transient error would lose data.

Every problem is a line in the `LoadReport`, for the agent to log at ERROR.
What stays in each store: its schema, row format and checksum, the rule
that decides which of two rows wins, and its bounds.  `SqliteStore` is the
part of a store object they share: one connection opened with
`check_same_thread=False`, a lock that every method holds (the agent calls
them from worker threads), and `write_transaction` for BEGIN IMMEDIATE ..
COMMIT that rolls back on any failure.
"""

from __future__ import annotations

import os
import re
import sqlite3
import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Self, TypeVar

from node.state.layout import PersistError

KEEP_CORRUPT = 3  # moved-aside copies kept for a post-mortem

# SQLite primary result codes that mean "this file is damaged"; anything else
# (busy, I/O error, full, read-only, cannot open) is not the file's fault.
_SQLITE_CORRUPT = 11
_SQLITE_NOTADB = 26
# Room left over the store's bound (pages): the schema, freelist, B-tree.
_SPARE_PAGES = 64

T = TypeVar("T")


@dataclass
class LoadReport:
    """What a store's `open` found.  Every problem is also a line in
    `problems`, for the agent to log at ERROR; `bad_rows` and `corrupt_file`
    are for metrics."""

    path: Path
    entries: int = 0  # loaded, tombstones (released claims) included
    tombstones: int = 0
    created: bool = False  # there was no usable database; started empty
    corrupt_file: str | None = None  # why the file was moved aside
    moved_to: Path | None = None
    bad_rows: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def clean(self) -> bool:
        return not self.problems


class CorruptFile(Exception):
    """The file is not a usable store (found by our own checks)."""


class BadRow(Exception):
    """One row fails its store's check; the message says why."""


@dataclass(frozen=True)
class FileLayout:
    """What identifies one store's file and what its messages call things."""

    file_name: str  # "jobs.db", in the state dir
    store_name: str  # "job store": "cannot open the job store ..."
    contents: str  # "jobs": "peers will resend the jobs"
    row_noun: str  # "job": "jobs.db row 3 (job 'web')"
    application_id: int  # a valid SQLite file with another id is not ours
    schema_version: int  # PRAGMA user_version
    table: str
    columns: tuple[str, ...]
    schema_sql: str  # CREATE TABLE of `table`
    # The job store reports a WAL found without its database; the claim
    # store has always deleted it silently.
    reports_stray_wal: bool = True


def is_corruption(exc: sqlite3.Error) -> bool:
    code = getattr(exc, "sqlite_errorcode", None)
    return code is not None and code & 0xFF in (_SQLITE_CORRUPT, _SQLITE_NOTADB)


def fsync_dir(directory: Path) -> None:
    # A rename is durable only once the directory itself is synced.
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def remove_file(path: Path) -> None:
    try:
        path.unlink()
    except FileNotFoundError:
        pass


def sidecars(path: Path) -> tuple[Path, Path]:
    """The WAL and shared-memory files SQLite keeps beside `path`."""
    return path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")


def connect(path: Path, busy_timeout_s: float) -> sqlite3.Connection:
    # isolation_level=None: we issue BEGIN/COMMIT ourselves, so a batch is
    # exactly one transaction and nothing is left open between calls.
    # TEXT comes back as bytes, so that a damaged, undecodable name fails
    # its one row rather than the whole query.
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False,
                           timeout=busy_timeout_s)
    conn.text_factory = bytes
    return conn


def create(path: Path, layout: FileLayout, busy_timeout_s: float) -> None:
    """Build an empty store beside `path` and rename it into place."""
    new = path.with_name(path.name + ".new")
    for p in (new, *sidecars(new)):
        remove_file(p)
    conn = connect(new, busy_timeout_s)
    try:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")
        conn.execute("BEGIN IMMEDIATE")
        conn.execute(f"PRAGMA application_id={layout.application_id}")
        conn.execute(f"PRAGMA user_version={layout.schema_version}")
        conn.execute(layout.schema_sql)
        conn.execute("COMMIT")
    finally:
        conn.close()  # last connection: checkpoints and removes the WAL
    fd = os.open(new, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    for p in sidecars(path):
        remove_file(p)
    os.replace(new, path)
    fsync_dir(path.parent)


def check_file(conn: sqlite3.Connection, layout: FileLayout) -> None:
    """Raise CorruptFile unless the file is ours, of our schema version and
    layout, and passes quick_check.  The first statement reads the header:
    garbage fails there (NOTADB), a truncated file there or in quick_check
    (CORRUPT)."""
    app_id = conn.execute("PRAGMA application_id").fetchone()[0]
    if app_id != layout.application_id:
        raise CorruptFile(f"application_id {app_id:#x}, not a shoal {layout.store_name}")
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    if version != layout.schema_version:
        raise CorruptFile(f"schema version {version}; this shoal reads {layout.schema_version}")
    columns = tuple(r[1].decode() for r in conn.execute(f"PRAGMA table_info({layout.table})"))
    if columns != layout.columns:
        raise CorruptFile(f"table {layout.table} has columns {columns}, expected {layout.columns}")
    check = [r[0] for r in conn.execute("PRAGMA quick_check")]
    if check != [b"ok"]:
        text = "; ".join(c.decode(errors="replace") for c in check[:3])
        raise CorruptFile(f"quick_check failed: {text}")


def set_durability_and_bound(conn: sqlite3.Connection, max_rows: int, max_row_bytes: int) -> None:
    """WAL with fsync at every commit, and a file size cap of max_rows rows
    of max_row_bytes (overhead included) plus half again, so even a bug
    cannot grow the file without bound."""
    mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
    if mode != b"wal":
        raise sqlite3.OperationalError(f"cannot use WAL mode (journal_mode is {mode!r})")
    conn.execute("PRAGMA synchronous=FULL")
    page_size_bytes = conn.execute("PRAGMA page_size").fetchone()[0]
    max_file_bytes = max_rows * max_row_bytes * 3 // 2
    conn.execute(f"PRAGMA max_page_count={max_file_bytes // page_size_bytes + _SPARE_PAGES}")


def move_aside(path: Path, keep: int) -> Path:
    """Rename the damaged file (and its WAL) to <name>.corrupt-<n>; keep
    only the newest `keep` such copies."""
    pattern = re.compile(re.escape(path.name) + r"\.corrupt-(\d+)")
    numbers = sorted(int(m.group(1)) for p in path.parent.iterdir()
                     if (m := pattern.fullmatch(p.name)))
    n = (numbers[-1] if numbers else 0) + 1
    dest = path.with_name(f"{path.name}.corrupt-{n}")
    wal, shm = sidecars(path)
    os.replace(path, dest)
    if wal.exists():
        os.replace(wal, sidecars(dest)[0])
    remove_file(shm)
    numbers.append(n)
    for old in numbers[:-keep] if keep > 0 else numbers:
        old_path = path.with_name(f"{path.name}.corrupt-{old}")
        remove_file(old_path)
        remove_file(sidecars(old_path)[0])
    fsync_dir(path.parent)
    return dest


def open_file(state_dir: Path, layout: FileLayout,
              read: Callable[[sqlite3.Connection, LoadReport], T], *,
              keep_corrupt: int, busy_timeout_s: float, max_rows: int, max_row_bytes: int,
              ) -> tuple[sqlite3.Connection, T, LoadReport]:
    """Open (or create) `<state_dir>/<layout.file_name>`, check it, and return
    the connection, what `read(conn, report)` returned, and the report.

    Never raises because of the file's contents: a corrupt file is moved
    aside and an empty one opened.  Raises PersistError if even an empty
    store cannot be created (permissions, full disk, locked)."""
    state_dir = Path(state_dir)
    path = state_dir / layout.file_name
    report = LoadReport(path)

    def open_existing() -> tuple[sqlite3.Connection, T]:
        conn = connect(path, busy_timeout_s)
        try:
            check_file(conn, layout)
            set_durability_and_bound(conn, max_rows, max_row_bytes)
            return conn, read(conn, report)
        except BaseException:
            conn.close()
            raise

    try:
        state_dir.mkdir(parents=True, exist_ok=True)
        if not path.exists():
            wal, shm = sidecars(path)
            if wal.exists() and layout.reports_stray_wal:
                # A WAL without its database would be replayed into the
                # fresh file; it belongs to a database that is gone.
                report.problems.append(f"{wal.name} found without {layout.file_name}; discarded")
            remove_file(wal)
            remove_file(shm)
            create(path, layout, busy_timeout_s)
            report.created = True
        try:
            conn, contents = open_existing()
        except (CorruptFile, sqlite3.DatabaseError) as exc:
            if isinstance(exc, sqlite3.Error) and not is_corruption(exc):
                raise
            reason = str(exc) or type(exc).__name__
            moved = move_aside(path, keep_corrupt)
            report.corrupt_file = reason
            report.moved_to = moved
            report.problems.append(
                f"{layout.file_name} is unusable ({reason}); moved aside to {moved.name}, "
                f"starting empty, peers will resend the {layout.contents}")
            report.bad_rows = 0
            report.created = True
            create(path, layout, busy_timeout_s)
            conn, contents = open_existing()
    except sqlite3.Error as exc:
        raise PersistError(f"cannot open the {layout.store_name} {path}: {exc}",
                           corruption=is_corruption(exc)) from exc
    except OSError as exc:
        raise PersistError(f"cannot open the {layout.store_name} {path}: {exc}") from exc
    return conn, contents, report


@contextmanager
def transaction(conn: sqlite3.Connection) -> Iterator[None]:
    """BEGIN IMMEDIATE .. COMMIT; rolled back if anything fails inside."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise


def describe_row(layout: FileLayout, row) -> str:
    """How a problem names a row: its rowid and, as far as legible, its name."""
    rowid, name = row[0], row[1]
    if isinstance(name, bytes):
        name = name[:80].decode(errors="replace")
    return f"{layout.file_name} row {rowid} ({layout.row_noun} {name!r})"


def scan_rows(conn: sqlite3.Connection, layout: FileLayout, report: LoadReport, select_sql: str,
              decode: Callable[[tuple], T], max_items: int) -> tuple[int, list[T]]:
    """Read every row of `select_sql` (rowid and name first) in rowid order
    and decode it; delete the rows `decode` raises BadRow for and add them to
    the report.  Returns the number of good rows and the first `max_items`
    decoded ones."""
    items: list[T] = []
    bad_rowids: list[int] = []
    problems: list[str] = []
    good_rows = 0
    for row in conn.execute(select_sql + " ORDER BY rowid"):
        try:
            item = decode(row)
        except BadRow as why:
            bad_rowids.append(row[0])
            problems.append(f"{describe_row(layout, row)}: {why}; dropped, peers will resend it")
            continue
        good_rows += 1
        if len(items) < max_items:
            items.append(item)
    if bad_rowids:
        with transaction(conn):
            conn.executemany(f"DELETE FROM {layout.table} WHERE rowid = ?",
                             [(r,) for r in bad_rowids])
    report.bad_rows += len(bad_rowids)
    report.problems.extend(problems)
    return good_rows, items


class SqliteStore:
    """The part of a store object both stores share: the connection, the row
    count, the lock every method holds, and closing."""

    layout: FileLayout  # set by each store class

    def __init__(self, path: Path, conn: sqlite3.Connection, rows: int,
                 report: LoadReport) -> None:
        self.path = path
        self.report = report
        self._conn: sqlite3.Connection | None = conn
        self._rows = rows  # kept by hand: count(*) is a full scan in SQLite
        self._lock = threading.Lock()

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            raise PersistError(f"the {self.layout.store_name} {self.path} is closed")
        return self._conn

    @contextmanager
    def write_transaction(self, conn: sqlite3.Connection) -> Iterator[None]:
        """`transaction`, with SQLite's errors raised as PersistError.  The
        caller holds the lock."""
        try:
            with transaction(conn):
                yield
        except sqlite3.Error as exc:
            raise PersistError(f"cannot write to {self.path}: {exc}", is_corruption(exc)) from exc

    def delete_each(self, sql: str, names: Iterable[str]) -> int:
        """Run a one-parameter DELETE for each name in one transaction; the
        rows gone leave the count.  Returns how many."""
        names = list(names)
        with self._lock:
            conn = self._connection()
            gone = 0
            with self.write_transaction(conn):
                for name in names:
                    gone += conn.execute(sql, (name,)).rowcount
            self._rows -= gone
            return gone

    def __len__(self) -> int:
        return self._rows

    def close(self) -> None:
        """Close the connection (checkpointing the WAL).  Idempotent."""
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
