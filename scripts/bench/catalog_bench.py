#!/usr/bin/env python3
"""Benchmark the service catalog and DNS on the 5-node testbed, against Docker Swarm's DNS.

    python scripts/bench/catalog_bench.py [--replicas 6] [--trials 5] [--kills 3]
        [--profile lan] [--no-swarm] [--src REV|worktree] [--json OUT]

Root only.  Issue 12's benchmarks, on 5 nodes of scripts/testbed (each its
own network namespace and dockerd, all on this one machine), in one run:

(a) healthy -> listed everywhere: a job of R replicas (busybox httpd, a
    published port, a health check that passes at once, every 1 s) is
    started; for each replica, t=0 is the end of its first passing health
    probe as its dockerd recorded it (State.Health.Log), and the figure is
    the moment the last of the 5 agents lists it in `GET /v1/services/NAME`
    (one blocking-query watcher per agent, so every change is seen when the
    agent answers it, without polling).  Repeated --trials times (the job
    is stopped in between).
(b) power cut -> no agent answers with the dead instances: a spread job of
    R replicas; the node other than node 1 holding the most is power-cut
    (`scripts/testbed kill`).  Every surviving agent's DNS (127.0.0.1:8600
    in its namespace) is asked `NAME.service.shoal` A and the SRV records of
    the port (with --via api: its `GET /v1/services/NAME`), every 50 ms
    each: "stale gone" is when the last survivor stops
    answering with the dead node's address, "healed" when the last one
    answers with all R again.  Timed from the moment the agent process died
    (watched every 5 ms; the kill command's own duration is in the JSON).
    The node is started again and the job left to settle before the next
    kill.
(c) the same power cut under Docker Swarm, on a fresh testbed of the same
    5 nodes with no agents: node 1 is the manager, 2-5 workers; a service of
    R replicas of the same httpd on an attachable overlay network, and one
    probe container per node on that network.  Each surviving node's probe
    is asked `tasks.NAME` (Swarm's embedded DNS at 127.0.0.11, from inside
    the probe's namespace) every 50 ms: "stale gone" is when no survivor
    answers with an address of a task that ran on the dead node, "healed"
    when all of them answer with R tasks again.  Timed from the moment the
    dead node's dockerd died.  (Swarm's gossip port is 7946, the agents' too,
    so Swarm gets its own testbed rather than sharing one with agents.)

Medians and ranges are printed with the 1-minute load average (the machine
is shared; compare figures only with their load next to them).  The agents
run a `git archive` export of --src (default HEAD); `--src worktree` runs
the working tree.  The testbed has its own prefix (shcat), subnet (10.83.0)
and state dir; `down` runs in a finally, also on SIGINT/SIGTERM.
"""

from __future__ import annotations

import argparse
import collections
import ctypes
import datetime
import os
import queue
import statistics
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import benchbed  # noqa: E402  (same directory)
from benchbed import N, load1, log, wait  # noqa: E402
import swarm  # noqa: E402  (the shared Swarm driver)

REPO = Path(__file__).resolve().parents[2]
PREFIX = "shcat"
SUBNET = "10.83.0"
ZONE = "shoal"
DNS_PORT = 8600
POLL_S = 0.05
CLONE_NEWNET = 0x40000000
JOB = "web"
HTTPD = ('printf "slot=%s node=%s\\n" "$SHOAL_SLOT" "$SHOAL_NODE" >/www/index.html; '
         'exec httpd -f -p 8080 -h /www')


def in_netns(path: str, fn, *args, timeout: float = 30):
    """fn(*args) in a thread that entered the network namespace at `path`
    (setns acts on the calling thread only), so its sockets are that
    namespace's."""
    out: queue.Queue = queue.Queue(maxsize=1)

    def body() -> None:
        try:
            fd = os.open(path, os.O_RDONLY)
            try:
                if ctypes.CDLL(None, use_errno=True).setns(fd, CLONE_NEWNET) != 0:
                    raise OSError(ctypes.get_errno(), f"setns {path}")
            finally:
                os.close(fd)
            out.put((True, fn(*args)))
        except BaseException as e:  # noqa: BLE001 -- handed to the caller
            out.put((False, e))

    threading.Thread(target=body, daemon=True).start()
    ok, value = out.get(timeout=timeout)
    if not ok:
        raise value
    return value


