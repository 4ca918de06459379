"""Durable storage of the slot claims: SQLite in WAL mode, `<state_dir>/claims.db`.

How this works: the claims map (auction.claims.Claim in a node.jobstore.LwwMap)
lives in memory; the agent writes every `PersistClaims` batch here and
removes collected released claims on `ForgetClaims`, so an agent that
restarts while no peer is reachable still knows which replicas it holds and
restarts them.  Claims are not acknowledged to anyone (peers hold them too):
a lost write costs at most a re-auction after a restart, never a wrong
placement, because claims are ordered by ballot and the newest wins
wherever they meet.

It follows node/persist.py (the job store) in everything that matters, in a
file of its own so that damage to one never costs the other:

* one row per slot: the claim's wire form (msgpack of `Claim.to_wire()`), a
  `released` flag (so collection can delete only released claims) and a
  blake2b checksum of both; a write replaces a row only if its claim beats
  the stored one (`Claim.beats`), so late or repeated batches never roll a
  slot back;
* on open the file is checked (SQLite header, our application_id and schema
  version, the table's columns, `PRAGMA quick_check`); a file that fails is
  moved aside to `claims.db.corrupt-<n>` and replaced by an empty one, and
  every bad row is deleted; each is a line in the `LoadReport` for the agent
  to log at ERROR (peers resend the claims through anti-entropy);
* `journal_mode=WAL`, `synchronous=FULL`: a committed batch is fsynced;
* bounded by node.jobstore.MAX_ENTRIES rows (the in-memory map's own bound).

Threading: every method blocks; the agent calls them through
`trio.to_thread.run_sync` with one `CapacityLimiter(1)` for both stores, and
each method holds a lock, as in node/persist.py.
"""

from __future__ import annotations

import hashlib
import os
import re
import sqlite3
import threading
from collections.abc import Iterable
from pathlib import Path

import msgpack

from auction.claims import Claim

from .jobstore import MAX_ENTRIES
from .persist import LoadReport, PersistError, _fsync_dir, _is_corruption, _remove, _sidecars

DB_NAME = "claims.db"
APPLICATION_ID = 0x73686F63  # "shoc"
SCHEMA_VERSION = 1
CHECKSUM_BYTES = 16
KEEP_CORRUPT = 3
MAX_ROW_BYTES = 4096  # a claim's wire form is a few hundred bytes at most
BUSY_TIMEOUT_S = 5.0
_COLUMNS = ("name", "body", "released", "checksum")
_SCHEMA = """
CREATE TABLE claims (
    name     TEXT PRIMARY KEY NOT NULL,   -- slot key "job/index"
    body     BLOB NOT NULL,               -- msgpack of Claim.to_wire()
    released INTEGER NOT NULL,
    checksum BLOB NOT NULL                -- claim_checksum(body)
)
"""
_UPSERT = """
INSERT INTO claims (name, body, released, checksum) VALUES (?, ?, ?, ?)
ON CONFLICT (name) DO UPDATE SET
    body = excluded.body, released = excluded.released, checksum = excluded.checksum
"""


class _Corrupt(Exception):
    pass


class _BadRow(Exception):
    pass


def claim_checksum(body: bytes) -> bytes:
    return hashlib.blake2b(body, digest_size=CHECKSUM_BYTES, person=b"shoal-claims-v1").digest()


def _encode(claim: Claim) -> bytes:
    return msgpack.packb(claim.to_wire(), use_bin_type=True)


def _decode_row(row) -> Claim:
    _, name, body, released, checksum = row
    if not isinstance(body, bytes) or not 0 < len(body) <= MAX_ROW_BYTES:
        raise _BadRow("body missing or too large")
    if not isinstance(checksum, bytes) or claim_checksum(body) != checksum:
        raise _BadRow("checksum mismatch")
    try:
        claim = Claim.from_wire(msgpack.unpackb(body, raw=False))
    except Exception as exc:  # msgpack raises several types; from_wire ValueError
        raise _BadRow(f"undecodable claim ({exc})") from None
    if not isinstance(name, bytes) or name.decode(errors="replace") != claim.name:
        raise _BadRow("row name does not match its claim")
    if released != int(claim.released):
        raise _BadRow("released flag does not match its claim")
    return claim


