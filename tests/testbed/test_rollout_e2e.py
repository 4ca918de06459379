"""Rolling updates end to end on the testbed (issue 13): ground truth from every node's dockerd.

One job of 10 replicas goes through three versions in one test, so the
whole file costs one placement and one stop (the 5-node testbed is the
session's: testbed_cluster.py):

  * v1 -> v2 (a new image tag) with max_parallel 2, start-first: sampled as
    often as the five dockerds answer (every 200 ms at most), never fewer
    than 8 slots have a running, healthy container; it ends with all 10 on v2;
  * v3, whose health check fails, with auto_revert: only the first batch
    tries it, the job goes back to v2 on its own, every slot ends on v2, and
    the job history shows v1, v2, v3 and the revert naming v3;
  * a canary: v4 with canary 1 stops with one slot on v4, waiting; a
    promote lets the other nine follow (at once: v4's max_parallel is 9).

The image tags are shoal-demo:latest tagged again in each node's dockerd
(the container hash changes with the image name).  Root only.

PARTIAL, skipped: not yet seen passing end to end.  It was written and run
on a machine so loaded (load average 15-26 on 2 cores) that the dockerds
took seconds per request and, in the last run, the agents declared each
other failed.  There v1 -> v2 took 38-68 s with never fewer than 10 healthy
slots, and the revert scene passed once; but the canary scene then found
slot 1 still holding its v3 container (the v3 ballot's claim, restarting
under Docker's restart policy beside its old v2 copy) after the revert had
passed the checks above it.  The revert's check now also asks the job view
that every claim is on v2 and that no other container is left.  The likely
cause: the revert's own rollout missed its 5 s healthy deadline on that
engine (docker starts were timing out) and a failed rollout stops where it
is (the simulator, with failing containers that restart, reverts every
slot).  Open: whether it passes with deadlines that fit the machine.  Run
it on an idle machine:

    SHOAL_TESTBED_PREFIX=rlx SHOAL_TESTBED_SUBNET=10.79.10 \
        scripts/test tests/testbed/test_rollout_e2e.py

Its time on an idle machine is not known (estimated 45-55 s besides the
session's bring-up: over the ~40 s wanted).  The sampling asserts no gap
much longer than its usual one (a loaded machine answers slower).
"""

from __future__ import annotations

import collections
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

pytestmark = [pytest.mark.skipif(os.geteuid() != 0, reason="scripts/testbed needs root"),
              pytest.mark.skip(reason="partial: not yet seen passing end to end (module docstring)"),
              pytest.mark.slow]

JOB = "roll"
REPLICAS = 10
SAMPLE_S = 0.2


def spec(tag: str, *, failing: bool = False, **update) -> dict:
    return {"name": JOB, "image": f"shoal-demo:{tag}", "command": ["sleep", "600"], "cpu": 0.1,
            "memory": "16MiB", "replicas": REPLICAS,
            "health": {"command": ["false" if failing else "true"], "interval_s": 1, "retries": 1},
            "update": {"max_parallel": 2, "min_healthy_s": 1, "healthy_deadline_s": 5,
                       "progress_deadline_s": 20, "order": "start-first", "auto_revert": True, **update}}


def healthy_slots(cl, image: str | None = None, pool: ThreadPoolExecutor | None = None) -> set[str]:
    """Slots with a running, healthy container (of `image`, if given) on some
    live dockerd (asked all at once with a pool)."""
    nodes = cl.live()
    lists = pool.map(lambda i: cl.containers(JOB, [i]), nodes) if pool else [cl.containers(JOB, nodes)]
    return {c["Labels"]["shoal.slot"] for cs in lists for c in cs
            if "(healthy)" in c["Status"] and (image is None or c["Image"] == image)}


def all_on(cl, image: str) -> bool:
    """Every slot has exactly one container, running healthy on `image`."""
    cs = cl.containers(JOB)
    by_slot = collections.Counter(c["Labels"]["shoal.slot"] for c in cs)
    return (by_slot == collections.Counter({f"{JOB}/{k}": 1 for k in range(REPLICAS)})
            and all(c["Image"] == image and "(healthy)" in c["Status"] for c in cs))


class Sampler:
    """Counts healthy slots from every dockerd, as often as they answer, in a thread."""

    def __init__(self, cl) -> None:
        self.cl, self.samples, self.errors = cl, [], 0
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True, name="rollout sampler")

    def run(self) -> None:
        with ThreadPoolExecutor(max_workers=5, thread_name_prefix="sample") as pool:
            while not self.stop.is_set():
                t = time.monotonic()
                try:
                    self.samples.append((t, len(healthy_slots(self.cl, pool=pool))))
                except Exception:  # noqa: BLE001 -- a dockerd slow to answer is no sample, counted
                    self.errors += 1
                self.stop.wait(max(0.0, SAMPLE_S - (time.monotonic() - t)))

    def __enter__(self) -> "Sampler":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop.set()
        self.thread.join(timeout=10)


