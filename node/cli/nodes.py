"""Node and container commands: `shoal node status | drain | undrain` and `shoal
ps` (`shoal logs`: node.cli.logs_command).

How this works: the agent asked answers for the whole cluster: node statuses
from its gossip view, containers gathered from every alive node's agent (or
only its own with --local).
"""

from __future__ import annotations

import json
import sys
from typing import Any
from urllib.parse import quote

import click

from node.cli.client import Client, client_options, table


def _res(view: dict[str, Any] | None, key: str, fmt) -> str:
    return fmt(view[key]) if view else "-"


def format_nodes(nodes: list[dict[str, Any]]) -> str:
    from auction.resources import format_cpu, format_memory

    rows = [("Name", "Status", "Health", "Eligible", "CPU free/total", "Memory free/total", "Labels")]
    for n in nodes:
        free, cap = n.get("free"), n.get("capacity")
        cpu = (f"{format_cpu(free['cpu_millis']).removesuffix(' cpu')}/{format_cpu(cap['cpu_millis'])}"
               if free and cap else "-")
        mem = f"{format_memory(free['memory_bytes'])}/{format_memory(cap['memory_bytes'])}" if free and cap else "-"
        eligible = "drained" if n.get("drained") else ("yes" if n.get("eligible") else "no")
        labels = ",".join(f"{k}={v}" for k, v in sorted((n.get("labels") or {}).items()))
        rows.append((n["name"], n["status"], n["health"], eligible, cpu, mem, labels))
    return table(rows)


def format_node(n: dict[str, Any]) -> str:
    lines = [f"Name:           {n['name']}",
             f"Status:         {n['status']} ({n['health']})",
             f"Address:        {n.get('addr')}:{n.get('port')}",
             f"API:            {n.get('api') or '-'}"]
    if n.get("status_known"):
        lines += [f"Eligible:       {'no (drained)' if n['drained'] else 'yes' if n['eligible'] else 'no'}",
                  f"Healthy:        {'yes' if n['healthy'] else 'no: ' + (n.get('unhealthy_reason') or '?')}",
                  f"Capacity:       {n['capacity']['text']}",
                  f"Allocated:      {n['allocated']['text']}",
                  f"Free:           {n['free']['text']}",
                  "Labels:         " + (", ".join(f"{k}={v}" for k, v in sorted(n["labels"].items())) or "-"),
                  f"Agent version:  {n.get('agent_version') or '-'}",
                  f"Jobs known:     {n.get('jobs')}"]
    else:
        lines.append("Status record:  none published (not a shoal agent, or not heard from yet)")
    return "\n".join(lines) + "\n"


@click.group("node")
def node_group() -> None:
    """Inspect nodes; drain or undrain them."""


@node_group.command("status")
@click.argument("name", required=False)
@click.option("--json", "as_json", is_flag=True, help="Print the agent's answer as JSON.")
@client_options
def node_status(name: str | None, as_json: bool, address: str, token: str | None) -> None:
    """List the nodes (capacity, free, labels, eligibility, health), or show NAME."""
    data = Client(address, token).request("GET", f"/v1/nodes/{quote(name, safe='')}" if name else "/v1/nodes")
    if as_json:
        click.echo(json.dumps(data, indent=2))
    else:
        click.echo(format_node(data) if name else format_nodes(data), nl=False)


@node_group.command("ls")
@click.option("--json", "as_json", is_flag=True, help="Print the agent's answer as JSON.")
@client_options
@click.pass_context
def node_ls(ctx: click.Context, as_json: bool, address: str, token: str | None) -> None:
    """List the nodes: `node status` without NAME (as `docker node ls`)."""
    ctx.invoke(node_status, name=None, as_json=as_json, address=address, token=token)


def _drain_command(action: str, help_text: str):
    @click.argument("name")
    @client_options
    def command(name: str, address: str, token: str | None) -> None:
        data = Client(address, token).request("POST", f"/v1/nodes/{quote(name, safe='')}/{action}")
        via = f" (through its agent at {data['forwarded_to']})" if data.get("forwarded_to") else ""
        click.echo(f"{name} {action}ed{via}")

    command.__doc__ = help_text
    return node_group.command(action)(command)


_drain_command("drain", "Drain node NAME: its replicas move elsewhere and it takes no new ones.")
_drain_command("undrain", "Make node NAME eligible for replicas again.")


def format_ps(nodes: list[dict[str, Any]]) -> str:
    rows = [("Node", "Slot", "Container", "State", "Status", "Restarts", "Image")]
    for n in nodes:
        for c in n.get("containers") or []:
            state = c.get("state") or "-"
            if c.get("role") not in (None, "desired"):
                state += f" ({c['role']})"
            if c.get("gave_up"):
                state += f", gave up: {c['gave_up']}"
            node = (n.get("node") or "-") + (" (suspect)" if n.get("status") == "suspect" else "")
            rows.append((node, c.get("slot") or "-", c.get("name") or "-", state,
                         c.get("status") or "-", str(c.get("restarts", 0)), c.get("image") or "-"))
    return table(rows) if len(rows) > 1 else "no containers\n"


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print the answer as JSON.")
@click.option("--local", is_flag=True, help="Only the containers of the agent asked, not every node's.")
@click.option("--job", help="Only this job's containers.")
@client_options
def ps(as_json: bool, local: bool, job: str | None, address: str, token: str | None) -> None:
    """List the replicas' containers by node.  The agent asked gathers every
    alive node's list from that node's own agent, and a suspect node's,
    marked "(suspect)" (or, with --local, only its own)."""
    params = "?" + "&".join(p for p in ("cluster=0" if local else "cluster=1",
                                          f"job={quote(job, safe='')}" if job else "") if p)
    data = Client(address, token).request("GET", "/v1/containers" + params)
    nodes = [data] if local else data.get("nodes", [])
    if as_json:
        click.echo(json.dumps(data, indent=2))
        return
    click.echo(format_ps(nodes), nl=False)
    failed = False
    for n in nodes:
        if n.get("error"):
            failed = True
            click.echo(f"warning: {n['node']}: {n['error']}", err=True)
    if failed and not any(n.get("containers") for n in nodes):
        sys.exit(1)
