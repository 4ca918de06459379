"""Rolling updates: which slots of a job may take its new version now.  The one pacing rule.

How this works
--------------
A job's *target* is its current spec's `container_hash()`.  A slot whose
winning claim carries another hash runs an old version; nobody tells the
holders to move, and nobody keeps the pace: every agent computes the same
answer from gossiped state alone (the claims, each node's runtime summary
saying which of its slots run, membership), and the holder of a slot acts on
its own slot only.  Each desired slot (index < replicas) is, as this agent
sees it:

  NEW_HEALTHY  its claim has the target hash, its holder keeps it
               (auction.membership) and reports it running, and this agent
               has seen that continuously for `update.min_healthy_s`;
  NEW_PENDING  its claim has the target hash, not (yet) healthy;
  OLD_SERVING  its claim has an older hash and its holder reports it running;
  OLD_FAILED   its claim has an older hash and its holder reports it failed
               (exited, unhealthy, gave up);
  OLD_DOWN     its claim has an older hash and it does not run otherwise
               (starting, or nothing known of it here);
  EMPTY        no live claim, or a holder that does not keep it (being
               re-placed: "Lost slots" below says on which version).

"Running since" is this agent's own observation (the first pass that saw
the holder report the slot running under this very claim: the holder's
record says which claims its running slots run under, by a fingerprint of
their ballot rounds, `running_fingerprint`; a record about other claims
than the ones this agent holds does not start it, though it does not end it
for a slot it lists running either: `UNVERIFIED`): it is never
earlier than the truth, so an agent never counts a slot healthy too soon,
and it needs no timestamps in the 1 KiB status record.  A record with no
runtime summary (an older agent's, or one from before its runtime first
reported) is no word that anything runs there; a record cut to fit drops
the jobs being rolled out last, and a job it did drop counts as not running
there either (a rollout then waits; no progress verdict is given on such a
partial view).

The rule (`permitted`):

  unavailable = NEW_PENDING + OLD_FAILED + OLD_DOWN + EMPTY slots;
  budget      = update.max_parallel - unavailable;
  permitted   = every OLD_FAILED slot (replacing what fails costs no
                availability: a failed version, as in a revert, is not
                stuck behind itself), plus the lowest-index OLD_SERVING
                slots, `budget` of them.  An OLD_DOWN slot waits until it
                runs or fails (it may only be starting, or be seen late) --
                except in a revert (a target written by one, `is_revert`):
                there every slot on another version runs the version that
                failed, or an older one the revert leaves behind, and one
                that does not run serves nothing to wait for (a failing
                container the engine keeps restarting is "starting" most
                of the time, and a revert must not wait on it);
  canary      = while the rollout is not promoted, only indices < canary
                may be permitted; auto_promote promotes once every canary
                slot is NEW_HEALTHY.  A promote written by an operator is the
                same spec with `update.canary = 0` (`promoted_spec`; not in
                container_hash: it replaces nothing and lets the rest follow),
                or a job-store entry that names the target as promoted
                (`promoted_of`: its version meta's `promoted`, where the job
                store records one).

A slot that cannot be placed at all (EMPTY for want of room) uses up the
budget like any unavailable slot: a rollout waits for it rather than take
more replicas down, and fails after progress_deadline_s.

The holder of a permitted slot (auction.placement) re-claims it for the
target under a new ballot of its own (auction.claims rules 1 and 2: a
higher round, its own run's ballot id, so it beats the old claim and
never repeats) when the new cpu/memory/ports fit its ledger, and its runtime
replaces the container: start-first (the new container runs before the old
one stops) when `update.order` says so, the job publishes no host ports (two
copies could not bind them) and the node has room for both; stop-first
otherwise.  (During a start-first hand-over the old copy's resources are
not in the ledger: start-first is chosen only when the node's free
resources also hold the new copy beside the old copies of every hand-over
of this node that has not finished (`HandOvers`: a node may hand over
several slots of a batch at once, and its runtime starts them together),
and the old copy stops once the new one runs.)  When the new version does
not fit there, it releases the slot and
the slot moves through an auction.  Lowest indices first and
observation that lags the truth make the rule safe under stale gossip: a
holder of slot k is permitted only once it has *seen* enough of the slots
before k replaced and healthy (any it sees in flight use up the budget; any
it has not seen move are still ahead of k).

Failure: a slot NEW_PENDING for `healthy_deadline_s` (since this agent first
saw its target claim) that its holder reports failed (exited, unhealthy:
evidence, not just a status record slow to arrive here), or no slot turning
healthy for `progress_deadline_s` (the clock pauses while canaries wait for
a promote; and no verdict while some slot's holder record says nothing of
it here), fails the rollout here: nothing more is permitted for that target
-- unless the target was written by a revert.  A revert that misses a
deadline (a slow engine; the version it goes back to failing in turn) says
so, and is not reverted again, but goes on, paced as ever: stopping would
leave the job split between the version that failed and the one that ran,
with nothing to bring the rest back (slots on the failed version are
replaced out of turn; a serving one still waits for the budget, which
failing new copies use up, so a revert to a version that fails too takes
down no more than max_parallel).  With `auto_revert`, the
job's coordinator (auction.coordination, slot 0's) writes the last version
that ran healthy as a new job version (and, if the job is still on the
failing version `healthy_deadline_s` after an agent saw the rollout fail,
that agent writes it: the coordinator may have started after every slot had
moved, and then sees no rollout at all; a rollout that was itself written by
a revert is not reverted again, `is_revert`: it would go back to the version
that failed): the hash the OLD_SERVING slots
carry, its spec found in `Versions` or else in the job's history (which the
job store replicates and persists: a writer that restarted mid-rollout has
forgotten what it saw, not the history); when no slot serves an older
version any more, the newest version in the history before the failing one
(`Versions.revert_to`).  Every agent decides failure on
its own clock, but only that one writes, and a second writer would write
the same spec.

Lost slots.  A slot whose holder no longer keeps it (dead, drained) is
placed again by its coordinator's auction.  When its claim was for an
older version that this agent saw serving during the rollout, it goes
back on that version (`Rollouts.way_back`): the rollout has not reached
it, its turn comes as for any old slot, and a version not yet proven
does not take it over -- nor, after the rollout failed, keep taking the
job down one lost node at a time (a Deployment's old ReplicaSet keeps
its count the same way; Swarm and Nomad place the new version).  A slot
already on the target, one released by its holder (the new version did
not fit there: it moves on the target), and every slot of a revert's
rollout (the versions it leaves behind are the ones that failed) take the
target.  Placed on an older version, a slot is OLD_DOWN until it runs:
it uses up the budget as it did while EMPTY.

Partitions: each side paces itself from its own view.  The other side's
slots count as EMPTY until this side has re-placed them, so a side starts
replacing only once it runs every slot itself; the whole cluster then has at
most `max_parallel` slots being replaced per side, i.e. k * max_parallel for
k sides (tests/sim/test_rollout_sim.py checks 2 * max_parallel for a split
in two).  When the sides merge, auction.claims settles each slot to one
copy, and the rollout carries on from the merged view.  A side paces on
the status records it has: while split, a record can take a while to reach
the other members of its own side (gossip spends retransmissions on members
it cannot reach, and push/pull repairs), and that side's rollout waits
meanwhile.

Pure: `now` is an argument; the per-job memory (`JobRollout`) is this
agent's own and is lost on restart (a restarted agent waits min_healthy_s
anew before it counts a slot healthy, which only slows it down).
"""

