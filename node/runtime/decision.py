"""What the runtime does about its containers, as a pure function.

How this works
--------------
The Docker driver (node/runtime/docker.py) gathers what it knows -- the
*desired* replicas (slot -> ballot, spec hash, restart policy), the
containers it *observed* with our `shoal.node` label, its per-slot
bookkeeping (`SlotBook`: restarts, backoff, failures) and which slots and
containers still have an engine call in flight (`busy`) -- and asks
`decide(...)`, which answers with the actions to carry out and the new
bookkeeping.  Nothing here talks to Docker or reads a clock: `now` is an
argument, so a pass can be replayed in a test.

The rules, in the order a pass applies them:

  1. A container whose slot is not desired (released, superseded, deleted
     job, or no slot label at all) is removed -- except during the adoption
     grace (`Rules.adopt_grace_s` after the runtime started, until the agent
     says it replayed every claim it holds): an agent that restarted gets
     its claims back within seconds and must not kill what it still owns.
  2. A container whose ballot differs from the desired one is stale (the
     slot was re-awarded) and is removed at once -- unless it has one of the
     ballots the desired replica `replaces` (a rolling update start-first,
     auction.rollout): that one counts as an older-spec container of the
     slot, running until the new one runs (rules 4 and 6).  While a stale
     container of the slot still runs, the slot's new one is not started
     (rule 6 waits): it would take the same host ports, and a rolling
     update stop-first means the old one stops first.
  3. Of the containers with the desired ballot and spec hash, the one
     running (else the newest) is *the* container of the slot; any other is
     a duplicate and removed.
  4. If that container runs and is not unhealthy it is left alone; the first
     pass that sees it so emits `Adopt` (a container found after an agent
     restart, or one we just (re)started) and starts its stable-run clock;
     once it stayed up `Rules.stable_after_s` the backoff starts over.  Old-
     spec containers of the slot are removed once the new one is `ready`
     (its health check, if it has one, passed), so a replacement never
     leaves the slot with nothing that serves.
  5. A slot that gave up here, or whose container exited for good as its
     policy says (`done`), is left alone until the core stops it or starts it
     under a new ballot or spec (the driver then starts a fresh `SlotBook`).
     So is an `adopt_only` slot (a claim the agent read from disk and its
     peers have not confirmed yet, node.core.replay): its container is kept
     if it runs (rule 4), but nothing is started, restarted or counted as
     failed -- the slot may have moved to another node while this one was
     down -- until the full start follows.
  6. A slot with no container of its ballot and spec gets one (`Start`, or
     `Replace` when an older-spec container of the same ballot still runs),
     once its backoff (`not_before`) has passed and no stale container of
     the slot runs (rule 2; its removal's end starts the next pass).  A spec change under the
     same ballot is rolled here, per job one slot at a time
     (`rolling_allowed`); a start-first hand-over from a replaced ballot (a
     rolling update's) is not held back: auction.rollout already paces
     those cluster-wide, max_parallel at once.
  7. A container that was created but never started is started (`Restart`
     with `counts=False`); one restarting, being removed or paused is waited
     for.
  8. A container that exited, or runs but is unhealthy, has *failed* unless
     it exited 0 (unhealthy always counts as failed).  Each failure is
     counted once (`handled` marks the container, status and restart count
     it was counted for).  Then, in order:
       - `Rules.crash_loop_failures` failures within
         `Rules.crash_loop_window_s` -> `GiveUp` (crash loop);
       - the spec's `RestartPolicy.should_restart(failed, restarts)` says no:
         on-failure with attempts exhausted -> `GiveUp`; otherwise the slot
         is `done` (and an unhealthy container is stopped);
       - else the restart waits `backoff_delay_s(consecutive)` (doubling,
         capped), then `Restart`.
     A restart is counted (`count_restart`) only when the engine call
     worked: a failed call is retried as the same restart.
  9. `GiveUp` is said once per slot: the driver tells the agent
     (the node core's `ReplicaGaveUp` input), which releases the slot here.

A start that fails at the engine (the driver reports it: `start_failed`)
backs off per slot, doubling from `Rules.start_backoff_min_s` up to
`Rules.start_backoff_max_s`: rules 6-8 wait for `not_before`, so a node
whose engine refuses every start (no bridge network, say) retries each slot
a few times a minute, not every pass.  The count starts over once the
slot's container is seen running (rule 4).

The engine itself (timeouts, stalls, health): node/runtime/stall.py.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field, replace

from auction.spec import RestartMode, RestartPolicy

# Bounded memories of a slot's failures and restarts (enough for any window
# the crash-loop rule looks at, and for `slot_status`).
FAILURE_MEMORY = 64
RESTART_MEMORY = 32

_STATUS_EXIT_RE = re.compile(r"Exited \((-?\d+)\)")


# ---- inputs -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DesiredReplica:
    """What should run in a slot: the claim's ballot and the spec's hash and
    restart policy (all the policy needs of the claim and spec)."""

    job: str
    ballot: str             # "round/coordinator", as in the `shoal.ballot` label
    spec_hash: str          # JobSpec.container_hash(), as in the `shoal.spec_hash` label
    restart: RestartPolicy = field(default_factory=RestartPolicy)
    replaces: tuple[str, ...] = ()  # start-first: ballots whose containers run until ours does
    adopt_only: bool = False        # keep a running container of it, start nothing (rule 5)


@dataclass(frozen=True, slots=True)
class ObservedContainer:
    """One container with our node label, as the engine listed it."""

    id: str
    name: str
    slot: str
    ballot: str
    spec_hash: str
    state: str              # created, running, paused, restarting, removing, exited, dead
    status: str             # Docker's human text: "Up 3 seconds (healthy)"
    created: int
    image: str
    stop_grace_s: int | None = None     # the job's, from the container's label (None: not said)

    @property
    def health(self) -> str:
        for word in ("unhealthy", "healthy", "health: starting"):
            if f"({word})" in self.status:
                return word.replace("health: ", "")
        return ""

    @property
    def running(self) -> bool:
        return self.state in ("running", "restarting", "paused")

    @property
    def ok(self) -> bool:
        """Up and not unhealthy: left alone (its health check may still be starting)."""
        return self.state == "running" and self.health != "unhealthy"

    @property
    def ready(self) -> bool:
        """Up, and healthy if it has a health check: it serves."""
        return self.ok and self.health != "starting"

    def exit_code(self) -> int | None:
        m = _STATUS_EXIT_RE.search(self.status)
        return int(m.group(1)) if m else None


@dataclass(frozen=True, slots=True)
class SlotBook:
    """A slot's restart bookkeeping on this node, under one ballot and spec."""

    restarts: int = 0                   # restarts on this node under this claim+spec
    consecutive: int = 0                # failures since the last stable run (backoff)
    failures: tuple[float, ...] = ()    # when failures were counted (crash loop)
    not_before: float = 0.0             # backoff: no (re)start before this
    running_since: float | None = None
    gave_up: str | None = None
    done: str | None = None             # exited and the policy says leave it
    last_exit: str = ""
    handled: str | None = None          # which failure was last counted
    restart_times: tuple[float, ...] = ()
    start_failures: int = 0             # engine calls to (re)start it that failed in a row


