"""Whole-agent simulation: node cores (gossip + job store + auctions) with a
fake container runtime and fake durable storage, plus placement checkers.

How this works: `ClusterSim` builds a `World` whose cores are
`node.core.node_core.NodeCore`s, and subscribes to their outputs:

- `PersistEntries` / `PersistClaims` / `Forget*`: written to a per-node dict
  standing in for the state dir (it survives crash and restart, as a disk
  does), and `Persisted(token)` is fed back after `disk_delay_s`;
- `StartReplica` / `StopReplica`: a per-node set of running replicas
  standing in for Docker; a crash empties it (the machine lost power), so
  an `adopt_only` start (a claim read from disk, node.core.replay) has
  nothing to keep and starts nothing;
- `AwardAccepted`: recorded, so the checkers can verify that every start
  traces to an accepted award and that no (slot, ballot) was accepted twice.

Safety is checked at every output (`violations`), liveness on demand
(`placement_problems` once faults stop and the network heals).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from auction.placement import PlacementConfig
from auction.ports import DEFAULT_PORT_RANGE
from auction.resources import Resources
from auction.spec import JobSpec
from gossip.config import GossipConfig
from node.core.inputs import Persisted, WriteJob
from node.core.node_core import ClusterConfig, NodeCore
from node.core.outputs import (
    AwardAccepted,
    ForgetClaims,
    ForgetEntries,
    JobWriteDone,
    PersistClaims,
    PersistEntries,
    StartReplica,
    StopReplica,
)
from node.sim.network import NetworkConfig
from node.sim.world import PAUSED, RUNNING, World

GiB = 1 << 30


@dataclass
class Disk:
    entries: dict[str, Any] = field(default_factory=dict)
    claims: dict[str, Any] = field(default_factory=dict)


class ClusterSim:
    def __init__(self, seed: int, n_nodes: int, config: GossipConfig, *,
                 network: NetworkConfig | None = None,
                 capacities: list[Resources] | None = None,
                 labels: list[dict[str, str]] | None = None,
                 cluster_config: ClusterConfig | None = None,
                 placement_config: PlacementConfig | None = None,
                 port_ranges: list[tuple[int, int]] | None = None,
                 disk_delay_s: float = 0.002, wall_offset_s: float = 0.0) -> None:
        self.capacities = capacities or [Resources(4000, 8 * GiB, 0)] * n_nodes
        self.labels = labels or [{} for _ in range(n_nodes)]
        # Each node's host port range for dynamic ports (None: the default).
        self.port_ranges = port_ranges or [DEFAULT_PORT_RANGE] * n_nodes
        self.disks = [Disk() for _ in range(n_nodes)]
        self.running: list[dict[str, tuple]] = [dict() for _ in range(n_nodes)]  # slot -> (round, coord)
        self.accepted: dict[tuple[str, int, str], str] = {}  # (slot, round, coord) -> node
        self.violations: list[str] = []
        self.done_tokens: set[int] = set()
        self.starts = 0
        self.disk_delay_s = disk_delay_s
        self._token = 0
        cluster_config = cluster_config or ClusterConfig()
        placement_config = placement_config or PlacementConfig()

        def factory(*, name, addr, config, rng, now, formed=(), **kwargs):
            i = int(name.split("-")[1])
            disk = self.disks[i]
            return NodeCore(name=name, addr=addr, gossip_config=config, rng=rng, now=now, formed=formed,
                            capacity=self.capacities[i], labels=self.labels[i],
                            port_range=self.port_ranges[i], wall_offset_s=wall_offset_s,
                            cluster_config=cluster_config, placement_config=placement_config,
                            stored_entries=list(disk.entries.values()),
                            stored_claims=list(disk.claims.values()))

        self.world = World(seed, n_nodes, config, network=network, core_factory=factory)
        self.world.subscribe(self._on_output)
        self._orig_crash = self.world.crash
        self.world.crash = self._crash  # containers die with their machine

    def start_formed(self) -> None:
        """Start every agent as a member of a formed cluster (World.start_formed),
        each holding every other's status record as published at its start,
        merged as records pulled from a peer are (node.core.status_sync: not
        gossiped on).  What a placement study at 1,000 nodes wants without
        paying for the join storm: ~170 s of CPU there."""
        w = self.world
        w.start_formed()
        records = [(nd.name, *nd.core.swim.payloads()[nd.name]) for nd in w.nodes]
        for nd in w.nodes:
            now = nd.local(w.now)
            merge = nd.core.swim.merge_payload
            for name, version, data in records:
                if name != nd.name:
                    merge(name, version, data, now)
            w.wake(nd.idx)  # the core reads them (PayloadUpdated) and may act at once

    # ---- fakes
    def _crash(self, node) -> None:
        i = self.world.idx(node)
        self._orig_crash(i)
        self.running[i].clear()

    def _on_output(self, t: float, i: int, ev: Any) -> None:
        cls = ev.__class__
        disk = self.disks[i]
        if cls is PersistEntries:
            for e in ev.entries:
                old = disk.entries.get(e.name)
                if old is None or e.beats(old):
                    disk.entries[e.name] = e
            if ev.token is not None:
                self.world.after(self.disk_delay_s, self._persisted, i, ev.token)
        elif cls is PersistClaims:
            for c in ev.claims:
                old = disk.claims.get(c.name)
                if old is None or c.beats(old):
                    disk.claims[c.name] = c
        elif cls is ForgetEntries:
            for n in ev.names:
                disk.entries.pop(n, None)
        elif cls is ForgetClaims:
            for n in ev.names:
                disk.claims.pop(n, None)
        elif cls is JobWriteDone:
            self.done_tokens.add(ev.token)
        elif cls is AwardAccepted:
            c = ev.claim
            key = (c.name, c.ballot.round, c.ballot.coordinator)
            holder = self.accepted.setdefault(key, c.node)
            if holder != c.node:
                self.violations.append(f"t={t:.3f}: {key} accepted by {holder} and {c.node}")
        elif cls is StartReplica and ev.adopt_only:
            # A claim read from disk, unconfirmed (node.core.replay): a copy
            # that still runs is kept, nothing is started (after a crash,
            # nothing runs).
            pass
        elif cls is StartReplica:
            c = ev.claim
            key = (c.name, c.ballot.round, c.ballot.coordinator)
            if self.accepted.get(key) != c.node:
                self.violations.append(f"t={t:.3f}: {c.node} started {c.name} without an accepted award {key}")
            self.running[i][c.name] = (c.ballot.round, c.ballot.coordinator)
            self.starts += 1
            self._check_capacity(i, t)
        elif cls is StopReplica:
            self.running[i].pop(ev.slot, None)

    def _persisted(self, i: int, token: int) -> None:
        status = self.world.nodes[i].status
        if status is PAUSED:
            # The write is on disk; a stopped process hears so once it runs
            # again (the agent's writer thread hands the completion to the
            # pump, which runs after SIGCONT).  A crash loses it: replay
            # reads the entry back from disk.
            self.world.after(self.disk_delay_s, self._persisted, i, token)
        elif status is RUNNING:
            self.world.feed(i, Persisted(token))

    def _check_capacity(self, i: int, t: float) -> None:
        problem = self.world.core(i).view.overcommit(self.world.nodes[i].local(t))
        if problem is not None:
            self.violations.append(f"t={t:.3f}: node-{i} {problem}")

    # ---- driving
    def submit(self, node: int, spec: JobSpec) -> int:
        self._token += 1
        self.world.feed(node, WriteJob(spec.name, json.dumps(spec.to_dict(), sort_keys=True).encode(),
                                       self._token))
        return self._token

    def stop_job(self, node: int, name: str) -> int:
        self._token += 1
        self.world.feed(node, WriteJob(name, None, self._token))
        return self._token

    def live_indices(self) -> list[int]:
        return [nd.idx for nd in self.world.nodes if nd.status is RUNNING]

    # ---- checks
    def replica_counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for i in self.live_indices():
            for slot in self.running[i]:
                counts[slot] = counts.get(slot, 0) + 1
        return counts

    def placement_problems(self, specs: list[JobSpec]) -> list[str]:
        """After heal: every desired slot runs exactly once; nothing else runs."""
        counts = self.replica_counts()
        problems = []
        desired = {f"{s.name}/{i}" for s in specs for i in range(s.replicas)}
        for slot in sorted(desired):
            if counts.get(slot, 0) != 1:
                problems.append(f"{slot} runs {counts.get(slot, 0)} times")
        for slot in sorted(set(counts) - desired):
            problems.append(f"{slot} runs but is not desired")
        return problems

    def job_views(self) -> list[set[str]]:
        return [{e.name for e in self.world.core(i).view.jobs()} for i in self.live_indices()]