from __future__ import annotations

import enum
import hashlib
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace

from .claims import Claim
from .jobspec import JobSpec, UpdateOrder, UpdatePolicy
from .resources import Resources, total_of

MAX_VERSIONS = 256      # specs remembered by (job, container hash), for reverts


class SlotState(enum.Enum):
    NEW_HEALTHY = "new-healthy"
    NEW_PENDING = "new-pending"
    OLD_SERVING = "old-serving"
    OLD_FAILED = "old-failed"
    OLD_DOWN = "old-down"
    EMPTY = "empty"


UNAVAILABLE = (SlotState.NEW_PENDING, SlotState.OLD_FAILED, SlotState.OLD_DOWN, SlotState.EMPTY)
# A holder's "running" in a record about other claims than the ones held here
# (node.core.rollout_link): no proof that this claim's container runs, but no
# word that it stopped either.  A slot already seen running under the same
# claim stays running (`_observe`); anything else reads it as unknown.
UNVERIFIED = "running-unverified"


@dataclass(frozen=True, slots=True)
class SlotView:
    """One desired slot as gossip shows it: its live claim (None: none, or a
    holder that does not keep it) and whether its holder reports it running,
    or failed (exited, unhealthy, gave up); `known`: False when its holder's
    record says nothing of it here (cut to fit, or about other claims);
    `unverified`: the record lists it running but is about other claims."""

    index: int
    claim: Claim | None
    running: bool
    failed: bool = False
    known: bool = True
    unverified: bool = False     # its holder lists it running, in a record about other claims


