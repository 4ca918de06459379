"""`shoal job history | rollback | scale | restart | promote | plan`: job versions.

How this works: each command is one request to the agent's version routes
(node.api.routes_versions); the text forms are the pure `format_*`
functions below (tests hold golden outputs of `format_plan`).  `plan`
reads a TOML spec like `job run` does and asks what writing it would do,
writing nothing; `job run` prints the same diff (`format_changes`) before it
submits a changed spec.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote

import click

from node.cli.client import Client, client_options, table


def _shown(value: Any) -> str:
    from auction.spec_diff import shown

    return shown(value)


def _why(v: dict[str, Any]) -> str:
    why, ref = v.get("why") or "submit", v.get("ref") or ""
    if why == "rollback" and ref:
        return f"rollback to {ref}"
    if why == "revert" and ref:
        return f"revert from {ref}"
    return why


def format_history(h: dict[str, Any]) -> str:
    rows = [("VERSION", "WHEN (UTC)", "BY", "WHY", "IMAGE", "CHANGES")]
    for v in h.get("versions", []):
        by = f"{v['by']} via {v['agent']}" if v.get("by") else v.get("agent") or "-"
        changes = v.get("summary") or "-"
        if v.get("replaces"):
            changes += " (replaces containers)"
        version = v["version"] + (" *" if v.get("current") else "")
        rows.append((version, v["time"].replace("T", " ").rstrip("Z"), by, _why(v), v.get("image") or "-", changes))
    return table(rows) + "* current version\n"


def format_changes(p: dict[str, Any]) -> str:
    """The field-by-field diff of a plan, or what a new job is."""
    if not p.get("exists"):
        return f"Job {p['name']} is new: {p['replicas']['new']} replica(s) to place.\n"
    changes = p.get("changes") or []
    if not changes:
        return f"Job {p['name']}: no change from version {p['current']} (it runs this spec already).\n"
    rows = [(c["field"], _shown(c["old"]), "->", _shown(c["new"])) for c in changes]
    head = f"Job {p['name']}: changes from version {p['current']}:\n"
    tail = ("Running containers are replaced (the container changes).\n" if p.get("replaces_containers")
            else "No running container is replaced.\n")
    return head + "".join("  " + line + "\n" for line in table(rows).splitlines()) + tail


def _slots(name: str, indices: list[int]) -> str:
    if not indices:
        return "0"
    shown = ", ".join(f"{name}/{i}" for i in indices[:5]) + (", ..." if len(indices) > 5 else "")
    return f"{len(indices)} ({shown})"


def format_plan(p: dict[str, Any]) -> str:
    name = p["name"]
    out = format_changes(p)
    old, new = p["replicas"]["old"], p["replicas"]["new"]
    out += f"Replicas: {old} -> {new} ({p.get('placed', 0)} placed now)\n"
    rows = [("replaced in place:", _slots(name, p["replaced"])),
            ("moved elsewhere:", _slots(name, p["moved"])),
            ("started:", _slots(name, p["started"])),
            ("stopped:", _slots(name, p["stopped"]))]
    out += "".join("  " + line + "\n" for line in table(rows).splitlines())
    out += _canary_line(p)
    if p["unplaceable"]:
        out += "Cannot be placed now:\n"
        unplaceable = sorted(p["unplaceable"].items(), key=lambda kv: int(kv[0]))
        out += "".join(f"  {name}/{i}: {why}\n" for i, why in unplaceable)
    return out + "Nothing was changed (plan only).\n"


def _canary_line(p: dict[str, Any]) -> str:
    """Which slots a rollout with canaries replaces first (auction.rollout:
    indices below `canary` until the version is promoted)."""
    update = (p.get("spec") or {}).get("update") or {}
    canary = min(int(update.get("canary") or 0), p["replicas"]["new"])
    if not canary or not p.get("replaces_containers") or not p.get("exists"):
        return ""
    name = p["name"]
    rest = ("the rest follow once they are healthy (auto_promote)" if update.get("auto_promote")
            else f"the rest wait for `shoal job promote {name}`")
    return f"Canaries first: {_slots(name, list(range(canary)))}; {rest}.\n"


def _written(data: dict[str, Any], done: str) -> str:
    if not data.get("changed", True):
        return f"{data['name']}: nothing to do ({data.get('message', 'unchanged')})"
    return f"{data['name']}: {done} (now version {data.get('job_version', '?')})"


@click.command("history")
@click.argument("name")
@click.option("--json", "as_json", is_flag=True, help="Print the agent's answer as JSON.")
@client_options
def job_history(name: str, as_json: bool, address: str, token: str | None) -> None:
    """The last 10 versions of job NAME: when, by whom, why, and what changed."""
    data = Client(address, token).request("GET", f"/v1/jobs/{quote(name, safe='')}/history")
    click.echo(json.dumps(data, indent=2) if as_json else format_history(data), nl=as_json)


@click.command("rollback")
@click.argument("name")
@click.argument("version", required=False)
@client_options
def job_rollback(name: str, version: str | None, address: str, token: str | None) -> None:
    """Write an earlier version of NAME again, as a new version: VERSION (a
    number, or number@node as `shoal job history` shows it), by default the
    newest earlier version whose spec differs."""
    body = {} if version is None else {"version": version}
    data = Client(address, token).request("POST", f"/v1/jobs/{quote(name, safe='')}/rollback", body)
    click.echo(_written(data, f"rolled back to version {version}" if version else "rolled back"))


@click.command("scale")
@click.argument("name")
@click.argument("replicas", type=click.IntRange(min=0))
@client_options
def job_scale(name: str, replicas: int, address: str, token: str | None) -> None:
    """Set NAME's replica count; no running replica is replaced."""
    data = Client(address, token).request("POST", f"/v1/jobs/{quote(name, safe='')}/scale",
                                          {"replicas": replicas})
    click.echo(_written(data, f"scaled to {replicas}"))


@click.command("restart")
@click.argument("name")
@client_options
def job_restart(name: str, address: str, token: str | None) -> None:
    """Replace every replica of NAME with a fresh container, paced like an update."""
    data = Client(address, token).request("POST", f"/v1/jobs/{quote(name, safe='')}/restart")
    click.echo(_written(data, "restarting"))


@click.command("promote")
@click.argument("name")
@client_options
def job_promote(name: str, address: str, token: str | None) -> None:
    """Promote the canaries of NAME's current version: the other replicas follow."""
    data = Client(address, token).request("POST", f"/v1/jobs/{quote(name, safe='')}/promote")
    click.echo(_written(data, "promoted"))


@click.command("plan")
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--json", "as_json", is_flag=True, help="Print the agent's answer as JSON.")
@client_options
def job_plan(file: str, as_json: bool, address: str, token: str | None) -> None:
    """What submitting FILE would do: the changes field by field, which
    replicas are replaced, started or stopped, and which new ones cannot be
    placed now and why.  Changes nothing."""
    from node.cli.specfile import load_spec_file

    spec = load_spec_file(file)
    data = Client(address, token).request("POST", "/v1/jobs/plan", spec.to_dict())
    click.echo(json.dumps(data, indent=2) if as_json else format_plan(data), nl=as_json)


COMMANDS = (job_history, job_rollback, job_scale, job_restart, job_promote, job_plan)
