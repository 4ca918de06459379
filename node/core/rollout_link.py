"""The node core's side of rolling updates (auction.rollout holds the rule).

How this works: placement's tick asks, for the slots of a job being rolled
out, whether each holder reports the slot running; `running_lookup` answers
from the holders' published runtime summaries (node.core.status), trusting
a "running" only when the record's fingerprint of the claims behind it
(`stamped` adds ours at every publish) matches the claims held here.  After the
tick, `after_place` turns what placement decided into the core's outputs
(rebalancing moves' events included):
an `AwardAccepted` for each claim we wrote for our own slot (a holder
moving its slot to a new version accepts its own ballot, so every started
replica still traces to an accepted claim), the rollout events, and the
revert writes (a job write of the version to go back to, made durable like
any other: `PersistEntries` with a core-owned negative token, which no
driver waits on).  `older_versions` lets placement's `Versions` find an earlier version's
spec in the job history (replicated and persisted with the job), so a revert
does not depend on what this agent happened to see since it started.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping
from dataclasses import replace
from typing import TYPE_CHECKING

from auction.claims import Claim, holds, slot_key
from auction.placement_outputs import AwardAccepted
from auction.rollout import UNVERIFIED, running_fingerprint
from auction.spec import JobSpec, SpecError, from_json
from node.core.history import Versioned, version_id
from node.core.status import NodeStatus, RuntimeSummary

if TYPE_CHECKING:
    from node.core.node_core import NodeCore


def running_lookup(statuses: Mapping[str, NodeStatus], me: str, my_runtime: RuntimeSummary | None,
                   claim_of: Callable[[str], Claim | None]) -> Callable[[str, str, int], str]:
    """(holder, job, index) -> what the holder reports of the slot (running,
    starting, failed, exited; "unknown").  A record with no runtime summary
    (an older agent's, or one from before its runtime first reported) says
    "unknown", as does a summary cut short for room; a record whose running
    slots run under other claims than the ones `claim_of` gives here
    (auction.rollout.running_fingerprint) says UNVERIFIED for a slot it lists
    running.  What is not known to run does not count as running
    (auction.rollout says what UNVERIFIED is worth).
    Our own slots are our runtime's word (`my_runtime`; None: a runtime that
    does not report, as the simulator's plain fake, whose slots count as
    running)."""
    agrees: dict[tuple[str, str], bool] = {}

    def running(node: str, job: str, index: int) -> str:
        if node == me:
            # Our runtime's own word (not the record cut to fit 1 KiB), on the
            # claims we hold now.
            if my_runtime is None:
                return "running"
            own = my_runtime.state_of(job, index)
            return own[0] if own is not None else "unknown"
        status = statuses.get(node)
        if status is None or status.runtime is None:
            return "unknown"
        state = status.runtime.state_of(job, index)
        if state is None:
            return "unknown"
        if state[0] == "running" and job in status.runtime.ballots:
            key = (node, job)
            if key not in agrees:
                mine = fingerprint(job, status.runtime.jobs[job][0], node, claim_of)
                agrees[key] = mine == status.runtime.ballots[job]
            if not agrees[key]:
                return UNVERIFIED
        return state[0]
    return running


def moved_in_rollout(core: NodeCore, old: RuntimeSummary | None, new: RuntimeSummary | None) -> bool:
    """Did a runtime summary change for a job being rolled out here?  Then a
    placement pass should look now (rollout pacing counts from when it sees
    a slot run), not at the next periodic pass."""
    jobs = core.placement.rollouts.jobs
    if not jobs or old == new:
        return False
    before = old.jobs if old is not None else {}
    after = new.jobs if new is not None else {}
    return any(before.get(job) != after.get(job) for job in jobs)


def lookup(core: NodeCore) -> Callable[[str, str, int], str]:
    """`running_lookup` for the core's placement tick."""
    return running_lookup(core.statuses, core.name, current(core.runtime_summary, core.name, core._claims.get),
                          core._claims.get)


