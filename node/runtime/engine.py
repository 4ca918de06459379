"""Calls to the Docker engine: bounded, timed out, never blocking trio.

How this works: the `docker` SDK blocks, so `Engine.call` runs every call in
a worker thread (`trio.to_thread.run_sync`) under a `CapacityLimiter`
(`concurrency`; listings -- `ps`, `images` -- have their own,
`listing_concurrency`, so a reconcile pass's listing never queues behind a
burst of creates and starts: with 15 replicas awarded to one node at once,
a started container was reported running up to 4 s late, the pass that
would see it waiting for a worker), and the awaiting side gives up after a
timeout that scales with the kind of call, the calls in flight (over all
the workers) and the engine's recent latency (node/runtime/stall.py: `call_timeout_s`,
from `call_timeout_s` of the config; `trio.fail_after`; the SDK's own HTTP timeout is bounded too, so an
abandoned thread ends soon after).  Threads still running after their caller
gave up are counted (`lingering`); when one ends, the engine did answer,
late: that counts as an answer and its latency as a sample.  A call the
engine did not answer (timeout, connection refused, broken stream) raises
`EngineError` and counts towards a stall (`stall.engine_failed`); one it
answered with an error (404, 409, 500 from a container) raises
`RuntimeProblem` and, like any answered call, counts as the engine being
there (`stall.engine_answered`).  `on_change(healthy, reason)` is called
when the health flips (only after a sustained stall, with hysteresis).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

import trio

from node.api import lean_imports
from node.runtime.config import DockerRuntimeConfig
from node.runtime.stall import (
    MAX_SCALE,
    EngineHealth,
    StallRules,
    call_timeout_s,
    engine_answered,
    engine_failed,
    ewma,
)

# The SDK (docker.APIClient, docker.errors) without its high-level client,
# requests' character detection and the rest the runtime never runs
# (node.api.lean_imports: about 4 MiB of an idle agent).
docker = lean_imports.import_module("docker", lean_imports.docker_sdk())

log = logging.getLogger("shoal.runtime")

# Read-only listings, run under their own limiter (see the module doc).
LISTING_CALLS = frozenset({"ps", "images"})

# The calls' HTTP timeout exceeds the awaiting side's by this much, so the
# awaiting side always gives up first and the thread ends soon after.
HTTP_TIMEOUT_MARGIN_S = 5.0


class EngineError(Exception):
    """A Docker call failed because the engine did not answer (timeout,
    connection refused, broken stream)."""


class RuntimeProblem(Exception):
    """A Docker call was answered with an error (not an engine failure)."""


def default_client(base_url: str, version: str, timeout: float | None) -> Any:
    return docker.APIClient(base_url=base_url, version=version, timeout=timeout)


class Engine:
    """The two SDK clients (calls with a bounded HTTP timeout, long streams
    without one) and the bounded, timed-out way to call them."""

    def __init__(self, cfg: DockerRuntimeConfig, *, on_change: Callable[[bool, str], None],
                 client_factory: Callable[..., Any] | None = None) -> None:
        self.cfg = cfg
        self.on_change = on_change
        self._client_factory = client_factory or default_client
        self.api: Any = None          # docker.APIClient for calls
        self.stream_api: Any = None   # docker.APIClient for long streams (no read timeout)
        self.health = EngineHealth()
        self._limiter = trio.CapacityLimiter(cfg.concurrency)
        self._listing_limiter = trio.CapacityLimiter(cfg.listing_concurrency)
        self.stream_limiter = trio.CapacityLimiter(cfg.stream_concurrency)
        self._lingering = 0
        self._lingering_lock = threading.Lock()
        self._in_flight = {False: 0, True: 0}   # calls in progress or waiting, by lane (listing or not)
        self._recent_s: dict[str, float] = {}          # kind of call -> recent latency
        self._late: list[tuple[str, float]] = []        # abandoned calls that ended: (kind, latency)
        self.stall_rules = StallRules(cfg.failure_threshold, cfg.stall_unhealthy_after_s, cfg.healthy_after_s)

    def open(self) -> None:
        # Beyond the longest timeout a call may be given (stall.MAX_SCALE x the base).
        self.api = self._client_factory(self.cfg.docker_host, self.cfg.api_version,
                                        MAX_SCALE * self.cfg.call_timeout_s + HTTP_TIMEOUT_MARGIN_S)
        self.stream_api = self._client_factory(self.cfg.docker_host, self.cfg.api_version, None)

    def close(self) -> None:
        for api in (self.api, self.stream_api):
            close_quietly(api)

    @property
    def lingering(self) -> int:
        """Worker threads still running a call their caller gave up on."""
        with self._lingering_lock:
            return self._lingering

    async def call(self, what: str, fn: Callable[..., Any], *args: Any, timeout_s: float | None = None,
                   **kwargs: Any) -> Any:
        """Run one blocking SDK call in a worker thread, bounded and timed out.
        `timeout_s`: the base timeout for this call (default the config's);
        it grows with load (stall.call_timeout_s)."""
        self._take_late()
        listing = what in LISTING_CALLS
        limiter = self._listing_limiter if listing else self._limiter
        self._in_flight[listing] += 1
        # The timeout grows with every call in flight over every worker, not
        # with its own lane's: a listing lane of 2 workers with 4 listings
        # hung on a stalled engine would triple it, and a stall would be
        # noticed that much later (the stall rule counts unanswered calls).
        timeout_s = call_timeout_s(what, self.cfg.call_timeout_s if timeout_s is None else timeout_s,
                                   in_flight=sum(self._in_flight.values()),
                                   concurrency=self.cfg.concurrency + self.cfg.listing_concurrency,
                                   recent_s=self._recent_s.get(what))
        box = {"done": False, "abandoned": False}
        issued_at = trio.current_time()
        began = time.monotonic()

        def work():
            try:
                return fn(*args, **kwargs)
            finally:
                with self._lingering_lock:
                    box["done"] = True
                    if box["abandoned"]:
                        self._lingering -= 1
                        self._late.append((what, time.monotonic() - began))

        try:
            with trio.fail_after(timeout_s):
                result = await trio.to_thread.run_sync(work, limiter=limiter, abandon_on_cancel=True)
        except trio.TooSlowError:
            with self._lingering_lock:
                if not box["done"] and not box["abandoned"]:
                    box["abandoned"] = True
                    self._lingering += 1
            self._failed(f"docker {what} timed out after {timeout_s:.3g} s", issued_at)
            raise EngineError(f"docker {what} timed out after {timeout_s:.3g} s") from None
        except Exception as e:  # classified below
            if answered(e):
                self._answered(what, issued_at)
                raise RuntimeProblem(f"docker {what}: {explain(e)}") from e
            self._failed(f"docker {what} failed: {explain(e)}", issued_at)
            raise EngineError(f"docker {what} failed: {explain(e)}") from e
        finally:
            self._in_flight[listing] -= 1
        self._answered(what, issued_at)
        return result

    def _take_late(self) -> None:
        """Abandoned calls that have ended since: the engine answered them, late."""
        with self._lingering_lock:
            late, self._late = self._late, []
        for what, latency_s in late:
            self._recent_s[what] = ewma(self._recent_s.get(what), latency_s)
            self._flip(*engine_answered(self.health, now=trio.current_time(), rules=self.stall_rules))

    def _failed(self, reason: str, issued_at: float) -> None:
        self._flip(*engine_failed(self.health, reason, now=trio.current_time(), issued_at=issued_at,
                                  rules=self.stall_rules))

    def _answered(self, what: str, issued_at: float) -> None:
        now = trio.current_time()
        self._recent_s[what] = ewma(self._recent_s.get(what), now - issued_at)
        self._flip(*engine_answered(self.health, now=now, rules=self.stall_rules))

    def _flip(self, health: EngineHealth, flipped: bool) -> None:
        self.health = health
        if flipped and not health.healthy:
            log.warning("runtime unhealthy: %s", health.reason)
            self.on_change(False, health.reason)
        elif flipped:
            log.warning("runtime healthy again: the docker engine answers steadily")
            self.on_change(True, "")


def answered(e: BaseException) -> bool:
    """Did the engine answer (an HTTP error status), as opposed to not answering?"""
    if isinstance(e, docker.errors.APIError):
        return True
    return isinstance(e, (ValueError, TypeError, docker.errors.InvalidArgument))


def is_not_found(e: BaseException) -> bool:
    cause = e.__cause__ if e.__cause__ is not None else e
    if isinstance(cause, docker.errors.NotFound):
        return True
    return "404" in str(e) or "No such container" in str(e)


def is_conflict(e: BaseException) -> bool:
    """A create answered 409: the container name is taken."""
    return "409" in str(e) or "Conflict" in str(e)


# What the engine says when another call got to the container first: it is
# being removed, already gone, already stopped or started.  Expected when a
# pass and an event race (a stale copy is removed while a start is retried).
BENIGN_RACES = ("marked for removal", "removal of container", "is already in progress", "no such container",
                "is not running", "already stopped", "already started", "304 client error")


def is_benign_race(e: BaseException) -> bool:
    text = (engine_message(e) if isinstance(e, RuntimeProblem) else str(e)).lower()
    return any(phrase in text for phrase in BENIGN_RACES)


def engine_message(e: RuntimeProblem) -> str:
    """The engine's whole answer to a failed call (the RuntimeProblem's text
    is cut short for logs, and may lose the part that says what went wrong)."""
    cause = e.__cause__
    return str(getattr(cause, "explanation", None) or cause or e)


def explain(e: BaseException) -> str:
    text = str(e) or type(e).__name__
    text = text.replace("\n", " ")
    return text if len(text) <= 300 else text[:297] + "..."


def close_quietly(resource: Any) -> None:
    """Close a stream or client on shutdown; it may already be broken."""
    try:
        resource.close()
    except Exception:  # noqa: BLE001, S110 -- nothing to do about it
        pass
