"""The container runtime interface, and `FakeRuntime`, which only records.

How this works: the node core decides what runs here; the agent's pump hands
each decision to a runtime object:

    StartReplica(claim, spec, replaces, adopt_only)  ->  runtime.start(claim, spec, replaces, adopt_only)
    StopReplica(slot, reason)  ->  runtime.stop(slot, reason)

The interface (`node.runtime.interface.Runtime` spells out the Docker runtime's whole
surface; this is the part the agent relies on):

    start(claim: auction.claims.Claim, spec: auction.spec.JobSpec) -> None
        Run replica `claim.name` ("job/index") of `spec` on this node.  The
        claim carries the slot, its ballot (round, coordinator) and the
        demand the ledger reserved for it.  Idempotent for a slot already
        running the same claim; a newer claim replaces the old container.
        `adopt_only` (a claim read from disk that peers have not confirmed
        yet, node.core.replay): keep a replica of that claim that still
        runs, start none; the full start follows.
    stop(slot: str, reason: str) -> None
        Stop the replica of `slot` (superseded by a newer claim elsewhere,
        released, job stopped); `reason` is for logs and events.

Both are called from the pump task, the only task that owns the node core,
so both must return at once without blocking or awaiting: a real runtime
records the desired state and does the work in its own task.  If one raises,
the agent logs it and carries on (the core has already moved on).

Optional members, used when present:

    async run(*, task_status=trio.TASK_STATUS_IGNORED) -> None
        Started in the agent's nursery before the pump (`nursery.start`).
    stats() -> dict
        A JSON-able snapshot for `GET /v1/agent/self` ("runtime").
    images() -> frozenset[str] | None
        The local images (normalized "name:tag", digests, ids), or None when
        unknown (or pulled on demand): the agent polls it and hands changes
        to `NodeCore.set_image_inventory`, so the node declines calls for
        bids for a job whose image it lacks, saying so.
    slot_states() -> dict[slot, (state, reason)]
        running / starting / failed / exited per slot it was told to run
        (running: up, and healthy if it has a health check: what the
        service catalog lists); the agent polls it, publishes changes as `container_state` events
        and hands them to `NodeCore.set_runtime_slots` (gossiped in the
        node's status record: node/status.py's RuntimeSummary).
    slot_rounds() -> dict[slot, int]
        The ballot round of the claim each slot_states() entry is about,
        read with it: a slot the core has moved to a new claim and the
        runtime still reports running under the old one counts as starting
        (node.core.rollout_link.current).  Without it, a "running" is
        taken to be about the claim the core holds.
    states_changed: trio.Event
        Set (and replaced) when slot_states() moved, so the agent reports
        the change at once instead of at its next poll.
    poll_s: float | None
        How often the agent polls images(), slot_states() and the pulls
        (default node.agent.runtime_link.RUNTIME_POLL_S); None when they
        move only with states_changed (FakeRuntime): an idle agent is then
        not woken for them.
    async ps() -> list[dict]
        This node's containers (`GET /v1/containers`, `shoal ps`).
    async open_logs(slot, follow, tail, *, since_s, timestamps) -> async iterator of bytes
        The slot's container output (`shoal logs`; since_s: only the last
        that many seconds; timestamps: each line prefixed with its time);
        raises LookupError at once if the slot has no container here.
    async exec(slot, command, timeout_s) -> ExecResult
        Run a command in the slot's container (`shoal exec`).
    async exec_session(slot, command, *, tty, cols, rows) -> session
        Start one with stdin (`shoal exec -i/-t`): receive(), send_stdin(),
        close_stdin(), resize(), exit_code(), aclose()
        (node.runtime.exec_session.ExecSession).  LookupError / ValueError
        as for exec.
    desired_complete() -> None
        Called once the agent believes it has replayed every claim it holds
        (its claims digest matches its live peers', or it has been alone for
        a few seconds): containers not desired may be removed from then on.
    async bridge_gateway() -> str | None
        The host's address on the engine's bridge network (where the node's
        bridge containers reach the agent, e.g. its DNS), None without one.
    use_dns(servers, search, stack_domain="") -> None
        The resolvers and search domains of bridge containers created from
        then on (a stack's job searches STACK.stack_domain first).

Results come back to the core as inputs: the agent builds the Docker
runtime as `DockerRuntime(name, on_give_up=..., on_health=...)` with
callbacks that feed `ReplicaGaveUp(slot, reason)` and `SetHealth(ok, reason)`
(node.core.inputs) through the pump (node/agent/runtime_link.py).

`FakeRuntime` keeps what it was told (`running`: slot -> claim, `history`:
every call in order, bounded), so the agent runs end to end, placements
included, on machines without Docker (its exec sessions echo their stdin, as
`cat` would, so the API's session path is tested without Docker too); the real-process tests read its
`stats()` to see that starts and stops reached the runtime.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Any, AsyncIterator

import trio

from auction.claims import Claim
from auction.spec import JobSpec

HISTORY_MAX = 1024


@dataclass(frozen=True, slots=True)
class RuntimeCall:
    op: str  # "start" | "stop"
    slot: str
    detail: str  # ballot for start, reason for stop


class FakeRuntime:
    kind = "fake"
    poll_s = None  # what it reports moves only in start() and stop(), which set states_changed

    def __init__(self) -> None:
        self.states_changed = trio.Event()
        self.running: dict[str, Claim] = {}
        self.specs: dict[str, JobSpec] = {}
        self.history: deque[RuntimeCall] = deque(maxlen=HISTORY_MAX)
        self.starts = 0
        self.stops = 0
        self.sessions: deque[EchoSession] = deque(maxlen=16)   # the latest exec sessions, for tests

    def start(self, claim: Claim, spec: JobSpec, replaces: tuple[str, ...] = (), adopt_only: bool = False) -> None:
        if adopt_only and self.running.get(claim.name) != claim:
            return  # nothing of that claim runs here: nothing to keep, nothing started
        self.running[claim.name] = claim
        self.specs[claim.name] = spec
        self.starts += 1
        self.history.append(RuntimeCall("start", claim.name,
                                        f"{claim.ballot.round}@{claim.ballot.coordinator}"))
        self._moved()

    def stop(self, slot: str, reason: str) -> None:
        self.running.pop(slot, None)
        self.specs.pop(slot, None)
        self.stops += 1
        self.history.append(RuntimeCall("stop", slot, reason))
        self._moved()

    def _moved(self) -> None:
        self.states_changed.set()
        self.states_changed = trio.Event()

    def health(self) -> tuple[bool, str]:
        return True, ""

    def images(self) -> frozenset[str] | None:
        return None  # every image counts as present

    def slot_states(self) -> dict[str, tuple[str, str]]:
        return {slot: ("running", "") for slot in self.running}

    def slot_rounds(self) -> dict[str, int]:
        return {slot: c.ballot.round for slot, c in self.running.items()}

    async def ps(self) -> list[dict[str, Any]]:
        """What it was told to run, shaped like the Docker runtime's `ps()`."""
        return [{"slot": slot, "id": None, "name": None, "node": None, "state": "running",
                 "status": "fake: recorded as running", "health": "", "image": self.specs[slot].image,
                 "ballot": f"{c.ballot.round}/{c.ballot.coordinator}", "role": "desired", "restarts": 0,
                 "gave_up": None, "done": None}
                for slot, c in sorted(self.running.items())]

    async def logs(self, slot: str, follow: bool = False, tail: int | str = "all") -> AsyncIterator[bytes]:
        async for chunk in await self.open_logs(slot, follow, tail):
            yield chunk

    async def exec_session(self, slot: str, command: list[str], *, tty: bool, cols: int = 0,
                           rows: int = 0) -> EchoSession:
        if slot not in self.running:
            raise LookupError(f"no replica of {slot} here")
        session = EchoSession(slot, command, tty)
        if tty and cols > 0 and rows > 0:
            await session.resize(cols, rows)
        self.sessions.append(session)
        return session

    async def open_logs(self, slot: str, follow: bool = False, tail: int | str = "all", *,
                        since_s: float | None = None, timestamps: bool = False) -> AsyncIterator[bytes]:
        """No container, no output: the calls recorded for `slot` instead
        (all of them: they carry no time)."""
        if slot not in self.running:
            raise LookupError(f"no replica of {slot} here")
        lines = [f"fake runtime: {c.op} {c.slot} ({c.detail})\n".encode() for c in self.history if c.slot == slot]

        async def stream() -> AsyncIterator[bytes]:
            for line in lines:
                yield line
            if follow:
                await trio.sleep_forever()
        return stream()

    def stats(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "running": {slot: {"image": self.specs[slot].image, "ballot": [c.ballot.round, c.ballot.coordinator]}
                        for slot, c in sorted(self.running.items())},
            "starts": self.starts,
            "stops": self.stops,
        }


