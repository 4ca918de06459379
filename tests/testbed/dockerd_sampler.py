"""Sweeps every dockerd of the testbed for a job's running containers, in a thread.

How this works: `Sampler(cluster, job, slots)` asks each node's dockerd, one
after the other, for the job's running containers (one sweep of five takes
some tens of ms), over and over until `stop()`, and keeps the most of
`slots` that ran nowhere in one sweep (`max_gap`, with when and which:
`worst`).  A sweep a dockerd did not answer is not counted (`errors`).
Used to show that a partition merge leaves no slot without a running
container (auction/merge_rule.py).
"""

from __future__ import annotations

import threading
import time


class Sampler:
    def __init__(self, cl, job: str, slots: list[str]) -> None:
        self.cl, self.job, self.slots = cl, job, slots
        self.sweeps = 0
        self.max_gap = 0
        self.worst: tuple[float, list[str]] = (0.0, [])
        self.errors = 0
        self._stop = threading.Event()
        self._t0 = time.monotonic()
        self._thread = threading.Thread(target=self._run, daemon=True, name="dockerd sampler")
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            running: set[str] = set()
            try:
                for i in self.cl.nodes:
                    for c in self.cl.docker[i].containers(filters={"label": f"shoal.job={self.job}"}):
                        running.add(c["Labels"]["shoal.slot"])
            except Exception:  # noqa: BLE001 -- a dockerd slow to answer: that sweep does not count
                self.errors += 1
                continue
            self.sweeps += 1
            gap = [s for s in self.slots if s not in running]
            if len(gap) > self.max_gap:
                self.max_gap = len(gap)
                self.worst = (time.monotonic() - self._t0, gap)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    def explain(self) -> str:
        return f"{self.worst[1]} ran nowhere {self.worst[0]:.2f} s after sampling began"
