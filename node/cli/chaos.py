"""`shoal chaos sim | check | run`: fault campaigns with a verdict, for chaos testers.

How this works: each command parses its flags here and imports its engine
(node.chaos.*, which pulls in the simulator and the cores) only when it
runs, so `shoal --help` stays fast.

- `chaos sim` runs seeded fault campaigns on the deterministic simulator
  (node.chaos.simrun, one per seed) over the machine's cores
  (node.chaos.sweep), prints the per-invariant verdicts, per-fault figures
  and each failing seed with the command that replays it, and exits 1 if
  any invariant was violated (2 on bad flags).
- `chaos check` audits a live cluster through its agents' API
  (node.chaos.audit) and exits 1 if it finds a problem.
- `chaos run` plays a seeded campaign on a testbed instance of its own
  (node.chaos.liverun), writes report.json and report.html, prints the
  replay command, and exits 1 on a violation.
"""

from __future__ import annotations

import json
import sys
import time

from typing import Any

import click

from node.cli.client import client_options, fail

ALL_FAULTS = "kill,restart,partition,loss,delay,pause,engine-stall,clock-skew"


@click.group()
def chaos() -> None:
    """Fault campaigns and audits with invariant verdicts."""


@chaos.command("sim")
@click.option("--nodes", type=click.IntRange(2, 2000), default=8, show_default=True,
              help="Simulated agents per cluster.")
@click.option("--seeds", type=click.IntRange(1), default=100, show_default=True, help="How many seeds to run.")
@click.option("--from", "first", type=click.IntRange(0), default=0, show_default=True, help="First seed.")
@click.option("--faults", default=ALL_FAULTS, show_default=True, help="Fault kinds to draw from.")
@click.option("--jobs", "job_files", multiple=True, type=click.Path(exists=True, dir_okay=False),
              help="TOML job spec(s) to run instead of the default mix (repeatable).")
@click.option("--duration", type=click.FloatRange(1.0, 3600.0), default=30.0, show_default=True,
              help="Virtual seconds of faults per seed (then heal).")
@click.option("--workers", type=click.IntRange(1), default=None,
              help="Processes to run seeds in (default: one per core).")
@click.option("--json", "json_out", type=click.Path(dir_okay=False),
              help="Also write the summary and every seed's result to this file.")