@dataclass(frozen=True, slots=True)
class RolloutEvent:
    """A step of a rollout, for the event stream (`kind`: started, replacing,
    moving, healthy, waiting_promotion, promoted, done, failed, reverting,
    revert_impossible).  `slot` is "" for job-wide steps."""

    job: str
    kind: str
    target: str          # the target container hash
    slot: str = ""
    detail: str = ""

    @property
    def name(self) -> str:   # the simulator's trace subject
        return self.job


def running_fingerprint(pairs: Iterable[tuple[int, int]]) -> int:
    """A 3-byte fingerprint of (index, ballot round) pairs: a holder publishes
    it with the indices it runs, and an agent trusts "running" only when its
    own claims for those indices give the same (else the record is about
    other claims than the ones it holds: older or newer)."""
    digest = hashlib.blake2b(repr(sorted(pairs)).encode(), digest_size=3).digest()
    return int.from_bytes(digest, "big")


def promoted_of(entry: object) -> str:
    """The container hash a job-store entry says is promoted ("" if none, or
    if the store keeps no such record): its version meta's `promoted`."""
    promoted = getattr(getattr(entry, "meta", None), "promoted", "")
    return promoted if isinstance(promoted, str) else ""


def is_revert(entry: object) -> bool:
    """Was this job-store entry written by an automatic revert (its version
    meta's `why`)?  A revert that fails in turn is not reverted again: going
    back to the version it left would go back to the one that failed."""
    return getattr(getattr(entry, "meta", None), "why", "") == "revert"


def promoted_spec(spec: JobSpec) -> JobSpec:
    """`spec` with its canaries promoted: the same container hash (nothing is
    replaced by the write itself), no canary gate, so the rest follow."""
    return replace(spec, update=replace(spec.update, canary=0))


def classify(view: SlotView, target: str, healthy: bool) -> SlotState:
    """The state of one slot (see the module doc); `healthy`: this agent has
    seen it running on the target for min_healthy_s."""
    claim = view.claim
    if claim is None:
        return SlotState.EMPTY
    if claim.spec_hash == target:
        return SlotState.NEW_HEALTHY if healthy and view.running else SlotState.NEW_PENDING
    if view.running:
        return SlotState.OLD_SERVING
    return SlotState.OLD_FAILED if view.failed else SlotState.OLD_DOWN


def permitted(states: Sequence[SlotState], policy: UpdatePolicy, promoted: bool, revert: bool = False) -> list[int]:
    """Indices whose holders may replace them now (the rule of the module doc;
    `revert`: the target was written by a revert)."""
    budget = policy.max_parallel - sum(1 for s in states if s in UNAVAILABLE)
    gate = len(states) if promoted or policy.canary == 0 else policy.canary
    out_of_turn = (SlotState.OLD_FAILED, SlotState.OLD_DOWN) if revert else (SlotState.OLD_FAILED,)
    out = []
    for index, state in enumerate(states):
        if index >= gate:
            break
        if state in out_of_turn:
            out.append(index)
        elif state is SlotState.OLD_SERVING and budget > 0:
            out.append(index)
            budget -= 1
    return out


def start_first(policy: UpdatePolicy, spec: JobSpec, room_for_both: bool) -> bool:
    """Replace a slot's container start-first (else stop-first)?  Only with
    room for both copies and no host ports (the two could not both bind)."""
    return policy.order is UpdateOrder.START_FIRST and room_for_both and not spec.ports


