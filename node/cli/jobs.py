"""`shoal job run | status | stop`: submit, inspect and stop jobs (versions:
history, rollback, scale, restart, promote, plan are node.cli.versions).

How this works: `job run` validates the TOML spec locally (auction.spec),
submits it, prints its name once stored, and follows its replicas with
node.cli.progress until all run (exit 0), some cannot by --timeout (exit 2),
or it is detached; `status` formats /v1/jobs as tables.
"""

from __future__ import annotations

import json
import sys
from typing import Any
from urllib.parse import quote

import click

from node.cli.client import Client, client_options, table
from node.cli.specfile import load_spec_file


def _ballot(b: dict[str, Any] | None) -> str:
    return f"{b['round']}@{b['coordinator']}" if b else "-"


def _replicas(j: dict[str, Any], long: bool = False) -> str:
    """A job's count; a global job's is its nodes' (one replica each)."""
    n = j.get("replicas", "?")
    if j.get("mode") == "global":
        return f"global: {n} node{'s' if n != 1 else ''}" if long else f"{n} (global)"
    return f"{n} replicas" if long else str(n)


def _index(s: dict[str, Any]) -> str:
    # A global job's node that has no slot yet has no index.
    return "-" if s.get("index") is None else str(s["index"])


def format_jobs(jobs: list[dict[str, Any]]) -> str:
    if not jobs:
        return "no jobs\n"
    rows = [("Name", "Replicas", "Placed", "Running", "Pending", "Image")]
    for j in jobs:
        if not j.get("valid", True):
            rows.append((j["name"], "?", "?", "?", "?", "(spec unreadable on this agent)"))
            continue
        rows.append((j["name"], _replicas(j), str(j["placed"]), str(j.get("running", "?")),
                     str(j["pending"]), j["image"]))
    return table(rows)


def format_job(j: dict[str, Any]) -> str:
    spec = j.get("spec") or {}
    version = f" (version {j['job_version']})" if j.get("job_version") else ""
    priority = f", priority {spec['priority']}" if "priority" in spec else ""    # (absent: the default, 50)
    head = (f"Job {j['name']}{version}: image {spec.get('image', '?')}, cpu {spec.get('cpu', '?')}, "
            f"memory {spec.get('memory', '?')}{priority}; {_replicas(j, long=True)}, "
            f"{j.get('placed', 0)} placed, {j.get('pending', 0)} pending, {j.get('running', '?')} running\n")
    rows = [("Index", "Node", "Ballot", "State")]
    for s in j.get("slots", []):
        state = s["state"] if not s.get("reason") else f"{s['state']}: {s['reason']}"
        if s["state"] == "placed" and s.get("runtime"):  # what the holder's runtime says
            state = s["runtime"] + (f": {s['runtime_reason']}" if s.get("runtime_reason") else "")
        rows.append((_index(s), s.get("node") or "-", _ballot(s.get("ballot")), state))
    for s in j.get("extra", []):
        rows.append((_index(s), s.get("node") or "-", _ballot(s.get("ballot")), s["state"]))
    return head + table(rows)


@click.group()
def job() -> None:
    """Submit, inspect and stop jobs."""


@job.command("run")
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--json", "as_json", is_flag=True, help="Print the agent's answer as JSON (implies --detach).")
@click.option("--detach", "-d", is_flag=True, help="Return once the job is stored; do not wait for it to run.")
@click.option("--timeout", "timeout_s", type=click.FloatRange(min=0), default=60.0, show_default=True,
              help="Seconds to wait for every replica to run.")
@client_options
def job_run(file: str, as_json: bool, detach: bool, timeout_s: float, address: str, token: str | None) -> None:
    """Submit the job spec in FILE (TOML; docs/jobspec.md).  Prints the job's
    name once the agent has stored it durably, then (on stderr) each replica
    going pending, placed, running or failed, until all run or --timeout.
    A changed spec first shows (on stderr) what changes, as `shoal job plan`.
    Exit 0 when all run, 2 when some do not by then (with why), 1 on errors."""
    spec = load_spec_file(file)
    client = Client(address, token)
    if not as_json:
        from node.cli.versions import format_changes

        plan = client.try_request("POST", "/v1/jobs/plan", spec.to_dict())  # None from an older agent
        if plan is not None and plan.get("exists"):
            click.echo(format_changes(plan), err=True, nl=False)
    data = client.request("POST", "/v1/jobs", spec.to_dict())
    click.echo(json.dumps(data, indent=2) if as_json else data["name"])
    if not (as_json or detach):
        from node.cli.progress import follow_progress

        try:
            sys.exit(follow_progress(client, [data["name"]], timeout_s))
        except KeyboardInterrupt:
            click.echo(f"stopped watching; {data['name']} goes on (shoal job status {data['name']})", err=True)
            sys.exit(130)


@job.command("status")
@click.argument("name", required=False)
@click.option("--json", "as_json", is_flag=True, help="Print the agent's answer as JSON.")
@client_options
def job_status(name: str | None, as_json: bool, address: str, token: str | None) -> None:
    """List jobs, or show NAME's replica slots: node, ballot, state and why
    a slot is pending."""
    client = Client(address, token)
    data = client.request("GET", f"/v1/jobs/{quote(name, safe='')}" if name else "/v1/jobs")
    if as_json:
        click.echo(json.dumps(data, indent=2))
    else:
        click.echo(format_job(data) if name else format_jobs(data), nl=False)


@job.command("ls")
@click.option("--json", "as_json", is_flag=True, help="Print the agent's answer as JSON.")
@client_options
@click.pass_context
def job_ls(ctx: click.Context, as_json: bool, address: str, token: str | None) -> None:
    """List jobs: `job status` without NAME (as `docker service ls`)."""
    ctx.invoke(job_status, name=None, as_json=as_json, address=address, token=token)


@job.command("stop")
@click.argument("name")
@client_options
def job_stop(name: str, address: str, token: str | None) -> None:
    """Stop job NAME everywhere (its replicas are stopped, the job deleted)."""
    Client(address, token).request("DELETE", f"/v1/jobs/{quote(name, safe='')}")
    click.echo(f"{name} stopped")
