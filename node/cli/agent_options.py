"""`shoal agent`'s options, declared once and readable without click.

How this works: `OPTIONS` lists each option (its flag, the parameter it
fills, its kind, help).  node.cli.agent_command builds the click command
from it: its help page and its error messages are click's.  `parse_fast`
reads the same options, so that `python -m node.cli agent ...` / `shoal
agent ...` starts without importing click (about 10 ms of CPU, 7 % of a
start, and 1 MiB of resident memory: docs/benchmarks.md), nor argparse
(about 2.5 ms with gettext): it takes only the plain forms, `--opt VALUE`,
`--opt=VALUE` and `--flag`, so it needs no parser.  It gives click's values (None when not given, a tuple
for a repeatable option, a bool for a flag, the canonical spelling of a
choice, the last value of an option given twice) and returns None for
anything it is not sure of (--help, an unknown, abbreviated or short
option, an argument, a missing value or one that starts with "-", a flag
given a value, a value that is not one of the choices, a --config that is a
directory), and then click parses the
command line as before; tests/node/test_cli_agent_fast.py checks that both
give the same values.
"""

from __future__ import annotations

import os
import sys
from typing import Any


class Option:
    __slots__ = ("choices", "dest", "envvar", "flag", "help", "kind", "case_sensitive")

    def __init__(self, flag: str, help: str, dest: str | None = None, kind: str = "value",
                 choices: tuple[str, ...] = (), envvar: str | None = None, case_sensitive: bool = True) -> None:
        self.flag = flag
        self.dest = dest or flag.lstrip("-").replace("-", "_")
        self.kind = kind  # "value", "multiple", "flag" or "path" (a file: not a directory)
        self.help = help
        self.choices = choices
        self.envvar = envvar
        self.case_sensitive = case_sensitive


OPTIONS: tuple[Option, ...] = (
    Option("--name", "Node name, unique in the cluster (default: hostname)."),
    Option("--bind", "Gossip address HOST:PORT, UDP and TCP (default 0.0.0.0:7946)."),
    Option("--advertise", "Address other nodes use to reach us (default: see docs)."),
    Option("--join", "Seed HOST[:PORT] to join; repeatable, retried with backoff.", kind="multiple"),
    Option("--profile", "Timing preset: gossip, and on wan longer auction rounds (default lan).",
           choices=("lan", "wan", "local")),
    Option("--encrypt", "Base64 AES key (16/24/32 bytes), as Serf's -encrypt."),
    Option("--insecure-no-encryption",
           "Gossip without a key on a non-loopback address, which is refused otherwise: anyone who "
           "can reach the port can then join the cluster and rewrite its jobs (logged as a WARNING).", kind="flag"),
    Option("--keyring-file", "JSON list of base64 keys, primary first; rotations are saved here."),
    Option("--state-dir", "Directory for keyring.json and agent.json."),
    Option("--api", "HTTP API address HOST:PORT (default 127.0.0.1:7980)."),
    Option("--api-token", "Require this bearer token on the API.", envvar="SHOAL_API_TOKEN"),
    Option("--api-tls-cert", "PEM certificate of this agent's API (HTTPS); see `shoal tls`."),
    Option("--api-tls-key", "PEM private key of --api-tls-cert."),
    Option("--api-tls-ca", "PEM cluster CA: verifies other agents and client certificates."),
    Option("--enable-fault-hook", "Serve PUT /v1/agent/fault (the testbed's delay injection); off by default.",
           kind="flag"),
    Option("--cluster-label", "Cluster label; agents with different cluster labels ignore each other.", dest="label"),
    Option("--tag", "Extra node tag KEY=VALUE; repeatable.", dest="tags", kind="multiple"),
    Option("--label", "Node label KEY=VALUE for constraints and spread (rack, zone, ...); repeatable. "
                      "arch is set from the machine unless given.", dest="labels", kind="multiple"),
    Option("--cpus", "Cores this node offers to jobs (2, 1.5, 500m) instead of the measured ones."),
    Option("--memory", "Memory this node offers to jobs (4GiB) instead of the measured amount."),
    Option("--reserve-cpus", "Cores kept for the host (default 5%, at least 100m)."),
    Option("--reserve-memory", "Memory kept for the host (default 10%, at most 256MiB)."),
    Option("--runtime", "Container runtime (default fake: records starts and stops only).",
           choices=("fake", "docker")),
    Option("--docker-host", "Docker engine URL for --runtime docker (default $SHOAL_DOCKER_HOST, "
                            "else unix:///var/run/docker.sock)."),
    Option("--port-range", "Host ports for jobs' dynamic ports, LO-HI inclusive (default 20000-32000)."),
    Option("--publish-address", "IP replicas' ports are published on (default: the advertise address's "
                                "host; 0.0.0.0 publishes on every interface)."),
    Option("--config", "TOML config file; flags win.", dest="config_file", kind="path"),
    Option("--log-level", "", choices=("DEBUG", "INFO", "WARNING", "ERROR"), case_sensitive=False),
)


BY_FLAG = {opt.flag: opt for opt in OPTIONS}


def parse_fast(argv: list[str]) -> dict[str, Any] | None:
    """The agent's parameters from `argv` (after `agent`), as click would
    pass them, or None when click should parse them (see the module doc)."""
    given: dict[str, list[str]] = {opt.dest: [] for opt in OPTIONS}  # every value, in order
    args = iter(argv)
    for arg in args:
        flag, eq, inline = arg.partition("=")
        opt = BY_FLAG.get(flag)
        if opt is None:  # an argument, --help, --, a short or abbreviated or unknown option
            return None
        if opt.kind == "flag":
            if eq:
                return None
            given[opt.dest].append("")
            continue
        value = inline if eq else next(args, None)
        if value is None or not eq and value.startswith("-"):  # missing, or click may read it otherwise
            return None
        given[opt.dest].append(value)
    out: dict[str, Any] = {}
    for opt in OPTIONS:
        values = given[opt.dest]
        if opt.kind == "flag":
            out[opt.dest] = bool(values)
            continue
        if opt.kind == "multiple":
            out[opt.dest] = tuple(values)
            continue
        value = values[-1] if values else None  # given twice: the last, as click does
        if value is None and opt.envvar is not None:
            value = os.environ.get(opt.envvar) or None
        if value is not None and opt.choices:
            match = [c for c in opt.choices if c == value or not opt.case_sensitive and c.lower() == value.lower()]
            if not match:
                return None
            value = match[0]
        if value is not None and opt.kind == "path" and os.path.isdir(value):
            return None
        out[opt.dest] = value
    return out


def main_fast(argv: list[str]) -> bool:
    """Run `shoal agent` from `argv` (after `agent`) without click, if it
    parses (never returns then); False: let click take the command line."""
    flags = parse_fast(argv)
    if flags is None:
        return False
    from node.cli.agent_run import run

    config_file = flags.pop("config_file")
    run(config_file, flags)
    sys.exit(0)
