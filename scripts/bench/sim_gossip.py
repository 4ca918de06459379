#!/usr/bin/env python3
"""Benchmark the gossip cores in the deterministic simulator.

    python scripts/bench/sim_gossip.py [--nodes 1000] [--seeds 3] [--duration 60] [--no-compression]

For each seed: start N nodes (all joining node-0 at t=0, lan preset unless
--profile), simulate `duration` virtual seconds and report the CPU time
(time.process_time) and wall time that took; then one node calls
`broadcast()` and the script reports the virtual time until every other node
has emitted the UserBroadcast (and the median node).  Prints per-seed lines
and medians over the seeds.  CPU time is the figure to compare: this machine
is shared, and wall time moves with the load.

--formed first forms the cluster (the join storm: until every node holds
every other alive and no node has gossip left to send, at most
--form-timeout virtual s), reports what that took, and only then times
`duration` virtual seconds: the cost of simulating a formed cluster, which
is what a run that studies placement, failures or partitions at that size
pays once the cluster exists.  Peak RSS is printed too (the simulator
holds every node's member table: N^2 member records).

--start-formed starts every node already holding every other alive
(`World.start_formed`: the state a join storm leaves, with no storm), then
times `duration` virtual seconds; the CPU of that start (a member record
per pair of nodes) is reported beside it, and the total of both.  This is
the start that reaches 10,000 nodes: a storm of 10,000 joining is O(N^2
log N) alive messages, hours of CPU.  No view tracker runs (N^2 entries);
every node holds all N from the start.

--no-compression runs the cores with `enable_compression=False` (a
GossipConfig knob; memberlist has the same switch).  With compression on,
LZW in pure Python dominates a large run; the 1,000-node simulator tests run
without it.  The header line says which.

How this works: it is a thin loop over node.sim.World; the time is the
cost of the real SWIM cores plus the simulator's event loop.  --profile-out
FILE writes a cProfile of the first seed's run for `python -m pstats`
(profiling roughly doubles the time).
"""

from __future__ import annotations

import argparse
import cProfile
import resource
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from gossip.config import preset  # noqa: E402
from gossip.events import UserBroadcast  # noqa: E402
from node.sim import World, checkers  # noqa: E402


