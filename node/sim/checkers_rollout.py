"""Rolling updates in the simulator: what a user would notice, checked at every step.

How this works: `RolloutChecker` listens to the world's events next to a
`SimRuntime` (node.sim.checkers_catalog, the fake runtime that reports) and
keeps, per slot of one job, the ground truth the runtime holds:

- `replacing`: a holder moved a serving slot to the new version (its
  `RolloutEvent("replacing")` for a slot whose container there last
  reported running), from then until that node's container of the slot has
  run for `min_healthy_s` without a break, or is gone (stopped, crashed).
  `max_replacing` is the most slots replacing at once across the cluster,
  `max_replacing_calm` the same outside a partition and the `settle_s`
  after one heals or a node crashes (the pacing bound of auction.rollout:
  max_parallel when calm, max_parallel per side of a partition).  A slot
  whose copy there had failed or was not running is replaced out of turn by
  the rule (it serves nothing; in a revert, slots a crash re-placed onto
  the failing version are such): those are `out_of_turn`, not in the bound;
- `early_healthy`: an agent's `RolloutEvent("healthy")` for a slot whose
  new container had not been reported running for `min_healthy_s` (no
  agent can know sooner: it counts from its own observation, never
  earlier than the truth; a container whose node crashed counts for
  `settle_s` after the crash, as the agents may not know yet);
- `down`: desired slots that ran a container and now run none anywhere,
  at a moment when no node has crashed for `settle_s` (`max_down`; with
  start-first and room that must stay 0: the rollout never leaves a slot
  without a copy);
- `versions_problems()`: after the run, every live agent must agree that
  every slot's winning claim carries one version, the job's current one,
  with exactly one running container of it.
Deterministic: it draws no randomness and schedules nothing.
"""

from __future__ import annotations

from typing import Any

from auction.rollout import RolloutEvent
from node.sim.checkers_catalog import UP, SimRuntime
from node.sim.cluster import ClusterSim
from node.sim.trace import NodeCrashed


