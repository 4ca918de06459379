"""`shoal stack deploy | rm | ls`: Docker Compose files as groups of jobs.

How this works: node.cli.compose converts the file (every service becomes job
STACK-SERVICE, unsupported keys become warnings, errors stop everything before
anything is submitted); deploy submits the jobs and follows them like `shoal
job run`; a stack is nothing but that naming convention, so rm and ls work
from job names alone.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any
from urllib.parse import quote

import click

from node.cli.client import Client, client_options, fail, table


@click.group()
def stack() -> None:
    """Deploy Docker Compose files: each service becomes job STACK-SERVICE."""


def _read_compose(file: str) -> Any:
    from node.cli.compose import MAX_COMPOSE_BYTES, ComposeError, parse

    try:
        with open(file, "rb") as f:
            raw = f.read(MAX_COMPOSE_BYTES + 1)
        return parse(raw.decode("utf-8"))
    except OSError as e:
        fail(f"cannot read {file}: {e.strerror or e}")
    except UnicodeDecodeError:
        fail(f"{file}: not UTF-8 text")
    except ComposeError as e:
        fail(f"{file}: {e}")


@stack.command("deploy")
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--name", "stack_name",
              help="Stack name, lowercase letters and digits (default: the file's top-level "
                   "'name', else its directory's name).")
@click.option("--prune", is_flag=True, help="Also stop the stack's jobs whose service is not in FILE.")
@click.option("--dry-run", is_flag=True, help="Print the job specs as JSON and submit nothing.")
@click.option("--detach", is_flag=True, help="Submit and return; do not follow progress.")
@click.option("--timeout", "timeout_s", type=float, default=60.0, show_default=True,
              help="Follow progress this many seconds at most (exit 2 if some slots cannot be placed).")
@client_options
def stack_deploy(file: str, stack_name: str | None, prune: bool, dry_run: bool, detach: bool,
                 timeout_s: float, address: str, token: str | None) -> None:
    """Submit every service of the Compose FILE as a job.  Keys shoal does not
    support are listed as warnings; any error stops before anything is submitted."""
    from node.cli import compose

    doc = _read_compose(file)
    try:
        name = (compose.check_stack_name(stack_name) if stack_name else
                compose.default_stack_name(doc, os.path.basename(os.path.dirname(os.path.abspath(file)))))
    except compose.ComposeError as e:
        fail(f"--name: {e.problems[0].message}")
    try:
        from node.cli.beside import reader_beside

        st = compose.convert(doc, name, read_beside=reader_beside(file))
    except compose.ComposeError as e:
        fail(f"{file}: {e}")
    for w in st.warnings:
        click.echo(f"warning: {w}", err=True)
    if dry_run:
        from auction.files import redact

        click.echo(json.dumps([redact(j.to_dict()) for j in st.jobs], indent=2))   # secrets' texts not printed
        return
    client = Client(address, token)
    for service, spec in zip(st.services, st.jobs):
        client.request("POST", "/v1/jobs", spec.to_dict())
        count = "global" if spec.is_global else f"{spec.replicas} replica{'s' if spec.replicas != 1 else ''}"
        click.echo(f"{service}: job {spec.name} ({count})")
    if prune:
        existing = [j["name"] for j in client.request("GET", "/v1/jobs")]
        for job_name in compose.stack_jobs(name, existing):
            if job_name not in st.services.values():
                client.request("DELETE", f"/v1/jobs/{quote(job_name, safe='')}")
                click.echo(f"{job_name}: stopped (no longer in {file})")
    click.echo(f"stack {name}: {len(st.jobs)} job(s) submitted; see `shoal stack ls`, `shoal job status`")
    if not detach and st.jobs:
        # The same live progress as `shoal job run`: exit 0 when every
        # replica of every service runs, 2 when some cannot be placed.
        from node.cli.progress import follow_progress

        try:
            sys.exit(follow_progress(client, [j.name for j in st.jobs], timeout_s))
        except KeyboardInterrupt:
            click.echo(f"stopped watching; stack {name} goes on (shoal stack ls)", err=True)
            sys.exit(130)


@stack.command("rm")
@click.argument("name")
@click.option("-f", "--file", "file", type=click.Path(dir_okay=False),
              help="Stop only the jobs of this Compose file's services (default: every job named NAME-...).")
@client_options
def stack_rm(name: str, file: str | None, address: str, token: str | None) -> None:
    """Stop the jobs of stack NAME: every job whose name starts with NAME- (a
    stack name has no '-', so that prefix is the stack), or with --file exactly
    the jobs of that file's services."""
    from node.cli import compose

    try:
        compose.check_stack_name(name)
    except compose.ComposeError as e:
        fail(e.problems[0].message)
    client = Client(address, token)
    existing = [j["name"] for j in client.request("GET", "/v1/jobs")]
    if file is not None:
        doc = _read_compose(file)
        services = doc.get("services") if isinstance(doc, dict) else None
        wanted = {compose.job_name(name, s) for s in (services if isinstance(services, dict) else {})
                  if isinstance(s, str)}
        targets = sorted(wanted & set(existing))
    else:
        targets = compose.stack_jobs(name, existing)
    if not targets:
        fail(f"no jobs of stack {name!r}")
    for job_name in targets:
        client.request("DELETE", f"/v1/jobs/{quote(job_name, safe='')}")
        click.echo(f"{job_name} stopped")


@stack.command("ls")
@click.option("--json", "as_json", is_flag=True, help="Print the stacks as JSON.")
@client_options
def stack_ls(as_json: bool, address: str, token: str | None) -> None:
    """List stacks: jobs named STACK-SERVICE grouped by STACK, with their replicas."""
    from node.cli.compose import stack_of

    stacks: dict[str, dict[str, Any]] = {}
    for j in Client(address, token).request("GET", "/v1/jobs"):
        name = stack_of(j["name"])
        if name is None:
            continue
        s = stacks.setdefault(name, {"stack": name, "jobs": [], "replicas": 0, "placed": 0, "pending": 0})
        s["jobs"].append(j["name"])
        for key in ("replicas", "placed", "pending"):
            s[key] += j.get(key) or 0
    if as_json:
        click.echo(json.dumps(sorted(stacks.values(), key=lambda s: s["stack"]), indent=2))
    elif not stacks:
        click.echo("no stacks")
    else:
        rows = [("Stack", "Jobs", "Replicas", "Placed", "Pending")]
        rows += [(s["stack"], str(len(s["jobs"])), str(s["replicas"]), str(s["placed"]), str(s["pending"]))
                 for _, s in sorted(stacks.items())]
        click.echo(table(rows), nl=False)
