"""Invariants and convergence predicates over a simulated cluster.

How this works: two kinds of helpers.

Snapshot checks read each core's membership (`members()` / `member()`: a
gossip core's own methods, or a node core's read-only `view`, see `membership`):
`views`, `all_agree_alive`, `dead_everywhere`.  They are exact but cost
O(N^2) member records per call, fine for tens of nodes.

Listeners subscribe to the world's event stream (`world.subscribe`) and keep
state incrementally, cheap enough to poll every 100 ms at 1,000 nodes:

- `ViewTracker`: each node's view of every member, rebuilt only from the
  Member* events its core emitted (reset when the node restarts), with a
  running count of members it considers alive.  Comparing it with
  `views(world)` checks that the core's events tell the same story as its
  member table.
- `FalseDeathDetector`: every MemberFailed is classified by what the
  simulator knows about the subject at that moment.  Failures of a node that
  is crashed, recently restarted, paused for at least its suspicion timeout
  (or was, recently), or cut off from the observer by a partition (now or
  recently) are legitimate; anything else is a false death.
- `FirstSeen`: time at which each node first emitted an event matching a
  predicate (e.g. a UserBroadcast), for dissemination latency.

`failure_detection_bound(config, n)` derives how long detecting a crash may
take from the configuration.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from gossip.config import GossipConfig
from gossip.events import (
    MemberFailed,
    MemberJoined,
    MemberLeft,
    MemberState,
    MemberSuspected,
    MemberUpdated,
)
from node.sim.trace import NodeFormed, NodeRestarted
from node.sim.world import CRASHED, NEW, PAUSED, RUNNING, World

_MEMBER_EVENTS = (MemberJoined, MemberUpdated, MemberSuspected, MemberFailed, MemberLeft)
ALIVE = MemberState.ALIVE
DEAD = MemberState.DEAD


# ---- bounds derived from the configuration ------------------------------------


def failure_detection_bound(config: GossipConfig, n: int, *, probers: int | None = None,
                            subjects: int = 1) -> float:
    """Upper bound on the time from a crash (or a cut) to every live node
    having marked it failed.

    - someone probes the dead node: each of the n-1 live nodes probes it with
      probability ~1/n per probe interval, so ten intervals leave a chance of
      about e^-10 that nobody has.  When only `probers` nodes can reach for
      `subjects` nodes (one side of a partition probing the other), each
      subject is probed ~probers/n times per interval and the last of them
      needs (ln(subjects) + 10) * n / probers intervals for the same odds;
    - that probe times out (probe_timeout_s) and its indirect probes fail by
      the end of the probe interval;
    - the suspicion timer runs at most suspicion_max_timeout_s(n);
    - the Dead message spreads: retransmit_limit(n) gossip intervals.
    """
    probers = n if probers is None else probers
    first_probe_intervals = (math.log(subjects) + 10) * n / max(1, probers)
    return (
        first_probe_intervals * config.probe_interval_s
        + config.probe_interval_s
        + config.suspicion_max_timeout_s(n)
        + config.retransmit_limit(n) * config.gossip_interval_s
    )


# ---- snapshot checks ---------------------------------------------------------------


def membership(core: Any) -> Any:
    """What answers members() / member() / alive_names() for a core: a node
    core's read-only view, or a gossip core itself."""
    view = getattr(core, "view", None)
    return view if view is not None else core


def views(world: World, *, include_paused: bool = True) -> dict[str, dict[str, MemberState]]:
    """Each live node's member states, from its core (crashed nodes excluded)."""
    out = {}
    for nd in world.nodes:
        if nd.status is RUNNING or (include_paused and nd.status is PAUSED):
            out[nd.name] = {m.name: m.state for m in membership(nd.core).members()}
    return out


