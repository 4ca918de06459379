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

A reconcile pass lists the containers carrying our `shoal.node` label
(*actual*) and compares them with *desired*, slot by slot:

  * a container whose slot is not desired (released, superseded, deleted job)
    is stopped and removed, except during `adopt_grace_s` after the runtime
    starts: an agent that restarted gets its claims back from its store and
    its peers within seconds, and must not kill what it still owns;
  * a container whose `shoal.ballot` differs from the desired claim's ballot
    is stale (the slot was re-awarded) and is removed;
  * a container with the desired ballot and spec hash is *the* container of
    the slot: if it runs (and is not unhealthy) it is left alone -- this is
    adoption after an agent restart; if it exited or turned unhealthy, the
    restart policy decides (below);
  * a container with the desired ballot but an older spec hash is replaced
    *rolling*: per job, one slot at a time gets its new container, and the
    old one is removed only once the new one runs (`rolling_allowed`);
  * a desired slot with no container gets one (after its backoff, if any).

Containers
----------
Name `shoal-<job>-<index>-<round>` (a suffix is added if that name is taken,
e.g. by a concurrent ballot of another node on a shared engine); labels
`shoal.job`, `shoal.slot`, `shoal.ballot` ("round/coordinator"),
`shoal.node`, `shoal.spec_hash` (the spec's `container_hash()`); network mode
`none`; `nano_cpus` and `mem_limit` from the spec; Docker's own restart policy
`no` (we restart); the json-file log driver capped at 2 x 10 MB; the spec's
health command as Docker's healthcheck, else the image's HEALTHCHECK.

Restart policy
--------------
A container that exited, or that Docker reports unhealthy, has *failed*
unless it exited 0 (unhealthy always counts as failed).  The spec's
`RestartPolicy.should_restart(failed, restarts)` decides; the delay before
restart n+1 is `backoff_delay_s(n)` where n counts failures since the
container last stayed up `stable_after_s`.  A slot gives up on this node
when `on-failure` runs out of attempts, when it failed `crash_loop_failures`
times within `crash_loop_window_s`, or when its image is not here: the
runtime then calls `on_give_up(slot, reason)` once (the agent connects it to
`NodeCore.replica_gave_up`, which releases the slot under a new ballot and
keeps the job off this node for a while), and leaves the slot alone until
the core stops it or starts it with a new claim.

The engine
----------
The `docker` SDK blocks, so every call runs in a worker thread
(`trio.to_thread.run_sync`) under a `CapacityLimiter` (`concurrency`), and
the awaiting side gives up after `call_timeout_s` (`trio.fail_after`; the
SDK's own HTTP timeout is bounded too, so an abandoned thread ends soon
after).  Threads still running after their caller gave up are counted in
`stats()["lingering_threads"]`.  The Engine API version is pinned
(`api_version`, default 1.41 = dockerd 20.10).  Timeouts and connection
errors count as engine failures; `failure_threshold` in a row mark the
runtime unhealthy (`health()` -> (False, reason), and `on_health` is
called), and the first call that works again marks it healthy.  Errors the
engine *answered* with (404, 409, 500 from a container) are not engine
failures.  Nothing in this module blocks the trio thread.

`docker events` (filtered to our node label) runs in its own thread that
reconnects with backoff; events go through a bounded channel to the
reconcile loop (an overflow just forces a full pass) and the thread is
closed from trio on shutdown by closing its HTTP stream.

Images: `image_present(image)` answers from a set of the engine's local
image tags, refreshed at most every `resync_interval_s` and before a start
gives up on a missing image (so it never blocks the caller); an image
not there is pulled only if `pull_images` is set (no registry here: off by
default).
"""

from __future__ import annotations

import collections
import hashlib
import inspect
import logging
import os
import re
import threading
import time
from dataclasses import dataclass, field
from typing import Any, AsyncIterator, Awaitable, Callable, Protocol

import trio

from auction.claims import Claim
from auction.spec import JobSpec, RestartMode
from auction.placement import normalize_image  # noqa: F401 -- one rule for the runtime and the bidder

log = logging.getLogger("shoal.runtime")

API_VERSION = "1.41"
# After a die/oom event, list again this soon (the engine may lag its own event).
DIE_RECHECK_S = 0.2
LABEL_JOB = "shoal.job"
LABEL_SLOT = "shoal.slot"
LABEL_BALLOT = "shoal.ballot"
LABEL_NODE = "shoal.node"
LABEL_SPEC = "shoal.spec_hash"

EVENT_QUEUE_DEPTH = 256
LOG_QUEUE_DEPTH = 64
MAX_EVENT_HISTORY = 256
_STATUS_EXIT_RE = re.compile(r"Exited \((-?\d+)\)")


class EngineError(Exception):
    """A Docker call failed because the engine did not answer (timeout,
    connection refused, broken stream)."""


class RuntimeProblem(Exception):
    """A Docker call was answered with an error (not an engine failure)."""


# ---- the interface ------------------------------------------------------------------


class Runtime(Protocol):
    """What the agent needs from a container runtime.

    `start` / `stop` are non-blocking: they record what should run and return.
    `run()` does the work; the agent starts it in its nursery
    (`await nursery.start(runtime.run)`).
    """

    def start(self, claim: Claim, spec: JobSpec) -> None: ...

    def stop(self, slot: str, reason: str) -> None: ...

    def health(self) -> tuple[bool, str]: ...

    def image_present(self, image: str) -> bool: ...

    def images(self) -> frozenset[str] | None: ...

    def slot_states(self) -> dict[str, tuple[str, str]]: ...

    async def ps(self) -> list[dict[str, Any]]: ...

    def logs(self, slot: str, follow: bool = False, tail: int | str = "all") -> AsyncIterator[bytes]: ...

    async def open_logs(self, slot: str, follow: bool = False, tail: int | str = "all") -> AsyncIterator[bytes]: ...

    async def run(self, *, task_status=trio.TASK_STATUS_IGNORED) -> None: ...


# ---- configuration and pure helpers ---------------------------------------------------


DEFAULT_DOCKER_HOST = "unix:///var/run/docker.sock"


def default_docker_host() -> str:
    """$SHOAL_DOCKER_HOST if set (the testbed gives each agent its own
    dockerd this way), else Docker's default socket."""
    return os.environ.get("SHOAL_DOCKER_HOST") or DEFAULT_DOCKER_HOST


@dataclass(frozen=True, slots=True)
class DockerRuntimeConfig:
    docker_host: str = field(default_factory=default_docker_host)
    api_version: str = API_VERSION
    call_timeout_s: float = 10.0        # each call, from the awaiting side
    pull_timeout_s: float = 300.0
    concurrency: int = 8                # worker threads for docker calls
    stream_concurrency: int = 16        # worker threads for log streams
    resync_interval_s: float = 5.0      # periodic full pass
    kick_debounce_s: float = 0.02       # coalesce bursts of events into one pass
    adopt_grace_s: float = 10.0         # never remove undesired containers this soon after start
    stop_timeout_s: int = 5             # SIGTERM grace before Docker sends SIGKILL
    failure_threshold: int = 3          # engine failures in a row -> unhealthy
    crash_loop_failures: int = 5        # this many failures ...
    crash_loop_window_s: float = 120.0  # ... within this window -> give up on this node
    stable_after_s: float = 30.0        # up this long: backoff starts over
    pull_images: bool = False           # only where a registry is reachable
    network_mode: str = "none"
    log_max_size: str = "10m"
    log_max_files: int = 2


def container_name(slot: str, round_: int) -> str:
    job, _, index = slot.rpartition("/")
    return f"shoal-{job}-{index}-{round_}"


def ballot_label(claim: Claim) -> str:
    return f"{claim.ballot.round}/{claim.ballot.coordinator}"


def health_config(spec: JobSpec) -> dict[str, Any] | None:
    """Docker's healthcheck for the spec's probe (None: keep the image's)."""
    h = spec.health
    if h is None:
        return None
    ns = 1_000_000_000
    return {"test": ["CMD", *h.command], "interval": int(h.interval_s * ns),
            "timeout": int(h.timeout_s * ns), "retries": int(h.retries),
            "start_period": int(h.start_period_s * ns)}


@dataclass(slots=True)
class RollingView:
    """One slot of a job, as the rolling replacement sees it."""

    has_old: bool            # a container of the right ballot but an older spec exists
    has_new: bool            # a container of the current spec exists
    new_running: bool        # ... and it runs (not unhealthy)


def rolling_allowed(slots: dict[str, RollingView]) -> set[str]:
    """Slots of ONE job whose new-spec container may be created now.

    Fresh slots (no old container) are never held back.  Slots being
    replaced go one at a time: while some slot has both an old container and
    a new one (the new one not running yet, or the old one not removed yet),
    no other replacement starts; otherwise the lowest-numbered slot that still
    has only an old container may start its new one.
    """
    allowed = {s for s, v in slots.items() if not v.has_old and not v.has_new}
    if any(v.has_old and v.has_new for v in slots.values()):
        return allowed
    waiting = sorted((s for s, v in slots.items() if v.has_old and not v.has_new), key=_slot_sort_key)
    if waiting:
        allowed.add(waiting[0])
    return allowed


def _slot_sort_key(slot: str) -> tuple[str, int]:
    job, _, index = slot.rpartition("/")
    try:
        return job, int(index)
    except ValueError:
        return job, 0


# ---- per-slot bookkeeping -------------------------------------------------------------


@dataclass(slots=True)
class _Desired:
    claim: Claim
    spec: JobSpec
    spec_hash: str
    ballot: str


@dataclass(slots=True)
class _SlotState:
    restarts: int = 0                   # restarts on this node under this claim+spec
    consecutive: int = 0                # failures since last stable run (backoff)
    failures: collections.deque = field(default_factory=lambda: collections.deque(maxlen=64))
    not_before: float = 0.0             # backoff: no (re)start before this (trio clock)
    running_since: float | None = None
    gave_up: str | None = None
    done: str | None = None             # exited and the policy says leave it
    last_exit: str = ""
    handled: str | None = None          # which failure we last counted (container, status, restarts)
    restart_times: collections.deque = field(default_factory=lambda: collections.deque(maxlen=32))


@dataclass(slots=True)
class _Container:
    id: str
    name: str
    slot: str
    ballot: str
    spec_hash: str
    state: str              # created, running, paused, restarting, removing, exited, dead
    status: str             # Docker's human text: "Up 3 seconds (healthy)"
    created: int
    image: str

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
        return self.state == "running" and self.health != "unhealthy"

    def exit_code(self) -> int | None:
        m = _STATUS_EXIT_RE.search(self.status)
        return int(m.group(1)) if m else None


# ---- the Docker runtime ---------------------------------------------------------------


class DockerRuntime:
    """Runs this node's replicas as Docker containers (see the module doc)."""

    kind = "docker"

    def __init__(self, node: str, cfg: DockerRuntimeConfig | None = None, *,
                 on_give_up: Callable[[str, str], Any] | None = None,
                 on_health: Callable[[bool, str], Any] | None = None,
                 client_factory: Callable[..., Any] | None = None) -> None:
        self.node = node
        self.cfg = cfg or DockerRuntimeConfig()
        self.on_give_up = on_give_up
        self.on_health = on_health
        self._client_factory = client_factory or _default_client
        self._api = None          # docker.APIClient for calls (bounded HTTP timeout)
        self._stream_api = None   # docker.APIClient for long streams (no read timeout)
        self._limiter = trio.CapacityLimiter(self.cfg.concurrency)
        self._stream_limiter = trio.CapacityLimiter(self.cfg.stream_concurrency)
        self._desired: dict[str, _Desired] = {}
        self._slots: dict[str, _SlotState] = {}
        self._actual: dict[str, _Container] = {}    # id -> container, from the last pass
        self._images: set[str] = set()
        self._image_ids: set[str] = set()
        self._images_known = False
        self._images_at: float | None = None        # when the image list was last refreshed
        self._healthy = True
        self._health_reason = ""
        self._failures_in_row = 0
        self._lingering = 0
        self._lingering_lock = threading.Lock()
        self._started_at: float | None = None
        self._synced = False
        self._kick = trio.Event()
        self._wakeups: set[float] = set()           # backoff deadlines (trio clock)
        self._events_send, self._events_recv = trio.open_memory_channel(EVENT_QUEUE_DEPTH)
        self._event_stream = None
        self._event_thread: threading.Thread | None = None
        self._closing = threading.Event()
        self._events_seen = 0
        self._events_dropped = 0
        self._passes = 0
        self._history: collections.deque = collections.deque(maxlen=MAX_EVENT_HISTORY)
        self._pending_callbacks: collections.deque = collections.deque(maxlen=1024)
        self._callback_wake = trio.Event()
        self._ready = trio.Event()
        self._actions: trio.Nursery | None = None   # where actions run (set by run())
        self._inflight: set[str] = set()            # "slot:<slot>" / "ctr:<id>" being acted on
        self._key_done: set[str] = set()            # ... finished since the current pass began

    # ---- the interface the agent calls (non-blocking) ----

    def start(self, claim: Claim, spec: JobSpec) -> None:
        """Run replica `claim.name` of `spec` here (replacing an older ballot or spec)."""
        slot = claim.name
        new = _Desired(claim, spec, spec.container_hash(), ballot_label(claim))
        old = self._desired.get(slot)
        self._desired[slot] = new
        if old is None or old.ballot != new.ballot or old.spec_hash != new.spec_hash:
            self._slots[slot] = _SlotState()
        self._note(f"start {slot} ballot {new.ballot} spec {new.spec_hash[:12]}")
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

    def health(self) -> tuple[bool, str]:
        return self._healthy, self._health_reason

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
        the last refresh, for the core's bid declines; None while unknown or
        when missing images are pulled (then nothing is declined for it)."""
        if not self._images_known or self.cfg.pull_images:
            return None
        return frozenset(self._images | self._image_ids)

    def slot_states(self) -> dict[str, tuple[str, str]]:
        """Every desired slot -> (state, reason), from the last pass:
        running (its current container is up and not unhealthy), starting
        (no container yet, being created, or an older-spec container still
        being replaced), failed (exited non-zero or unhealthy and waiting
        for its restart, or given up here), exited (stopped for good, as its
        restart policy says)."""
        by_slot: dict[str, list[_Container]] = collections.defaultdict(list)
        for c in self._actual.values():
            by_slot[c.slot].append(c)
        out: dict[str, tuple[str, str]] = {}
        for slot, want in self._desired.items():
            st = self._slots.get(slot)
            current = [c for c in by_slot.get(slot, ()) if c.ballot == want.ballot and c.spec_hash == want.spec_hash]
            if st is not None and st.gave_up:
                out[slot] = ("failed", f"gave up here: {st.gave_up}")
            elif any(c.ok for c in current):
                out[slot] = ("running", "")
            elif st is not None and st.done:
                out[slot] = ("exited", st.done)
            elif any(c.state in ("exited", "dead") or (c.state == "running" and not c.ok) for c in current):
                what = st.last_exit if st is not None and st.last_exit else current[0].status or "failed"
                restarts = f", {st.restarts} restart{'s' if st.restarts != 1 else ''}" if st and st.restarts else ""
                out[slot] = ("failed", f"{what}{restarts}")
            else:
                out[slot] = ("starting", "")
        return out

    def desired(self) -> dict[str, Claim]:
        return {slot: d.claim for slot, d in self._desired.items()}

    def stats(self) -> dict[str, Any]:
        with self._lingering_lock:
            lingering = self._lingering
        running = {slot: {"ballot": self._desired[slot].ballot} for slot, (state, _) in self.slot_states().items()
                   if state == "running"}
        return {"kind": self.kind, "docker_host": self.cfg.docker_host, "healthy": self._healthy, "reason": self._health_reason, "desired": len(self._desired),
                "running": running,
                "containers": len(self._actual), "passes": self._passes,
                "events_seen": self._events_seen, "events_dropped": self._events_dropped,
                "lingering_threads": lingering, "engine_failures_in_row": self._failures_in_row}

    def history(self) -> list[str]:
        return list(self._history)

    # ---- docker calls ----

    async def call(self, what: str, fn: Callable[..., Any], *args: Any, timeout_s: float | None = None,
                   **kwargs: Any) -> Any:
        """Run one blocking SDK call in a worker thread, bounded and timed out."""
        timeout_s = self.cfg.call_timeout_s if timeout_s is None else timeout_s
        box = {"done": False, "abandoned": False}

        def work():
            try:
                return fn(*args, **kwargs)
            finally:
                with self._lingering_lock:
                    box["done"] = True
                    if box["abandoned"]:
                        self._lingering -= 1

        try:
            with trio.fail_after(timeout_s):
                result = await trio.to_thread.run_sync(work, limiter=self._limiter, abandon_on_cancel=True)
        except trio.TooSlowError:
            with self._lingering_lock:
                if not box["done"] and not box["abandoned"]:
                    box["abandoned"] = True
                    self._lingering += 1
            self._engine_failed(f"docker {what} timed out after {timeout_s:g} s")
            raise EngineError(f"docker {what} timed out after {timeout_s:g} s") from None
        except Exception as e:  # noqa: BLE001 -- classified below
            if _answered(e):
                self._engine_ok()
                raise RuntimeProblem(f"docker {what}: {_explain(e)}") from e
            self._engine_failed(f"docker {what} failed: {_explain(e)}")
            raise EngineError(f"docker {what} failed: {_explain(e)}") from e
        self._engine_ok()
        return result

    def _engine_failed(self, reason: str) -> None:
        self._failures_in_row += 1
        if self._failures_in_row >= self.cfg.failure_threshold and self._healthy:
            self._healthy = False
            self._health_reason = f"docker engine not answering: {reason}"
            log.warning("runtime unhealthy: %s", self._health_reason)
            self._note(f"unhealthy: {reason}")
            self._callback(self.on_health, False, self._health_reason)
        elif not self._healthy:
            self._health_reason = f"docker engine not answering: {reason}"

    def _engine_ok(self) -> None:
        self._failures_in_row = 0
        if not self._healthy:
            self._healthy = True
            self._health_reason = ""
            log.warning("runtime healthy again: the docker engine answers")
            self._note("healthy again")
            self._callback(self.on_health, True, "")

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
                except Exception:  # noqa: BLE001 -- a callback bug must not stop the runtime
                    log.exception("runtime callback %r failed", fn)

    def _note(self, text: str) -> None:
        self._history.append(f"{time.strftime('%H:%M:%S')} {text}")

    # ---- the loops ----

    async def run(self, *, task_status=trio.TASK_STATUS_IGNORED) -> None:
        """The runtime's tasks: reconcile loop, events thread, callbacks.
        Returns only when cancelled."""
        self._started_at = trio.current_time()
        self._api = self._client_factory(self.cfg.docker_host, self.cfg.api_version,
                                         self.cfg.call_timeout_s + 5.0)
        self._stream_api = self._client_factory(self.cfg.docker_host, self.cfg.api_version, None)
        try:
            async with trio.open_nursery() as nursery:
                self._actions = nursery
                nursery.start_soon(self._run_callbacks)
                nursery.start_soon(self._consume_events)
                self._start_event_thread(trio.lowlevel.current_trio_token())
                nursery.start_soon(self._reconcile_loop)
                task_status.started()
                await trio.sleep_forever()
        finally:
            self._closing.set()
            self._close_event_stream()
            for api in (self._api, self._stream_api):
                try:
                    api.close()
                except Exception:  # noqa: BLE001
                    pass

    async def wait_ready(self) -> None:
        """Until the first reconcile pass completed (or failed)."""
        await self._ready.wait()

    async def _reconcile_loop(self) -> None:
        next_full = trio.current_time()
        while True:
            now = trio.current_time()
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

    # ---- events ----

    def _start_event_thread(self, token: trio.lowlevel.TrioToken) -> None:
        def deliver(ev):
            try:
                self._events_send.send_nowait(ev)
            except trio.WouldBlock:
                self._events_dropped += 1
                self.kick()
            except (trio.ClosedResourceError, trio.BrokenResourceError):
                pass

        def pump():
            backoff = 0.5
            filters = {"type": "container", "label": f"{LABEL_NODE}={self.node}"}
            while not self._closing.is_set():
                try:
                    stream = self._stream_api.events(decode=True, filters=filters)
                    self._event_stream = stream
                    if self._closing.is_set():
                        stream.close()
                        return
                    backoff = 0.5
                    token.run_sync_soon(self.kick)  # we may have missed events
                    for ev in stream:
                        token.run_sync_soon(deliver, ev)
                except trio.RunFinishedError:
                    return
                except Exception as e:  # noqa: BLE001 -- reconnect
                    if self._closing.is_set():
                        return
                    log.debug("docker events stream broke: %s", _explain(e))
                finally:
                    self._event_stream = None
                if self._closing.wait(backoff):
                    return
                backoff = min(backoff * 2, 5.0)

        t = threading.Thread(target=pump, name=f"shoal-docker-events-{self.node}", daemon=True)
        self._event_thread = t
        t.start()

    def _close_event_stream(self) -> None:
        stream = self._event_stream
        if stream is not None:
            try:
                stream.close()
            except Exception:  # noqa: BLE001
                pass

    async def _consume_events(self) -> None:
        async for ev in self._events_recv:
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

    async def _list(self) -> list[_Container]:
        raw = await self.call("ps", self._api.containers, all=True,
                              filters={"label": f"{LABEL_NODE}={self.node}"})
        out = []
        for c in raw:
            labels = c.get("Labels") or {}
            names = c.get("Names") or ["/?"]
            out.append(_Container(id=c["Id"], name=names[0].lstrip("/"), slot=labels.get(LABEL_SLOT, ""),
                                  ballot=labels.get(LABEL_BALLOT, ""), spec_hash=labels.get(LABEL_SPEC, ""),
                                  state=c.get("State", ""), status=c.get("Status", ""),
                                  created=int(c.get("Created") or 0), image=c.get("Image", "")))
        return out

    async def _refresh_images(self) -> None:
        raw = await self.call("images", self._api.images)
        tags, ids = set(), set()
        for img in raw:
            ids.add(img.get("Id", ""))
            for t in img.get("RepoTags") or ():
                tags.add(normalize_image(t))
            for d in img.get("RepoDigests") or ():
                tags.add(d)
        self._images, self._image_ids, self._images_known = tags, ids, True
        self._images_at = trio.current_time()

    async def reconcile_once(self) -> None:
        """One full pass: list, compare, and launch actions.  Actions run as
        background tasks (threads bounded by the limiter) and a pass never
        waits for them, so one slow `docker start` does not hold back the
        next slot; a slot or container with an action in flight -- or one
        that finished after this pass's listing -- is left for the next pass."""
        self._passes += 1
        self._key_done.clear()
        if self._images_at is None or trio.current_time() - self._images_at >= self.cfg.resync_interval_s:
            await self._refresh_images()
        containers = await self._list()
        self._actual = {c.id: c for c in containers}
        now = trio.current_time()
        in_grace = (not self._synced and self._started_at is not None
                    and now - self._started_at < self.cfg.adopt_grace_s)

        by_slot: dict[str, list[_Container]] = collections.defaultdict(list)
        for c in containers:
            by_slot[c.slot].append(c)

        actions: list[tuple[str, Callable[[], Awaitable[None]]]] = []
        busy = self._busy
        # 1. containers of slots we do not want (or stale ballots): remove.
        for slot, cs in by_slot.items():
            want = self._desired.get(slot)
            for c in cs:
                if busy("ctr:" + c.id):
                    continue
                if want is None:
                    if not in_grace:
                        actions.append(self._remover(c, "not desired here"))
                elif c.ballot != want.ballot:
                    actions.append(self._remover(c, f"stale ballot {c.ballot} (now {want.ballot})"))

        # 2. desired slots: rolling views per job, then per-slot decisions.
        views: dict[str, dict[str, RollingView]] = collections.defaultdict(dict)
        current: dict[str, list[_Container]] = {}
        old: dict[str, list[_Container]] = {}
        for slot, want in self._desired.items():
            cs = [c for c in by_slot.get(slot, ()) if c.ballot == want.ballot]
            current[slot] = [c for c in cs if c.spec_hash == want.spec_hash]
            old[slot] = [c for c in cs if c.spec_hash != want.spec_hash]
            views[want.claim.job][slot] = RollingView(
                has_old=bool(old[slot]), has_new=bool(current[slot]) or busy("slot:" + slot),
                new_running=any(c.ok for c in current[slot]))
        allowed: set[str] = set()
        for job_views in views.values():
            allowed |= rolling_allowed(job_views)

        for slot, want in list(self._desired.items()):
            if slot not in current or busy("slot:" + slot):
                continue
            st = self._slots.setdefault(slot, _SlotState())
            cur = sorted(current[slot], key=lambda c: (not c.running, -c.created))
            # duplicates of the current container (should not happen): keep one
            for extra in cur[1:]:
                if not busy("ctr:" + extra.id):
                    actions.append(self._remover(extra, "duplicate"))
            mine = cur[0] if cur else None
            if mine is not None and mine.ok:
                for o in old[slot]:
                    if not busy("ctr:" + o.id):
                        actions.append(self._remover(o, "replaced by the new spec"))
                if st.running_since is None:
                    st.running_since = now
                elif now - st.running_since >= self.cfg.stable_after_s:
                    st.consecutive = 0
                continue
            if st.gave_up or st.done:
                continue
            if mine is None:
                if slot not in allowed:
                    continue    # rolling: another slot of this job is being replaced
                if st.not_before > now:
                    self._wakeups.add(st.not_before)
                    continue
                actions.append(self._starter(slot, want, st))
                continue
            if mine.state in ("created",):
                actions.append(self._restarter(slot, want, st, mine, fresh=True))
                continue
            if mine.state in ("restarting", "removing", "paused"):
                continue
            if mine.state == "running" and mine.health != "unhealthy":
                continue
            # exited, dead, or running but unhealthy: the restart policy decides.
            self._failed(slot, want, st, mine, now, actions)

        for key, act in actions:
            if key in self._inflight:
                continue
            self._inflight.add(key)
            if self._actions is not None:
                self._actions.start_soon(self._guarded, key, act)
            else:   # called outside run(): do it here
                await self._guarded(key, act)

    def _busy(self, key: str) -> bool:
        return key in self._inflight or key in self._key_done

    async def _guarded(self, key: str, act: Callable[[], Awaitable[None]]) -> None:
        try:
            await act()
        except EngineError as e:
            log.debug("%s", e)
        except RuntimeProblem as e:
            log.warning("%s", e)
        finally:
            self._inflight.discard(key)
            self._key_done.add(key)
            self.kick()

    def _failed(self, slot: str, want: _Desired, st: _SlotState, c: _Container, now: float,
                actions: list) -> None:
        unhealthy = c.state == "running"
        code = c.exit_code()
        failed = unhealthy or code != 0
        what = "unhealthy" if unhealthy else (f"exited {code}" if code is not None else c.status or c.state)
        marker = f"{c.id}:{c.status.split(' ')[0]}:{code}:{unhealthy}:{st.restarts}"
        if st.handled != marker:
            # First time we see this failure: count it once.
            st.handled = marker
            st.running_since = None
            st.last_exit = what
            if failed:
                st.failures.append(now)
            policy = want.spec.restart
            recent = [t for t in st.failures if now - t <= self.cfg.crash_loop_window_s]
            if failed and len(recent) >= self.cfg.crash_loop_failures:
                self._give_up(slot, st, f"crash loop: {len(recent)} failures within "
                                        f"{self.cfg.crash_loop_window_s:g} s (last: {what})")
                return
            if not policy.should_restart(failed=failed, restarts=st.restarts):
                if failed and policy.policy is RestartMode.ON_FAILURE:
                    self._give_up(slot, st, f"{what}; restart attempts exhausted "
                                            f"({st.restarts} of {policy.max_attempts})")
                else:
                    st.done = f"{what} (policy {policy.policy.value}: not restarted)"
                    self._note(f"{slot}: {st.done}")
                    if unhealthy:
                        actions.append(self._stopper(c, "unhealthy, not restarted"))
                return
            delay = policy.backoff_delay_s(st.consecutive)
            st.consecutive += 1
            st.not_before = now + delay
            self._note(f"{slot}: {what}; restart {st.restarts + 1} in {delay:g} s")
        if st.not_before > now:
            self._wakeups.add(st.not_before)
            return
        actions.append(self._restarter(slot, want, st, c, fresh=False))

    def _give_up(self, slot: str, st: _SlotState, reason: str) -> None:
        st.gave_up = reason
        self._note(f"{slot}: giving up here: {reason}")
        log.warning("slot %s gives up on %s: %s", slot, self.node, reason)
        self._callback(self.on_give_up, slot, reason)

    # ---- actions: (key, coroutine function), run in the background ----

    def _remover(self, c: _Container, why: str):
        async def act():
            self._note(f"remove {c.name} ({c.slot}): {why}")
            if c.running:
                try:
                    await self.call("stop", self._api.stop, c.id, timeout=self.cfg.stop_timeout_s,
                                    timeout_s=self.cfg.call_timeout_s + self.cfg.stop_timeout_s)
                except RuntimeProblem as e:
                    if not _is_not_found(e):
                        log.debug("%s", e)
            try:
                await self.call("rm", self._api.remove_container, c.id, v=True, force=True)
            except RuntimeProblem as e:
                if not _is_not_found(e):
                    raise
        return "ctr:" + c.id, act

    def _stopper(self, c: _Container, why: str):
        async def act():
            self._note(f"stop {c.name}: {why}")
            await self.call("stop", self._api.stop, c.id, timeout=self.cfg.stop_timeout_s,
                            timeout_s=self.cfg.call_timeout_s + self.cfg.stop_timeout_s)
        return "ctr:" + c.id, act

    def _restarter(self, slot: str, want: _Desired, st: _SlotState, c: _Container, fresh: bool):
        async def act():
            if self._desired.get(slot) is not want:
                return
            if c.state == "running":    # unhealthy
                await self.call("restart", self._api.restart, c.id, timeout=self.cfg.stop_timeout_s,
                                timeout_s=self.cfg.call_timeout_s + self.cfg.stop_timeout_s)
            else:
                await self.call("start", self._api.start, c.id)
            if not fresh:
                # Counted only once it worked: a failed call is retried as the same restart.
                st.restarts += 1
                st.restart_times.append(trio.current_time())
                self._note(f"restarted {c.name} (restart {st.restarts})")
        return "slot:" + slot, act

    def _starter(self, slot: str, want: _Desired, st: _SlotState):
        async def act():
            if self._desired.get(slot) is not want:
                return
            spec = want.spec
            if not self.image_present(spec.image):
                await self._refresh_images()    # loaded since the last refresh?
            if not self.image_present(spec.image):
                if self.cfg.pull_images:
                    self._note(f"pull {spec.image}")
                    try:
                        await self.call("pull", self._api.pull, spec.image, timeout_s=self.cfg.pull_timeout_s)
                        await self._refresh_images()
                    except RuntimeProblem as e:
                        self._give_up(slot, st, f"image {spec.image} could not be pulled: {e}")
                        return
                if not self.image_present(spec.image):
                    self._give_up(slot, st, f"image {spec.image} is not on node {self.node}")
                    return
            cid = await self._create(slot, want)
            self._note(f"started {slot} ({cid[:12]})")
            await self.call("start", self._api.start, cid)
        return "slot:" + slot, act

    async def _create(self, slot: str, want: _Desired) -> str:
        spec, claim = want.spec, want.claim
        labels = {LABEL_JOB: claim.job, LABEL_SLOT: slot, LABEL_BALLOT: want.ballot,
                  LABEL_NODE: self.node, LABEL_SPEC: want.spec_hash}
        host_config = self._api.create_host_config(
            network_mode=self.cfg.network_mode,
            nano_cpus=spec.cpu_millis * 1_000_000,
            mem_limit=spec.memory_bytes,
            restart_policy={"Name": "no"},
            log_config={"Type": "json-file", "Config": {"max-size": self.cfg.log_max_size,
                                                        "max-file": str(self.cfg.log_max_files)}},
        )
        kwargs = dict(command=list(spec.command) if spec.command is not None else None,
                      environment=spec.env_map, labels=labels, host_config=host_config,
                      healthcheck=health_config(spec), detach=True)
        name = container_name(slot, claim.ballot.round)
        try:
            made = await self.call("create", self._api.create_container, spec.image, name=name, **kwargs)
        except RuntimeProblem as e:
            if "409" not in str(e) and "Conflict" not in str(e):
                raise
            suffix = hashlib.blake2b(f"{self.node}|{want.ballot}|{want.spec_hash}".encode(),
                                     digest_size=4).hexdigest()
            made = await self.call("create", self._api.create_container, spec.image,
                                   name=f"{name}-{suffix}", **kwargs)
        return made["Id"]

    # ---- listing and logs ----

    async def ps(self) -> list[dict[str, Any]]:
        """Our containers as the engine lists them now, with the slot's restart state."""
        containers = await self._list()
        out = []
        for c in sorted(containers, key=lambda c: (_slot_sort_key(c.slot), c.created)):
            want = self._desired.get(c.slot)
            st = self._slots.get(c.slot)
            role = ("desired" if want and want.ballot == c.ballot and want.spec_hash == c.spec_hash
                    else "old-spec" if want and want.ballot == c.ballot else "stale")
            out.append({"slot": c.slot, "id": c.id[:12], "name": c.name, "node": self.node,
                        "state": c.state, "status": c.status, "health": c.health, "image": c.image,
                        "ballot": c.ballot, "spec_hash": c.spec_hash[:12], "role": role,
                        "restarts": st.restarts if st else 0,
                        "gave_up": st.gave_up if st else None, "done": st.done if st else None})
        return out

    def slot_status(self, slot: str) -> dict[str, Any] | None:
        st = self._slots.get(slot)
        if st is None:
            return None
        return {"restarts": st.restarts, "gave_up": st.gave_up, "done": st.done,
                "last_exit": st.last_exit, "restart_times": list(st.restart_times)}

    async def _container_for(self, slot: str) -> _Container | None:
        cs = [c for c in await self._list() if c.slot == slot]
        if not cs:
            return None
        want = self._desired.get(slot)
        cs.sort(key=lambda c: (not (want and c.ballot == want.ballot and c.spec_hash == want.spec_hash),
                               not c.running, -c.created))
        return cs[0]

    async def logs(self, slot: str, follow: bool = False, tail: int | str = "all") -> AsyncIterator[bytes]:
        """The output (stdout and stderr) of the slot's container, as chunks.
        With follow, goes on until the container stops or the caller stops
        iterating.  Raises LookupError if the slot has no container here."""
        async for chunk in await self.open_logs(slot, follow, tail):
            yield chunk

    async def open_logs(self, slot: str, follow: bool = False, tail: int | str = "all") -> AsyncIterator[bytes]:
        """Find the slot's container now (LookupError if there is none here),
        then return the stream of its output: the API can answer 404 before
        it starts a streaming response."""
        c = await self._container_for(slot)
        if c is None:
            raise LookupError(f"no container for {slot} on {self.node}")
        return self._stream_logs(c, slot, follow, tail)

    async def _stream_logs(self, c: _Container, slot: str, follow: bool, tail: int | str) -> AsyncIterator[bytes]:
        send, recv = trio.open_memory_channel(LOG_QUEUE_DEPTH)
        token = trio.lowlevel.current_trio_token()
        # One stream thread per log reader, at most stream_concurrency of them;
        # the token goes back when the thread ends (it may outlive the reader).
        borrower = object()
        with trio.fail_after(self.cfg.call_timeout_s):
            await self._stream_limiter.acquire_on_behalf_of(borrower)
        stream_box: dict[str, Any] = {}
        stop = threading.Event()

        def pump():
            try:
                stream = self._stream_api.logs(c.id, stream=True, follow=follow, stdout=True,
                                               stderr=True, tail=tail)
                stream_box["s"] = stream
                if stop.is_set():
                    _close_quietly(stream)
                    return
                for chunk in stream:
                    if stop.is_set():
                        break
                    trio.from_thread.run(send.send, chunk, trio_token=token)
            except (trio.RunFinishedError, trio.BrokenResourceError, trio.ClosedResourceError,
                    trio.Cancelled):
                pass
            except Exception as e:  # noqa: BLE001
                stream_box["error"] = e
            finally:
                try:
                    token.run_sync_soon(send.close)
                    token.run_sync_soon(self._stream_limiter.release_on_behalf_of, borrower)
                except trio.RunFinishedError:
                    pass

        t = threading.Thread(target=pump, name=f"shoal-logs-{slot}", daemon=True)
        t.start()
        try:
            async with recv:
                async for chunk in recv:
                    yield chunk
            if "error" in stream_box and not follow:
                raise RuntimeProblem(f"docker logs {slot}: {_explain(stream_box['error'])}")
        finally:
            stop.set()
            s = stream_box.get("s")
            if s is not None:
                _close_quietly(s)


# ---- helpers ---------------------------------------------------------------------------


def _default_client(base_url: str, version: str, timeout: float | None):
    import docker
    return docker.APIClient(base_url=base_url, version=version,
                            timeout=timeout if timeout is not None else None)


def _close_quietly(stream) -> None:
    try:
        stream.close()
    except Exception:  # noqa: BLE001
        pass


def _answered(e: BaseException) -> bool:
    """Did the engine answer (an HTTP error status), as opposed to not answering?"""
    try:
        import docker.errors
    except ImportError:  # pragma: no cover
        return False
    if isinstance(e, docker.errors.APIError):
        return True
    return isinstance(e, (ValueError, TypeError, docker.errors.InvalidArgument))


def _is_not_found(e: BaseException) -> bool:
    cause = e.__cause__ if e.__cause__ is not None else e
    try:
        import docker.errors
        if isinstance(cause, docker.errors.NotFound):
            return True
    except ImportError:  # pragma: no cover
        pass
    return "404" in str(e) or "No such container" in str(e)


def _explain(e: BaseException) -> str:
    text = str(e) or type(e).__name__
    text = text.replace("\n", " ")
    return text if len(text) <= 300 else text[:297] + "..."

