"""The `shoal` command: run an agent, or talk to one over its HTTP API.

How this works: `shoal agent` turns its flags into an `AgentConfig` (flags
win over `--config FILE`), sets up logging (one line per event on stderr) and
runs `node.agent.agent.run_agent` under `trio.run`; it exits 0 after a graceful
leave (SIGINT/SIGTERM or `shoal leave`), 2 on a configuration error, 1 if it
cannot start (e.g. the port is taken).

Every other command is a small HTTP client (httpx) of a running agent, found
through `--address URL` or `SHOAL_ADDR` (default http://127.0.0.1:7980), with
`--token` / `SHOAL_TOKEN` when the agent requires an API token, and
`--ca FILE` / `SHOAL_CA` to verify an https:// agent against the cluster CA.  If the agent
cannot be reached the command says "cannot reach shoal agent at URL: ..." and
exits 1; an error answer from the agent is printed and exits 1.

The commands live in one module each by concern: agent_command (`shoal
agent`), cluster (members, join, leave, monitor, keys, keygen), jobs, nodes
(node, ps, logs), images, services, stacks and chaos; client holds what the client commands
share.  `COMMANDS` below names each command's module and attribute, and a
module is imported only when its command runs or a help page lists it
(`LazyGroup`), so `shoal agent` does not load the client commands and `shoal
--help` loads no agent.  None of the command modules imports trio, httpx,
docker or the agent at the top; tests/node/test_cli_lazy.py checks that.
A new command is one line in `COMMANDS`.

    shoal agent [--name N] [--bind HOST:PORT] [--advertise HOST:PORT]
                [--join HOST:PORT ...] [--profile lan|wan|local]
                [--encrypt KEY] [--keyring-file PATH] [--state-dir DIR]
                [--api HOST:PORT] [--api-token T] [--cluster-label L]
                [--tag K=V ...] [--label K=V ...] [--cpus N] [--memory M]
                [--reserve-cpus N] [--reserve-memory M] [--runtime fake|docker]
                [--docker-host URL] [--port-range LO-HI] [--publish-address IP]
                [--api-tls-cert F --api-tls-key F --api-tls-ca F]
                [--enable-fault-hook] [--config FILE] [--log-level LEVEL]
    shoal members [--json]
    shoal job run FILE [--detach] [--timeout S]
                                          submit a TOML job spec; prints its name,
                                          then its progress until every replica runs
    shoal job status [NAME] [--json]      all jobs, or one job's slots
    shoal job stop NAME
    shoal job history NAME [--json]       the last 10 versions: when, by, why, changes
    shoal job rollback NAME [VERSION]     write an earlier version again (default: the previous)
    shoal job scale NAME N | restart NAME | promote NAME
    shoal job plan FILE [--json]          what submitting FILE would do; changes nothing
    shoal node status [NAME] [--json]     all nodes, or one node
    shoal node drain NAME | undrain NAME
    shoal stack deploy FILE [--name STACK] [--prune] [--dry-run] [--detach] [--timeout S]
                                          a Compose file, one job per service
    shoal stack rm STACK [--file FILE] | stack ls
    shoal service ls [--json]             services: instances and their addresses
    shoal service show NAME [--json]      one service's instances: node, address,
                                          ports, health
    shoal ps [--json] [--local] [--job JOB]   containers by node
    shoal logs JOB [SLOT] [--follow] [--tail N]   a replica's output, from any agent
    shoal monitor [--json] [--no-history]     the agent's events as they happen
    shoal join ADDR...
    shoal leave
    shoal keys list | install KEY | use KEY | remove KEY   [--local]
    shoal keygen [--size 16|24|32]
    shoal tls ca --out DIR                a cluster CA for the API's TLS
    shoal tls cert NAME --ca DIR --ip ADDR [--dns HOST] --out DIR
                                          an agent's certificate, signed by it
    shoal chaos sim [--nodes N] [--seeds K] [--from S] [--faults KINDS] [--jobs FILE...]
                    [--duration S] [--workers W] [--json FILE]
                                          seeded fault campaigns on the simulator
    shoal chaos check [--wait S] [--json] audit a live cluster: lost, doubled,
                                          unexplained replicas; nodes over capacity
    shoal chaos run [--nodes N] [--duration 10m] [--seed S] [--faults KINDS] [--jobs FILE...]
                                          a seeded fault campaign on the namespace
                                          testbed (root), with an HTML report
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping

import click

# Command name -> "module:attribute" of its click command, or of a function
# that assembles one (job_group); imported on use.
COMMANDS: Mapping[str, str] = {
    "agent": "node.cli.agent_command:agent",
    "chaos": "node.cli.chaos:chaos",
    "members": "node.cli.cluster:members",
    "join": "node.cli.cluster:join",
    "leave": "node.cli.cluster:leave",
    "monitor": "node.cli.cluster:monitor",
    "keys": "node.cli.cluster:keys",
    "keygen": "node.cli.cluster:keygen",
    "image": "node.cli.images:image",
    "job": "node.cli.main:job_group",
    "node": "node.cli.nodes:node_group",
    "ps": "node.cli.nodes:ps",
    "logs": "node.cli.nodes:logs",
    "service": "node.cli.services:service",
    "stack": "node.cli.stacks:stack",
    "tls": "node.cli.tls_command:tls",
}


class LazyGroup(click.Group):
    """A group whose subcommands are imported when first asked for (the
    pattern from click's documentation, "Lazily Loading Subcommands")."""

    def __init__(self, *args: object, lazy_commands: Mapping[str, str], **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.lazy_commands = dict(lazy_commands)

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *self.lazy_commands})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in self.lazy_commands and cmd_name not in self.commands:
            module_name, attr = self.lazy_commands[cmd_name].split(":")
            command = getattr(importlib.import_module(module_name), attr)
            if not isinstance(command, click.Command) and callable(command):
                command = command()  # a function that assembles the command
            if not isinstance(command, click.Command):
                raise TypeError(f"{self.lazy_commands[cmd_name]} is not a click command")
            self.add_command(command, cmd_name)
        return super().get_command(ctx, cmd_name)


def job_group() -> click.Group:
    """`shoal job`, with the version commands of node.cli.versions (history,
    plan, rollback) added to it."""
    from node.cli import jobs, versions

    for command in versions.COMMANDS:
        jobs.job.add_command(command)
    return jobs.job


@click.group(cls=LazyGroup, lazy_commands=COMMANDS, context_settings={"help_option_names": ["-h", "--help"]})
def cli() -> None:
    """shoal: a peer-to-peer container scheduler."""


def main() -> None:
    cli(prog_name="shoal")


if __name__ == "__main__":
    main()