class HandOvers:
    """The old copies of this node's slots still serving beside their
    replacements (start-first), by slot, with the resources they hold: the
    new claim took the slot's place in the ledger, but the node still runs
    the old copy.  A node may hand several slots of a batch over at once (the
    runtime starts them together), so the room for one more start-first
    must leave every unfinished one its room.  A hand-over ends when this
    node's runtime reports the new copy running (the old one is then
    removed), or when the slot stops here."""

    def __init__(self) -> None:
        self.old: dict[str, Resources] = {}

    def room(self, free: Resources, slot: str) -> Resources:
        """`free` less what the other slots' unfinished hand-overs run."""
        held = total_of(d for s, d in self.old.items() if s != slot)
        return free - held

    def end_running(self, running: Callable[[str], bool]) -> None:
        """Forget the hand-overs whose new copy runs (`running(slot)`)."""
        for slot in [s for s in self.old if running(s)]:
            del self.old[slot]


def revert_target(views: Sequence[SlotView], target: str, states: Sequence[SlotState]) -> str | None:
    """The container hash of the last version that ran healthy: the one most
    OLD_SERVING slots carry (ties: the lowest slot's).  None if none serves."""
    counts: dict[str, int] = {}
    first: dict[str, int] = {}
    for view, state in zip(views, states):
        if state is SlotState.OLD_SERVING and view.claim is not None:
            h = view.claim.spec_hash
            counts[h] = counts.get(h, 0) + 1
            first.setdefault(h, view.index)
    if not counts:
        return None
    return min(counts, key=lambda h: (-counts[h], first[h]))


@dataclass
class JobRollout:
    """What this agent has seen of one job's rollout to `target`."""

    target: str
    started_at: float
    last_progress_at: float
    running_since: dict[int, tuple[tuple[int, str], float]] = field(default_factory=dict)  # index -> (ballot, t)
    serving_since: dict[int, tuple[tuple[int, str], float]] = field(default_factory=dict)  # the same, old version
    claim_seen: dict[int, tuple[tuple[int, str], float]] = field(default_factory=dict)      # target claims
    healthy: set[int] = field(default_factory=set)
    failing: set[int] = field(default_factory=set)     # target slots their holders report failed
    failed: str | None = None
    failed_at: float = 0.0
    states: tuple[SlotState, ...] = ()                 # as of the last pass
    promoted: bool = False
    waiting: bool = False
    reverted: bool = False
    min_healthy_s: float = 0.0
    revert: bool = False                               # the target was written by a revert
    served: set[str] = field(default_factory=set)      # older versions seen serving in this rollout


@dataclass(frozen=True, slots=True)
class Step:
    """One pass over one job: who may be replaced, what to say, what to write."""

    permitted: tuple[int, ...]
    events: tuple[RolloutEvent, ...]
    states: tuple[SlotState, ...]
    revert_to: str | None = None     # the version the old slots serve (None: none serves)
    reverting: bool = False          # a revert is due now, and we are its designated writer


