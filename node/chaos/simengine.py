"""The container engine of a simulated chaos campaign: it reports running
slots (so rolling updates and rebalancing act) and it can stall.

How this works: `ChaosEngine` is node.sim.checkers_catalog's `SimRuntime`
(a started container runs `start_delay_s` later; every change reaches the
node's core as a `RuntimeSlots` report `report_delay_s` later, standing in
for the agent's runtime link) plus the `engine-stall` fault: between
`stall(i)` and `unstall(i)` node i's engine answers nothing, as a dockerd
and containerd under SIGSTOP do: no report reaches the agent and no
container it starts comes up; both resume after `unstall`, the core then
hearing the engine's state as it is.  Commands given meanwhile still take
effect in the ground truth (`ClusterSim.running`) when given: the calls are
queued in the engine, which executes them when it resumes, and the
campaign's checks count a container from its start command (a container
that is "starting" reserves its resources all the same).

Without a stall it is exactly `SimRuntime`; it draws no randomness and
schedules only fixed delays, so a campaign stays deterministic in its seed.
"""

from __future__ import annotations

from typing import Any

from node.sim.checkers_catalog import SimRuntime
from node.sim.cluster import ClusterSim

# How often a frozen engine's pending start and report are tried again.
RETRY_S = 0.25


class ChaosEngine(SimRuntime):
    def __init__(self, sim: ClusterSim, *, start_delay_s: float = 0.3, report_delay_s: float = 0.05) -> None:
        super().__init__(sim, start_delay_s=start_delay_s, report_delay_s=report_delay_s)
        self.frozen: set[int] = set()
        self.stalls = 0  # stalls played (the campaign's figures)

    def stall(self, i: int) -> None:
        self.frozen.add(i)
        self.stalls += 1

    def unstall(self, i: int) -> None:
        if i in self.frozen:
            self.frozen.discard(i)
            self._schedule_report(i)  # the link's next poll sees the engine as it is now

    def _up(self, i: int, slot: str, box: list[Any]) -> None:
        if i in self.frozen:  # containerd is frozen: the container does not come up yet
            self.world.after(RETRY_S, self._up, i, slot, box)
            return
        super()._up(i, slot, box)

    def _report(self, i: int) -> None:
        if i in self.frozen:  # the link's calls hang: nothing reaches the core until it resumes
            return           # (unstall schedules the next report)
        super()._report(i)