def sim(nodes: int, seeds: int, first: int, faults: str, job_files: tuple[str, ...], duration: float,
        workers: int | None, json_out: str | None) -> None:
    """Seeded fault campaigns on the simulator, with invariant verdicts.

    Each seed: a cluster of NODES agents, a job mix (spread service, binpack
    service, one-per-node, constrained; or --jobs), DURATION virtual seconds
    of random faults while jobs are scaled, updated, stopped and resubmitted,
    then a full heal and convergence.  Checked: no node over capacity at any
    step; after convergence every desired slot runs exactly once and nothing
    else; every acknowledged job write is on every agent; awards are safe; no
    agent core raised.  Exit 1 on any violation.
    """
    import os

    kinds, job_dicts = _faults_and_jobs(faults, job_files)
    from node.chaos.simrun import SimOptions
    from node.chaos.sweep import render, summarize, sweep

    opts = SimOptions(nodes=nodes, faults=kinds, job_dicts=tuple(job_dicts), duration_s=duration)
    workers = workers or os.cpu_count() or 1
    step = max(1, seeds // 10)

    def progress(done: int, total: int) -> None:
        if total >= 50 and (done % step == 0 or done == total):
            click.echo(f"  {done}/{total} seeds", err=True)

    t0 = time.monotonic()
    results = sweep(first, seeds, opts, workers, progress)
    elapsed = time.monotonic() - t0
    summary = summarize(results)
    click.echo(render(summary, results, opts, job_files, elapsed, min(workers, seeds)), nl=False)
    if json_out:
        with open(json_out, "w", encoding="utf-8") as fh:
            json.dump({"summary": summary, "results": results}, fh, indent=1, default=str)
    sys.exit(1 if summary["failed"] else 0)


@chaos.command("check")
@client_options
@click.option("--wait", "wait_s", type=click.FloatRange(0, 3600), default=0.0, show_default=True,
              help="Repeat the audit every second until it is clean or this many seconds have passed.")
@click.option("--json", "as_json", is_flag=True, help="The report as JSON.")
def check(address: str, token: str | None, wait_s: float, as_json: bool) -> None:
    """Audit a live cluster: lost, doubled and unexplained replicas, nodes over capacity.

    Asks the agent at --address for the nodes, jobs and claims, and (through
    it) every live agent for the containers its runtime runs; compares the
    two.  Exit 0 when clean, 1 on a problem or when some live agent could
    not be audited.
    """
    import httpx

    from node.chaos.audit import collect, judge, render
    from node.cli.client import CLIENT_TIMEOUT_S, Client

    client = Client(address, token)

    def get(url: str | None, path: str):
        base = client.address if url is None else url.rstrip("/")
        try:
            r = httpx.get(base + path, headers=client.headers, verify=client.verify, timeout=CLIENT_TIMEOUT_S)
        except httpx.HTTPError as e:
            if url is None:
                fail(client.unreachable(e))
            raise OSError(str(e)) from None
        if r.status_code != 200:
            if url is None:
                fail(f"{path}: HTTP {r.status_code} from {base}: {r.text[:200]}")
            raise OSError(f"HTTP {r.status_code}")
        return r.json()

    deadline = time.monotonic() + wait_s
    while True:
        report = judge(collect(get))
        if report.clean or time.monotonic() >= deadline:
            break
        time.sleep(min(1.0, max(0.0, deadline - time.monotonic())))
    if as_json:
        click.echo(json.dumps(report.to_dict(), indent=2))
    else:
        click.echo(render(report), nl=False)
    sys.exit(0 if report.clean else 1)


def _faults_and_jobs(faults: str, job_files: tuple[str, ...]) -> tuple[Any, list[dict[str, Any]]]:
    """The --faults kinds and the --jobs files as spec dicts, shared by sim and run;
    a bad value is a usage error naming it."""
    from auction.spec import SpecError, load_toml
    from node.chaos.faultplan import parse_kinds

    try:
        kinds = parse_kinds(faults)
    except ValueError as e:
        raise click.BadParameter(str(e), param_hint="--faults") from None
    job_dicts = []
    for path in job_files:
        try:
            with open(path, encoding="utf-8") as fh:
                job_dicts.append(load_toml(fh.read()).to_dict())
        except (OSError, SpecError) as e:
            fail(f"{path}: {e}")
    return kinds, job_dicts


def _seconds(text: str) -> float:
    import re

    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*(s|m|h)?\s*", text)
    if not m:
        raise click.BadParameter(f"expected a duration like 90s, 10m or 1h, got {text!r}", param_hint="--duration")
    return float(m.group(1)) * {"s": 1, "m": 60, "h": 3600, None: 1}[m.group(2)]


@chaos.command("run")
@click.option("--nodes", type=click.IntRange(2, 50), default=5, show_default=True, help="Testbed nodes.")
@click.option("--duration", default="10m", show_default=True, help="Wall time of faults (90s, 10m, 1h).")
@click.option("--seed", type=click.IntRange(0), default=0, show_default=True, help="Seed of the fault schedule.")
@click.option("--faults", default=ALL_FAULTS, show_default=True,
              help="Fault kinds to draw from (clock-skew: the victim's agent restarted with its clock ahead, "
                   "its timers and wall clock 1-5 % fast or slow until the heal).")
@click.option("--jobs", "job_files", multiple=True, type=click.Path(exists=True, dir_okay=False),
              help="TOML job spec(s) to run instead of the default mix (repeatable).")
@click.option("--mean-gap", type=click.FloatRange(1.0), default=20.0, show_default=True,
              help="Mean seconds between faults.")
@click.option("--out", "out_dir", type=click.Path(file_okay=False), default=None,
              help="Where report.json and report.html go (default chaos-run-SEED).")
@click.option("--prefix", default="shoal-cx", show_default=True,
              help="Testbed instance (namespaces, dirs) of this run: another testbed is never touched.")
@click.option("--subnet", default="10.79.0", show_default=True, help="The instance's /24 (first three octets).")
@click.option("--keep", is_flag=True, help="Leave the testbed up afterwards.")
def run(nodes: int, duration: str, seed: int, faults: str, job_files: tuple[str, ...], mean_gap: float,
        out_dir: str | None, prefix: str, subnet: str, keep: bool) -> None:
    """A seeded fault campaign on the namespace testbed (root only).

    Brings up a testbed of NODES machines with their own dockerds, deploys
    the job mix, injects a seeded schedule of faults while scaling,
    updating, stopping and resubmitting jobs, heals and waits for
    convergence; judges from every node's dockerd.  Writes report.json and
    report.html (with a timeline) and prints the replay command.  Exit 1 on
    a violation.
    """
    import os
    from pathlib import Path

    if os.geteuid() != 0:
        fail("shoal chaos run needs root (the testbed's namespaces and dockerds)")
    kinds, job_dicts = _faults_and_jobs(faults, job_files)
    from node.chaos.liverun import RunOptions, replay_command, run_campaign, write_report
    from node.chaos.testbed import TestbedError

    opts = RunOptions(nodes=nodes, duration_s=_seconds(duration), seed=seed, faults=kinds,
                      job_dicts=tuple(job_dicts), mean_gap_s=mean_gap, prefix=prefix, subnet=subnet, keep=keep)
    try:
        result = run_campaign(opts, lambda msg: click.echo(f"chaos run: {msg}", err=True))
    except TestbedError as e:
        fail(str(e))
    result["replay"] = replay_command(opts, list(job_files))
    js, html = write_report(result, Path(out_dir or f"chaos-run-{seed}"))
    for name, msgs in result["violations"].items():
        click.echo(f"  {name:<14} {'PASS' if not msgs else 'FAIL  ' + msgs[0]}")
    click.echo(f"converged {result['converged_after_heal_s']} s after the heal; report: {html} and {js}")
    click.echo(f"replay: {result['replay']}")
    sys.exit(0 if result["ok"] else 1)