class ClaimStore:
    """One SQLite connection to `<state_dir>/claims.db`.  Build with `open`."""

    def __init__(self, path: Path, conn: sqlite3.Connection, rows: int, report: LoadReport,
                 loaded: list[Claim]) -> None:
        self.path = path
        self.report = report
        self.loaded = loaded  # what open() read, for NodeCore(stored_claims=...)
        self._conn: sqlite3.Connection | None = conn
        self._rows = rows
        self._lock = threading.Lock()

    @classmethod
    def open(cls, state_dir: Path, *, keep_corrupt: int = KEEP_CORRUPT) -> tuple["ClaimStore", LoadReport]:
        """Open (or create) the claim store; never raises because of the file's
        contents (a damaged file is moved aside and reported).  Raises
        PersistError if even an empty store cannot be made."""
        state_dir = Path(state_dir)
        path = state_dir / DB_NAME
        report = LoadReport(path)
        try:
            state_dir.mkdir(parents=True, exist_ok=True)
            if not path.exists():
                for p in _sidecars(path):
                    _remove(p)
                cls._create(path)
                report.created = True
            try:
                conn, rows, loaded = cls._open_existing(path, report)
            except (_Corrupt, sqlite3.DatabaseError) as exc:
                if isinstance(exc, sqlite3.Error) and not _is_corruption(exc):
                    raise
                reason = str(exc) or type(exc).__name__
                moved = cls._move_aside(path, keep_corrupt)
                report.corrupt_file = reason
                report.moved_to = moved
                report.problems.append(f"{DB_NAME} is unusable ({reason}); moved aside to {moved.name}, "
                                       "starting empty, peers will resend the claims")
                report.created = True
                cls._create(path)
                conn, rows, loaded = cls._open_existing(path, report)
        except sqlite3.Error as exc:
            raise PersistError(f"cannot open the claim store {path}: {exc}", _is_corruption(exc)) from exc
        except OSError as exc:
            raise PersistError(f"cannot open the claim store {path}: {exc}") from exc
        report.entries = len(loaded)
        report.tombstones = sum(1 for c in loaded if c.released)
        return cls(path, conn, rows, report, loaded), report

    @staticmethod
    def _connect(path: Path) -> sqlite3.Connection:
        conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=BUSY_TIMEOUT_S)
        conn.text_factory = bytes
        return conn

    @classmethod
    def _create(cls, path: Path) -> None:
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
            conn.close()
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
    def _open_existing(cls, path: Path, report: LoadReport) -> tuple[sqlite3.Connection, int, list[Claim]]:
        conn = cls._connect(path)
        try:
            app_id = conn.execute("PRAGMA application_id").fetchone()[0]
            if app_id != APPLICATION_ID:
                raise _Corrupt(f"application_id {app_id:#x}, not a shoal claim store")
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            if version != SCHEMA_VERSION:
                raise _Corrupt(f"schema version {version}; this shoal reads {SCHEMA_VERSION}")
            columns = tuple(r[1].decode() for r in conn.execute("PRAGMA table_info(claims)"))
            if columns != _COLUMNS:
                raise _Corrupt(f"table claims has columns {columns}, expected {_COLUMNS}")
            check = [r[0] for r in conn.execute("PRAGMA quick_check")]
            if check != [b"ok"]:
                raise _Corrupt("quick_check failed: " + "; ".join(c.decode(errors="replace") for c in check[:3]))
            mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
            if mode != b"wal":
                raise sqlite3.OperationalError(f"cannot use WAL mode (journal_mode is {mode!r})")
            conn.execute("PRAGMA synchronous=FULL")
            page_size = conn.execute("PRAGMA page_size").fetchone()[0]
            bound = MAX_ENTRIES * (MAX_ROW_BYTES + 512) * 3 // 2
            conn.execute(f"PRAGMA max_page_count={bound // page_size + 64}")
            claims: list[Claim] = []
            bad: list[int] = []
            for row in conn.execute("SELECT rowid, name, body, released, checksum FROM claims ORDER BY rowid"):
                try:
                    claim = _decode_row(row)
                except _BadRow as why:
                    bad.append(row[0])
                    name = row[1][:80].decode(errors="replace") if isinstance(row[1], bytes) else row[1]
                    report.problems.append(f"{DB_NAME} row {row[0]} (slot {name!r}): {why}; dropped, "
                                           "peers will resend it")
                    continue
                if len(claims) < MAX_ENTRIES:
                    claims.append(claim)
            if bad:
                conn.execute("BEGIN IMMEDIATE")
                conn.executemany("DELETE FROM claims WHERE rowid = ?", [(r,) for r in bad])
                conn.execute("COMMIT")
            report.bad_rows += len(bad)
        except BaseException:
            conn.close()
            raise
        return conn, len(claims), claims

    @classmethod
    def _move_aside(cls, path: Path, keep: int) -> Path:
        pattern = re.compile(re.escape(path.name) + r"\.corrupt-(\d+)")
        numbers = sorted(int(m.group(1)) for p in path.parent.iterdir() if (m := pattern.fullmatch(p.name)))
        n = (numbers[-1] if numbers else 0) + 1
        dest = path.with_name(f"{path.name}.corrupt-{n}")
        wal, shm = _sidecars(path)
        path.replace(dest)
        if wal.exists():
            wal.replace(_sidecars(dest)[0])
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
            raise PersistError(f"the claim store {self.path} is closed")
        return self._conn

    def write(self, claims: Iterable[Claim]) -> int:
        """Store the claims in one transaction, each only if it beats the stored
        claim of its slot.  Returns how many rows changed; durable on return."""
        batch = list(claims)
        with self._lock:
            conn = self._connection()
            written = added = 0
            try:
                conn.execute("BEGIN IMMEDIATE")
                try:
                    for claim in batch:
                        row = conn.execute("SELECT rowid, name, body, released, checksum FROM claims "
                                           "WHERE name = ?", (claim.name,)).fetchone()
                        if row is not None:
                            try:
                                stored = _decode_row(row)
                            except _BadRow:
                                stored = None
                            if stored is not None and not claim.beats(stored):
                                continue
                        elif self._rows + added >= MAX_ENTRIES:
                            raise PersistError(f"the claim store holds {MAX_ENTRIES} claims already")
                        else:
                            added += 1
                        body = _encode(claim)
                        conn.execute(_UPSERT, (claim.name, body, int(claim.released), claim_checksum(body)))
                        written += 1
                    conn.execute("COMMIT")
                except BaseException:
                    if conn.in_transaction:
                        conn.execute("ROLLBACK")
                    raise
            except sqlite3.Error as exc:
                raise PersistError(f"cannot write to {self.path}: {exc}", _is_corruption(exc)) from exc
            self._rows += added
            return written

    def forget(self, names: Iterable[str]) -> int:
        """Delete these slots' claims if they are released (collected)."""
        names = list(names)
        with self._lock:
            conn = self._connection()
            gone = 0
            try:
                conn.execute("BEGIN IMMEDIATE")
                try:
                    for name in names:
                        gone += conn.execute("DELETE FROM claims WHERE name = ? AND released = 1",
                                             (name,)).rowcount
                    conn.execute("COMMIT")
                except BaseException:
                    if conn.in_transaction:
                        conn.execute("ROLLBACK")
                    raise
            except sqlite3.Error as exc:
                raise PersistError(f"cannot write to {self.path}: {exc}", _is_corruption(exc)) from exc
            self._rows -= gone
            return gone

    def __len__(self) -> int:
        return self._rows

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    def __enter__(self) -> "ClaimStore":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
