"""Peer-to-peer images: a node that cannot pull an image gets it from a peer.

Design
------
When a start needs an image the node lacks and the registry pull fails (no
registry reachable, the site's uplink down, an image that was only ever
built or loaded on one machine), the runtime's puller (node/runtime/pulls.py)
asks `ImageShare.fetch(image)` before it gives the slot up:

1. Who has it: the agent asks every alive member's API,
   `GET /v1/images?ref=REF`, for its copy (image ID and size).  Image lists
   are not gossiped (they are unbounded; the status record is not), so the
   question goes out only when an image is missing here.
2. Transfer: from the holder node/runtime/spread_rule.py picks (a free
   one that has sent the fewest copies; each listing says how many it sends
   and has sent, and which images the node is loading), the agent streams
   `GET /v1/images/archive?ref=REF`: the holder streams its engine's
   `docker save` of that one tag.  The bytes received so far, of the
   holder's size, are reported as the pull's progress (node/runtime/pulls.py's
   `pace`: in the node's status record and `image_fetch` progress events, at
   most once a second).  Both routes are agent-to-agent
   routes (node/api/server.py's PEER_ROUTES): with an API token they take the
   peer credential derived from the cluster's gossip key
   (node/agent/peer_auth.py) or the cluster CA's client certificate, so only
   members can read images.
3. Integrity (node/runtime/image_archive.py): the archive is written to a
   file as it arrives, its config blob must hash to the image ID the holder
   listed, the engine checks each layer against the config while loading,
   and the loaded tag must name that ID.  A corrupted or truncated transfer
   is refused and another transfer is made (from a holder picked anew), at
   most `MAX_ATTEMPTS` failed transfers per fetch.
4. Bounds: one fetch at a time per node (`max_fetches`; the puller also
   shares one fetch among all starts of the image), at most `max_serves`
   archives served at once (`[images] max_peer_serves`; 0: this node serves
   none and is not listed as a holder) and one copy of each image at a time
   (spread_rule.PER_IMAGE_SERVES); a busy holder answers 503; the receiver
   waits a moment, asks who has the image again and picks again, without
   counting it as a failed attempt, at most the holder's stated size plus tar
   overhead received, and only if the disk has room for the archive and
   its unpacked layers (twice the size) plus `DISK_RESERVE_BYTES`.
5. Spreading: a node that loaded an image lists it like any other, so it
   serves the next ones.  With one copy per image at a time per holder, the
   holder that has sent the fewest copies picked, and receivers waiting for
   a node that is loading its copy rather than taking the source's next one
   (spread_rule.py), N nodes that need an image fetch from a growing set of
   holders (a tree whose width doubles about every transfer time) and the
   first holder sends about log2(N+1) copies, not N.

Events: `image_fetch` (started, then done, failed or busy; node, peer,
bytes) on the receiving agent; `image_serve` (done or failed; node, peer,
bytes) on the holder.  `served_bytes` counts what this node sent.
`shoal image ls` reads `GET /v1/images?cluster=1`: which node has which
image, and what each one is pulling or fetching now.

Test hook: with `enable_fault_hook`, `SHOAL_FAULT_CORRUPT_SERVES=N` makes
this agent flip one byte in the first N archives it serves (tests only).
"""

from __future__ import annotations

import contextlib
import logging
import os
import random
import shutil
import tempfile
from urllib.parse import urlencode
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import trio

from auction.placement import normalize_image
from node.agent.image_preload import Preloads
from node.agent.tags import decode_tags
from node.api.forward import ForwardRefused, forward_client, forward_headers, httpx_module, peer_api_url
from node.runtime.engine import EngineError, RuntimeProblem, engine_message
from node.core.image_progress import ImageProgress
from node.runtime.image_archive import CHUNK_BYTES, check_archive, local_image
from node.runtime.spread_rule import PeerState, choose, may_serve

if TYPE_CHECKING:
    from node.agent.agent import Agent

log = logging.getLogger("shoal.images")

MAX_ATTEMPTS = 3
ASK_TIMEOUT_S = 5.0
DISK_RESERVE_BYTES = 512 << 20
TAR_SLACK_BYTES = 16 << 20      # tar headers and manifest beyond the image's size
BUSY = "busy"                   # a holder at its max_serves (HTTP 503)
BUSY_WAIT_S = 1.0
MAX_TRACKED_IMAGES = 64         # images whose copies served are counted (the oldest is forgotten)


class ServeBusy(Exception):
    """This agent serves max_serves archives already."""


