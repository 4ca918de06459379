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


def toml(image: str, **update) -> str:
    extra = "".join(f"{k} = {json.dumps(v)}\n" for k, v in update.items())
    return (f'name = "web"\nimage = "{image}"\ncpu = 0.25\nmemory = "64MiB"\nreplicas = 4\n'
            f'[update]\nmax_parallel = 2\nmin_healthy_s = 0.5\nhealthy_deadline_s = 10\n{extra}')


def test_job_run_shows_the_diff_then_follows_the_rollout_and_a_canary_waits_for_promote(agents, tmp_path):
    from test_real_jobs import shoal

    cluster = agents
    procs = three(cluster)
    a1, a2, a3 = procs
    spec = tmp_path / "web.toml"
    spec.write_text(toml("busybox:1"))
    out = shoal("job", "run", str(spec), "--timeout", "30", "--address", a1.api)
    assert out.returncode == 0, out.stderr

    spec.write_text(toml("busybox:2"))
    out = shoal("job", "run", str(spec), "--timeout", "30", "--address", a2.api)
    print(out.stderr)
    assert out.returncode == 0, out.stderr
    assert "image  busybox:1  ->  busybox:2" in out.stderr           # the plan's diff first
    assert "(old version " in out.stderr                              # slots seen on v1 while it rolled
    assert "web: rollout to " in out.stderr and "4/4 on the new version" in out.stderr
    assert "all 4 replicas of web running" in out.stderr.splitlines()[-1]
    assert images(cluster, procs) == {f"web/{i}": "busybox:2" for i in range(4)}

    # A canary: the watch ends (0) once it is healthy, saying the rest wait; a promote lets them follow.
    spec.write_text(toml("busybox:3", canary=1))
    out = shoal("job", "run", str(spec), "--timeout", "30", "--address", a3.api)
    print(out.stderr)
    assert out.returncode == 0, out.stderr
    assert "the rest wait for `shoal job promote web`" in out.stderr
    assert sorted(images(cluster, procs).values()) == ["busybox:2"] * 3 + ["busybox:3"]
    assert shoal("job", "promote", "web", "--address", a1.api).returncode == 0
    want = {f"web/{i}": "busybox:3" for i in range(4)}
    wait_until(lambda: images(cluster, procs) == want, CONVERGE_DEADLINE_S, "v3 everywhere", cluster.report)
