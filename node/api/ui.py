"""The status page every agent serves at `GET /ui`: one server-rendered HTML page.

How this works: `gather(agent)` reads one snapshot of the node core's
read-only view, with no `await` in between (members, node statuses, jobs with
their slots, as the JSON API shows them: node.api.views) and adds the agent's recent events and what its
local runtime reports; `render(state)` turns that plain dict into the page.
`render` is pure (no I/O, no clock: the time shown is `state["now"]`), so
tests call it with a hand-made state.

The page has no external assets and no JavaScript: inline CSS only, and it
reloads itself every `REFRESH_S` seconds (`<meta http-equiv=refresh>`).  It
carries a Content-Security-Policy that forbids scripts and every fetch, and
every value from the cluster (node names, labels, images, event fields, all
of which any agent can gossip) is HTML-escaped.

What it shows, from this agent's point of view (another agent may briefly
see otherwise while gossip converges):

  * members: name, address, status (alive / suspect / failed / left), health
    (passing / warning / critical) and for how long;
  * capacity per node: CPU and memory allocated against capacity, as bars,
    and the images it is pulling or fetching with how far it is;
  * jobs: replicas desired against placed (a slot is placed when its winning
    claim names an alive, undrained node), pending slots with the first
    reason (or, while a replica waits for its image, the pull's progress),
    the job's current version and how many replicas run each
    version, a rollout in progress (new / healthy / all, failed, canaries
    waiting for a promote: auction.rollout.describe), and the replicas this
    agent's runtime reports running here;
  * placements by node (each replica with the version its claim is for) and
    by `rack` label (nodes without one are "-");
  * the most recent events of this agent's event log, newest first.

The state dict (`gather` builds it; every key optional except where noted):

    {"agent": {"name", "api", "runtime",       # runtime: the runtime's kind
               "problem"},                      # this agent's clock is off, or None
     "now": unix seconds,                       # when the snapshot was taken
     "members": [member_view, ...],             # node/views.py
     "nodes": [node_view, ...],
     "jobs": [job_detail, ...],                 # with "slots", "rollout" and
                                                # "version_of": {container hash[:12]: version id}
     "jobs_omitted": int,                       # jobs not shown (over MAX_JOBS)
     "running_here": {job: count} or None,      # None: the runtime does not say
     "events": [event record, ...]}             # oldest first, as the log keeps them
"""

from __future__ import annotations

import html
import json
import time
from collections import defaultdict
from typing import TYPE_CHECKING, Any

import trio

from node.api import views
from node.api.history_views import parse
from node.core.history import version_id

if TYPE_CHECKING:
    from node.agent.agent import Agent

REFRESH_S = 5
MAX_JOBS = 200              # jobs rendered (each with its slots); the rest are counted
MAX_EVENTS = 40
MAX_SLOTS_PER_CELL = 24     # slot names listed in one placement cell
CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; base-uri 'none'; form-action 'none'"

_STATUS_CLASS = {"alive": "ok", "suspect": "warn", "failed": "bad", "left": "off", "unknown": "off"}
_HEALTH_CLASS = {"passing": "ok", "warning": "warn", "critical": "bad"}

_CSS = """
*{box-sizing:border-box}
body{margin:0;font:14px/1.4 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:#1d2433;background:#f4f6f9}
header{background:#14324f;color:#fff;padding:12px 24px;display:flex;align-items:baseline;gap:16px;flex-wrap:wrap}
header h1{margin:0;font-size:20px;letter-spacing:.5px}
header .sub{opacity:.8}
main{padding:16px 24px;display:grid;gap:16px;grid-template-columns:repeat(auto-fit,minmax(560px,1fr))}
section{background:#fff;border:1px solid #dde3ea;border-radius:8px;padding:12px 16px;min-width:0}
section.wide{grid-column:1/-1}
h2{font-size:15px;margin:0 0 8px;color:#14324f}
.cards{display:flex;gap:12px;flex-wrap:wrap}
.card{background:#fff;border:1px solid #dde3ea;border-radius:8px;padding:8px 16px;min-width:140px}
.card b{display:block;font-size:22px}
table{border-collapse:collapse;width:100%}
th,td{text-align:left;padding:4px 8px;border-bottom:1px solid #eef1f5;vertical-align:top}
th{font-weight:600;color:#5a6678;font-size:12px;text-transform:uppercase;letter-spacing:.4px}
td.num,th.num{text-align:right;font-variant-numeric:tabular-nums}
.pill{display:inline-block;padding:0 8px;border-radius:10px;font-size:12px;font-weight:600}
.ok{background:#dff5e3;color:#1e6b32}.warn{background:#fff1cc;color:#8a5a00}
.bad{background:#fde0e0;color:#a11d1d}.off{background:#e8ebef;color:#5a6678}
.bar{position:relative;height:16px;background:#eef1f5;border-radius:4px;overflow:hidden;min-width:160px}
.bar span{position:absolute;left:0;top:0;bottom:0;background:#3b82c4}
.bar.full span{background:#d9822b}
.bar i{position:relative;font-style:normal;font-size:11px;padding-left:6px;line-height:16px}
.muted{color:#7b8696}
.slots{font-family:ui-monospace,Menlo,Consolas,monospace;font-size:12px}
.reason{color:#8a5a00;font-size:12px}
code{font-size:12px}
"""