def choose_holder(peers: list[dict[str, Any]], rng: random.Random | None = None,
                  waited_for_loader_s: float = 0.0) -> dict[str, Any] | None:
    """The peer to fetch from (spread_rule.choose on the listings), or None:
    wait and ask again."""
    states = [PeerState(p["node"], bool(p.get("holds", True)), int(p.get("serving") or 0),
                        int(p.get("served") or 0), bool(p.get("busy_total"))) for p in peers]
    pick = choose(states, waited_for_loader_s, rng or random.Random())
    return None if pick is None else next(p for p in peers if p["node"] == pick.node)


def archive_target(ref: str) -> str:
    return "/v1/images/archive?" + urlencode({"ref": ref})


def listing_target(ref: str) -> str:
    return "/v1/images?" + urlencode({"ref": ref})


class ImageShare:
    def __init__(self, agent: Agent, runtime: Any, *, max_fetches: int = 1, max_serves: int = 2,
                 timeout_s: float = 600.0) -> None:
        self.agent = agent
        self.runtime = runtime
        self.timeout_s = timeout_s
        self._fetches = trio.Semaphore(max_fetches)
        self.max_serves = max_serves
        self.serving = 0
        self.served_bytes = 0
        self.serving_image: dict[str, int] = {}     # ref -> copies being sent now
        self.served: dict[str, int] = {}            # ref -> copies sent or begun (spread_rule), oldest first
        self.fetching: set[str] = set()
        self.loading: set[str] = set()              # received, being checked and loaded
        self.preloads = Preloads(agent, runtime)
        corrupt = os.environ.get("SHOAL_FAULT_CORRUPT_SERVES", "0") if agent.config.enable_fault_hook else "0"
        self.corrupt_serves = int(corrupt) if corrupt.isdigit() else 0

    # ---- what this node has ----

    async def local_images(self) -> list[dict[str, Any]]:
        engine = self.runtime.engine
        rows = await engine.call("images", engine.api.images)
        out = []
        for row in rows:
            for tag in sorted({normalize_image(t) for t in row.get("RepoTags") or [] if t != "<none>:<none>"}):
                out.append({"ref": tag, "id": row.get("Id", ""), "size": int(row.get("Size") or 0)})
        return out

    async def local(self, ref: str) -> dict[str, Any] | None:
        engine = self.runtime.engine
        return local_image(await engine.call("images", engine.api.images), normalize_image(ref))

    # ---- serving ----

    async def serve(self, ref: str, size: int, peer: str = "") -> AsyncIterator[bytes]:
        """The engine's `docker save` of `ref`, in chunks; ServeBusy when
        max_serves archives are being served (counted before the first chunk)."""
        if self.max_serves <= 0:
            raise ServeBusy(f"{self.agent.name} serves no images to peers ([images] max_peer_serves = 0)")
        if not may_serve(self.serving_image.get(ref, 0), self.serving, self.max_serves):
            raise ServeBusy(f"{self.agent.name} serves {self.serving} images already ({self.max_serves} at most,"
                            f" one copy of each at a time)")
        self.serving += 1
        self.serving_image[ref] = self.serving_image.get(ref, 0) + 1
        self.served[ref] = self.served.pop(ref, 0) + 1
        while len(self.served) > MAX_TRACKED_IMAGES:
            del self.served[next(iter(self.served))]
        corrupt = self.corrupt_serves > 0
        if corrupt:
            self.corrupt_serves -= 1
        # The test hook flips the byte halfway through the image's size: inside
        # a layer's data, which the receiving engine checks against the config
        # (when it lacks that layer; one it holds already is not read again).
        return self._stream(ref, size // 2 if corrupt else -1, peer)

    async def _stream(self, ref: str, flip_at: int, peer: str) -> AsyncIterator[bytes]:
        # One chunk per thread hop (no task spans the generator's yields).
        pos = 0
        state = "failed"
        try:
            chunks = self.runtime.engine.stream_api.get_image(ref, chunk_size=CHUNK_BYTES)
            try:
                while (chunk := await trio.to_thread.run_sync(next, chunks, None, abandon_on_cancel=True)) is not None:
                    if pos <= flip_at < pos + len(chunk):
                        i = flip_at - pos
                        chunk = chunk[:i] + bytes([chunk[i] ^ 0xFF]) + chunk[i + 1:]
                    pos += len(chunk)
                    self.served_bytes += len(chunk)
                    yield chunk
                state = "done"
            finally:
                with contextlib.suppress(Exception):
                    chunks.close()
        finally:
            self.serving -= 1
            if self.serving_image.get(ref, 0) <= 1:
                self.serving_image.pop(ref, None)
            else:
                self.serving_image[ref] -= 1
            self.agent.events.publish("image_serve", node=self.agent.name, image=ref, peer=peer, state=state,
                                      bytes=pos)

    # ---- fetching ----

    def listing(self, ref: str) -> dict[str, int]:
        """What this node's listing says of `ref` for spread_rule: copies being sent and sent."""
        return {"serving": self.serving_image.get(ref, 0), "served": self.served.get(ref, 0)}

    async def holders(self, ref: str) -> list[dict[str, Any]]:
        """The alive peers that have `ref` ({node, url, id, size, serving,
        served, busy_total}) or are loading it ({node, holds: False})."""
        view = self.agent.view
        alive = view.alive_names()
        found: list[dict[str, Any]] = []
        target = listing_target(ref)
        httpx = httpx_module()

        async def ask(client: httpx.AsyncClient, member: Any) -> None:
            peer = {"addr": member.addr.host, "api": decode_tags(member.meta).get("api")}
            try:
                url = peer_api_url(self.agent, member.name, peer)
            except ForwardRefused:
                return
            if url is None:
                return
            try:
                r = await client.get(url + target, headers=forward_headers(self.agent, "GET", target))
                body = r.json() if r.status_code == 200 else None
            except (httpx.HTTPError, ValueError):
                return
            entry = listing_entry(body, ref)
            if entry is not None:
                found.append({"node": member.name, "url": url, **entry} if entry["holds"]
                             else {"node": member.name, "holds": False})

        async with forward_client(self.agent, ASK_TIMEOUT_S) as client:
            async with trio.open_nursery() as nursery:
                for m in view.members():
                    if m.name != self.agent.name and m.name in alive:
                        nursery.start_soon(ask, client, m)
        return sorted(found, key=lambda h: h["node"])

    async def fetch(self, image: str) -> str | None:
        """Get `image` from a peer (see the module docstring); None when it
        is here, else why not."""
        ref = normalize_image(image)
        async with self._fetches:
            self.fetching.add(ref)
            try:
                return await self._fetch(image, ref)
            finally:
                self.fetching.discard(ref)
                pace = getattr(getattr(self.runtime, "puller", None), "pace", None)
                if pace is not None:
                    pace.end(ref)

    async def _fetch(self, image: str, ref: str) -> str | None:
        # Holders are asked again before each transfer: nodes that got the
        # image meanwhile serve it too.  A busy holder (503) costs no
        # attempt: wait a moment and ask again, until timeout_s has passed.
        deadline = trio.current_time() + self.timeout_s
        problems: list[str] = []
        waited_for_loader_s = 0.0
        while len(problems) < MAX_ATTEMPTS:
            holders = await self.holders(ref)
            if not holders:
                problems.append("no peer has it")
                break
            holder = choose_holder(holders, waited_for_loader_s=waited_for_loader_s)
            if holder is None:      # all busy, or one is about to hold it (spread_rule)
                if trio.current_time() >= deadline:
                    problems.append(f"every peer that has it stayed busy for {self.timeout_s:g} s")
                    break
                pause = BUSY_WAIT_S * (1 + random.random())
                await trio.sleep(pause)
                if any(not h.get("holds", True) for h in holders):
                    waited_for_loader_s += pause
                continue
            problem = await self._fetch_from(image, ref, holder)
            if problem is None:
                return None
            if problem.startswith(BUSY) and trio.current_time() < deadline:
                await trio.sleep(BUSY_WAIT_S * (1 + random.random()))
                continue
            problems.append(f"{holder['node']}: {problem}")
            log.warning("fetching %s from %s failed: %s", image, holder["node"], problem)
        return "; ".join(problems)

    def _event(self, **fields: Any) -> None:
        self.agent.events.publish("image_fetch", node=self.agent.name, **fields)

    async def _fetch_from(self, image: str, ref: str, holder: dict[str, Any]) -> str | None:
        size, limit = holder["size"], holder["size"] + TAR_SLACK_BYTES
        spool = Path(self.agent.config.state_dir or tempfile.gettempdir())
        free = shutil.disk_usage(spool).free
        if free < 2 * size + DISK_RESERVE_BYTES:
            return f"not enough disk here for {size} bytes ({free} free in {spool})"
        self._event(image=image, peer=holder["node"], state="started", bytes_total=size)
        fd, name = tempfile.mkstemp(prefix="shoal-image-", suffix=".tar", dir=spool)
        path = Path(name)
        got = 0
        httpx = httpx_module()
        try:
            target = archive_target(ref)
            with trio.move_on_after(self.timeout_s) as deadline, open(fd, "wb") as out:
                async with forward_client(self.agent, httpx.Timeout(30.0)) as client:
                    async with client.stream("GET", holder["url"] + target,
                                             headers=forward_headers(self.agent, "GET", target)) as r:
                        if r.status_code == 503:
                            self._event(image=image, peer=holder["node"], state="busy")
                            return f"{BUSY}: {(await r.aread())[:300].decode(errors='replace')}"
                        if r.status_code != 200:
                            body = (await r.aread())[:300].decode(errors="replace")
                            return self._failed(image, holder, f"HTTP {r.status_code}: {body}", got)
                        async for chunk in r.aiter_bytes(CHUNK_BYTES):
                            got += len(chunk)
                            if got > limit:
                                return self._failed(image, holder, f"more than the {size} bytes it said", got)
                            await trio.to_thread.run_sync(out.write, chunk)
                            self._progress(image, ref, holder["node"], got, size)
            if deadline.cancelled_caught:
                return self._failed(image, holder, f"timed out after {self.timeout_s:g} s", got)
            self.loading.add(ref)       # peers wait for us rather than ask the source again (spread_rule)
            problem = await trio.to_thread.run_sync(check_archive, path, holder["id"], ref)
            if problem is not None:
                return self._failed(image, holder, f"refused: {problem}", got)
            problem = await self._load(path, ref, holder["id"])
            if problem is not None:
                return self._failed(image, holder, problem, got)
        except httpx.HTTPError as e:
            return self._failed(image, holder, f"transfer failed: {e or type(e).__name__}", got)
        finally:
            self.loading.discard(ref)
            with contextlib.suppress(OSError):
                path.unlink()
        self._event(image=image, peer=holder["node"], state="done", bytes=got)
        log.info("fetched %s from %s (%d bytes)", image, holder["node"], got)
        return None

    def _progress(self, image: str, ref: str, peer: str, got: int, size: int) -> None:
        """Bytes received so far: into the puller's paced progress (the status
        record) and, when it lets them through (at most 1/s), an event."""
        pace = getattr(getattr(self.runtime, "puller", None), "pace", None)
        if pace is not None and pace.offer(ImageProgress(ref, peer, 0, 0, got, max(size, got)), trio.current_time()):
            self._event(image=image, peer=peer, state="progress", bytes=got, bytes_total=size)

    def _failed(self, image: str, holder: dict[str, Any], problem: str, got: int) -> str:
        self._event(image=image, peer=holder["node"], state="failed", bytes=got, reason=problem)
        return problem

    async def _load(self, path: Path, ref: str, image_id: str) -> str | None:
        engine = self.runtime.engine

        def load() -> None:
            with open(path, "rb") as f:
                for msg in engine.stream_api.load_image(f):
                    if isinstance(msg, dict) and msg.get("error"):
                        raise ValueError(str(msg["error"]))     # the engine's answer (node.runtime.engine)

        try:
            await engine.call("load", load, timeout_s=self.timeout_s)
            loaded = await engine.call("inspect", engine.api.inspect_image, ref)
        except RuntimeProblem as e:
            return f"docker load refused it: {engine_message(e)}"
        except EngineError as e:
            return str(e)
        if loaded.get("Id") != image_id:
            return f"loaded {ref} is {loaded.get('Id', '?')[:19]}..., not {image_id[:19]}..."
        return None


def listing_entry(body: Any, ref: str) -> dict[str, Any] | None:
    """What a peer's image listing (GET /v1/images, as peers ask it) says of
    `ref`: {holds: True, id, size, serving, served, busy_total} if it has
    it, {holds: False} if it is loading it, None otherwise -- and None for a
    listing that is not one: a peer's answer is checked field by field."""
    if not isinstance(body, dict) or body.get("max_serves") == 0:
        return None     # not a listing, or a node that serves no images to peers
    images, loading = body.get("images"), body.get("loading")
    serving, most = body.get("serving"), body.get("max_serves")
    busy = isinstance(serving, int) and isinstance(most, int) and serving >= most
    for img in images if isinstance(images, list) else ():
        if isinstance(img, dict) and img.get("ref") == ref and str(img.get("id", "")).startswith("sha256:"):
            return {"id": img["id"], "size": _count(img.get("size")), "serving": _count(img.get("serving")),
                    "served": _count(img.get("served")), "busy_total": busy, "holds": True}
    if isinstance(loading, list) and ref in loading:
        return {"holds": False}
    return None


def _count(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0