def all_agree_alive(world: World) -> bool:
    """Every live node sees every other live node ALIVE."""
    live = [nd for nd in world.nodes if nd.status is RUNNING or nd.status is PAUSED]
    if live and hasattr(membership(live[0].core), "alive_names"):
        # Fast path: one set per node instead of a MemberInfo per pair.
        names = {nd.name for nd in live}
        for nd in live:
            if not names.issubset(membership(nd.core).alive_names() | {nd.name}):
                return False
        return True
    for nd in live:
        core = membership(nd.core)
        for other in live:
            if other is nd:
                continue
            m = core.member(other.name)
            if m is None or m.state is not ALIVE:
                return False
    return True


def disagreements(world: World, limit: int = 10) -> list[str]:
    """Human-readable reasons `all_agree_alive` is false (for assertion messages)."""
    live = [nd for nd in world.nodes if nd.status is RUNNING or nd.status is PAUSED]
    out = []
    for nd in live:
        for other in live:
            if other is nd:
                continue
            m = membership(nd.core).member(other.name)
            if m is None or m.state is not ALIVE:
                out.append(f"{nd.name} sees {other.name} as {None if m is None else m.state.value}")
                if len(out) >= limit:
                    return out
    return out


def dead_everywhere(world: World, name: str, *, allow_forgotten: bool = True) -> bool:
    """Every live node other than `name` has `name` as DEAD (or, once its
    tombstone is reclaimed, not at all)."""
    for nd in world.nodes:
        if nd.name == name or not (nd.status is RUNNING or nd.status is PAUSED):
            continue
        m = membership(nd.core).member(name)
        if m is None:
            if not allow_forgotten:
                return False
        elif m.state is not DEAD:
            return False
    return True


def sees_dead(world: World, observers, subjects) -> bool:
    """Every observer (indices) has every subject (indices) as DEAD."""
    for o in observers:
        core = membership(world.nodes[o].core)
        for s in subjects:
            m = core.member(world.nodes[s].name)
            if m is None or m.state is not DEAD:
                return False
    return True


# ---- listeners ----------------------------------------------------------------------


class ViewTracker:
    """Each node's view of the cluster, built only from its Member* events."""

    def __init__(self, world: World) -> None:
        self.world = world
        self.view: list[dict[str, MemberState]] = [{} for _ in range(world.n)]
        self.alive_others = [0] * world.n
        world.subscribe(self._on_event)

    def _on_event(self, t: float, i: int, ev: Any) -> None:
        cls = ev.__class__
        if cls in _MEMBER_EVENTS:
            m = ev.member
            name = m.name
            if name == self.world.nodes[i].name:
                return
            v = self.view[i]
            old = v.get(name)
            new = m.state
            v[name] = new
            if old is ALIVE and new is not ALIVE:
                self.alive_others[i] -= 1
            elif new is ALIVE and old is not ALIVE:
                self.alive_others[i] += 1
        elif cls is NodeRestarted:
            self.view[i] = {}
            self.alive_others[i] = 0
        elif cls is NodeFormed:
            # Started holding a formed cluster, with no member event each.
            me = self.world.nodes[i].name
            self.view[i] = {m.name: m.state for m in self.world.nodes[i].core.members() if m.name != me}
            self.alive_others[i] = sum(1 for state in self.view[i].values() if state is ALIVE)

    def all_alive(self, world: World | None = None) -> bool:
        """Every live node's events say every other live node is ALIVE."""
        w = self.world
        live = [nd.idx for nd in w.nodes if nd.status is RUNNING or nd.status is PAUSED]
        want = len(live) - 1
        counts = self.alive_others
        if any(counts[i] < want for i in live):
            return False
        gone = any(nd.status is CRASHED or nd.status is NEW for nd in w.nodes)
        if gone or any(counts[i] != want for i in live):
            # Counts alone could hide a crashed member counted as alive in
            # place of a live one: check names exactly.
            names = [w.nodes[j].name for j in live]
            for i in live:
                v = self.view[i]
                me = w.nodes[i].name
                if any(v.get(nm) is not ALIVE for nm in names if nm != me):
                    return False
        return True

    def state(self, observer: int, subject: str) -> MemberState | None:
        return self.view[observer].get(subject)

    def sees_dead(self, observers, subjects) -> bool:
        """Every observer's events say every subject (indices) is DEAD."""
        names = [self.world.nodes[s].name for s in subjects]
        return all(self.view[o].get(nm) is DEAD for o in observers for nm in names)


