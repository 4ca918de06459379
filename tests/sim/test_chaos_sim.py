"""`shoal chaos sim`: seeded fault campaigns on the simulator, and that their
checkers see what they must.

The CI campaign runs 100 seeds of 4-node clusters with every fault kind:
process deaths (kill, restart), partitions, loss, delay, pauses, engine stalls
and clock skew; the `large` tier (`scripts/test --large`) runs the next 300.
`test_a_restarted_agent_keeps_within_its_capacity` pins a bug that
kept kill and restart out of it until fixed: an agent restarted with claims
on disk bid with their room before it reserved them.
"""

from __future__ import annotations

import dataclasses
import time

import pytest
from click.testing import CliRunner

from node.chaos import invariants as inv
from node.chaos.simrun import SimOptions, run_seed
from node.cli.main import cli

CI_FAULTS = "kill,restart,partition,loss,delay,pause,engine-stall,clock-skew"


def chaos_sim(*args: str):
    return CliRunner().invoke(cli, ["chaos", "sim", *args], catch_exceptions=False)


# Seeds 0-99 in every suite run (about 40 s of CPU on an idle 2-core machine,
# the suite's largest simulation); 100-399 in the large tier.  Before a
# release or after a placement change, sweep more by hand: `shoal chaos sim
# --nodes 4 --seeds 1000 --from 400 --faults <CI_FAULTS> --duration 20`.
CAMPAIGNS = [pytest.param(0, 100, id="ci"),
             pytest.param(100, 300, marks=pytest.mark.large, id="large")]


@pytest.mark.slow
@pytest.mark.timeout(600)
@pytest.mark.parametrize("first,seeds", CAMPAIGNS)
def test_seeds_of_faults_leave_no_violation(first: int, seeds: int):
    t0 = time.monotonic()
    res = chaos_sim("--nodes", "4", "--seeds", str(seeds), "--from", str(first), "--duration", "20",
                    "--faults", CI_FAULTS, "--workers", "2")
    took = time.monotonic() - t0
    assert res.exit_code == 0, res.output
    assert "0 violations" in res.output
    for name in inv.INVARIANTS:
        assert f"{name}" in res.output
    assert "FAIL" not in res.output
    print(f"seeds {first}-{first + seeds - 1} in {took:.1f} s")


@pytest.mark.parametrize("plant,invariant,words", [
    ("doubled", inv.EXACTLY_ONCE, "web/0 doubled"),
    ("overcommit", inv.OVERCOMMIT, "over its capacity"),
    ("lost-write", inv.ACKED_WRITES, "lost the acknowledged write of web"),
])
def test_the_checkers_catch_a_planted_violation(plant, invariant, words):
    r = run_seed(3, SimOptions(nodes=5, faults=("loss", "partition"), duration_s=10, converge_timeout_s=15,
                               plant=plant))
    assert not r["ok"]
    assert any(words in v for v in r["violations"][invariant]), r["violations"]


def test_without_a_plant_the_same_seed_passes():
    r = run_seed(3, SimOptions(nodes=5, faults=("loss", "partition"), duration_s=10, converge_timeout_s=15))
    assert r["ok"], r["violations"]
    assert r["writes"]["acknowledged"] > 0
    assert any(f["kind"] == "partition" and f["detect_s"] is not None for f in r["faults"]), r["faults"]


def test_a_seed_replays_exactly():
    opts = SimOptions(nodes=5, duration_s=15)
    a, b = run_seed(11, opts), run_seed(11, opts)
    assert a["plan"] == b["plan"] and a["workload"] == b["workload"]
    assert a["faults"] == b["faults"] and a["doubled"] == b["doubled"]


def test_a_failing_seed_is_listed_with_the_command_that_replays_it(monkeypatch):
    import node.chaos.sweep as sweep

    def planted(seed, opts):
        return run_seed(seed, dataclasses.replace(opts, plant="lost-write"))

    monkeypatch.setattr(sweep, "run_seed", planted)
    res = chaos_sim("--nodes", "5", "--seeds", "1", "--from", "3", "--duration", "10", "--faults", "loss")
    assert res.exit_code == 1, res.output
    assert "acked-writes   FAIL  seeds 3" in res.output
    assert "replay: shoal chaos sim --nodes 5 --seeds 1 --from 3 --faults loss --duration 10" in res.output
    assert "VIOLATIONS in 1 of 1 seeds" in res.output


