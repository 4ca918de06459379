"""Cluster commands: members, join, leave, the event monitor, and the gossip
encryption keys (list, install, use, remove, keygen).

How this works: each command is one request to the agent's API (the monitor
streams /v1/events as NDJSON and formats it with node.cli.monitor); key
rotations are cluster-wide unless --local, and fail (exit 1) if any member
did not confirm.
"""

from __future__ import annotations

import base64
import json
import os
import sys
from typing import Any

import click

from node.cli.client import CLIENT_TIMEOUT_S, Client, client_options, fail


def format_members(members: list[dict[str, Any]]) -> str:
    rows = [("Name", "Address", "Status", "Tags")]
    for m in members:
        host = m.get("addr", "")
        addr = f"[{host}]:{m.get('port')}" if ":" in host else f"{host}:{m.get('port')}"
        tags = ",".join(f"{k}={v}" for k, v in sorted((m.get("tags") or {}).items()))
        rows.append((str(m.get("name", "")), addr, str(m.get("status", "")), tags))
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    return "\n".join(
        "  ".join(r[i].ljust(widths[i]) for i in range(3)) + "  " + r[3] for r in rows
    ).rstrip() + "\n"


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print the members as JSON.")
@client_options
def members(as_json: bool, address: str, token: str | None) -> None:
    """List the members this agent knows."""
    data = Client(address, token).request("GET", "/v1/members")
    if as_json:
        click.echo(json.dumps(data, indent=2))
    else:
        click.echo(format_members(data), nl=False)


@click.command()
@click.argument("addresses", nargs=-1, required=True)
@client_options
def join(addresses: tuple[str, ...], address: str, token: str | None) -> None:
    """Ask the agent to join the cluster through ADDRESSES (HOST[:PORT])."""
    data = Client(address, token).request("POST", "/v1/agent/join", {"addresses": list(addresses)})
    click.echo(f"Joined {data['joined']} of {len(addresses)} address(es)")
    for seed, err in (data.get("errors") or {}).items():
        click.echo(f"  {seed}: {err}", err=True)


@click.command()
@client_options
def leave(address: str, token: str | None) -> None:
    """Make the agent leave the cluster gracefully and exit once its
    replicas run elsewhere (at most 20 s)."""
    data = Client(address, token).request("POST", "/v1/agent/leave")
    handed = data.get("handed_over")
    after = ("; its replicas run elsewhere now" if handed
             else "; some of its replicas found no other node and keep running here" if handed is False else "")
    click.echo(f"{data.get('name', 'agent')} left the cluster{after}")


@click.group()
def keys() -> None:
    """List or rotate the gossip encryption keys (cluster-wide by default)."""


@keys.command("list")
@client_options
def keys_list(address: str, token: str | None) -> None:
    data = Client(address, token).request("GET", "/v1/keys")
    if not data.get("encrypted"):
        click.echo("gossip encryption is off on this agent")
        return
    for k in data["keys"]:
        click.echo(f"{k}{'  (primary)' if k == data['primary'] else ''}")


def _key_command(action: str, help_text: str):
    @click.argument("key")
    @click.option("--local", is_flag=True, help="Only this agent, not the whole cluster.")
    @client_options
    def command(key: str, local: bool, address: str, token: str | None) -> None:
        data = Client(address, token).request("POST", "/v1/keys", {"action": action, "key": key, "local": local})
        where = "this agent" if local else f"{data['delivered']}/{data['members']} members"
        click.echo(f"{action}: done on {where}")
        for peer, err in (data.get("failed") or {}).items():
            click.echo(f"  {peer}: {err}", err=True)
        if data.get("unanswered"):
            click.echo(f"  {data['unanswered']} member(s) did not answer in time", err=True)
        if data.get("failed") or data.get("unanswered"):
            sys.exit(1)

    command.__doc__ = help_text
    return keys.command(action)(command)


_key_command("install", "Install KEY in the keyring (for decryption).")
_key_command("use", "Make the installed KEY the primary (encrypting) key.")
_key_command("remove", "Remove KEY from the keyring.")


@click.command()
@click.option("--size", type=click.Choice(["16", "24", "32"]), default="32", show_default=True,
              help="Key length in bytes (AES-128/192/256).")
def keygen(size: str) -> None:
    """Print a new random base64 encryption key."""
    click.echo(base64.b64encode(os.urandom(int(size))).decode())


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print the raw NDJSON records.")
@click.option("--no-history", is_flag=True, help="Only new events, not the recent ones the agent kept.")
@client_options
def monitor(as_json: bool, no_history: bool, address: str, token: str | None) -> None:
    """Stream the agent's events as they happen: members, node statuses, jobs,
    auctions, placements, container states.  Ctrl-C stops."""
    import httpx

    from node.cli.monitor import monitor as run_monitor

    client = Client(address, token)
    here = "" if as_json else client.request("GET", "/v1/agent/self").get("name", "this agent")
    params = {"history": "0" if no_history else "1"}
    try:
        with httpx.stream("GET", f"{client.address}/v1/events", params=params, headers=client.headers,
                          timeout=httpx.Timeout(CLIENT_TIMEOUT_S, read=None), verify=client.verify) as resp:
            if resp.status_code >= 400:
                resp.read()
                fail(f"{resp.text[:200] or resp.reason_phrase} (HTTP {resp.status_code})")
            run_monitor(resp.iter_lines(), here, lambda line: click.echo(line), as_json)
    except httpx.HTTPError as e:
        fail(f"the event stream from {client.address} broke: {e or type(e).__name__}")
    except KeyboardInterrupt:
        sys.exit(130)
    except BrokenPipeError:
        sys.stderr.close()
        sys.exit(0)
    fail(f"the agent at {client.address} closed the event stream (it stopped, or this reader fell behind)")