@dataclass(frozen=True)
class Failure:
    t: float
    observer: str
    subject: str
    incarnation: int
    why: str  # "crashed", "restarted", "paused", "partitioned", or "live" (false death)


class FalseDeathDetector:
    """Records every MemberFailed and flags those about a node that was fine."""

    def __init__(self, world: World, *, grace_s: float | None = None,
                 pause_threshold_s: float | None = None) -> None:
        self.world = world
        cfg = world.config
        n = world.n
        # A node paused this long may rightly be declared dead.
        self.pause_threshold_s = (cfg.suspicion_min_timeout_s(n) if pause_threshold_s is None
                                  else pause_threshold_s)
        # How long after a crash, long pause or partition a failure is still its echo.
        self.grace_s = (failure_detection_bound(cfg, n) if grace_s is None else grace_s)
        self.failures: list[Failure] = []
        self.false_deaths: list[Failure] = []
        world.subscribe(self._on_event)

    def _why(self, observer: int, subject: int, t: float) -> str:
        w = self.world
        s = w.nodes[subject]
        if s.status is CRASHED or s.status is NEW:
            return "crashed"
        if s.restarted_at is not None and t - s.restarted_at <= self.grace_s:
            return "restarted"
        if s.status is PAUSED and s.paused_since is not None and t - s.paused_since >= self.pause_threshold_s * 0.9:
            return "paused"
        if s.last_pause is not None:
            p0, p1 = s.last_pause
            if p1 - p0 >= self.pause_threshold_s * 0.9 and t - p1 <= self.grace_s:
                return "paused"
        if w.network.cut_since(observer, subject, t - self.grace_s):
            return "partitioned"
        return "live"

    def _on_event(self, t: float, i: int, ev: Any) -> None:
        if ev.__class__ is not MemberFailed:
            return
        m = ev.member
        j = self.world.by_name.get(m.name)
        if j is None:
            return
        why = self._why(i, j, t)
        f = Failure(t, self.world.nodes[i].name, m.name, m.incarnation, why)
        self.failures.append(f)
        if why == "live":
            self.false_deaths.append(f)


class FirstSeen:
    """When each node first emitted an event matching `match(event)`."""

    def __init__(self, world: World, match: Callable[[Any], bool]) -> None:
        self.world = world
        self.match = match
        self.t: dict[int, float] = {}
        world.subscribe(self._on_event)

    def _on_event(self, t: float, i: int, ev: Any) -> None:
        if i not in self.t and self.match(ev):
            self.t[i] = t

    def count(self) -> int:
        return len(self.t)


class IncarnationsMonotonic:
    """Safety: what a node believes about a member's incarnation never goes
    backwards (until the observer itself restarts with an empty table)."""

    def __init__(self, world: World) -> None:
        self.world = world
        self.seen: list[dict[str, int]] = [{} for _ in range(world.n)]
        self.violations: list[tuple[float, str, str, int, int]] = []
        world.subscribe(self._on_event)

    def _on_event(self, t: float, i: int, ev: Any) -> None:
        cls = ev.__class__
        if cls in _MEMBER_EVENTS:
            m = ev.member
            seen = self.seen[i]
            old = seen.get(m.name, -1)
            if m.incarnation < old:
                self.violations.append((t, self.world.nodes[i].name, m.name, old, m.incarnation))
            else:
                seen[m.name] = m.incarnation
        elif cls is NodeRestarted:
            self.seen[i] = {}
