"""The state dir's store files by name, and the errors its stores raise.

How this works: everything an agent needs to know about its stores before
it opens them (is the state dir fresh? which error means it cannot start?)
lives here, apart from the stores (node.state.persist, claimstore,
versionstore) and sqlite3, which node.state.statedir imports only when it
opens them, in its worker thread: a fresh agent does that once it gossips,
and sqlite3 with the stores is about 3 ms of CPU.  The stores import these
names from here, so `node.state.persist.PersistError` is the same class.
"""

from __future__ import annotations

JOBS_DB = "jobs.db"  # node.state.persist
CLAIMS_DB = "claims.db"  # node.state.claimstore
VERSIONS_DB = "versions.db"  # node.state.versionstore


class PersistError(Exception):
    """A store cannot be read or written (not a corrupt file: those are
    moved aside at open).  `corruption` is true if SQLite found damage while
    running; the next open will move the file aside."""

    def __init__(self, message: str, corruption: bool = False) -> None:
        super().__init__(message)
        self.corruption = corruption


class EntryRejected(ValueError):
    """An entry the job store will not hold (too large, malformed, store full).
    Raised before anything of the batch is written."""
