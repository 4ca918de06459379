#!/usr/bin/env python3
"""Placement and power cuts on the 5-node testbed: shoal and Docker Swarm, side by side in one run.

    python scripts/bench/swarm_bench.py [--replicas 10,50,100] [--trials 3]
        [--kills 3] [--cuts default,fast] [--stack 10x3] [--no-swarm] [--no-shoal]
        [--stack-profile wan] [--stack-delay-ms 50] [--agent-arg=--config=FILE.toml]
        [--prefix shsw --subnet 10.84.0] [--trace DIR] [--src REV|worktree] [--json OUT]

Root only.  Issue 16's testbed target, on 5 nodes of scripts/testbed (each
its own network namespace and dockerd, all on this one machine); both
schedulers run the same image (shoal-demo, built FROM scratch with Debian's
busybox-static into every dockerd by scripts/testbed) on the same dockerds,
one after the other:

(a) placement: R replicas of `sleep 3600` (cpu 10m, memory 8 MiB as limits,
    the default bridge network), spread over the five nodes.  shoal: the
    job is POSTed to node 1's /v1/jobs; Swarm (nodes 1-3 managers, 4-5
    workers): `create_service` on node 1.  t=0 just before that call; "all
    running" is read from the engines themselves: the five dockerds are
    polled every 0.1 s until R containers of the job run.  Then "from the
    containers' own timestamps": the latest State.StartedAt the dockerds
    recorded, from t=0 (no polling delay in it).  The job is removed and we
    wait until none of its containers is left before the next trial.
(b) power cut: a spread job of 10 replicas; the node other than node 1 that
    runs the most is power-cut (`scripts/testbed kill`: agent, dockerd,
    containerd, shims and containers SIGKILLed); t=0 just before that
    command.  The figure: until the four other dockerds run all 10 (for
    shoal each slot exactly once).  The node is started again and the job
    left to settle before the next cut.  Two settings each (--cuts):
    `default` -- shoal's `lan` preset, Swarm as installed (dispatcher
    heartbeat 5 s, restart delay 5 s); `fast` -- shoal's `local` preset,
    Swarm with a 1 s heartbeat and no restart delay.

(c) a stack (--stack SxR, none by default): S services of R replicas each,
    spread, all sent to node 1 at once, one call per service (as `docker
    stack deploy` or shoal's Compose import send them).  The figures: until
    all S*R run, the replicas on each node, and how many services have two
    replicas on one node.  Removed before the next trial.  shoal runs it on
    the `lan` profile unless --stack-profile says otherwise; --stack-delay-ms
    holds back every agent's outgoing UDP datagrams that long (the
    transport's fault hook: links of an edge site; Swarm's traffic is not
    delayed, so run it --no-swarm); --agent-arg passes a flag to every agent.

The order: each size's placement on shoal, then on Swarm; then each
setting's cuts on shoal, then on Swarm, so the two sides of a row run
minutes apart, at much the same load.  Each of these phases gets a fresh
testbed: shoal's with agents (`lan` for placement and the default cuts,
`local` for the fast ones), Swarm's with none (its gossip port is the
agents').  Medians and ranges are printed with the 1-minute load
average at each measurement (the machine is shared; compare figures only
with their load beside them).  With --trace DIR the agents log at DEBUG and
their logs are kept in DIR; each placement trial's per-slot steps (award,
claim, create, start, running, published, seen: node/telemetry/
slot_trace.py, read with scripts/bench/slot_trace.py's reader) are printed
as times from the submission (DEBUG costs the agents some CPU).  The agents
run a `git archive` export of --src (default HEAD); `--src worktree` runs
the working tree.  The testbed's prefix and subnet are --prefix/--subnet;
`down` runs in a finally, also on SIGINT/SIGTERM.
"""

from __future__ import annotations

import argparse
import collections
import os
import sys
import time
import urllib.error
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import benchbed  # noqa: E402  (same directory)
import swarm  # noqa: E402
from benchbed import N, load1, log, median, wait  # noqa: E402
from catalog_bench import docker_time  # noqa: E402
from testbed_bench import watch_death  # noqa: E402