class Rollouts:
    """This agent's rollout memory for every job (bounded by the jobs it has)."""

    def __init__(self) -> None:
        self.jobs: dict[str, JobRollout] = {}

    def forget_others(self, jobs: set[str]) -> None:
        for job in list(self.jobs):
            if job not in jobs:
                del self.jobs[job]

    def next_healthy_at(self) -> float | None:
        """When the first slot seen running but not yet healthy will have
        run for its min_healthy_s (a pass then counts it healthy, and the
        next slots may go at once, not at the next periodic pass)."""
        times = [since + r.min_healthy_s for r in self.jobs.values()
                 for i, (_, since) in r.running_since.items() if i not in r.healthy]
        return min(times) if times else None

    def step(self, job: str, spec: JobSpec, views: Sequence[SlotView], now: float, *,
             may_revert: bool, promoted: bool = False, revertible: bool = True) -> Step:
        """Observe one job's slots at `now` and say what may happen.
        `may_revert`: this agent is the one that writes a revert; `promoted`:
        the job store says an operator promoted this target's canaries;
        `revertible`: False when the target was itself written by a revert
        (`is_revert`): a failed revert is not reverted again (it says so, for
        an operator), and goes on, since it is a revert (module doc)."""
        target = spec.container_hash()
        policy = spec.update
        r = self.jobs.get(job)
        events: list[RolloutEvent] = []
        if r is None or r.target != target:
            if all(v.claim is None or v.claim.spec_hash == target for v in views):
                # Nothing runs another version: no rollout (a new job, or one
                # that never changed).  Jobs that never change stay here.
                self.jobs.pop(job, None)
                return Step((), (), ())
            r = self.jobs[job] = JobRollout(target, now, now, min_healthy_s=policy.min_healthy_s)
            events.append(RolloutEvent(job, "started", target, detail=f"max_parallel {policy.max_parallel}"))
        states = r.states = tuple(self._observe(r, view, target, policy, now, events, job) for view in views)
        r.revert = not revertible
        r.served.update(v.claim.spec_hash for v, s in zip(views, states)
                        if s is SlotState.OLD_SERVING and v.claim is not None)
        if all(s is SlotState.NEW_HEALTHY for s in states):
            del self.jobs[job]
            events.append(RolloutEvent(job, "done", target, detail=f"{len(states)} slots"))
            return Step((), tuple(events), states)
        canaries = states[:policy.canary]
        if policy.canary and not r.promoted:
            if promoted:
                r.promoted = True
                events.append(RolloutEvent(job, "promoted", target, detail="by an operator"))
            elif policy.auto_promote and all(s is SlotState.NEW_HEALTHY for s in canaries):
                r.promoted = True
                events.append(RolloutEvent(job, "promoted", target, detail="canaries healthy (auto_promote)"))
            elif all(s is SlotState.NEW_HEALTHY for s in canaries) and len(states) > policy.canary:
                # Waiting for an operator is not a lack of progress.
                r.last_progress_at = now
                if not r.waiting:
                    r.waiting = True
                    events.append(RolloutEvent(job, "waiting_promotion", target,
                                               detail=f"{policy.canary} canaries healthy"))
        if r.failed is None:
            # No verdict on lack of progress while this agent cannot see some
            # slot: the progress may be there, in a record it lacks.
            complete = all(v.known for v in views if v.claim is not None)
            r.failed = self._deadline(r, policy, now, complete)
            if r.failed is not None:
                r.failed_at = now
                events.append(RolloutEvent(job, "failed", target, detail=r.failed))
        if r.failed is not None:
            # The designated writer reverts at once.  Should it not (it may
            # have started after every slot had moved to the failing version,
            # so it never saw a rollout), any agent that saw this one fail
            # writes it a deadline later: the same spec, so a second write
            # changes nothing that matters.
            late = now - r.failed_at > policy.healthy_deadline_s
            if policy.auto_revert and revertible and (may_revert or late) and not r.reverted:
                r.reverted = True
                return Step((), tuple(events), states, revert_target(views, target, states), reverting=True)
            if revertible:
                return Step((), tuple(events), states)
            # A revert goes on past its verdict (module doc): stopping would
            # leave slots on the version that failed, for good.
        return Step(tuple(permitted(states, policy, r.promoted, revert=not revertible)), tuple(events), states)

    def way_back(self, job: str, lost: Claim | None) -> str | None:
        """The version a slot whose holder no longer keeps it is placed
        again on (None: the job's target): the one its claim `lost` was
        for, when that version served during this rollout (module doc,
        "Lost slots")."""
        r = self.jobs.get(job)
        if r is None or r.revert or lost is None or lost.spec_hash == r.target:
            return None
        return lost.spec_hash if lost.spec_hash in r.served else None

    def _observe(self, r: JobRollout, view: SlotView, target: str, policy: UpdatePolicy, now: float,
                 events: list[RolloutEvent], job: str) -> SlotState:
        claim = view.claim
        i = view.index
        if claim is None or claim.spec_hash != target:
            r.running_since.pop(i, None)
            r.claim_seen.pop(i, None)
            r.healthy.discard(i)
            r.failing.discard(i)
            if claim is None:
                r.serving_since.pop(i, None)
                return classify(view, target, False)
            # An old version's copy serves on the same terms (`_running`):
            # taken for down, it would use up the budget.
            serving = self._running(r.serving_since, view, claim, now)
            return classify(replace(view, running=serving), target, False)
        r.serving_since.pop(i, None)
        ballot = (claim.ballot.round, claim.ballot.coordinator)
        seen = r.claim_seen.get(i)
        if seen is None or seen[0] != ballot:
            r.claim_seen[i] = (ballot, now)
        if view.failed:
            r.failing.add(i)
        else:
            r.failing.discard(i)
        since = r.running_since.get(i)
        running = self._running(r.running_since, view, claim, now)
        if not running or since is None or since[0] != ballot:
            r.healthy.discard(i)
        healthy = running and now - r.running_since[i][1] >= policy.min_healthy_s
        if healthy and i not in r.healthy:
            r.healthy.add(i)
            r.last_progress_at = now
            events.append(RolloutEvent(job, "healthy", target, slot=f"{job}/{i}", detail=claim.node))
        return classify(replace(view, running=running), target, healthy)

    @staticmethod
    def _running(since_by_index: dict[int, tuple[tuple[int, str], float]], view: SlotView, claim: Claim,
                 now: float) -> bool:
        """Is the slot running, as far as this agent knows, and since when
        (`since_by_index`: under which ballot, from when)?  A slot seen running under
        this very claim stays so while its holder still lists it running in
        a record about other claims: its claim for another slot moved, and
        the record and the claim travel apart.  (Resetting would take it for
        down, or not healthy, use up the budget and stall the rollout at
        every move of the holder's other slots.)"""
        ballot = (claim.ballot.round, claim.ballot.coordinator)
        since = since_by_index.get(view.index)
        running = view.running or (view.unverified and since is not None and since[0] == ballot)
        if not running:
            since_by_index.pop(view.index, None)
        elif since is None or since[0] != ballot:
            since_by_index[view.index] = (ballot, now)
        return running

    @staticmethod
    def _deadline(r: JobRollout, policy: UpdatePolicy, now: float, complete: bool) -> str | None:
        for i, (_, seen_at) in sorted(r.claim_seen.items()):
            # Only on evidence (its holder says it failed): a record that is
            # slow to arrive here must not fail a rollout that goes well.
            if i not in r.healthy and i in r.failing and now - seen_at > policy.healthy_deadline_s:
                return f"slot {i} not healthy within {policy.healthy_deadline_s:g} s"
        if complete and now - r.last_progress_at > policy.progress_deadline_s:
            return f"no progress within {policy.progress_deadline_s:g} s"
        return None


