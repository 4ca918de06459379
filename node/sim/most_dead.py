"""The scene "most members die at once", shared by its test and its benchmark.

How this works: a cluster of n simulated gossip nodes converges, then its
last `kill` nodes crash at the same moment; the survivors are sampled every
`sample_s` until each has declared every victim dead, or until
GossipConfig.detection_bound_s(n) has passed (the caller decides what that
means).  What comes back: the world, its config, a FalseDeathDetector
subscribed before the kill, the survivors, the virtual seconds it took (None
if the bound passed first) and the highest Lifeguard health score any
survivor had meanwhile.
"""

from __future__ import annotations

from dataclasses import dataclass

from gossip.config import GossipConfig, preset
from node.sim import checkers, faults
from node.sim.world import World


@dataclass
class MostDead:
    world: World
    config: GossipConfig
    detector: checkers.FalseDeathDetector
    survivors: list[int]
    victims: list[int]
    took_s: float | None
    health: int


def kill_most(seed: int, profile: str, n: int, kill: int, sample_s: float = 0.05) -> MostDead:
    config = preset(profile)
    w = World(seed, n, config)
    w.bootstrap()
    if w.run_until_converged(checkers.all_agree_alive, 30.0) is None:
        raise AssertionError(f"seed={seed}: no convergence")
    detector = checkers.FalseDeathDetector(w)
    victims = list(range(n - kill, n))
    survivors = [i for i in range(n) if i not in victims]
    for v in victims:
        faults.crash(w, v)
    start = w.now
    deadline = start + config.detection_bound_s(n)
    health = 0
    took: float | None = None
    while w.now < deadline:
        if checkers.sees_dead(w, survivors, victims):
            took = w.now - start
            break
        w.run_for(sample_s)
        health = max(health, *(w.core(i).health_score() for i in survivors))
    return MostDead(w, config, detector, survivors, victims, took, health)
