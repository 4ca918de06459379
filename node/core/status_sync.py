"""Status records pulled from a random peer while they change.

How this works: a node's status record (node.core.status) is its gossip
payload (gossip.swim_user): a broadcast that every holder sends
retransmit_limit times, the fewest-sent first.  While a large deploy keeps
every node's broadcast queue full, that epidemic reaches most members within
a second or two but leaves a few without some record for many seconds: with
100 simulated nodes and 1,000 replicas, every service catalog listed all of
them only 22 s after the last one ran, and every entry missing after the
first 8 s was a status record, never a claim (claims have their own
anti-entropy, node.core.antientropy).  Push/pull mends such gaps too, but at
that size only every 90 s.

So, while records change, every store_sync_interval_s each node sends one
random live peer the version of every record it holds (`StatusVersions`).
The peer answers with each record it holds newer, and names those it holds
older or not at all (`StatusRecords` with `want`); we send those back.
"While records change": another node's record reached us within
`status_sync_active_s`; a quiet cluster sends nothing.  Records merge as
gossip's own payloads (Swim.merge_payload, the highest version wins), so a
peer can tell us nothing by this path that it could not tell us by gossip.

The core hands in how to send a message and count an event, and the
payloads gossip holds; nothing here touches the network.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from node.core import wire
from node.core.config import ClusterConfig

# Records sent, and asked for, per exchange: gossip brings most records; this
# path mends the few it missed, so a bounded, random share of what differs is
# enough, and a large cluster in the middle of a deploy (where every record
# differs somewhere) does not swap whole tables every few seconds.  Each
# record is at most PAYLOAD_MAX_BYTES (1 KiB): a message stays far below
# SYNC_MESSAGE_MAX_BYTES.
RECORDS_PER_EXCHANGE = 64

Payloads = Mapping[str, tuple[int, bytes]]


class StatusSync:
    def __init__(self, name: str, rng: random.Random, cfg: ClusterConfig, *,
                 send: Callable[[str, wire.NodeMessage, float], None], count: Callable[[str], None]) -> None:
        self.name = name
        self._rng = rng
        self._cfg = cfg
        self._send = send
        self._count = count
        self.moved_at: float | None = None  # another node's record last reached us

    def moved(self, now: float) -> None:
        self.moved_at = now

    def tick(self, payloads: Payloads, peers: Iterable[str], now: float) -> None:
        """One round: offer our versions to one random live peer, if records moved lately."""
        if self.moved_at is None or now - self.moved_at > self._cfg.status_sync_active_s:
            return
        others = sorted(p for p in peers if p != self.name)
        if not others:
            return
        peer = self._rng.choice(others)
        self._send(peer, wire.StatusVersions(tuple((n, v) for n, (v, _) in sorted(payloads.items()))), now)
        self._count("status_syncs")

    def on_versions(self, origin: str, versions: tuple[tuple[str, int], ...], payloads: Payloads,
                    now: float) -> None:
        """A peer's versions: send it what we hold newer, ask for what it holds newer."""
        theirs = dict(versions)
        newer = [(n, v, data) for n, (v, data) in sorted(payloads.items()) if v > theirs.get(n, -1)]
        want = [n for n, v in sorted(theirs.items()) if v > payloads.get(n, (-1, b""))[0]]
        if newer or want:
            self._send(origin, wire.StatusRecords(tuple(self._some(newer)), tuple(self._some(want))), now)

    def on_records(self, origin: str, records: tuple[tuple[str, int, bytes], ...], want: tuple[str, ...],
                   payloads: Payloads, merge: Callable[[str, int, bytes, float], None], now: float) -> None:
        """Records a peer sent us: merge them; send back those it asked for."""
        for node, version, data in records:
            merge(node, version, data, now)
            self._count("status_records_pulled")
        mine = [(n, *payloads[n]) for n in want[:RECORDS_PER_EXCHANGE] if n in payloads]
        if mine:
            self._send(origin, wire.StatusRecords(tuple(mine), ()), now)

    def _some(self, items: list[Any]) -> list[Any]:
        return items if len(items) <= RECORDS_PER_EXCHANGE else self._rng.sample(items, RECORDS_PER_EXCHANGE)
