"""One seed of `shoal chaos sim`: a cluster, a job mix, a fault campaign
with job writes during it, the heal, convergence, and the verdicts.

How this works: `run_seed(seed, options)` is deterministic in (seed,
options).  From `random.Random(seed)` it draws node capacities
(node.sim.swarm), the fault plan (node.chaos.faultplan) over the
`duration_s` window and a workload of job writes during that window
(scale down and back, an update that changes only the environment, a
stop and a later resubmit), each sent to a random running agent.  A
`ClusterSim` (node.sim.cluster) runs it with a container engine that
reports running slots and can stall (node.chaos.simengine), so rolling
updates wait for the new replica to run and rebalancing moves replicas back
after a failure; a `Watch` (node.chaos.simwatch) observes it on a 0.25 s
virtual sampling clock.  At the window's end every fault is undone (network
healed, paused resumed, stalled engines resumed, killed restarted, clocks
stop drifting) and the run waits up to `converge_timeout_s` for the
cluster to converge, then for a stable window (`stable_s`, and at least the
rebalancing settle delay and a move's time, so a move that the heal calls
for is seen through): a rebalancing move that begins in that window is no
violation (it is start-first: two copies for a moment, by design), the
wait for convergence starts again; anything else not converged at the
window's end is.

The default mix (`default_jobs`) puts rack labels a/b/c and disk=ssd on
every third node and runs a spread service over racks, a binpack service,
a one-per-node job, a job constrained to ssd nodes and a global job, sized to stay under
node.sim.swarm's comfortable fit after the heal.  With `job_dicts` given
(validated spec dicts, from --jobs files) those replace the mix; if they
ask for more than a comfortable fit, exactly-once is reported as skipped.

The result is a plain dict (it crosses process boundaries): violations per
invariant, per-fault figures, doubled-copy figures, the plan.
"""

from __future__ import annotations

import dataclasses
import random
import traceback
from dataclasses import dataclass
from typing import Any

from auction.spec import JobSpec, validate
from gossip.config import LAN, LOCAL
from node.chaos import invariants as inv
from node.chaos.faultplan import KINDS, Fault, draw_plan
from node.chaos.simengine import ChaosEngine
from node.chaos.simwatch import Watch
from node.sim.cluster import ClusterSim
from node.sim.network import NetworkConfig
from node.sim.swarm import CLUSTER, COMFORTABLE_FIT, FAST, draw_capacities, fit_ratio, job
from node.sim.world import CRASHED, PAUSED

SAMPLE_S = 0.25
WARMUP_S = 3.0
BASE_NET = NetworkConfig()
# The swarm's quick placement, with a rebalancing settle delay to match: a
# job moves back within seconds of a heal, inside the campaign's stable window.
PLACEMENT = dataclasses.replace(FAST, rebalance_settle_s=3.0)


@dataclass(frozen=True)
class SimOptions:
    nodes: int = 8
    faults: tuple[str, ...] = KINDS
    job_dicts: tuple[dict[str, Any], ...] = ()  # replaces the default mix when given
    duration_s: float = 30.0
    converge_timeout_s: float = 120.0
    stable_s: float = 3.0
    mean_gap_s: float = 3.0
    # Test hook: plant a violation to prove the checkers see it ("doubled",
    # "overcommit", "lost-write"); never set by the command.
    plant: str | None = None


def labels_for(n: int) -> list[dict[str, str]]:
    return [{"rack": "abc"[i % 3], "disk": "ssd" if i % 3 == 0 else "hdd"} for i in range(n)]