# ---- gathering (the agent side) ------------------------------------------------------


def gather(agent: Agent) -> dict[str, Any]:
    """One snapshot of everything the page shows (no await: one pump state)."""
    view = agent.view
    now = trio.current_time()
    entries = view.jobs()
    jobs = []
    for entry in entries[:MAX_JOBS]:
        detail = views.job_detail(view, entry.name)
        if detail is not None:
            detail["version_of"] = _versions_of(view, detail)
            jobs.append(detail)
    state: dict[str, Any] = {
        "members": [views.member_view(m, now) for m in view.members()],
        "nodes": views.nodes_view(view, now),
        "jobs": jobs,
        "jobs_omitted": max(0, len(entries) - MAX_JOBS),
    }
    stats = getattr(agent.runtime, "stats", None)
    runtime = stats() if callable(stats) else {"kind": agent.config.runtime}
    running = runtime.get("running") if isinstance(runtime, dict) else None
    running_here: dict[str, int] | None = None
    if isinstance(running, dict):
        running_here = defaultdict(int)
        for slot in running:
            running_here[str(slot).rsplit("/", 1)[0]] += 1
        running_here = dict(running_here)
    state.update(
        agent={"name": agent.name, "api": agent.api_url, "runtime": runtime.get("kind", agent.config.runtime),
               "problem": agent.view.cluster_clock().get("problem")},
        now=time.time(),
        running_here=running_here,
        events=agent.events.recent()[-MAX_EVENTS:],
    )
    return state


def _versions_of(view: Any, detail: dict[str, Any]) -> dict[str, str]:
    """{container hash[:12]: version id} for the hashes the job's slots carry.
    The job's own hash is its current version; older ones are looked up in
    the job's history (parsed only while some slot runs another version)."""
    mine = detail.get("container_hash")
    out = {mine: str(detail.get("job_version") or "")} if mine else {}
    wanted = {s.get("container_hash") for s in detail.get("slots") or []} - {None, mine}
    if wanted:
        records = view.history(detail["name"])
        for entry in reversed(records):            # newest first: a hash written twice is its newest version
            spec = parse(entry)
            h = spec.container_hash()[:12] if spec is not None else None
            if h in wanted and h not in out:
                out[h] = version_id(entry, records)
    return out


# ---- rendering (pure) -------------------------------------------------------------------


def _e(value: Any) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def _problem(text: Any) -> str:
    """This agent's own problem (its clock is off), in the header."""
    return f" · {_pill(str(text), 'bad')}" if text else ""


def _pill(text: str, cls: str) -> str:
    return f'<span class="pill {cls}">{_e(text)}</span>'


def _ago(seconds: Any) -> str:
    if not isinstance(seconds, (int, float)):
        return "-"
    s = int(seconds)
    if s < 120:
        return f"{s}s"
    if s < 7200:
        return f"{s // 60}m"
    return f"{s // 3600}h"


def _cpu(millis: int) -> str:
    return f"{millis / 1000:g}"


def _mem(n: int) -> str:
    for unit, size in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= size:
            return f"{n / size:.1f} {unit}".replace(".0 ", " ")
    return f"{n} B"


def _bar(used: int, total: int, label: str) -> str:
    pct = 0.0 if total <= 0 else max(0.0, min(100.0, 100.0 * used / total))
    full = " full" if pct >= 90 else ""
    return (f'<div class="bar{full}" title="{_e(label)}"><span style="width:{pct:.1f}%"></span>'
            f'<i>{_e(label)} ({pct:.0f}%)</i></div>')


