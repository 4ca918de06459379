"""The `shoal` command: run an agent, or talk to one over its HTTP API.

How this works: `shoal agent` turns its flags into an `AgentConfig` (flags
win over `--config FILE`), sets up logging (one line per event on stderr) and
runs `node.agent.run_agent` under `trio.run`; it exits 0 after a graceful
leave (SIGINT/SIGTERM or `shoal leave`), 2 on a configuration error, 1 if it
cannot start (e.g. the port is taken).

Every other command is a small HTTP client (httpx) of a running agent, found
through `--address URL` or `SHOAL_ADDR` (default http://127.0.0.1:7980), with
`--token` / `SHOAL_TOKEN` when the agent requires an API token.  If the agent
cannot be reached the command says "cannot reach shoal agent at URL: ..." and
exits 1; an error answer from the agent is printed and exits 1.

    shoal agent [--name N] [--bind HOST:PORT] [--advertise HOST:PORT]
                [--join HOST:PORT ...] [--profile lan|wan|local]
                [--encrypt KEY] [--keyring-file PATH] [--state-dir DIR]
                [--api HOST:PORT] [--api-token T] [--label L] [--tag K=V ...]
                [--config FILE] [--log-level LEVEL]
    shoal members [--json]
    shoal join ADDR...
    shoal leave
    shoal keys list | install KEY | use KEY | remove KEY   [--local]
    shoal keygen [--size 16|24|32]
"""

from __future__ import annotations

import base64
import json
import logging
import os
import sys
from typing import Any

import click

from node.config import DEFAULT_API_PORT, ConfigError, load_config

DEFAULT_ADDRESS = f"http://127.0.0.1:{DEFAULT_API_PORT}"
CLIENT_TIMEOUT_S = 30.0


# ---- the agent -----------------------------------------------------------------


def setup_logging(level: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # hypercorn repeats our own startup line; keep it to warnings.
    logging.getLogger("shoal.api.server").setLevel(max(logging.WARNING, root.level))


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def cli() -> None:
    """shoal: a peer-to-peer container scheduler (membership milestone)."""


@cli.command()
@click.option("--name", help="Node name, unique in the cluster (default: hostname).")
@click.option("--bind", help="Gossip address HOST:PORT, UDP and TCP (default 0.0.0.0:7946).")
@click.option("--advertise", help="Address other nodes use to reach us (default: see docs).")
@click.option("--join", "join", multiple=True, help="Seed HOST[:PORT] to join; repeatable, retried with backoff.")
@click.option("--profile", type=click.Choice(["lan", "wan", "local"]), help="Gossip timing preset (default lan).")
@click.option("--encrypt", help="Base64 AES key (16/24/32 bytes), as Serf's -encrypt.")
@click.option("--keyring-file", help="JSON list of base64 keys, primary first; rotations are saved here.")
@click.option("--state-dir", help="Directory for keyring.json and agent.json.")
@click.option("--api", help="HTTP API address HOST:PORT (default 127.0.0.1:7980).")
@click.option("--api-token", envvar="SHOAL_API_TOKEN", help="Require this bearer token on the API.")
@click.option("--label", help="Cluster label; agents with different labels ignore each other.")
@click.option("--tag", "tags", multiple=True, help="Extra node tag KEY=VALUE; repeatable.")
@click.option("--config", "config_file", type=click.Path(dir_okay=False), help="TOML config file; flags win.")
@click.option("--log-level", type=click.Choice(["DEBUG", "INFO", "WARNING", "ERROR"], case_sensitive=False))
def agent(config_file: str | None, **flags: Any) -> None:
    """Run a shoal agent in the foreground."""
    import trio

    from node.agent import run_agent

    try:
        cfg = load_config(config_file, flags)
    except ConfigError as e:
        click.echo(f"shoal agent: {e}", err=True)
        sys.exit(2)
    setup_logging(cfg.log_level)
    try:
        trio.run(run_agent, cfg)
    except ConfigError as e:
        click.echo(f"shoal agent: {e}", err=True)
        sys.exit(2)
    except OSError as e:
        logging.getLogger("shoal.agent").error("cannot start: %s", e)
        sys.exit(1)
    except KeyboardInterrupt:
        sys.exit(130)


# ---- client commands -------------------------------------------------------------


class Client:
    def __init__(self, address: str, token: str | None) -> None:
        self.address = address.rstrip("/")
        self.headers = {"Authorization": f"Bearer {token}"} if token else {}

    def request(self, method: str, path: str, body: Any = None) -> Any:
        import httpx

        url = self.address + path
        try:
            resp = httpx.request(method, url, json=body, headers=self.headers, timeout=CLIENT_TIMEOUT_S)
        except httpx.HTTPError as e:
            fail(f"cannot reach shoal agent at {self.address}: {e or type(e).__name__}")
        try:
            data = resp.json()
        except ValueError:
            data = None
        if resp.status_code >= 400:
            msg = data.get("error") if isinstance(data, dict) else None
            extra = ""
            if isinstance(data, dict) and data.get("errors"):
                extra = "".join(f"\n  {k}: {v}" for k, v in data["errors"].items())
            fail(f"{msg or resp.reason_phrase} (HTTP {resp.status_code}){extra}")
        return data


def fail(message: str) -> None:
    click.echo(f"error: {message}", err=True)
    sys.exit(1)


def client_options(f):
    f = click.option(
        "--token", envvar="SHOAL_TOKEN", help="API token (env SHOAL_TOKEN)."
    )(f)
    f = click.option(
        "--address",
        envvar="SHOAL_ADDR",
        default=DEFAULT_ADDRESS,
        show_default=True,
        help="URL of the agent's HTTP API (env SHOAL_ADDR).",
    )(f)
    return f


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


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Print the members as JSON.")
@client_options
def members(as_json: bool, address: str, token: str | None) -> None:
    """List the members this agent knows."""
    data = Client(address, token).request("GET", "/v1/members")
    if as_json:
        click.echo(json.dumps(data, indent=2))
    else:
        click.echo(format_members(data), nl=False)


@cli.command()
@click.argument("addresses", nargs=-1, required=True)
@client_options
def join(addresses: tuple[str, ...], address: str, token: str | None) -> None:
    """Ask the agent to join the cluster through ADDRESSES (HOST[:PORT])."""
    data = Client(address, token).request("POST", "/v1/agent/join", {"addresses": list(addresses)})
    click.echo(f"Joined {data['joined']} of {len(addresses)} address(es)")
    for seed, err in (data.get("errors") or {}).items():
        click.echo(f"  {seed}: {err}", err=True)


@cli.command()
@client_options
def leave(address: str, token: str | None) -> None:
    """Make the agent leave the cluster gracefully and exit."""
    data = Client(address, token).request("POST", "/v1/agent/leave")
    click.echo(f"{data.get('name', 'agent')} left the cluster")


@cli.group()
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


@cli.command()
@click.option("--size", type=click.Choice(["16", "24", "32"]), default="32", show_default=True,
              help="Key length in bytes (AES-128/192/256).")
def keygen(size: str) -> None:
    """Print a new random base64 encryption key."""
    click.echo(base64.b64encode(os.urandom(int(size))).decode())


def main() -> None:
    cli(prog_name="shoal")


if __name__ == "__main__":
    main()
