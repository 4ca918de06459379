"""The agent's durable state: the state dir's stores and the persistence task.

How this works
--------------
`open()` opens the state dir (node.state.statedir: jobs in node.state.persist,
claims in node.state.claimstore, read in a worker thread) and logs every
problem it reports at ERROR, counted in `shoal_state_problems_total`.  A
state dir that holds none of their files (a node's first start: nothing to
load) is only checked to be writable there: creating the three SQLite files
costs ~10 ms of CPU and, with their fsyncs, ~0.15 s, so the persistence
task does it once the agent gossips, before its first write (and again
before each write while it fails: the node is unhealthy meanwhile); the
agent says it serves (agent.json) once `stores_ready` is set.

The pump hands every durable write the core asks for (`PersistEntries`,
`ForgetEntries`, `PersistClaims`, `ForgetClaims`) to `store()`, which puts it
on a bounded channel without blocking.  The persistence task (`run()`)
applies them one at a time, in order.

Durability of a submission (`POST /v1/jobs`, `DELETE /v1/jobs/NAME`):
`write_job` registers a waiter under a fresh token and feeds
`WriteJob(..., token)`; the core emits `PersistEntries(token)`; the
persistence task writes it (SQLite, WAL, synchronous=FULL: fsynced on
commit) and only then posts `Persisted(token)` to the pump; the core answers
`JobWriteDone(token)` (and starts gossiping the entry), which wakes the
waiter (`write_done`).  A write that lost to a newer entry for the same
name before it could be merged (`JobWriteDone.superseded_by`) is durable but
did not take effect: `write_job` raises WriteSuperseded naming the winner
(the API answers 409), never "done" (unless the winner asks for the same:
two stops, or the same spec).  A failed write, or a persistence queue that is full,
fails the waiter instead and feeds `AbandonWrite(token)`: the API answers 503
with the reason and nothing is acknowledged.  Without a state dir nothing is
durable: writes are acknowledged as soon as they are in memory (logged as a
warning at start).

A store whose write failed (PersistError, OSError: disk full, I/O error)
makes this node unhealthy (node.agent.health): it cannot keep the claims it
would make, so it takes no new work until a later write to that store
succeeds.  The failure shows in `problems` (`state_problems` of
/v1/agent/self) while it lasts.
"""

from __future__ import annotations

import itertools
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

import trio

from node.agent.errors import StateWriteError, WriteSuperseded
from node.agent.health import STATE_DIR, Health
from node.agent.pump import Pump
from node.core.inputs import AbandonWrite, Persisted, WriteJob
from node.core.jobstore import Entry
from node.core.node_core import NodeCore
from node.state.layout import CLAIMS_DB, JOBS_DB, VERSIONS_DB, EntryRejected, PersistError
from node.state.statedir import NODE_STATE_FILE, Loaded, StateDir, StoreOp
from node.telemetry.clustermetrics import ClusterMetrics

log = logging.getLogger("shoal.agent")

PERSIST_QUEUE_DEPTH = 256
# What a state dir that has been used holds (a WAL alone too: the store's open reports it).
STATE_FILES = tuple(f"{db}{suffix}" for db in (JOBS_DB, CLAIMS_DB, VERSIONS_DB)
                    for suffix in ("", "-wal")) + (NODE_STATE_FILE,)
WRITE_TIMEOUT_S = 10.0  # a submission not durable by then is answered 503


@dataclass
class _WriteWaiter:
    done: trio.Event = field(default_factory=trio.Event)
    entry: Entry | None = None
    error: str | None = None
    superseded_by: Entry | None = None

    def succeed(self, entry: Entry, superseded_by: Entry | None) -> None:
        if not self.done.is_set():
            self.entry = entry
            self.superseded_by = superseded_by
            self.done.set()

    def fail(self, error: str) -> None:
        if not self.done.is_set():
            self.error = error
            self.done.set()


