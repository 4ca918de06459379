"""`shoal monitor`: an agent's event stream (`GET /v1/events`, NDJSON) as readable lines.

How this works: `format_event(record, here)` turns one event record (see
node/api/server.py for the kinds; node/agent/agent.py publishes them) into one line:
time, a short category, and what happened in words.  `here` is the name of
the agent streaming, since events such as replica_start happen on it.
Unknown kinds are printed as their JSON, so nothing is hidden.  `monitor()`
streams until the agent closes the stream or the user presses Ctrl-C.
"""

from __future__ import annotations

import json
import time
from typing import Any, Callable

from node.core.image_progress import ImageProgress


def _ballot(b: Any) -> str:
    return f"{b[0]}@{b[1]}" if isinstance(b, list) and len(b) == 2 else "?"


def _clock(t: Any) -> str:
    try:
        return time.strftime("%H:%M:%S", time.localtime(float(t)))
    except (TypeError, ValueError):
        return "--:--:--"


def _member(ev: dict[str, Any], what: str) -> tuple[str, str]:
    m = ev.get("member") or {}
    return "member", f"{m.get('name', '?')} {what} ({m.get('addr', '?')}:{m.get('port', '?')})"


def describe(ev: dict[str, Any], here: str) -> tuple[str, str]:
    """(category, text) for one event record."""
    kind = ev.get("event", "?")
    if kind.startswith("member_"):
        return _member(ev, kind.removeprefix("member_"))
    if kind == "node_status":
        state = "drained" if ev.get("drained") else "eligible" if ev.get("eligible") else "not eligible"
        health = "healthy" if ev.get("healthy") else "UNHEALTHY"
        labels = ",".join(f"{k}={v}" for k, v in sorted((ev.get("labels") or {}).items()))
        return "node", f"{ev.get('node')}: {health}, {state}, capacity {ev.get('capacity')}, labels {labels or '-'}"
    if kind in ("job_updated", "job_deleted"):
        version = ev.get("version") or [None, None, "?"]
        verb = "stopped" if kind == "job_deleted" else "submitted/updated"
        text = f"{ev.get('name')} {verb} (by {version[-1]})"
        if ev.get("job_version") is not None:  # node.core.history: number, why, by whom
            why = ev.get("why") or "submit"
            ref = f" {'to' if why == 'rollback' else 'from'} {ev['ref']}" if ev.get("ref") else ""
            who = f", {ev['by']}" if ev.get("by") else ""
            text += f": version {ev['job_version']}, {why}{ref}{who}"
        return "job", text
    if kind == "claim":
        if ev.get("released"):
            return "claim", f"{ev.get('slot')} released by {ev.get('node')} (ballot {_ballot(ev.get('ballot'))})"
        return "claim", f"{ev.get('slot')} -> {ev.get('node')} (ballot {_ballot(ev.get('ballot'))})"
    if kind == "auction_closed":
        job = ev.get("job")
        awarded = ev.get("awarded") or {}
        parts = []
        if awarded:
            parts.append("placed " + ", ".join(f"{job}/{i}->{n}" for i, n in sorted(awarded.items(),
                                                                                   key=lambda x: int(x[0]))))
        if ev.get("unplaced"):
            parts.append("unplaced " + ", ".join(f"{job}/{i}" for i in ev["unplaced"]))
        for node, reason in sorted((ev.get("declines") or {}).items()):
            parts.append(f"{node} declined: {reason}")
        if ev.get("silent"):
            parts.append("no answer from " + ", ".join(ev["silent"]))
        return "auction", f"{job} round {ev.get('auction')} closed: " + ("; ".join(parts) or "nothing to place")
    if kind == "award_accepted":
        return "award", f"{ev.get('slot')} accepted by {here} (ballot {_ballot(ev.get('ballot'))})"
    if kind == "replica_start":
        return "replica", f"start {ev.get('slot')} on {here} ({ev.get('image')}, ballot {_ballot(ev.get('ballot'))})"
    if kind == "replica_stop":
        return "replica", f"stop {ev.get('slot')} on {here}: {ev.get('reason')}"
    if kind == "container_state":
        reason = f": {ev['reason']}" if ev.get("reason") else ""
        return "container", f"{ev.get('slot')} on {ev.get('node', here)}: {ev.get('state')}{reason}"
    if kind in ("image_pull", "image_fetch") and ev.get("state") == "progress":
        p = ImageProgress(str(ev.get("image")), str(ev.get("peer") or "") if kind == "image_fetch" else "",
                          *(_count(ev.get(k)) for k in ("layers_done", "layers", "bytes", "bytes_total")))
        return "image", p.text(str(ev.get("node") or here))
    if kind.startswith(("rollout_", "rebalance_")):
        # node.agent.dispatch: RolloutEvent / RebalanceEvent, as the agent's log has them.
        category, _, what = kind.partition("_")
        to = f" (to {ev['target']})" if ev.get("target") else ""
        words = " ".join(str(w) for w in (what.replace("_", " "), ev.get("slot"), ev.get("detail")) if w)
        return category, f"{ev.get('job')}: {words}{to}"
    if kind == "preempted":
        victims = ", ".join(str(v) for v in ev.get("victims") or ())
        return "preempt", f"{victims} released on {here} for {ev.get('slot')}: {ev.get('detail')}"
    if kind == "slot_pending":
        return "pending", f"{ev.get('slot')}: {ev.get('reason')}"
    if kind == "join":
        return "join", f"via {ev.get('seed')}: " + ("ok" if ev.get("ok") else f"failed: {ev.get('error')}")
    if kind == "key":
        return "key", f"{ev.get('action')} from {ev.get('origin')} ({'changed' if ev.get('changed') else 'no change'})"
    rest = {k: v for k, v in ev.items() if k not in ("seq", "time", "event")}
    return kind, json.dumps(rest, separators=(",", ":"), sort_keys=True)


def format_event(ev: dict[str, Any], here: str) -> str:
    category, text = describe(ev, here)
    return f"{_clock(ev.get('time'))}  {category:<9}  {text}"


def monitor(lines, here: str, echo: Callable[[str], None], as_json: bool = False) -> None:
    """Print each NDJSON line of `lines` (an iterator of str) as it comes."""
    for line in lines:
        if not line.strip():
            continue
        if as_json:
            echo(line)
            continue
        try:
            ev = json.loads(line)
        except ValueError:
            echo(line)
            continue
        echo(format_event(ev, here) if isinstance(ev, dict) else line)


def _count(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0