def dns_records(ns_path: str, server: str, port: int, qname: str, rdtype: str) -> list[str] | None:
    """The answer's records as text; None when the server did not answer."""
    import dns.exception
    import dns.message
    import dns.query

    q = dns.message.make_query(qname, rdtype)
    try:
        r = in_netns(ns_path, dns.query.udp, q, server, 1.0, port)
    except (dns.exception.DNSException, OSError):
        return None
    return [rd.to_text() for rrset in r.answer for rd in rrset]


def docker_time(stamp: str) -> float:
    """Docker's RFC 3339 timestamp (nanoseconds, trailing zeros trimmed) as a Unix time."""
    whole, _, frac = stamp.rstrip("Z").partition(".")
    frac = frac.split("+")[0].split("-")[0]
    t = datetime.datetime.fromisoformat(whole).replace(tzinfo=datetime.timezone.utc)
    return t.timestamp() + float("0." + (frac or "0"))


def fmt(x: float | None) -> str:
    return "never" if x is None else f"{x:.2f} s"


def summary(xs: list[float]) -> str:
    if not xs:
        return "-"
    return f"{statistics.median(xs):.2f} s ({min(xs):.2f}-{max(xs):.2f}, n={len(xs)})"


class Bed(benchbed.Bed):
    """The catalog benchmark's testbed (prefix shcat, shared with rollout_bench)."""

    def __init__(self, src: Path, workdir: Path, prefix: str = PREFIX, subnet: str = SUBNET) -> None:
        super().__init__(src, workdir, prefix, subnet)

    def ns_path(self, i: int) -> str:
        return f"/run/netns/{self.nodes[i]['ns']}"

    def pid_of(self, i: int, key: str) -> int | None:
        return next(n[key] for n in self.status()["nodes"] if n["index"] == i)

    def kill(self, i: int, pid: int | None, died: dict[str, float]) -> tuple[float, float, float]:
        """Power-cut node i; (monotonic start of the command, moment pid died,
        command's end).  died["t"] is set the moment pid is seen gone."""
        stop = threading.Event()

        def watch() -> None:
            while not stop.is_set():
                if pid is None or not Path(f"/proc/{pid}").exists() or proc_state(pid) in ("Z", "X", ""):
                    died["t"] = time.monotonic()
                    return
                time.sleep(0.005)

        th = threading.Thread(target=watch, daemon=True)
        th.start()
        t0 = time.monotonic()
        self.run("kill", str(i))
        t_end = time.monotonic()
        th.join(timeout=5)
        stop.set()
        died.setdefault("t", t_end)
        return t0, died["t"], t_end


def proc_state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return ""


# ---- shoal -----------------------------------------------------------------------------------------


def instances(body) -> list[dict]:
    return body["instances"] if isinstance(body, dict) else list(body or [])


def shoal_job(replicas: int, strategy: str = "spread") -> dict:
    return {"name": JOB, "image": "shoal-demo:latest", "command": ["sh", "-c", HTTPD], "cpu": 0.05,
            "memory": "16MiB", "replicas": replicas, "strategy": strategy, "ports": {"http": {"to": 8080}},
            "health": {"command": ["test", "-e", "/www/index.html"], "interval_s": 1, "retries": 1}}


def stop_shoal_job(bed: Bed) -> None:
    try:
        bed.api(1, "DELETE", f"/v1/jobs/{JOB}")
    except urllib.error.HTTPError:
        pass
    wait(lambda: not any(bed.docker[i].containers(all=True, filters={"label": f"shoal.job={JOB}"})
                         for i in live_nodes(bed)), 120, f"every container of {JOB} removed", every=0.5)


def live_nodes(bed: Bed) -> list[int]:
    return [n["index"] for n in bed.status()["nodes"] if n["dockerd_pid"]]


class Watchers:
    """One blocking-query watcher per agent on GET /v1/services/JOB: the wall
    time each (slot, node) first appeared in that agent's answer."""

    def __init__(self, bed: Bed, nodes: list[int]) -> None:
        self.bed = bed
        self.first_seen: dict[int, dict[tuple[int, str], float]] = {i: {} for i in nodes}
        self.stop = threading.Event()
        self.threads = [threading.Thread(target=self.loop, args=(i,), daemon=True) for i in nodes]
        for t in self.threads:
            t.start()

    def loop(self, i: int) -> None:
        index = 0
        while not self.stop.is_set():
            headers: dict = {}
            try:
                body = self.bed.api(i, "GET", f"/v1/services/{JOB}?index={index}&wait=2s", timeout=10,
                                    headers_out=headers)
            except urllib.error.HTTPError as e:
                if e.code != 404:
                    time.sleep(0.2)
                body = []
            except OSError:
                time.sleep(0.2)
                continue
            now = time.time()
            for inst in instances(body):
                self.first_seen[i].setdefault((int(inst["slot"]), inst["node"]), now)
            index = int(headers.get("X-Shoal-Index", 0) or 0)
            if not index:
                time.sleep(POLL_S)

    def close(self) -> None:
        self.stop.set()
        for t in self.threads:
            t.join(timeout=5)