@dataclass(frozen=True, slots=True)
class Rules:
    """The runtime's own thresholds (DockerRuntimeConfig carries them)."""

    adopt_grace_s: float = 10.0
    crash_loop_failures: int = 5
    crash_loop_window_s: float = 120.0
    stable_after_s: float = 30.0
    start_backoff_min_s: float = 0.5    # a failed start waits this, doubling ...
    start_backoff_max_s: float = 30.0   # ... up to this


# ---- actions ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Start:
    """Create and start the slot's container (giving up if its image is not here)."""

    slot: str

    @property
    def key(self) -> str:
        return slot_key(self.slot)


@dataclass(frozen=True, slots=True)
class Replace:
    """Start the slot's new-spec container while its old-spec ones (`old`
    container ids) still run; they are removed once the new one runs."""

    slot: str
    old: tuple[str, ...]

    @property
    def key(self) -> str:
        return slot_key(self.slot)


@dataclass(frozen=True, slots=True)
class Restart:
    """Start the slot's stopped (or restart its unhealthy) container.
    `counts`: a restart the policy counts (False for a created, never
    started container)."""

    slot: str
    container: ObservedContainer
    counts: bool = True

    @property
    def key(self) -> str:
        return slot_key(self.slot)


@dataclass(frozen=True, slots=True)
class Remove:
    """Stop (if running) and remove a container."""

    container: ObservedContainer
    why: str

    @property
    def key(self) -> str:
        return container_key(self.container.id)


@dataclass(frozen=True, slots=True)
class Stop:
    """Stop a container but keep it (unhealthy, and its policy says no restart)."""

    container: ObservedContainer
    why: str

    @property
    def key(self) -> str:
        return container_key(self.container.id)


