"""JSON views of the cluster state, as the API serves them.

How this works: plain functions from the core's read-only view
(`node.core.view.CoreView`, and `now`) to JSON-able dicts.  Each runs with no
`await` inside, between pump turns, so each answer is one consistent snapshot
of the core; they read and never change anything.

- `member_view`: a gossip member (Serf's words: alive/failed/left).
- `node_view`: a member joined with its published status record: capacity,
  allocated, free, labels, drained/eligible, health, agent version.  A member
  that publishes no status (a Serf agent, or a node we have not heard from
  yet) has `"status_known": false` and nulls for the rest.
- `job_summary` / `job_detail`: a job's spec and, per replica slot
  (index < replicas), who holds it and whether it is placed:

    placed   the winning claim names a node that is alive and not drained;
    pending  otherwise, with a reason: when this agent coordinates the slot
             (rendezvous owner among the members it believes alive), the
             outcome of its last auction round (`view.pending_reasons()`),
             or "auction in progress"; in every case followed by what the
             gossiped statuses say (`auction.scoring.explain_unplaceable`:
             "needs 4.0 cpu, 128.0 MiB; largest free is 2.0 cpu on a1"),
             with the job's max_per_node judged against the replicas each
             live node holds.

  A claim on a node that failed or was drained stays visible (node, ballot)
  until a newer ballot replaces it, so the table shows where a slot was and
  why it moves.

  A placed slot also has `runtime`: what the holder's runtime says of it,
  from the holder's status record (node/status.py's RuntimeSummary; our own
  runtime's latest report when we hold it): running, starting, failed or
  exited (with `runtime_reason`), or null when the holder does not say (an
  older agent, or a summary too large for its record).  The summaries
  count `running` and `failed` (failed or exited) slots.

  A slot starting on a node that is pulling or fetching the job's image
  has that pull's progress as its `runtime_reason` ("pulling busybox:2 on
  node-3: 3/5 layers, 12.1/48.0 MiB", from the holder's status record:
  node.core.image_progress), and a job's detail lists each such pull once
  (`pulls`, for `shoal job run`'s live lines); a node's view lists its own.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from auction.claims import Claim, parse_slot_key, slot_key
from auction.coordination import coordination_key
from auction.files import redact
from auction.global_jobs import wanting
from auction.membership import holder_gone_reason
from auction.placement import normalize_image
from auction.rendezvous import Rendezvous
from auction.resources import Resources
from auction.scoring import NodeView, explain_unplaceable, fits
from auction.spec import JobSpec
from gossip.events import MemberInfo, MemberState
from node.agent.tags import decode_tags
from node.core.history import version_id
from node.core.image_progress import of_image
from node.core.jobstore import Entry
from node.core.status import NodeStatus

if TYPE_CHECKING:
    from node.core.view import CoreView

_STATUS = {
    MemberState.ALIVE: "alive",
    MemberState.SUSPECT: "suspect",
    MemberState.DEAD: "failed",
    MemberState.LEFT: "left",
}
_HEALTH = {
    MemberState.ALIVE: "passing",
    MemberState.SUSPECT: "warning",
    MemberState.DEAD: "critical",
    MemberState.LEFT: "critical",
}
IN_PROGRESS = "auction in progress"
WAITING = "waiting for its coordinator's next placement round"


def member_view(m: MemberInfo, now: float) -> dict[str, Any]:
    """A member as JSON: `status` is Serf's word (failed for dead), `state`
    the core's; `health` is Consul-style passing/warning/critical."""
    return {
        "name": m.name,
        "addr": m.addr.host,
        "port": m.addr.port,
        "status": _STATUS[m.state],
        "state": m.state.value,
        "incarnation": m.incarnation,
        "tags": decode_tags(m.meta),
        "meta": m.meta.hex(),
        "health": _HEALTH[m.state],
        "vsn": list(m.vsn),
        "since_s": round(max(0.0, now - m.state_change_at), 3),
    }


def resources_json(r: Resources) -> dict[str, Any]:
    return {"cpu_millis": r.cpu_millis, "memory_bytes": r.memory_bytes, "disk_bytes": r.disk_bytes,
            "text": str(r)}