def test_an_unknown_fault_kind_is_refused():
    res = CliRunner().invoke(cli, ["chaos", "sim", "--faults", "kill,meteor"])
    assert res.exit_code == 2
    assert "unknown fault kind(s) meteor" in res.output


def test_a_restarted_agent_keeps_within_its_capacity():
    r = run_seed(18, SimOptions(nodes=5, duration_s=20))
    assert not r["violations"][inv.OVERCOMMIT], r["violations"][inv.OVERCOMMIT]


def test_a_fault_plan_keeps_a_majority_up_and_spares_node_0():
    import random

    from node.chaos.faultplan import KINDS, draw_plan

    for seed in range(50):
        plan = draw_plan(random.Random(seed), 9, KINDS, 0.0, 120.0, mean_gap_s=2.0)
        assert plan == draw_plan(random.Random(seed), 9, KINDS, 0.0, 120.0, mean_gap_s=2.0)
        downs = [f for f in plan if f.kind in ("kill", "restart", "pause", "engine-stall")]
        assert all(0 not in f.nodes for f in downs)
        for t in [f.start_s for f in plan]:
            assert sum(1 for f in downs if f.start_s <= t < f.end_s) <= 3, (seed, t)
        for kind in ("partition", "loss", "delay"):  # one window of each at a time
            spans = sorted((f.start_s, f.end_s) for f in plan if f.kind == kind)
            assert all(a[1] <= b[0] for a, b in zip(spans, spans[1:])), (seed, kind)
        assert all(0.0 <= f.start_s <= f.end_s <= 120.0 for f in plan)


def test_jobs_files_replace_the_mix_and_too_big_a_mix_skips_exactly_once(tmp_path):
    small = tmp_path / "small.toml"
    small.write_text('name = "api"\nimage = "busybox"\ncpu = 0.1\nmemory = "64MiB"\nreplicas = 3\n')
    res = chaos_sim("--nodes", "4", "--seeds", "2", "--duration", "5", "--faults", "loss", "--jobs", str(small))
    assert res.exit_code == 0, res.output
    assert "skipped" not in res.output
    big = tmp_path / "big.toml"
    big.write_text('name = "hog"\nimage = "busybox"\ncpu = 1\nmemory = "64MiB"\nreplicas = 40\n')
    res = chaos_sim("--nodes", "4", "--seeds", "1", "--duration", "5", "--faults", "loss", "--jobs", str(big))
    assert "exactly-once   PASS  (1 seed(s) skipped: jobs over a comfortable fit)" in res.output, res.output


PRIORITY_MIX = (
    {"name": "web", "image": "busybox", "cpu": 0.5, "memory": "256MiB", "replicas": 10, "strategy": "spread",
     "priority": 20},
    {"name": "batch", "image": "busybox", "cpu": 1.0, "memory": "512MiB", "replicas": 8, "priority": 40},
    {"name": "api", "image": "busybox", "cpu": 0.5, "memory": "256MiB", "replicas": 6, "priority": 70,
     "max_per_node": 2},
    {"name": "agent", "image": "busybox", "mode": "global", "cpu": 0.25, "memory": "64MiB", "priority": 80},
)


@pytest.mark.parametrize("seed", [239, 273])
def test_preemption_under_faults_never_runs_a_node_over_its_capacity(seed):
    # Seeds `shoal chaos sim` failed with this mix: a node released a replica
    # for its global slot, and an award of its own in the same tick started a
    # replica on the room left over before that one was stopped.
    r = run_seed(seed, SimOptions(nodes=4, job_dicts=PRIORITY_MIX))
    assert r["preempted"] > 0
    assert r["ok"], {k: v for k, v in r["violations"].items() if v}