IMAGE = "shoal-demo:latest"
COMMAND = ["sleep", "3600"]
CPU_NANOS = 10_000_000          # 10m
MEMORY_BYTES = 8 << 20
KILL_REPLICAS = 10
MANAGERS = 3
POLL_S = 0.1
SHOAL_PROFILE = {"default": "lan", "fast": "local"}
SWARM_HEARTBEAT_S = {"default": None, "fast": 1.0}
SWARM_RESTART_DELAY_NS = {"default": None, "fast": 0}
SHOAL_LABEL = "shoal.job"


class Bed(benchbed.Bed):
    def pid_of(self, i: int, key: str) -> int | None:
        return next(n[key] for n in self.status()["nodes"] if n["index"] == i)

    def containers(self, label: str, nodes, running: bool = True) -> list[tuple[int, dict]]:
        filters = {"label": label, **({"status": "running"} if running else {})}
        return [(i, c) for i in nodes for c in self.docker[i].containers(all=not running, filters=filters)]

    def live(self) -> list[int]:
        return [n["index"] for n in self.status()["nodes"] if n["dockerd_pid"]]


# ---- the two schedulers, behind the same five calls -------------------------------------------------


class Shoal:
    name = "shoal"

    def __init__(self, bed: Bed) -> None:
        self.bed = bed

    def label(self, job: str) -> str:
        return f"{SHOAL_LABEL}={job}"

    def submit(self, job: str, replicas: int, setting: str) -> None:
        self.bed.api(1, "POST", "/v1/jobs", {"name": job, "image": IMAGE, "command": COMMAND, "cpu": "10m",
                                             "memory": "8MiB", "replicas": replicas, "strategy": "spread"})

    def settled(self, job: str, replicas: int, nodes) -> bool:
        """Each slot runs exactly once on `nodes`, and nothing else of the job is there."""
        got = collections.Counter(c["Labels"].get("shoal.slot") for _, c in self.bed.containers(self.label(job), nodes))
        return got == collections.Counter({f"{job}/{k}": 1 for k in range(replicas)}) and \
            len(self.bed.containers(self.label(job), nodes, running=False)) == replicas

    def remove(self, job: str) -> None:
        try:
            self.bed.api(1, "DELETE", f"/v1/jobs/{job}")
        except urllib.error.HTTPError:
            pass
        wait(lambda: not self.bed.containers(self.label(job), self.bed.live(), running=False), 300,
             f"every container of {job} removed", every=0.5)

    def back(self, victim: int) -> None:
        names = {n["name"] for n in self.bed.nodes.values()}

        def all_alive() -> bool:
            return all({m["name"] for m in self.bed.api(i, "GET", "/v1/members") if m["status"] == "alive"} == names
                       for i in self.bed.nodes)
        wait(all_alive, 120, "all 5 alive everywhere", every=0.5)


class Swarm:
    name = "swarm"

    def __init__(self, bed: Bed) -> None:
        self.bed = bed

    def label(self, job: str) -> str:
        return f"{swarm.SERVICE_LABEL}={job}"

    def submit(self, job: str, replicas: int, setting: str) -> None:
        import docker.types

        restart = docker.types.RestartPolicy(condition="any", delay=SWARM_RESTART_DELAY_NS[setting]) \
            if SWARM_RESTART_DELAY_NS[setting] is not None else None
        template = docker.types.TaskTemplate(
            container_spec=docker.types.ContainerSpec(IMAGE, command=COMMAND),
            resources=docker.types.Resources(cpu_limit=CPU_NANOS, mem_limit=MEMORY_BYTES),
            restart_policy=restart)
        self.bed.docker[1].create_service(template, name=job,
                                          mode=docker.types.ServiceMode("replicated", replicas=replicas))

    def settled(self, job: str, replicas: int, nodes) -> bool:
        return len(self.bed.containers(self.label(job), nodes)) == replicas

    def remove(self, job: str) -> None:
        swarm.remove(self.bed, job, self.bed.live())

    def back(self, victim: int) -> None:
        wait(lambda: swarm.ready_nodes(self.bed) == N, 120, "the node back in the swarm", every=0.5)


# ---- (a) placement ----------------------------------------------------------------------------------


