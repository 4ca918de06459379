"""The observer of a simulated chaos campaign: ground truth, invariants at
every step, and per-fault figures.

How this works: a `Watch` subscribes to a `ClusterSim`'s world and keeps its
own account of what runs where, from the runtime commands themselves
(`StartReplica` adds the claim's reservation on that node, `StopReplica`
removes it, a crash empties the node: its machine lost power), independently
of the agents' ledgers.

- At every start it checks the node's reservations against its capacity
  (invariant no-overcommit, at every step, not only at the end).
- It records every acknowledged job write (`JobWriteDone` without
  `superseded_by`) for the acked-writes check after convergence.
- `sample(t)`, called on a steady virtual clock by the campaign, follows
  doubled copies (a slot running on two live machines, paused ones
  included: SIGSTOP stops the agent, not its containers), and measures each
  fault: time to detect (the first suspicion or failure of a victim raised
  by a node that is not one), to re-place (every slot the victims ran at
  the fault's start runs again outside them, or is no longer wanted), and
  to converge (the first sample after the fault is undone at which the
  cluster is converged, see `converged`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from auction.placement_outputs import StartReplica, StopReplica
from auction.preemption import PreemptEvent
from auction.rebalance import RebalanceEvent
from auction.resources import Resources
from gossip.events import MemberFailed, MemberSuspected
from node.chaos import invariants as inv
from node.chaos.faultplan import NODE_KINDS, Fault
from node.core.outputs import JobWriteDone
from node.sim.cluster import ClusterSim
from node.sim.trace import NodeCrashed
from node.sim.world import PAUSED, RUNNING


@dataclass
class FaultFigures:
    fault: Fault
    detect_s: float | None = None
    replace_s: float | None = None
    converge_s: float | None = None
    slots: set[str] = field(default_factory=set)  # what the victims ran at the start
    started: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.fault.kind, "fault": self.fault.describe(), "detect_s": self.detect_s,
                "replace_s": self.replace_s, "converge_s": self.converge_s}


@dataclass
class Doubled:
    slot: str
    start_s: float
    end_s: float | None = None
    cause: str = "other"  # what was in force when it began (Watch._cause)


class Watch:
    def __init__(self, sim: ClusterSim, plan: list[Fault], *, is_desired: Callable[[str], bool],
                 recent_write: Callable[[str, float, float], bool] = lambda job, t, within_s: False,
                 is_global: Callable[[str], bool] = lambda slot: False) -> None:
        self.sim = sim
        self.world = sim.world
        self.is_desired = is_desired  # slot -> still wanted (latest write issued)
        self.is_global = is_global    # slot -> its job's is global: its node's own, never re-placed
        self.recent_write = recent_write  # (job, t, within_s) -> a write to job in (t - within_s, t]
        self.demand: list[dict[str, Resources]] = [{} for _ in range(self.world.n)]
        self.violations: dict[str, list[str]] = {name: [] for name in inv.INVARIANTS}
        self.acked: list[Any] = []  # job-store entries whose write was acknowledged
        self.writes_issued = 0
        self.figures = [FaultFigures(f) for f in plan]
        self.doubled: dict[str, Doubled] = {}
        self.doubled_done: list[Doubled] = []
        self.heal_s: float | None = None
        self.rebalance: dict[str, int] = {}  # rebalancing events by kind (moving, moved, failed)
        self.preempted = 0                   # replicas released for higher-priority ones (auction.preemption)
        self.moves_started = 0
        self.last_moves: dict[str, float] = {}  # slot -> when its last move began
        self.world.subscribe(self._on_event)

    def violate(self, invariant: str, message: str) -> None:
        found = self.violations[invariant]
        if len(found) < 20:  # a broken run repeats itself; the first ones tell the story
            found.append(message)

    # ---- the event stream
    def _on_event(self, t: float, i: int, ev: Any) -> None:
        cls = ev.__class__
        if cls is StartReplica and not ev.adopt_only:   # adopt-only: nothing starts (node.core.replay)
            self.demand[i][ev.claim.name] = ev.claim.demand
            problem = inv.overcommit(f"node-{i}", inv.total(self.demand[i].values()), self.sim.capacities[i])
            if problem is not None:
                self.violate(inv.OVERCOMMIT, f"t={t:.2f}: {problem} after starting {ev.claim.name}")
        elif cls is StopReplica:
            self.demand[i].pop(ev.slot, None)
        elif cls is NodeCrashed:
            self.demand[i].clear()
        elif cls is JobWriteDone:
            if ev.superseded_by is None:
                self.acked.append(ev.entry)
        elif cls is MemberSuspected or cls is MemberFailed:
            self._detected(t, i, ev.member.name)
        elif cls is PreemptEvent:
            self.preempted += len(ev.victims)
        elif cls is RebalanceEvent:
            self.rebalance[ev.kind] = self.rebalance.get(ev.kind, 0) + 1
            if ev.kind == "moving":
                self.moves_started += 1
                self.last_moves[ev.slot] = t

    def _detected(self, t: float, observer: int, name: str) -> None:
        victim = self.world.by_name.get(name)
        for f in self.figures:
            flt = f.fault
            if (f.detect_s is None and flt.kind in NODE_KINDS and flt.start_s <= t <= flt.end_s + 5.0
                    and victim in flt.nodes and observer not in flt.nodes):
                f.detect_s = t - flt.start_s

    # ---- ground truth
    def holders(self) -> dict[str, list[int]]:
        """slot -> machines running it (running or paused agents: containers outlive SIGSTOP)."""
        out: dict[str, list[int]] = {}
        for nd in self.world.nodes:
            if nd.status is RUNNING or nd.status is PAUSED:
                for slot in self.sim.running[nd.idx]:
                    out.setdefault(slot, []).append(nd.idx)
        return out

    def converged(self) -> list[str]:
        """Why the cluster is not converged ([] when it is): every running agent
        stores the same jobs, and (ground truth) each of their slots runs
        exactly once, nothing else."""
        w = self.world
        live = [nd for nd in w.nodes if nd.status is RUNNING]
        if len(live) < w.n:
            return [f"{w.n - len(live)} node(s) not running"]
        digests = {nd.core.view.store_digest() for nd in live}
        if len(digests) > 1:
            return ["agents' job stores differ"]
        holders = self.holders()
        desired = inv.desired_slots(self.replicas())
        problems = []
        for spec in self.global_specs():
            # One copy on every node its constraints allow and that has room
            # for it (auction.global_jobs: a full node runs none, pending, as
            # under Swarm); its slots are whatever runs.
            desired |= {s for s in holders if s.rpartition("/")[0] == spec.name}
            for nd in live:
                copies = sum(1 for s in self.sim.running[nd.idx] if s.rpartition("/")[0] == spec.name)
                wanted = int(all(c.matches(self.sim.labels[nd.idx]) for c in spec.constraints))
                free = self.sim.capacities[nd.idx] - inv.total(self.demand[nd.idx].values())
                if copies == 0 and not spec.demand().fits_in(free):
                    continue
                if copies != wanted:
                    problems.append(f"{spec.name} {'lost' if copies < wanted else 'doubled'} on {nd.name}: "
                                    f"runs {copies} copies, {wanted} wanted")
        return problems + inv.slot_problems({s: len(h) for s, h in holders.items()}, desired)

    def _specs(self) -> list[Any]:
        view = self.world.core(0).view
        return [spec for e in view.jobs() if (spec := view.spec_of(e)) is not None]

    def replicas(self) -> dict[str, int]:
        """job -> replicas of the replicated jobs, from node 0's store (all agree once converged)."""
        return {spec.name: spec.replicas for spec in self._specs() if not spec.is_global}

    def global_specs(self) -> list[Any]:
        """The global jobs in node 0's store."""
        return [spec for spec in self._specs() if spec.is_global]

    # ---- the sampling clock
    def sample(self, t: float) -> None:
        holders = self.holders()
        self._follow_doubles(t, holders)
        converged: list[str] | None = None
        for f in self.figures:
            flt = f.fault
            if not f.started and t >= flt.start_s:
                f.started = True
                if flt.kind in NODE_KINDS:    # (a global job's slot is re-placed nowhere: not counted)
                    f.slots = {s for s, h in holders.items() if any(j in flt.nodes for j in h)
                               and not self.is_global(s)}
            if f.started and f.replace_s is None and flt.kind in NODE_KINDS:
                f.slots = {s for s in f.slots if self.is_desired(s)
                           and not any(j not in flt.nodes and self.world.nodes[j].status is RUNNING
                                       for j in holders.get(s, ()))}
                if not f.slots:
                    f.replace_s = t - flt.start_s
            if f.converge_s is None and t >= flt.end_s:
                if converged is None:
                    converged = self.converged()
                if not converged:
                    f.converge_s = t - flt.end_s

    def _follow_doubles(self, t: float, holders: dict[str, list[int]]) -> None:
        for slot, d in list(self.doubled.items()):
            if len(holders.get(slot, ())) <= 1:
                d.end_s = t
                self.doubled_done.append(self.doubled.pop(slot))
        for slot, h in holders.items():
            if len(h) > 1 and slot not in self.doubled:
                self.doubled[slot] = Doubled(slot, t, cause=self._cause(slot, t))

    def _cause(self, slot: str, t: float) -> str:
        """What most likely doubled slot at t: the partition or pause in force (a
        side that cannot see the holder re-places its slots), a recent write to
        the job (an update starts the new replica before stopping the old), a
        rebalancing move of the slot (start-first as well), loss
        or delay in force (a holder suspected through them), one of those that
        ended in the last 30 s (the echo), or other."""
        if self.world.network.partitioned:
            return "partition"
        if any(nd.status is PAUSED for nd in self.world.nodes):
            return "pause"
        if self.recent_write(slot.rpartition("/")[0], t, 5.0):
            return "job-write"
        if t - self.last_moves.get(slot, -1e9) <= 10.0:
            return "rebalance"  # start-first: the new copy runs before the old one stops
        in_force = [f.fault.kind for f in self.figures if f.fault.start_s <= t < f.fault.end_s]
        for kind in ("loss", "delay"):
            if kind in in_force:
                return kind
        ended = [f.fault for f in self.figures if f.fault.kind in ("partition", "pause", "loss", "delay")
                 and f.fault.end_s <= t <= f.fault.end_s + 30]
        if ended:
            return "after-" + max(ended, key=lambda f: f.end_s).kind
        return "other"

    # ---- verdicts after convergence
    def check_writes(self) -> None:
        for nd in self.world.nodes:
            if nd.status is not RUNNING:
                continue
            view = nd.core.view
            for e in self.acked:
                if inv.lost_write(e, view.job(e.name)):
                    self.violate(inv.ACKED_WRITES, f"{nd.name} lost the acknowledged write of {e.name} "
                                                   f"at {e.stamp}")

    def doubled_figures(self) -> dict[str, Any]:
        eps = self.doubled_done + list(self.doubled.values())
        heal = self.heal_s if self.heal_s is not None else float("inf")
        out: dict[str, Any] = {"episodes": len(eps), "by_cause": {}}
        for d in eps:
            out["by_cause"][d.cause] = out["by_cause"].get(d.cause, 0) + 1
        ended = [d for d in eps if d.end_s is not None]
        out["total_s"] = round(sum(d.end_s - d.start_s for d in ended), 3)  # type: ignore[operator]
        out["max_s"] = round(max((d.end_s - d.start_s for d in ended), default=0.0), 3)  # type: ignore[operator]
        after = [d.end_s - heal for d in ended if d.start_s < heal <= d.end_s]  # type: ignore[operator]
        out["over_heal"] = len(after)
        out["gone_after_heal_max_s"] = round(max(after, default=0.0), 3)
        out["open"] = sorted(self.doubled)
        # The first ones, for a single seed's report: (slot, start, end or None, cause).
        out["list"] = [(d.slot, round(d.start_s, 2), None if d.end_s is None else round(d.end_s, 2), d.cause)
                       for d in sorted(eps, key=lambda d: d.start_s)[:100]]
        return out

