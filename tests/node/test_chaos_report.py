"""`shoal chaos run`'s pieces that need no testbed: the default job mix, the
replay command, durations, and the HTML report with its timeline."""

from __future__ import annotations

import re

import pytest
from click.testing import CliRunner

from auction.spec import validate
from node.chaos.liverun import RunOptions, default_jobs, replay_command
from node.chaos.report_html import render_html
from node.cli.chaos import _seconds
from node.cli.main import cli


def test_the_default_mix_is_valid_and_has_each_kind_of_job():
    specs = [validate(d) for d in default_jobs(5)]
    assert {s.name for s in specs} == {"web", "batch", "solo", "pinned", "agent"}
    assert any(s.max_per_node == 1 for s in specs) and any(s.constraints for s in specs)
    assert [s.name for s in specs if s.is_global] == ["agent"]
    assert {s.strategy.value for s in specs} == {"spread", "binpack"}


def test_a_global_job_is_judged_per_node_one_copy_on_each():
    from node.chaos.invariants import global_problems

    running = {1: ["agent/0", "web/1"], 2: ["agent/3", "agent/4"], 3: [], 4: None}     # 4: engine not sampled
    assert global_problems(running, ["agent"]) == ["agent runs 2 times on node 2", "agent runs nowhere on node 3"]
    assert global_problems({1: ["agent/7"], 2: ["agent/0"]}, ["agent"]) == []          # any index, one each


def test_the_replay_command_names_every_choice():
    opts = RunOptions(nodes=4, duration_s=180, seed=9, faults=("kill", "partition"))
    assert replay_command(opts, ["a.toml"]) == ("shoal chaos run --nodes 4 --duration 180s --seed 9 "
                                                "--faults kill,partition --jobs a.toml")


@pytest.mark.parametrize("text,seconds", [("90s", 90), ("10m", 600), ("1h", 3600), ("45", 45)])
def test_durations(text, seconds):
    assert _seconds(text) == seconds


def test_run_refuses_a_bad_duration_or_fault_kind_before_touching_anything():
    res = CliRunner().invoke(cli, ["chaos", "run", "--faults", "kill,meteor"])
    assert res.exit_code != 0
    assert "meteor" in res.output or "root" in res.output


def result(**over):
    r = {
        "options": {"nodes": 3, "duration_s": 60, "seed": 1, "faults": ["kill", "partition"]},
        "dropped_faults": ["clock-skew"], "ok": False,
        "violations": {"no-overcommit": ["t=30.0: node 2 runs 2100m cpu over its capacity"], "exactly-once": [],
                       "acked-writes": [], "no-crash": [], "converges": []},
        "deployed_s": 2.0, "heal_t": 61.0, "converged_after_heal_s": 4.0, "acked_writes": 5,
        "faults": [{"kind": "kill", "start": 10.0, "end": 61.0, "nodes": [3], "detect_s": 2.5, "replace_s": 1.0,
                    "converge_s": 4.0},
                   {"kind": "partition", "start": 20.0, "end": 40.0, "nodes": [2], "detect_s": 1.0,
                    "replace_s": 0.5, "converge_s": 1.0}],
        "doubled": [{"slot": "web/1", "start": 22.0, "end": 42.0, "during": ["partition"]}],
        "actions": [{"t": 10.0, "what": "kill node 3", "ok": True, "detail": ""}],
        "samples": [{"t": t, "desired": {"web": 2}, "counts": {"web/0": 1, "web/1": 1 if t < 30 else 0},
                     "faults": []} for t in range(0, 70, 5)],
        "replay": "shoal chaos run --nodes 3 --duration 60s --seed 1 --faults kill,partition",
    }
    r.update(over)
    return r


def test_the_report_shows_verdicts_replay_and_a_timeline_with_bands_jobs_and_violations():
    page = render_html(result())
    assert "<title>shoal chaos run: FAIL</title>" in page
    assert "shoal chaos run --nodes 3 --duration 60s --seed 1 --faults kill,partition" in page
    assert "award-safety</td><td>not checked here" in page
    assert "not on the testbed: clock-skew" in page
    svg = page[page.index("<svg"):page.index("</svg>")]
    assert len(re.findall(r"<rect ", svg)) == 2  # one band per fault
    assert svg.count("<polyline") == 2  # web: desired and running
    assert 'fill="red"' in svg and "over its capacity" in svg  # the violation, at its time
    assert ">heal<" in svg and ">converged<" in svg
    assert "web/1</td><td>22.0" in page  # the doubled copy


