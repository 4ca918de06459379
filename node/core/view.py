"""A read-only view of a live node core, for the API, the metrics and tests.

How this works: `CoreView` wraps one `NodeCore` and answers questions about
it (members, statuses, jobs, claims, pending reasons, counters) without
exposing the core's parts (`core.swim`, `core.placement`) or any method that
changes them.  It copies nothing: every read looks at the live core, and
mappings come back as read-only proxies over the core's own dicts.

That is safe because the core has one driver at a time and is never changed
while a read runs: the trio agent reads only between pump turns (its tasks
share one thread, and a read has no `await` in it), the simulator between
events.  A read that must be consistent across several calls (one API
answer) does all of them with no `await` in between.  Do not keep what a read
returned across an `await`: proxies change as the core does.

`catalog()` derives the service catalog (node.core.catalog) and keeps it
until one of its inputs moves: claims or job-store digest, the alive set,
any status record, our runtime's latest report or our own record.  The key
is compared, not hashed, and it holds the records themselves, so a check
costs one identity comparison per node: cheap enough for the DNS server to
call per query.

One read is not pure: `overcommit(now)` asks the ledger, which first expires
reservations whose time is up (as the core's own next ledger read would).
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import TYPE_CHECKING

from auction.claims import Claim, slot_key
from auction.ledger import OvercommitError
from auction.membership import holder_gone_reason
from auction.placement import PlacementConfig
from auction.rollout import describe
from auction.spec import JobSpec
from gossip.events import MemberInfo
from node.core.catalog import Catalog, build_catalog
from node.core.jobstore import Entry
from node.core.status import NodeStatus, RuntimeSummary

if TYPE_CHECKING:
    from node.core.node_core import ClusterConfig, NodeCore


class CoreView:
    __slots__ = ("_catalog", "_catalog_key", "_core", "ballot_id", "counters", "name", "statuses")

    def __init__(self, core: NodeCore) -> None:
        self._core = core
        self.name: str = core.name
        self.ballot_id: str = core.ballot_id
        self.statuses: Mapping[str, NodeStatus] = MappingProxyType(core.statuses)
        """Every node's last published status record we know (ours included)."""
        self.counters: Mapping[str, int] = MappingProxyType(core.counters)
        self._catalog_key: tuple[object, ...] | None = None
        self._catalog = Catalog()

    # ---- membership (gossip)
    def members(self) -> list[MemberInfo]:
        return self._core.swim.members()

    def member(self, name: str) -> MemberInfo | None:
        return self._core.swim.member(name)

    def alive_names(self) -> set[str]:
        return self._core.swim.alive_names()

    def health_score(self) -> int:
        """Lifeguard's local health multiplier (0 is healthy)."""
        return self._core.swim.health_score()

    def gossip_stats(self) -> dict[str, int]:
        return self._core.swim.stats()

    def pending_broadcasts(self) -> int:
        return self._core.swim.pending_broadcasts()

    # ---- node statuses
    @property
    def status(self) -> NodeStatus:
        """Our own status record, as last built (published or about to be)."""
        return self._core.status()

    def live_statuses(self) -> dict[str, NodeStatus]:
        """Statuses of members currently believed alive (and ourselves)."""
        return self._core.live_statuses()

    @property
    def runtime_summary(self) -> RuntimeSummary | None:
        """Our runtime's latest report, before fitting it into the record."""
        return self._core.runtime_summary

    # ---- jobs
    def jobs(self) -> list[Entry]:
        """Live (not deleted) jobs, durable here."""
        return self._core.store.live()

    def job(self, name: str) -> Entry | None:
        """The entry for name, tombstone included (None if never seen)."""
        return self._core.store.get(name)

    def history(self, name: str) -> list[Entry]:
        """The job's last versions, oldest first (node.core.history)."""
        return self._core.store.history.of(name)

    @property
    def history_bytes(self) -> int:
        return self._core.store.history.bytes

    @property
    def live_job_count(self) -> int:
        return self._core.store.live_count

    def store_digest(self) -> bytes:
        return self._core.store.digest()

    def spec_of(self, entry: Entry | None) -> JobSpec | None:
        """The parsed spec of an entry (None: deleted or unreadable)."""
        return self._core.placement.spec_of(entry)

    # ---- claims and placement
    def claims(self) -> Mapping[str, Claim]:
        """Every claim we know, slot key -> claim (released ones included)."""
        return MappingProxyType(self._core.placement.claims.entries)

    def claims_digest(self) -> bytes:
        return self._core.placement.claims.digest()

    def winning_claim(self, slot: str) -> Claim | None:
        return self._core.placement.winning_claim(slot)

    def held_by_node(self, spec: JobSpec) -> dict[str, int]:
        """Replicas of the job each node keeps (slots under `replicas`, whose
        winning claim's holder is alive and not drained), as its max_per_node
        counts them (auction.node_limit)."""
        alive, statuses = self.alive_names(), self.live_statuses()
        held: dict[str, int] = {}
        for index in range(spec.replicas):
            claim = self.winning_claim(slot_key(spec.name, index))
            if claim is not None and holder_gone_reason(claim.node, alive, statuses) is None:
                held[claim.node] = held.get(claim.node, 0) + 1
        return held

    def global_slots(self, spec: JobSpec) -> dict[int, Claim]:
        """A global job's slots whose holders keep them (alive, not drained:
        auction.global_jobs rule 4), index -> claim."""
        alive, statuses = self.alive_names(), self.live_statuses()
        return {i: c for i, c in sorted(self._core.placement.global_slots(spec.name).items())
                if holder_gone_reason(c.node, alive, statuses) is None}

    def global_refusal(self, job: str) -> str | None:
        """Why this node runs no replica of the global job (auction.global_act), if it said."""
        return self._core.placement.global_refusals.get(job)

    def pending_reasons(self) -> Mapping[str, str]:
        """Slots this node coordinates whose last auction left them pending,
        slot -> why."""
        return MappingProxyType(self._core.placement.pending_reasons)

    def busy_slots(self, job: str) -> set[int]:
        """Indices of job's slots in an auction this node runs right now."""
        return self._core.placement.auctioneer.busy_slots(job)

    @property
    def placement_interval_s(self) -> float:
        return self._core.placement.cfg.placement_interval_s

    @property
    def cluster_config(self) -> ClusterConfig:
        """The [cluster] settings this core runs with."""
        return self._core.cfg

    @property
    def clock_correction_ms(self) -> int:
        """What this node adds to its own wall clock to keep cluster time
        (0 unless it is seconds off; node.core.cluster_clock)."""
        return self._core.cluster_clock.correction_ms

    def cluster_clock(self) -> dict[str, object]:
        """How far our clock is from the cluster's, and the problem if it is
        off (node.core.cluster_clock)."""
        return self._core.cluster_clock.to_json(self._core.clock.max_skew_ms)

    @property
    def placement_config(self) -> PlacementConfig:
        """The [placement] settings this core runs with."""
        return self._core.placement.cfg

    def claims_replayed(self) -> bool:
        """Our claims digest matches every live peer's (and there is one)."""
        mine = self.claims_digest()
        peers = [s.claims_digest for n, s in self.live_statuses().items() if n != self.name]
        return bool(peers) and all(d == mine for d in peers)

    def overcommit(self, now: float) -> str | None:
        """Why our ledger holds more than our capacity (None if it does not,
        or only because replicas we found running were adopted)."""
        try:
            self._core.placement.ledger.check(now)
        except OvercommitError as e:
            return str(e)
        return None

    def rollout(self, job: str) -> dict[str, object] | None:
        """The job's rollout in progress as this agent sees it (auction.rollout:
        target container hash, each slot's state, failed / waiting for a
        promote); None when every slot runs the job's current version."""
        r = self._core.placement.rollouts.jobs.get(job)
        return None if r is None else describe(r)

    # ---- service catalog
    def catalog(self) -> Catalog:
        """The cluster's serving replicas as this agent sees them
        (node.core.catalog), our own from our runtime's latest report."""
        core = self._core
        alive = core.swim.alive_names()
        key = (core.placement.claims.digest(), core.store.digest(), alive, tuple(core.statuses.items()),
               core.runtime_summary, core.status())
        if key != self._catalog_key:
            hosts = {m.name: m.addr.host for m in core.swim.members() if m.name in alive}
            self._catalog = build_catalog(
                core.placement.claims.entries.values(), core.statuses, alive, hosts,
                spec_of=lambda job: core.placement.spec_of(core.store.get(job)),
                me=core.name, my_runtime=core.runtime_summary, my_status=core.status())
            self._catalog_key = key
        return self._catalog
