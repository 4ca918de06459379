"""What a new version of a job changes, and what it would do to the cluster.

How this works: `diff(old, new)` compares two specs in their canonical form
(`JobSpec.to_dict()`) field by field: a field that is a table (env, health,
restart, ports, ...) is compared key by key (`env.DEBUG`), anything else as
a whole; a file's parts are compared one by one (`files.app.conf.content`: the
table shows the start of each text); a field at its default is absent from the canonical form, so
setting it shows as added and clearing it as removed.  Whether running
containers are replaced is `container_hash()` alone (auction.jobspec says
which fields shape a container): a change of replicas, constraints or the
restart policy replaces nothing.

`plan(old, new, holders, nodes)` says what writing `new` would do, without
an auction: which placed slots are replaced in place, which must move (a
bigger cpu/memory demand no longer fits their holder), which new slots are
started and which are stopped, and for every slot to be placed, a node it
would fit on, greedily, with the same hard filters and resource checks the
bidders use (auction.scoring: filter_reason, fits, max_per_node), against
the node statuses the caller passes; a slot that fits nowhere gets the
reason placement would print (`explain_unplaceable`).  It is an estimate:
the auction may choose other nodes, and statuses are a second stale.

Pure: no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from .files import redact
from .jobspec import JobSpec
from .resources import Resources
from .scoring import NodeView, could_take, explain_unplaceable, filter_reason

# Shown in the table as it is, but cut: values are user text.
MAX_SHOWN_CHARS = 60


@dataclass(frozen=True, slots=True)
class Change:
    path: str  # "image", "env.DEBUG", "health.interval_s"
    old: Any  # None: absent (added)
    new: Any  # None: absent (removed)

    def to_json(self) -> dict[str, Any]:
        return {"field": self.path, "old": self.old, "new": self.new}


def diff(old: JobSpec | None, new: JobSpec) -> list[Change]:
    """Field-by-field changes from old to new (every field of new if old is None)."""
    a = redact(old.to_dict()) if old is not None else {}    # secret files' texts never shown (auction.files)
    b = redact(new.to_dict())
    changes: list[Change] = []
    for key in sorted(set(a) | set(b)):
        x, y = a.get(key), b.get(key)
        if x == y:
            continue
        if isinstance(x, dict) and isinstance(y, dict):
            for sub in sorted(set(x) | set(y)):
                if x.get(sub) == y.get(sub):
                    continue
                xs, ys = x.get(sub), y.get(sub)
                if key == "files" and isinstance(xs, dict) and isinstance(ys, dict):
                    # A file's text is long: say which of its parts changed (files.app.content).
                    changes.extend(Change(f"{key}.{sub}.{part}", xs.get(part), ys.get(part))
                                   for part in sorted(set(xs) | set(ys)) if xs.get(part) != ys.get(part))
                else:
                    changes.append(Change(f"{key}.{sub}", xs, ys))
        else:
            changes.append(Change(key, x, y))
    return changes


def replaces_containers(old: JobSpec | None, new: JobSpec) -> bool:
    return old is not None and old.container_hash() != new.container_hash()


def shown(value: Any) -> str:
    """A value as the text table shows it."""
    if value is None:
        return "-"
    text = value if isinstance(value, str) else _compact(value)
    return text if len(text) <= MAX_SHOWN_CHARS else text[: MAX_SHOWN_CHARS - 3] + "..."


def _compact(value: Any) -> str:
    import json

    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def summary(changes: list[Change], limit: int = 3) -> str:
    """A short line for history tables: "image, env.DEBUG, +2 more"."""
    if not changes:
        return "no change"
    names = [c.path for c in changes[:limit]]
    more = len(changes) - limit
    return ", ".join(names) + (f", +{more} more" if more > 0 else "")


@dataclass(slots=True)
class Plan:
    changes: list[Change]
    replaces: bool  # running containers are replaced (container hash changed)
    replaced: list[int] = field(default_factory=list)  # placed slots replaced where they run
    moved: list[int] = field(default_factory=list)  # placed slots that no longer fit their holder
    started: list[int] = field(default_factory=list)  # slots to place (new, or not placed now)
    stopped: list[int] = field(default_factory=list)  # placed slots beyond the new replica count
    fits_on: dict[int, str] = field(default_factory=dict)  # slot to place -> a node it would fit on
    unplaceable: dict[int, str] = field(default_factory=dict)  # slot -> why it fits nowhere

    def to_json(self) -> dict[str, Any]:
        return {"changes": [c.to_json() for c in self.changes], "replaces_containers": self.replaces,
                "replaced": self.replaced, "moved": self.moved, "started": self.started,
                "stopped": self.stopped, "fits_on": {str(k): v for k, v in sorted(self.fits_on.items())},
                "unplaceable": {str(k): v for k, v in sorted(self.unplaceable.items())}}


def plan(old: JobSpec | None, new: JobSpec, holders: dict[int, str], nodes: list[NodeView]) -> Plan:
    """What writing `new` over `old` would do; `holders` are the placed slots
    of the job now (index -> node), `nodes` what is known of the eligible
    and ineligible nodes alike (used: what is committed there now)."""
    result = Plan(diff(old, new), replaces_containers(old, new))
    views = {n.name: n for n in nodes}
    delta = new.demand() - (old.demand() if old is not None else new.demand())
    per_node: dict[str, int] = {}
    for index, node in sorted(holders.items()):
        if index >= new.replicas and not new.is_global:     # a global job's holders keep theirs
            result.stopped.append(index)
            continue
        per_node[node] = per_node.get(node, 0) + 1
        if not result.replaces:
            continue
        view = views.get(node)
        # The new container takes the old one's reservation and the difference.
        need = Resources(max(0, delta.cpu_millis), max(0, delta.memory_bytes), max(0, delta.disk_bytes))
        if view is not None and (need == Resources(0, 0) or need.fits_in(view.free())) \
                and filter_reason(new, view) is None:
            result.replaced.append(index)
            views[node] = replace(view, used=view.used + delta)
        else:
            result.moved.append(index)
            per_node[node] -= 1
            if view is not None and old is not None:
                views[node] = replace(view, used=view.used - old.demand())
    result.started = sorted(set(range(new.replicas)) - set(holders) | set(result.moved))
    for index in result.started:
        best = _fit(new, views, per_node)
        if best is None:
            result.unplaceable[index] = _why_not(new, views, per_node)
            continue
        result.fits_on[index] = best
        per_node[best] = per_node.get(best, 0) + 1
        views[best] = replace(views[best], used=views[best].used + new.demand())
    return result


def _why_not(spec: JobSpec, views: dict[str, NodeView], per_node: dict[str, int]) -> str:
    """Placement's reason, max_per_node included."""
    return explain_unplaceable(spec, sorted(views.values(), key=lambda v: v.name), per_node)


def _fit(spec: JobSpec, views: dict[str, NodeView], per_node: dict[str, int]) -> str | None:
    """The node a slot would most likely go to: passes the filters, has room,
    is under max_per_node; the least loaded by this job, then the name."""
    ok = [v for v in views.values() if could_take(spec, v, per_node)]
    if not ok:
        return None
    return min(ok, key=lambda v: (per_node.get(v.name, 0), v.name)).name