@dataclass(frozen=True, slots=True)
class Adopt:
    """The slot's current container is seen running for the first time under
    this bookkeeping: nothing to do at the engine."""

    slot: str
    container: ObservedContainer

    @property
    def key(self) -> str:
        return slot_key(self.slot)


@dataclass(frozen=True, slots=True)
class GiveUp:
    """This node gives up on the slot (tell the core: `ReplicaGaveUp`)."""

    slot: str
    reason: str

    @property
    def key(self) -> str:
        return slot_key(self.slot)


Action = Start | Replace | Restart | Remove | Stop | Adopt | GiveUp
# The actions that are engine calls (the others are said, not done).
ENGINE_ACTIONS = (Start, Replace, Restart, Remove, Stop)


def slot_key(slot: str) -> str:
    return "slot:" + slot


def container_key(container_id: str) -> str:
    return "ctr:" + container_id


@dataclass(frozen=True, slots=True)
class Decision:
    actions: tuple[Action, ...]
    books: Mapping[str, SlotBook]       # every slot's bookkeeping after this pass
    wakeups: tuple[float, ...] = ()     # pass again at these times (backoffs ending)
    notes: tuple[str, ...] = ()         # for the runtime's history


# ---- rolling replacement ---------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RollingView:
    """One slot of a job, as the rolling replacement sees it."""

    has_old: bool            # a container of the right ballot but an older spec exists
    has_new: bool            # a container of the current spec exists (or is being made)
    new_running: bool        # ... and it is ready (up, healthy if it has a check)
    # The old containers are of ballots the desired replica `replaces` (a
    # rolling update's start-first hand-over, which auction.rollout paces
    # cluster-wide), not a spec change under the same ballot.
    handover: bool = False


def rolling_allowed(slots: Mapping[str, RollingView]) -> set[str]:
    """Slots of ONE job whose new-spec container may be created now.

    Fresh slots (no old container) are never held back, nor are hand-overs
    (`handover`): a rolling update's holder moves its slot only when
    auction.rollout permits it, and that rule already keeps at most
    max_parallel slots of the job in flight cluster-wide; holding them back
    here too made a node with two slots in one batch replace them one after
    the other, each waiting for its new container's first health check,
    and a batch took twice its time.  Other slots being replaced (a new
    spec under the same ballot, which nothing else paces) go one at a time:
    while some such slot has both an old container and a new one that is
    not ready yet, no other starts; otherwise the lowest-numbered slot that
    still has only an old container may start its new one.  A slot whose new
    container is ready serves: the old one being stopped (up to its stop
    grace, e.g. 5 s for a process that ignores SIGTERM) holds nothing back.
    """
    allowed = {s for s, v in slots.items() if v.handover or (not v.has_old and not v.has_new)}
    if any(v.has_old and v.has_new and not v.new_running and not v.handover for v in slots.values()):
        return allowed
    waiting = sorted((s for s, v in slots.items() if v.has_old and not v.has_new and not v.handover),
                     key=slot_sort_key)
    if waiting:
        allowed.add(waiting[0])
    return allowed


def slot_sort_key(slot: str) -> tuple[str, int]:
    job, _, index = slot.rpartition("/")
    try:
        return job, int(index)
    except ValueError:
        return job, 0


# ---- the decision -----------------------------------------------------------------------


def in_adopt_grace(now: float, started_at: float | None, synced: bool, rules: Rules) -> bool:
    """Must containers nobody wants be kept for now (rule 1)?"""
    return not synced and started_at is not None and now - started_at < rules.adopt_grace_s


