"""The service catalog in the simulator: a fake runtime that reports, and its checks.

How this works: `ClusterSim`'s fake Docker only records which replicas it
was told to run; it never tells the core how they do, so no node publishes
a runtime summary and the catalog (node.core.catalog) would stay empty.
`SimRuntime` adds the runtime's report, listening to the world's events:

- `StartReplica` -> the slot's container is "starting"; `start_delay_s`
  later it is "running" (if it was not stopped or replaced meanwhile);
- `set_health(i, slot, False)` -> the container turns unhealthy (reported
  "failed"), `True` -> it passes again; a container of a spec whose
  container hash is in `failing` never passes (a version whose health
  check fails, for rollouts);
- `StartReplica` with `replaces` (a rolling update, start-first): the
  slot's running container of that ballot keeps serving (`handover`) until
  the new one runs, as the Docker runtime's hand-over does; and a new
  container waits (`queued`, reported "starting") while the Docker
  runtime's per-node rule (node.runtime.decision.rolling_allowed, the same
  pure function) holds it back for another slot of its job;
- `StopReplica` -> the container is gone; a crash (`NodeCrashed`) takes
  every container of the node with it; a restarted node starts with none;
- every change is reported to the node's core as `RuntimeSlots` (the input
  the agent's runtime link feeds) `report_delay_s` later, standing in for
  the link's polling.

It is opt-in (built by the test, after the `ClusterSim`): the golden traces
run without it and stay as they were.

`CatalogChecker` checks at every step: each time a node's core emits an
output (every change of what the catalog is built from emits one: a claim,
a status record, a member event, a job) and after each runtime report, it
reads that node's `view.catalog()` (cached by the view, so this is cheap)
and records a violation when
  * it lists an instance on a node that this observer does not believe
    ALIVE (so never one of a node it has marked failed), or
  * it lists an instance whose container is not running: on the
    instance's own node, once the runtime has reported it
    (`report_delay_s`); on any other node, once `stale_s` has passed since
    the container stopped (the time the holder's record or the claim's
    change takes to spread), and never one that has not run at all.
`catalog_problems` says why the cluster has not converged: every live
node's catalog equal, listing exactly the running containers of the live
nodes.  Deterministic: it draws no randomness and schedules only fixed
delays.
"""

from __future__ import annotations

from typing import Any

from auction.claims import slot_key
from gossip.events import MemberState
from node.core.inputs import RuntimeSlots
from node.core.outputs import StartReplica, StopReplica
from node.runtime.decision import RollingView, rolling_allowed
from node.sim.cluster import ClusterSim
from node.sim.trace import NodeCrashed, NodeRestarted
from node.sim.world import PAUSED, RUNNING

STARTING = "starting"
UP = "running"


