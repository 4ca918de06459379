"""`shoal image ls`: which node has which image, and what is on its way.

How this works: reads the agent's `GET /v1/images?cluster=1` (node.api.
routes_images: every alive member's image list, asked in parallel) and
prints one line per image tag with the nodes that have it, then the pulls
and peer fetches under way and the nodes that could not be asked.
"""

from __future__ import annotations

import json
from typing import Any

import click

from node.cli.client import Client, client_options, table


def format_images(data: dict[str, Any]) -> str:
    nodes = data.get("nodes") or []
    have: dict[str, dict[str, Any]] = {}
    busy = []
    errors = []
    for n in nodes:
        if n.get("error"):
            errors.append(f"{n['node']}: {n['error']}")
            continue
        for img in n.get("images") or []:
            entry = have.setdefault(img["ref"], {"id": img.get("id", ""), "size": img.get("size", 0), "nodes": []})
            entry["nodes"].append(n["node"])
        busy += [f"{ref}: pulling on {n['node']}" for ref in n.get("pulling") or []]
        busy += [f"{ref}: fetching from a peer on {n['node']}" for ref in n.get("fetching") or []]
    if not have:
        out = "no images on any node that answered\n"
    else:
        rows = [("IMAGE", "ID", "SIZE", "NODES")]
        for ref in sorted(have):
            e = have[ref]
            rows.append((ref, str(e["id"]).removeprefix("sha256:")[:12], f"{e['size'] / (1 << 20):.1f}MiB",
                         ",".join(sorted(e["nodes"]))))
        out = table(rows)
    for line in busy:
        out += line + "\n"
    for line in errors:
        out += f"not asked: {line}\n"
    return out


@click.group("image")
def image() -> None:
    """Images on the nodes: which node has which, and which are on their way."""


@image.command("ls")
@click.option("--json", "as_json", is_flag=True, help="Print the agent's answer as JSON.")
@client_options
def image_ls(as_json: bool, address: str, token: str | None) -> None:
    """List every image tag with the nodes that have it, and pulls under way."""
    data = Client(address, token).request("GET", "/v1/images?cluster=1")
    click.echo(json.dumps(data, indent=2) if as_json else format_images(data), nl=as_json)
