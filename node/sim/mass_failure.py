"""The scene "a tenth of the cluster loses power at once", shared by its test and its benchmark.

How this works: n simulated gossip nodes (`lan`) converge and run 5 s more
(or start formed, `World.start_formed`, and run 5 s: the only way to
10,000 nodes); then a random `fraction` of them (never node-0) crash at
the same moment.  The survivors' member events are followed until each of
them holds every victim as suspect or dead.  What comes back, in virtual
seconds from the crash: for each victim, when the first survivor held it
not alive (its first failed probe, give or take the probe's own
interval), and when the last survivor did.  The first is where the probe
order shows (gossip.members, "The probe ring"); the rest is the failure
news spreading.  Events, not polling: a crashed node cannot refute, so
once a survivor holds a victim not alive it stays so, and asking 10,000
survivors about 100 victims every 50 ms would cost more than the scene.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

from gossip.config import preset
from gossip.events import MemberFailed, MemberLeft, MemberSuspected
from node.sim import checkers, faults
from node.sim.world import World

_NOT_ALIVE = (MemberSuspected, MemberFailed, MemberLeft)


@dataclass
class MassFailure:
    victims: int
    first_suspected_s: list[float]  # per victim, sorted
    all_hold_s: float | None  # every survivor holds every victim not alive; None: not within limit_s


def crash_a_fraction(seed: int, n: int, fraction: float = 0.1, *, profile: str = "lan",
                     limit_s: float = 60.0, formed: bool = False) -> MassFailure:
    w = World(seed, n, preset(profile))
    if formed:
        w.start_formed()
    else:
        w.bootstrap()
        if w.run_until_converged(checkers.all_agree_alive, 60.0) is None:
            raise AssertionError(f"seed={seed}: no convergence")
    w.run_for(5.0)
    victims = set(random.Random(seed).sample(range(1, n), max(1, int(n * fraction))))
    survivors = {i for i in range(n) if i not in victims}
    names = {w.nodes[v].name for v in victims}
    want = len(survivors) * len(names)
    start = w.now
    first: dict[str, float] = {}
    held: set[tuple[int, str]] = set()
    all_hold: list[float] = []

    def on_event(t: float, i: int, ev: Any) -> None:
        if ev.__class__ in _NOT_ALIVE and i in survivors and ev.member.name in names:
            name = ev.member.name
            first.setdefault(name, t - start)
            held.add((i, name))
            if len(held) == want and not all_hold:
                all_hold.append(t - start)

    w.subscribe(on_event)
    for v in victims:
        faults.crash(w, v)
    while w.now < start + limit_s and not all_hold:
        w.run_for(min(1.0, start + limit_s - w.now))
    return MassFailure(len(victims), sorted(first.values()), all_hold[0] if all_hold else None)
