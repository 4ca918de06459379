"""Faults injected at the boundaries of the simulated cores.

How this works: each fault is a small function of the world that takes effect
now, or at world time `at=` (scheduled as an action on the world's event heap,
so it interleaves deterministically with packets and timers):

- `crash`: the process is gone.  Datagrams and streams to it are dropped, its
  timers and its outstanding streams are discarded (the node's epoch goes up);
  datagrams it already put on the wire still arrive.
- `restart`: a fresh core with the same name and address, incarnation from 0,
  joined to `seeds` (default: up to three running nodes).  memberlist's
  refutation is what must bring it back to life in everyone's view.
- `pause`: SIGSTOP for `duration` seconds.  Inputs queue (datagrams up to the
  world's inbox bound, like a socket buffer) and are fed in arrival order on
  resume, then the overdue timers fire, late.
- `slow`: a loaded node, for `duration` seconds: it stalls for `stall_s`
  (paused, as above), runs for `run_s`, stalls again, and so on.  Probes
  that land in a stall go unanswered, so its peers suspect it although it
  lives; it refutes once it runs again (the false suspicions of a busy
  machine).
- `drift`: the node's clock runs at `rate` (= 1 + drift) from now on; its core
  only ever sees its own local time.
- `partition` / `heal`: split the network into groups (see `network.py`).
- `swarm`: a random fault schedule drawn from the seed (which fault kinds,
  how often, how long), followed by a full heal, for FoundationDB-style
  "safety under faults, then liveness after heal" runs.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Iterable

from node.sim.world import CRASHED, PAUSED, RUNNING, World


def _when(world: World, at: float | None, fn, *args) -> None:
    if at is None:
        fn(*args)
    else:
        world.at(at, fn, *args)


def crash(world: World, node: int | str, *, at: float | None = None) -> None:
    _when(world, at, world.crash, world.idx(node))


def restart(world: World, node: int | str, *, at: float | None = None,
            seeds: Iterable[int | str] | None = None) -> None:
    _when(world, at, world.restart, world.idx(node), None if seeds is None else list(seeds))


def pause(world: World, node: int | str, duration: float, *, at: float | None = None) -> None:
    i = world.idx(node)

    def start() -> None:
        world.pause(i)
        world.after(duration, world.resume, i)

    _when(world, at, start)


def slow(world: World, node: int | str, duration: float, *, stall_s: float, run_s: float,
         at: float | None = None) -> None:
    i = world.idx(node)

    def start() -> None:
        end = world.now + duration
        t = world.now
        while t < end:
            stop = min(t + stall_s, end)
            world.at(t, world.pause, i)
            world.at(stop, world.resume, i)
            t = stop + run_s

    _when(world, at, start)


def resume(world: World, node: int | str, *, at: float | None = None) -> None:
    _when(world, at, world.resume, world.idx(node))


def drift(world: World, node: int | str, rate: float, *, at: float | None = None,
          offset_s: float = 0.0) -> None:
    _when(world, at, lambda: world.set_clock(world.idx(node), rate=rate, offset_s=offset_s))


def partition(world: World, groups: Iterable[Iterable[int | str]], *, at: float | None = None,
              heal_after: float | None = None) -> None:
    idx_groups = [[world.idx(x) for x in g] for g in groups]

    def start() -> None:
        world.network.partition(idx_groups)
        if heal_after is not None:
            world.after(heal_after, world.network.heal)

    _when(world, at, start)


def heal(world: World, *, at: float | None = None) -> None:
    _when(world, at, world.network.heal)


def halves(world: World) -> tuple[list[int], list[int]]:
    h = world.n // 2
    return list(range(h)), list(range(h, world.n))


# ---- swarm testing ------------------------------------------------------------


@dataclass
class SwarmPlan:
    """What a swarm run will do; printed in failure messages so a seed explains itself."""

    kinds: list[str]
    loss: float
    duplicate: float
    actions: list[tuple[float, str, str]] = field(default_factory=list)  # (time, what, detail)

    def __str__(self) -> str:
        lines = [f"kinds={self.kinds} loss={self.loss:.3f} duplicate={self.duplicate:.3f}"]
        lines += [f"  t={t:8.3f} {what} {detail}" for t, what, detail in self.actions]
        return "\n".join(lines)


def swarm(world: World, start: float, end: float, *, max_down: int | None = None,
          mean_gap_s: float = 5.0) -> SwarmPlan:
    """Schedule a random mix of faults in [start, end), then heal everything at `end`.

    The fault kinds in play, loss and duplication rates are drawn first (swarm
    testing: most seeds exercise only a few kinds, hard), then fault times.
    At most `max_down` nodes (default: a third, at least 1) are crashed or
    paused at once, so the cluster keeps a working majority of observers.
    Node 0 is never faulted (it is the default seed for restarts)."""
    rng = random.Random(world.rng.getrandbits(64))
    all_kinds = ["crash", "pause", "partition", "drift", "loss", "duplicate"]
    kinds = [k for k in all_kinds if rng.random() < 0.5] or [rng.choice(all_kinds)]
    loss = rng.choice([0.01, 0.05, 0.1, 0.2]) if "loss" in kinds else 0.0
    dup = rng.choice([0.01, 0.05, 0.2]) if "duplicate" in kinds else 0.0
    plan = SwarmPlan(kinds=kinds, loss=loss, duplicate=dup)
    if max_down is None:
        max_down = max(1, world.n // 3)
    n = world.n
    net = world.network

    def set_net(loss_p: float, dup_p: float) -> None:
        net.set_loss(loss_p)
        net.set_duplicate(dup_p)

    if loss or dup:
        world.at(start, set_net, loss, dup)
        plan.actions.append((start, "network", f"loss={loss} duplicate={dup}"))
    down: dict[int, float] = {}  # node -> time it comes back
    t = start
    active = [k for k in kinds if k in ("crash", "pause", "partition", "drift")]
    while active:
        t += rng.expovariate(1.0 / mean_gap_s)
        if t >= end:
            break
        kind = rng.choice(active)
        for j in [j for j, back in down.items() if back <= t]:
            del down[j]
        if kind in ("crash", "pause"):
            candidates = [j for j in range(1, n) if j not in down]
            if len(down) >= max_down or not candidates:
                continue
            j = rng.choice(candidates)
            dur = rng.uniform(0.5, 40.0)
            back = min(t + dur, end)
            down[j] = back
            if kind == "crash":
                world.at(t, world.crash, j)
                world.at(back, world.restart, j, None)
                plan.actions.append((t, "crash", f"node-{j} restart at {back:.3f}"))
            else:
                world.at(t, world.pause, j)
                world.at(back, world.resume, j)
                plan.actions.append((t, "pause", f"node-{j} until {back:.3f}"))
        elif kind == "partition":
            k = rng.randint(1, max(1, n // 2))
            side = rng.sample(range(n), k)
            dur = rng.uniform(1.0, 30.0)
            back = min(t + dur, end)
            world.at(t, net.partition, [side])
            world.at(back, net.heal)
            plan.actions.append((t, "partition", f"{sorted(side)} heal at {back:.3f}"))
        elif kind == "drift":
            j = rng.randrange(n)
            rate = 1.0 + rng.uniform(-0.05, 0.05)
            world.at(t, lambda j=j, rate=rate: world.set_clock(j, rate=rate))
            plan.actions.append((t, "drift", f"node-{j} rate={rate:.4f}"))

    def heal_all() -> None:
        set_net(0.0, 0.0)
        net.heal()
        for nd in world.nodes:
            if nd.status is PAUSED:
                world.resume(nd.idx)
            elif nd.status is CRASHED:
                world.restart(nd.idx, None)

    world.at(end, heal_all)
    plan.actions.append((end, "heal", "network healed, paused resumed, crashed restarted"))
    return plan


__all__ = [
    "crash", "restart", "pause", "resume", "slow", "drift", "partition", "heal", "halves", "swarm",
    "SwarmPlan", "RUNNING",
]