def decide(desired: Mapping[str, DesiredReplica], observed: Iterable[ObservedContainer],
           books: Mapping[str, SlotBook], now: float, *, rules: Rules = Rules(),
           busy: AbstractSet[str] = frozenset(), started_at: float | None = None,
           synced: bool = False) -> Decision:
    """One reconcile pass (see the module doc for the rules).

    `busy`: keys (`slot_key`, `container_key`) with an engine call in flight or
    finished since the listing was taken: they are left for the next pass.
    `started_at` / `synced`: when the runtime started and whether the agent
    replayed every claim it holds (the adoption grace)."""
    pass_ = _Pass(now, rules, dict(books))
    grace = in_adopt_grace(now, started_at, synced, rules)

    by_slot: dict[str, list[ObservedContainer]] = defaultdict(list)
    for c in observed:
        by_slot[c.slot].append(c)

    # Rules 1 and 2: containers of slots we do not want, or of stale ballots.
    # A stale container still running holds the slot's start back (rule 6):
    # started beside it, the new one found its host ports taken ("host port
    # 127.0.0.1:21000 is already in use") and the slot left the node, in
    # every stop-first rolling update of a job with ports.
    stopping: set[str] = set()
    for slot, cs in by_slot.items():
        want = desired.get(slot)
        for c in cs:
            stale = want is not None and c.ballot != want.ballot and c.ballot not in want.replaces
            if stale and c.running:
                stopping.add(slot)
            if container_key(c.id) in busy:
                continue
            if want is None:
                if not grace:
                    pass_.act(Remove(c, "not desired here"))
            elif stale:
                pass_.act(Remove(c, f"stale ballot {c.ballot} (now {want.ballot})"))

    # Rule 6's rolling views, per job.
    views: dict[str, dict[str, RollingView]] = defaultdict(dict)
    current: dict[str, list[ObservedContainer]] = {}
    old: dict[str, list[ObservedContainer]] = {}
    for slot, want in desired.items():
        cs = [c for c in by_slot.get(slot, ()) if c.ballot == want.ballot or c.ballot in want.replaces]
        current[slot] = [c for c in cs if c.ballot == want.ballot and c.spec_hash == want.spec_hash]
        old[slot] = [c for c in cs if c.ballot != want.ballot or c.spec_hash != want.spec_hash]
        views[want.job][slot] = RollingView(
            has_old=bool(old[slot]), has_new=bool(current[slot]) or slot_key(slot) in busy,
            new_running=any(c.ready for c in current[slot]),
            handover=bool(old[slot]) and all(c.ballot in want.replaces for c in old[slot]))
    allowed: set[str] = set()
    for job_views in views.values():
        allowed |= rolling_allowed(job_views)

    for slot, want in desired.items():
        if slot_key(slot) in busy:
            continue
        pass_.slot(slot, want, current[slot], old[slot], slot in allowed and slot not in stopping, busy)
    return Decision(tuple(pass_.actions), pass_.books, tuple(pass_.wakeups), tuple(pass_.notes))


class _Pass:
    """The decision being built: actions, notes and bookkeeping so far."""

    def __init__(self, now: float, rules: Rules, books: dict[str, SlotBook]) -> None:
        self.now, self.rules, self.books = now, rules, books
        self.actions: list[Action] = []
        self.wakeups: list[float] = []
        self.notes: list[str] = []

    def act(self, action: Action) -> None:
        self.actions.append(action)

    def slot(self, slot: str, want: DesiredReplica, current: list[ObservedContainer],
             old: list[ObservedContainer], allowed: bool, busy: AbstractSet[str]) -> None:
        now = self.now
        st = self.books.get(slot) or SlotBook()
        self.books[slot] = st
        # Rule 3: the running one (else the newest) is the slot's container.
        cur = sorted(current, key=lambda c: (not c.running, -c.created))
        for extra in cur[1:]:
            if container_key(extra.id) not in busy:
                self.act(Remove(extra, "duplicate"))
        mine = cur[0] if cur else None
        if mine is not None and mine.ok:    # rule 4
            for o in old if mine.ready else ():
                if container_key(o.id) not in busy:
                    self.act(Remove(o, "replaced by the new spec"))
            if st.running_since is None:
                self.books[slot] = replace(st, running_since=now, start_failures=0)
                self.act(Adopt(slot, mine))
            elif now - st.running_since >= self.rules.stable_after_s:
                self.books[slot] = replace(st, consecutive=0)
            return
        if st.gave_up or st.done or want.adopt_only:    # rule 5
            return
        if mine is None:                    # rule 6
            if not allowed:
                return      # rolling: another slot of this job is being replaced; or its stale one stops
            if st.not_before > now:
                self.wakeups.append(st.not_before)
                return
            self.act(Replace(slot, tuple(o.id for o in old)) if old else Start(slot))
            return
        if mine.state == "created":         # rule 7
            if st.not_before > now:
                self.wakeups.append(st.not_before)
                return
            self.act(Restart(slot, mine, counts=False))
            return
        if mine.state in ("restarting", "removing", "paused"):
            return
        self.books[slot] = self.failed(slot, want, st, mine)    # rule 8

    def failed(self, slot: str, want: DesiredReplica, st: SlotBook, c: ObservedContainer) -> SlotBook:
        """The slot's container exited or runs unhealthy: count it, then restart,
        leave it, or give up."""
        now, rules = self.now, self.rules
        unhealthy = c.state == "running"
        code = c.exit_code()
        failed = unhealthy or code != 0
        what = "unhealthy" if unhealthy else (f"exited {code}" if code is not None else c.status or c.state)
        marker = f"{c.id}:{c.status.split(' ')[0]}:{code}:{unhealthy}:{st.restarts}"
        if st.handled != marker:
            # First time we see this failure: count it once.
            failures = (st.failures + (now,))[-FAILURE_MEMORY:] if failed else st.failures
            st = replace(st, handled=marker, running_since=None, last_exit=what, failures=failures)
            policy = want.restart
            recent = [t for t in failures if now - t <= rules.crash_loop_window_s]
            if failed and len(recent) >= rules.crash_loop_failures:
                return self.give_up(slot, st, f"crash loop: {len(recent)} failures within "
                                              f"{rules.crash_loop_window_s:g} s (last: {what})")
            if not policy.should_restart(failed=failed, restarts=st.restarts):
                if failed and policy.policy is RestartMode.ON_FAILURE:
                    return self.give_up(slot, st, f"{what}; restart attempts exhausted "
                                                  f"({st.restarts} of {policy.max_attempts})")
                st = replace(st, done=f"{what} (policy {policy.policy.value}: not restarted)")
                self.notes.append(f"{slot}: {st.done}")
                if unhealthy:
                    self.act(Stop(c, "unhealthy, not restarted"))
                return st
            delay = policy.backoff_delay_s(st.consecutive)
            st = replace(st, consecutive=st.consecutive + 1, not_before=now + delay)
            self.notes.append(f"{slot}: {what}; restart {st.restarts + 1} in {delay:g} s")
        if st.not_before > now:
            self.wakeups.append(st.not_before)
            return st
        self.act(Restart(slot, c))
        return st

    def give_up(self, slot: str, st: SlotBook, reason: str) -> SlotBook:
        self.act(GiveUp(slot, reason))
        return give_up(st, reason)