def first_pass(bed: Bed) -> dict[tuple[int, str], float]:
    """(slot, node) -> wall time its container's first passing health probe ended."""
    out = {}
    for i in live_nodes(bed):
        for c in bed.docker[i].containers(filters={"label": f"shoal.job={JOB}"}):
            info = bed.docker[i].inspect_container(c["Id"])
            probes = [p for p in (info["State"].get("Health") or {}).get("Log") or [] if p["ExitCode"] == 0]
            if probes:
                slot = int(c["Labels"]["shoal.slot"].rsplit("/", 1)[1])
                out[(slot, bed.nodes[i]["name"])] = min(docker_time(p["End"]) for p in probes)
    return out


def bench_listing(bed: Bed, replicas: int, trials: int, results: dict) -> None:
    for t in range(trials):
        la = load1()
        watchers = Watchers(bed, list(bed.nodes))
        try:
            bed.api(1, "POST", "/v1/jobs", shoal_job(replicas))
            wait(lambda: all(len(seen) >= replicas for seen in watchers.first_seen.values()), 120,
                 f"{replicas} instances listed by every agent", every=0.2)
            healthy = first_pass(bed)
        finally:
            watchers.close()
        lags = []
        for key, t_pass in healthy.items():
            seen = [watchers.first_seen[i].get(key) for i in bed.nodes]
            if all(seen):
                lags.append(max(seen) - t_pass)
        log(f"listing trial {t + 1}: healthy -> listed on the last of {N} agents: {summary(lags)}, load {la}")
        results["listing"].append({"trial": t, "load1": la, "lags_s": [round(x, 3) for x in lags]})
        stop_shoal_job(bed)


def shoal_dns_view(bed: Bed, i: int, dead_addr: str) -> tuple[bool, int] | None:
    """(answers with the dead node, number of SRV records) from agent i's DNS."""
    a = dns_records(bed.ns_path(i), "127.0.0.1", DNS_PORT, f"{JOB}.service.{ZONE}", "A")
    srv = dns_records(bed.ns_path(i), "127.0.0.1", DNS_PORT, f"_http._tcp.{JOB}.service.{ZONE}", "SRV")
    if a is None or srv is None:
        return None
    return dead_addr in a, len(srv)


def cut_and_watch(bed: Bed, victim: int, pid: int | None, view, survivors: list[int], replicas: int,
                  timeout: float) -> dict:
    """Power-cut `victim` (the kill command runs in a thread, so watching
    starts at once, not when the command returns) and poll view(i) ->
    (stale, count) on every survivor until all are healed: per survivor, the
    seconds after pid died when its answers first had nothing stale, and when
    they first had all replicas and nothing stale."""
    died: dict[str, float] = {}
    cut: dict[str, tuple[float, float, float]] = {}
    killer = threading.Thread(target=lambda: cut.update(times=bed.kill(victim, pid, died)), daemon=True)
    killer.start()
    gone: dict[int, float] = {}
    healed: dict[int, float] = {}
    deadline = time.monotonic() + timeout
    while len(healed) < len(survivors) and time.monotonic() < deadline:
        for i in survivors:
            if i in healed:
                continue
            v = view(i)
            if v is None or "t" not in died:
                continue
            stale, count = v
            now = time.monotonic() - died["t"]
            if not stale:
                gone.setdefault(i, now)
                if count >= replicas:
                    healed[i] = now
        time.sleep(POLL_S)
    killer.join(timeout=300)
    if "times" not in cut:
        raise RuntimeError(f"scripts/testbed kill {victim} did not finish")
    t0, t_death, t_end = cut["times"]
    return {"stale_gone_s": max(gone.values()) if len(gone) == len(survivors) else None,
            "healed_s": max(healed.values()) if len(healed) == len(survivors) else None,
            "per_node_gone_s": {str(k): round(v, 3) for k, v in sorted(gone.items())},
            "kill_cmd_s": round(t_end - t0, 3), "death_after_start_s": round(t_death - t0, 3)}


