"""Prometheus series of the cluster state: jobs, claims, slots, auctions, state dir.

How this works: `ClusterMetrics` adds its series to an `AgentMetrics`
(node/telemetry/metrics.py), so one scrape of `/v1/metrics` shows both.  The
counters move as the pump dispatches the node core's outputs; the gauges are
set from the core's read-only view just before each scrape (`observe`, with
no `await` inside, so between pump turns: node.core.view).

    shoal_jobs                              live jobs in the replicated store
    shoal_claims{holder=here|others}        winning (unreleased) slot claims
    shoal_slots{state=placed|pending}       desired slots, as this agent sees them
    shoal_pending_slots_coordinated         slots this agent coordinates whose
                                            last auction left them pending
    shoal_catalog_instances                 replicas in this agent's service catalog
                                            (node.core.catalog: running, alive node)
    shoal_catalog_services                  jobs with at least one listed replica
    shoal_placements_total                  replicas started here (StartReplica)
    shoal_replica_stops_total               replicas stopped here (StopReplica)
    shoal_awards_accepted_total             awards this node accepted
    shoal_auction_rounds_total{outcome}     rounds coordinated here: placed |
                                            partial | unplaced
    shoal_state_problems_total{store}       problems found in the state dir
                                            (corrupt file, bad rows): jobs |
                                            claims | node
    shoal_state_writes_total{store,outcome} durable writes: ok | error
    shoal_state_queue_full_total            writes refused: persistence queue full
    shoal_clock_offset_seconds              this node's wall clock minus cluster time
                                            (the median of its peers': node.core.cluster_clock);
                                            > 0 ahead, 0 while no peer has told its clock
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from auction.claims import slot_key
from node.telemetry.metrics import AgentMetrics

if TYPE_CHECKING:
    from node.core.view import CoreView


class ClusterMetrics:
    def __init__(self, metrics: AgentMetrics) -> None:
        self.jobs = metrics.gauge("shoal_jobs", "Live jobs in this agent's replicated job store")
        self.claims = metrics.gauge("shoal_claims", "Winning (unreleased) slot claims, by holder", "holder")
        self.slots = metrics.gauge("shoal_slots", "Desired replica slots by placement state (this agent's view)",
                                   "state")
        self.pending_coordinated = metrics.gauge(
            "shoal_pending_slots_coordinated", "Slots this agent coordinates whose last auction left them pending")
        self.catalog_instances = metrics.gauge("shoal_catalog_instances",
                                               "Replicas listed in this agent's service catalog")
        self.catalog_services = metrics.gauge("shoal_catalog_services",
                                              "Jobs with at least one replica in this agent's service catalog")
        self.placements = metrics.counter("shoal_placements", "Replicas started on this node (StartReplica)")
        self.stops = metrics.counter("shoal_replica_stops", "Replicas stopped on this node (StopReplica)")
        self.awards = metrics.counter("shoal_awards_accepted", "Awards this node accepted")
        self.rounds = metrics.counter("shoal_auction_rounds", "Auction rounds this agent coordinated, by outcome",
                                      "outcome")
        self.problems = metrics.counter("shoal_state_problems",
                                        "Problems found in the state dir (corrupt file, bad rows), by store", "store")
        self.writes = metrics.counter("shoal_state_writes", "Durable writes to the state dir, by store and outcome",
                                      "store", "outcome")
        self.queue_full = metrics.counter("shoal_state_queue_full",
                                          "Writes refused because the persistence queue was full")
        self.clock_offset = metrics.gauge(
            "shoal_clock_offset_seconds", "This node's wall clock minus the median of its peers' (> 0: ahead)")
        # Every labelled series shows from the first scrape, at 0.
        for store in ("jobs", "claims", "node"):
            self.problems.labels(store=store)
        for store in ("jobs", "claims"):
            for outcome in ("ok", "error"):
                self.writes.labels(store=store, outcome=outcome)
        for outcome in ("placed", "partial", "unplaced"):
            self.rounds.labels(outcome=outcome)

    def observe(self, view: CoreView) -> None:
        self.jobs.set(view.live_job_count)
        offset_s = view.cluster_clock()["offset_s"]
        self.clock_offset.set(offset_s if isinstance(offset_s, float) else 0.0)
        here = others = 0
        for claim in view.claims().values():
            if not claim.released:
                if claim.node == view.name:
                    here += 1
                else:
                    others += 1
        self.claims.labels(holder="here").set(here)
        self.claims.labels(holder="others").set(others)
        alive = view.alive_names()
        placed = pending = 0
        for entry in view.jobs():
            spec = view.spec_of(entry)
            if spec is None:
                continue
            if spec.is_global:      # its slots whose holders keep them (auction.global_jobs)
                placed += len(view.global_slots(spec))
                continue
            for index in range(spec.replicas):
                claim = view.winning_claim(slot_key(spec.name, index))
                status = view.statuses.get(claim.node) if claim is not None else None
                if claim is not None and claim.node in alive and not (status is not None and status.drained):
                    placed += 1
                else:
                    pending += 1
        self.slots.labels(state="placed").set(placed)
        self.slots.labels(state="pending").set(pending)
        self.pending_coordinated.set(len(view.pending_reasons()))
        catalog = view.catalog()  # cached by the view: no cost while nothing moved
        self.catalog_instances.set(len(catalog.instances))
        self.catalog_services.set(len(catalog.names()))
