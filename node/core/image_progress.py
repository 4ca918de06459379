"""How far a node is in getting an image: what its status record says of its pulls.

How this works: while a node pulls an image from a registry or fetches it
from a peer, its runtime reports an `ImageProgress` per image (layers done of
the layers seen, bytes done of the bytes known so far; a peer fetch has no
layers, only the bytes received of the holder's size).  The agent feeds them
to the core (`ImagePulls`), which carries them in the node's gossiped status
record (node.core.status), so any agent can tell, say in `shoal job run`'s
live output or on `/ui`: "pulling busybox:2 on node-3: 3/5 layers,
12.1/48.0 MiB".

The rule that keeps this cheap: at most `MAX_PULLS` entries, image names up
to `MAX_IMAGE_CHARS` (longer ones are left out rather than cut, so a viewer
never matches a cut name to the wrong job), and the runtime refreshes each
entry at most once a second (node/runtime/pulls.py); the record itself goes
out at most once per `status_min_interval_s` (node.core.publish).  A record
that does not fit its payload drops these first (`NodeStatus.fit`).
Decoding is lenient: an entry we cannot read is dropped, never an error.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

MAX_PULLS = 4
MAX_IMAGE_CHARS = 128
MAX_NODE_CHARS = 64
MAX_COUNT = (1 << 63) - 1
REGISTRY = ""           # `peer` of a registry pull
MIB = float(1 << 20)


@dataclass(frozen=True, slots=True)
class ImageProgress:
    image: str              # normalized name:tag, as placement compares images
    peer: str = REGISTRY    # the node it is fetched from; "" = a registry pull
    layers_done: int = 0
    layers: int = 0
    bytes_done: int = 0
    bytes_total: int = 0    # known so far: a layer's size is known once it downloads

    def text(self, node: str) -> str:
        """One line for people: "pulling busybox:2 on node-3: 3/5 layers, 12.1/48.0 MiB"."""
        size = f"{self.bytes_done / MIB:.1f}/{self.bytes_total / MIB:.1f} MiB" if self.bytes_total else ""
        if self.peer:
            return f"fetching {self.image} on {node} from {self.peer}" + (f": {size}" if size else "")
        parts = [f"{self.layers_done}/{self.layers} layers"] if self.layers else []
        parts += [size] if size else []
        return f"pulling {self.image} on {node}" + (f": {', '.join(parts)}" if parts else ": starting")

    def to_json(self, node: str) -> dict[str, Any]:
        return {"node": node, "image": self.image, "source": self.peer or "registry",
                "layers_done": self.layers_done, "layers": self.layers, "bytes": self.bytes_done,
                "bytes_total": self.bytes_total, "text": self.text(node)}

    def encode_raw(self) -> list[object]:
        return [self.image, self.peer, self.layers_done, self.layers, self.bytes_done, self.bytes_total]

    @classmethod
    def decode_raw(cls, raw: Any) -> "ImageProgress | None":
        """Lenient: None for anything that is not a well-formed entry."""
        if not isinstance(raw, list) or len(raw) < 6:
            return None
        image, peer, *counts = raw[:6]
        if not (isinstance(image, str) and 0 < len(image) <= MAX_IMAGE_CHARS and isinstance(peer, str)
                and len(peer) <= MAX_NODE_CHARS
                and all(isinstance(c, int) and not isinstance(c, bool) and 0 <= c <= MAX_COUNT for c in counts)):
            return None
        return cls(image, peer, *counts)


def bounded(pulls: Iterable[ImageProgress]) -> tuple[ImageProgress, ...]:
    """What a record may carry: names that fit, at most MAX_PULLS, in image order."""
    ok = sorted((p for p in pulls if 0 < len(p.image) <= MAX_IMAGE_CHARS and len(p.peer) <= MAX_NODE_CHARS),
                key=lambda p: p.image)
    return tuple(ok[:MAX_PULLS])


def decode_all(raw: Any) -> tuple[ImageProgress, ...]:
    if not isinstance(raw, list):
        return ()
    return bounded(p for p in (ImageProgress.decode_raw(r) for r in raw[:MAX_PULLS]) if p is not None)


def of_image(pulls: Iterable[ImageProgress], image: str) -> ImageProgress | None:
    """The entry for `image` (normalized), if any."""
    return next((p for p in pulls if p.image == image), None)