def bench_placement(sched, replicas: list[int], trials: int, results: dict) -> None:
    bed = sched.bed
    for r in replicas:
        for t in range(trials):
            job = f"p{r}t{t}"
            la = load1()
            t_wall = time.time()
            t0 = time.monotonic()
            sched.submit(job, r, "default")
            took = wait(lambda job=job, r=r: len(bed.containers(sched.label(job), bed.nodes)) >= r, 300,
                        f"{r} replicas running", every=POLL_S) - t0
            running = bed.containers(sched.label(job), bed.nodes)
            started = [docker_time(bed.docker[i].inspect_container(c["Id"])["State"]["StartedAt"]) for i, c in running]
            per_node = collections.Counter(i for i, _ in running)
            row = {"sched": sched.name, "replicas": r, "trial": t, "load1": la, "job": job, "t0_wall": t_wall,
                   "all_running_s": round(took, 2), "last_started_s": round(max(started) - t_wall, 2),
                   "first_started_s": round(min(started) - t_wall, 2),
                   "per_node": [per_node[i] for i in sorted(bed.nodes)]}
            log(f"{sched.name} R={r} trial {t + 1}: all running {took:.2f} s (last start {row['last_started_s']} s, "
                f"first {row['first_started_s']} s), per node {row['per_node']}, load {la}")
            results["placement"].append(row)
            sched.remove(job)


# ---- (c) a stack of services sent at once -------------------------------------------------------------


def bench_stack(sched, services: int, replicas: int, trials: int, results: dict) -> None:
    bed = sched.bed
    for t in range(trials):
        jobs = [f"st{t}s{k}" for k in range(services)]
        la = load1()
        t0 = time.monotonic()
        for job in jobs:
            sched.submit(job, replicas, "default")
        total = services * replicas
        took = wait(lambda: sum(len(bed.containers(sched.label(j), bed.nodes)) for j in jobs) >= total, 300,
                    f"{total} replicas of {services} services running", every=POLL_S) - t0
        per_node: collections.Counter[int] = collections.Counter()
        doubled = 0
        for job in jobs:
            nodes = [i for i, _ in bed.containers(sched.label(job), bed.nodes)]
            per_node.update(nodes)
            doubled += len(nodes) != len(set(nodes))
        row = {"sched": sched.name, "services": services, "replicas": replicas, "trial": t, "load1": la,
               "all_running_s": round(took, 2), "per_node": [per_node[i] for i in sorted(bed.nodes)],
               "services_doubled": doubled}
        log(f"{sched.name} stack {services}x{replicas} trial {t + 1}: all running {took:.2f} s, per node "
            f"{row['per_node']}, {doubled} services with two replicas on a node, load {la}")
        results["stack"].append(row)
        for job in jobs:
            sched.remove(job)


# ---- (b) power cuts ---------------------------------------------------------------------------------


def bench_cuts(sched, setting: str, kills: int, results: dict, pid_key: str) -> None:
    bed = sched.bed
    job = f"cut{setting}"
    sched.submit(job, KILL_REPLICAS, setting)
    wait(lambda: sched.settled(job, KILL_REPLICAS, bed.nodes), 120, f"{job}: {KILL_REPLICAS} running")
    for k in range(kills):
        per_node = collections.Counter(i for i, _ in bed.containers(sched.label(job), bed.nodes))
        victim = max((i for i in bed.nodes if i != 1), key=lambda i: (per_node[i], -i))
        others = [i for i in bed.nodes if i != victim]
        died = watch_death(bed.pid_of(victim, pid_key))
        la = load1()
        t_wall = time.time()
        t0 = time.monotonic()
        bed.run("kill", str(victim))
        t_cmd = time.monotonic() - t0
        took = wait(lambda others=others: sched.settled(job, KILL_REPLICAS, others), 180,
                    f"{job}: {KILL_REPLICAS} running on the nodes other than {victim}") - t0
        row = {"sched": sched.name, "setting": setting, "kill": k, "victim": victim, "lost": per_node[victim],
               "load1": la, "t0_wall": t_wall, "healed_s": round(took, 2), "kill_cmd_s": round(t_cmd, 2),
               "died_s": round(died.get("t", t0) - t0, 2)}
        log(f"{sched.name} {setting} cut {k + 1}: node {victim} ({per_node[victim]} replicas): all "
            f"{KILL_REPLICAS} running on the others {took:.2f} s after the kill began (the process was gone at "
            f"{row['died_s']} s), load {la}")
        results["cuts"].append(row)
        bed.run("start", str(victim))
        sched.back(victim)
        wait(lambda: sched.settled(job, KILL_REPLICAS, bed.nodes), 120, f"{job} settled after the restart",
             every=0.5)
    sched.remove(job)