def _clock(t: Any) -> str:
    if not isinstance(t, (int, float)):
        return "-"
    return time.strftime("%H:%M:%S", time.gmtime(t))


def _table(head: list[str], rows: list[str], empty: str, num: tuple[int, ...] = ()) -> str:
    if not rows:
        return f'<p class="muted">{_e(empty)}</p>'
    ths = "".join(f'<th{" class=num" if i in num else ""}>{_e(h)}</th>' for i, h in enumerate(head))
    return f"<table><thead><tr>{ths}</tr></thead><tbody>{''.join(rows)}</tbody></table>"


def summary(state: dict[str, Any]) -> dict[str, int]:
    """The counts at the top of the page (also what tests check)."""
    members = state.get("members") or []
    jobs = [j for j in state.get("jobs") or [] if j.get("valid", True)]
    return {
        "members": len(members),
        "alive": sum(1 for m in members if m.get("status") == "alive"),
        "suspect": sum(1 for m in members if m.get("status") == "suspect"),
        "failed": sum(1 for m in members if m.get("status") in ("failed", "left")),
        "jobs": len(state.get("jobs") or []) + int(state.get("jobs_omitted") or 0),
        "desired": sum(int(j.get("replicas") or 0) for j in jobs),
        "placed": sum(int(j.get("placed") or 0) for j in jobs),
        "pending": sum(int(j.get("pending") or 0) for j in jobs),
    }


def _members(state: dict[str, Any]) -> str:
    rows = []
    for m in sorted(state.get("members") or [], key=lambda m: str(m.get("name"))):
        status = str(m.get("status", "unknown"))
        health = str(m.get("health", ""))
        host = str(m.get("addr", ""))
        addr = f"[{host}]:{m.get('port')}" if ":" in host else f"{host}:{m.get('port')}"
        rows.append(f'<tr data-member="{_e(m.get("name"))}" data-status="{_e(status)}">'
                    f'<td>{_e(m.get("name"))}</td><td><code>{_e(addr)}</code></td>'
                    f'<td>{_pill(status, _STATUS_CLASS.get(status, "off"))}</td>'
                    f'<td>{_pill(health, _HEALTH_CLASS.get(health, "off"))}</td>'
                    f'<td class="num">{_e(_ago(m.get("since_s")))}</td></tr>')
    return _table(["Name", "Address", "Status", "Health", "For"], rows, "no members known", (4,))


def _capacity(state: dict[str, Any]) -> str:
    rows = []
    for n in state.get("nodes") or []:
        name, status = n.get("name"), str(n.get("status", "unknown"))
        cap, alloc = n.get("capacity"), n.get("allocated")
        labels = ", ".join(f"{k}={v}" for k, v in sorted((n.get("labels") or {}).items()))
        flags = []
        if n.get("drained"):
            flags.append(_pill("drained", "warn"))
        if n.get("healthy") is False:
            flags.append(_pill("unhealthy: " + str(n.get("unhealthy_reason") or "?"), "bad"))
        if cap and alloc:
            cpu = _bar(alloc["cpu_millis"], cap["cpu_millis"],
                       f"{_cpu(alloc['cpu_millis'])} / {_cpu(cap['cpu_millis'])} cpu")
            mem = _bar(alloc["memory_bytes"], cap["memory_bytes"],
                       f"{_mem(alloc['memory_bytes'])} / {_mem(cap['memory_bytes'])}")
        else:
            cpu = mem = '<span class="muted">no status published</span>'
        pulls = "".join(f'<div class="reason" data-field="pull">{_e(p.get("text"))}</div>'
                        for p in n.get("pulls") or [] if isinstance(p, dict))
        rows.append(f'<tr data-node="{_e(name)}"><td>{_e(name)} '
                    f'{_pill(status, _STATUS_CLASS.get(status, "off"))} {" ".join(flags)}'
                    f'<div class="muted">{_e(labels)}</div>{pulls}</td><td>{cpu}</td><td>{mem}</td></tr>')
    return _table(["Node", "CPU allocated / capacity", "Memory allocated / capacity"], rows, "no nodes known")


