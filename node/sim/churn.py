"""Churn scenes: container starts caused by false suspicions and by a real death.

How this works: `build` starts a settled cluster (ClusterSim, FAST placement)
running one job of `replicas` slots.  Then one scene:

- `false_suspicions`: one node, or several, is made slow (node.sim.faults.slow:
  it stalls `stall_s` out of every `stall_s + run_s` for `duration_s`), so
  its peers suspect it while it lives, again and again.  Nothing needs moving, so every
  container start counts as extra.  Reports the starts, the suspicions seen
  and whether every slot still runs exactly once afterwards.
- `real_kill`: the node holding the most slots loses power; reports the
  starts until every slot runs exactly once again, and the heal time (from
  the crash, and from the first suspicion of the victim).

The benchmark (scripts/bench/churn_bench.py) and the tests
(tests/sim/test_sim_churn.py) share these, so the figures in the README are
what the tests check.
"""

from __future__ import annotations

from dataclasses import dataclass

from auction import suspicion_rule
from gossip.config import GossipConfig, preset
from gossip.events import MemberFailed, MemberJoined, MemberSuspected, MemberUpdated
from node.sim import faults
from node.sim.cluster import ClusterSim
from node.sim.swarm import CLUSTER, FAST, job


@dataclass(frozen=True)
class SceneResult:
    starts: int              # container starts during the scene
    suspicions: int          # MemberSuspected events about the faulted node, all observers
    settled: bool            # every slot runs exactly once at the end
    heal_s: float | None     # real kill: crash -> all slots run again (None: did not)
    heal_after_suspicion_s: float | None  # real kill: first suspicion -> all slots run again
    victim_slots: int        # slots the faulted node held when the scene began
    # Episodes of suspicion of the faulted node (one observer's suspicion,
    # or several overlapping) in which one lasted at least the grace
    # (auction.suspicion_rule) before it ended or the scene did: the only
    # ones that may cost starts.
    outlived_grace: int = 0
    # The rule's bound on this scene's starts: over every slow node, the
    # most slots it held times its suspicions that outlived their grace.
    bound: int = 0


def config_of(profile: str) -> GossipConfig:
    return preset(profile).replace(enable_compression=False)


def build(seed: int, *, profile: str = "local", nodes: int = 5, replicas: int = 50) -> tuple[ClusterSim, list]:
    sim = ClusterSim(seed, nodes, config_of(profile), placement_config=FAST, cluster_config=CLUSTER)
    sim.world.bootstrap(seeds="random")
    sim.world.run_for(3 if profile == "local" else 10)
    # At most 13 a node: spread over all five, and four can still hold 50.
    spec = job("churn", replicas, cpu=0.05, memory="32MiB", max_per_node=-(-replicas // (nodes - 1)))
    sim.submit(0, spec)
    took = sim.world.run_until_converged(lambda _: not sim.placement_problems([spec]), 60.0)
    if took is None:
        raise RuntimeError(f"seed {seed}: the job never settled: {sim.placement_problems([spec])[:3]}")
    sim.world.run_for(2.0)  # let the last claims and statuses spread
    return sim, [spec]


def _busiest(sim: ClusterSim) -> int:
    # Node 0 is the bootstrap seed; fault another one, the busiest.
    return max(range(1, sim.world.n), key=lambda i: (len(sim.running[i]), -i))


class _Watch:
    """MemberSuspected of one node, and its episodes: overlapping suspicions
    (one per observer) merged; an episode "outlived its grace" when one of
    its suspicions lasted at least the grace."""

    def __init__(self, sim: ClusterSim, victim: int, grace_s: float) -> None:
        self.name = sim.world.nodes[victim].name
        self.grace_s = grace_s
        self.suspected: list[float] = []
        self.open: dict[int, float] = {}   # observer -> its suspicion began
        self.spans: list[tuple[float, float]] = []
        sim.world.subscribe(self.on)

    def on(self, t: float, i: int, ev: object) -> None:
        member = getattr(ev, "member", None)
        if member is None or member.name != self.name:
            return
        if isinstance(ev, MemberSuspected):
            self.suspected.append(t)
            self.open[i] = t
        elif isinstance(ev, (MemberUpdated, MemberJoined, MemberFailed)) and i in self.open:
            self.spans.append((self.open.pop(i), t))

    def finish(self, t: float) -> int:
        """Episodes that outlived their grace."""
        spans = sorted(self.spans + [(began, t) for began in self.open.values()])
        self.open.clear()
        count, end, long = 0, float("-inf"), False
        for began, ended in spans:
            if began > end:             # a new episode
                count += long
                end, long = ended, False
            end = max(end, ended)
            long = long or ended - began >= self.grace_s
        return count + long


def grace_s(profile: str) -> float:
    return suspicion_rule.GRACE_SHARE * config_of(profile).suspicion_base_min_timeout_s()


def false_suspicions(seed: int, *, profile: str = "local", stall_s: float = 0.25, run_s: float = 0.5,
                     duration_s: float = 20.0, replicas: int = 50, slow_nodes: int = 1) -> SceneResult:
    """`slow_nodes` nodes (the busiest first; node 0 never) are slow at once,
    each stalling at its own phase; the counts are of the busiest one."""
    sim, specs = build(seed, profile=profile, replicas=replicas)
    victim = _busiest(sim)
    held = len(sim.running[victim])
    before = sim.starts
    others = sorted(range(1, sim.world.n), key=lambda i: (-len(sim.running[i]), i))[:slow_nodes]
    # Slots can move onto a slow node and off again: bound with the most it held.
    peak = {i: len(sim.running[i]) for i in others}

    def track(_t: float, i: int, _ev: object) -> None:
        if i in peak:
            peak[i] = max(peak[i], len(sim.running[i]))

    sim.world.subscribe(track)
    watches = {i: _Watch(sim, i, grace_s(profile)) for i in others}
    watch = watches[victim]
    for k, i in enumerate(others):
        phase = (stall_s + run_s) * k / max(1, len(others))
        faults.slow(sim.world, i, duration_s, stall_s=stall_s, run_s=run_s, at=sim.world.now + phase)
    sim.world.run_for(duration_s)
    sim.world.run_until_converged(lambda _: not sim.placement_problems(specs), 30.0)
    outlived = {i: w.finish(sim.world.now) for i, w in watches.items()}
    return SceneResult(sim.starts - before, len(watch.suspected), not sim.placement_problems(specs),
                       None, None, held, outlived[victim], sum(peak[i] * n for i, n in outlived.items()))


def real_kill(seed: int, *, profile: str = "local", replicas: int = 50, timeout_s: float = 60.0) -> SceneResult:
    sim, specs = build(seed, profile=profile, replicas=replicas)
    victim = _busiest(sim)
    held = len(sim.running[victim])
    watch = _Watch(sim, victim, grace_s(profile))
    suspected = watch.suspected
    before = sim.starts
    t0 = sim.world.now
    sim.world.crash(victim)
    took = sim.world.run_until_converged(lambda _: not sim.placement_problems(specs), timeout_s, check_every=0.02)
    healed_at = None if took is None else sim.world.now
    return SceneResult(sim.starts - before, len(suspected), took is not None,
                       None if healed_at is None else healed_at - t0,
                       None if healed_at is None or not suspected else healed_at - suspected[0], held)
