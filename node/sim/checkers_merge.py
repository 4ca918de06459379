"""Partition merges in the simulator: the gap a user would notice, at every step.

How this works: `MergeChecker` listens to the world's events next to a
`SimRuntime` (node.sim.checkers_catalog, the fake runtime that reports
"starting" then "running") and holds the ground truth of one job's
containers.  `heal()` heals the network and notes which slots run a copy on
both sides of the partition at that moment (`both`).  From then on, at every
world event (every core output, every runtime report) it counts the slots of
`both` that have no running container on any live node, and keeps

- `max_gap`: the most such slots at once (the merge rule says 0:
  auction.merge_rule);
- `gap_s`: the longest any one of them went without a running copy;
- `starts`: replicas started after the heal (a merge whose winners run
  needs none), and `start_times`: when each came, in seconds after the heal;
- `met_s`: when the sides met again, after the heal: the first moment
  when, on each side, some node has seen a member of the other side come
  back (a one-way contact does not merge anything yet);
- `agreed_s` (set by `agreed()` when it first holds): every live node holds
  the same claims (equal digests), and every desired slot runs exactly one
  container, on the node its winning claim names.

Deterministic: it draws no randomness and schedules nothing.
"""

from __future__ import annotations

from typing import Any

from auction.placement import PlacementConfig
from auction.spec import validate
from gossip.config import LOCAL, GossipConfig
from gossip.events import MemberJoined
from node.core.config import ClusterConfig
from node.core.outputs import StartReplica
from node.sim import faults
from node.sim.checkers_catalog import UP, SimRuntime
from node.sim.cluster import ClusterSim


class MergeChecker:
    def __init__(self, sim: ClusterSim, runtime: SimRuntime, job: str, replicas: int,
                 sides: tuple[list[int], list[int]]) -> None:
        self.sim, self.world, self.runtime = sim, sim.world, runtime
        self.job, self.replicas, self.sides = job, replicas, sides
        self.slots = [f"{job}/{i}" for i in range(replicas)]
        self.both: list[str] = []
        self.healed_at: float | None = None
        self.max_gap = 0
        self.gap_s = 0.0
        self.starts = 0
        self.start_times: list[float] = []
        self.met_s: float | None = None
        self.agreed_s: float | None = None
        self.checks = 0
        self._gap_since: dict[str, float] = {}
        self._seen_other: set[int] = set()   # sides on which a node saw the other side come back
        self._side_of = {self.world.nodes[i].name: k for k, side in enumerate(sides) for i in side}
        self.world.subscribe(self._on_event)
        runtime.on_report.append(lambda i: self._check())

    def side_copies(self, side: list[int]) -> dict[str, int]:
        """Running containers of each slot on one side's live nodes."""
        live = set(self.sim.live_indices())
        return {s: sum(self.runtime.copies(i, s) for i in side if i in live) for s in self.slots}

    def heal(self) -> None:
        """Heal the network now; from now on every step is checked."""
        a, b = (self.side_copies(side) for side in self.sides)
        self.both = [s for s in self.slots if a[s] and b[s]]
        self.healed_at = self.world.now
        self.world.network.heal()

    def _on_event(self, t: float, i: int, ev: Any) -> None:
        if self.healed_at is None:
            return
        cls = ev.__class__
        if cls is StartReplica and ev.claim.job == self.job:
            self.starts += 1
            self.start_times.append(t - self.healed_at)
        elif self.met_s is None and cls is MemberJoined:
            mine = self._side_of.get(self.world.nodes[i].name)
            theirs = self._side_of.get(ev.member.name)
            if mine is not None and theirs is not None and mine != theirs:
                self._seen_other.add(mine)
                if len(self._seen_other) == 2:
                    self.met_s = t - self.healed_at
        self._check()

    def _check(self) -> None:
        if self.healed_at is None:
            return
        self.checks += 1
        t = self.world.now
        live = self.sim.live_indices()
        gap = [s for s in self.both if not any(self.runtime.copies(i, s) for i in live)]
        self.max_gap = max(self.max_gap, len(gap))
        for s in gap:
            self._gap_since.setdefault(s, t)
        for s in [s for s in self._gap_since if s not in gap]:
            self.gap_s = max(self.gap_s, t - self._gap_since.pop(s))

    def open_gap_s(self) -> float:
        """The longest gap still open now (0 if none)."""
        t = self.world.now
        return max((t - since for since in self._gap_since.values()), default=0.0)

    def problems(self) -> list[str]:
        """Why the agents do not agree yet (empty once they do)."""
        w = self.world
        live = self.sim.live_indices()
        out = []
        digests = {w.core(i).view.claims_digest() for i in live}
        if len(digests) != 1:
            out.append(f"{len(digests)} different claims digests")
        first = w.core(live[0]).placement
        for s in self.slots:
            claim = first.winning_claim(s)
            boxes = [(w.nodes[i].name, box) for i in live for box in [self.runtime.containers[i].get(s)]
                     if box is not None]
            running = [name for name, box in boxes if box[0] == UP]
            if claim is None or running != [claim.node] or len(boxes) != 1:
                out.append(f"{s}: claim on {claim.node if claim else None}, running on {running}, "
                           f"{len(boxes)} containers")
        return out

    def agreed(self, _world: object = None) -> bool:
        """For run_until_converged: do the agents agree (see the module docstring)?"""
        self._check()  # between events too: a container comes up between two reports
        if self.problems():
            return False
        if self.agreed_s is None and self.healed_at is not None:
            self.agreed_s = self.world.now - self.healed_at
        return True


def merge_scene(seed: int, *, nodes: int = 5, split: int = 2, replicas: int = 12,
                config: GossipConfig = LOCAL, partition_s: float = 20.0, agree_timeout_s: float = 30.0,
                check_every_s: float = 0.01, placement_config: PlacementConfig | None = None,
                cluster_config: ClusterConfig | None = None, crash_at_heal: tuple[int, ...] = ()) -> MergeChecker:
    """A job of `replicas` on `nodes` agents (the agent's default placement and
    cluster settings unless given), partitioned into nodes [0, split) and the
    rest for `partition_s` (each side re-places the other's slots), then
    healed (crashing the nodes `crash_at_heal` at that moment) and run until
    the agents agree or `agree_timeout_s` passes."""
    sim = ClusterSim(seed, nodes, config.replace(enable_compression=False),
                     placement_config=placement_config, cluster_config=cluster_config)
    runtime = SimRuntime(sim)
    sides = (list(range(split)), list(range(split, nodes)))
    checker = MergeChecker(sim, runtime, "web", replicas, sides)
    w = sim.world
    w.bootstrap(seeds="random")
    w.run_for(3)
    sim.submit(0, validate({"name": "web", "image": "busybox", "replicas": replicas, "cpu": 0.1,
                            "memory": "64MiB"}))
    if w.run_until_converged(checker.agreed, 60.0, 0.25) is None:
        raise AssertionError(f"seed {seed}: the job never settled: {checker.problems()[:3]}")
    faults.partition(w, sides)
    w.run_for(partition_s)
    checker.heal()
    for i in crash_at_heal:
        w.crash(i)
    w.run_until_converged(checker.agreed, agree_timeout_s, check_every_s)
    return checker