class SimRuntime:
    """Per node: slot -> container state, reported to the core as RuntimeSlots."""

    def __init__(self, sim: ClusterSim, *, start_delay_s: float = 0.3, report_delay_s: float = 0.05,
                 restart_failing: tuple[float, float] | None = None) -> None:
        self.sim = sim
        self.restart_failing = restart_failing
        self.world = sim.world
        self.start_delay_s = start_delay_s
        self.report_delay_s = report_delay_s
        n = self.world.n
        self.containers: list[dict[str, list[Any]]] = [{} for _ in range(n)]  # slot -> [state, ballot, hash]
        self.handover: list[dict[str, list[Any]]] = [{} for _ in range(n)]    # slot -> old box still serving
        self.queued: list[set[str]] = [set() for _ in range(n)]      # new containers the runtime holds back
        self.failing: set[str] = set()      # container hashes whose health check fails
        # A container that ran and stopped: when, and whether its machine crashed.
        self.stopped_at: dict[tuple[int, str], tuple[float, bool]] = {}
        self.reported: list[dict[str, tuple[str, str, int]] | None] = [None] * n
        self.on_report: list[Any] = []  # fn(i) after a report was fed
        self.world.subscribe(self._on_event)

    def running(self, i: int, slot: str) -> bool:
        c = self.containers[i].get(slot)
        return c is not None and c[0] == UP

    def _on_event(self, t: float, i: int, ev: Any) -> None:
        cls = ev.__class__
        if cls is StartReplica and ev.adopt_only:
            pass    # a claim read from disk (node.core.replay): after a crash nothing runs to keep
        elif cls is StartReplica:
            c = ev.claim
            olds = [b for b in (self.containers[i].get(c.name), self.handover[i].pop(c.name, None)) if b is not None]
            for old in olds:
                if old[0] != UP:
                    continue
                if f"{old[1][0]}/{old[1][1]}" in ev.replaces and c.name not in self.handover[i]:
                    self.handover[i][c.name] = old      # start-first: it serves until the new one runs
                else:
                    self.stopped_at[(i, c.name)] = (t, False)  # replaced: the old container stops
            box = [STARTING, (c.ballot.round, c.ballot.coordinator), ev.spec.container_hash()]
            self.containers[i][c.name] = box
            self.queued[i].add(c.name)
            self._launch(i, c.job)
            self._schedule_report(i)
        elif cls is StopReplica:
            self.handover[i].pop(ev.slot, None)
            self.queued[i].discard(ev.slot)
            old = self.containers[i].pop(ev.slot, None)
            if old is not None and old[0] == UP:
                self.stopped_at[(i, ev.slot)] = (t, False)
            self._launch(i, ev.slot.rpartition("/")[0])
            self._schedule_report(i)
        elif cls is NodeCrashed:
            for slot, box in self.containers[i].items():
                if box[0] == UP:
                    self.stopped_at[(i, slot)] = (t, True)
            self.containers[i] = {}
            self.handover[i] = {}
            self.queued[i] = set()
            self.reported[i] = None
        elif cls is NodeRestarted:
            self.containers[i] = {}
            self.handover[i] = {}
            self.queued[i] = set()
            self.reported[i] = None
            self._schedule_report(i)

    def _launch(self, i: int, job: str) -> None:
        """Start the queued new containers of `job` on node i that the Docker
        runtime's per-node rule lets go now (the rest wait for a hand-over
        of the job here to finish)."""
        if not self.queued[i]:
            return
        views = {slot: RollingView(has_old=slot in self.handover[i], has_new=slot not in self.queued[i],
                                   new_running=box[0] == UP, handover=slot in self.handover[i])
                 for slot, box in self.containers[i].items() if slot.rpartition("/")[0] == job}
        for slot in sorted(rolling_allowed(views) & self.queued[i]):
            self.queued[i].discard(slot)
            self.world.after(self.start_delay_s, self._up, i, slot, self.containers[i][slot])

    def set_health(self, i: int, slot: str, healthy: bool) -> None:
        """A running container's health check starts failing ("failed", as
        the Docker runtime reports an unhealthy container) or passes again."""
        box = self.containers[i][slot]
        if healthy:
            box[0] = UP
            self.stopped_at.pop((i, slot), None)
        else:
            box[0] = "failed"
            self.stopped_at[(i, slot)] = (self.world.now, False)
        self._schedule_report(i)

    def copies(self, i: int, slot: str) -> int:
        """Running containers of `slot` on node i (2 during a start-first hand-over)."""
        boxes = (self.containers[i].get(slot), self.handover[i].get(slot))
        return sum(1 for box in boxes if box is not None and box[0] == UP)

    def _up(self, i: int, slot: str, box: list[Any]) -> None:
        if self.containers[i].get(slot) is box and box[2] in self.failing:
            box[0] = "failed"       # it starts, but its health check never passes
            self._schedule_report(i)
            if self.restart_failing is not None:
                self.world.after(self.restart_failing[0], self._restart, i, slot, box)
            return
        if self.containers[i].get(slot) is box:  # not stopped or replaced meanwhile
            self.handover[i].pop(slot, None)    # the hand-over is done: the old copy stops
            box[0] = UP
            self.stopped_at.pop((i, slot), None)
            self._launch(i, slot.rpartition("/")[0])
            self._schedule_report(i)

    def _restart(self, i: int, slot: str, box: list[Any]) -> None:
        """A failing container restarted: "starting" for restart_s, then `_up` again."""
        if self.containers[i].get(slot) is box and box[0] == "failed" and self.restart_failing is not None:
            box[0] = STARTING
            self._schedule_report(i)
            self.world.after(self.restart_failing[1], self._up, i, slot, box)

    def _schedule_report(self, i: int) -> None:
        self.world.after(self.report_delay_s, self._report, i)

    def _report(self, i: int) -> None:
        nd = self.world.nodes[i]
        if nd.status is PAUSED:  # the link polls again once the process runs
            self._schedule_report(i)
            return
        if nd.status is not RUNNING:
            return
        states = {slot: (box[0], "", box[1][0]) for slot, box in self.containers[i].items()}
        if states == self.reported[i]:
            return
        self.reported[i] = states
        self.world.feed(i, RuntimeSlots({slot: st[:2] for slot, st in states.items()},
                                        {slot: st[2] for slot, st in states.items()}))
        for fn in self.on_report:
            fn(i)


