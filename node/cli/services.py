"""`shoal service ls | show`: the service catalog, from any agent.

How this works: both read the agent's /v1/services routes (node.api.
routes_services): `ls` one line per service with its instance count and
ADDRESS:PORT of each instance (the address alone for a job without ports),
`show` every instance of one service with its node, address, ports and
health, or the agent's answer as JSON.  The catalog lists only replicas
known to run on nodes alive for placement (node.core.catalog).
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote

import click

from node.cli.client import Client, client_options, table


def _endpoints(instance: dict[str, Any]) -> list[str]:
    address = str(instance.get("address", "?"))
    host = f"[{address}]" if ":" in address else address  # IPv6 with a port needs brackets
    ports = instance.get("ports") or {}
    return [f"{host}:{port}" for _, port in sorted(ports.items())] if ports else [address]


def format_services(services: list[dict[str, Any]]) -> str:
    if not services:
        return "no services (no replica of any job is known to run)\n"
    rows = [("NAME", "INSTANCES", "ADDRESSES")]
    for s in services:
        addresses = [e for i in s.get("instances", []) for e in _endpoints(i)]
        rows.append((s["name"], str(s.get("count", len(s.get("instances", [])))), " ".join(addresses) or "-"))
    return table(rows)


def format_service(s: dict[str, Any]) -> str:
    count = s.get("count", 0)
    head = f"Service {s['name']}: {count} instance{'s' if count != 1 else ''}\n"
    if not s.get("instances"):
        return head + "  no replica of it is known to run (see shoal job status)\n"
    rows = [("SLOT", "NODE", "ADDRESS", "PORTS", "HEALTH")]
    for i in s["instances"]:
        ports = " ".join(f"{label}={port}" for label, port in sorted((i.get("ports") or {}).items())) or "-"
        rows.append((str(i["slot"]), i["node"], i["address"], ports, i.get("health", "?")))
    return head + table(rows)


@click.group("service")
def service() -> None:
    """The service catalog: which replicas serve, where, on which ports."""


@service.command("ls")
@click.option("--json", "as_json", is_flag=True, help="Print the agent's answer as JSON.")
@client_options
def service_ls(as_json: bool, address: str, token: str | None) -> None:
    """List services: instance count and ADDRESS:PORT of every instance."""
    data = Client(address, token).request("GET", "/v1/services")
    click.echo(json.dumps(data, indent=2) if as_json else format_services(data), nl=as_json)


@service.command("show")
@click.argument("name")
@click.option("--json", "as_json", is_flag=True, help="Print the agent's answer as JSON.")
@client_options
def service_show(name: str, as_json: bool, address: str, token: str | None) -> None:
    """Show NAME's instances: slot, node, address, ports and health."""
    data = Client(address, token).request("GET", f"/v1/services/{quote(name, safe='')}")
    click.echo(json.dumps(data, indent=2) if as_json else format_service(data), nl=as_json)
