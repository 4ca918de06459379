"""`shoal chaos run`: a seeded fault campaign on the namespace testbed, judged
from every node's dockerd.

How this works: `run_campaign(options, out_dir)` brings up a testbed of its
own (node.chaos.testbed), deploys the job mix (`default_jobs`, or --jobs)
(a global job among them, judged per node: one copy on each) and waits
until it runs, then plays a fault plan drawn from the seed
(node.chaos.faultplan; testbed node i+1 is the plan's node i) together with
job writes (scale down and back, an env update, stop and resubmit), each
through a random agent, for `duration_s` wall seconds.  Every `sample_s`
it samples the ground truth: the running containers of ours on each node's
dockerd (a killed node runs none), the desired replicas as an unfaulted
agent states them, and that agent's member list.  At the end it heals
everything (partition healed, loss and delay removed, paused agents
resumed, killed nodes started) and waits up to `converge_timeout_s` for the
containers to match the jobs exactly and still match `stable_s` later (a
change in between, such as a rebalancing move that starts once its settle
delay after the heal ends, restarts the wait).

Verdicts (node.chaos.invariants): no node's running containers reserve more
than its capacity at any sample; after convergence every desired slot runs
exactly once and nothing else of ours runs; every acknowledged write is on
every agent (its version or a newer one; a job absent only after an
acknowledged stop); no agent exited or logged a traceback.  Doubled copies
are timed from the samples, with the faults in force when each began and
how long after the heal the last went away.  Per fault: time to detect (an
agent outside the victims sees one suspect or failed), to re-place, to
converge after it ends.

Two kinds are played differently from the simulator.  `engine-stall` is
`scripts/testbed stall` / `unstall` (SIGSTOP / SIGCONT to the node's dockerd
and containerd); while it lasts that node's ground truth is not sampled (its
engine does not answer; a sample shows it as None).  `clock-skew` restarts
the victim's agent with its clock `offset_s` ahead and running at the plan's
rate (`scripts/testbed restart-agent NODE --clock-offset S --clock-rate R`,
an agent fault hook for chaos testing only, node.agent.fault_clock): its
timers and its wall clock drift 1-5 % fast or slow from then on, as in the
simulator, and a later restart of that agent keeps the same clock.  At the
heal the drift stops (`--clock-rate 1`, the agent restarted once more) and
the offset it reached stays, as the simulator's does.  A victim whose agent
or engine is down or frozen at that moment is skipped (said in the actions).
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from auction.resources import Resources, parse_memory
from node.chaos import invariants as inv
from node.chaos.faultplan import NODE_KINDS, Fault, draw_plan
from node.chaos.testbed import DEFAULT_PREFIX, DEFAULT_SUBNET, Testbed

LIVE_KINDS = ("kill", "restart", "partition", "loss", "delay", "pause", "engine-stall", "clock-skew")
# How the testbed plays a kind differently from the simulator (said in the report).
LIVE_NOTES = {
    "clock-skew": "clock-skew on the testbed: the victim's agent is restarted with its clock 0-2 s ahead and "
                  "running 1-5 % fast or slow (timers and wall clock) until the heal, where it is restarted "
                  "once more at the normal rate keeping the offset reached; a victim down or frozen at that "
                  "moment is skipped",
    "engine-stall": "engine-stall on the testbed: SIGSTOP to the node's dockerd and containerd, SIGCONT at its end; "
                    "the node's containers are not sampled meanwhile",
}
# Kinds during which a victim's agent or engine does not answer.
DOWN_KINDS = ("kill", "restart", "pause", "engine-stall")
DEPLOY_TIMEOUT_S = 180.0


@dataclass(frozen=True)
class RunOptions:
    nodes: int = 5
    duration_s: float = 600.0
    seed: int = 0
    faults: tuple[str, ...] = LIVE_KINDS
    job_dicts: tuple[dict[str, Any], ...] = ()
    mean_gap_s: float = 20.0
    sample_s: float = 2.0
    converge_timeout_s: float = 180.0
    stable_s: float = 10.0
    profile: str = "lan"
    prefix: str = DEFAULT_PREFIX
    subnet: str = DEFAULT_SUBNET
    keep: bool = False


def default_jobs(n: int) -> list[dict[str, Any]]:
    base = {"image": "shoal-demo:latest", "command": ["sleep", "3600"], "cpu": 0.05, "memory": "32MiB"}
    # The testbed gives every node the same labels, so the constrained job
    # asks for what every node has (the agent's arch label): it exercises the
    # constraint path, not a narrower placement.
    return [{**base, "name": "web", "replicas": 2 * n, "strategy": "spread"},
            {**base, "name": "batch", "replicas": n, "strategy": "binpack"},
            {**base, "name": "solo", "replicas": max(1, n - 1), "max_per_node": 1},
            {**base, "name": "pinned", "replicas": 2, "constraints": ["arch != none"]},
            # One on every node (auction.global_jobs): judged per node, never re-placed.
            {**base, "name": "agent", "mode": "global"}]


class Campaign:
    def __init__(self, opts: RunOptions, say: Callable[[str], None]) -> None:
        self.opts = opts
        self.say = say
        self.tb = Testbed(opts.prefix, opts.subnet)
        self.n = opts.nodes
        self.rng = random.Random(opts.seed)
        self.t0 = time.monotonic()
        self.samples: list[dict[str, Any]] = []
        self.actions: list[dict[str, Any]] = []  # what was done, when, and how it went
        # award-safety needs the agents' award decisions, which only the simulator sees.
        self.violations: dict[str, list[str]] = {name: [] for name in inv.INVARIANTS if name != inv.AWARD_SAFETY}
        self.acked: list[dict[str, Any]] = []  # {"job", "op", "version", "t"}
        self.capacity: dict[int, Resources] = {}
        self.demand: dict[str, Resources] = {}  # job -> per replica
        self.plan: list[Fault] = []
        self.drifting: set[int] = set()  # nodes (1-based) whose clock-skew runs until the heal
        self.figures: list[dict[str, Any]] = []
        self.heal_t: float | None = None
        self.audit: dict[str, Any] | None = None

    def now(self) -> float:
        return time.monotonic() - self.t0

    def violate(self, name: str, msg: str) -> None:
        if len(self.violations[name]) < 50:
            self.violations[name].append(msg)

    # ---- actions
    def act(self, what: str, *args: str) -> None:
        out = self.tb.run(*args, check=False, timeout=120)
        ok = out.returncode == 0
        self.actions.append({"t": round(self.now(), 2), "what": what, "ok": ok,
                             "detail": "" if ok else out.stderr.strip()[-200:]})

    def write(self, node: int, job: str, spec: dict[str, Any] | None, what: str) -> None:
        """Send one job write through node's agent, or, if it does not answer (killed,
        paused), through the next one that does."""
        t = self.now()
        for k in range(self.n):
            i = (node + k) % self.n + 1
            if spec is None:
                code, body = self.tb.api(i, "DELETE", f"/v1/jobs/{job}", timeout=3.0)
            else:
                code, body = self.tb.api(i, "POST", "/v1/jobs", spec, timeout=3.0)
            if code != 0:
                break
        ok = code in (200, 201)
        if ok:
            self.acked.append({"job": job, "op": "stop" if spec is None else "submit", "t": t,
                               "version": tuple(body.get("version") or ()) if isinstance(body, dict) else ()})
        self.actions.append({"t": round(t, 2), "what": f"{what} {job} via node {i}", "ok": ok,
                             "detail": "" if ok else f"HTTP {code}: {str(body)[:200]}"})

    def fault_actions(self, f: Fault) -> list[tuple[float, Callable[[], None]]]:
        nodes = [str(j + 1) for j in f.nodes]
        every = [str(i) for i in range(1, self.n + 1)]
        if f.kind == "kill":
            return [(f.start_s, lambda: self.act(f"kill node {nodes[0]}", "kill", nodes[0]))]
        if f.kind == "restart":
            return [(f.start_s, lambda: self.act(f"kill node {nodes[0]}", "kill", nodes[0])),
                    (f.end_s, lambda: self.act(f"start node {nodes[0]}", "start", nodes[0]))]
        if f.kind == "pause":
            return [(f.start_s, lambda: self.act(f"pause node {nodes[0]}", "pause", nodes[0])),
                    (f.end_s, lambda: self.act(f"resume node {nodes[0]}", "resume", nodes[0]))]
        if f.kind == "engine-stall":
            return [(f.start_s, lambda: self.act(f"stall engine of node {nodes[0]}", "stall", nodes[0])),
                    (f.end_s, lambda: self.act(f"unstall engine of node {nodes[0]}", "unstall", nodes[0]))]
        if f.kind == "clock-skew":
            return [(f.start_s, lambda: self.skew(f))]
        if f.kind == "partition":
            rest = [x for x in every if x not in nodes]
            spec = f"{','.join(nodes)}|{','.join(rest)}"
            return [(f.start_s, lambda: self.act(f"partition {spec}", "partition", spec)),
                    (f.end_s, lambda: self.act("heal", "heal"))]
        if f.kind == "loss":
            pct = f"{f.value * 100:g}%"
            return [(f.start_s, lambda: [self.act(f"loss node {x} {pct}", "loss", x, pct) for x in every]),
                    (f.end_s, lambda: [self.act(f"loss node {x} 0%", "loss", x, "0%") for x in every])]
        ms = f"{f.value * 1000:g}ms"
        return [(f.start_s, lambda: [self.act(f"delay node {x} {ms}", "delay", x, ms) for x in every]),
                (f.end_s, lambda: [self.act(f"delay node {x} 0ms", "delay", x, "0ms") for x in every])]

    def skew(self, f: Fault) -> None:
        j, t = f.nodes[0], self.now()
        node = str(j + 1)
        if any(g.kind in DOWN_KINDS and j in g.nodes and g.start_s <= t < g.end_s for g in self.plan):
            self.actions.append({"t": round(t, 2), "what": f"clock +{f.offset_s:.2f}s on node {node}",
                                 "ok": False, "detail": "skipped: its agent or engine is down or frozen"})
            return
        self.act(f"clock +{f.offset_s:.2f}s at rate {f.value:.4f} on node {node} (agent restarted)",
                 "restart-agent", node, "--clock-offset", f"{f.offset_s:.3f}", "--clock-rate", f"{f.value:.4f}")
        self.drifting.add(j + 1)

    def stalled(self, t: float) -> set[int]:
        """Nodes (1-based) whose engine is frozen at t: not sampled (`docker ps` would hang)."""
        return {j + 1 for f in self.plan if f.kind == "engine-stall" and f.start_s <= t < f.end_s + 0.5
                for j in f.nodes}

    def heal_all(self) -> None:
        self.act("heal", "heal")
        for i in range(1, self.n + 1):
            self.act(f"unstall engine of node {i}", "unstall", str(i))
            self.act(f"start node {i}", "start", str(i))
            self.act(f"resume node {i}", "resume", str(i))
            self.act(f"loss node {i} 0%", "loss", str(i), "0%")
            self.act(f"delay node {i} 0ms", "delay", str(i), "0ms")
        for i in sorted(self.drifting):  # the plan's clock-skew ends at the heal; the offset reached stays
            self.act(f"clock of node {i} back to the normal rate (agent restarted)",
                     "restart-agent", str(i), "--clock-rate", "1")
        self.drifting.clear()

    # ---- ground truth
    def observer(self, avoid: tuple[int, ...] = ()) -> int:
        """A node (1-based) outside `avoid` (plan indices) to ask; node 1 is never killed or paused."""
        for i in range(1, self.n + 1):
            if i - 1 not in avoid:
                return i
        return 1

    def sample(self, faults_now: list[Fault]) -> dict[str, Any]:
        t = self.now()
        frozen = self.stalled(t)
        running = {i: None if i in frozen else self.tb.ps(i) for i in range(1, self.n + 1)}
        code, jobs = self.tb.api(self.observer(), "GET", "/v1/jobs")
        desired: dict[str, int] | None = None
        globals_: set[str] = set()      # global jobs: one copy per node, any index (auction.global_jobs)
        if code == 200 and isinstance(jobs, list):
            globals_ = {j["name"] for j in jobs if j.get("valid", True) and j.get("mode") == "global"}
            desired = {j["name"]: int(j.get("replicas") or 0) for j in jobs
                       if j.get("valid", True) and j["name"] not in globals_}
            for j in jobs:
                if j.get("valid", True) and j["name"] not in self.demand:
                    self.demand[j["name"]] = Resources(int(round(float(j["cpu"]) * 1000)), parse_memory(j["memory"]))
        counts: dict[str, int] = {}
        for rows in running.values():
            for slot, _ in rows or ():
                counts[slot] = counts.get(slot, 0) + 1
        for i, rows in running.items():
            if not rows or i not in self.capacity:
                continue
            use = inv.total(d for slot, _ in rows if (d := self.demand.get(slot.rpartition("/")[0])) is not None)
            problem = inv.overcommit(f"node {i}", use, self.capacity[i])
            if problem:
                self.violate(inv.OVERCOMMIT, f"t={t:.1f}: {problem}")
        s = {"t": round(t, 2),
             "running": {i: None if r is None else sorted(x for x, _ in r) for i, r in running.items()},
             "counts": counts, "desired": desired, "global_jobs": sorted(globals_),
             # a global job wants one copy on each node sampled (for the report's chart)
             "desired_global": {j: sum(r is not None for r in running.values()) for j in sorted(globals_)},
             "faults": [f.kind for f in faults_now],
             "problems": None if desired is None else
             inv.slot_problems({x: k for x, k in counts.items() if x.rpartition("/")[0] not in globals_},
                               inv.desired_slots(desired))
             + inv.global_problems({i: None if r is None else [x for x, _ in r] for i, r in running.items()},
                                   globals_)}
        seen_down: dict[int, set[str]] = {}
        for fig in self.figures:
            f = fig["fault"]
            if f.kind not in NODE_KINDS or fig["detect_s"] is not None or not f.start_s <= t <= f.end_s + 30:
                continue
            obs = self.observer(f.nodes)
            if obs not in seen_down:
                c, members = self.tb.api(obs, "GET", "/v1/members")
                seen_down[obs] = ({m["name"] for m in members if m.get("status") != "alive"}
                                  if c == 200 and isinstance(members, list) else set())
            if any(f"{self.opts.prefix}-{j + 1}" in seen_down[obs] for j in f.nodes):
                fig["detect_s"] = round(t - f.start_s, 2)
        self.samples.append(s)
        self.follow_figures(s)
        return s

    def follow_figures(self, s: dict[str, Any]) -> None:
        t = s["t"]
        holders: dict[str, list[int]] = {}
        for i, slots in s["running"].items():
            for slot in slots or ():
                holders.setdefault(slot, []).append(i - 1)
        for fig in self.figures:
            f = fig["fault"]
            if f.kind in NODE_KINDS and t >= f.start_s and fig["replace_s"] is None:
                if fig["slots"] is None:    # (a global job's copy is its node's: never re-placed)
                    fig["slots"] = {x for x, h in holders.items() if any(j in f.nodes for j in h)
                                    and x.rpartition("/")[0] not in s["global_jobs"]}
                want = inv.desired_slots(s["desired"] or {})
                fig["slots"] = {x for x in fig["slots"] if x in want
                                and not any(j not in f.nodes for j in holders.get(x, ()))}
                if not fig["slots"]:
                    fig["replace_s"] = round(t - f.start_s, 2)
            if fig["converge_s"] is None and t >= f.end_s and s["problems"] == []:
                fig["converge_s"] = round(t - f.end_s, 2)

    # ---- the campaign
    def deploy(self, specs: list[dict[str, Any]]) -> float | None:
        for s in specs:
            self.write(self.rng.randrange(self.n), s["name"], s, "submit")
        deadline = self.now() + DEPLOY_TIMEOUT_S
        start = self.now()
        while self.now() < deadline:
            s = self.sample([])
            if s["problems"] == [] and {*(s["desired"] or {}), *s["global_jobs"]} >= {x["name"] for x in specs}:
                return self.now() - start
            time.sleep(self.opts.sample_s)
        return None

    def workload(self, specs: list[dict[str, Any]], start: float, end: float) -> list[tuple[float, Callable[[], None]]]:
        out: list[tuple[float, Callable[[], None]]] = []
        rng, t, version = self.rng, start, 0
        while specs:
            t += rng.expovariate(1.0 / (2 * self.opts.mean_gap_s))
            if t >= end:
                break
            base = rng.choice(specs)
            ops = ["update", "stop"] if base.get("mode") == "global" else ["scale", "update", "stop"]
            name, node, op = base["name"], rng.randrange(self.n), rng.choice(ops)
            later = min(end, t + rng.uniform(10, 60))
            version += 1
            n2 = rng.randrange(self.n)
            if op == "scale":
                spec = {**base, "replicas": rng.randint(1, base["replicas"])}
                out.append((t, lambda node=node, spec=spec: self.write(node, spec["name"], spec,
                                                                        f"scale to {spec['replicas']}")))
                out.append((later, lambda b=base, n2=n2: self.write(n2, b["name"], b, "scale back")))
            elif op == "update":
                spec = {**base, "env": {**base.get("env", {}), "CHAOS_VERSION": str(version)}}
                out.append((t, lambda node=node, spec=spec: self.write(node, spec["name"], spec, "update env")))
            else:
                out.append((t, lambda node=node, name=name: self.write(node, name, None, "stop")))
                out.append((later, lambda b=base, n2=n2: self.write(n2, b["name"], b, "resubmit")))
        return out

    def run(self) -> dict[str, Any]:
        """The campaign; the testbed comes down afterwards whatever happened (unless keep)."""
        try:
            return self._run()
        finally:
            if not self.opts.keep:
                self.say(f"testbed {self.opts.prefix}: down")
                self.tb.run("down", check=False, timeout=600)

    def _run(self) -> dict[str, Any]:
        o = self.opts
        kinds = tuple(k for k in o.faults if k in LIVE_KINDS)
        dropped = [k for k in o.faults if k not in LIVE_KINDS]
        specs = list(o.job_dicts) or default_jobs(self.n)
        self.say(f"testbed {o.prefix}: up {self.n} nodes")
        self.tb.run("down", check=False, timeout=600)
        self.tb.run("up", str(self.n), "--profile", o.profile, "--runtime", "docker", timeout=1800)
        self.tb.status()
        self.t0 = time.monotonic()
        _, nodes = self.tb.api(1, "GET", "/v1/nodes")
        for nd in nodes if isinstance(nodes, list) else []:
            idx = int(str(nd["name"]).rpartition("-")[2])
            if nd.get("capacity"):
                self.capacity[idx] = Resources(nd["capacity"]["cpu_millis"], nd["capacity"]["memory_bytes"])
        self.say("deploying the job mix")
        deployed = self.deploy(specs)
        if deployed is None:
            self.violate(inv.CONVERGES, f"the job mix did not run within {DEPLOY_TIMEOUT_S:g} s of deploying")
        start = self.now() + 1.0
        end = start + o.duration_s
        self.plan = draw_plan(self.rng, self.n, kinds, start, end, mean_gap_s=o.mean_gap_s)
        self.figures = [{"fault": f, "detect_s": None, "replace_s": None, "converge_s": None, "slots": None}
                        for f in self.plan]
        events = [(t, k, fn) for k, (t, fn) in enumerate(
            [a for f in self.plan for a in self.fault_actions(f)] + self.workload(specs, start, end))]
        events.sort(key=lambda e: (e[0], e[1]))
        self.say(f"{len(self.plan)} faults and {len(events)} actions over {o.duration_s:g} s")
        k, next_sample = 0, self.now()
        while self.now() < end:
            while k < len(events) and events[k][0] <= self.now():
                events[k][2]()
                k += 1
            if self.now() >= next_sample:
                t = self.now()
                self.sample([f for f in self.plan if f.start_s <= t < f.end_s])
                next_sample = t + o.sample_s
            time.sleep(0.1)
        self.say("healing")
        self.heal_t = self.now()
        self.heal_all()
        self.tb.status()
        converged = self.converge()
        self.final_checks(converged)
        self.audit = self.live_audit()
        return self.result(deployed, converged, dropped)

    def converge(self) -> float | None:
        assert self.heal_t is not None
        deadline = self.now() + self.opts.converge_timeout_s
        while self.now() < deadline:
            s = self.sample([])
            if s["problems"] == [] and all(r is not None for r in s["running"].values()):
                took = self.now() - self.heal_t
                time.sleep(self.opts.stable_s)
                s = self.sample([])
                if s["problems"] == []:
                    return took
                # It changed after looking converged: a rebalancing move
                # starts (start-first, two copies for a moment) once its
                # settle delay after the heal ends.  Converged means clean
                # twice, stable_s apart; a copy that stays doubled is still
                # reported below when the deadline passes.
                continue
            time.sleep(self.opts.sample_s)
        last = self.samples[-1]["problems"] if self.samples else None
        self.violate(inv.CONVERGES, f"not converged {self.opts.converge_timeout_s:g} s after the heal: "
                                    + "; ".join((last or ["no answer from the agents"])[:5]))
        for p in (last or [])[:20]:
            self.violate(inv.EXACTLY_ONCE, f"{self.opts.converge_timeout_s:g} s after the heal: {p}")
        return None

    def final_checks(self, converged: float | None) -> None:
        for i in range(1, self.n + 1):
            code, jobs = self.tb.api(i, "GET", "/v1/jobs")
            if code != 200 or not isinstance(jobs, list):
                self.violate(inv.ACKED_WRITES, f"node {i}: could not read its jobs ({code})")
                continue
            have = {j["name"]: (j["version"]["wall_ms"], j["version"]["counter"], j["version"]["node"])
                    for j in jobs if isinstance(j.get("version"), dict)}
            for job in {a["job"] for a in self.acked}:
                acks = [a for a in self.acked if a["job"] == job]
                subs = [a for a in acks if a["op"] == "submit" and a["version"]]
                if not subs:
                    continue
                last = max(subs, key=lambda a: a["version"])
                if job in have:
                    if have[job] < last["version"]:
                        self.violate(inv.ACKED_WRITES, f"node {i} has {job} at {have[job]}, older than the "
                                                       f"acknowledged {last['version']}")
                elif not any(a["op"] == "stop" and a["t"] >= last["t"] for a in acks):
                    self.violate(inv.ACKED_WRITES, f"node {i} lost {job}, acknowledged at {last['version']}")
        self.tb.status()
        for nd in self.tb.info.get("nodes", []):
            if nd["index"] > self.n:  # a node a bigger earlier run of this prefix left in the state dir
                continue
            if not nd.get("agent_pid"):
                self.violate(inv.NO_CRASH, f"{nd['name']}: its agent is not running after the heal")
            try:
                text = self.tb.agent_log(nd["index"]).read_text(errors="replace")
            except OSError:
                continue
            for line in text.splitlines():
                if line.startswith("Traceback") or "Traceback (most recent call last)" in line:
                    self.violate(inv.NO_CRASH, f"{nd['name']}: a traceback in its log")
                    break

    def live_audit(self) -> dict[str, Any] | None:
        """`shoal chaos check`'s verdict on the healed cluster, through node 1's API: it
        should agree with the dockerds' ground truth (shown in the report, not a verdict)."""
        import httpx

        from node.chaos.audit import collect, judge

        token = self.tb.info.get("token") or ""

        def get(url: str | None, path: str) -> Any:
            base = self.tb.node(1)["api"] if url is None else url.rstrip("/")
            try:
                r = httpx.get(base + path, headers={"Authorization": f"Bearer {token}"}, timeout=10.0)
            except httpx.HTTPError as e:
                raise OSError(str(e)) from None
            if r.status_code != 200:
                raise OSError(f"HTTP {r.status_code}")
            return r.json()

        try:
            return judge(collect(get)).to_dict()
        except (OSError, ValueError, KeyError, TypeError) as e:
            return {"clean": False, "error": str(e) or type(e).__name__}

    def doubled(self) -> list[dict[str, Any]]:
        open_: dict[str, dict[str, Any]] = {}
        done: list[dict[str, Any]] = []
        for s in self.samples:
            for slot, d in list(open_.items()):
                if s["counts"].get(slot, 0) <= 1:
                    d["end"] = s["t"]
                    done.append(open_.pop(slot))
            for slot, k in s["counts"].items():
                if k > 1 and slot not in open_:
                    open_[slot] = {"slot": slot, "start": s["t"], "end": None, "during": s["faults"]}
        return sorted(done + list(open_.values()), key=lambda d: d["start"])

    def result(self, deployed: float | None, converged: float | None, dropped: list[str]) -> dict[str, Any]:
        o = self.opts
        return {
            "options": {"nodes": o.nodes, "duration_s": o.duration_s, "seed": o.seed, "faults": list(o.faults),
                        "profile": o.profile},
            "dropped_faults": dropped,
            "live_notes": [note for kind, note in LIVE_NOTES.items() if kind in o.faults],
            "ok": not any(self.violations.values()),
            "violations": self.violations,
            "deployed_s": None if deployed is None else round(deployed, 2),
            "heal_t": self.heal_t,
            "converged_after_heal_s": None if converged is None else round(converged, 2),
            "plan": [f.describe() for f in self.plan],
            "faults": [{"kind": fg["fault"].kind, "start": round(fg["fault"].start_s, 2),
                        "end": round(fg["fault"].end_s, 2), "nodes": [j + 1 for j in fg["fault"].nodes],
                        "detect_s": fg["detect_s"], "replace_s": fg["replace_s"], "converge_s": fg["converge_s"]}
                       for fg in self.figures],
            "doubled": self.doubled(),
            "actions": self.actions,
            "acked_writes": len(self.acked),
            "audit": self.audit,
            "samples": [{k: v for k, v in s.items() if k != "running"} for s in self.samples],
        }


def run_campaign(opts: RunOptions, say: Callable[[str], None]) -> dict[str, Any]:
    return Campaign(opts, say).run()


def replay_command(opts: RunOptions, job_files: list[str]) -> str:
    import shlex

    parts = ["shoal", "chaos", "run", "--nodes", str(opts.nodes), "--duration", f"{opts.duration_s:g}s",
             "--seed", str(opts.seed), "--faults", ",".join(opts.faults)]
    for f in job_files:
        parts += ["--jobs", f]
    return shlex.join(parts)


def write_report(result: dict[str, Any], out_dir: Path) -> tuple[Path, Path]:
    import json

    from node.chaos.report_html import render_html

    out_dir.mkdir(parents=True, exist_ok=True)
    js = out_dir / "report.json"
    js.write_text(json.dumps(result, indent=1, default=str))
    html = out_dir / "report.html"
    html.write_text(render_html(result))
    return js, html
