"""`shoal image ls`: which node has which image, and what is on its way;
`shoal image preload IMAGE`: get it onto the nodes before a rollout.

How this works: `ls` reads the agent's `GET /v1/images?cluster=1` (node.api.
routes_images: every alive member's image list, asked in parallel) and
prints one line per image tag with the nodes that have it, then the pulls
and peer fetches under way and the nodes that could not be asked.
`preload` posts `POST /v1/images/preload` (the nodes matching the
constraints start getting the image, node/agent/image_preload.py), then
polls `GET /v1/images?cluster=1&ref=IMAGE` and prints each node's progress
as it changes, until every node has the image or failed: exit 0 when all
have it, 1 when some failed (each printed with why), 2 on `--timeout`.
"""

from __future__ import annotations

import json
import sys
import time
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


PRELOAD_POLL_S = 1.0


def preload_states(listing: dict[str, Any], nodes: list[str]) -> dict[str, tuple[str, str]]:
    """node -> (state, text) from a `GET /v1/images?cluster=1&ref=` answer:
    state is "has", "failed" or "busy"; text what to print."""
    by_node = {n.get("node"): n for n in listing.get("nodes") or []}
    out: dict[str, tuple[str, str]] = {}
    for name in nodes:
        n = by_node.get(name)
        if n is None:
            out[name] = ("busy", "not answering")
        elif n.get("error"):
            out[name] = ("busy", f"not answering: {n['error']}")
        elif n.get("images"):
            out[name] = ("has", "has it")
        else:
            preloads = n.get("preloads") or {}
            entry = next(iter(preloads.values()), {}) if len(preloads) == 1 else {}
            progress = next((p for p in (n.get("progress") or {}).values() if p), "")
            if entry.get("state") == "failed":
                out[name] = ("failed", f"failed: {entry.get('reason') or '?'}")
            elif progress:
                out[name] = ("busy", progress)
            else:
                out[name] = ("busy", "waiting")
    return out


@image.command("preload")
@click.argument("image_ref", metavar="IMAGE")
@click.option("--constraint", "-c", "constraints", multiple=True,
              help="Only nodes whose labels satisfy it, as a job's constraints ('zone == edge'); repeatable.")
@click.option("--source", type=click.Choice(["registry", "peers"]), default="registry", show_default=True,
              help="Where each node asks first: its registry, or a peer that has the image.")
@click.option("--detach", is_flag=True, help="Return once the nodes were asked; do not wait.")
@click.option("--timeout", "timeout_s", type=float, default=600.0, show_default=True,
              help="Seconds to wait for every node.")
@client_options
def image_preload(image_ref: str, constraints: tuple[str, ...], source: str, detach: bool, timeout_s: float,
                  address: str, token: str | None) -> None:
    """Get IMAGE onto every alive node (matching the constraints) now, ahead
    of a rollout: pulled, or fetched from a peer, as a job's start would."""
    client = Client(address, token)
    body: dict[str, Any] = {"image": image_ref, "source": source}
    if constraints:
        body["constraints"] = list(constraints)
    answer = client.request("POST", "/v1/images/preload", body)
    image_ref = answer.get("image", image_ref)
    nodes = []
    for n in answer.get("nodes") or []:
        if n.get("error"):
            click.echo(f"{n['node']}: not asked: {n['error']}")
        else:
            nodes.append(n["node"])
            click.echo(f"{n['node']}: {'has it' if n.get('state') == 'present' else n.get('state')}")
    if detach or not nodes:
        sys.exit(0 if nodes else 1)
    from urllib.parse import quote
    deadline = time.monotonic() + timeout_s
    shown: dict[str, str] = {}
    while True:
        listing = client.request("GET", f"/v1/images?cluster=1&ref={quote(image_ref, safe='')}")
        states = preload_states(listing, nodes)
        for name, (_, text) in sorted(states.items()):
            if shown.get(name) != text:
                click.echo(f"{name}: {text}")
                shown[name] = text
        if all(state != "busy" for state, _ in states.values()):
            have = sum(1 for state, _ in states.values() if state == "has")
            click.echo(f"{image_ref}: on {have} of {len(nodes)} nodes")
            sys.exit(0 if have == len(nodes) else 1)
        if time.monotonic() > deadline:
            waiting = sorted(n for n, (state, _) in states.items() if state == "busy")
            click.echo(f"timed out after {timeout_s:g} s; still waiting: {', '.join(waiting)}", err=True)
            sys.exit(2)
        time.sleep(PRELOAD_POLL_S)