def shoal_api_view(bed: Bed, i: int, dead_addr: str) -> tuple[bool, int] | None:
    """(lists an instance on the dead node, number of instances) from agent i's catalog."""
    try:
        got = instances(bed.api(i, "GET", f"/v1/services/{JOB}", timeout=2))
    except (OSError, ValueError):
        return None
    return any(x["address"] == dead_addr for x in got), len(got)


def bench_shoal_kills(bed: Bed, replicas: int, kills: int, via: str, results: dict) -> None:
    view = shoal_dns_view if via == "dns" else shoal_api_view
    bed.api(1, "POST", "/v1/jobs", shoal_job(replicas))
    try:
        for k in range(kills):
            wait(lambda: all((v := view(bed, i, "-")) and v[1] == replicas for i in bed.nodes), 120,
                 f"{replicas} instances in every agent's answers", every=0.3)
            placed = instances(bed.api(1, "GET", f"/v1/services/{JOB}"))
            per = collections.Counter(p["node"] for p in placed if p["node"] != bed.nodes[1]["name"])
            victim_name, lost = per.most_common(1)[0]
            victim = next(i for i, n in bed.nodes.items() if n["name"] == victim_name)
            survivors = [i for i in bed.nodes if i != victim]
            la = load1()
            row = cut_and_watch(bed, victim, bed.pid_of(victim, "agent_pid"),
                                lambda i: view(bed, i, bed.nodes[victim]["addr"]), survivors, replicas, 120)
            row.update(via=via, kill=k, victim=victim_name, lost=lost, load1=la)
            log(f"shoal kill {k + 1}: {victim_name} ({lost} instances): stale gone {fmt(row['stale_gone_s'])}, "
                f"healed {fmt(row['healed_s'])} after the agent died; load {la}")
            results["shoal_kills"].append(row)
            bed.run("start", str(victim))
    finally:
        stop_shoal_job(bed)


# ---- Docker Swarm ------------------------------------------------------------------------------------


def swarm_up(bed: Bed, replicas: int) -> dict[str, int]:
    """Manager on node 1, workers 2..5; an overlay network, the service, a probe
    per node.  Returns swarm node ID -> testbed index."""
    ids = swarm.init(bed)
    d1 = bed.docker[1]
    d1.create_network("benchnet", driver="overlay", attachable=True)
    import docker.types

    spec = docker.types.TaskTemplate(
        container_spec=docker.types.ContainerSpec("shoal-demo:latest", command=["sh", "-c", HTTPD],
                                                  env=["SHOAL_SLOT=swarm", "SHOAL_NODE=swarm"]),
        networks=[docker.types.NetworkAttachmentConfig("benchnet")],
        resources=docker.types.Resources(cpu_limit=50_000_000, mem_limit=16 << 20))
    d1.create_service(spec, name=JOB, mode=docker.types.ServiceMode("replicated", replicas=replicas))
    for i in bed.nodes:
        start_probe(bed, i)
    return ids


def start_probe(bed: Bed, i: int) -> None:
    api = bed.docker[i]
    if not api.containers(all=True, filters={"name": "probe"}):
        hc = api.create_host_config(network_mode="benchnet")
        api.create_container("shoal-demo:latest", command=["sleep", "86400"], name="probe", host_config=hc)
    api.start("probe")


def probe_ns(bed: Bed, i: int) -> str:
    return f"/proc/{bed.docker[i].inspect_container('probe')['State']['Pid']}/ns/net"


def swarm_tasks(bed: Bed) -> dict[str, str]:
    """Running task address on benchnet -> swarm node ID."""
    out = {}
    for t in bed.docker[1].tasks(filters={"service": JOB, "desired-state": "running"}):
        if t["Status"]["State"] != "running":
            continue
        for att in t.get("NetworksAttachments") or []:
            if att["Network"]["Spec"]["Name"] == "benchnet":
                for a in att.get("Addresses") or []:
                    out[a.split("/")[0]] = t["NodeID"]
    return out


def swarm_dns(bed: Bed, ns_path: str) -> list[str] | None:
    return dns_records(ns_path, "127.0.0.11", 53, f"tasks.{JOB}", "A")