# ---- bookkeeping the driver updates once an engine call is done -------------------------


HEALTH_PENDING = "health check not passed yet"


def slot_state(book: SlotBook | None, current: Sequence[ObservedContainer], waiting: str,
               adopt_only: bool = False) -> tuple[str, str]:
    """A desired slot's (state, reason) from its bookkeeping and its
    containers on the current ballot and spec (`waiting`: why there is no
    container yet, e.g. a pull's progress; `adopt_only`: rule 5, nothing is
    started yet).  See DockerRuntime.slot_states."""
    if book is not None and book.gave_up:
        return "failed", f"gave up here: {book.gave_up}"
    if any(c.ready for c in current):
        return "running", ""
    if any(c.ok for c in current):
        return "starting", HEALTH_PENDING
    if adopt_only:
        return "starting", "its claim is from before the agent restarted: waiting for peers"
    if book is not None and book.done:
        return "exited", book.done
    if any(c.state in ("exited", "dead") or (c.state == "running" and not c.ok) for c in current):
        what = book.last_exit if book is not None and book.last_exit else current[0].status or "failed"
        restarts = f", {book.restarts} restart{'s' if book.restarts != 1 else ''}" if book and book.restarts else ""
        return "failed", f"{what}{restarts}"
    return "starting", waiting


def count_restart(st: SlotBook, now: float) -> SlotBook:
    """A restart worked: count it (the policy's attempts, `slot_status`)."""
    return replace(st, restarts=st.restarts + 1, restart_times=(st.restart_times + (now,))[-RESTART_MEMORY:])


def give_up(st: SlotBook, reason: str) -> SlotBook:
    """The slot gives up here (also when its image is not on this node)."""
    return replace(st, gave_up=reason)


def start_backoff_s(failures: int, rules: Rules) -> float:
    """The wait after the `failures`-th failed start in a row (1, 2, ...)."""
    doublings = min(max(0, failures - 1), 30)
    return min(rules.start_backoff_min_s * float(2 ** doublings), rules.start_backoff_max_s)


def start_failed(st: SlotBook, now: float, rules: Rules) -> SlotBook:
    """An engine call to create or (re)start the slot's container failed:
    no new try before the backoff ends."""
    n = st.start_failures + 1
    return replace(st, start_failures=n, not_before=max(st.not_before, now + start_backoff_s(n, rules)))
