#!/usr/bin/env python3
"""Placement benchmark in the deterministic simulator (issue 4).

Prints, for N simulated agents (NodeCore: gossip + job store + auctions):
  * placement latency per slot from submission to its replica starting
    (p50 / p99, virtual seconds), CPU seconds of the simulation,
  * placements per virtual second and per CPU second,
  * datagrams and bytes per placement,
  * after killing 10 % and then 50 % of the nodes at once: virtual time until
    every slot that still fits runs again, and how many slots were seen
    running twice meanwhile (checked every 0.5 virtual s).

Usage: python scripts/bench/placement_sim.py [--nodes 100] [--replicas 1000] [--seed 1]
       [--kills 0.1 0.5] [--trace] [--start-formed]
--kills with no fraction measures placement alone; --trace prints each
slot's phases (job reaching its coordinator, rounds, award, start), the
decline reasons and the gossip broadcast queues' depth, and after each kill
where the heal's time went (the victims' suspicion reaching the survivors
and the slots' coordinators, the grace, the new award).  --start-formed
starts the agents as a formed cluster (ClusterSim.start_formed: members and
status records handed in) instead of a join storm, then runs 15 virtual s
as the storm's start does.
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", ".."))

from auction.resources import Resources  # noqa: E402
from auction.spec import validate  # noqa: E402
from gossip.config import LAN  # noqa: E402
from node.core.node_core import ClusterConfig  # noqa: E402
from auction.auctioneer import RoundClosed  # noqa: E402
from auction.claims import slot_key  # noqa: E402
from auction.placement import PlacementConfig  # noqa: E402
from auction.placement_outputs import AwardAccepted, StartReplica
from node.core.outputs import JobChanged  # noqa: E402
from node.sim.cluster import ClusterSim  # noqa: E402

GiB = 1 << 30


def pct(values: list[float], p: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(p / 100 * len(values)))]


class SlotTrace:
    """Per-slot phases (--trace): when the job reached the node whose round
    placed the slot, when that round closed, how many rounds the slot took,
    when the winner accepted and started it."""

    def __init__(self, sim: ClusterSim) -> None:
        self.sim = sim
        self.job_at: dict[tuple[int, str], float] = {}      # (node, job) -> first heard
        self.rounds: dict[str, int] = {}                    # slot -> rounds it was in
        self.coords: dict[str, set[int]] = {}               # slot -> nodes that auctioned it
        self.declines: dict[str, int] = {}                  # slot -> declines in its rounds
        self.first_round: dict[str, float] = {}
        self.awarded: dict[str, tuple[float, int]] = {}     # slot -> (round closed, coordinator)
        self.accepted: dict[str, float] = {}
        self.queue_samples: list[tuple[float, float, int]] = []  # (t, mean, max)
        self.decline_reasons: dict[str, int] = {}

    def on_output(self, t: float, i: int, ev: object) -> None:
        if isinstance(ev, JobChanged):
            self.job_at.setdefault((i, ev.entry.name), t)
        elif isinstance(ev, RoundClosed):
            for index in (*ev.awarded, *ev.unplaced):
                key = slot_key(ev.job, index)
                self.rounds[key] = self.rounds.get(key, 0) + 1
                self.coords.setdefault(key, set()).add(i)
                self.first_round.setdefault(key, t)
                self.declines[key] = self.declines.get(key, 0) + len(ev.declines)
            for reason in ev.declines.values():
                reason = reason.split(";")[0].split(" free")[0]
                self.decline_reasons[reason] = self.decline_reasons.get(reason, 0) + 1
            for index in ev.awarded:
                self.awarded[slot_key(ev.job, index)] = (t, i)
        elif isinstance(ev, AwardAccepted):
            self.accepted.setdefault(ev.claim.name, t)

    def sample_queues(self) -> None:
        w = self.sim.world
        qs = [nd.core.swim.pending_broadcasts() for nd in w.running()]
        if qs:
            self.queue_samples.append((w.now, sum(qs) / len(qs), max(qs)))

    def report(self, t0: float, started_at: dict[str, float]) -> None:
        def show(label: str, vals: list[float]) -> None:
            if vals:
                print(f"    {label:<38} p50 {pct(vals, 50):6.3f}  p90 {pct(vals, 90):6.3f}  "
                      f"p99 {pct(vals, 99):6.3f}  max {max(vals):6.3f}")
        known, first, closed_, acc, start, rounds = [], [], [], [], [], []
        for key, st in started_at.items():
            job = key.split("/")[0]
            if key in self.awarded:
                tc, coord = self.awarded[key]
                tk = self.job_at.get((coord, job), t0)
                known.append(tk - t0)
                first.append(self.first_round.get(key, tc) - tk)
                closed_.append(tc - self.first_round.get(key, tc))
                if key in self.accepted:
                    acc.append(self.accepted[key] - tc)
                    start.append(st - self.accepted[key])
            rounds.append(float(self.rounds.get(key, 0)))
        print("  per-slot phases (virtual s):")
        show("submit -> job at its coordinator", known)
        show("job at coordinator -> first round closed", first)
        show("first round closed -> awarding round", closed_)
        show("awarding round closed -> accepted", acc)
        show("accepted -> started", start)
        show("rounds per slot", rounds)
        multi = sum(1 for c in self.coords.values() if len(c) > 1)
        print(f"    slots auctioned by more than one node: {multi}; declines per slot mean "
              f"{sum(self.declines.values()) / max(1, len(self.declines)):.1f}")
        top = sorted(self.decline_reasons.items(), key=lambda kv: -kv[1])[:4]
        print("    declines: " + "; ".join(f"{n} {r}" for r, n in top))
        jobs = {j for _, j in self.job_at}
        everywhere = [max(t for (_, j2), t in self.job_at.items() if j2 == j) - t0 for j in jobs]
        show("submit -> job at every node", everywhere)
        show("latency of the slot (start)", [t - t0 for t in started_at.values()])
        if self.queue_samples:
            peak = max(self.queue_samples, key=lambda s: s[1])
            print(f"    broadcast queue: peak mean {peak[1]:.0f} (max {peak[2]}) at +{peak[0] - t0:.1f} s")


class HealTrace:
    """After a kill (--trace): when each victim was first suspected by any
    survivor, when the last survivor held it suspect or dead (sampled every
    0.5 s: a suspicion's own start, else the sample's time), and for each
    lost slot when its coordinator began suspecting the victim and when the
    slot was awarded again (virtual s from the kill)."""

    def __init__(self, sim: ClusterSim, victims: list[int], lost: dict[str, int]) -> None:
        self.sim, self.t0 = sim, sim.world.now
        self.names = {v: sim.world.nodes[v].name for v in victims}
        self.lost = lost                                    # slot -> victim
        self.known: dict[tuple[int, int], float] = {}       # (survivor, victim) -> first seen not alive
        self.awarded: dict[str, float] = {}
        self.coord_suspected: dict[str, float] = {}

    def on_output(self, t: float, i: int, ev: object) -> None:
        if not isinstance(ev, RoundClosed):
            return
        for index in ev.awarded:
            key = slot_key(ev.job, index)
            if key in self.lost and key not in self.awarded:
                self.awarded[key] = t - self.t0
                s = self.sim.world.core(i).swim.suspicions().get(self.names[self.lost[key]])
                if s is not None:
                    self.coord_suspected[key] = s.started_at - self.t0

    def sample(self) -> None:
        w = self.sim.world
        for nd in w.running():
            suspicions = nd.core.swim.suspicions()
            for v, name in self.names.items():
                if (nd.idx, v) not in self.known:
                    if name in suspicions:  # exact: when its suspicion began
                        self.known[(nd.idx, v)] = suspicions[name].started_at - self.t0
                    else:  # dead already (a member it never knew is no news of the failure)
                        info = nd.core.swim.member(name)
                        if info is not None and info.state.value != "alive":
                            self.known[(nd.idx, v)] = w.now - self.t0

    def report(self) -> None:
        def show(label: str, vals: list[float]) -> None:
            if vals:
                print(f"    {label:<44} p50 {pct(vals, 50):6.2f}  p90 {pct(vals, 90):6.2f}  max {max(vals):6.2f}")
        first = {v: min(t for (_, x), t in self.known.items() if x == v) for v in self.names
                 if any(x == v for _, x in self.known)}
        last = {v: max(t for (_, x), t in self.known.items() if x == v) for v in first}
        print("  heal phases (virtual s from the kill):")
        show("victim first suspected by a survivor", list(first.values()))
        show("first -> last survivor holding it not alive", [last[v] - first[v] for v in first])
        show("slot's coordinator suspects its victim", list(self.coord_suspected.values()))
        show("coordinator's suspicion -> slot awarded",
             [self.awarded[k] - self.coord_suspected[k] for k in self.coord_suspected])
        show("slot awarded again", list(self.awarded.values()))


def run(n: int, replicas: int, seed: int, *, kills: tuple[float, ...] = (0.10, 0.50), trace: bool = False,
        start_formed: bool = False) -> None:
    rng = random.Random(seed)
    caps = [Resources(rng.choice([4000, 8000, 16000]), rng.choice([8, 16, 32]) * GiB, 0) for _ in range(n)]
    sim = ClusterSim(seed, n, LAN.replace(enable_compression=False), capacities=caps,
                     cluster_config=ClusterConfig(store_sync_interval_s=2.0),
                     placement_config=PlacementConfig(placement_interval_s=1.0, auction_ttl_s=0.2))
    w = sim.world
    cpu0 = time.process_time()
    if start_formed:
        sim.start_formed()
    else:
        w.bootstrap(seeds="random")
    w.run_for(15)
    boot_cpu = time.process_time() - cpu0

    started_at: dict[str, float] = {}

    def on_output(t, i, ev):
        if isinstance(ev, StartReplica) and ev.claim.name not in started_at:
            started_at[ev.claim.name] = t

    w.subscribe(on_output)
    tracer = SlotTrace(sim) if trace else None
    if tracer is not None:
        w.subscribe(tracer.on_output)
    # Size replicas so the workload takes about half the cluster's CPU: after
    # a 10 % kill everything still fits; after a 50 % kill it cannot.
    per_job = 50
    total_cpu = sum(c.cpu_millis for c in caps)
    cpu_each = max(0.05, round(total_cpu * 0.5 / replicas / 1000 / 0.05) * 0.05)
    jobs = [validate({"name": f"job-{k}", "image": "busybox", "replicas": per_job,
                      "cpu": round(cpu_each, 2), "memory": "128MiB"})
            for k in range(replicas // per_job)]
    stats0 = dict(w.stats)
    cpu0 = time.process_time()
    t0 = w.now
    for spec in jobs:
        sim.submit(rng.randrange(n), spec)

    def placed_all(_: object) -> bool:
        if tracer is not None:
            tracer.sample_queues()
        return not sim.placement_problems(jobs)
    took = w.run_until_converged(placed_all, timeout=300, check_every=0.1)
    cpu = time.process_time() - cpu0
    placed = len(started_at)
    lat = [t - t0 for t in started_at.values()]
    dgrams = w.stats["datagrams_sent"] - stats0["datagrams_sent"]
    dbytes = w.stats["datagram_bytes"] - stats0["datagram_bytes"]
    print(f"N={n} replicas={replicas} seed={seed} ({'formed start' if start_formed else 'bootstrap'} CPU "
          f"{boot_cpu:.1f} s)")
    print(f"  all placed: {'yes' if took is not None else 'NO'} in {took if took is not None else float('nan'):.2f} "
          f"virtual s; {placed} starts")
    if lat:
        print(f"  latency per slot: p50 {pct(lat, 50):.3f} s, p99 {pct(lat, 99):.3f} s (virtual)")
    print(f"  CPU {cpu:.1f} s; {placed / max(took or 1e-9, 1e-9):.0f} placements per virtual s, "
          f"{placed / max(cpu, 1e-9):.0f} per CPU s")
    print(f"  {dgrams / max(placed, 1):.1f} datagrams and {dbytes / max(placed, 1) / 1024:.1f} KiB per placement "
          f"(all gossip traffic in the window)")
    if took:
        print(f"  {dbytes / n / max(took, 1e-9) / 1024:.1f} KiB sent per node per virtual s during placement")
    if tracer is not None:
        tracer.report(t0, started_at)
    for frac in kills:
        # Victims are drawn from the nodes that run replicas (with binpack,
        # half the nodes run nothing, and killing those would measure nothing).
        live = sim.live_indices()
        busy = [i for i in live[1:] if sim.running[i]]
        idle = [i for i in live[1:] if not sim.running[i]]
        k = int(len(live) * frac)
        victims = rng.sample(busy, min(k, len(busy)))
        victims += rng.sample(idle, k - len(victims))
        lost = sum(len(sim.running[v]) for v in victims)
        heal = HealTrace(sim, victims, {slot: v for v in victims for slot in sim.running[v]}) if trace else None
        for v in victims:
            w.crash(v)
        if heal is not None:
            w.subscribe(heal.on_output)
        cpu0, killed_at = time.process_time(), w.now
        twice: dict[str, float] = {}  # slot -> when a check last saw it run twice (from the kill)

        def settled(_: object) -> bool:
            if heal is not None:
                heal.sample()
            twice.update((slot, w.now - killed_at) for slot, count in sim.replica_counts().items() if count > 1)
            return _settled(sim, jobs)
        healed = w.run_until_converged(settled, timeout=300, check_every=0.5)
        missing = len(sim.placement_problems(jobs))
        print(f"  kill {int(frac * 100)}% ({len(victims)} nodes, {lost} replicas): settled in "
              f"{healed if healed is not None else float('nan'):.2f} virtual s "
              f"(CPU {time.process_time() - cpu0:.1f} s); slots not running (no room left): {missing}; "
              f"safety violations: {len(sim.violations)}")
        print(f"  slots seen running twice at the 0.5 s checks: {len(twice)}"
              + (f", the last at +{max(twice.values()):.1f} s" if twice else ""))
        if heal is not None:
            w.listeners.remove(heal.on_output)
            heal.report()


def _settled(sim: ClusterSim, jobs) -> bool:
    """Every slot runs exactly once, or every slot still missing fits on no
    survivor by the survivors' own ledgers (the cluster is simply full)."""
    problems = sim.placement_problems(jobs)
    if not problems:
        return True
    if any("runs 0 times" not in p for p in problems):
        return False  # a duplicate or a stray: not settled
    need = jobs[0].demand()  # every job in this workload asks for the same
    for i in sim.live_indices():
        ledger = sim.world.core(i).placement.ledger
        if need.fits_in(ledger.free(sim.world.nodes[i].local(sim.world.now))):
            return False
    return True


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--nodes", type=int, nargs="+", default=[100])
    ap.add_argument("--replicas", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--kills", type=float, nargs="*", default=[0.10, 0.50],
                    help="fractions of the nodes killed in turn after placement (none: placement only)")
    ap.add_argument("--trace", action="store_true", help="per-slot phases and gossip queue depth")
    ap.add_argument("--start-formed", action="store_true",
                    help="start the agents formed (ClusterSim.start_formed), not by a join storm")
    args = ap.parse_args()
    for n in args.nodes:
        run(n, args.replicas, args.seed, kills=tuple(args.kills), trace=args.trace, start_formed=args.start_formed)


if __name__ == "__main__":
    main()
