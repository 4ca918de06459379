"""The container runtime: what the node core says to run, made real on Docker.

How this works
--------------
The node core emits `StartReplica(claim, spec)` and `StopReplica(slot,
reason)`.  The agent hands them to a runtime's `start(claim, spec)` and
`stop(slot, reason)`, which are plain, non-blocking calls: they only record
the *desired* state (slot -> claim + spec) and wake the reconcile loop.  All
Docker work happens in `run()`, a task the agent starts in its nursery:

    start()/stop() ─┐
    docker events ──┼──> kick ──> RECONCILE PASS ──> docker calls (threads,
    every 5 s ──────┘              (one at a time)     bounded, timed out)

A reconcile pass lists the containers carrying our `shoal.node` label and
hands them, with the desired replicas and each slot's restart bookkeeping,
to `decision.decide`: that pure function holds every rule (adoption grace,
stale ballots, rolling replacement, restart policy, backoff, crash loops,
giving up; see node/runtime/decision.py).  This driver only carries out the
actions it returns: engine calls run as background tasks, so one slow
`docker start` does not hold back the next slot, and a slot or container
with a call in flight is `busy` for the next passes until the call ended.
`GiveUp` calls `on_give_up(slot, reason)` once (the agent connects it to
the node core's `ReplicaGaveUp` input); a start also gives up when the image is not
here, when the node's container policy (`policy`, the agent's
`[containers]` table) does not allow what the spec asks (the bidder
declines such jobs, this is the second line of defence), when the claim
gives one of the job's ports no host port, and when Docker refuses the start
for a reason the node cannot mend: a host port something else holds, no such
network (node/runtime/network.py: `start_refusal`).  The bookkeeping is
reset when `start()` brings a new ballot or spec.

A slot is "running" (`slot_states`, what the agent publishes and the service
catalog lists) only once its container is up and, if it has a health check,
Docker says it is healthy; until then it is "starting".

The rest is split by concern: containers.py (names, labels, HostConfig,
reading listings back), network.py (network mode, ports, DNS, the
replica's `SHOAL_*` variables), engine.py (bounded, timed-out calls; engine
health: `on_health` is called when it flips), events.py (`docker events`),
logs.py (log streams), exec.py (`shoal exec`: a command in a running
container), exec_session.py (`shoal exec -i/-t`: one with stdin and a
terminal), files.py (jobs' files written on the node and bind-mounted;
those no desired replica uses are cleared every FILES_COLLECT_INTERVAL_S).

Images: `image_present(image)` answers from a set of the engine's local
image tags, listed again after every image event (ours or by hand), every
`images_resync_interval_s` (30 s) otherwise, and before a start gives up on
a missing image (so it never blocks the caller).  With
`pull_images` (the agent sets it) a start pulls the image as the job's
`pull` says (node/runtime/pulls.py: bounded, deduplicated, progress to
`on_pull`); a failed pull gives the slot up here with the registry's message.
"""

from __future__ import annotations

import collections
import inspect
import logging
import math
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import trio

from auction.claims import Claim, ballot_label
from auction.container_policy import SAFE_POLICY, ContainerPolicy
from auction.placement import normalize_image
from auction.spec import ImageSource, JobSpec, PullPolicy
from node.runtime import docker_actions
from node.runtime.config import DockerRuntimeConfig
from node.runtime.exec import ExecResult, run_in_container
from node.runtime.exec_session import ExecSession, open_session
from node.runtime.files import FileStore
from node.runtime.containers import (
    LABEL_SLOT,
    Desired,
    container_name,
    local_images,
    node_filter,
    observed,
    ps_row,
)
from node.runtime.decision import (
    Adopt,
    DesiredReplica,
    GiveUp,
    ObservedContainer,
    Remove,
    Replace,
    Restart,
    RollingView,
    SlotBook,
    Start,
    Stop,
    decide,
    rolling_allowed,
    slot_sort_key,
    slot_state,
    start_failed,
)
from node.runtime.engine import (
    Engine,
    EngineError,
    RuntimeProblem,
    is_benign_race,
    is_not_found,
)
from node.runtime.events import EventPump, ImageWatch
from node.runtime.interface import Runtime
from node.runtime.logs import stream_logs
from node.runtime.network import gateway_of
from node.runtime.pulls import Puller
from node.telemetry import slot_trace

