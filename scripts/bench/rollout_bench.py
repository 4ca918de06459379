#!/usr/bin/env python3
"""Benchmark a rolling update on the 5-node testbed, side by side with Docker Swarm.

    python scripts/bench/rollout_bench.py [--replicas 10,100] [--parallel P]
        [--monitor-s 1] [--min-healthy-s 0] [--trials 3] [--profile lan] [--no-swarm] [--no-shoal]
        [--src REV|worktree] [--json OUT] [--timeline] [--trace DIR]

Root only.  Issue 13's benchmark, on 5 nodes of scripts/testbed (each its own
network namespace and dockerd, all on this one machine), in one run:

The job: R replicas of busybox `httpd` (cpu 0.05, 16 MiB, spread over the
five nodes) with a health check that passes at once, probed every second
(every R/10 s for R over 10: each check is a `docker exec`).  Both replace
max_parallel P slots at once: --parallel, or R/10 (at least 2).
Version 1 runs image tag `shoal-bench:v1`, version 2 `shoal-bench:v2` (the
same image under two tags, tagged in every dockerd, so no pull is timed).
Once all R run v1 and pass their health check, version 2 is written and
the clock starts; it stops when every dockerd together runs exactly R
containers of the job, all on v2 (read from the engines, polled every 0.2 s,
not from the schedulers' word).  The fewest containers running during the
rollout are reported too.

* shoal: `[update] max_parallel = P, min_healthy_s = H, order = "start-first"`
  (H: --min-healthy-s, default 0), written with `POST /v1/jobs` to node 1.
* Swarm (node 1 manager, 2-5 workers, on a fresh testbed of the same five
  dockerds with no agents): `update_config` parallelism P, delay 0,
  monitor M s, order start-first, failure action pause; the same health
  check.  Swarm waits for a new task to run (and be healthy) before it
  takes the next slot; its monitor only counts failures within M s of a
  task running and holds nothing back (swarmkit's updater), while shoal's
  min_healthy_s does: with H > 0 shoal waits H s more per batch, so the
  like-for-like default is H = 0 with Swarm's monitor M.
* Stopping: both stop with the image's STOPSIGNAL (the job names no
  `stop_signal`; Swarm, like `docker stop`), which for shoal-demo is SIGKILL.

With --timeline, every dockerd's container events for the job are streamed
during each trial, and a line per trial says where the time went, from the
engines' own clocks and the same for both schedulers: each new container's
create -> start (the engine) and start -> healthy (the health interval), and
the *reaction*: from a new container turning healthy (which frees a place
in the batch) to the next new container's create (the scheduler's own
work: noticing, deciding, telling the node), summed over the rollout.

Medians and ranges are printed with the 1-minute load average (the machine
is shared; compare figures only with their load next to them).  The agents
run a `git archive` export of --src (default HEAD); `--src worktree` runs
the working tree.  The testbed has its own prefix (shcat, shared with
catalog_bench: never run both at once; `--prefix P --subnet A.B.C` give it
another), subnet and state dir; `down` runs in a finally, also on
SIGINT/SIGTERM.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
import urllib.error
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from catalog_bench import HTTPD, JOB, N, PREFIX, SUBNET, Bed, live_nodes  # noqa: E402  (same directory)
from benchbed import bench_run, keep_logs, load1, log, wait  # noqa: E402
import swarm  # noqa: E402  (the shared Swarm driver)

REPO = Path(__file__).resolve().parents[2]
IMAGE = "shoal-bench"
POLL_S = 0.2
# Every replica's health check is a `docker exec`: R of them each interval.
# 100 execs a second (R=100 at 1 s) is more than two cores can run beside
# five dockerds (the machine's load went past 100), so the interval grows
# with R to keep the whole job at about 10 checks a second, on both sides.
MAX_CHECKS_PER_S = 10
# A check that cannot fail can still time out on a busy machine: with one
# retry, a slow exec marked replicas unhealthy and restarted them (on both
# schedulers), which measures the machine's load, not the rollout.
HEALTH_RETRIES = 3


def health_interval_s(replicas: int) -> int:
    return max(1, -(-replicas // MAX_CHECKS_PER_S))


def parallel_for(replicas: int, asked: int) -> int:
    """Slots replaced at once: as asked, or R/10 (at least 2), so that a
    large job's rollout is not 50 batches each waiting a health interval."""
    return asked or max(2, replicas // 10)


def tag_everywhere(bed: Bed) -> None:
    for i in bed.nodes:
        for tag in ("v1", "v2"):
            bed.docker[i].tag("shoal-demo:latest", IMAGE, tag)


def running_by_image(bed: Bed, healthy: bool = False) -> dict[str, int]:
    """Image -> containers of the job running (`healthy`: and passing their
    health check), over every live dockerd."""
    out: dict[str, int] = {}
    for i in live_nodes(bed):
        for c in bed.docker[i].containers(filters={"label": f"com.docker.swarm.service.name={JOB}"}) + \
                bed.docker[i].containers(filters={"label": f"shoal.job={JOB}"}):
            if healthy and "(healthy)" not in c.get("Status", ""):
                continue
            image = c["Image"].split("@")[0]
            out[image] = out.get(image, 0) + 1
    return out


def wait_v1_healthy(bed: Bed, replicas: int) -> None:
    """Every v1 container passes its health check: a rollout starts from a
    serving job.  (Waiting for them to run only, shoal's rollout held back
    on replicas not yet healthy, as it must, for up to a health interval,
    while Swarm replaced them at once: 8 s of the R=100 figure.)"""
    wait(lambda: running_by_image(bed, healthy=True) == {f"{IMAGE}:v1": replicas}, 300,
         f"{replicas} healthy on v1", every=0.5)


def watch_rollout(bed: Bed, replicas: int, timeout_s: float) -> tuple[float, int]:
    """Seconds until R run v2 and nothing else; the fewest running seen meanwhile."""
    t0 = time.monotonic()
    fewest = replicas
    want = {f"{IMAGE}:v2": replicas}
    while True:
        seen = running_by_image(bed)
        fewest = min(fewest, sum(seen.values()))
        if seen == want:
            return time.monotonic() - t0, fewest
        if time.monotonic() - t0 > timeout_s:
            raise TimeoutError(f"rollout of {replicas} not done after {timeout_s:g} s: {seen}")
        time.sleep(POLL_S)


class EngineEvents:
    """The job's container events on every live dockerd, streamed in threads
    from now until close() (dockerd keeps only a short backlog, and the
    health checks' exec events would push these out of it)."""

    ACTIONS = ("create", "start", "health_status: healthy", "kill", "destroy")

    def __init__(self, bed: Bed, label: str) -> None:
        import threading

        self.rows: list[tuple[float, int, str, str, str]] = []   # (t, node, container id, action, image)
        self._streams = [bed.docker[i].events(decode=True, filters={"type": "container", "label": label})
                         for i in live_nodes(bed)]
        self._threads = [threading.Thread(target=self._read, args=(i, st), daemon=True)
                         for i, st in zip(live_nodes(bed), self._streams)]
        for th in self._threads:
            th.start()

    def _read(self, node: int, stream) -> None:
        try:
            for ev in stream:
                action = str(ev.get("Action") or ev.get("status") or "")
                if action in self.ACTIONS:
                    image = ((ev.get("Actor") or {}).get("Attributes") or {}).get("image", "").split("@")[0]
                    self.rows.append((ev["timeNano"] / 1e9, node, ev.get("id", ""), action, image))
        except Exception:   # the stream closed under us: close() ends the reading
            pass

    def close(self) -> None:
        for st in self._streams:
            st.close()
        for th in self._threads:
            th.join(timeout=5)


def timeline(rows: list[tuple[float, int, str, str, str]], t0: float) -> dict:
    """Where a rollout's time went, from the engines' events (module doc)."""
    by_id: dict[str, dict] = {}
    for t, _node, cid, action, image in sorted(rows):
        d = by_id.setdefault(cid, {"image": image})
        key = {"health_status: healthy": "healthy", "kill": "gone", "destroy": "gone"}.get(action, action)
        d.setdefault(key, t - t0)
    new = [d for d in by_id.values() if d["image"].endswith(":v2") and "create" in d]
    old_gone = [d["gone"] for d in by_id.values() if d["image"].endswith(":v1") and "gone" in d]
    creates = sorted(d["create"] for d in new)
    healthy = sorted(d["healthy"] for d in new if "healthy" in d)
    # Each healthy frees a place in the batch: the next create after it is
    # the scheduler's reaction (creates already waiting in flight excepted).
    reactions = []
    for h in healthy:
        nxt = next((c for c in creates if c >= h), None)
        if nxt is not None:
            reactions.append(nxt - h)
    med = statistics.median

    def r2(x: float) -> float:
        return round(x, 2)
    return {"first_create_s": r2(creates[0]) if creates else None,
            "create_to_start_s": r2(med([d["start"] - d["create"] for d in new if "start" in d])) if new else None,
            "start_to_healthy_s": r2(med([d["healthy"] - d["start"] for d in new if "healthy" in d and "start" in d]))
            if healthy else None,
            "reaction_median_s": r2(med(reactions)) if reactions else None,
            "reaction_sum_s": r2(sum(reactions)), "reactions": len(reactions),
            "last_healthy_s": r2(healthy[-1]) if healthy else None,
            "last_old_gone_s": r2(max(old_gone)) if old_gone else None}


def traced(bed: Bed, label: str, enabled: bool):
    """EngineEvents for the trial when --timeline is on, else None."""
    return EngineEvents(bed, label) if enabled else None


def finish_trace(events: EngineEvents | None, t0_wall: float, who: str, row: dict) -> None:
    if events is None:
        return
    events.close()
    row["timeline"] = tl = timeline(events.rows, t0_wall)
    log(f"{who} timeline: first new container created +{tl['first_create_s']} s; create->start "
        f"{tl['create_to_start_s']} s, start->healthy {tl['start_to_healthy_s']} s (medians); healthy->next "
        f"create {tl['reaction_median_s']} s median, {tl['reaction_sum_s']} s in all over {tl['reactions']}; "
        f"last new healthy +{tl['last_healthy_s']} s, last old gone +{tl['last_old_gone_s']} s")


# ---- shoal -----------------------------------------------------------------------------------------


def shoal_spec(replicas: int, version: str, parallel: int, min_healthy_s: float) -> dict:
    return {"name": JOB, "image": f"{IMAGE}:{version}", "command": ["sh", "-c", HTTPD], "cpu": 0.05,
            "memory": "16MiB", "replicas": replicas, "strategy": "spread",
            "health": {"command": ["test", "-e", "/www/index.html"], "interval_s": health_interval_s(replicas),
                       "retries": HEALTH_RETRIES, "timeout_s": 5},
            "update": {"max_parallel": parallel, "min_healthy_s": min_healthy_s, "order": "start-first"}}


def stop_shoal_job(bed: Bed) -> None:
    try:
        bed.api(1, "DELETE", f"/v1/jobs/{JOB}")
    except urllib.error.HTTPError:
        pass
    wait(lambda: not any(bed.docker[i].containers(all=True, filters={"label": f"shoal.job={JOB}"})
                         for i in live_nodes(bed)), 300, f"every container of {JOB} removed", every=0.5)


def bench_shoal(bed: Bed, replicas: int, parallel: int, min_healthy_s: float, trials: int, results: dict) -> None:
    for t in range(trials):
        bed.api(1, "POST", "/v1/jobs", shoal_spec(replicas, "v1", parallel, min_healthy_s))
        wait_v1_healthy(bed, replicas)
        # Let v1 pass min_healthy_s everywhere, so the rollout starts from a healthy job.
        time.sleep(min_healthy_s + 1)
        la = load1()
        events = traced(bed, f"shoal.job={JOB}", results["timeline"])
        t0_wall = time.time()
        bed.api(1, "POST", "/v1/jobs", shoal_spec(replicas, "v2", parallel, min_healthy_s))
        took, fewest = watch_rollout(bed, replicas, 60 + replicas * (min_healthy_s + 10))
        log(f"shoal R={replicas} trial {t + 1}: rolled in {took:.1f} s, fewest running {fewest}, load {la}")
        row = {"replicas": replicas, "trial": t, "load1": la, "took_s": round(took, 2), "fewest_running": fewest}
        finish_trace(events, t0_wall, "shoal", row)
        results["shoal"].append(row)
        stop_shoal_job(bed)


# ---- Docker Swarm ----------------------------------------------------------------------------------


def swarm_template(version: str, replicas: int):
    import docker.types

    health = docker.types.Healthcheck(test=["CMD", "test", "-e", "/www/index.html"],
                                      interval=health_interval_s(replicas) * 1_000_000_000, retries=HEALTH_RETRIES,
                                      timeout=5_000_000_000, start_period=0)
    return docker.types.TaskTemplate(
        container_spec=docker.types.ContainerSpec(f"{IMAGE}:{version}", command=["sh", "-c", HTTPD],
                                                  healthcheck=health),
        resources=docker.types.Resources(cpu_limit=50_000_000, mem_limit=16 << 20))


def bench_swarm(bed: Bed, replicas: int, parallel: int, monitor_s: float, trials: int, results: dict) -> None:
    import docker.types

    d1 = bed.docker[1]
    update = docker.types.UpdateConfig(parallelism=parallel, delay=0, failure_action="pause",
                                       monitor=int(monitor_s * 1e9), order="start-first")
    for t in range(trials):
        d1.create_service(swarm_template("v1", replicas), name=JOB, update_config=update,
                          mode=docker.types.ServiceMode("replicated", replicas=replicas))
        wait_v1_healthy(bed, replicas)
        time.sleep(monitor_s + 1)
        la = load1()
        svc = d1.inspect_service(JOB)
        events = traced(bed, f"com.docker.swarm.service.name={JOB}", results["timeline"])
        t0_wall = time.time()
        d1.update_service(svc["ID"], svc["Version"]["Index"], task_template=swarm_template("v2", replicas), name=JOB,
                          update_config=update, mode=docker.types.ServiceMode("replicated", replicas=replicas))
        took, fewest = watch_rollout(bed, replicas, 60 + replicas * (monitor_s + 10))
        log(f"swarm R={replicas} trial {t + 1}: rolled in {took:.1f} s, fewest running {fewest}, load {la}")
        row = {"replicas": replicas, "trial": t, "load1": la, "took_s": round(took, 2), "fewest_running": fewest}
        finish_trace(events, t0_wall, "swarm", row)
        results["swarm"].append(row)
        swarm.remove(bed, JOB, bed.nodes)


def report(results: dict) -> None:
    print(f"rolling update, {N} nodes, Swarm monitor {results['monitor_s']} s, shoal min_healthy_s "
          f"{results.get('min_healthy_s', results['monitor_s'])} s ({results.get('src', '?')})")
    for who in ("shoal", "swarm"):
        for r in sorted({row["replicas"] for row in results[who]}):
            rows = [row for row in results[who] if row["replicas"] == r]
            took = [row["took_s"] for row in rows]
            print(f"  {who:5} R={r:<4} max_parallel {parallel_for(r, results['parallel']):<3} "
                  f"health every {health_interval_s(r)} s; rolled in {statistics.median(took):6.1f} s median "
                  f"({min(took):.1f}-{max(took):.1f}, {len(took)} trials); fewest running "
                  f"{min(row['fewest_running'] for row in rows)}; load {rows[0]['load1']}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--replicas", default="10,100", help="comma-separated job sizes")
    ap.add_argument("--parallel", type=int, default=0,
                    help="slots replaced at once, both schedulers (default: R/10, at least 2)")
    ap.add_argument("--monitor-s", type=float, default=1.0,
                    help="Swarm's update monitor (it holds no batch back)")
    ap.add_argument("--min-healthy-s", type=float, default=0.0,
                    help="shoal's min_healthy_s (it holds each batch back that long)")
    ap.add_argument("--trials", type=int, default=3)
    ap.add_argument("--profile", default="lan", help="the agents' gossip preset")
    ap.add_argument("--no-swarm", action="store_true")
    ap.add_argument("--no-shoal", action="store_true")
    ap.add_argument("--src", default="HEAD", help="git revision to run (exported), or 'worktree'")
    ap.add_argument("--json", help="write every raw figure here")
    ap.add_argument("--trace", metavar="DIR", help="run the agents at DEBUG and keep their logs in DIR")
    ap.add_argument("--timeline", action="store_true",
                    help="stream the engines' container events and say where each trial's time went")
    ap.add_argument("--prefix", default=PREFIX, help="the testbed's name prefix (default catalog_bench's)")
    ap.add_argument("--subnet", default=SUBNET, help="the testbed's /24, as A.B.C")
    args = ap.parse_args()
    if os.geteuid() != 0:
        print("rollout_bench: needs root (scripts/testbed)", file=sys.stderr)
        return 2
    sizes = [int(x) for x in args.replicas.split(",") if x.strip()]

    results: dict = {"started": time.strftime("%Y-%m-%d %H:%M:%S"), "parallel": args.parallel,
                     "monitor_s": args.monitor_s, "min_healthy_s": args.min_healthy_s, "profile": args.profile,
                     "timeline": args.timeline, "shoal": [], "swarm": []}
    with bench_run("rollbench", results, args.src, args.json) as run:
        bed = run.track(Bed(run.src, run.workdir, args.prefix, args.subnet))
        if not args.no_shoal:
            log(f"testbed up: {N} nodes with agents, profile {args.profile}")
            bed.up("--profile", args.profile, *(["--agent-arg=--log-level=DEBUG"] if args.trace else []))
            tag_everywhere(bed)
            for r in sizes:
                bench_shoal(bed, r, parallel_for(r, args.parallel), args.min_healthy_s, args.trials, results)
            if args.trace:
                log(f"agent logs: {', '.join(keep_logs(bed, Path(args.trace)))}")
            bed.down()
        if not args.no_swarm:
            log(f"testbed up: {N} nodes, dockerds only, for Docker Swarm")
            bed.up("--no-agents")
            tag_everywhere(bed)
            swarm.init(bed)
            for r in sizes:
                bench_swarm(bed, r, parallel_for(r, args.parallel), args.monitor_s, args.trials, results)
            bed.down()
    report(results)
    return run.rc


if __name__ == "__main__":
    sys.exit(main())
