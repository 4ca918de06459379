"""`shoal chaos check`: an audit of a live cluster through its agents' API.

How this works: `collect(get)` takes a snapshot through one agent (`get(url
or None, path)` does the HTTP; None means the agent given by --address):

- /v1/nodes: every node, its status, capacity and API address;
- /v1/jobs and /v1/jobs/NAME: the jobs, their specs, and who holds each
  slot (the winning claims as that agent sees them);
- /v1/containers?cluster=1: every live agent's own runtime listing (the
  Docker engine's containers of ours, with their state), fanned out by the
  agent;
- the same /v1/jobs/NAME from every other reachable agent, to see whether
  the agents agree on the claims (asked only while nodes x jobs stays
  under `MAX_CLAIM_QUERIES`).

`judge(snapshot)` then compares the runtimes' word (ground truth) with the
claims, using node.chaos.invariants:

- lost: a desired slot no container runs;
- doubled: a slot with more than one running container;
- unexplained: a running container of ours whose node holds no claim for
  its slot (or whose slot no job wants);
- over-capacity: a node whose running containers reserve more than its capacity;

and warns about what it could not see (a node whose containers it could not
list, a failed node) and about agents that disagree on a slot's holder.
A cluster converging after a fault shows passing problems: `--wait S`
repeats the audit until it is clean or S seconds have passed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from auction.resources import Resources
from node.chaos import invariants as inv

MAX_CLAIM_QUERIES = 2000
Getter = Callable[[str | None, str], Any]  # (agent API URL or None for --address, path) -> JSON; raises OSError


@dataclass
class Snapshot:
    nodes: dict[str, dict[str, Any]] = field(default_factory=dict)  # /v1/nodes entries by name
    jobs: dict[str, dict[str, Any]] = field(default_factory=dict)  # job detail by name (the asked agent's)
    containers: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # node -> its runtime's rows
    claims: dict[str, dict[str, str | None]] = field(default_factory=dict)  # agent -> slot -> holder
    unaudited: dict[str, str] = field(default_factory=dict)  # node -> why its containers are unknown


@dataclass
class Finding:
    kind: str  # lost | doubled | unexplained | over-capacity
    subject: str
    message: str


@dataclass
class Report:
    problems: list[Finding]
    warnings: list[str]
    counts: dict[str, int]

    @property
    def clean(self) -> bool:
        return not self.problems and not self.warnings

    def to_dict(self) -> dict[str, Any]:
        return {"clean": self.clean, "counts": self.counts, "warnings": self.warnings,
                "problems": [{"kind": f.kind, "subject": f.subject, "message": f.message} for f in self.problems]}


def _holders(detail: dict[str, Any]) -> dict[str, str | None]:
    return {s["slot"]: s.get("node") for s in detail.get("slots", []) if "slot" in s}


def collect(get: Getter) -> Snapshot:
    snap = Snapshot()
    for n in get(None, "/v1/nodes"):
        snap.nodes[n["name"]] = n
    for j in get(None, "/v1/jobs"):
        if j.get("valid", True):
            snap.jobs[j["name"]] = get(None, f"/v1/jobs/{quote(j['name'], safe='')}")
    listing = get(None, "/v1/containers?cluster=1")
    apis: dict[str, str] = {}
    for entry in listing.get("nodes", []):
        name = entry.get("node")
        if entry.get("error"):
            snap.unaudited[name] = entry["error"]
            continue
        snap.containers[name] = entry.get("containers") or []
        if entry.get("api"):
            apis[name] = entry["api"]
    for name, n in snap.nodes.items():
        if name not in snap.containers and name not in snap.unaudited:
            snap.unaudited[name] = f"it is {n.get('status')}" if n.get("status") != "alive" else "it did not answer"
    if len(apis) * max(1, len(snap.jobs)) <= MAX_CLAIM_QUERIES:
        for name, url in sorted(apis.items()):
            seen: dict[str, str | None] = {}
            try:
                for job in snap.jobs:
                    seen.update(_holders(get(url, f"/v1/jobs/{quote(job, safe='')}")))
            except (OSError, ValueError, KeyError, TypeError):
                continue  # its containers were listed; its claims view is a nicety
            snap.claims[name] = seen
    return snap


def _demand(detail: dict[str, Any]) -> Resources | None:
    from auction.spec import SpecError, validate

    try:
        return validate(detail["spec"]).demand()
    except (SpecError, KeyError, TypeError):
        return None


def judge(snap: Snapshot) -> Report:
    problems: list[Finding] = []
    warnings = [f"{node}: containers not listed ({why})" for node, why in sorted(snap.unaudited.items())]
    replicas = {name: int(d.get("replicas") or 0) for name, d in snap.jobs.items() if d.get("mode") != "global"}
    # A global job's slots are its nodes' (auction.global_jobs): the placed ones listed.
    desired = inv.desired_slots(replicas) | {s["slot"] for d in snap.jobs.values() if d.get("mode") == "global"
                                             for s in d.get("slots") or [] if s.get("index") is not None}
    holder = {slot: h for d in snap.jobs.values() for slot, h in _holders(d).items()}
    running = {node: [r for r in rows if r.get("state") == "running" and r.get("slot")]
               for node, rows in snap.containers.items()}
    counts: dict[str, int] = {}
    where: dict[str, list[str]] = {}
    for node, rows in running.items():
        for r in rows:
            counts[r["slot"]] = counts.get(r["slot"], 0) + 1
            where.setdefault(r["slot"], []).append(node)
    for slot in sorted(desired):
        k = counts.get(slot, 0)
        if k == 0:
            h = holder.get(slot)
            if h in snap.unaudited and (snap.nodes.get(h) or {}).get("status") == "alive":
                continue  # its live holder could not be asked: warned about above
            held = f"claimed by {h}" if h else "not placed"
            problems.append(Finding("lost", slot, f"{slot} runs nowhere ({held})"))
        elif k > 1:
            problems.append(Finding("doubled", slot, f"{slot} runs {k} times (on {', '.join(sorted(where[slot]))})"))
    for node, rows in sorted(running.items()):
        for r in rows:
            slot = r["slot"]
            if slot not in desired:
                problems.append(Finding("unexplained", slot, f"{slot} runs on {node} but no job wants it "
                                                             f"(container {r.get('name') or r.get('id') or '?'})"))
            elif holder.get(slot) != node:
                problems.append(Finding("unexplained", slot, f"{slot} runs on {node} but is claimed by "
                                                             f"{holder.get(slot) or 'nobody'}"))
    demands = {name: _demand(d) for name, d in snap.jobs.items()}
    for node, rows in sorted(running.items()):
        cap = (snap.nodes.get(node) or {}).get("capacity")
        if not cap:
            continue
        use = inv.total(d for r in rows if (d := demands.get(r["slot"].rpartition("/")[0])) is not None)
        problem = inv.overcommit(node, use, Resources(cap["cpu_millis"], cap["memory_bytes"],
                                                      cap.get("disk_bytes", 0)))
        if problem:
            problems.append(Finding("over-capacity", node, problem))
    agents = sorted(snap.claims)
    for slot in sorted(desired):
        views = {a: snap.claims[a].get(slot) for a in agents if slot in snap.claims[a]}
        if len(set(views.values())) > 1:
            says = ", ".join(f"{a}: {h or '-'}" for a, h in views.items())
            warnings.append(f"agents disagree on who holds {slot} ({says})")
    tally = {"nodes": len(snap.nodes), "audited": len(snap.containers), "jobs": len(snap.jobs),
             "desired_slots": len(desired), "running_containers": sum(counts.values())}
    return Report(problems, warnings, tally)


def _n(k: int, what: str) -> str:
    return f"{k} {what}" + ("" if k == 1 else "s")


def render(report: Report) -> str:
    c = report.counts
    lines = [f"{_n(c['nodes'], 'node')} ({c['audited']} audited), {_n(c['jobs'], 'job')}, "
             f"{_n(c['desired_slots'], 'desired slot')}, {_n(c['running_containers'], 'running container')} of ours"]
    for kind in ("lost", "doubled", "unexplained", "over-capacity"):
        found = [f for f in report.problems if f.kind == kind]
        lines.append(f"  {kind:<14} {'none' if not found else len(found)}")
        lines += [f"    {f.message}" for f in found[:50]]
    if report.warnings:
        lines.append("warnings:")
        lines += [f"  {w}" for w in report.warnings[:50]]
    lines.append("clean" if report.clean else
                 f"{len(report.problems)} problem(s)" + (", audit incomplete" if report.warnings else ""))
    return "\n".join(lines) + "\n"
