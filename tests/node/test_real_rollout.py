"""A rolling update across real `shoal agent` processes on loopback (fake runtime).

The agents, their fixture and helpers are test_real_jobs'.  A job whose
image changes moves every replica to the new image, one slot at a time,
each holder replacing its own; the steps are events on /v1/events.
"""

from __future__ import annotations

import json

import httpx
import pytest
from test_real_jobs import CONVERGE_DEADLINE_S, Cluster, running, three, wait_until

pytestmark = pytest.mark.real


@pytest.fixture
def agents(tmp_path):
    c = Cluster(tmp_path)
    try:
        yield c
    finally:
        c.kill_all()
        print(c.report())  # shown only when the test failed


def web(image: str) -> dict:
    return {"name": "web", "image": image, "cpu": 0.25, "memory": "64MiB", "replicas": 4,
            "update": {"max_parallel": 1, "min_healthy_s": 0.5, "healthy_deadline_s": 10}}


def images(agents, procs) -> dict[str, str]:
    """slot -> image, from every agent's runtime (one entry per running copy)."""
    out: dict[str, str] = {}
    for p in procs:
        me = agents.get(p, "/v1/agent/self") or {}
        for slot, r in ((me.get("runtime") or {}).get("running") or {}).items():
            out[slot] = out.get(slot, "") + r["image"]
    return out


def test_a_new_image_reaches_every_replica_one_at_a_time(agents):
    cluster = agents
    procs = three(cluster)
    a1, a2, a3 = procs
    assert httpx.post(f"{a1.api}/v1/jobs", json=web("busybox:1"), timeout=10).status_code in (200, 201)
    want_v1 = {f"web/{i}": "busybox:1" for i in range(4)}
    wait_until(lambda: images(cluster, procs) == want_v1, CONVERGE_DEADLINE_S, "v1 running", cluster.report)
    before = {slot: tuple(b) for p in procs for slot, b in running(cluster, p).items()}

    r = httpx.post(f"{a2.api}/v1/jobs", json=web("busybox:2"), timeout=10)
    assert r.status_code in (200, 201), r.text
    want_v2 = {f"web/{i}": "busybox:2" for i in range(4)}
    rolling = wait_until(lambda: (cluster.get(a1, "/v1/jobs/web") or {}).get("rollout"), CONVERGE_DEADLINE_S,
                         "the rollout in the job view", cluster.report, interval_s=0.01)
    assert len(rolling["slots"]) == 4 and rolling["failed"] is None
    wait_until(lambda: images(cluster, procs) == want_v2, CONVERGE_DEADLINE_S, "v2 everywhere", cluster.report)
    after = {slot: tuple(b) for p in procs for slot, b in running(cluster, p).items()}
    detail = cluster.get(a3, "/v1/jobs/web")
    assert {x["container_hash"] for x in detail["slots"]} == {detail["container_hash"]}
    # Each slot got a newer ballot of its own holder's (it moved itself), on the same node.
    assert all(after[s][0] > before[s][0] for s in before), (before, after)

    def rollout_events():
        seen = []
        try:
            with httpx.stream("GET", f"{a3.api}/v1/events?history=1", timeout=2) as resp:
                for line in resp.iter_lines():
                    ev = json.loads(line) if line.strip() else {}
                    if str(ev.get("event", "")).startswith("rollout_"):
                        seen.append(ev)
                    if any(e["event"] == "rollout_done" for e in seen):
                        return seen
        except httpx.HTTPError:     # the stream went quiet before the rollout ended here
            return None
        return None
    events = wait_until(rollout_events, CONVERGE_DEADLINE_S, "rollout_done on a3", cluster.report)
    assert events[0]["event"] == "rollout_started" and events[0]["job"] == "web"
