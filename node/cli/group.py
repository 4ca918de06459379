"""The `shoal` click group: every command, each imported when it runs.

How this works: see node.cli.main (`COMMANDS` names each command's module
and attribute; `LazyGroup` imports a command's module only when the
command runs or a help page lists it).
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
    "job": "node.cli.group:job_group",
    "node": "node.cli.nodes:node_group",
    "ps": "node.cli.nodes:ps",
    "logs": "node.cli.logs_command:logs",
    "exec": "node.cli.exec_command:exec_command",
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
