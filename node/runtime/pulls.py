"""Image pulls for the Docker runtime: bounded, deduplicated, reported.

How this works: `Puller.ensure(image, always=...)` is what a start awaits
before it creates a container.  It returns None when the image is ready,
or the reason it is not ("image reg:5000/app:2 could not be pulled on
node-2: manifest unknown ..."), which the runtime turns into giving the slot
up here (placement then moves it and says why).

- Deduplicated: one pull per image at a time.  A start that finds a pull of
  its image under way waits for that pull and shares its outcome, so ten
  slots of one image starting on one node pull it once.  With
  `always = True` a pull that finished less than `ALWAYS_FRESH_S` ago
  counts as fresh (the slots of one rollout share it too).
- Bounded: at most `max_concurrent` pulls per node run at once (the rest
  wait their turn), and each is given up after `timeout_s` (a fixed,
  generous bound: how long a pull takes depends on the registry's
  bandwidth, which the node cannot know before it starts).
- Credentials: `auth_for(host)` (the agent's `[images]` configuration,
  node/agent/registries.py) is asked for the registry host's credentials at
  each pull; they go to the engine and nowhere else (never logged, noted,
  or put in an event).
- Peers: when a pull fails and `fallback` is set (node/agent/image_share.py:
  fetch the image from a peer that has it), the fallback is tried before
  the start gives up; not for `always`, which asks for the registry's
  current image, not whatever a peer has under that tag.  With
  `prefer_peers` (the job's `source = "peers"`) the order is reversed:
  peers first, the registry only when no peer could give it.
- Progress: the worker thread feeds Docker's progress stream to a
  reducer (node/runtime/pull_progress.py: layers seen / done, bytes
  downloaded of the bytes known so far), and `pace` passes a changed value
  on at most once a second per image: to `on_progress(event)` (the
  `image_pull` events; also its start and end) and to `progress()`, what
  the agent puts in the node's status record (a peer fetch reports its
  bytes there too, node/agent/image_share.py).

The pull itself runs in an engine worker thread (node/runtime/engine.py:
bounded, timed out) reading Docker's JSON progress stream; the thread keeps
the running totals under a lock and the trio side reads them.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import trio

from auction.placement import normalize_image
from node.core.image_progress import ImageProgress
from node.runtime.engine import Engine, EngineError, RuntimeProblem, engine_message
from node.runtime.pull_progress import LayerTally, Pace

log = logging.getLogger("shoal.runtime")

DEFAULT_MAX_CONCURRENT_PULLS = 2
DEFAULT_PULL_TIMEOUT_S = 600.0
ALWAYS_FRESH_S = 10.0
PROGRESS_SAMPLE_S = 0.25     # how often a pull's totals are looked at (Pace reports at most 1/s)
MAX_MESSAGE_CHARS = 400
DOCKER_HUB = "docker.io"


def registry_host(image: str) -> str:
    """The registry an image reference names: its first path component when
    that looks like a host (has a '.' or ':' or is 'localhost'), else Docker
    Hub ('busybox', 'library/busybox', 'team/app')."""
    first, sep, _ = image.partition("/")
    if sep and ("." in first or ":" in first or first == "localhost"):
        return first
    return DOCKER_HUB


def split_reference(image: str) -> tuple[str, str | None]:
    """(repository, tag or digest) as the engine's pull wants them; None
    means 'latest'.  'reg:5000/app' has a port, not a tag."""
    if "@" in image:
        repo, _, digest = image.partition("@")
        return repo, digest
    last = image.rsplit("/", 1)[-1]
    if ":" in last:
        repo, _, tag = image.rpartition(":")
        return repo, tag
    return image, None


@dataclass
class _Progress:
    """Running totals of one pull (node.runtime.pull_progress's reducer),
    written by its worker thread, read by the trio side."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    tally: LayerTally = field(default_factory=LayerTally)
    stop: bool = False      # the awaiting side gave up: stop reading

    @property
    def error(self) -> str | None:
        return self.tally.error

    def feed(self, msg: dict[str, Any]) -> None:
        with self.lock:
            self.tally.feed(msg)

    def of(self, image: str) -> ImageProgress:
        with self.lock:
            return self.tally.progress(image)

    def snapshot(self) -> dict[str, int]:
        with self.lock:
            done, layers, got, total = self.tally.counts()
        return {"layers": layers, "layers_done": done, "bytes": got, "bytes_total": total}


@dataclass
class _Pull:
    finished: trio.Event = field(default_factory=trio.Event)
    failure: str | None = "the pull did not finish"
    ended_at: float = 0.0
    progress: _Progress | None = None       # set once the pull has its turn
    from_peer: bool = False                 # the pull failed; a peer is asked


class Puller:
    def __init__(self, engine: Engine, node: str, *, max_concurrent: int = DEFAULT_MAX_CONCURRENT_PULLS,
                 timeout_s: float = DEFAULT_PULL_TIMEOUT_S,
                 auth_for: Callable[[str], dict[str, str] | None] | None = None,
                 on_progress: Callable[[dict[str, Any]], None] | None = None,
                 note: Callable[[str], None] | None = None,
                 fallback: Callable[[str], Awaitable[str | None]] | None = None) -> None:
        self.engine = engine
        self.node = node
        self.timeout_s = timeout_s
        self.auth_for = auth_for
        self.on_progress = on_progress
        self.note = note or (lambda _text: None)
        self.fallback = fallback
        self._slots = trio.Semaphore(max(1, max_concurrent))
        self._pulls: dict[str, _Pull] = {}      # normalized image -> the current or last pull
        self.pulls_started = 0
        self.pace = Pace()      # what was last reported of each image under way (at most 1/s)

    def progress(self) -> tuple[ImageProgress, ...]:
        """How far each pull or peer fetch under way is, as last reported."""
        return self.pace.current()

    def pulling(self) -> list[str]:
        """The images being pulled now."""
        return sorted(k for k, p in self._pulls.items() if not p.finished.is_set())

    def describe(self, image: str) -> str | None:
        """What a start waiting for `image` waits for, as a slot's reason
        ("pulling reg:5000/app:1: 2/5 layers"), or None if it is not being
        pulled.  Layers only, not bytes: the reason is published in the
        node's status record, which should not change every second."""
        pull = self._pulls.get(normalize_image(image))
        if pull is None or pull.finished.is_set():
            return None
        if pull.from_peer:
            return f"fetching {image} from a peer"
        if pull.progress is None:
            return f"waiting to pull {image} (other pulls run)"
        snap = pull.progress.snapshot()
        return f"pulling {image}: {snap['layers_done']}/{snap['layers']} layers"

    async def ensure(self, image: str, *, always: bool = False, prefer_peers: bool = False) -> str | None:
        """Pull `image` (see the module docstring); None when it is ready,
        else why not.  A start that finds a pull of its image under way
        shares it, whichever source that pull asks first."""
        key = normalize_image(image)
        now = trio.current_time()
        for k in [k for k, p in self._pulls.items() if p.finished.is_set() and now - p.ended_at >= ALWAYS_FRESH_S]:
            del self._pulls[k]
        pull = self._pulls.get(key)
        if pull is not None and not pull.finished.is_set():
            await pull.finished.wait()      # someone is pulling it: share the outcome
            return pull.failure
        if pull is not None and always and pull.failure is None:
            return None                     # pulled moments ago
        pull = _Pull()
        self._pulls[key] = pull
        try:
            if prefer_peers and self.fallback is not None and not always:
                from_peers = await self._from_peers(image, pull)
                if from_peers is None:
                    pull.failure = None
                else:
                    pull.from_peer = False
                    pulled = await self._pull(image, pull)
                    pull.failure = None if pulled is None else f"no peer could give {image} ({from_peers}); {pulled}"
            else:
                pull.failure = await self._pull(image, pull)
                if pull.failure is not None and self.fallback is not None and not always:
                    from_peers = await self._from_peers(image, pull)
                    pull.failure = None if from_peers is None else f"{pull.failure}; nor from a peer: {from_peers}"
        finally:
            pull.ended_at = trio.current_time()
            pull.finished.set()
            self.pace.end(key)
        return pull.failure

    async def _from_peers(self, image: str, pull: _Pull) -> str | None:
        assert self.fallback is not None
        self.note(f"fetch {image} from a peer")
        pull.from_peer = True
        problem = await self.fallback(image)
        self.note(f"fetched {image} from a peer" if problem is None else f"{image} from a peer: {problem}")
        return problem

    async def _pull(self, image: str, pull: _Pull) -> str | None:
        repo, tag = split_reference(image)
        host = registry_host(image)
        progress = _Progress()
        async with self._slots:
            pull.progress = progress
            self.pulls_started += 1
            self.note(f"pull {image}")
            self.pace.offer(progress.of(normalize_image(image)), trio.current_time())
            self._tell(image, "started", progress)
            kwargs: dict[str, Any] = {"tag": tag, "stream": True, "decode": True}
            try:
                auth = self.auth_for(host) if self.auth_for is not None else None
            except Exception as e:  # noqa: BLE001 -- e.g. a credentials file we cannot read
                return self._failed(image, progress, f"credentials for {host}: {e}")
            if auth:
                kwargs["auth_config"] = auth

            def work() -> None:
                for msg in self.engine.stream_api.pull(repo, **kwargs):
                    if isinstance(msg, dict):
                        progress.feed(msg)
                    if progress.stop or progress.error:
                        break

            async def report() -> None:
                while True:
                    await trio.sleep(PROGRESS_SAMPLE_S)
                    if self.pace.offer(progress.of(normalize_image(image)), trio.current_time()):
                        self._tell(image, "progress", progress)

            problem: str | None = None
            async with trio.open_nursery() as nursery:
                nursery.start_soon(report)
                # Our own deadline, not the engine call's: a slow registry is
                # not a failing engine (the engine's health is not touched).
                with trio.move_on_after(self.timeout_s) as deadline:
                    try:
                        await self.engine.call("pull", work, timeout_s=self.timeout_s + 60.0)
                    except EngineError as e:
                        problem = str(e).removeprefix("docker pull ")
                    except RuntimeProblem as e:
                        problem = engine_message(e)
                progress.stop = True        # the worker thread stops at its next message
                nursery.cancel_scope.cancel()
            self.pace.end(normalize_image(image))
            if deadline.cancelled_caught:
                problem = f"timed out after {self.timeout_s:g} s"
            problem = problem or progress.error
            if problem is not None:
                return self._failed(image, progress, problem)
            self._tell(image, "done", progress)
            self.note(f"pulled {image}")
            return None

    def _failed(self, image: str, progress: _Progress, message: str) -> str:
        message = " ".join(message.split())
        if len(message) > MAX_MESSAGE_CHARS:
            message = message[:MAX_MESSAGE_CHARS - 3] + "..."
        reason = f"image {image} could not be pulled on {self.node}: {message}"
        self._tell(image, "failed", progress, reason)
        self.note(reason)
        log.warning("%s", reason)
        return reason

    def _tell(self, image: str, state: str, progress: _Progress, reason: str = "") -> None:
        if self.on_progress is None:
            return
        event: dict[str, Any] = {"image": image, "state": state, **progress.snapshot()}
        if reason:
            event["reason"] = reason
        try:
            self.on_progress(event)
        except Exception:  # a reporting bug must not fail the pull
            log.exception("pull progress callback failed")
