"""Durable storage of the slot claims: SQLite in WAL mode, `<state_dir>/claims.db`.

How this works: the claims map (auction.claims.Claim in a gossip.lww.LwwMap)
lives in memory; the agent writes every `PersistClaims` batch here and
removes collected released claims on `ForgetClaims`, so an agent that
restarts while no peer is reachable still knows which replicas it holds and
restarts them.  Claims are not acknowledged to anyone (peers hold them too):
a lost write costs at most a re-auction after a restart, never a wrong
placement, because claims are ordered by ballot and the newest wins
wherever they meet.

The file is handled by node/sqlitefile.py, as the job store's
(node/persist.py) is, but it is a file of its own so that damage to one
never costs the other.  This module holds the claim store's own parts:

* one row per slot: the claim's wire form (msgpack of `Claim.to_wire()`,
  checksummed as node/state/rowbody.py says) and a `released` flag (so
  collection can delete only released claims); a write replaces a row only if its claim beats
  the stored one (`Claim.beats`), so late or repeated batches never roll a
  slot back;
* bounded by node.core.jobstore.MAX_ENTRIES rows (the in-memory map's own bound).

From node/sqlitefile.py: on open the file is checked (SQLite header, our
application_id and schema version, the table's columns, `PRAGMA
quick_check`); a file that fails is moved aside to `claims.db.corrupt-<n>`
and replaced by an empty one, and every bad row is deleted; each is a line
in the `LoadReport` for the agent to log at ERROR (peers resend the claims
through anti-entropy).  `journal_mode=WAL`, `synchronous=FULL`: a committed
batch is fsynced.

Threading: every method blocks; the agent calls them through
`trio.to_thread.run_sync` with one `CapacityLimiter(1)` for both stores, and
each method holds a lock (`sqlitefile.SqliteStore`), as in node/persist.py.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from pathlib import Path

from auction.claims import Claim

from node.core.jobstore import MAX_ENTRIES
from node.state.layout import CLAIMS_DB
from node.state.sqlitefile import (KEEP_CORRUPT, BadRow, FileLayout, LoadReport, PersistError,
                         SqliteStore, open_file, scan_rows)
from node.state.rowbody import RowBody

DB_NAME = CLAIMS_DB
APPLICATION_ID = 0x73686F63  # "shoc"
SCHEMA_VERSION = 1
MAX_ROW_BYTES = 4096  # a claim's wire form is a few hundred bytes at most
BUSY_TIMEOUT_S = 5.0
# Room per row beyond its body, for the file size cap: name, cells, index.
_ROW_OVERHEAD_BYTES = 512
_COLUMNS = ("name", "body", "released", "checksum")
_SCHEMA = """
CREATE TABLE claims (
    name     TEXT PRIMARY KEY NOT NULL,   -- slot key "job/index"
    body     BLOB NOT NULL,               -- msgpack of Claim.to_wire()
    released INTEGER NOT NULL,
    checksum BLOB NOT NULL                -- BODY.checksum(body)
)
"""
_SELECT = "SELECT rowid, name, body, released, checksum FROM claims"
_UPSERT = """
INSERT INTO claims (name, body, released, checksum) VALUES (?, ?, ?, ?)
ON CONFLICT (name) DO UPDATE SET
    body = excluded.body, released = excluded.released, checksum = excluded.checksum
"""

_LAYOUT = FileLayout(
    file_name=DB_NAME, store_name="claim store", contents="claims", row_noun="slot",
    application_id=APPLICATION_ID, schema_version=SCHEMA_VERSION,
    table="claims", columns=_COLUMNS, schema_sql=_SCHEMA, reports_stray_wal=False)


BODY = RowBody(b"shoal-claims-v1", MAX_ROW_BYTES, "claim")


def _decode_row(row) -> Claim:
    _, name, body, released, checksum = row
    claim = BODY.decode(body, checksum, Claim.from_wire)
    if not isinstance(name, bytes) or name.decode(errors="replace") != claim.name:
        raise BadRow("row name does not match its claim")
    if released != int(claim.released):
        raise BadRow("released flag does not match its claim")
    return claim


def _read(conn: sqlite3.Connection, report: LoadReport) -> list[Claim]:
    _, claims = scan_rows(conn, _LAYOUT, report, _SELECT, _decode_row, MAX_ENTRIES)
    return claims


class ClaimStore(SqliteStore):
    """One SQLite connection to `<state_dir>/claims.db`.  Build with `open`."""

    layout = _LAYOUT

    def __init__(self, path: Path, conn: sqlite3.Connection, rows: int, report: LoadReport,
                 loaded: list[Claim]) -> None:
        super().__init__(path, conn, rows, report)
        self.loaded = loaded  # what open() read, for NodeCore(stored_claims=...)

    @classmethod
    def open(cls, state_dir: Path, *, keep_corrupt: int = KEEP_CORRUPT) -> tuple["ClaimStore", LoadReport]:
        """Open (or create) the claim store; never raises because of the file's
        contents (a damaged file is moved aside and reported).  Raises
        PersistError if even an empty store cannot be made."""
        conn, loaded, report = open_file(
            state_dir, _LAYOUT, _read, keep_corrupt=keep_corrupt, busy_timeout_s=BUSY_TIMEOUT_S,
            max_rows=MAX_ENTRIES, max_row_bytes=MAX_ROW_BYTES + _ROW_OVERHEAD_BYTES)
        report.entries = len(loaded)
        report.tombstones = sum(1 for c in loaded if c.released)
        return cls(report.path, conn, len(loaded), report, loaded), report

    # ---- use

    def write(self, claims: Iterable[Claim]) -> int:
        """Store the claims in one transaction, each only if it beats the stored
        claim of its slot.  Returns how many rows changed; durable on return."""
        batch = list(claims)
        with self._lock:
            conn = self._connection()
            written = added = 0
            with self.write_transaction(conn):
                for claim in batch:
                    row = conn.execute(_SELECT + " WHERE name = ?", (claim.name,)).fetchone()
                    if row is not None:
                        try:
                            stored = _decode_row(row)
                        except BadRow:
                            stored = None
                        if stored is not None and not claim.beats(stored):
                            continue
                    elif self._rows + added >= MAX_ENTRIES:
                        raise PersistError(f"the claim store holds {MAX_ENTRIES} claims already")
                    else:
                        added += 1
                    body, checksum = BODY.encode(claim.to_wire())
                    conn.execute(_UPSERT, (claim.name, body, int(claim.released), checksum))
                    written += 1
            self._rows += added
            return written

    def forget(self, names: Iterable[str]) -> int:
        """Delete these slots' claims if they are released (collected)."""
        return self.delete_each("DELETE FROM claims WHERE name = ? AND released = 1", names)