class Persistence:
    def __init__(self, state_dir: Path | None, cluster_metrics: ClusterMetrics, pump: Pump,
                 health: Health | None = None) -> None:
        self.state_dir = state_dir
        self.state = StateDir(state_dir)
        self._open_problems: list[str] = []  # found when the state dir was opened
        self._failing: dict[str, str] = {}  # store -> its last write's error, until one succeeds
        self._health = health
        self._metrics = cluster_metrics
        self._pump = pump
        self._send, self._recv = trio.open_memory_channel[StoreOp](PERSIST_QUEUE_DEPTH)
        self._tokens = itertools.count(1)
        self._writes: dict[int, _WriteWaiter] = {}
        self._open_later = False  # a fresh state dir: its stores are created by run()
        self.stores_ready = trio.Event()  # the stores are open (or their creation failed: see run())

    async def open(self) -> Loaded:
        """Open the state dir; log every problem it reports at ERROR and count it."""
        if not self.state.durable:
            log.warning("no --state-dir: jobs and claims are kept in memory only; submissions are "
                        "acknowledged without a durable copy and lost when this agent stops")
        if self.state_dir is not None and is_fresh(self.state_dir):
            check_writable(self.state_dir)
            self._open_later = True
            return Loaded()
        try:
            loaded = await self.state.open()
        except PersistError as e:
            raise OSError(f"state dir {self.state_dir}: {e}") from e
        self._report_problems(loaded)
        self.stores_ready.set()
        return loaded

    def _report_problems(self, loaded: Loaded) -> None:
        for store, problem in loaded.problems:
            log.error("state dir problem (%s): %s", store, problem)
            self._open_problems.append(problem)
            self._metrics.problems.labels(store=store).inc()

    async def _create_stores(self) -> None:
        """The stores of a fresh state dir (see `open`); raises PersistError."""
        loaded = await self.state.open()
        self._open_later = False
        self._report_problems(loaded)
        if "jobs" in self._failing:  # the failure was this creation's (no write could run before it)
            await self._write_outcome("jobs", None)
        if loaded.entries or loaded.claims:  # written by someone else meanwhile: not ours to load now
            log.warning("state dir %s filled while this agent started; its contents are not loaded "
                        "until the next start", self.state_dir)

    @property
    def problems(self) -> list[str]:
        """What is wrong with the state dir: problems found at open, and the
        stores whose last write failed."""
        return [*self._open_problems,
                *(f"writes to the {store} store fail: {error}" for store, error in sorted(self._failing.items()))]

    async def _write_outcome(self, store: str, error: str | None) -> None:
        """Track which stores fail writes; this node is unhealthy while any does."""
        if error is None:
            if self._failing.pop(store, None) is None:
                return
            log.warning("state dir writes to the %s store succeed again", store)
        else:
            self._failing[store] = error
        if self._health is not None:
            problem = "; ".join(f"{s} writes fail ({e})" for s, e in sorted(self._failing.items()))
            await self._health.report(STATE_DIR, problem or None)

    def close(self) -> None:
        try:
            self.state.close()
        except Exception:  # best effort: what was acknowledged is committed
            log.exception("closing the state stores failed")

    async def run(self) -> None:
        """The persistence task: one store operation at a time, in order; a
        local job write is fed back to the core only once it is durable."""
        if self._open_later:
            try:
                await self._create_stores()
            except PersistError as e:  # tried again before each write, which fails meanwhile
                log.error("state dir %s: %s", self.state_dir, e)
                await self._write_outcome("jobs", str(e))
        self.stores_ready.set()
        async for op in self._recv:
            try:
                if self._open_later:
                    await self._create_stores()
                await self.state.apply(op)
            except Exception as e:  # noqa: BLE001 -- no write may end this task (and with it the agent)
                self._metrics.writes.labels(store=op.store, outcome="error").inc()
                # An unexpected error is a bug of ours: show its traceback.
                log.error("state dir write failed (%s, %s): %s", op.store, op.kind, e,
                          exc_info=not isinstance(e, (PersistError, EntryRejected, OSError)))
                if op.token is not None:
                    self._fail(op.token, f"the write to this agent's state dir failed: {e}")
                    await self._pump.feed(AbandonWrite(op.token))
                if not isinstance(e, EntryRejected):  # a refused entry is not a failing disk
                    await self._write_outcome(op.store, str(e))
                continue
            self._metrics.writes.labels(store=op.store, outcome="ok").inc()
            await self._write_outcome(op.store, None)
            if op.token is not None:
                await self._pump.post(Persisted(op.token))

    def store(self, op: StoreOp, core: NodeCore) -> None:
        """Hand a write to the persistence task without blocking the pump
        (called from inside the pump's dispatch, hence the core at hand)."""
        try:
            self._send.send_nowait(op)
        except trio.WouldBlock:
            self._metrics.queue_full.inc()
            log.error("persistence queue full: %s of %d item(s) not written", op.kind, len(op.items))
            if op.token is not None:
                self._fail(op.token, "this agent's state dir is not keeping up (persistence queue full); retry")
                # Inside the pump (no await between feed and drain): forget
                # the write directly.
                core.feed(AbandonWrite(op.token), trio.current_time())

    def _fail(self, token: int, error: str) -> None:
        if (waiter := self._writes.get(token)) is not None:
            waiter.fail(error)

    def write_done(self, token: int, entry: Entry, superseded_by: Entry | None = None) -> None:
        """The core finished the write with this token (JobWriteDone)."""
        if (waiter := self._writes.get(token)) is not None:
            waiter.succeed(entry, superseded_by)

    async def write_job(self, name: str, spec: bytes | None, *, why: str = "submit", by: str = "",
                        ref: str = "", promoted: str = "") -> Entry:
        """Submit (canonical spec bytes) or stop (None) a job; returns once the
        write is durable here.  why / by / ref / promoted go into the
        version's history record (node.core.history).  Raises StateWriteError
        (not durable, not acknowledged), WriteSuperseded (lost to a newer
        write), node_core.JobLimitError, ValueError, cluster_clock.ClockAheadError."""
        token = next(self._tokens)
        waiter = self._writes[token] = _WriteWaiter()
        try:
            await self._pump.feed(WriteJob(name, spec, token, why, by, ref, promoted))
            with trio.move_on_after(WRITE_TIMEOUT_S):
                await waiter.done.wait()
            if waiter.error is not None:
                raise StateWriteError(waiter.error)
            if waiter.entry is None:
                raise StateWriteError(f"the state dir did not confirm the write within {WRITE_TIMEOUT_S:g} s")
            # Lost to a newer write with the same effect (two stops, the same
            # spec twice): what the caller asked for holds, so it is done.
            if (newer := waiter.superseded_by) is not None and newer.spec != spec:
                what = "a stop" if newer.deleted else "a submission"
                raise WriteSuperseded(
                    f"job {name!r}: this write lost to {what} written by {newer.stamp.node or '?'} with a "
                    f"newer version [{newer.stamp.wall_ms}, {newer.stamp.counter}]; read the job and retry")
            return waiter.entry
        finally:
            del self._writes[token]


def is_fresh(state_dir: Path) -> bool:
    """True if the state dir holds nothing to load (it may not exist yet)."""
    return not any((state_dir / name).exists() for name in STATE_FILES)


def check_writable(state_dir: Path) -> None:
    """Create the state dir if need be and a file in it, or raise OSError
    (the agent cannot start) as opening its stores would."""
    probe = state_dir / f".write-check-{os.getpid()}"
    try:
        state_dir.mkdir(parents=True, exist_ok=True)
        os.close(os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600))
        os.unlink(probe)
    except OSError as e:
        raise OSError(f"state dir {state_dir}: cannot write there: {e.strerror or e}") from e