def test_rolling_update_revert_and_canary_on_real_docker(cluster):
    cl = cluster
    cl.ensure_all_up()
    for i in cl.nodes:
        for tag in ("roll-v1", "roll-v2", "roll-v3", "roll-v4"):
            cl.docker[i].tag("shoal-demo:latest", "shoal-demo", tag)
    t_start = time.monotonic()
    cl.submit(spec("roll-v1"))
    try:
        cl.wait(lambda: all_on(cl, "shoal-demo:roll-v1"), 60, "10 healthy v1 containers")

        # v1 -> v2, two at a time: never fewer than 8 slots healthy.
        t0 = time.monotonic()
        with Sampler(cl) as sampler:
            cl.submit(spec("roll-v2"))
            cl.wait(lambda: all_on(cl, "shoal-demo:roll-v2"), 60, "all 10 slots on v2")
        took = time.monotonic() - t0
        counts = [n for _, n in sampler.samples]
        times = [t for t, _ in sampler.samples]
        gap = max(b - a for a, b in zip(times, times[1:]))
        print(f"v1 -> v2: {took:.1f} s, {len(counts)} samples (longest gap {gap:.2f} s), fewest healthy "
              f"{min(counts)}, {sampler.errors} samples lost")
        with cl.explained():
            # It sampled all along: as often as the dockerds answer (a loaded
            # machine answers slower; no gap much longer than the usual one).
            usual = sorted(b - a for a, b in zip(times, times[1:]))[len(times) // 2]
            assert times[0] - t0 < 2 and gap <= max(1.0, 4 * usual), (gap, usual, took)
            assert min(counts) >= 8, counts

        # v3 fails its health check: the first batch only, then back to v2 on its own.
        cl.submit(spec("roll-v3", failing=True))
        cl.wait(lambda: any(c["Image"] == "shoal-demo:roll-v3" for c in cl.containers(JOB, all=True)), 30,
                "v3 tried")
        tried = set()

        def back_on_v2() -> bool:
            tried.update(c["Labels"]["shoal.slot"] for c in cl.containers(JOB, all=True)
                         if c["Image"] == "shoal-demo:roll-v3")
            detail = cl.api("GET", f"/v1/jobs/{JOB}")
            return (detail["spec"]["image"] == "shoal-demo:roll-v2" and detail.get("rollout") is None
                    and {s["container_hash"] for s in detail["slots"]} == {detail["container_hash"]}
                    and all_on(cl, "shoal-demo:roll-v2")
                    and not [c for c in cl.containers(JOB, all=True) if c["Image"] != "shoal-demo:roll-v2"])

        cl.wait(back_on_v2, 60, "the revert to v2 on every slot")
        history = cl.api("GET", f"/v1/jobs/{JOB}/history")["versions"]
        with cl.explained():
            assert len(tried) <= 2, tried                                  # the first batch only
            assert [(v["image"], v["why"]) for v in history] == [
                ("shoal-demo:roll-v1", "submit"), ("shoal-demo:roll-v2", "submit"),
                ("shoal-demo:roll-v3", "submit"), ("shoal-demo:roll-v2", "revert")], history
            assert history[-1]["ref"] == history[2]["version"]             # the revert names v3

        # A canary: one slot on v4, waiting; a promote lets the rest follow.
        cl.submit(spec("roll-v4", canary=1, max_parallel=REPLICAS - 1))
        cl.wait(lambda: (cl.api("GET", f"/v1/jobs/{JOB}").get("rollout") or {}).get("waiting_promotion"), 30,
                "the canary to wait for a promote")
        others = {f"{JOB}/{k}" for k in range(1, REPLICAS)}
        # (slot 0's v2 copy stops once its v4 copy runs: a moment after)
        cl.wait(lambda: healthy_slots(cl, "shoal-demo:roll-v4") == {f"{JOB}/0"}
                and healthy_slots(cl, "shoal-demo:roll-v2") == others and cl.each_slot_once(JOB, REPLICAS), 20,
                "slot 0 on v4, the others on v2, one copy each")
        time.sleep(1)
        with cl.explained():      # and it waits: nothing else moves without a promote
            assert healthy_slots(cl, "shoal-demo:roll-v2") == others
        cl.api("POST", f"/v1/jobs/{JOB}/promote", {})
        cl.wait(lambda: all_on(cl, "shoal-demo:roll-v4"), 60, "all 10 slots on v4 after the promote")
        print(f"three rollouts in {time.monotonic() - t_start:.1f} s")
    finally:
        cl.stop_job(JOB)
