"""Live progress of jobs until every replica runs (`shoal job run`, `shoal stack deploy`).

How this works: `follow_progress(client, job_names, timeout_s)` reads each
job's `GET /v1/jobs/NAME` (every slot: pending with a reason, or placed on a
node, with what that node's runtime says of it: starting, running, failed,
exited; node/api/views.py), prints one line per slot whenever its state changes
and one summary line per job whenever its counts change, then waits for the
next change with a blocking query on the jobs index (`GET
/v1/jobs?index=N&wait=2s`: placements, claims, node statuses -- which carry
the runtime summaries -- and this agent's own container states all bump it;
the 2 s cap keeps the elapsed time honest).  It returns

    0  every replica of every job runs;
    2  the timeout passed with some replica not running: each one is
       printed with why (the pending reason the agents give, or the
       runtime's failure);
    1  an error: the agent cannot be reached, or a job disappeared.

Everything goes to `out` (default: stderr), so a command's stdout keeps
only its result (`shoal job run` prints the job name there).  `client` is
anything with `.address` (the agent's URL) and `.headers` (auth), such as
node.cli.client.Client.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from typing import Any, Callable, Iterable
from urllib.parse import quote

import httpx

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_NOT_RUNNING = 2
DEFAULT_TIMEOUT_S = 60.0
WAIT_S = 2.0
REQUEST_TIMEOUT_S = 10.0
MAX_CONSECUTIVE_ERRORS = 3
# Parts of a pending reason that change every auction round without saying
# anything new (node/api/views.py): left out of the live lines, kept at the end.
_CHURN = ("auction in progress", "waiting for its coordinator's next placement round")


@dataclass(frozen=True)
class SlotView:
    slot: str
    state: str            # pending | starting | running | failed | exited | placed (runtime unknown)
    node: str | None
    reason: str
    coordinator: str | None = None

    @property
    def running(self) -> bool:
        return self.state == "running"


def slot_views(detail: dict[str, Any]) -> list[SlotView]:
    out = []
    for s in detail.get("slots") or []:
        if s.get("state") != "placed":
            out.append(SlotView(s["slot"], "pending", s.get("node"), s.get("reason") or "", s.get("coordinator")))
        else:
            out.append(SlotView(s["slot"], s.get("runtime") or "placed", s.get("node"),
                                s.get("runtime_reason") or ""))
    return out


def quiet_reason(reason: str) -> str:
    """A pending reason without the parts that churn every round."""
    parts = [p for p in reason.split("; ") if p and p not in _CHURN]
    return "; ".join(parts) or "auction in progress"


def describe(v: SlotView, *, full: bool = False) -> str:
    where = f" on {v.node}" if v.node else ""
    if v.state == "pending":
        return f"pending: {v.reason if full else quiet_reason(v.reason)}"
    if v.state == "placed":
        return f"placed{where} (its runtime does not say whether it runs)"
    if v.state == "starting":
        return f"placed{where}, starting"
    return f"{v.state}{where}" + (f": {v.reason}" if v.reason else "")


def counts(views: list[SlotView]) -> dict[str, int]:
    c = {"running": 0, "placed": 0, "pending": 0, "failed": 0}
    for v in views:
        if v.state == "pending":
            c["pending"] += 1
        else:
            c["placed"] += 1
            if v.running:
                c["running"] += 1
            elif v.state in ("failed", "exited"):
                c["failed"] += 1
    return c


def summary(job: str, views: list[SlotView]) -> str:
    c = counts(views)
    return (f"{job}: {c['running']}/{len(views)} running ({c['placed']} placed, {c['pending']} pending, "
            f"{c['failed']} failed)")


class _Error(Exception):
    pass


def follow_progress(client: Any, job_names: Iterable[str], timeout_s: float = DEFAULT_TIMEOUT_S, *,
                    out: Callable[[str], None] | None = None, clock: Callable[[], float] = time.monotonic) -> int:
    """Show the jobs' progress until all their replicas run or timeout_s passes (see module doc)."""
    names = list(dict.fromkeys(job_names))
    say = out or (lambda line: print(line, file=sys.stderr, flush=True))
    start = clock()
    deadline = start + timeout_s
    shown: dict[str, str] = {}        # slot -> last line shown
    totals: dict[str, str] = {}       # job -> last summary shown
    index = 0
    errors = 0
    say(f"waiting up to {timeout_s:g} s for {', '.join(names)} to run (Ctrl-C stops watching, "
        "not the job; --detach skips this)")
    with httpx.Client(base_url=client.address, headers=dict(client.headers), timeout=REQUEST_TIMEOUT_S,
                      verify=getattr(client, "verify", True)) as http:
        def get(path: str, params: dict[str, str] | None = None) -> httpx.Response:
            nonlocal errors
            try:
                r = http.get(path, params=params)
            except httpx.HTTPError as e:
                errors += 1
                if errors >= MAX_CONSECUTIVE_ERRORS:
                    raise _Error(f"cannot reach shoal agent at {client.address}: {e or type(e).__name__}") from None
                time.sleep(0.5)
                return get(path, params)
            errors = 0
            return r

        try:
            while True:
                details: dict[str, list[SlotView]] = {}
                for name in names:
                    r = get(f"/v1/jobs/{quote(name, safe='')}")
                    if r.status_code == 404:
                        raise _Error(f"job {name} no longer exists (stopped meanwhile?)")
                    if r.status_code != 200:
                        raise _Error(f"reading job {name}: {_error_text(r)}")
                    details[name] = slot_views(r.json())
                t = clock() - start
                for name, views in details.items():
                    for v in views:
                        line = describe(v)
                        if shown.get(v.slot) != line:
                            shown[v.slot] = line
                            say(f"{t:6.1f}s  {v.slot}  {line}")
                    line = summary(name, views)
                    if totals.get(name) != line:
                        totals[name] = line
                        say(f"{t:6.1f}s  {line}")
                if all(v.running for views in details.values() for v in views):
                    n = sum(len(v) for v in details.values())
                    say(f"all {n} replica{'s' if n != 1 else ''} of {', '.join(names)} running after {t:.1f} s")
                    return EXIT_OK
                if clock() >= deadline:
                    say(f"not all replicas run after {timeout_s:g} s:")
                    better = _coordinators_reasons(http, client, details)
                    for views in details.values():
                        for v in views:
                            if not v.running:
                                say(f"  {v.slot}  {describe(better.get(v.slot, v), full=True)}")
                    say("(they may still start: see `shoal job status NAME`, `shoal ps`, `shoal logs NAME SLOT`)")
                    return EXIT_NOT_RUNNING
                wait = max(0.05, min(WAIT_S, deadline - clock()))
                r = get("/v1/jobs", {"index": str(index), "wait": f"{int(wait * 1000)}ms"})
                if r.status_code != 200:
                    raise _Error(f"reading jobs: {_error_text(r)}")
                try:
                    index = int(r.headers.get("X-Shoal-Index", index))
                except ValueError:
                    pass
        except _Error as e:
            say(f"error: {e}")
            return EXIT_ERROR