class RolloutChecker:
    def __init__(self, sim: ClusterSim, runtime: SimRuntime, job: str, replicas: int, *,
                 min_healthy_s: float, settle_s: float) -> None:
        self.sim, self.world, self.runtime = sim, sim.world, runtime
        self.job, self.replicas = job, replicas
        self.min_healthy_s, self.settle_s = min_healthy_s, settle_s
        self.replacing: dict[tuple[int, str], float | None] = {}   # (node, slot) -> up since
        self.out_of_turn: list[tuple[float, str, str]] = []          # (t, node, slot)
        # (node, slot) -> the states of that node's copies of the slot in its
        # last report: what the holder's decision to replace it could rest on.
        self.reported: dict[tuple[int, str], tuple[str, ...]] = {}
        self.up_since: dict[tuple[int, str, str], float] = {}         # (node, slot, hash) -> reported running since
        self.crashed_up: dict[tuple[int, str, str], tuple[float, float]] = {}   # the same -> (since, crashed at)
        self.early_healthy: list[str] = []
        self.ever_ran: set[str] = set()
        self.events: list[tuple[float, str, str, str]] = []        # (t, node, kind, slot)
        self.event_details: list[str] = []
        self.max_replacing = self.max_replacing_calm = self.max_down = 0
        self.calm_after = 0.0
        self.was_split = False
        self.world.subscribe(self._on_event)
        runtime.on_report.append(self._on_report)

    def _on_report(self, i: int) -> None:
        prefix = self.job + "/"
        for key in [k for k in self.reported if k[0] == i]:
            del self.reported[key]
        up = set()
        for boxes in (self.runtime.containers[i], self.runtime.handover[i]):
            for slot, box in boxes.items():
                if slot.startswith(prefix):
                    self.reported[(i, slot)] = (*self.reported.get((i, slot), ()), box[0])
                    if box[0] == UP:
                        up.add((i, slot, box[2]))
                        self.up_since.setdefault((i, slot, box[2]), self.world.now)
        for key in [k for k in self.up_since if k[0] == i and k not in up]:
            del self.up_since[key]
        self._check()

    def _healthy_too_soon(self, t: float, node: str, slot: str, target: str) -> None:
        ran = [since for (_, s, h), since in self.up_since.items() if s == slot and h == target]
        ran += [since for (_, s, h), (since, crashed) in self.crashed_up.items()
                if s == slot and h == target and t <= crashed + self.settle_s]
        if not ran or t - min(ran) < self.min_healthy_s - 1e-9:
            self.early_healthy.append(f"{node} counted {slot} healthy at {t:.3f}, reported running since "
                                      f"{min(ran) if ran else None}")

    def _on_event(self, t: float, i: int, ev: Any) -> None:
        cls = ev.__class__
        if cls is RolloutEvent and ev.job == self.job:
            self.events.append((t, self.world.nodes[i].name, ev.kind, ev.slot))
            self.event_details.append(ev.detail)
            if ev.kind == "replacing" and UP in self.reported.get((i, ev.slot), ()):
                self.replacing[(i, ev.slot)] = None
            elif ev.kind == "replacing":
                self.out_of_turn.append((t, self.world.nodes[i].name, ev.slot))
            elif ev.kind == "healthy":
                self._healthy_too_soon(t, self.world.nodes[i].name, ev.slot, ev.target)
        elif cls is NodeCrashed:
            self.calm_after = t + self.settle_s
            for key in [k for k in self.up_since if k[0] == i]:
                self.crashed_up[key] = (self.up_since.pop(key), t)
        self._check()

    def _check(self) -> None:
        t = self.world.now
        # A heal is seen at the first check after it (checks come with events,
        # which may be sparse while split): calm settle_s after that.
        split = bool(self.world.network.partitioned)
        if split or self.was_split:
            self.calm_after = max(self.calm_after, t + self.settle_s)
        self.was_split = split
        live = set(self.sim.live_indices())
        for (i, slot), since in list(self.replacing.items()):
            box = self.runtime.containers[i].get(slot)
            if i not in live or box is None:
                del self.replacing[(i, slot)]
            elif box[0] != UP:
                self.replacing[(i, slot)] = None
            elif since is None:
                self.replacing[(i, slot)] = t
            elif t - since >= self.min_healthy_s:
                del self.replacing[(i, slot)]
        n = len({slot for _, slot in self.replacing})
        self.max_replacing = max(self.max_replacing, n)
        calm = t >= self.calm_after
        if calm:
            self.max_replacing_calm = max(self.max_replacing_calm, n)
        down = 0
        for index in range(self.replicas):
            slot = f"{self.job}/{index}"
            copies = sum(self.runtime.copies(i, slot) for i in live)
            if copies:
                self.ever_ran.add(slot)
            elif slot in self.ever_ran:
                down += 1
        if calm:
            self.max_down = max(self.max_down, down)

    def kinds(self) -> list[str]:
        return [kind for _, _, kind, _ in self.events]

    def details(self, kind: str) -> list[str]:
        return [d for (_, _, k, _), d in zip(self.events, self.event_details) if k == kind]

    def versions_problems(self, target: str) -> list[str]:
        """Why the job has not ended on one version (`target`, a container hash)."""
        out = []
        live = self.sim.live_indices()
        for index in range(self.replicas):
            slot = f"{self.job}/{index}"
            for i in live:
                claim = self.world.core(i).placement.winning_claim(slot)
                if claim is None or claim.spec_hash != target:
                    have = claim.spec_hash[:8] if claim is not None else None
                    out.append(f"{self.world.nodes[i].name} sees {slot} on {have}")
                    break
            boxes = [(i, box) for i in live for box in [self.runtime.containers[i].get(slot)] if box is not None]
            running = [(i, box) for i, box in boxes if box[0] == UP and box[2] == target]
            if len(running) != 1 or len(boxes) != 1:
                out.append(f"{slot}: {len(running)} running on the target, {len(boxes)} containers")
        return out
