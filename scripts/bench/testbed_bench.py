#!/usr/bin/env python3
"""Benchmark shoal on the 5-node testbed (scripts/testbed): real dockerds, real power cuts.

    python scripts/bench/testbed_bench.py [--quick] [--replicas 10,50,100]
        [--strategies binpack,spread] [--trials 3] [--kills 5]
        [--kill-profiles lan,local] [--src REV|worktree] [--json OUT] [--keep-logs DIR]

Root only.  Issue 5's benchmarks, on 5 nodes each with its own dockerd in its
own network namespace (all on this one 2-core machine):

(a) job run -> all running: `shoal job run FILE` (the real CLI, against node
    1's API) for a job of R replicas of `sleep` (cpu 10m, memory 8MiB each);
    t=0 just before the CLI is started.  "running" is read from the engines
    themselves: all five dockerds are polled (~every 0.1 s) for containers
    labelled shoal.job=JOB in state running, until R of them run.  The CLI's
    own exit (it follows progress until every replica runs) is timed too.
    The agents use the capacity they measure (about 1.9 cores each, which
    holds 190 such replicas), so `binpack` puts every replica on one dockerd
    and `spread` about R/5 on each; both are run.  Between trials the job is
    stopped and we wait until no container of it is left.
    (binpack does not always put everything on one dockerd: the slots of a
    job are auctioned in several rounds, by several coordinators, and each
    round sees the others' claims only as they gossip.)
(b) agent cost: nodes 2-5 drained (`shoal node drain`), a binpack job of
    the largest R, so all R run on node 1 (that run is timed too); then node
    1's agent process: RSS (VmRSS) and CPU% over a 30 s window
    (utime+stime from /proc/PID/stat), with nothing else asked of it.
    The engine floor: the largest R containers like shoal's, created and
    started straight through the Docker API (8 threads per engine, as the
    runtime), on one dockerd and then R/5 on each of the five: what the
    engines alone take on this machine at that moment.
(c) node kill -> replacements running: a job of 10 replicas, strategy
    spread; the node holding the most replicas is power-cut (`scripts/testbed
    kill`: agent, dockerd, containerd, shims and containers SIGKILLed); t=0
    just before that command starts (it spends ~0.1-0.5 s finding the
    processes before the SIGKILL, so the figure is a slight overestimate).
    The time until the four other dockerds run every slot exactly once.
    Then the node is started again and we wait until every agent sees all
    five alive and each slot runs exactly once on the five, before the next
    kill.  With each gossip preset in --kill-profiles (a fresh testbed each).

(a) and (b) run on the `lan` preset's testbed.  Medians are printed, with the
1-minute load average at the start of each measurement (this machine is
shared and noisy; compare figures only with their load next to them).

The agents run a `git archive` export of --src (default HEAD), so work in
progress in the working tree is not what is measured; `--src worktree`
runs the working tree as it is.  The testbed uses its own prefix (shbench),
subnet (10.82.0) and state dir, and `down` runs in a finally (also on
SIGINT/SIGTERM), after which nothing of it is left.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import shutil
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import benchbed  # noqa: E402  (same directory)
from benchbed import API_VERSION, N, REPO, git, load1, log, median, wait  # noqa: E402,F401  (image_spread uses them)

PREFIX = "shbench"
SUBNET = "10.82.0"
CLK_TCK = os.sysconf("SC_CLK_TCK")


class Testbed(benchbed.Bed):
    """This benchmark's testbed (prefix shbench), up with one gossip profile."""

    def __init__(self, src: Path, workdir: Path) -> None:
        super().__init__(src, workdir, PREFIX, SUBNET)

    def up(self, profile: str) -> None:  # type: ignore[override]
        super().up("--profile", profile)

    def agent_pid(self, i: int) -> int | None:
        return next(n["agent_pid"] for n in self.status()["nodes"] if n["index"] == i)

    def shoal(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
        env = dict(os.environ, SHOAL_ADDR=self.nodes[1]["api"], SHOAL_TOKEN=self.token)
        return subprocess.run([sys.executable, "-m", "node.cli", *args], cwd=self.src, env=env,
                              capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)

    def running(self, job: str, nodes) -> collections.Counter:
        """slot -> number of running containers of it on the given nodes."""
        out: collections.Counter = collections.Counter()
        for i in nodes:
            for c in self.docker[i].containers(filters={"label": f"shoal.job={job}", "status": "running"}):
                out[c["Labels"]["shoal.slot"]] += 1
        return out

    def any_left(self, job: str, nodes) -> int:
        return sum(len(self.docker[i].containers(all=True, filters={"label": f"shoal.job={job}"})) for i in nodes)

    def alive_everywhere(self) -> bool:
        names = {n["name"] for n in self.nodes.values()}
        try:
            return all({m["name"] for m in self.api(i, "GET", "/v1/members") if m["status"] == "alive"} == names
                       for i in self.nodes)
        except OSError:
            return False


def write_spec(workdir: Path, name: str, replicas: int, strategy: str) -> Path:
    p = workdir / f"{name}.toml"
    p.write_text(f'name = "{name}"\nimage = "shoal-demo:latest"\ncommand = ["sleep", "3600"]\n'
                 f'cpu = "10m"\nmemory = "8MiB"\nreplicas = {replicas}\nstrategy = "{strategy}"\n')
    return p


def stop_job(tb: Testbed, job: str, timeout: float = 180) -> None:
    out = tb.shoal("job", "stop", job)
    if out.returncode != 0:
        log(f"shoal job stop {job}: {out.stderr.strip()}")
    wait(lambda: tb.any_left(job, tb.nodes) == 0, timeout, f"every container of {job} removed", every=0.5)


# ---- (a) + (b) ----------------------------------------------------------------------------------


def bench_job_run(tb: Testbed, workdir: Path, replicas: list[int], strategies: list[str], trials: int,
                  results: dict) -> None:
    for strategy in strategies:
        for r in replicas:
            for t in range(trials):
                job = f"r{r}{strategy[0]}{t}"
                spec = write_spec(workdir, job, r, strategy)
                la = load1()
                cli_done = {}

                def run_cli():
                    t_start = time.monotonic()
                    out = tb.shoal("job", "run", str(spec), "--timeout", "300")
                    cli_done.update(t=time.monotonic() - t_start, rc=out.returncode, err=out.stderr[-400:])

                t0 = time.monotonic()
                th = threading.Thread(target=run_cli)
                th.start()
                t_run = wait(lambda: sum(tb.running(job, tb.nodes).values()) >= r, 300,
                             f"{r} replicas running") - t0
                th.join(timeout=300)
                per_node = collections.Counter()
                for i in tb.nodes:
                    per_node[i] = len(tb.docker[i].containers(filters={"label": f"shoal.job={job}"}))
                row = {"replicas": r, "strategy": strategy, "trial": t, "load1": la,
                       "all_running_s": round(t_run, 2), "cli_exit_s": round(cli_done.get("t", -1), 2),
                       "cli_rc": cli_done.get("rc"), "per_node": [per_node[i] for i in sorted(tb.nodes)]}
                if cli_done.get("rc") != 0:
                    row["cli_stderr_tail"] = cli_done.get("err")
                log(f"R={r} {strategy} trial {t + 1}: all running after {t_run:.2f} s "
                    f"(CLI exit {row['cli_exit_s']} s, rc {row['cli_rc']}), per node {row['per_node']}, load {la}")
                results["job_run"].append(row)
                stop_job(tb, job)


def bench_engine_floor(tb: Testbed, r: int, results: dict) -> None:
    """What the engines alone take: r containers like shoal's (same image,
    command, limits, network none), created and started through the Docker
    API with 8 threads per engine (shoal's runtime concurrency), on one
    dockerd, then r/5 on each of the five at once.  No shoal involved."""
    import concurrent.futures

    def start_on(i: int, count: int, tag: str) -> None:
        api = tb.docker[i]

        def one(k: int) -> None:
            hc = api.create_host_config(network_mode="none", nano_cpus=10_000_000, mem_limit=8 << 20)
            c = api.create_container("shoal-demo:latest", command=["sleep", "3600"], host_config=hc,
                                     labels={"shoal-bench": tag}, name=f"floor-{tag}-{i}-{k}")
            api.start(c["Id"])
        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            list(pool.map(one, range(count)))

    def clean(tag: str) -> None:
        for i in tb.nodes:
            api = tb.docker[i]
            ids = [c["Id"] for c in api.containers(all=True, filters={"label": f"shoal-bench={tag}"})]
            with concurrent.futures.ThreadPoolExecutor(4) as pool:
                list(pool.map(lambda cid: api.remove_container(cid, force=True), ids))

    rows = {}
    for how, plan in (("one", {1: r}), ("five", {i: r // N for i in tb.nodes})):
        tag = f"{how}{r}"
        la = load1()
        t0 = time.monotonic()
        try:
            with concurrent.futures.ThreadPoolExecutor(N) as pool:
                list(pool.map(lambda kv: start_on(kv[0], kv[1], tag), plan.items()))
            rows[how] = {"replicas": r, "engines": len(plan), "seconds": round(time.monotonic() - t0, 2), "load1": la}
            log(f"engine floor: {r} containers on {len(plan)} dockerd(s) directly: {rows[how]['seconds']} s, load {la}")
        finally:
            clean(tag)
    results["engine_floor"] = rows


def bench_agent_cost(tb: Testbed, workdir: Path, r: int, results: dict) -> None:
    """Nodes 2..5 drained, so all r replicas run on node 1; then its agent is measured."""
    others = [n["name"] for i, n in sorted(tb.nodes.items()) if i != 1]
    for name in others:
        out = tb.shoal("node", "drain", name)
        if out.returncode != 0:
            raise RuntimeError(f"shoal node drain {name}: {out.stderr}")
    try:
        job = f"cost{r}"
        spec = write_spec(workdir, job, r, "binpack")
        t0 = time.monotonic()
        out = tb.shoal("job", "run", str(spec), "--timeout", "300")
        t_run = wait(lambda: sum(tb.running(job, [1]).values()) >= r, 300, f"{r} replicas on node 1") - t0
        log(f"{r} replicas on one node (the others drained): all running after {t_run:.2f} s (CLI rc {out.returncode})")
        results["one_node_run"] = {"replicas": r, "all_running_s": round(t_run, 2), "cli_rc": out.returncode}
        results["agent_cost"] = agent_cost(tb, 1, r)
        stop_job(tb, job)
    finally:
        for name in others:
            tb.shoal("node", "undrain", name)


def agent_cost(tb: Testbed, i: int, containers: int, settle_s: float = 5.0, window_s: float = 30.0) -> dict:
    pid = tb.agent_pid(i)

    def cpu_ticks() -> int:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return int(fields[11]) + int(fields[12])     # utime, stime

    def rss_mb() -> float:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        return float("nan")

    time.sleep(settle_s)
    la = load1()
    c0, t0 = cpu_ticks(), time.monotonic()
    rss = [rss_mb()]
    while time.monotonic() - t0 < window_s:
        time.sleep(1.0)
        rss.append(rss_mb())
    cpu = (cpu_ticks() - c0) / CLK_TCK / (time.monotonic() - t0) * 100
    row = {"node": tb.nodes[i]["name"], "containers": containers, "load1": la, "window_s": window_s,
           "cpu_percent": round(cpu, 1), "rss_mb_max": round(max(rss), 1), "rss_mb_median": round(median(rss), 1)}
    log(f"agent of {row['node']} with {containers} containers: CPU {row['cpu_percent']} % of a core over "
        f"{window_s:g} s, RSS {row['rss_mb_median']} MiB (max {row['rss_mb_max']}; VmRSS), load {la}")
    return row


# ---- (c) --------------------------------------------------------------------------------------------


def watch_death(pid: int | None) -> dict:
    """A thread noting (monotonic) when process pid stops existing or turns zombie."""
    out: dict = {}
    if pid is None:
        return out

    def gone() -> bool:
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            return True
        return stat.rsplit(")", 1)[1].split()[0] in ("Z", "X")

    def watch():
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if gone():
                out["t"], out["wall"] = time.monotonic(), time.time()
                return
            time.sleep(0.005)
    threading.Thread(target=watch, daemon=True).start()
    return out


def first_member_event(tb: Testbed, nodes, victim: str, since_wall: float,
                       kind: str = "member_failed") -> float | None:
    """Seconds from since_wall to the first `kind` event (member_failed,
    member_suspected) for victim on any of nodes (each agent's own
    timestamp, from its /v1/events history)."""
    first = None
    for i in nodes:
        req = urllib.request.Request(tb.nodes[i]["api"] + "/v1/events",
                                     headers={"Authorization": f"Bearer {tb.token}"})
        try:
            with urllib.request.urlopen(req, timeout=1.0) as r:
                while line := r.readline():
                    ev = json.loads(line)
                    if (ev.get("event") == kind and (ev.get("member") or {}).get("name") == victim
                            and ev["time"] >= since_wall):
                        first = ev["time"] if first is None else min(first, ev["time"])
        except (OSError, ValueError):
            pass        # the stream timed out once its history was read
    return None if first is None else first - since_wall


def bench_kills(tb: Testbed, workdir: Path, profile: str, kills: int, results: dict) -> None:
    job = f"kill{profile}"
    spec = write_spec(workdir, job, 10, "spread")
    out = tb.shoal("job", "run", str(spec), "--timeout", "120")
    if out.returncode != 0:
        raise RuntimeError(f"shoal job run {job}: {out.stderr}")
    want = collections.Counter({f"{job}/{k}": 1 for k in range(10)})
    wait(lambda: tb.running(job, tb.nodes) == want, 120, "each slot once")
    for k in range(kills):
        per_node = {i: sum(tb.running(job, [i]).values()) for i in tb.nodes}
        victim = max(per_node, key=lambda i: (per_node[i], -i))
        others = [i for i in tb.nodes if i != victim]
        la = load1()
        died = watch_death(tb.agent_pid(victim))
        t0 = time.monotonic()
        tb.run("kill", str(victim))
        t_killed = time.monotonic() - t0
        t_back = wait(lambda: tb.running(job, others) == want, 120,
                      f"{job}'s slots running once on the nodes other than {victim}") - t0
        t_died = died.get("t", t0) - t0
        since = died.get("wall", time.time())
        detected = first_member_event(tb, others, tb.nodes[victim]["name"], since)
        suspected = first_member_event(tb, others, tb.nodes[victim]["name"], since, "member_suspected")
        row = {"profile": profile, "kill": k, "victim": tb.nodes[victim]["name"], "replicas_lost": per_node[victim],
               "load1": la, "kill_cmd_s": round(t_killed, 2), "agent_dead_s": round(t_died, 2),
               "replacements_running_s": round(t_back, 2),
               "replacements_after_agent_death_s": round(t_back - t_died, 2),
               "first_failed_after_agent_death_s": round(detected, 2) if detected is not None else None,
               "first_suspected_after_agent_death_s": round(suspected, 2) if suspected is not None else None}
        log(f"{profile} kill {k + 1}: {row['victim']} with {per_node[victim]} replicas; all 10 running "
            f"on the others {t_back:.2f} s after the kill began, {t_back - t_died:.2f} s after its agent died "
            f"(the kill command took {t_killed:.2f} s, the agent was gone at {t_died:.2f} s; after that the first "
            f"peer suspected it at {row['first_suspected_after_agent_death_s']} s and declared it failed at "
            f"{row['first_failed_after_agent_death_s']} s), load {la}")
        results["kills"].append(row)
        # bring it back and let everything settle before the next kill
        tb.run("start", str(victim))
        wait(tb.alive_everywhere, 120, "all 5 alive everywhere", every=0.5)
        wait(lambda: tb.any_left(job, [victim]) == sum(tb.running(job, [victim]).values()), 120,
             f"stale containers on node {victim} removed", every=0.5)
        wait(lambda: tb.running(job, tb.nodes) == want, 120, "each slot once on all 5", every=0.5)
    stop_job(tb, job)


# ---- main -----------------------------------------------------------------------------------------


def _med(rows: list[dict], key: str) -> float:
    xs = [r[key] for r in rows if r.get(key) is not None]
    return median(xs) if xs else float("nan")


def summarize(results: dict) -> None:
    print(f"\n== shoal testbed benchmark: {N} nodes, each its own dockerd; {results['src']}")
    print(f"   machine: {os.cpu_count()} cores, load average at start {results['load_start']}, "
          f"{results['started']}")
    rows = results["job_run"]
    if rows:
        print("\n(a) shoal job run -> all replicas running (median of trials; load = median 1-min load at start)")
        print(f"{'R':>5} {'strategy':<8} {'trials':>6} {'running s':>10} {'worst s':>8} {'CLI exit s':>10} "
              f"{'load':>5}  per node (first trial)")
        keys = sorted({(r["replicas"], r["strategy"]) for r in rows}, key=lambda k: (k[1], k[0]))
        for r, s in keys:
            sel = [x for x in rows if x["replicas"] == r and x["strategy"] == s]
            print(f"{r:>5} {s:<8} {len(sel):>6} {median([x['all_running_s'] for x in sel]):>10.2f} "
                  f"{max(x['all_running_s'] for x in sel):>8.2f} {median([x['cli_exit_s'] for x in sel]):>10.2f} "
                  f"{median([x['load1'] for x in sel]):>5.1f}  {sel[0]['per_node']}")
    if results.get("one_node_run"):
        o = results["one_node_run"]
        print(f"\n    R={o['replicas']} on one node (the other four drained): "
              f"all running after {o['all_running_s']} s")
    for f in (results.get("engine_floor") or {}).values():
        print(f"    engine floor, no shoal: {f['replicas']} containers created+started through the Docker API on "
              f"{f['engines']} dockerd(s): {f['seconds']} s (load {f['load1']})")
    if results.get("agent_cost"):
        a = results["agent_cost"]
        print(f"\n(b) agent with {a['containers']} containers ({a['node']}): CPU {a['cpu_percent']} % of one core "
              f"over {a['window_s']:g} s, RSS {a['rss_mb_median']} MiB (max {a['rss_mb_max']}; VmRSS), "
              f"load {a['load1']}")
    kills = results["kills"]
    if kills:
        print("\n(c) node power cut -> its replicas running on the others (10 replicas, spread);"
              "\n    from the start of `scripts/testbed kill`, and from the moment its agent process was gone;"
              "\n    'suspected', 'failed': from that moment to the first peer's member_suspected / member_failed"
              "\n    event (placement treats a suspected node as gone)")
        print(f"{'profile':<8} {'kills':>5} {'median s':>9} {'min s':>6} {'max s':>6} {'from death s':>12} "
              f"{'suspected s':>11} {'failed s':>8} {'load':>5}  each (from kill start)")
        for p in sorted({k["profile"] for k in kills}):
            sel = [k for k in kills if k["profile"] == p]
            xs = [k["replacements_running_s"] for k in sel]
            print(f"{p:<8} {len(sel):>5} {median(xs):>9.2f} {min(xs):>6.2f} {max(xs):>6.2f} "
                  f"{median([k['replacements_after_agent_death_s'] for k in sel]):>12.2f} "
                  f"{_med(sel, 'first_suspected_after_agent_death_s'):>11.2f} "
                  f"{_med(sel, 'first_failed_after_agent_death_s'):>8.2f} "
                  f"{median([k['load1'] for k in sel]):>5.1f}  {xs}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="R=10,100 binpack+spread, 1 trial, 3 kills, local only")
    ap.add_argument("--replicas", default="10,50,100")
    ap.add_argument("--strategies", default="binpack,spread")
    ap.add_argument("--trials", type=int, default=3)
    ap.add_argument("--kills", type=int, default=5)
    ap.add_argument("--kill-profiles", default="lan,local")
    ap.add_argument("--skip-job-run", action="store_true", help="only (c)")
    ap.add_argument("--src", default="HEAD", help="git revision to run (exported), or 'worktree'")
    ap.add_argument("--json", help="write every raw figure here")
    ap.add_argument("--keep-logs", help="copy the testbed's logs (agent.log, dockerd.log) here")
    args = ap.parse_args()
    if os.geteuid() != 0:
        print("testbed_bench: needs root (scripts/testbed)", file=sys.stderr)
        return 2
    if args.quick:
        args.replicas, args.trials, args.kills, args.kill_profiles = "10,100", 1, 3, "local"
    replicas = [int(x) for x in args.replicas.split(",") if x]
    strategies = [s for s in args.strategies.split(",") if s]
    profiles = [p for p in args.kill_profiles.split(",") if p]

    results = {"started": time.strftime("%Y-%m-%d %H:%M:%S"),
               "load_start": Path("/proc/loadavg").read_text().split()[:3],
               "job_run": [], "kills": [], "agent_cost": None}
    with benchbed.bench_run("tbbench", results, args.src, args.json) as run:
        tb = run.track(Testbed(run.src, run.workdir))
        workdir = run.workdir
        plan = ([] if args.skip_job_run else ["lan"]) + profiles     # (a) and (b) on lan
        for profile in dict.fromkeys(plan):
            log(f"testbed up: {N} nodes, profile {profile}")
            tb.up(profile)
            wait(tb.alive_everywhere, 60, "all 5 alive everywhere", every=0.5)
            if profile == "lan" and not args.skip_job_run:
                bench_job_run(tb, workdir, replicas, strategies, args.trials, results)
                bench_agent_cost(tb, workdir, max(replicas), results)
                bench_engine_floor(tb, max(replicas), results)
            if profile in profiles:
                bench_kills(tb, workdir, profile, args.kills, results)
            if args.keep_logs:
                keep = Path(args.keep_logs) / profile
                keep.mkdir(parents=True, exist_ok=True)
                for n in tb.nodes.values():
                    for f in ("agent.log", "dockerd.log"):
                        p = Path(n["state_dir"]) / f
                        if p.exists():
                            shutil.copy(p, keep / f"{n['name']}-{f}")
            tb.down()
    summarize(results)
    return run.rc


if __name__ == "__main__":
    sys.exit(main())