def bench_swarm_kills(bed: Bed, replicas: int, kills: int, results: dict) -> None:
    ids = swarm_up(bed, replicas)
    for k in range(kills):
        nss = {i: probe_ns(bed, i) for i in bed.nodes}
        wait(lambda: len(swarm_tasks(bed)) == replicas
             and all(len(swarm_dns(bed, nss[i]) or []) == replicas for i in bed.nodes), 180,
             f"{replicas} tasks running and in every probe's tasks.{JOB}", every=0.5)
        tasks = swarm_tasks(bed)
        per = collections.Counter(ids[n] for n in tasks.values() if ids[n] != 1)
        victim, lost = per.most_common(1)[0]
        dead = {a for a, n in tasks.items() if ids[n] == victim}
        survivors = [i for i in bed.nodes if i != victim]
        la = load1()

        def view(i: int):
            got = swarm_dns(bed, nss[i])
            return None if got is None else (bool(dead & set(got)), len(set(got) - dead))

        row = cut_and_watch(bed, victim, bed.pid_of(victim, "dockerd_pid"), view, survivors, replicas, 180)
        row.update(kill=k, victim=bed.nodes[victim]["name"], lost=lost, load1=la)
        log(f"swarm kill {k + 1}: {row['victim']} ({lost} tasks): stale gone {fmt(row['stale_gone_s'])}, "
            f"healed {fmt(row['healed_s'])} after its dockerd died; load {la}")
        results["swarm_kills"].append(row)
        bed.run("start", str(victim))      # dockerd comes back with its swarm state and rejoins
        wait(lambda: swarm.ready_nodes(bed) == N, 120, "the node back in the swarm", every=0.5)
        start_probe(bed, victim)


# ---- main ------------------------------------------------------------------------------------------


def report(results: dict) -> None:
    def col(rows, key):
        return [r[key] for r in rows if r.get(key) is not None]

    lags = [x for r in results["listing"] for x in r["lags_s"]]
    print("\n| measurement | shoal | Docker Swarm |\n| --- | --- | --- |")
    print(f"| healthy → listed on the last of {N} agents (per replica) | {summary(lags)} | |")
    sk, wk = results["shoal_kills"], results["swarm_kills"]
    print(f"| power cut → no survivor answers with the dead node's instances | {summary(col(sk, 'stale_gone_s'))} "
          f"| {summary(col(wk, 'stale_gone_s'))} |")
    print(f"| power cut → every survivor answers with all replicas again | {summary(col(sk, 'healed_s'))} "
          f"| {summary(col(wk, 'healed_s'))} |")
    loads = [r["load1"] for r in results["listing"] + sk + wk]
    if loads:
        print(f"\nload (1 min) {min(loads):.1f}-{max(loads):.1f}; {results.get('src')}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--replicas", type=int, default=6)
    ap.add_argument("--trials", type=int, default=3, help="(a) listing runs")
    ap.add_argument("--kills", type=int, default=3, help="power cuts, each side")
    ap.add_argument("--profile", default="lan", help="the agents' gossip preset")
    ap.add_argument("--via", choices=["dns", "api"], default="dns",
                    help="(b): ask each agent's DNS (default) or its GET /v1/services/NAME")
    ap.add_argument("--no-swarm", action="store_true")
    ap.add_argument("--no-shoal", action="store_true")
    ap.add_argument("--src", default="HEAD", help="git revision to run (exported), or 'worktree'")
    ap.add_argument("--json", help="write every raw figure here")
    args = ap.parse_args()
    if os.geteuid() != 0:
        print("catalog_bench: needs root (scripts/testbed)", file=sys.stderr)
        return 2

    results: dict = {"started": time.strftime("%Y-%m-%d %H:%M:%S"), "replicas": args.replicas,
                     "profile": args.profile, "listing": [], "shoal_kills": [], "swarm_kills": []}
    with benchbed.bench_run("catbench", results, args.src, args.json) as run:
        bed = run.track(Bed(run.src, run.workdir))
        if not args.no_shoal:
            log(f"testbed up: {N} nodes with agents, profile {args.profile}")
            bed.up("--profile", args.profile)
            bench_listing(bed, args.replicas, args.trials, results)
            bench_shoal_kills(bed, args.replicas, args.kills, args.via, results)
            bed.down()
        if not args.no_swarm:
            log(f"testbed up: {N} nodes, dockerds only, for Docker Swarm")
            bed.up("--no-agents")
            bench_swarm_kills(bed, args.replicas, args.kills, results)
            bed.down()
    report(results)
    return run.rc


if __name__ == "__main__":
    sys.exit(main())