# Names other modules and tests import from here.
__all__ = ["DockerRuntime", "DockerRuntimeConfig", "EngineError", "RollingView", "Runtime", "RuntimeProblem",
           "container_name", "normalize_image", "rolling_allowed"]

log = logging.getLogger("shoal.runtime")

# After a die/oom event, list again this soon (the engine may lag its own event).
DIE_RECHECK_S = 0.2
MAX_EVENT_HISTORY = 256
MAX_PENDING_CALLBACKS = 1024
FILES_COLLECT_INTERVAL_S = 60.0     # how often unused job files are looked for (node.runtime.files)


class DockerRuntime:
    """Runs this node's replicas as Docker containers (see the module doc)."""

    kind = "docker"

    def __init__(self, node: str, cfg: DockerRuntimeConfig | None = None, *,
                 on_give_up: Callable[[str, str], Any] | None = None,
                 on_health: Callable[[bool, str], Any] | None = None,
                 client_factory: Callable[..., Any] | None = None,
                 policy: ContainerPolicy = SAFE_POLICY,
                 auth_for: Callable[[str], dict[str, str] | None] | None = None,
                 on_pull: Callable[[dict[str, Any]], Any] | None = None) -> None:
        self.node = node
        self.cfg = cfg or DockerRuntimeConfig()
        self.policy = policy        # what jobs may ask of this node's containers
        self.on_give_up = on_give_up
        self.on_health = on_health
        self.engine = Engine(self.cfg, on_change=self._health_changed, client_factory=client_factory)
        self._rules = self.cfg.rules()
        self.puller = Puller(self.engine, node, max_concurrent=self.cfg.max_concurrent_pulls,
                             timeout_s=self.cfg.pull_timeout_s, auth_for=auth_for, note=self._note,
                             on_progress=None if on_pull is None else lambda ev: self._callback(on_pull, ev))
        self._desired: dict[str, Desired] = {}
        # Jobs' files on this node (node.runtime.files); those no desired replica uses go now and then.
        self.files = FileStore(None if self.cfg.files_dir is None else Path(self.cfg.files_dir))
        self._files_collected_at = -math.inf
        self._slots: dict[str, SlotBook] = {}
        self._actual: dict[str, ObservedContainer] = {}    # id -> container, from the last pass
        self._images, self._image_ids = set[str](), set[str]()  # local tags, ids
        self._images_known = False
        self._images_at: float | None = None        # when the image list was last refreshed
        self._started_at: float | None = None
        self._synced = False
        self._kick = trio.Event()
        self.states_changed = trio.Event()         # set (and replaced) when slot_states() moved
        self._last_states: dict[str, tuple[str, str]] = {}
        self._wakeups: set[float] = set()           # backoff deadlines (trio clock)
        self._events = EventPump(self.engine, node, self.kick)
        self._image_watch = ImageWatch(self.engine, node, self._images_stale)
        self._events_seen = self._passes = 0
        self._history: collections.deque = collections.deque(maxlen=MAX_EVENT_HISTORY)
        self._pending_callbacks: collections.deque = collections.deque(maxlen=MAX_PENDING_CALLBACKS)
        self._callback_wake = trio.Event()
        self._ready = trio.Event()
        self._actions: trio.Nursery | None = None   # where actions run (set by run())
        self._inflight: set[str] = set()            # action keys ("slot:..", "ctr:..") being acted on
        self._key_done: set[str] = set()            # ... finished since the current pass began

    # ---- the interface the agent calls (non-blocking) ----

    def start(self, claim: Claim, spec: JobSpec, replaces: tuple[str, ...] = (), adopt_only: bool = False) -> None:
        """Run replica `claim.name` of `spec` here (replacing an older ballot or spec; rules 2 and 5)."""
        slot = claim.name
        new = Desired(claim, spec, DesiredReplica(claim.job, ballot_label(claim), spec.container_hash(),
                                                  spec.restart, replaces, adopt_only))
        old = self._desired.get(slot)
        self._desired[slot] = new
        if old is None or old.ballot != new.ballot or old.spec_hash != new.spec_hash:
            self._slots[slot] = SlotBook()
        self._note(f"{'adopt' if adopt_only else 'start'} {slot} ballot {new.ballot} spec {new.spec_hash[:12]}")
        self.kick()

    def stop(self, slot: str, reason: str) -> None:
        """Stop and remove replica `slot` here."""
        if self._desired.pop(slot, None) is not None:
            self._note(f"stop {slot}: {reason}")
        self._slots.pop(slot, None)
        self.kick()

    def desired_complete(self) -> None:
        """The agent has replayed every claim it holds: containers not desired
        may be removed from now on (ends the adoption grace early)."""
        self._synced = True
        self.kick()

    def kick(self) -> None:
        self._kick.set()

    def _images_stale(self) -> None:
        self._images_at = None  # an image event: list them in the next pass
        self.kick()

    def health(self) -> tuple[bool, str]:
        return self.engine.health.healthy, self.engine.health.reason

    def image_present(self, image: str) -> bool:
        """Is `image` in the engine's local store (as of the last pass)?"""
        if image.startswith("sha256:"):
            return image in self._image_ids
        return normalize_image(image) in self._images

    def image_problem(self, image: str) -> str | None:
        """Why this node cannot run `image` now (for a bid decline), or None."""
        if self.image_present(image) or self.cfg.pull_images:
            return None
        return f"image {image} is not on node {self.node} (and pulling is off)"

    def images(self) -> frozenset[str] | None:
        """The engine's local images (normalized tags, digests and ids) as of
        the last refresh, for the core's bids (a missing one costs a pull, or
        is declined for pull = never); None while unknown."""
        if not self._images_known:
            return None
        return frozenset(self._images | self._image_ids)

    idle_poll_s = 5.0  # all slots running, no pull: how often the agent reads our snapshots unwoken
    def slot_states(self) -> dict[str, tuple[str, str]]:
        """Every desired slot -> (state, reason), from the last pass:
        running (its current container is up and, if it has a health check,
        healthy), starting (no container yet, being created, an older-spec
        container still being replaced, or up but its health check has not
        passed yet: reason HEALTH_PENDING), failed (exited non-zero or
        unhealthy and waiting for its restart, or given up here), exited
        (stopped for good, as its restart policy says)."""
        by_slot: dict[str, list[ObservedContainer]] = collections.defaultdict(list)
        for c in self._actual.values():
            by_slot[c.slot].append(c)
        return {slot: slot_state(self._slots.get(slot), [c for c in by_slot.get(slot, ()) if c.ballot == want.ballot
                                                          and c.spec_hash == want.spec_hash],
                                 self.puller.describe(want.spec.image) or "", want.replica.adopt_only)
                for slot, want in self._desired.items()}

    def slot_rounds(self) -> dict[str, int]:
        """Slot -> the ballot round of the claim its `slot_states()` entry is about."""
        return {slot: want.claim.ballot.round for slot, want in self._desired.items()}

    def _states_moved(self) -> None:
        """After a listing: wake `states_changed` if slot_states() moved."""
        states, was = self.slot_states(), self._last_states
        if states != was:
            for slot in sorted(s for s, (st, _) in states.items() if st == "running" != was.get(s, ("",))[0]):
                slot_trace.step(slot, "running", self.node)
            self._last_states = states
            self.states_changed.set()
            self.states_changed = trio.Event()

    def desired(self) -> dict[str, Claim]:
        return {slot: d.claim for slot, d in self._desired.items()}

    def stats(self) -> dict[str, Any]:
        running = {slot: {"ballot": self._desired[slot].ballot} for slot, (state, _) in self.slot_states().items()
                   if state == "running"}
        h = self.engine.health
        return {"kind": self.kind, "docker_host": self.cfg.docker_host, "healthy": h.healthy,
                "reason": h.reason, "desired": len(self._desired), "running": running,
                "containers": len(self._actual), "passes": self._passes,
                "events_seen": self._events_seen, "events_dropped": self._events.dropped,
                "lingering_threads": self.engine.lingering, "engine_failures_in_row": h.failures_in_row}

    def history(self) -> list[str]:
        return list(self._history)

    # ---- health and callbacks ----

    def _health_changed(self, healthy: bool, reason: str) -> None:
        self._note(f"unhealthy: {reason}" if not healthy else "healthy again")
        self._callback(self.on_health, healthy, reason)

    def _callback(self, fn, *args) -> None:
        if fn is not None:
            self._pending_callbacks.append((fn, args))
            self._callback_wake.set()

    async def _run_callbacks(self) -> None:
        while True:
            await self._callback_wake.wait()
            self._callback_wake = trio.Event()
            while self._pending_callbacks:
                fn, args = self._pending_callbacks.popleft()
                try:
                    result = fn(*args)
                    if inspect.isawaitable(result):
                        await result
                except Exception:  # a callback bug must not stop the runtime
                    log.exception("runtime callback %r failed", fn)

    def _note(self, text: str) -> None:
        self._history.append(f"{time.strftime('%H:%M:%S')} {text}")

    # ---- the loops ----

    async def run(self, *, task_status=trio.TASK_STATUS_IGNORED) -> None:
        """The runtime's tasks: reconcile loop, events thread, callbacks.
        Returns only when cancelled."""
        self._started_at = trio.current_time()
        self.engine.open()
        try:
            async with trio.open_nursery() as nursery:
                self._actions = nursery
                nursery.start_soon(self._run_callbacks)
                nursery.start_soon(self._consume_events)
                nursery.start_soon(self._image_watch.run)
                self._events.start(trio.lowlevel.current_trio_token())
                nursery.start_soon(self._reconcile_loop)
                task_status.started()
                await trio.sleep_forever()
        finally:
            self._events.close()
            self.engine.close()

    async def wait_ready(self) -> None:
        """Until the first reconcile pass completed (or failed)."""
        await self._ready.wait()

    async def _reconcile_loop(self) -> None:
        next_full = self._files_collected_at = trio.current_time()
        while True:
            wake = min([next_full, *self._wakeups]) if self._wakeups else next_full
            with trio.move_on_at(wake):
                await self._kick.wait()
                await trio.sleep(self.cfg.kick_debounce_s)
            self._kick = trio.Event()
            now = trio.current_time()
            self._wakeups = {w for w in self._wakeups if w > now}
            try:
                await self.reconcile_once()
            except EngineError as e:
                log.debug("reconcile pass aborted: %s", e)
            except RuntimeProblem as e:
                log.warning("reconcile pass: %s", e)
            finally:
                self._ready.set()
            next_full = trio.current_time() + self.cfg.resync_interval_s
            if next_full - self._files_collected_at >= FILES_COLLECT_INTERVAL_S:
                self._files_collected_at = next_full
                await self._collect_files()

    async def _collect_files(self) -> None:
        keep = {f.digest() for d in self._desired.values() for f in d.spec.files}
        try:
            gone = await trio.to_thread.run_sync(self.files.collect, keep)
        except OSError as e:
            log.warning("cannot clear unused job files: %s", e)
            return
        if gone:
            self._note(f"removed {gone} job file(s) no replica here uses")

    async def _consume_events(self) -> None:
        async for ev in self._events.recv:
            self._events_seen += 1
            action = str(ev.get("Action") or ev.get("status") or "")
            if action.startswith(("die", "start", "health_status", "destroy", "oom", "kill")):
                attrs = (ev.get("Actor") or {}).get("Attributes") or {}
                slot = attrs.get(LABEL_SLOT, "?")
                if action.startswith(("die", "health_status: unhealthy", "oom")):
                    extra = f" exit {attrs['exitCode']}" if "exitCode" in attrs else ""
                    self._note(f"event {slot}: {action}{extra}")
                    # dockerd 20.10 may still list the container as running
                    # when it sends `die`: look again shortly, or the restart
                    # would wait for the next periodic pass.
                    self._wakeups.add(trio.current_time() + DIE_RECHECK_S)
                self.kick()

    # ---- reconcile ----

    async def _list(self) -> list[ObservedContainer]:
        return observed(await self.engine.call("ps", self.engine.api.containers, all=True,
                                               filters=node_filter(self.node)))

    async def _refresh_images(self) -> None:
        tags, ids = local_images(await self.engine.call("images", self.engine.api.images))
        if (tags, ids) != (self._images, self._image_ids) or not self._images_known:
            self.states_changed.set()  # images() moved
            self.states_changed = trio.Event()
        self._images, self._image_ids, self._images_known = tags, ids, True
        self._images_at = trio.current_time()

    async def reconcile_once(self) -> None:
        """One full pass: list, decide, and launch the actions.  Actions run
        as background tasks (threads bounded by the limiter) and a pass never
        waits for them; a slot or container with an action in flight -- or
        one that finished after this pass's listing -- is left for the next pass."""
        self._passes += 1
        self._key_done.clear()
        if self._images_at is None or trio.current_time() - self._images_at >= self.cfg.images_interval_s():
            await self._refresh_images()
        containers = await self._list()
        self._actual = {c.id: c for c in containers}
        self._states_moved()
        decision = decide({slot: d.replica for slot, d in self._desired.items()}, containers, self._slots,
                          trio.current_time(), rules=self._rules, busy=self._inflight | self._key_done,
                          started_at=self._started_at, synced=self._synced)
        self._slots = dict(decision.books)
        self._wakeups.update(decision.wakeups)
        for text in decision.notes:
            self._note(text)

        for action in decision.actions:
            if isinstance(action, Adopt):
                continue    # the container runs: nothing to do at the engine
            if isinstance(action, GiveUp):
                self._tell_give_up(action.slot, action.reason)
                continue
            key = action.key
            if key in self._inflight:
                continue
            self._inflight.add(key)
            act = self._carry_out(action)
            if self._actions is not None:
                self._actions.start_soon(self._guarded, key, act)
            else:   # called outside run(): do it here
                await self._guarded(key, act)

    def _carry_out(self, action: Start | Replace | Restart | Remove | Stop) -> Callable[[], Awaitable[None]]:
        """The engine calls for one action, as a coroutine function."""
        if isinstance(action, Remove):
            return lambda: docker_actions.remove(self, action.container, action.why)
        if isinstance(action, Stop):
            return lambda: docker_actions.stop(self, action.container, action.why)
        # Slot actions act for the start() and bookkeeping of this pass; both
        # may be replaced (start(), stop()) while the engine call runs.
        slot, want, book = action.slot, self._desired[action.slot], self._slots[action.slot]
        if isinstance(action, Restart):
            return lambda: self._backing_off(slot, want, book, docker_actions.restart(
                self, slot, want, book, action.container, action.counts))
        return lambda: self._backing_off(slot, want, book, docker_actions.start(self, slot, want, book))

    async def _backing_off(self, slot: str, want: Desired, book: SlotBook, act: Awaitable[None]) -> None:
        """A (re)start the engine failed waits its backoff (decision.start_failed)."""
        try:
            await act
        except (EngineError, RuntimeProblem):
            if self._desired.get(slot) is want:
                failed = start_failed(book, trio.current_time(), self._rules)
                self._update_book(slot, book, failed)
                self._wakeups.add(failed.not_before)
            raise

    async def _guarded(self, key: str, act: Callable[[], Awaitable[None]]) -> None:
        try:
            await act()
        except EngineError as e:
            log.debug("%s", e)
        except RuntimeProblem as e:
            # Another call got to the container first (removed, gone, stopped): expected.
            log.log(logging.DEBUG if is_benign_race(e) else logging.WARNING, "%s", e)
        finally:
            self._inflight.discard(key)
            self._key_done.add(key)
            self.kick()

    async def bridge_gateway(self) -> str | None:
        """The address of the engine's bridge network on this host (its
        gateway: where the node's bridge containers reach the host, e.g. the
        agent's DNS), or None if the engine has no bridge network."""
        try:
            network = await self.engine.call("network inspect", self.engine.api.inspect_network, "bridge")
        except RuntimeProblem as e:
            if is_not_found(e) or "not found" in str(e):
                return None
            raise
        return gateway_of(network)

    def use_dns(self, servers: tuple[str, ...], search: tuple[str, ...], stack_domain: str = "") -> None:
        """Bridge containers created from now on resolve with `servers` and
        `search` (e.g. the agent's DNS on `bridge_gateway()`, `service.shoal`),
        a stack's job with STACK.`stack_domain` before them (`stack.shoal`);
        running ones keep what they were created with."""
        self.cfg = replace(self.cfg, dns_servers=tuple(servers), dns_search=tuple(search),
                           dns_stack_domain=stack_domain)
        self._note(f"dns: servers {', '.join(servers) or 'default'}, search {', '.join(search) or 'default'}"
                   + (f" (a stack's jobs: STACK.{stack_domain} first)" if stack_domain else ""))

    def _tell_give_up(self, slot: str, reason: str) -> None:
        self._note(f"{slot}: giving up here: {reason}")
        log.warning("slot %s gives up on %s: %s", slot, self.node, reason)
        self._callback(self.on_give_up, slot, reason)

    def _update_book(self, slot: str, was: SlotBook, new: SlotBook) -> None:
        """Keep `new` only if the slot still has the bookkeeping the action began with."""
        if self._slots.get(slot) is was:
            self._slots[slot] = new

    # ---- actions: node.runtime.docker_actions ----

    async def image_ready(self, spec: JobSpec) -> str | None:
        """Have the spec's image here, pulling it as its `pull` says; None
        when it is here, else why not."""
        image, pulls = spec.image, self.cfg.pull_images and spec.pull is not PullPolicy.NEVER
        always = pulls and spec.pull is PullPolicy.ALWAYS
        if not always:
            if not self.image_present(image):
                await self._refresh_images()    # loaded since the last refresh?
            if self.image_present(image):
                return None
            if not pulls:
                never = " (pull = never)" if spec.pull is PullPolicy.NEVER else ""
                return f"image {image} is not on node {self.node}{never}"
        problem = await self.puller.ensure(image, always=always, prefer_peers=spec.source is ImageSource.PEERS)
        await self._refresh_images()
        if problem is None and not self.image_present(image):
            problem = f"image {image} is not on node {self.node} after its pull"
        return problem

    # ---- listing and logs ----

    async def ps(self) -> list[dict[str, Any]]:
        """Our containers as the engine lists them now, with the slot's restart
        state and (for the slot's current container) its host ports by label."""
        containers = sorted(await self._list(), key=lambda c: (slot_sort_key(c.slot), c.created))
        return [ps_row(self.node, c, self._desired.get(c.slot), self._slots.get(c.slot)) for c in containers]

    def slot_status(self, slot: str) -> dict[str, Any] | None:
        st = self._slots.get(slot)
        if st is None:
            return None
        return {"restarts": st.restarts, "gave_up": st.gave_up, "done": st.done,
                "last_exit": st.last_exit, "restart_times": list(st.restart_times)}

    async def _container_for(self, slot: str) -> ObservedContainer | None:
        cs = [c for c in await self._list() if c.slot == slot]
        if not cs:
            return None
        want = self._desired.get(slot)
        cs.sort(key=lambda c: (not (want and c.ballot == want.ballot and c.spec_hash == want.spec_hash),
                               not c.running, -c.created))
        return cs[0]

    async def _running_container(self, slot: str) -> ObservedContainer:
        """LookupError: no container of the slot here; ValueError: it is not running."""
        c = await self._container_for(slot)
        if c is None:
            raise LookupError(f"no container for {slot} on {self.node}")
        if not c.running:
            raise ValueError(f"{slot}'s container on {self.node} is {c.state or 'not running'}")
        return c

    async def exec(self, slot: str, command: list[str], timeout_s: float) -> ExecResult:
        """Run `command` in the slot's running container (node.runtime.exec)."""
        c = await self._running_container(slot)
        return await run_in_container(self.engine, c.id, slot, command, timeout_s)

    async def exec_session(self, slot: str, command: list[str], *, tty: bool, cols: int = 0,
                           rows: int = 0) -> ExecSession:
        """Start `command` in the slot's running container with stdin (and a
        TTY), for `shoal exec -i/-t` (node.runtime.exec_session)."""
        c = await self._running_container(slot)
        return await open_session(self.engine, c.id, command, tty=tty, cols=cols, rows=rows)

    async def logs(self, slot: str, follow: bool = False, tail: int | str = "all") -> AsyncIterator[bytes]:
        """The output (stdout and stderr) of the slot's container, as chunks.
        With follow, goes on until the container stops or the caller stops
        iterating.  Raises LookupError if the slot has no container here."""
        async for chunk in await self.open_logs(slot, follow, tail):
            yield chunk

    async def open_logs(self, slot: str, follow: bool = False, tail: int | str = "all", *,
                        since_s: float | None = None, timestamps: bool = False) -> AsyncIterator[bytes]:
        """Find the slot's container now (LookupError if there is none here),
        then return the stream of its output: the API can answer 404 before
        it starts a streaming response."""
        c = await self._container_for(slot)
        if c is None:
            raise LookupError(f"no container for {slot} on {self.node}")
        return stream_logs(self.engine, c.id, slot, follow, tail, since_s, timestamps)
