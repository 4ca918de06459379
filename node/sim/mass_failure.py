"""The scene "a tenth of the cluster loses power at once", shared by its test and its benchmark.

How this works: n simulated gossip nodes (`lan`) converge and run 5 s more;
then a random `fraction` of them (never node-0) crash at the same moment.
The survivors are sampled every `sample_s` until each of them holds every
victim as suspect or dead.  What comes back, in virtual seconds from the
crash: for each victim, when the first survivor held it not alive (its
first failed probe, give or take the probe's own interval), and when the
last survivor did.  The first is where the probe order shows
(gossip.members, "The probe ring"); the rest is the failure news spreading.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from gossip.config import preset
from gossip.events import MemberState
from node.sim import checkers, faults
from node.sim.world import World


@dataclass
class MassFailure:
    victims: int
    first_suspected_s: list[float]  # per victim, sorted
    all_hold_s: float | None  # every survivor holds every victim not alive; None: not within limit_s


def crash_a_fraction(seed: int, n: int, fraction: float = 0.1, *, profile: str = "lan",
                     limit_s: float = 60.0, sample_s: float = 0.05) -> MassFailure:
    w = World(seed, n, preset(profile))
    w.bootstrap()
    if w.run_until_converged(checkers.all_agree_alive, 60.0) is None:
        raise AssertionError(f"seed={seed}: no convergence")
    w.run_for(5.0)
    victims = set(random.Random(seed).sample(range(1, n), max(1, int(n * fraction))))
    survivors = [i for i in range(n) if i not in victims]
    names = {w.nodes[v].name for v in victims}
    for v in victims:
        faults.crash(w, v)
    start = w.now
    first: dict[str, float] = {}
    while w.now < start + limit_s:
        w.run_for(sample_s)
        for i in survivors:
            core = w.core(i)
            for name in names - first.keys():
                member = core.member(name)
                if member is not None and member.state is not MemberState.ALIVE:
                    first[name] = w.now - start
        if len(first) == len(names) and all(
                w.core(i).member(name).state is not MemberState.ALIVE for i in survivors for name in names):
            return MassFailure(len(victims), sorted(first.values()), w.now - start)
    return MassFailure(len(victims), sorted(first.values()), None)
