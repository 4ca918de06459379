"""Which peer a node fetches an image from, and when a holder sends one.

How this works (the rule that makes an image spread as a tree):

- A holder sends at most `PER_IMAGE_SERVES` copy of one image at a time
  (and at most its `max_serves` archives in all; 0: none).  Capping the
  copies per image is what leaves receivers for the nodes that got it.
- A receiver asks every peer how it stands with the image: holders say how
  many copies of it they are sending (`serving`) and have sent (`served`);
  a node that has received a copy and is loading it says so (`loading`:
  it holds the image within moments, and has sent none).
- It fetches from a free holder (below both caps) that has sent the fewest
  copies (then the least busy; at random among equals), so a node that
  just got the image is preferred over the source.
- It waits (asks again in a moment, no attempt lost) when every holder is
  busy, and also when some peer is loading the image while every free
  holder has sent a copy already: that peer serves in moments, and taking
  the source's next copy instead is how one node ended up sending every
  copy (receivers poll while the first receivers still load theirs).  A
  receiver waits so at most `MAX_LOADER_WAIT_S` in all, then takes a free
  holder anyway: a load may be slow or fail.

With one holder and N receivers the source sends about log2(N+1) copies
instead of N (tests/node/test_spread_rule.py simulates it).

Pure: the caller gives the answers and how long it has waited.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

PER_IMAGE_SERVES = 1
MAX_LOADER_WAIT_S = 30.0


@dataclass(frozen=True, slots=True)
class PeerState:
    """One peer's answer about one image."""

    node: str
    holds: bool             # False: it received a copy and is loading it
    serving: int = 0        # copies of this image it sends now
    served: int = 0         # copies of this image it has sent (or begun to)
    busy_total: bool = False  # at its max_serves archives (of any image)

    @property
    def free(self) -> bool:
        return self.holds and not self.busy_total and self.serving < PER_IMAGE_SERVES


def may_serve(serving_image: int, serving_total: int, max_serves: int) -> bool:
    """May a holder start sending one more copy of an image it sends
    `serving_image` of, while it sends `serving_total` archives in all?"""
    return max_serves > 0 and serving_total < max_serves and serving_image < PER_IMAGE_SERVES


def choose(peers: list[PeerState], waited_for_loader_s: float, rng: random.Random) -> PeerState | None:
    """The peer to fetch from now, or None: wait a moment and ask again
    (see the module doc).  `waited_for_loader_s`: how long this receiver has
    already waited for loading peers."""
    free = [p for p in peers if p.free]
    if not free:
        return None
    fewest = min(p.served for p in free)
    if fewest > 0 and waited_for_loader_s < MAX_LOADER_WAIT_S and any(not p.holds for p in peers):
        return None
    best = [p for p in free if p.served == fewest]
    least = min(p.serving for p in best)
    return rng.choice(sorted((p for p in best if p.serving == least), key=lambda p: p.node))