class CatalogChecker:
    """Safety of every live node's catalog, checked at every step of that
    node and every `sample_every_s` besides: a node that sends nothing keeps
    its catalog as it was, and a stale listing there must be seen too."""

    def __init__(self, sim: ClusterSim, runtime: SimRuntime, *, stale_s: float, detect_s: float,
                 max_violations: int = 50, sample_every_s: float = 0.25) -> None:
        self.sim = sim
        self.detect_s = detect_s
        self.world = sim.world
        self.runtime = runtime
        self.stale_s = stale_s
        self.max_violations = max_violations
        self.violations: list[str] = []
        self.checks = 0
        self.max_stale_s = 0.0  # the longest a stopped container stayed listed on another node
        self.world.subscribe(self._on_event)
        runtime.on_report.append(self.check_node)
        self.sample_every_s = sample_every_s
        self.world.after(sample_every_s, self._sample)

    def _sample(self) -> None:
        for nd in self.world.running():
            self.check_node(nd.idx)
        self.world.after(self.sample_every_s, self._sample)

    def _on_event(self, t: float, i: int, ev: Any) -> None:
        if self.world.nodes[i].status is RUNNING:
            self.check_node(i)

    def check_node(self, i: int) -> None:
        if len(self.violations) >= self.max_violations:
            return
        w = self.world
        t = w.now
        nd = w.nodes[i]
        view = nd.core.view
        self.checks += 1
        catalog = view.catalog()
        if not catalog.instances:
            return
        alive = view.alive_names()
        for inst in catalog.instances:
            k = w.by_name.get(inst.node)
            slot = slot_key(inst.job, inst.index)
            if inst.node not in alive:
                m = view.member(inst.node)
                state = m.state.value if m is not None else "unknown"
                failed = " (marked failed)" if m is not None and m.state is MemberState.DEAD else ""
                self._violation(f"t={t:.3f}: {nd.name} lists {slot} on {inst.node}, which it sees {state}{failed}")
                continue
            if k is None or self.runtime.running(k, slot):
                continue
            stop = self.runtime.stopped_at.get((k, slot))
            if stop is None:
                self._violation(f"t={t:.3f}: {nd.name} lists {slot} on {inst.node}, whose container never ran")
                continue
            since_s = t - stop[0]
            if k == i:
                grace = self.runtime.report_delay_s
            else:
                grace = self.detect_s if stop[1] else self.stale_s
                if not stop[1]:
                    self.max_stale_s = max(self.max_stale_s, since_s)
            if since_s > grace + 1e-9:
                why = "its node crashed" if stop[1] else "its container stopped"
                self._violation(f"t={t:.3f}: {nd.name} lists {slot} on {inst.node}; {why} {since_s:.2f} s ago")

    def _violation(self, text: str) -> None:
        self.violations.append(text)


def running_containers(sim: ClusterSim, runtime: SimRuntime) -> set[tuple[str, str]]:
    """(slot, node name) of every running container on a live node."""
    w = sim.world
    return {(slot, w.nodes[i].name) for i in sim.live_indices()
            for slot, box in runtime.containers[i].items() if box[0] == UP}


def catalog_problems(sim: ClusterSim, runtime: SimRuntime, limit: int = 5) -> list[str]:
    """Why the catalogs have not converged: every live node's catalog must
    list exactly the running containers of the live nodes (so all agree)."""
    want = running_containers(sim, runtime)
    out = []
    first = None
    for i in sim.live_indices():
        nd = sim.world.nodes[i]
        catalog = nd.core.view.catalog()
        got = {(slot_key(x.job, x.index), x.node) for x in catalog.instances}
        if got != want:
            out.append(f"{nd.name}: missing {sorted(want - got)[:3]}, extra {sorted(got - want)[:3]}")
        elif first is None:
            first = catalog
        elif catalog.instances != first.instances:  # same replicas, other addresses/ports/health
            out.append(f"{nd.name}: its instances differ in address, ports or health")
        if len(out) >= limit:
            break
    return out
