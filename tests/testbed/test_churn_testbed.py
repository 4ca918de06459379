"""Churn on real Docker: a slow agent's false suspicions and a power cut.

Five nodes of scripts/testbed (own prefix `churn`, subnet 10.79.9, `local`
profile), one job of 20 busybox replicas.  Container starts are counted from
every dockerd (containers of the job created after the scene began):

- one agent is stalled again and again (SIGSTOP STALL_S, SIGCONT 0.5 s, for
  8 s): its peers suspect it, it refutes, mostly within the suspicion grace
  (auction/suspicion_rule.py, 0.3 s with `local`); each episode that
  outlives the grace may move at most the slots the node holds;
- the same node then loses power: its replicas start elsewhere, once each.

Root only; prints the counts (the README's testbed churn row).  Run with
SHOAL_TESTBED_PYTHON pointing at the project's interpreter when the
worktree has no .venv of its own.
"""

from __future__ import annotations

import os
import signal
import time

import pytest

import testbed_cluster as tc

pytestmark = [pytest.mark.skipif(os.geteuid() != 0, reason="scripts/testbed needs root"), pytest.mark.slow]

JOB, REPLICAS = "churn", 20
STALL_S = float(os.environ.get("SHOAL_CHURN_STALL_S", "0.35"))


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    with tc.own_testbed(tmp_path_factory.mktemp("churn"), "c", prefix="churn", subnet="10.79.9") as cl:
        cl.wait_all_up(90)
        yield cl


def _created(cl: tc.Cluster, nodes: list[int]) -> set[str]:
    return {c["Id"] for c in cl.containers(JOB, nodes, all=True)}


def test_false_suspicions_move_nothing_and_a_power_cut_moves_each_lost_replica_once(cluster):
    cl = cluster
    cl.submit(tc.job(JOB, REPLICAS, max_per_node=5))    # four or five a node: the victim holds some
    cl.wait(lambda: cl.each_slot_once(JOB, REPLICAS), 60, "every slot running once")
    time.sleep(2.0)     # the last claims and statuses settle
    victim = max(range(2, tc.N + 1), key=lambda i: len(cl.containers(JOB, [i])))
    held = len(cl.containers(JOB, [victim]))
    before = _created(cl, list(range(1, tc.N + 1)))
    needle = f"member suspected: {cl.name(victim)} "
    suspected_at_start = len(cl.log_lines(needle).splitlines())

    # 1. A slow agent: stalls shorter than a suspicion's grace and refutes.
    pid = cl.bed.status()["nodes"][victim - 1]["agent_pid"]
    t_end = time.monotonic() + 8.0
    try:
        while time.monotonic() < t_end:
            os.kill(pid, signal.SIGSTOP)
            time.sleep(STALL_S)
            os.kill(pid, signal.SIGCONT)
            time.sleep(0.5)
    finally:
        os.kill(pid, signal.SIGCONT)
    time.sleep(3.0)
    cl.wait(lambda: cl.each_slot_once(JOB, REPLICAS), 30, "every slot running once after the stalls")
    false_starts = len(_created(cl, list(range(1, tc.N + 1))) - before)
    suspected = len(cl.log_lines(needle).splitlines()) - suspected_at_start

    # 2. A power cut of the same node.
    survivors = [i for i in range(1, tc.N + 1) if i != victim]
    lost = len(cl.containers(JOB, [victim]))
    before = _created(cl, survivors)
    t0 = time.monotonic()
    cl.bed.run("kill", str(victim))
    cl.wait(lambda: cl.each_slot_once(JOB, REPLICAS, survivors), 60, "the victim's replicas running elsewhere")
    heal_s = time.monotonic() - t0
    kill_starts = len(_created(cl, survivors) - before)
    print(f"\ntestbed churn: false suspicions of {cl.name(victim)} logged {suspected}, starts {false_starts}; "
          f"power cut: {lost} slots lost, starts {kill_starts}, heal {heal_s:.2f} s")
    with cl.explained():
        assert suspected > 0, "the stalls must bring suspicions, or the scene shows nothing"
        assert false_starts <= held, "false suspicions cost more than the suspect's slots"
        assert kill_starts == lost, "each lost replica starts elsewhere once"
    cl.bed.run("start", str(victim))
    cl.stop_job(JOB)