def default_jobs(n: int) -> list[JobSpec]:
    return [
        job("web", n, cpu=0.2, memory="128MiB", spread="rack", strategy="spread"),
        job("batch", n, cpu=0.2, memory="256MiB", strategy="binpack"),
        job("solo", max(1, n // 2), cpu=0.1, memory="64MiB", max_per_node=1),
        job("db", 2 if n >= 6 else 1, cpu=0.25, memory="256MiB", constraints=["disk == ssd"]),
        # One on every node (auction.global_jobs): a node's own slot, nothing re-placed.
        validate({"name": "agent", "image": "busybox", "mode": "global", "cpu": 0.05, "memory": "32MiB"}),
    ]


def _config(n: int):
    # local's sub-second protocol for small clusters; lan's quarter of the
    # traffic past 20 nodes keeps a 100-node campaign affordable.
    return (LOCAL if n <= 20 else LAN).replace(enable_compression=False)


def _apply(sim: ClusterSim, engine: ChaosEngine, plan: list[Fault]) -> None:
    w, net = sim.world, sim.world.network
    for f in plan:
        if f.kind in ("kill", "restart"):
            w.at(f.start_s, w.crash, f.nodes[0])
            if f.kind == "restart":
                w.at(f.end_s, w.restart, f.nodes[0], None)
        elif f.kind == "pause":
            w.at(f.start_s, w.pause, f.nodes[0])
            w.at(f.end_s, w.resume, f.nodes[0])
        elif f.kind == "engine-stall":
            w.at(f.start_s, engine.stall, f.nodes[0])
            w.at(f.end_s, engine.unstall, f.nodes[0])
        elif f.kind == "partition":
            w.at(f.start_s, net.partition, [list(f.nodes)])
            w.at(f.end_s, net.heal)
        elif f.kind == "loss":
            w.at(f.start_s, net.set_loss, f.value)
            w.at(f.end_s, net.set_loss, BASE_NET.loss)
        elif f.kind == "delay":
            w.at(f.start_s, net.set_delay, BASE_NET.base_delay_s + f.value, BASE_NET.jitter_s + f.value / 4)
            w.at(f.end_s, net.set_delay, BASE_NET.base_delay_s, BASE_NET.jitter_s)
        elif f.kind == "clock-skew":
            j, rate, jump = f.nodes[0], f.value, f.offset_s
            w.at(f.start_s, lambda j=j, rate=rate, jump=jump: w.set_clock(j, rate=rate, offset_s=jump))
            w.at(f.end_s, lambda j=j: w.set_clock(j, rate=1.0))


def _heal_all(sim: ClusterSim, engine: ChaosEngine) -> None:
    w, net = sim.world, sim.world.network
    for i in sorted(engine.frozen):
        engine.unstall(i)
    net.set_loss(BASE_NET.loss)
    net.set_delay(BASE_NET.base_delay_s, BASE_NET.jitter_s)
    net.heal()
    for nd in w.nodes:
        if nd.status is PAUSED:
            w.resume(nd.idx)
        elif nd.status is CRASHED:
            w.restart(nd.idx, None)


class Workload:
    """Job writes during the fault window, drawn from the seed."""

    def __init__(self, sim: ClusterSim, specs: list[JobSpec], rng: random.Random) -> None:
        self.sim = sim
        self.base = {s.name: s for s in specs}
        self.latest: dict[str, JobSpec | None] = dict(self.base)  # the last write issued per job
        self.rng = rng
        self.log: list[tuple[float, str, str]] = []

    def write(self, node: int, spec: JobSpec | None, name: str, what: str) -> None:
        w = self.sim.world
        running = [nd.idx for nd in w.running()]
        if not running:
            return
        target = node if node in running else running[node % len(running)]
        if spec is None:
            self.sim.stop_job(target, name)
        else:
            self.sim.submit(target, spec)
        self.latest[name] = spec
        self.log.append((w.now, what, f"{name} via node-{target}"))

    def schedule(self, start_s: float, end_s: float, n: int, mean_gap_s: float) -> None:
        w, rng = self.sim.world, self.rng
        t = start_s
        names = sorted(self.base)
        version = 0
        while names:
            t += rng.expovariate(1.0 / (2 * mean_gap_s))
            if t >= end_s:
                break
            name = rng.choice(names)
            base = self.base[name]
            node = rng.randrange(n)
            op = rng.choice(["scale", "update", "stop"])
            version += 1
            if op == "scale" and base.is_global:
                op = "update"       # a global job has no count
            if op == "scale":
                spec = validate({**base.to_dict(), "replicas": rng.randint(1, base.replicas)})
                w.at(t, self.write, node, spec, name, f"scale to {spec.replicas}")
                w.at(min(end_s, t + rng.uniform(2, 10)), self.write, rng.randrange(n), base, name, "scale back")
            elif op == "update":
                d = base.to_dict()
                spec = validate({**d, "env": {**d.get("env", {}), "CHAOS_VERSION": str(version)}})
                w.at(t, self.write, node, spec, name, "update env")
            else:
                w.at(t, self.write, node, None, name, "stop")
                w.at(min(end_s, t + rng.uniform(2, 10)), self.write, rng.randrange(n), base, name, "resubmit")

    def recent_write(self, job: str, t: float, within_s: float) -> bool:
        return any(t - within_s < wt <= t and detail.split(" ")[0] == job for wt, _, detail in self.log)

    def is_desired(self, slot: str) -> bool:
        name, _, index = slot.rpartition("/")
        spec = self.latest.get(name)
        return spec is not None and (spec.is_global or int(index) < spec.replicas)

    def is_global(self, slot: str) -> bool:
        """A slot of a global job: its node's own, never re-placed (auction.global_jobs)."""
        spec = self.latest.get(slot.rpartition("/")[0]) or self.base.get(slot.rpartition("/")[0])
        return spec is not None and spec.is_global


def run_seed(seed: int, opts: SimOptions) -> dict[str, Any]:
    result: dict[str, Any] = {"seed": seed}
    try:
        _run(seed, opts, result)
    except Exception:  # a core that raises is an agent that crashed: a verdict, not an abort
        result.setdefault("violations", {}).setdefault(inv.NO_CRASH, []).append(traceback.format_exc(limit=8))
    result["ok"] = not any(result.get("violations", {}).values())
    return result


def _run(seed: int, opts: SimOptions, result: dict[str, Any]) -> None:
    n = opts.nodes
    rng = random.Random(seed)
    caps = draw_capacities(rng, n)
    specs = [validate(d) for d in opts.job_dicts] if opts.job_dicts else default_jobs(n)
    sim = ClusterSim(seed, n, _config(n), placement_config=PLACEMENT, cluster_config=CLUSTER,
                     capacities=caps, labels=labels_for(n))
    engine = ChaosEngine(sim)
    w = sim.world
    w.bootstrap(seeds="random")
    w.run_for(WARMUP_S)
    for s in specs:
        sim.submit(rng.randrange(n), s)
    start, end = w.now + 2.0, w.now + 2.0 + opts.duration_s
    plan = draw_plan(rng, n, opts.faults, start, end, mean_gap_s=opts.mean_gap_s)
    result["plan"] = [f.describe() for f in plan]
    workload = Workload(sim, specs, rng)
    workload.schedule(start, end, n, opts.mean_gap_s)
    watch = Watch(sim, plan, is_desired=workload.is_desired, recent_write=workload.recent_write,
                  is_global=workload.is_global)
    result["violations"] = watch.violations
    _apply(sim, engine, plan)
    w.at(end, _heal_all, sim, engine)
    watch.heal_s = end
    result["heal_s"] = end
    if opts.plant:
        _plant(sim, watch, opts.plant, end + 1.0)
    while w.now < end:
        w.run_until(min(end, w.now + SAMPLE_S))
        watch.sample(w.now)
    w.run_until(end)  # the heal itself

    comfortable = fit_ratio(specs, caps) <= COMFORTABLE_FIT

    def settled(_w: Any) -> bool:
        watch.sample(w.now)
        problems = watch.converged()
        if not comfortable:  # only "nothing doubled, stores agree" is required
            problems = [p for p in problems if "lost" not in p]
        return not problems

    deadline = end + opts.converge_timeout_s
    # Long enough for a move the heal calls for to start (the settle delay) and end.
    stable_s = max(opts.stable_s, PLACEMENT.rebalance_settle_s + 2.0)
    took: float | None = None
    while True:
        if w.run_until_converged(settled, max(0.0, deadline - w.now), check_every=SAMPLE_S) is None:
            break
        at, moves = w.now, watch.moves_started
        w.run_for(stable_s)
        watch.sample(w.now)
        problems = watch.converged()
        if not comfortable:
            problems = [p for p in problems if "lost" not in p]
        if problems and watch.moves_started > moves and w.now < deadline:
            continue  # a rebalancing move began (start-first: two copies for a while): wait for it
        took = at - end
        for p in problems[:10]:
            watch.violate(inv.EXACTLY_ONCE, f"{stable_s:.0f} s after converging: {p}")
        watch.check_writes()
        break
    result["converged_s"] = took
    if took is None:
        problems = watch.converged()
        watch.violate(inv.CONVERGES, f"not converged {opts.converge_timeout_s:.0f} s after the heal: "
                                     + "; ".join(problems[:5]))
        for p in problems[:10]:
            if comfortable or "lost" not in p:
                watch.violate(inv.EXACTLY_ONCE, f"{opts.converge_timeout_s:.0f} s after the heal: {p}")
    for v in sim.violations[:10]:  # the cluster sim's own checks: awards and the agents' ledgers
        watch.violate(inv.AWARD_SAFETY, v)
    result["exactly_once_checked"] = comfortable
    result["fit"] = round(fit_ratio(specs, caps), 3)
    result["faults"] = [f.to_dict() for f in watch.figures]
    result["doubled"] = watch.doubled_figures()
    result["rebalance"] = dict(watch.rebalance)
    result["preempted"] = watch.preempted
    result["engine_stalls"] = engine.stalls
    result["writes"] = {"issued": len(workload.log) + len(specs), "acknowledged": len(watch.acked)}
    result["workload"] = [f"t={t:7.2f} {what} {detail}" for t, what, detail in workload.log]


def _plant(sim: ClusterSim, watch: Watch, what: str, t: float) -> None:
    """Break the ground truth on purpose (tests of the checkers)."""
    from auction.placement_outputs import StartReplica

    w = sim.world

    def doubled() -> None:
        # A container of slot web/0 started behind the agents' backs on a second node.
        holder = next(i for i in range(w.n) if "web/0" in sim.running[i])
        other = next(i for i in range(w.n) if i != holder and "web/0" not in sim.running[i])
        sim.running[other]["web/0"] = (0, "planted")

    def overcommit() -> None:
        holder = next(i for i in range(w.n) if sim.running[i])
        slot = next(iter(sim.running[holder]))
        claim = w.core(holder).view.claims()[slot]
        huge = claim.demand.__class__(sim.capacities[holder].cpu_millis + 1, claim.demand.memory_bytes, 0)
        watch._on_event(w.now, holder, StartReplica(claim.__class__(
            "planted/0", claim.ballot, claim.node, False, claim.spec_hash, huge), None))  # type: ignore[arg-type]

    def lost_write() -> None:
        from node.core.jobstore import Entry
        from node.core.hlc import Stamp

        watch.acked.append(Entry("web", Stamp(1 << 50, 0, "node-0"), b"{}"))

    w.at(t, {"doubled": doubled, "overcommit": overcommit, "lost-write": lost_write}[what])
