"""The `shoal` command loads only what the command asked for.

`shoal --help` and the client commands' help must not import the agent, the
HTTP server, the docker SDK, trio or the metrics library: each costs tens of
milliseconds at every invocation (see docs/benchmarks.md, agent start).
Checked in a fresh interpreter, since this test process has loaded them all.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import click
import pytest

from node.cli.main import COMMANDS, cli

REPO = Path(__file__).resolve().parents[2]

# Modules (and packages) a help page must not load.
HEAVY = ("node.agent.agent", "node.agent.config", "node.api.server", "node.core.node_core", "node.runtime.docker",
         "node.sim", "docker", "hypercorn", "starlette", "httpx", "trio", "prometheus_client")

PROBE = """
import json, sys
from node.cli.main import cli
try:
    cli.main(sys.argv[1:], prog_name="shoal", standalone_mode=False)
finally:
    print(json.dumps(sorted(sys.modules)), file=sys.stderr)
"""


def loaded_modules(*args: str) -> set[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.run([sys.executable, "-c", PROBE, *args], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert "Usage: shoal" in proc.stdout, proc.stdout
    return set(json.loads(proc.stderr.strip().splitlines()[-1]))


def heavy_in(modules: set[str]) -> list[str]:
    return sorted(m for m in modules if any(m == h or m.startswith(h + ".") for h in HEAVY))


@pytest.mark.parametrize("args", [("--help",), ("job", "--help"), ("agent", "--help"), ("node", "--help")])
def test_help_loads_no_agent_server_or_docker(args: tuple[str, ...]) -> None:
    assert heavy_in(loaded_modules(*args)) == []


def test_agent_help_does_not_load_the_client_commands() -> None:
    modules = loaded_modules("agent", "--help")
    assert "node.cli.agent_command" in modules
    assert not {"node.cli.jobs", "node.cli.cluster", "node.cli.nodes", "node.cli.client"} & modules


def test_every_listed_command_loads_under_its_name() -> None:
    ctx = click.Context(cli)
    assert set(COMMANDS) <= set(cli.list_commands(ctx))
    for name in COMMANDS:
        command = cli.get_command(ctx, name)
        assert isinstance(command, click.Command), name
        assert command.name == name, f"{COMMANDS[name]} is named {command.name!r}, listed as {name!r}"