def node_view(name: str, member: MemberInfo | None, status: NodeStatus | None, now: float) -> dict[str, Any]:
    state = member.state if member is not None else None
    alive = state is MemberState.ALIVE
    view: dict[str, Any] = {
        "name": name,
        "addr": member.addr.host if member else None,
        "port": member.addr.port if member else None,
        "status": _STATUS[state] if state is not None else "unknown",
        "api": decode_tags(member.meta).get("api") if member else None,
        "status_known": status is not None,
    }
    if status is None:
        view.update(capacity=None, allocated=None, free=None, labels={}, drained=None, healthy=None,
                    unhealthy_reason=None, eligible=False, agent_version=None, jobs=None, publish_address=None,
                    pulls=[], health=_HEALTH[state] if state is not None else "critical")
        return view
    if state is None or state in (MemberState.DEAD, MemberState.LEFT):
        health = "critical"
    elif state is MemberState.SUSPECT or not status.healthy:
        health = "warning"
    else:
        health = "passing"
    view.update(
        capacity=resources_json(status.capacity),
        allocated=resources_json(status.allocated),
        free=resources_json(status.free),
        labels=dict(sorted(status.labels.items())),
        drained=status.drained,
        healthy=status.healthy,
        unhealthy_reason=status.unhealthy_reason or None,
        eligible=alive and status.eligible,
        agent_version=status.agent_version,
        jobs=status.jobs,
        publish_address=status.address or None,  # where its replicas are reached (the service catalog)
        health=health,
        pulls=[p.to_json(name) for p in status.pulls],      # images it is pulling or fetching now
    )
    return view


def nodes_view(view: CoreView, now: float) -> list[dict[str, Any]]:
    members = {m.name: m for m in view.members()}
    names = sorted(set(members) | set(view.statuses))
    return [node_view(n, members.get(n), view.statuses.get(n), now) for n in names]


def one_node_view(view: CoreView, name: str, now: float) -> dict[str, Any] | None:
    member = view.member(name)
    status = view.statuses.get(name)
    if member is None and status is None:
        return None
    return node_view(name, member, status, now)


# ---- jobs ---------------------------------------------------------------------------


def _stamp(entry: Entry) -> dict[str, Any]:
    return {"wall_ms": entry.stamp.wall_ms, "counter": entry.stamp.counter, "node": entry.stamp.node}


def _ballot(claim: Claim | None) -> dict[str, Any] | None:
    if claim is None:
        return None
    # The ballot names the coordinator's run ("name#start", node.core.node_core);
    # people want the node, and the run tells apart ballots of a restart.
    node, _, run = claim.ballot.coordinator.rpartition("#")
    return {"round": claim.ballot.round, "coordinator": node or run,
            "coordinator_run": claim.ballot.coordinator}


class _Context:
    """What every slot of one request is judged against (computed once)."""

    def __init__(self, view: CoreView) -> None:
        self.view = view
        self.alive = view.alive_names()
        self.statuses = view.live_statuses()
        self.rv = Rendezvous(self.alive)
        self._views: list[NodeView] | None = None

    def node_views(self) -> list[NodeView]:
        if self._views is None:
            self._views = [NodeView(s.name, s.capacity, s.allocated, s.labels, s.eligible)
                           for _, s in sorted(self.statuses.items())]
        return self._views

    def coordinator(self, key: str) -> str | None:
        return self.rv.owner(key) if self.alive else None

    def runtime_state(self, node: str, job: str, index: int) -> tuple[str, str] | None:
        summary = (self.view.runtime_summary if node == self.view.name
                   else getattr(self.statuses.get(node), "runtime", None))
        return summary.state_of(job, index) if summary is not None else None

    def pull_of(self, node: str, image: str) -> dict[str, Any] | None:
        """How far `node` is in getting `image`, from its record; None if it is not at it."""
        status = self.statuses.get(node)
        p = of_image(status.pulls, normalize_image(image)) if status is not None else None
        return None if p is None else p.to_json(node)


def _slot(ctx: _Context, spec: JobSpec, index: int, busy: set[int], held: dict[str, int]) -> dict[str, Any]:
    view = ctx.view
    key = slot_key(spec.name, index)
    claim = view.winning_claim(key)
    coordinator = ctx.coordinator(coordination_key(spec.name, index, spec))
    slot: dict[str, Any] = {"index": index, "slot": key, "node": claim.node if claim else None,
                            "ballot": _ballot(claim), "coordinator": coordinator,
                            # The container hash the slot's claim is for (a rollout moves it).
                            "container_hash": claim.spec_hash[:12] if claim else None}
    problem = None
    if claim is not None:
        problem = holder_gone_reason(claim.node, ctx.alive, ctx.statuses)
        if problem is None:
            rt = ctx.runtime_state(claim.node, spec.name, index)
            why = (rt[1] or None) if rt else None
            if rt is not None and rt[0] == "starting" and (pull := ctx.pull_of(claim.node, spec.image)):
                why = pull["text"]
            slot.update(state="placed", reason=None, runtime=rt[0] if rt else None, runtime_reason=why)
            return slot
    reasons = [problem] if problem else []
    if coordinator == view.name:
        if index in busy:
            reasons.append(IN_PROGRESS)
        elif (r := view.pending_reasons().get(key)) is not None:
            reasons.append(r)
        else:
            reasons.append(WAITING)
    reasons.append(explain_unplaceable(spec, ctx.node_views(), held))
    slot.update(state="pending", reason="; ".join(reasons), runtime=None, runtime_reason=None)
    return slot


