"""`shoal image preload`: get an image onto nodes before a rollout needs it.

How this works: `POST /v1/images/preload` (node/api/routes_images.py) on any
agent picks the alive members whose labels satisfy the request's
constraints and asks each, `POST /v1/images/preload/local`, to get the
image.  Each node's `Preloads.request(image, prefer_peers)` answers at once
("present", "started", or "running" when a preload of it is under way) and
queues the work; `Preloads.run` (a task of the agent) gets the image the
way a start of a job with that `source` would (the runtime's `image_ready`:
the registry then peers, or peers then the registry; node/runtime/pulls.py
shares one pull among a preload and the starts that wait for the same
image).  Progress and outcome are in the node's `GET /v1/images` answer
(`preloads`: ref -> {state, reason}; `progress`: ref -> "pulling ...: 2/5
layers"), which `shoal image preload` polls, and in `image_preload` events.

Bounds: at most `MAX_QUEUED` requests wait (more are refused with 503),
at most `MAX_TRACKED` outcomes are kept (the oldest finished is dropped),
and the pulls and fetches themselves keep their own bounds.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import trio

from auction.placement import normalize_image
from auction.spec import SpecError, validate

if TYPE_CHECKING:
    from node.agent.agent import Agent

log = logging.getLogger("shoal.images")

MAX_QUEUED = 16
MAX_TRACKED = 64
RUNNING, DONE, FAILED = "running", "done", "failed"


class PreloadBusy(Exception):
    """MAX_QUEUED preloads wait already."""


class Preloads:
    def __init__(self, agent: Agent, runtime: Any) -> None:
        self.agent = agent
        self.runtime = runtime
        self._state: dict[str, dict[str, Any]] = {}         # ref -> {state, reason, source}, oldest first
        self._send, self._receive = trio.open_memory_channel[tuple[str, bool]](MAX_QUEUED)

    def snapshot(self) -> dict[str, dict[str, Any]]:
        return {ref: dict(entry) for ref, entry in self._state.items()}

    def request(self, image: str, prefer_peers: bool) -> str:
        """Queue a preload of `image`: "present", "running" (one is under
        way already) or "started"; PreloadBusy when the queue is full."""
        ref = normalize_image(image)
        if self.runtime.image_present(image):
            return "present"
        if self._state.get(ref, {}).get("state") == RUNNING:
            return RUNNING
        try:
            self._send.send_nowait((image, prefer_peers))
        except trio.WouldBlock:
            raise PreloadBusy(f"{self.agent.name} has {MAX_QUEUED} preloads waiting already") from None
        self._track(ref, {"state": RUNNING, "reason": "", "source": "peers" if prefer_peers else "registry"})
        return "started"

    def _track(self, ref: str, entry: dict[str, Any]) -> None:
        self._state.pop(ref, None)
        self._state[ref] = entry
        while len(self._state) > MAX_TRACKED:
            oldest = next((r for r, e in self._state.items() if e["state"] != RUNNING), None)
            if oldest is None:
                break
            del self._state[oldest]

    async def run(self) -> None:
        async with trio.open_nursery() as nursery:
            async for image, prefer_peers in self._receive:
                nursery.start_soon(self._one, image, prefer_peers)

    async def _one(self, image: str, prefer_peers: bool) -> None:
        ref = normalize_image(image)
        self.agent.events.publish("image_preload", node=self.agent.name, image=image, state="started")
        try:
            spec = validate({"name": "preload", "image": image, "source": "peers" if prefer_peers else "registry"})
            problem = await self.runtime.image_ready(spec)
        except SpecError as e:
            problem = str(e)
        except Exception as e:  # noqa: BLE001 -- an engine failure fails this preload, not the agent
            log.warning("preload of %s failed", image, exc_info=True)
            problem = f"{type(e).__name__}: {e}"
        state = DONE if problem is None else FAILED
        entry = self._state.get(ref)
        if entry is not None:
            entry.update(state=state, reason=problem or "")
        self.agent.events.publish("image_preload", node=self.agent.name, image=image, state=state,
                                  **({"reason": problem} if problem else {}))
