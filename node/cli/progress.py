"""Live progress of jobs until every replica runs (`shoal job run`, `shoal stack deploy`).

How this works: `follow_progress(client, job_names, timeout_s)` reads each
job's `GET /v1/jobs/NAME` (every slot: pending with a reason, or placed on a
node, with what that node's runtime says of it: starting, running, failed,
exited, and the container hash of its claim; node/api/views.py), prints one
line per slot whenever its state changes and one summary line per job
whenever its counts change (during a rollout: slots on the new version,
healthy, failed, out of all; node.cli.rollout_progress) and one line per
image pull or peer fetch a node does for a starting slot whenever its
progress moves ("pulling busybox:2 on node-3: 3/5 layers, 12.1/48.0 MiB":
the job's `pulls`, at most one change a second per node), then waits for the
next change with a blocking query on the jobs index (`GET
/v1/jobs?index=N&wait=2s`: placements, claims, node statuses -- which carry
the runtime summaries -- and this agent's own container states all bump it;
the 2 s cap keeps the elapsed time honest).  It returns

    0  every replica of every job runs the version first seen after the
       submission (a rollout has ended: every slot healthy on it), or its
       canaries do and the rest wait for `shoal job promote`;
    2  the timeout passed with some replica not running: each one is
       printed with why (the pending reason the agents give, or the
       runtime's failure).  During a rollout the timeout counts from the
       last slot that turned healthy on the new version (a rollout of many
       replicas takes longer than one wait);
    1  an error: the agent cannot be reached, or a job disappeared; or a
       rollout failed (and, with auto_revert, was reverted: the revert is
       awaited and named), or another write replaced the version watched.

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

from node.cli import rollout_progress as rollouts

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
    note: str = ""            # what a rollout adds: old version, new version (not yet) healthy
    current: bool = True      # its claim is for the version being watched

    @property
    def running(self) -> bool:
        return self.state == "running"

    @property
    def done(self) -> bool:
        return self.running and self.current


def slot_views(detail: dict[str, Any], target: str | None = None) -> list[SlotView]:
    """The job's slots; with `target` (the container hash being watched),
    each also says whether it runs that version (node.cli.rollout_progress)."""
    out = []
    for i, s in enumerate(detail.get("slots") or []):
        note = rollouts.slot_note(detail, i, target) if target else ""
        current = rollouts.on_target(s, target) if target else True
        if s.get("state") != "placed":
            out.append(SlotView(s["slot"], "pending", s.get("node"), s.get("reason") or "", s.get("coordinator")))
        else:
            out.append(SlotView(s["slot"], s.get("runtime") or "placed", s.get("node"),
                                s.get("runtime_reason") or "", note=note, current=current))
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
        return f"placed{where} (its runtime does not say whether it runs){v.note}"
    if v.state == "starting":      # its reason (a pull's progress) has lines of its own while live
        return f"placed{where}, starting" + (f" ({v.reason})" if full and v.reason else "") + v.note
    return f"{v.state}{where}" + (f": {v.reason}" if v.reason else "") + v.note


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
                    out: Callable[[str], None] | None = None, clock: Callable[[], float] = time.monotonic,
                    transport: httpx.BaseTransport | None = None) -> int:
    """Show the jobs' progress until all their replicas run the submitted
    version (a rollout included) or timeout_s passes (see module doc)."""
    names = list(dict.fromkeys(job_names))
    say = out or (lambda line: print(line, file=sys.stderr, flush=True))
    start = clock()
    deadline = start + timeout_s
    shown: dict[str, str] = {}        # slot -> last line shown
    totals: dict[str, str] = {}       # job -> last summary shown
    targets: dict[str, str] = {}      # job -> the container hash we watch it reach
    best: dict[str, int] = {}         # job -> most slots seen healthy on the target (progress)
    ended: dict[str, str] = {}        # job -> its final phase (node.cli.rollout_progress)
    failing: set[str] = set()         # jobs whose rollout failed, waiting for their revert
    sizes: dict[str, int] = {}        # job -> replicas
    rolled: set[str] = set()          # jobs with a slot seen on an older version
    rollout_shown: dict[str, str] = {}  # job -> the last rollout line printed
    index = 0
    errors = 0
    say(f"waiting up to {timeout_s:g} s for {', '.join(names)} to run (Ctrl-C stops watching, "
        "not the job; --detach skips this)")
    with httpx.Client(base_url=client.address, headers=dict(client.headers), timeout=REQUEST_TIMEOUT_S,
                      verify=getattr(client, "verify", True), transport=transport) as http:
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
                    if name in ended:
                        continue
                    r = get(f"/v1/jobs/{quote(name, safe='')}")
                    if r.status_code == 404:
                        raise _Error(f"job {name} no longer exists (stopped meanwhile?)")
                    if r.status_code != 200:
                        raise _Error(f"reading job {name}: {_error_text(r)}")
                    detail = r.json()
                    target = targets.setdefault(name, detail.get("container_hash") or "")
                    details[name] = views = slot_views(detail, target)
                    sizes[name] = len(views)
                    t = clock() - start
                    for v in views:
                        line = describe(v)
                        if shown.get(v.slot) != line:
                            shown[v.slot] = line
                            say(f"{t:6.1f}s  {v.slot}  {line}")
                    for pull in detail.get("pulls") or []:
                        line, key = str(pull.get("text") or ""), f"pull {pull.get('node')} {pull.get('image')}"
                        if line and shown.get(key) != line:
                            shown[key] = line
                            say(f"{t:6.1f}s  {name}  {line}")
                    if any(not v.current for v in views):
                        rolled.add(name)
                    line = rollouts.rollout_line(name, detail)
                    if line is not None:
                        rollout_shown[name] = line
                    line = line or summary(name, views)
                    if totals.get(name) != line:
                        totals[name] = line
                        say(f"{t:6.1f}s  {line}")
                    healthy = rollouts.healthy_count(detail, target)
                    if healthy > best.get(name, 0):
                        # A rollout may take longer than --timeout as a whole:
                        # the wait counts from the last slot that got there.
                        best[name] = healthy
                        deadline = max(deadline, clock() + timeout_s)
                    p = rollouts.phase(detail, target)
                    if p == rollouts.FAILING and name not in failing:
                        failing.add(name)
                        say(f"{t:6.1f}s  {name}: the rollout failed; waiting for its automatic revert")
                    if p in rollouts.FINAL:
                        ended[name] = p
                        n = len(views)
                        done = (f"{name}: rollout to {rollouts.short(target)}: {n}/{n} on the new version, "
                                f"{n}/{n} healthy")
                        if p == rollouts.DONE and name in rolled and not rollout_shown.get(name, "").startswith(done):
                            # The rollout, or its last steps, went by between two reads (a
                            # fast one on a quiet cluster): still say how it ended, as a
                            # watched one would.
                            say(f"{t:6.1f}s  {done}, 0 failed")
                        _say_end(say, t, name, p, len(views), detail, target, get)
                t = clock() - start
                if len(ended) == len(names):
                    if any(p in (rollouts.FAILED, rollouts.CHANGED) for p in ended.values()):
                        return EXIT_ERROR
                    if all(p == rollouts.DONE for p in ended.values()):
                        n = sum(sizes.values())
                        say(f"all {n} replica{'s' if n != 1 else ''} of {', '.join(names)} running after {t:.1f} s")
                    return EXIT_OK
                if clock() >= deadline:
                    stuck = [n for n in names if n in failing and n not in ended]
                    if stuck or any(p in (rollouts.FAILED, rollouts.CHANGED) for p in ended.values()):
                        if stuck:
                            say(f"{', '.join(stuck)}: the rollout failed and no revert came within {timeout_s:g} s "
                                "(see `shoal job history`, `shoal job rollback`)")
                        return EXIT_ERROR
                    say(f"not all replicas run after {timeout_s:g} s:")
                    better = _coordinators_reasons(http, client, details)
                    for views in details.values():
                        for v in views:
                            if not v.done:
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


def _say_end(say: Callable[[str], None], t: float, name: str, p: str, n: int, detail: dict[str, Any],
             target: str, get: Callable[[str], httpx.Response]) -> None:
    if p == rollouts.DONE:
        pass  # the closing line says it
    elif p == rollouts.WAITING:
        say(f"{t:6.1f}s  {name}: the canaries run the new version; the rest wait for `shoal job promote {name}` "
            "(or `shoal job rollback`)")
    elif p == rollouts.FAILED:
        reason = (detail.get("rollout") or {}).get("failed") or "?"
        say(f"{t:6.1f}s  {name}: the rollout to {rollouts.short(target)} failed ({reason}) and stopped; "
            f"the job has no auto_revert: `shoal job rollback {name}` goes back")
    elif p == rollouts.CHANGED:
        r = get(f"/v1/jobs/{quote(name, safe='')}/history")
        say(f"{t:6.1f}s  " + rollouts.changed_line(name, r.json() if r.status_code == 200 else None, target))


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
