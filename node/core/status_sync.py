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

Members gossip missed.  The same infection-style epidemic carries each
member's alive: after 60 agents started at once, a few pairs of them stayed
strangers, one holding the other alive while the other did not know it,
until a periodic push/pull 18-30 s later (the joiner had pulled its seed's
state before the other had joined).  A status record names its member, so
this exchange finds them: a record pulled for a name we do not hold as a
member, and a record gossip brought more than a probe interval ago whose
member has still not arrived (Swim.strangers), are named to the peer
(`MembersWanted`, at the next round for the latter), and the peer answers
with their alive messages (Swim.tell_members), which merge as gossip's own.

Best effort: every message of this exchange is sent as a datagram when it
fits one (node.core.node_core `_send`: over TCP only when larger, as for
claims and auction messages).  A lost one costs a round, and another round
comes store_sync_interval_s later, while records still move.  Sent
reliably, each was a TCP connection of its own: when 60 agents started at
once on 2 cores, 785 of the 1,074 connections they opened were this
exchange; by datagram, the last agent saw all 60 sooner in 9 of 10
interleaved pairs (median 11.1 s against 11.6 s, docs/benchmarks.md).

The core hands in its gossip (Swim: the payloads, merging them, strangers
and alives) and how to send a message and count an event; nothing here
touches the network.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, Protocol

from node.core import wire
from node.core.config import ClusterConfig

if TYPE_CHECKING:
    from gossip.swim import Swim

# Records sent, and asked for, per exchange: gossip brings most records; this
# path mends the few it missed, so a bounded, random share of what differs is
# enough, and a large cluster in the middle of a deploy (where every record
# differs somewhere) does not swap whole tables every few seconds.  Each
# record is at most PAYLOAD_MAX_BYTES (1 KiB): a message stays far below
# SYNC_MESSAGE_MAX_BYTES.
RECORDS_PER_EXCHANGE = 64


class Send(Protocol):
    """How the core sends a node message (node.core.node_core `_send`)."""

    def __call__(self, peer: str, msg: wire.NodeMessage, now: float, *, reliable: bool) -> None: ...


class StatusSync:
    def __init__(self, name: str, rng: random.Random, cfg: ClusterConfig, swim: Swim, *,
                 send: Send, count: Callable[[str], None]) -> None:
        self.name = name
        self._swim = swim
        self._rng = rng
        self._cfg = cfg
        self._core_send = send
        self._count = count
        self.moved_at: float | None = None  # another node's record last reached us

    def moved(self, now: float) -> None:
        self.moved_at = now

    def tick(self, peers: Iterable[str], now: float) -> None:
        """One round: offer our versions to one random live peer, if records moved lately."""
        if self.moved_at is None or now - self.moved_at > self._cfg.status_sync_active_s:
            return
        others = sorted(p for p in peers if p != self.name)
        if not others:
            return
        peer = self._rng.choice(others)
        payloads = self._swim.payloads()
        self._send(peer, wire.StatusVersions(tuple((n, v) for n, (v, _) in sorted(payloads.items()))), now)
        self._count("status_syncs")
        strangers = self._swim.strangers(self._swim.config.probe_interval_s, now)
        if strangers:
            self._send(peer, wire.MembersWanted(tuple(self._some(strangers))), now)
            self._count("members_wanted")

    def on_message(self, origin: str, msg: wire.StatusVersions | wire.StatusRecords | wire.MembersWanted,
                   now: float) -> None:
        match msg:
            case wire.StatusVersions(versions):
                self.on_versions(origin, versions, now)
            case wire.StatusRecords(records, want):
                self.on_records(origin, records, want, now)
            case wire.MembersWanted(names):
                self._swim.tell_members(origin, names, now)

    def on_versions(self, origin: str, versions: tuple[tuple[str, int], ...], now: float) -> None:
        """A peer's versions: send it what we hold newer, ask for what it holds newer."""
        payloads = self._swim.payloads()
        theirs = dict(versions)
        newer = [(n, v, data) for n, (v, data) in sorted(payloads.items()) if v > theirs.get(n, -1)]
        want = [n for n, v in sorted(theirs.items()) if v > payloads.get(n, (-1, b""))[0]]
        if newer or want:
            self._send(origin, wire.StatusRecords(tuple(self._some(newer)), tuple(self._some(want))), now)

    def on_records(self, origin: str, records: tuple[tuple[str, int, bytes], ...], want: tuple[str, ...],
                   now: float) -> None:
        """Records a peer sent us: merge them; send back those it asked for;
        name the members we lack to the peer that held their records."""
        swim = self._swim
        for node, version, data in records:
            swim.merge_payload(node, version, data, now)
            self._count("status_records_pulled")
        payloads = swim.payloads()
        mine = [(n, *payloads[n]) for n in want[:RECORDS_PER_EXCHANGE] if n in payloads]
        if mine:
            self._send(origin, wire.StatusRecords(tuple(mine), ()), now)
        lacking = [n for n, _, _ in records if n != self.name and swim.member(n) is None]
        if lacking:
            self._send(origin, wire.MembersWanted(tuple(self._some(lacking))), now)
            self._count("members_wanted")

    def _send(self, peer: str, msg: wire.NodeMessage, now: float) -> None:
        self._core_send(peer, msg, now, reliable=False)  # best effort (module docstring)

    def _some(self, items: list[Any]) -> list[Any]:
        return items if len(items) <= RECORDS_PER_EXCHANGE else self._rng.sample(items, RECORDS_PER_EXCHANGE)
