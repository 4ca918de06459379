"""Pull progress, reduced and paced: Docker's progress stream in, a few numbers out.

How this works
--------------
`LayerTally.feed(msg)` takes each message of the engine's pull stream (the
docker SDK's `api.pull(..., stream=True, decode=True)`: dicts such as
``{"status": "Downloading", "id": "a1b2", "progressDetail": {"current": 512,
"total": 2048}}``) and keeps, per layer, the bytes downloaded of its size:

- a layer counts once it is named ("Pulling fs layer", "Waiting",
  "Downloading", ...); "Pulling from ..." names the tag, not a layer;
- it is done once downloaded ("Download complete") or found here ("Already
  exists", "Pull complete"); a done layer counts its full size;
- "Extracting" (the same bytes unpacked) and messages without a layer id
  ("Digest: ...", "Status: ...") change nothing; `{"error": ...}` is kept as
  the pull's error.

`counts()` gives (layers done, layers seen, bytes done, bytes known): the
total grows as layer sizes become known.  Malformed messages are ignored,
and at most MAX_LAYERS layers are tracked.

`Pace` is the rule that bounds what is reported: a changed value of one
image is passed on at most once per `every_s` (its first value and its end
at once), so a node tells the cluster about each image at most once a
second however fast the engine streams.

Pure: no I/O, no clock (`now` is an argument); tests feed it recorded
streams.  node/runtime/pulls.py drives it from the pull's worker thread.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from node.core.image_progress import ImageProgress

MAX_LAYERS = 256
DONE_STATUSES = ("Download complete", "Pull complete", "Already exists")
PROGRESS_EVERY_S = 1.0


def _count(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


@dataclass
class LayerTally:
    layers: dict[str, tuple[int, int]] = field(default_factory=dict)   # layer -> (bytes done, size)
    done: set[str] = field(default_factory=set)
    error: str | None = None

    def feed(self, msg: Any) -> None:
        if not isinstance(msg, dict):
            return
        if msg.get("error"):
            self.error = str(msg["error"])
            return
        layer, status = msg.get("id"), msg.get("status")
        if not isinstance(layer, str) or not layer or not isinstance(status, str) or status.startswith("Pulling from"):
            return
        if layer not in self.layers:
            if len(self.layers) >= MAX_LAYERS:
                return
            self.layers[layer] = (0, 0)
        cur, total = self.layers[layer]
        detail = msg.get("progressDetail")
        if status == "Downloading" and isinstance(detail, dict):
            total = _count(detail.get("total")) or total
            cur = min(_count(detail.get("current")), total) if total else _count(detail.get("current"))
        elif status in DONE_STATUSES:
            cur = total = max(cur, total)
            self.done.add(layer)
        self.layers[layer] = (cur, total)

    def counts(self) -> tuple[int, int, int, int]:
        """(layers done, layers seen, bytes done, bytes known so far)."""
        return (len(self.done), len(self.layers), sum(c for c, _ in self.layers.values()),
                sum(t for _, t in self.layers.values()))

    def progress(self, image: str) -> ImageProgress:
        done, layers, got, total = self.counts()
        return ImageProgress(image, "", done, layers, got, total)


@dataclass
class Pace:
    """At most one changed report per image every `every_s` (see the module doc)."""

    every_s: float = PROGRESS_EVERY_S
    shown: dict[str, tuple[ImageProgress, float]] = field(default_factory=dict)   # image -> (value, when)

    def offer(self, p: ImageProgress, now: float) -> bool:
        """Record `p` as reported now if it changed and its image's last
        report is at least every_s old (or there was none): True when so."""
        last = self.shown.get(p.image)
        if last is not None and (last[0] == p or now - last[1] < self.every_s):
            return False
        self.shown[p.image] = (p, now)
        return True

    def end(self, image: str) -> None:
        self.shown.pop(image, None)

    def current(self) -> tuple[ImageProgress, ...]:
        """What was last reported of every image under way, by image."""
        return tuple(v for _, (v, _) in sorted(self.shown.items()))