def current(summary: RuntimeSummary | None, name: str,
            claim_of: Callable[[str], Claim | None]) -> RuntimeSummary | None:
    """Our runtime summary as it stands for the claims we hold now: a slot
    we hold under another ballot round than the one the runtime last
    reported it running under (the summary's `rounds`: we took a new claim
    for it, a rollout's, and the runtime has not reported since) reads as
    starting, since what runs is the old claim's container.  Stamping the
    new claim on that "running" would let every agent start the new
    version's min_healthy_s clock before its container runs, and a rollout
    would replace more than max_parallel at once.  A copy whose claim we no
    longer hold still runs and is listed (auction.merge_rule counts any
    running copy)."""
    if summary is None or not summary.rounds:
        return summary
    jobs = summary.jobs
    for (job, index), round_ in summary.rounds.items():
        claim = claim_of(slot_key(job, index))
        if claim is None or not holds(claim, name) or claim.ballot.round == round_:
            continue
        running, other = jobs[job]
        if index in running:
            if jobs is summary.jobs:
                jobs = dict(jobs)
            jobs[job] = (tuple(i for i in running if i != index), other)
    return summary if jobs is summary.jobs else replace(summary, jobs=jobs)


def drained_lookup(core: NodeCore) -> Callable[[str, str, int], str] | None:
    """What a drained node waits on before it stops a copy that moved
    (auction.placement's reconcile); None while the node is not drained."""
    if not core.status().drained:
        return None
    return running_lookup(core.statuses, core.name, None, core._claims.get)


def fingerprint(job: str, indices: tuple[int, ...], node: str, claim_of: Callable[[str], Claim | None]) -> int:
    """The fingerprint of the claims `node` holds (as claim_of says) for these indices of `job`."""
    pairs = []
    for index in indices:
        claim = claim_of(slot_key(job, index))
        if claim is not None and holds(claim, node):
            pairs.append((index, claim.ballot.round))
    return running_fingerprint(pairs)


def stamped(summary: RuntimeSummary | None, name: str,
            claim_of: Callable[[str], Claim | None]) -> RuntimeSummary | None:
    """Our runtime summary with the fingerprint of the claims its running
    slots run under, as we hold them now (published in our record)."""
    summary = current(summary, name, claim_of)
    if summary is None or not summary.jobs:
        return summary
    ballots = {job: fingerprint(job, running, name, claim_of) for job, (running, _) in summary.jobs.items()}
    return replace(summary, ballots=ballots)


def older_versions(core: NodeCore) -> Callable[[str], Iterator[JobSpec]]:
    """job -> the specs of its job-history versions before the current one,
    newest first (auction.rollout.Versions' `older`: where a revert finds the
    version to go back to after this agent restarted).  Parsed lazily, one
    at a time; a record that does not parse is skipped."""
    def specs(job: str) -> Iterator[JobSpec]:
        current = core.store.get(job)
        for entry in reversed(core.store.history.of(job)):
            if entry.spec is None or (current is not None and entry.stamp == current.stamp):
                continue
            try:
                yield from_json(json.loads(entry.spec))
            except (SpecError, ValueError, TypeError):
                continue
    return specs


def after_place(core: NodeCore, won: list[Claim], now: float) -> None:
    """Emit what placement's tick decided about rollouts (see the module doc)."""
    for claim in won:
        if not claim.released and claim.node == core.name:
            core._emit(AwardAccepted(claim))
    events, reverts = core.placement.drain_rollout()
    for event in events:
        core._emit(event)
    for moved in core.placement.rebalancer.drain_events():  # auction.rebalance's moves
        core._emit(moved)
    preempted, core.placement.preemptions = core.placement.preemptions, []   # auction.preemption
    for preempt in preempted:
        core._emit(preempt)
    for spec in reverts:
        core.placement.revert_writes += 1
        current = core.store.get(spec.name)
        # Job history records it as a "revert" naming the version it leaves.
        records: list[Versioned] = [*core.store.history.of(spec.name)]
        ref = version_id(current, records) if current is not None else ""
        try:
            core._write_job(spec.name, spec.canonical_json(), -core.placement.revert_writes, now, why="revert",
                            ref=ref)
        except ValueError:  # the cluster's job limit or spec size: counted, not fatal
            core._count("rollout_revert_refused")
