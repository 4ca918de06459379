"""`shoal job run` watching a rollout (node.cli.progress, node.cli.rollout_progress)
against a scripted agent: each read of the job gives the next answer of a script,
as an agent would while the rollout moves."""

from __future__ import annotations

import httpx
from node.cli.progress import EXIT_ERROR, EXIT_NOT_RUNNING, EXIT_OK, follow_progress

OLD, NEW, BACK = "a" * 12, "b" * 12, "a" * 12


def slot(i, h, runtime="running"):
    return {"index": i, "slot": f"web/{i}", "state": "placed", "node": f"n{i}", "runtime": runtime,
            "runtime_reason": "health check failed" if runtime == "failed" else None, "container_hash": h}


def detail(hashes, states=None, *, job=NEW, runtimes=None, failed=None, waiting=False, auto_revert=False):
    runtimes = runtimes or ["running"] * len(hashes)
    rollout = None if states is None else {"target": job + "0" * 52, "slots": states, "failed": failed,
                                          "waiting_promotion": waiting, "promoted": False}
    return {"name": "web", "container_hash": job, "spec": {"update": {"auto_revert": auto_revert}},
            "slots": [slot(i, h, r) for i, (h, r) in enumerate(zip(hashes, runtimes))], "rollout": rollout}


class Agent:
    """Answers GET /v1/jobs/web from a script (the last answer repeats), the
    blocking query at once, and the history."""

    def __init__(self, script, history=None):
        self.script, self.history, self.reads = list(script), history, 0

    def handle(self, request: httpx.Request) -> httpx.Response:
        if request.url.path == "/v1/jobs/web":
            answer = self.script[min(self.reads, len(self.script) - 1)]
            self.reads += 1
            return httpx.Response(200, json=answer)
        if request.url.path == "/v1/jobs/web/history":
            return httpx.Response(200, json=self.history)
        if request.url.path == "/v1/jobs":
            return httpx.Response(200, json=[], headers={"X-Shoal-Index": str(self.reads)})
        return httpx.Response(404, json={"error": "no"})


class Client:
    address, headers = "http://agent", {}


def watch(agent, timeout_s=30.0):
    lines: list[str] = []
    now = [0.0]

    def clock():
        now[0] += 0.5       # each look at the clock: half a second later
        return now[0]

    code = follow_progress(Client(), ["web"], timeout_s, out=lines.append, clock=clock,
                           transport=httpx.MockTransport(agent.handle))
    return code, "\n".join(lines)


P, H, S = "new-pending", "new-healthy", "old-serving"


def test_a_rollout_is_followed_until_every_slot_is_healthy_on_the_new_version():
    agent = Agent([
        detail([OLD, OLD, OLD], None),                     # the agent has not started it yet
        detail([NEW, OLD, OLD], [P, S, S]),
        detail([NEW, OLD, OLD], [H, S, S]),
        detail([NEW, NEW, NEW], [H, P, P]),
        detail([NEW, NEW, NEW], [H, H, H]),
        detail([NEW, NEW, NEW], None),                     # the rollout ended
    ])
    code, text = watch(agent)
    print(text)
    assert code == EXIT_OK
    assert f"web/1  running on n1 (old version {OLD})" in text
    assert "web/0  running on n0 (new version, not yet healthy)" in text
    assert "web/0  running on n0 (new version, healthy)" in text
    assert f"web: rollout to {NEW}: 1/3 on the new version, 0/3 healthy, 0 failed" in text
    assert f"web: rollout to {NEW}: 3/3 on the new version, 3/3 healthy, 0 failed" in text
    assert text.rstrip().endswith("all 3 replicas of web running after 3.0 s") or "all 3 replicas of web running" \
        in text.splitlines()[-1]


def test_a_rollout_whose_last_steps_go_by_between_two_reads_still_ends_with_its_full_line():
    agent = Agent([
        detail([NEW, OLD, OLD], [H, S, S]),
        detail([NEW, NEW, NEW], None),                     # the rest rolled, and it ended, between reads
    ])
    code, text = watch(agent)
    print(text)
    assert code == EXIT_OK
    assert f"web: rollout to {NEW}: 1/3 on the new version, 1/3 healthy, 0 failed" in text
    assert f"web: rollout to {NEW}: 3/3 on the new version, 3/3 healthy, 0 failed" in text
    assert text.count("3/3 on the new version") == 1
    assert "all 3 replicas of web running" in text.splitlines()[-1]


def test_a_failed_rollout_with_auto_revert_waits_for_the_revert_and_exits_1_naming_it():
    history = {"name": "web", "versions": [
        {"version": "2", "current": False, "why": "submit"},
        {"version": "3", "current": False, "why": "submit"},
        {"version": "4", "current": True, "why": "revert", "ref": "3", "image": "app:2"}]}
    agent = Agent([
        detail([NEW, OLD, OLD], [P, S, S], auto_revert=True),
        detail([NEW, OLD, OLD], [P, S, S], runtimes=["failed", "running", "running"], auto_revert=True),
        detail([NEW, OLD, OLD], [P, S, S], runtimes=["failed", "running", "running"], auto_revert=True,
               failed="slot 0 not healthy within 8 s"),
        detail([OLD, OLD, OLD], [S, S, S], job=BACK),      # the revert is the job's version now
    ], history)
    code, text = watch(agent)
    print(text)
    assert code == EXIT_ERROR
    assert "web/0  failed on n0: health check failed" in text
    assert "1 failed; the rollout failed: slot 0 not healthy within 8 s" in text
    assert "waiting for its automatic revert" in text
    assert "failed and was reverted: version 4 (revert from 3) runs app:2 again" in text


def test_a_failed_rollout_without_auto_revert_exits_1_at_once():
    agent = Agent([detail([NEW, OLD], [P, S], runtimes=["failed", "running"], failed="no progress within 5 s")])
    code, text = watch(agent)
    assert code == EXIT_ERROR
    assert "failed (no progress within 5 s) and stopped" in text and "shoal job rollback web" in text


def test_canaries_waiting_for_a_promote_end_the_watch_with_0_saying_so():
    agent = Agent([detail([NEW, OLD, OLD], [P, S, S]), detail([NEW, OLD, OLD], [H, S, S], waiting=True)])
    code, text = watch(agent)
    assert code == EXIT_OK
    assert "the rest wait for `shoal job promote web`" in text


def test_a_stuck_rollout_times_out_with_2_and_progress_extends_the_wait():
    stuck = detail([NEW, OLD], [P, S])
    still = Agent([stuck])
    code, text = watch(still, timeout_s=10.0)
    assert code == EXIT_NOT_RUNNING
    tail = text.split("not all replicas run after 10 s:")[1]
    assert f"web/1  running on n1 (old version {OLD})" in tail
    # One slot turns healthy after a while: the wait counts again from then.
    healthy = detail([NEW, OLD], [H, S])
    moving = Agent([stuck] * 3 + [healthy])
    code, text = watch(moving, timeout_s=10.0)
    assert code == EXIT_NOT_RUNNING
    assert moving.reads > still.reads + 2, (moving.reads, still.reads)
