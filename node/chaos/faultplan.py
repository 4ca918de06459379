"""A seeded schedule of faults, the same whether it is played on the simulator
or (later) on a testbed.

How this works: `draw_plan(rng, n, kinds, start_s, end_s)` draws fault times
as a Poisson process (mean gap `mean_gap_s`) over [start_s, end_s) and, for
each, one kind among `kinds` and its victims and strength.  Every draw comes
from the `random.Random` handed in, so a seed gives the same plan.  The plan
is a list of `Fault` values, each with the time it starts and the time it is
undone; at `end_s` everything still in force is undone at once (the heal).

The kinds:

- `kill`: the node's process dies and stays down until the heal;
- `restart`: the process dies and is started again 0.5-5 s later;
- `pause`: SIGSTOP for 0.5-20 s (the process keeps its state; its containers run);
- `engine-stall`: the node's container engine (dockerd and containerd) is
  frozen for 1-8 s: the agent runs and gossips, its containers run, but the
  engine answers nothing (no start, no stop, no report) until it resumes;
- `partition`: 1..n/2 nodes are cut off from the rest for 1-20 s;
- `loss`: every datagram is lost with probability 5-30 % for 2-15 s;
- `delay`: every packet takes 5-200 ms longer for 2-15 s;
- `clock-skew`: one node's clock jumps 0-2 s ahead and runs 1-5 % fast or
  slow until the heal (no backward jump: agents time with monotonic clocks).

At most `max_down` nodes (default a third, at least one) are killed,
restarting, paused or engine-stalled at once, and node 0 never is, so a working majority
stays to observe the others; one partition, one loss and one delay window
are in force at a time (each replaces the network's setting).
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass

KINDS = ("kill", "restart", "partition", "loss", "delay", "pause", "engine-stall", "clock-skew")
# Kinds that take nodes away (victims whose replicas must be re-placed).
NODE_KINDS = ("kill", "restart", "pause", "partition")


@dataclass(frozen=True)
class Fault:
    kind: str
    start_s: float
    end_s: float  # when it is undone (a kill: at the heal)
    nodes: tuple[int, ...] = ()  # victims: the node, or the cut-off side
    value: float = 0.0  # loss probability, extra delay in s, clock rate
    offset_s: float = 0.0  # clock-skew: the forward jump

    def describe(self) -> str:
        who = ",".join(f"node-{i}" for i in self.nodes)
        what = {
            "loss": f"loss={self.value:.2f}",
            "delay": f"+{self.value * 1000:.0f}ms",
            "clock-skew": f"{who} rate={self.value:.4f} jump={self.offset_s:.2f}s",
        }.get(self.kind, who)
        return f"t={self.start_s:7.2f}..{self.end_s:7.2f} {self.kind:<10} {what}"


def parse_kinds(text: str) -> tuple[str, ...]:
    """'kill,partition' -> ('kill', 'partition'); ValueError names an unknown kind."""
    kinds = tuple(k.strip() for k in text.split(",") if k.strip())
    unknown = [k for k in kinds if k not in KINDS]
    if unknown:
        raise ValueError(f"unknown fault kind(s) {', '.join(unknown)}; known: {','.join(KINDS)}")
    if not kinds:
        raise ValueError("no fault kinds given")
    return kinds


def draw_plan(rng: random.Random, n: int, kinds: Sequence[str], start_s: float, end_s: float, *,
              mean_gap_s: float = 3.0, max_down: int | None = None) -> list[Fault]:
    max_down = max(1, n // 3) if max_down is None else max_down
    plan: list[Fault] = []
    down: dict[int, float] = {}  # node -> when it is back
    busy: dict[str, float] = {}  # "partition" / "loss" / "delay" -> when the window ends
    skewed: set[int] = set()
    t = start_s
    while kinds:
        t += rng.expovariate(1.0 / mean_gap_s)
        if t >= end_s:
            break
        kind = rng.choice(list(kinds))
        down = {j: back for j, back in down.items() if back > t}
        if kind in ("kill", "restart", "pause", "engine-stall"):
            candidates = [j for j in range(1, n) if j not in down]
            if len(down) >= max_down or not candidates:
                continue
            j = rng.choice(candidates)
            dur = {"kill": end_s - t, "restart": rng.uniform(0.5, 5.0), "pause": rng.uniform(0.5, 20.0),
                   "engine-stall": rng.uniform(1.0, 8.0)}[kind]
            back = min(t + dur, end_s)
            down[j] = back
            plan.append(Fault(kind, t, back, (j,)))
        elif kind in ("partition", "loss", "delay"):
            if busy.get(kind, -1.0) > t:
                continue
            if kind == "partition":
                if n < 2:
                    continue
                side = tuple(sorted(rng.sample(range(n), rng.randint(1, max(1, n // 2)))))
                back = min(t + rng.uniform(1.0, 20.0), end_s)
                plan.append(Fault(kind, t, back, side))
            elif kind == "loss":
                back = min(t + rng.uniform(2.0, 15.0), end_s)
                plan.append(Fault(kind, t, back, (), rng.choice([0.05, 0.1, 0.2, 0.3])))
            else:
                back = min(t + rng.uniform(2.0, 15.0), end_s)
                plan.append(Fault(kind, t, back, (), rng.choice([0.005, 0.02, 0.05, 0.2])))
            busy[kind] = back
        elif kind == "clock-skew":
            candidates = [j for j in range(n) if j not in skewed]
            if not candidates:
                continue
            j = rng.choice(candidates)
            skewed.add(j)
            rate = 1.0 + rng.choice([-1, 1]) * rng.uniform(0.01, 0.05)
            plan.append(Fault(kind, t, end_s, (j,), rate, rng.uniform(0.0, 2.0)))
    return plan
