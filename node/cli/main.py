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
(node, ps), logs_command, exec_command, images, services, stacks and chaos;
client holds what the client commands share.  `COMMANDS` below names each command's module and attribute, and a
module is imported only when its command runs or a help page lists it
(`LazyGroup`), so `shoal agent` does not load the client commands and `shoal
--help` loads no agent.  None of the command modules imports trio, httpx,
docker or the agent at the top; tests/node/test_cli_lazy.py checks that.
A new command is one line in `COMMANDS`.  `COMMANDS`, the click group and
`cli` live in node.cli.group (importable from here too); `main()` runs
`shoal agent` without importing click when argparse can read its options
(node.cli.agent_options): 10 ms of CPU and 1 MiB less per agent.

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
    shoal logs JOB [SLOT | --node N] [--follow] [--tail N]   the replicas' output (each line prefixed
                                          SLOT@NODE), or one replica's, from any agent
    shoal exec JOB [SLOT | --node N] [--timeout S] -- CMD...   run a command in a replica's container,
                                          from any agent; exits with its exit code
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

import sys
from typing import Any


def main() -> None:
    argv = sys.argv[1:]
    if argv[:1] == ["agent"]:
        from node.cli.agent_options import main_fast

        main_fast(argv[1:])  # returns only if click should parse the command line
    from node.cli.group import cli

    cli(prog_name="shoal")


def __getattr__(name: str) -> Any:
    """`cli`, `COMMANDS`, `LazyGroup`, `job_group`: node.cli.group's (click), imported on use."""
    if name in ("cli", "COMMANDS", "LazyGroup", "job_group"):
        from node.cli import group

        return getattr(group, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


if __name__ == "__main__":
    main()