def _jobs(state: dict[str, Any]) -> str:
    running = state.get("running_here")
    rows = []
    for j in state.get("jobs") or []:
        name = j.get("name")
        if not j.get("valid", True):
            rows.append(f'<tr data-job="{_e(name)}"><td>{_e(name)}</td>'
                        f'<td colspan="5" class="muted">spec unreadable on this agent</td></tr>')
            continue
        desired, placed = int(j.get("replicas") or 0), int(j.get("placed") or 0)
        pending = int(j.get("pending") or 0)
        state_pill = (_pill("placed", "ok") if placed == desired and pending == 0 else
                      _pill(f"{pending} pending", "warn" if placed else "bad"))
        reason = next((s.get("reason") for s in j.get("slots") or [] if s.get("state") == "pending"
                       and s.get("reason")), None) or next((p.get("text") for p in j.get("pulls") or []
                                                            if isinstance(p, dict)), None)
        here = "-" if running is None else str(running.get(name, 0))
        rollout = _rollout(j)
        kind = ' <span class="muted">global</span>' if j.get("mode") == "global" else ""   # one a node
        rows.append(f'<tr data-job="{_e(name)}"><td>{_e(name)}{kind}</td>'
                    f'<td><code>{_e(j.get("image"))}</code></td>'
                    f'<td data-field="version">{_e(_version_counts(j))}</td>'
                    f'<td class="num" data-field="placed">{placed}/{desired}</td>'
                    f'<td>{state_pill}{rollout}'
                    + (f'<div class="reason">{_e(reason)}</div>' if reason else "")
                    + f'</td><td class="num">{_e(here)}</td></tr>')
    omitted = int(state.get("jobs_omitted") or 0)
    more = f'<p class="muted">{omitted} more jobs not shown</p>' if omitted else ""
    return _table(["Job", "Image", "Version (replicas)", "Placed / desired", "State", "Running here"], rows,
                  "no jobs", (3, 5)) + more


def _version_label(j: dict[str, Any], h: Any) -> str:
    """v3 (a version id from the job's history), or the hash when it is not known here."""
    v = (j.get("version_of") or {}).get(h)
    return f"v{v}" if v else (f"#{str(h)[:8]}" if h else "?")


def _version_counts(j: dict[str, Any]) -> str:
    """The current version first, then how many placed replicas run each version."""
    current = j.get("container_hash")
    counts: dict[Any, int] = {}
    for s in j.get("slots") or []:
        if s.get("state") == "placed":
            counts[s.get("container_hash")] = counts.get(s.get("container_hash"), 0) + 1
    if not counts:
        return _version_label(j, current) if current else "-"
    order = sorted(counts, key=lambda h: (h != current, _version_label(j, h)))
    return ", ".join(f"{_version_label(j, h)} × {counts[h]}" for h in order)


def _rollout(j: dict[str, Any]) -> str:
    """A rollout in progress: a pill with new / healthy / all, and why it stopped or waits."""
    r = j.get("rollout")
    if not isinstance(r, dict):
        return ""
    states = [str(x) for x in r.get("slots") or []]
    new = sum(1 for x in states if x in ("new-healthy", "new-pending"))
    healthy = sum(1 for x in states if x == "new-healthy")
    to = _version_label(j, str(r.get("target") or "")[:12])
    text = f"rolling out {to}: {new}/{len(states)} new, {healthy} healthy"
    if r.get("failed"):
        return f' <span data-field="rollout">{_pill(f"rollout to {to} failed", "bad")}' \
               f'<div class="reason">{_e(r["failed"])}</div></span>'
    if r.get("waiting_promotion"):
        return f' <span data-field="rollout">{_pill(text, "warn")}' \
               f'<div class="reason">canaries healthy: waiting for shoal job promote {_e(j.get("name"))}</div></span>'
    return f' <span data-field="rollout">{_pill(text, "warn")}</span>'


def placements(state: dict[str, Any]) -> tuple[dict[str, list[str]], dict[str, dict[str, int]]]:
    """Placed slots by node ({node: ["job/index", ...]}) and replica counts by
    rack ({rack: {job: n}}); nodes without a rack label count under "-"."""
    racks_of = {n.get("name"): (n.get("labels") or {}).get("rack", "-") for n in state.get("nodes") or []}
    by_node: dict[str, list[str]] = {n.get("name"): [] for n in state.get("nodes") or []
                                     if n.get("status_known")}
    by_rack: dict[str, dict[str, int]] = {}
    for j in state.get("jobs") or []:
        for s in j.get("slots") or []:
            if s.get("state") != "placed" or not s.get("node"):
                continue
            label = f"{j.get('name')}/{s.get('index')}"
            if s.get("container_hash"):
                label += f" {_version_label(j, s['container_hash'])}"
            by_node.setdefault(s["node"], []).append(label)
            rack = by_rack.setdefault(racks_of.get(s["node"], "-"), {})
            rack[j.get("name")] = rack.get(j.get("name"), 0) + 1
    return by_node, by_rack