def test_the_timeline_charts_a_global_job_as_nodes_wanted_and_copies_running():
    from node.chaos.report_html import _per_job

    samples = [{"t": 0, "desired": {"web": 1}, "desired_global": {"agent": 3},
                "counts": {"web/0": 1, "agent/0": 1, "agent/4": 1}},
               {"t": 5, "desired": {"web": 1}, "desired_global": {"agent": 2},      # a node's engine stalled
                "counts": {"web/0": 1, "agent/0": 1, "agent/4": 1, "agent/5": 0}}]
    assert _per_job(samples) == {"agent": [(0, 3, 2), (5, 2, 2)], "web": [(0, 1, 1), (5, 1, 1)]}


def test_a_passing_report_says_so():
    page = render_html(result(ok=True, violations={k: [] for k in ("no-overcommit", "exactly-once")}))
    assert "<h1>shoal chaos run: PASS</h1>" in page and 'fill="red"' not in page


def test_the_report_shows_what_the_live_audit_said():
    page = render_html(result(audit={"clean": False, "problems": [{"message": "web/1 runs 2 times"}],
                                     "warnings": []}))
    assert "found:<ul><li>web/1 runs 2 times</li>" in page
    assert "clean." in render_html(result(audit={"clean": True, "problems": [], "warnings": []}))


def test_the_report_says_how_the_testbed_played_a_kind():
    page = render_html(result(live_notes=["clock-skew on the testbed: a forward jump that stays, no drift"]))
    assert "<li>clock-skew on the testbed: a forward jump that stays, no drift</li>" in page


def _campaign(monkeypatch):
    from node.chaos.liverun import Campaign

    c = Campaign(RunOptions(nodes=4, duration_s=60, seed=1, prefix="cxt", subnet="10.80.250"), lambda m: None)
    calls = []

    class Done:
        returncode, stderr = 0, ""

    monkeypatch.setattr(c.tb, "run", lambda *a, **k: calls.append(a) or Done())
    return c, calls


def test_an_engine_stall_freezes_and_thaws_the_victims_engine(monkeypatch):
    from node.chaos.faultplan import Fault

    c, calls = _campaign(monkeypatch)
    c.plan = [Fault("engine-stall", 5.0, 9.0, (2,))]
    for _, act in c.fault_actions(c.plan[0]):
        act()
    assert calls == [("stall", "3"), ("unstall", "3")]
    assert c.stalled(6.0) == {3} and c.stalled(20.0) == set()  # not sampled while frozen


def test_clock_skew_restarts_the_agent_ahead_and_drifting_until_the_heal_unless_the_victim_is_down(monkeypatch):
    from node.chaos.faultplan import Fault

    c, calls = _campaign(monkeypatch)
    skew = Fault("clock-skew", 0.0, 60.0, (1,), 1.02, 1.25)
    c.plan = [skew]
    c.fault_actions(skew)[0][1]()
    assert calls == [("restart-agent", "2", "--clock-offset", "1.250", "--clock-rate", "1.0200")]
    c.heal_all()  # the drift ends at the heal; the offset it reached stays
    assert calls[-1] == ("restart-agent", "2", "--clock-rate", "1")
    assert sum(1 for call in calls if call[0] == "restart-agent") == 2
    calls.clear()
    c.plan = [Fault("pause", 0.0, 1e9, (1,)), skew]  # node 2's agent is frozen now
    c.skew(skew)
    assert calls == [] and "skipped" in c.actions[-1]["detail"]
    c.heal_all()
    assert not any(call[0] == "restart-agent" for call in calls)


def test_a_node_left_by_a_bigger_earlier_run_is_not_a_crash(monkeypatch, tmp_path):
    c, _ = _campaign(monkeypatch)  # 4 nodes
    c.tb.info = {"nodes": [{"index": i, "name": f"cxt-{i}", "agent_pid": 100 + i if i <= 4 else None,
                            "state_dir": str(tmp_path)} for i in range(1, 6)]}
    monkeypatch.setattr(c.tb, "api", lambda *a, **k: (200, []))
    monkeypatch.setattr(c.tb, "status", lambda: c.tb.info)
    c.final_checks(1.0)
    assert c.violations["no-crash"] == []
    c.tb.info["nodes"][3]["agent_pid"] = None  # node 4 of this run: its agent is gone
    c.final_checks(1.0)
    assert c.violations["no-crash"] == ["cxt-4: its agent is not running after the heal"]