# ---- traces ----------------------------------------------------------------------------------------


def trace_summaries(logs: list[str], rows: list[dict]) -> None:
    """Per shoal placement trial: each slot step's time from the submission
    (median / max over the job's slots), from the agents' trace lines."""
    from slot_trace import ORDER, read

    for row in rows:
        slots = read(logs, row["job"], row["t0_wall"] - 1.0)
        steps = {}
        for step in ORDER:
            xs = [st[step] - row["t0_wall"] for st in slots.values() if step in st]
            if xs:
                steps[step] = {"n": len(xs), "median_s": round(median(xs), 3), "max_s": round(max(xs), 3)}
        row["trace"] = steps
        print(f"-- slot steps from the submission, shoal R={row['replicas']} trial {row['trial'] + 1} "
              f"(all running {row['all_running_s']} s, load {row['load1']}): " +
              ", ".join(f"{k} {v['median_s']:.2f}/{v['max_s']:.2f}" for k, v in steps.items()))


def phases(sizes: list[int], settings: list[str], shoal: bool, swarm_too: bool, stack: bool = False):
    """(scheduler, setting, sizes) in the order run: each size's placement
    on shoal then on Swarm, the stack (setting "stack") on each, then each
    setting's cuts on shoal then on Swarm, so both sides of a row run
    minutes apart, at much the same load (the machine is shared).  Each
    phase gets a fresh testbed."""
    who = [w for w, on in (("shoal", shoal), ("swarm", swarm_too)) if on]
    out = [(w, "default", [r]) for r in sizes for w in who]
    out += [(w, "stack", []) for w in who] if stack else []
    return out + [(w, s, []) for s in settings for w in who]


# ---- report ----------------------------------------------------------------------------------------


def spread(xs: list[float]) -> str:
    if not xs:
        return "-"
    return f"{median(xs):.2f} s ({min(xs):.2f}-{max(xs):.2f})" if len(xs) > 1 else f"{xs[0]:.2f} s"


def loads(rows: list[dict]) -> str:
    ls = [r["load1"] for r in rows]
    return f"load {min(ls):.1f}-{max(ls):.1f}" if ls else ""


