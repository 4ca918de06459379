"""`shoal chaos check`: auditing a live cluster's claims against its runtimes.

The judge is tested on snapshots with each kind of problem; the whole
command on three real agents on loopback (fake runtime): clean once a job
runs, and catching a slot that fits nowhere (lost) and a container planted
behind the agents' backs (doubled and unexplained).
"""

from __future__ import annotations

import json

import httpx
import pytest
from click.testing import CliRunner
from test_real_jobs import CONVERGE_DEADLINE_S, cluster, shoal, spec, three, wait_until  # noqa: F401 -- fixture

from node.chaos import audit
from node.chaos.audit import Snapshot, judge
from node.cli.main import cli

GiB = 1 << 30


def snapshot(**over) -> Snapshot:
    """Two 1-cpu nodes; job web (2 replicas of 0.5 cpu) on n1 and n2, running."""
    cap = {"cpu_millis": 1000, "memory_bytes": 2 * GiB, "disk_bytes": 0}
    snap = Snapshot(
        nodes={n: {"name": n, "status": "alive", "capacity": cap} for n in ("n1", "n2")},
        jobs={"web": {"name": "web", "replicas": 2,
                      "spec": {"name": "web", "image": "busybox", "cpu": 0.5, "memory": "256MiB", "replicas": 2},
                      "slots": [{"index": 0, "slot": "web/0", "node": "n1"},
                                {"index": 1, "slot": "web/1", "node": "n2"}]}},
        containers={"n1": [{"slot": "web/0", "state": "running"}], "n2": [{"slot": "web/1", "state": "running"}]},
    )
    for k, v in over.items():
        setattr(snap, k, v)
    return snap


def kinds(report) -> list[tuple[str, str]]:
    return [(f.kind, f.subject) for f in report.problems]


def test_a_cluster_whose_runtimes_match_its_claims_is_clean():
    report = judge(snapshot())
    assert report.clean, report
    assert report.counts["running_containers"] == 2


def test_a_slot_no_runtime_runs_is_lost():
    report = judge(snapshot(containers={"n1": [{"slot": "web/0", "state": "running"}],
                                        "n2": [{"slot": "web/1", "state": "exited"}]}))
    assert kinds(report) == [("lost", "web/1")]
    assert "claimed by n2" in report.problems[0].message


def test_a_container_behind_the_agents_backs_is_doubled_and_unexplained():
    report = judge(snapshot(containers={"n1": [{"slot": "web/0", "state": "running"},
                                               {"slot": "web/1", "state": "running"},
                                               {"slot": "ghost/0", "state": "running"}],
                                        "n2": [{"slot": "web/1", "state": "running"}]}))
    assert sorted(kinds(report)) == [("doubled", "web/1"), ("unexplained", "ghost/0"), ("unexplained", "web/1")]


def test_a_node_running_more_than_its_capacity_is_over_capacity():
    three_on_n1 = [{"slot": f"web/{i}", "state": "running"} for i in range(3)]
    snap = snapshot(containers={"n1": three_on_n1, "n2": []})
    snap.jobs["web"]["replicas"] = 3
    snap.jobs["web"]["slots"] = [{"index": i, "slot": f"web/{i}", "node": "n1"} for i in range(3)]
    assert kinds(judge(snap)) == [("over-capacity", "n1")]


def test_a_global_jobs_slots_are_its_nodes_not_a_count():
    """A global job's slots have gaps (a dead node keeps its index) and a
    pending row per node that runs none: neither is lost or unexplained."""
    snap = snapshot()
    snap.jobs["logs"] = {"name": "logs", "mode": "global", "replicas": 3,
                         "spec": {"name": "logs", "image": "busybox", "mode": "global"},
                         "slots": [{"index": 0, "slot": "logs/0", "node": "n1"},
                                   {"index": 2, "slot": "logs/2", "node": "n2"},
                                   {"index": None, "slot": "logs@n3", "node": "n3", "state": "pending"}]}
    snap.containers["n1"].append({"slot": "logs/0", "state": "running"})
    snap.containers["n2"].append({"slot": "logs/2", "state": "running"})
    assert judge(snap).clean
    snap.containers["n2"].pop()
    assert kinds(judge(snap)) == [("lost", "logs/2")]


def test_a_node_it_cannot_list_makes_the_audit_incomplete_not_clean():
    report = judge(snapshot(containers={"n1": [{"slot": "web/0", "state": "running"}]},
                            unaudited={"n2": "asking it failed"}))
    assert not report.problems  # web/1's holder could not be asked: not called lost
    assert not report.clean and "n2: containers not listed (asking it failed)" in report.warnings


def test_agents_that_disagree_on_a_holder_are_reported():
    report = judge(snapshot(claims={"n1": {"web/0": "n1", "web/1": "n2"}, "n2": {"web/0": "n2", "web/1": "n2"}}))
    assert any("disagree on who holds web/0" in w for w in report.warnings), report.warnings


@pytest.mark.real
def test_check_on_real_agents_is_clean_then_catches_planted_problems(cluster, monkeypatch):  # noqa: F811
    a1, a2, a3 = three(cluster)
    r = httpx.post(f"{a1.api}/v1/jobs", json=spec("web", replicas=4), timeout=10)
    assert r.status_code == 201, r.text

    def clean() -> bool:
        return shoal("chaos", "check", "--address", a2.api).returncode == 0

    wait_until(clean, CONVERGE_DEADLINE_S, "the audit to be clean", cluster.report, interval_s=0.5)
    out = shoal("chaos", "check", "--address", a3.api, "--json")
    report = json.loads(out.stdout)
    assert report["clean"] and report["counts"]["audited"] == 3 and report["counts"]["running_containers"] == 4

    # A slot that fits nowhere (4 cpu on 2-cpu nodes) is lost.
    r = httpx.post(f"{a1.api}/v1/jobs", json=spec("huge", cpu=4), timeout=10)
    assert r.status_code == 201, r.text
    wait_until(lambda: "huge/0 runs nowhere" in shoal("chaos", "check", "--address", a1.api).stdout,
               CONVERGE_DEADLINE_S, "huge/0 reported lost", cluster.report, interval_s=0.5)
    out = shoal("chaos", "check", "--address", a1.api)
    assert out.returncode == 1 and "huge/0 runs nowhere (not placed)" in out.stdout, out.stdout
    httpx.delete(f"{a1.api}/v1/jobs/huge", timeout=10)

    # A container started behind the agents' backs: a second web/0 on a node that does not hold it.
    real_collect = audit.collect

    def planted(get):
        snap = real_collect(get)
        holder = next(s["node"] for s in snap.jobs["web"]["slots"] if s["slot"] == "web/0")
        other = next(n for n in sorted(snap.containers) if n != holder)
        snap.containers[other].append({"slot": "web/0", "state": "running", "name": "planted"})
        return snap

    monkeypatch.setattr(audit, "collect", planted)
    res = CliRunner().invoke(cli, ["chaos", "check", "--address", a1.api])
    print(res.output)
    assert res.exit_code == 1, res.output
    assert "web/0 runs 2 times" in res.output and "web/0 runs on" in res.output, res.output
