"""The container runtime interface, and `FakeRuntime`, which only records.

How this works: the node core decides what runs here; the agent's pump hands
each decision to a runtime object:

    StartReplica(claim, spec)  ->  runtime.start(claim, spec)
    StopReplica(slot, reason)  ->  runtime.stop(slot, reason)

The interface (`node.runtime.Runtime` spells out the Docker runtime's whole
surface; this is the part the agent relies on):

    start(claim: auction.claims.Claim, spec: auction.spec.JobSpec) -> None
        Run replica `claim.name` ("job/index") of `spec` on this node.  The
        claim carries the slot, its ballot (round, coordinator) and the
        demand the ledger reserved for it.  Idempotent for a slot already
        running the same claim; a newer claim replaces the old container.
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
    desired_complete() -> None
        Called once the agent believes it has replayed every claim it holds
        (its claims digest matches its live peers', or it has been alone for
        a few seconds): containers not desired may be removed from then on.

Results come back to the core through `Agent.call`: the agent builds the
Docker runtime as `DockerRuntime(name, on_give_up=..., on_health=...)` with
callbacks that run `core.replica_gave_up(slot, reason, now)` and
`core.set_health(ok, reason, now)` in the pump.

`FakeRuntime` keeps what it was told (`running`: slot -> claim, `history`:
every call in order, bounded), so the agent runs end to end, placements
included, on machines without Docker; the real-process tests read its
`stats()` to see that starts and stops reached the runtime.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Any

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

    def __init__(self) -> None:
        self.running: dict[str, Claim] = {}
        self.specs: dict[str, JobSpec] = {}
        self.history: deque[RuntimeCall] = deque(maxlen=HISTORY_MAX)
        self.starts = 0
        self.stops = 0

    def start(self, claim: Claim, spec: JobSpec) -> None:
        self.running[claim.name] = claim
        self.specs[claim.name] = spec
        self.starts += 1
        self.history.append(RuntimeCall("start", claim.name,
                                        f"{claim.ballot.round}@{claim.ballot.coordinator}"))

    def stop(self, slot: str, reason: str) -> None:
        self.running.pop(slot, None)
        self.specs.pop(slot, None)
        self.stops += 1
        self.history.append(RuntimeCall("stop", slot, reason))

    def health(self) -> tuple[bool, str]:
        return True, ""

    def stats(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "running": {slot: {"image": self.specs[slot].image, "ballot": [c.ballot.round, c.ballot.coordinator]}
                        for slot, c in sorted(self.running.items())},
            "starts": self.starts,
            "stops": self.stops,
        }