def run_seed(seed: int, args: argparse.Namespace, profile: cProfile.Profile | None) -> dict:
    config = preset(args.profile)
    if args.no_compression:
        config = config.replace(enable_compression=False)
    w = World(seed, args.nodes, config, keep_trace=False)
    converged_at: list[float] = []

    form: dict = {}
    if args.start_formed:
        c_form = time.process_time()
        w.start_formed()
        form = {"start_cpu_s": time.process_time() - c_form}
        converged_at.append(w.now)
    else:
        tracker = checkers.ViewTracker(w)
    if args.formed:
        # The join storm first, untimed by the figure below: every node
        # learns the other N-1 and gossips each of them retransmit_limit(N)
        # times (memberlist's dissemination), which is most of a 60 s run
        # that starts from nothing.
        c_form = time.process_time()
        w.bootstrap(stagger_s=args.stagger)
        while w.now < args.form_timeout and not (
                tracker.all_alive() and all(nd.core.pending_broadcasts() == 0 for nd in w.running())):
            w.run_until(w.now + 1.0)
        form = {"form_cpu_s": time.process_time() - c_form, "formed_at": w.now,
                "form_datagrams": w.stats["datagrams_sent"]}
        converged_at.append(w.now)
    start = w.now
    end = start + args.duration
    d0 = w.stats["datagrams_sent"]
    e0 = w.stats["events"]
    t0 = time.perf_counter()
    c0 = time.process_time()
    if profile:
        profile.enable()
    if not args.formed and not args.start_formed:
        w.bootstrap(stagger_s=args.stagger)
    step = max(0.1, args.duration / 100)
    next_report = time.perf_counter() + 10
    while w.now < end:
        w.run_until(min(end, w.now + step))
        if not converged_at and tracker.all_alive():
            converged_at.append(w.now)
        if args.verbose and time.perf_counter() >= next_report:
            next_report = time.perf_counter() + 10
            print(f"  seed={seed} t={w.now:.1f}s wall={time.perf_counter() - t0:.1f}s "
                  f"datagrams={w.stats['datagrams_sent']}", file=sys.stderr, flush=True)
    wall = time.perf_counter() - t0
    cpu = time.process_time() - c0

    # Dissemination latency of one user broadcast.
    payload = f"bench-{seed}".encode()
    seen = checkers.FirstSeen(w, lambda ev: ev.__class__ is UserBroadcast and ev.data == payload)
    origin = args.nodes // 2
    queue = [nd.core.pending_broadcasts() for nd in w.running()] if hasattr(w.core(0), "pending_broadcasts") else [0]
    t_b = w.now
    w.broadcast(origin, payload)
    want = len(w.running()) - 1
    w.run_until_converged(lambda w: seen.count() >= want, args.broadcast_timeout, check_every=0.05)
    if profile:
        profile.disable()
    lat = sorted(t - t_b for t in seen.t.values())
    return {
        "seed": seed,
        "wall_s": wall,
        "cpu_s": cpu,
        "converged_at": converged_at[0] if converged_at else None,
        "events": w.stats["events"] - e0,
        "datagrams": w.stats["datagrams_sent"] - d0,
        "rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        **form,
        "reached": len(lat),
        "want": want,
        "all_s": lat[-1] if len(lat) >= want else None,
        "median_s": lat[len(lat) // 2] if lat else None,
        "queue_avg": sum(queue) / len(queue),
    }


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--nodes", type=int, default=1000)
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--first-seed", type=int, default=1)
    p.add_argument("--duration", type=float, default=60.0, help="virtual seconds to simulate")
    p.add_argument("--profile", default="lan", choices=["lan", "wan", "local"])
    p.add_argument("--stagger", type=float, default=0.0, help="seconds between node starts")
    p.add_argument("--no-compression", action="store_true", help="disable LZW (to see its cost)")
    p.add_argument("--broadcast-timeout", type=float, default=60.0)
    p.add_argument("--formed", action="store_true",
                   help="form the cluster first (untimed), then time `duration` virtual s of it")
    p.add_argument("--start-formed", action="store_true",
                   help="start every node holding every other (World.start_formed), then time `duration`")
    p.add_argument("--form-timeout", type=float, default=300.0, help="virtual s allowed to form (--formed)")
    p.add_argument("--profile-out", help="write a cProfile of the first seed here")
    p.add_argument("-v", "--verbose", action="store_true", help="progress every 10 s of wall time")
    args = p.parse_args()
    if args.formed and args.start_formed:
        p.error("--formed (a join storm, untimed) and --start-formed (no storm) are two ways to start: pick one")

    print(f"sim_gossip: {args.nodes} nodes, {args.duration:g} virtual s, profile={args.profile}, "
          f"compression {'off (enable_compression=False)' if args.no_compression else 'on (LZW)'}, seeds "
          f"{args.first_seed}..{args.first_seed + args.seeds - 1}"
          f"{', formed first (--formed)' if args.formed else ''}"
          f"{', started formed (--start-formed)' if args.start_formed else ''}", flush=True)
    results = []
    for k in range(args.seeds):
        prof = cProfile.Profile() if (args.profile_out and k == 0) else None
        r = run_seed(args.first_seed + k, args, prof)
        if prof:
            prof.dump_stats(args.profile_out)
        results.append(r)
        conv = "never" if r["converged_at"] is None else f"{r['converged_at']:.1f}s"
        reach = (f"all {r['want']} in {r['all_s']:.2f}s" if r["all_s"] is not None
                 else f"only {r['reached']}/{r['want']} within {args.broadcast_timeout:g}s")
        med = "-" if r["median_s"] is None else f"{r['median_s']:.2f}s"
        print(f"seed {r['seed']}: CPU {r['cpu_s']:.1f}s, wall {r['wall_s']:.1f}s for {args.duration:g} virtual s "
              f"({r['events']} events, {r['datagrams']} datagrams), all-alive at {conv}; "
              f"broadcast reached {reach} (median node {med}; "
              f"avg queued broadcasts when sent {r['queue_avg']:.0f}); peak RSS {r['rss_mib']:.0f} MiB", flush=True)
        if args.start_formed:
            print(f"  started formed: CPU {r['start_cpu_s']:.1f}s for {args.nodes} x {args.nodes - 1} member records; "
                  f"with the {args.duration:g} virtual s, {r['start_cpu_s'] + r['cpu_s']:.1f}s in all", flush=True)
        if args.formed:
            print(f"  forming it first: CPU {r['form_cpu_s']:.1f}s, formed (all alive, no gossip queued) at "
                  f"{r['formed_at']:.1f} virtual s, {r['form_datagrams']} datagrams", flush=True)
    walls = [r["wall_s"] for r in results]
    cpus = [r["cpu_s"] for r in results]
    alls = [r["all_s"] for r in results if r["all_s"] is not None]
    print(f"median CPU time: {statistics.median(cpus):.1f}s (wall {statistics.median(walls):.1f}s) "
          f"for {args.nodes} nodes x {args.duration:g} virtual s")
    if alls:
        print(f"median broadcast time to all {args.nodes - 1} others: {statistics.median(alls):.2f} virtual s"
              f" ({len(alls)}/{len(results)} seeds reached everyone)")
    else:
        print("broadcast reached everyone in no seed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