def _slots(ctx: _Context, spec: JobSpec) -> list[dict[str, Any]]:
    if spec.is_global:
        return _global_slots(ctx, spec)
    busy = ctx.view.busy_slots(spec.name)
    # (max_per_node: a pending slot's reason must not name a node at the limit as one it fits on)
    held = ctx.view.held_by_node(spec) if spec.max_per_node is not None else {}
    return [_slot(ctx, spec, i, busy, held) for i in range(spec.replicas)]


def _global_slots(ctx: _Context, spec: JobSpec) -> list[dict[str, Any]]:
    """A global job's slots (auction.global_jobs): those whose holders keep
    them, then a pending row for every member that should run one and
    holds none, saying why it does not."""
    slots = ctx.view.global_slots(spec)
    rows = [_slot(ctx, spec, index, set(), {}) for index in slots]
    holders = {c.node for c in slots.values()}
    nodes = {n.name: n for n in ctx.node_views()}
    for name in wanting(spec, ctx.statuses, ctx.alive):
        if name in holders:
            continue
        if name == ctx.view.name:
            why = ctx.view.global_refusal(spec.name) or "taking its slot"
        else:
            node = nodes[name]
            # Only the node knows its container policy, images and failures:
            # `shoal job run` asks it (node.cli.progress), as a slot's coordinator.
            why = (f"waiting for {name} to take its slot" if fits(spec, node)
                   else explain_unplaceable(spec, [node]))
        rows.append({"index": None, "slot": f"{spec.name}@{name}", "node": name, "ballot": None,
                     "coordinator": name, "container_hash": None, "state": "pending", "reason": why,
                     "runtime": None, "runtime_reason": None})
    return rows


def _extra(view: CoreView, spec: JobSpec) -> list[dict[str, Any]]:
    """Claims still held for indices >= replicas (being retired)."""
    out = []
    prefix = spec.name + "/"
    for key, claim in sorted(view.claims().items()):
        if claim.released or not key.startswith(prefix):
            continue
        job, index = parse_slot_key(key)
        if job == spec.name and index >= spec.replicas and not spec.is_global:
            out.append({"index": index, "slot": key, "node": claim.node, "ballot": _ballot(claim),
                        "state": "retiring"})
    return out


def job_summary(ctx: _Context, entry: Entry) -> dict[str, Any]:
    spec = ctx.view.spec_of(entry)
    if spec is None:
        return {"name": entry.name, "valid": False, "version": _stamp(entry)}
    slots = _slots(ctx, spec)
    placed = sum(1 for s in slots if s["state"] == "placed")
    running = sum(1 for s in slots if s["runtime"] == "running")
    failed = sum(1 for s in slots if s["runtime"] in ("failed", "exited"))
    # A global job's count is its nodes' (auction.global_jobs): every row is one.
    return {"name": spec.name, "valid": True, "image": spec.image,
            "replicas": len(slots) if spec.is_global else spec.replicas, "mode": spec.mode.value,
            "placed": placed, "pending": len(slots) - placed, "running": running, "failed": failed,
            "cpu": spec.cpu_millis / 1000,
            "memory": spec.to_dict()["memory"], "version": _stamp(entry),
            "job_version": version_id(entry, ctx.view.history(entry.name))}  # node.core.history


def jobs_view(view: CoreView) -> list[dict[str, Any]]:
    ctx = _Context(view)
    return [job_summary(ctx, e) for e in view.jobs()]


def job_detail(view: CoreView, name: str) -> dict[str, Any] | None:
    entry = view.job(name)
    if entry is None or entry.deleted:
        return None
    ctx = _Context(view)
    summary = job_summary(ctx, entry)
    spec = view.spec_of(entry)
    if spec is None:
        return {**summary, "spec": None, "slots": [], "extra": []}
    slots = _slots(ctx, spec)
    pulls = [p for node in sorted({s["node"] for s in slots if s.get("runtime") == "starting"})
             if (p := ctx.pull_of(node, spec.image)) is not None]
    return {**summary, "spec": redact(spec.to_dict()), "container_hash": spec.container_hash()[:12],
            "slots": slots, "extra": _extra(view, spec), "rollout": view.rollout(name), "pulls": pulls}
