"""Anti-entropy for the node core's two replicated maps (jobs, claims).

How this works: every node publishes both maps' digests in its status
record.  Every `store_sync_interval_s` the core calls `AntiEntropy.tick`,
which, per map, picks one random live peer whose digest differs from ours
and sends it our bucket digests (`SyncDigest`); the peer answers with its
entries in the buckets that differ and asks for ours (`SyncEntries` with
`want`, `on_digest`), and we send those back (`send_entries`), split so no
message exceeds SYNC_MESSAGE_MAX_BYTES.  The job map's buckets carry the
jobs' older versions too (node.core.history): they travel as entries.

Tombstones are collected in the same tick, once every live peer shows our
digest: deleted jobs at least `tombstone_min_age_s` old (by their stamp),
released claims once we have seen them released for that long (ballots are
not timestamps).  Collections are emitted (`ForgetEntries`, `ForgetClaims`)
for durable storage and change our published digests.

The core hands in how to send a message, emit an output, note that our
digests moved, and count an event; nothing here touches the network.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping
from typing import Any

from auction.claims import Claim
from gossip.lww import LwwMap
from node.core import wire
from node.core.config import SYNC_MESSAGE_MAX_BYTES, ClusterConfig
from node.core.history import MAX_BY_CHARS, MAX_PROMOTED_CHARS, MAX_REF_CHARS, WHYS
from node.core.jobstore import JobStore
from node.core.outputs import CoreOutput, ForgetClaims, ForgetEntries
from node.core.status import NodeStatus


# A version's Meta on the wire at most: its bounded texts (node.core.history).
META_COST_BYTES = 32 + MAX_BY_CHARS + MAX_REF_CHARS + MAX_PROMOTED_CHARS + max(len(w) for w in WHYS)


class AntiEntropy:
    def __init__(self, name: str, store: JobStore, claims: LwwMap[Claim], rng: random.Random,
                 cfg: ClusterConfig, *, send: Callable[[str, wire.NodeMessage, float], None],
                 emit: Callable[[CoreOutput], None], digests_moved: Callable[[float], None],
                 count: Callable[[str], None]) -> None:
        self.name = name
        self.store = store
        self.claims = claims
        self.maps: dict[int, LwwMap[Any]] = {wire.MAP_JOBS: store, wire.MAP_CLAIMS: claims}
        self._rng = rng
        self._cfg = cfg
        self._send = send
        self._emit = emit
        self._digests_moved = digests_moved
        self._count = count
        self._released_seen: dict[str, float] = {}

    def tick(self, statuses: Mapping[str, NodeStatus], wall_ms: int, now: float) -> None:
        """One round: sync each map with one differing live peer, then collect tombstones."""
        maps: tuple[tuple[int, LwwMap[Any], Callable[[NodeStatus], bytes]], ...] = (
            (wire.MAP_JOBS, self.store, lambda s: s.store_digest),
            (wire.MAP_CLAIMS, self.claims, lambda s: s.claims_digest))
        for map_id, lww, digest_of in maps:
            mine = lww.digest()
            differing = [n for n, s in statuses.items() if n != self.name and digest_of(s) != mine]
            if differing:
                peer = self._rng.choice(sorted(differing))
                self._send(peer, wire.SyncDigest(map_id, lww.bucket_digests()), now)
                self._count("state_syncs")
        others = [s.store_digest for n, s in statuses.items() if n != self.name]
        gone = self.store.collectable_tombstones(wall_ms, int(self._cfg.tombstone_min_age_s * 1000), others)
        if gone:
            self.store.forget(gone)
            self._emit(ForgetEntries(tuple(gone)))
            self._digests_moved(now)
        # Released claims: same rule, but their age is counted from when we
        # first saw them released (ballots are not timestamps).
        claims = self.claims
        others = [s.claims_digest for n, s in statuses.items() if n != self.name]
        if all(d == claims.digest() for d in others):
            min_age = self._cfg.tombstone_min_age_s
            for key, claim in claims.entries.items():
                if claim.released:
                    self._released_seen.setdefault(key, now)
            old = [k for k, t in self._released_seen.items()
                   if now - t >= min_age and (c := claims.get(k)) is not None and c.released]
            if old:
                claims.forget(old)
                for k in old:
                    del self._released_seen[k]
                self._emit(ForgetClaims(tuple(old)))
                self._digests_moved(now)

    def on_digest(self, origin: str, map_id: int, buckets: list[bytes], now: float) -> None:
        """A peer's bucket digests: send it our entries where they differ, and ask for its."""
        lww = self.maps[map_id]
        diff = lww.differing_buckets(buckets)
        if diff:
            self.send_entries(origin, map_id, lww.entries_in(diff), diff, now)

    def send_entries(self, peer: str, map_id: int, entries: list[Any], want: list[int], now: float) -> None:
        # Split so no single message exceeds SYNC_MESSAGE_MAX_BYTES.
        batch: list[Any] = []
        size = 0
        for entry in entries:
            cost = len(getattr(entry, "spec", None) or b"") + 128
            if getattr(entry, "meta", None) is not None:
                cost += META_COST_BYTES
            if batch and size + cost > SYNC_MESSAGE_MAX_BYTES:
                self._send(peer, wire.SyncEntries(map_id, tuple(batch), ()), now)
                batch, size = [], 0
            batch.append(entry)
            size += cost
        self._send(peer, wire.SyncEntries(map_id, tuple(batch), tuple(want)), now)
