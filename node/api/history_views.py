"""JSON views of job history and of a plan, as the API serves them.

How this works: like node.api.views, plain functions of the core's read-only
view, run with no `await` inside (one consistent snapshot each).

- `history_view`: a job's last versions (node.core.history), oldest first:
  its id (`5`, or `5@node-b` where two sides of a partition both wrote a
  5), when (the HLC stamp's wall clock, UTC), who (the API client that said
  who it is, and the agent that took the write), why (submit, delete,
  rollback, revert, scale, restart, promote; `ref` names the version a
  rollback went to or a revert came from), the image, and what changed
  from the version before it (auction.spec_diff) and whether that replaced
  running containers.  `current` marks the last-writer-wins winner.
- `plan_view`: what writing a spec would do (auction.spec_diff.plan) against
  the placed slots and the node statuses this agent knows now.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from auction.claims import slot_key
from auction.files import redact
from auction.global_jobs import wanting
from auction.membership import NodeStatus, holder_gone_reason
from auction.scoring import NodeView
from auction.spec import JobSpec, SpecError, from_json
from auction.spec_diff import diff, plan, replaces_containers, summary
from node.core.history import find_version, version_id, version_of
from node.core.jobstore import Entry

if TYPE_CHECKING:
    from node.core.view import CoreView


def parse(entry: Entry | None) -> JobSpec | None:
    """The spec of a stored version (None: a delete, or unreadable here)."""
    if entry is None or entry.spec is None:
        return None
    try:
        return from_json(json.loads(entry.spec))
    except (SpecError, ValueError, TypeError):
        return None


def when(wall_ms: int) -> str:
    return datetime.fromtimestamp(wall_ms / 1000, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _version(entry: Entry, records: list[Entry], previous: JobSpec | None, current: Entry | None) -> dict[str, Any]:
    spec = parse(entry)
    meta = entry.meta
    changes = diff(previous, spec) if spec is not None and previous is not None else []
    return {
        "version": version_id(entry, records), "number": version_of(entry), "current": entry == current,
        "wall_ms": entry.stamp.wall_ms, "time": when(entry.stamp.wall_ms), "agent": entry.stamp.node,
        "by": meta.by if meta else "", "why": meta.why if meta else "submit", "ref": meta.ref if meta else "",
        "deleted": entry.deleted, "image": spec.image if spec else None,
        "replicas": spec.replicas if spec and not spec.is_global else None,
        "mode": spec.mode.value if spec else None,
        "changes": [c.path for c in changes], "summary": ("stopped" if entry.deleted else summary(changes)
                                                          if previous is not None else "first version"),
        "replaces": spec is not None and replaces_containers(previous, spec),
        "spec": redact(spec.to_dict()) if spec else None,     # secret files' texts never shown
    }


def history_view(view: CoreView, name: str) -> dict[str, Any] | None:
    records = view.history(name)
    current = view.job(name)
    if not records and current is None:
        return None
    out, previous = [], None
    for entry in records:
        out.append(_version(entry, records, previous, current))
        previous = parse(entry) or previous
    return {"name": name, "current": version_id(current, records) if current is not None else None,
            "deleted": current.deleted if current is not None else None, "versions": out}


def rollback_target(view: CoreView, name: str, wanted: str | None) -> Entry:
    """The version to roll back to: `wanted`, or else the newest earlier version
    whose spec differs from the current one (for a stopped job: its last
    spec, so a rollback undoes a stop).  Raises LookupError saying why."""
    records = view.history(name)
    current = view.job(name)
    if current is None:
        raise LookupError(f"no job named {name!r}")
    if wanted is not None:
        target = find_version(records, wanted)
        if target.spec is None:
            raise LookupError(f"version {wanted} of {name} is a stop; roll back to a version with a spec")
        return target
    for entry in reversed(records):  # a stopped job: its last spec comes back
        if entry.stamp < current.stamp and entry.spec is not None and parse(entry) != parse(current):
            return entry
    raise LookupError(f"{name} has no earlier version to roll back to (see `shoal job history {name}`)")


def plan_view(view: CoreView, new: JobSpec) -> dict[str, Any]:
    current = view.job(new.name)
    old = view.spec_of(current) if current is not None and not current.deleted else None
    if new.restart_nonce is None and old is not None and old.restart_nonce is not None:
        new = dataclasses.replace(new, restart_nonce=old.restart_nonce)  # as a submission keeps it
    statuses = view.live_statuses()
    if view.name in statuses:
        statuses[view.name] = view.status  # ours as it is now, not as last published
    alive = view.alive_names()
    holders = {}
    if old is not None and old.is_global:
        holders = {index: claim.node for index, claim in view.global_slots(old).items()}
    elif old is not None:
        for index in range(max(old.replicas, new.replicas)):
            claim = view.winning_claim(slot_key(new.name, index))
            if claim is not None and holder_gone_reason(claim.node, alive, statuses) is None:
                holders[index] = claim.node
    nodes = [NodeView(s.name, s.capacity, s.allocated, s.labels, s.eligible) for _, s in sorted(statuses.items())]
    p = plan(old, new, holders, nodes)
    records = view.history(new.name)
    return {"name": new.name, "exists": old is not None,
            "current": version_id(current, records) if current is not None and old is not None else None,
            "replicas": {"old": _count(old, statuses, alive), "new": _count(new, statuses, alive)},
            "placed": len(holders), **p.to_json(), "spec": redact(new.to_dict())}


def _count(spec: JobSpec | None, statuses: Mapping[str, NodeStatus], alive: set[str]) -> int:
    """Replicas the version asks for; a global job's: the nodes that should run it (auction.global_jobs)."""
    if spec is None:
        return 0
    return len(wanting(spec, statuses, alive)) if spec.is_global else spec.replicas