def describe(r: JobRollout) -> dict[str, object]:
    """A rollout in progress as this agent sees it, for the API and the CLI."""
    counts: dict[str, int] = {}
    for state in r.states:
        counts[state.value] = counts.get(state.value, 0) + 1
    return {"target": r.target, "slots": [state.value for state in r.states], "counts": counts,
            "failed": r.failed, "waiting_promotion": r.waiting and not r.promoted, "promoted": r.promoted}


class Versions:
    """Specs this agent has seen, by (job, container hash), bounded, and
    behind them the job's history (`older`, set by the node core: the job's
    earlier versions, newest first; node.core.rollout_link): where a revert
    finds the version it goes back to, even after this agent restarted."""

    def __init__(self, limit: int = MAX_VERSIONS) -> None:
        self.limit = limit
        self._specs: OrderedDict[tuple[str, str], JobSpec] = OrderedDict()
        self.older: Callable[[str], Iterable[JobSpec]] = lambda job: ()

    def remember(self, spec: JobSpec) -> None:
        key = (spec.name, spec.container_hash())
        self._specs[key] = spec
        self._specs.move_to_end(key)
        while len(self._specs) > self.limit:
            self._specs.popitem(last=False)

    def get(self, job: str, container_hash: str) -> JobSpec | None:
        spec = self._specs.get((job, container_hash))
        if spec is None:
            # Not seen since this agent started: the history may have it
            # (parsed once, then remembered).
            spec = next((s for s in self.older(job) if s.container_hash() == container_hash), None)
            if spec is not None:
                self.remember(spec)
        return spec

    def revert_to(self, job: str, target: str, serving: str | None) -> tuple[JobSpec | None, str]:
        """The spec a failed rollout to `target` goes back to: the version the
        old slots serve (`serving`), or when none does any more, the newest
        earlier version in the history; and what to say of it."""
        if serving is not None:
            old = self.get(job, serving)
            missing = f"version {serving[:12]} not known here"
        else:
            old = next((s for s in self.older(job) if s.container_hash() != target), None)
            missing = "no slot runs an older version, and the job history has none"
        return old, (f"back to {old.container_hash()[:12]}" if old is not None else missing)