def _placements(state: dict[str, Any]) -> str:
    by_node, by_rack = placements(state)
    rows = []
    for node, slots in sorted(by_node.items()):
        shown = ", ".join(slots[:MAX_SLOTS_PER_CELL]) + (f" and {len(slots) - MAX_SLOTS_PER_CELL} more"
                                                         if len(slots) > MAX_SLOTS_PER_CELL else "")
        rows.append(f'<tr data-node="{_e(node)}"><td>{_e(node)}</td><td class="num">{len(slots)}</td>'
                    f'<td class="slots">{_e(shown) or "<span class=muted>none</span>"}</td></tr>')
    nodes = _table(["Node", "Replicas", "Slots"], rows, "no nodes", (1,))
    rows = []
    for rack, jobs in sorted(by_rack.items()):
        per_job = ", ".join(f"{job} × {n}" for job, n in sorted(jobs.items()))
        rows.append(f'<tr data-rack="{_e(rack)}"><td>{_e(rack)}</td>'
                    f'<td class="num" id="rack:{_e(rack)}">{sum(jobs.values())}</td>'
                    f'<td>{_e(per_job)}</td></tr>')
    racks = _table(["Rack", "Replicas", "Jobs"], rows, "nothing placed")
    return f"<h2>Placements by node</h2>{nodes}<h2 style=\"margin-top:12px\">By rack label</h2>{racks}"


def _event_text(ev: dict[str, Any]) -> str:
    fields = {k: v for k, v in ev.items() if k not in ("seq", "time", "event")}
    if ev.get("event", "").startswith("member_") and isinstance(fields.get("member"), dict):
        m = fields["member"]
        return f"{m.get('name')} ({m.get('addr')}:{m.get('port')}) is {m.get('status')}"
    text = " ".join(f"{k}={json.dumps(v, separators=(',', ':'), default=str)}" for k, v in fields.items())
    return text if len(text) <= 200 else text[:200] + "…"


def _events(state: dict[str, Any]) -> str:
    rows = []
    for ev in reversed((state.get("events") or [])[-MAX_EVENTS:]):
        rows.append(f'<tr><td class="num">{_e(_clock(ev.get("time")))}</td><td><code>{_e(ev.get("event"))}'
                    f'</code></td><td>{_e(_event_text(ev))}</td></tr>')
    return _table(["Time (UTC)", "Event", "Details"], rows, "no events yet")


def render(state: dict[str, Any]) -> str:
    """The whole page for `state` (see the module docstring)."""
    agent = state.get("agent") or {}
    c = summary(state)
    cards = (
        f'<div class="card">Members alive<b><span id="members-alive">{c["alive"]}</span> / '
        f'<span id="members-total">{c["members"]}</span></b></div>'
        f'<div class="card">Suspect / failed<b>{c["suspect"]} / {c["failed"]}</b></div>'
        f'<div class="card">Jobs<b id="jobs-total">{c["jobs"]}</b></div>'
        f'<div class="card">Replicas placed<b><span id="replicas-placed">{c["placed"]}</span> / '
        f'<span id="replicas-desired">{c["desired"]}</span></b></div>'
    )
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="refresh" content="{REFRESH_S}">
<meta http-equiv="Content-Security-Policy" content="{_e(CSP)}">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>shoal · {_e(agent.get("name"))}</title>
<style>{_CSS}</style></head>
<body>
<header><h1>shoal</h1><span class="sub">as seen by agent <b>{_e(agent.get("name"))}</b>
· runtime {_e(agent.get("runtime"))} · {_e(_clock(state.get("now")))} UTC
· refreshes every {REFRESH_S} s{_problem(agent.get("problem"))}</span></header>
<main>
<section class="wide"><div class="cards">{cards}</div></section>
<section id="members"><h2>Members</h2>{_members(state)}</section>
<section id="capacity"><h2>Capacity</h2>{_capacity(state)}</section>
<section id="jobs" class="wide"><h2>Jobs</h2>{_jobs(state)}</section>
<section id="placements">{_placements(state)}</section>
<section id="events"><h2>Recent events</h2>{_events(state)}</section>
</main>
</body></html>
"""