class EchoSession:
    """The fake runtime's interactive command: says what it runs, then gives
    its stdin back (on stdout, and on stderr too without a TTY) until stdin
    ends (with a TTY: a chunk ending in Ctrl-D); exit code 0.  Bounded: at
    most 16 chunks wait."""

    def __init__(self, slot: str, command: list[str], tty: bool) -> None:
        self.tty = tty
        self.sizes: list[tuple[int, int]] = []
        self._send, self._receive = trio.open_memory_channel[list[tuple[int, bytes]] | None](16)
        self._send.send_nowait([(1, f"fake runtime: {' '.join(command)} in {slot}\n".encode())])
        self.ended = False

    async def receive(self) -> list[tuple[int, bytes]] | None:
        pieces = await self._receive.receive()
        if pieces is None:
            self.ended = True
        return pieces

    async def send_stdin(self, data: bytes) -> None:
        await self._send.send([(1, data)] if self.tty else [(1, data), (2, data)])
        if self.tty and data.endswith(b"\x04"):    # a terminal's Ctrl-D ends it, as it ends `cat`
            await self._send.send(None)

    async def close_stdin(self) -> None:
        await self._send.send(None)

    async def resize(self, cols: int, rows: int) -> None:
        self.sizes.append((cols, rows))

    async def exit_code(self) -> int | None:
        return 0 if self.ended else None

    async def aclose(self) -> None:
        self._send.close()