def _coordinators_reasons(http: httpx.Client, client: Any,
                          details: dict[str, list[SlotView]]) -> dict[str, SlotView]:
    """Pending slots as their coordinators see them.  Only a slot's
    coordinator knows how its last auction went (who declined, and why: "image
    X is not on n2"); the agent we ask says only what the gossiped statuses
    show.  Best effort: ask each coordinator's agent (its `api` tag, only at
    the address it gossips from, and without our token: a member must not
    collect it), and keep the answer when it says more."""
    wanted = {v.coordinator for views in details.values() for v in views
              if v.state == "pending" and v.coordinator}
    if not wanted:
        return {}
    try:
        me = http.get("/v1/agent/self").json().get("name")
        members = http.get("/v1/members").json()
    except (httpx.HTTPError, ValueError, AttributeError):
        return {}
    apis = {m.get("name"): (m.get("addr"), (m.get("tags") or {}).get("api")) for m in members
            if isinstance(m, dict) and m.get("status") == "alive"}
    out: dict[str, SlotView] = {}
    scheme, verify = client.address.partition("://")[0], getattr(client, "verify", True)
    for coordinator in sorted(wanted - {me}):
        addr, api = apis.get(coordinator, (None, None))
        if not api:
            continue
        host, _, port = api.rpartition(":")
        if host in ("0.0.0.0", "[::]", "::"):
            host = addr
        elif host.strip("[]") != addr:
            continue  # its API is on its own loopback, or it names another host
        for job, views in details.items():
            if not any(v.coordinator == coordinator and v.state == "pending" for v in views):
                continue
            try:
                r = httpx.get(f"{scheme}://{host}:{port}/v1/jobs/{quote(job, safe='')}", timeout=3.0,
                              verify=verify)
                theirs = {v.slot: v for v in slot_views(r.json())} if r.status_code == 200 else {}
            except (httpx.HTTPError, ValueError):
                continue
            for v in views:
                t = theirs.get(v.slot)
                if (v.coordinator == coordinator and v.state == "pending" and t is not None
                        and t.state == "pending" and len(quiet_reason(t.reason)) > len(quiet_reason(v.reason))):
                    out[v.slot] = t
    return out


def _error_text(r: httpx.Response) -> str:
    try:
        body = r.json()
    except ValueError:
        body = None
    msg = body.get("error") if isinstance(body, dict) else None
    return f"{msg or r.reason_phrase} (HTTP {r.status_code})"
