"""The agent's state dir: both durable stores and this node's own settings.

How this works: `StateDir.open()` opens, in a worker thread (which imports
them: sqlite3 is not imported before), the job store
(node/persist.py, `jobs.db`), the claim store (node/claimstore.py,
`claims.db`) and the version store (node/state/versionstore.py,
`versions.db`: job history), and reads `node.json` (settings of this node changed at run
time: the drain flag).  It returns what they hold, for `NodeCore(
stored_entries=..., stored_claims=...)` (stored entries: the current ones
and every stored version), and every problem they reported,
for the agent to log at ERROR and count; a damaged file never stops the
agent (the stores move it aside and start empty, peers refill them), only a
state dir that cannot be used at all does (PersistError).

`apply(op)` runs one `StoreOp` (the node core's PersistEntries /
ForgetEntries / PersistClaims / ForgetClaims) in a worker thread and returns
when it is durable, or raises (PersistError, EntryRejected, OSError).  All
blocking calls share one `trio.CapacityLimiter(1)`: one thread at a time
touches the stores, so operations stay in the order they were given.

Without a state dir (`StateDir(None)`) everything is kept in memory: the
stores are stand-ins whose writes do nothing, and nothing is durable.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import trio

from auction.claims import Claim

from node.core.jobstore import Entry

NODE_STATE_FILE = "node.json"


@dataclass(frozen=True, slots=True)
class StoreOp:
    kind: str  # "entries" | "forget_entries" | "claims" | "forget_claims"
    items: tuple
    token: int | None = None  # a local job write waiting for this one
    history: tuple = ()  # "entries": older versions to file in the version store only

    @property
    def store(self) -> str:
        return "jobs" if self.kind in ("entries", "forget_entries") else "claims"


@dataclass
class Loaded:
    entries: list[Entry] = field(default_factory=list)
    claims: list[Claim] = field(default_factory=list)
    drained: bool = False
    problems: list[tuple[str, str]] = field(default_factory=list)  # (store, what)


class _MemoryStore:
    """Stands in for a store without a state dir: nothing is durable."""

    def write(self, items: Any) -> int:
        return 0

    def forget(self, names: Any) -> int:
        return 0

    def close(self) -> None:
        pass


def _store_classes() -> tuple[Any, Any, Any]:
    """The three stores' classes.  Imported on first open, in the worker
    thread, not with this module: sqlite3 and the stores are about 3 ms of
    CPU, which an agent on a fresh state dir spends once it gossips
    (node.state.layout holds what is needed before)."""
    from node.state.claimstore import ClaimStore
    from node.state.persist import EntryStore
    from node.state.versionstore import VersionStore

    return EntryStore, ClaimStore, VersionStore


class StateDir:
    def __init__(self, path: Path | None) -> None:
        self.path = path
        self.limiter = trio.CapacityLimiter(1)
        self.jobs: Any = _MemoryStore()
        self.claims: Any = _MemoryStore()
        self.versions: Any = _MemoryStore()

    @property
    def durable(self) -> bool:
        return self.path is not None

    async def _run(self, fn, *args):
        return await trio.to_thread.run_sync(fn, *args, limiter=self.limiter)

    async def open(self) -> Loaded:
        """Open both stores and read node.json.  Raises PersistError only if
        the state dir cannot be used at all."""
        loaded = Loaded()
        if self.path is None:
            return loaded
        entry_store, claim_store, version_store = await self._run(_store_classes)
        self.jobs, jobs_report = await self._run(entry_store.open, self.path)
        loaded.entries = await self._run(self.jobs.load)
        self.claims, claims_report = await self._run(claim_store.open, self.path)
        loaded.claims = list(self.claims.loaded)
        self.versions, versions_report = await self._run(version_store.open, self.path)
        loaded.entries.extend(self.versions.loaded)
        for store, report in (("jobs", jobs_report), ("claims", claims_report), ("versions", versions_report)):
            loaded.problems.extend((store, p) for p in report.problems)
        try:
            text = await self._run((self.path / NODE_STATE_FILE).read_text)
            loaded.drained = json.loads(text).get("drained", False) is True
        except FileNotFoundError:
            pass
        except (OSError, ValueError, AttributeError) as e:
            loaded.problems.append(("node", f"{NODE_STATE_FILE} unreadable ({e}); assuming not drained"))
        return loaded

    async def apply(self, op: StoreOp) -> None:
        store = self.jobs if op.store == "jobs" else self.claims
        fn = store.forget if op.kind.startswith("forget") else store.write
        if op.items:
            await self._run(fn, op.items)
        if op.kind == "entries":  # every entry is a version too (node.state.versionstore)
            await self._run(self.versions.write, op.items + op.history)
        elif op.kind == "forget_entries":
            await self._run(self.versions.forget, op.items)

    async def write_node_state(self, *, drained: bool) -> None:
        """Atomically replace node.json (temp file, fsync, rename)."""
        if self.path is None:
            return
        state_dir = self.path

        def write() -> None:
            fd, tmp = tempfile.mkstemp(prefix=".node-", dir=str(state_dir))
            with os.fdopen(fd, "w") as f:
                json.dump({"drained": drained}, f)
                f.write("\n")
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, state_dir / NODE_STATE_FILE)

        await self._run(write)

    def close(self) -> None:
        """Close both stores (a worker thread still writing has finished:
        to_thread.run_sync is not cancellable)."""
        for store in (self.jobs, self.claims, self.versions):
            store.close()