def report(results: dict) -> None:
    print(f"\n== shoal and Docker Swarm on the same {N} dockerds ({results.get('src', '?')}); "
          f"medians (range), 1-minute load at each start\n")
    print("| | Docker Swarm (3 managers + 2 workers) | shoal (5 agents) |\n| --- | --- | --- |")
    pl = results["placement"]
    for r in sorted({x["replicas"] for x in pl}):
        cells = {}
        for who in ("swarm", "shoal"):
            rows = [x for x in pl if x["sched"] == who and x["replicas"] == r]
            cells[who] = (f"{spread([x['all_running_s'] for x in rows])}; last start "
                          f"{spread([x['last_started_s'] for x in rows])}; {loads(rows)}") if rows else "-"
        print(f"| R={r} all running (observed; containers' own last start) | {cells['swarm']} | {cells['shoal']} |")
    for services, replicas in sorted({(x["services"], x["replicas"]) for x in results["stack"]}):
        cells = {}
        for who in ("swarm", "shoal"):
            rows = [x for x in results["stack"] if x["sched"] == who and x["services"] == services]
            cells[who] = (f"{spread([x['all_running_s'] for x in rows])}; per node "
                          f"{' / '.join(str(x['per_node']) for x in rows)}; services with two on a node "
                          f"{' / '.join(str(x['services_doubled']) for x in rows)}; {loads(rows)}") if rows else "-"
        print(f"| a stack of {services} x {replicas} sent at once, all running | {cells['swarm']} | {cells['shoal']} |")
    cuts = results["cuts"]
    for setting in ("default", "fast"):
        if not any(x["setting"] == setting for x in cuts):
            continue
        cells = {}
        for who in ("swarm", "shoal"):
            rows = [x for x in cuts if x["sched"] == who and x["setting"] == setting]
            cells[who] = f"{spread([x['healed_s'] for x in rows])}; {loads(rows)}" if rows else "-"
        what = ("default settings (Swarm heartbeat 5 s, restart delay 5 s; shoal lan)" if setting == "default"
                else "fast settings (Swarm heartbeat 1 s, no restart delay; shoal local)")
        print(f"| node power cut → all {KILL_REPLICAS} running on the others, {what} | {cells['swarm']} | "
              f"{cells['shoal']} |")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--replicas", default="10,50,100", help="comma-separated job sizes for (a)")
    ap.add_argument("--trials", type=int, default=3, help="(a) runs per size and scheduler")
    ap.add_argument("--kills", type=int, default=3, help="(b) power cuts per setting and scheduler")
    ap.add_argument("--cuts", default="default,fast", help="(b) settings; empty for none")
    ap.add_argument("--stack", default="", help="(c) SxR: S services of R replicas sent at once; empty for none")
    ap.add_argument("--stack-profile", default="lan", help="(c) shoal's gossip profile")
    ap.add_argument("--stack-delay-ms", type=int, default=0,
                    help="(c) shoal only: ms added to every agent's outgoing UDP datagrams (the transport's "
                         "fault hook; Swarm's traffic has none)")
    ap.add_argument("--agent-arg", action="append", default=[],
                    help="passed to every agent (repeatable), e.g. --agent-arg=--config=FILE.toml")
    ap.add_argument("--no-swarm", action="store_true")
    ap.add_argument("--no-shoal", action="store_true")
    ap.add_argument("--prefix", default="shsw", help="the testbed's prefix (its own, not another run's)")
    ap.add_argument("--subnet", default="10.84.0")
    ap.add_argument("--trace", help="agents log at DEBUG; keep their logs here and summarise each slot's steps")
    ap.add_argument("--src", default="HEAD", help="git revision to run (exported), or 'worktree'")
    ap.add_argument("--json", help="write every raw figure here")
    args = ap.parse_args()
    if os.geteuid() != 0:
        print("swarm_bench: needs root (scripts/testbed)", file=sys.stderr)
        return 2
    sizes = [int(x) for x in args.replicas.split(",") if x.strip()]
    settings = [s for s in args.cuts.split(",") if s]
    stack = tuple(int(x) for x in args.stack.split("x")) if args.stack else None
    results: dict = {"started": time.strftime("%Y-%m-%d %H:%M:%S"), "placement": [], "cuts": [], "stack": []}
    with benchbed.bench_run("swarmbench", results, args.src, args.json) as run:
        bed = run.track(Bed(run.src, run.workdir, args.prefix, args.subnet))
        debug = ["--agent-arg=--log-level=DEBUG"] if args.trace else []
        for who, setting, sizes_here in phases(sizes, settings, not args.no_shoal, not args.no_swarm, bool(stack)):
            if who == "shoal":
                profile = args.stack_profile if setting == "stack" else SHOAL_PROFILE.get(setting, "lan")
                log(f"testbed up: {N} nodes with agents, profile {profile}")
                bed.up("--profile", profile, *debug, *(f"--agent-arg={a}" for a in args.agent_arg))
                sched = Shoal(bed)
                sched.back(0)
                if setting == "stack" and args.stack_delay_ms:
                    log(f"every agent's UDP datagrams {args.stack_delay_ms} ms late from now on")
                    for i in bed.nodes:
                        bed.run("delay", str(i), f"{args.stack_delay_ms}ms")
            else:
                log(f"testbed up: {N} nodes, dockerds only, for Docker Swarm ({MANAGERS} managers, "
                    f"heartbeat {SWARM_HEARTBEAT_S.get(setting) or swarm.DEFAULT_HEARTBEAT_S:g} s)")
                bed.up("--no-agents")
                swarm.init(bed, managers=MANAGERS, heartbeat_s=SWARM_HEARTBEAT_S.get(setting))
                sched = Swarm(bed)
            if sizes_here:
                bench_placement(sched, sizes_here, args.trials, results)
            elif setting == "stack" and stack is not None:
                bench_stack(sched, stack[0], stack[1], args.trials, results)
            else:
                bench_cuts(sched, setting, args.kills, results, "agent_pid" if who == "shoal" else "dockerd_pid")
            if args.trace and who == "shoal":
                tag = f"place{sizes_here[0]}" if sizes_here else f"cut{setting}"
                logs = benchbed.keep_logs(bed, Path(args.trace) / tag)
                if sizes_here:
                    trace_summaries(logs, [r for r in results["placement"] if r["sched"] == "shoal"
                                           and r["replicas"] == sizes_here[0]])
            bed.down()
    report(results)
    return run.rc


if __name__ == "__main__":
    sys.exit(main())
