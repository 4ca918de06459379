"""`shoal agent`: run an agent in the foreground.

How this works: the flags become an `AgentConfig` (flags win over `--config
FILE`; node.agent.config), logging is set up (one line per event on stderr),
and `node.agent.agent.run_agent` runs under `trio.run`.  Exit status: 0 after
a graceful leave (SIGINT/SIGTERM or `shoal leave`), 2 on a configuration
error (the message names the setting), 1 if the agent cannot start (a port is
taken, the state directory is unusable).  The configuration (which imports
the core's modules), trio and the agent are imported only when the command
runs, so that `shoal --help` and the client commands start fast; before
them, node.agent.codecache is installed, so that the methods their
dataclasses generate come compiled from the previous start.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

import click


def setup_logging(level: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # hypercorn repeats our own startup line; keep it to warnings.
    logging.getLogger("shoal.api.server").setLevel(max(logging.WARNING, root.level))



@click.command()
@click.option("--name", help="Node name, unique in the cluster (default: hostname).")
@click.option("--bind", help="Gossip address HOST:PORT, UDP and TCP (default 0.0.0.0:7946).")
@click.option("--advertise", help="Address other nodes use to reach us (default: see docs).")
@click.option("--join", "join", multiple=True, help="Seed HOST[:PORT] to join; repeatable, retried with backoff.")
@click.option("--profile", type=click.Choice(["lan", "wan", "local"]), help="Gossip timing preset (default lan).")
@click.option("--encrypt", help="Base64 AES key (16/24/32 bytes), as Serf's -encrypt.")
@click.option("--insecure-no-encryption", "insecure_no_encryption", is_flag=True,
              help="Gossip without a key on a non-loopback address, which is refused otherwise: anyone who "
                   "can reach the port can then join the cluster and rewrite its jobs (logged as a WARNING).")
@click.option("--keyring-file", help="JSON list of base64 keys, primary first; rotations are saved here.")
@click.option("--state-dir", help="Directory for keyring.json and agent.json.")
@click.option("--api", help="HTTP API address HOST:PORT (default 127.0.0.1:7980).")
@click.option("--api-token", envvar="SHOAL_API_TOKEN", help="Require this bearer token on the API.")
@click.option("--api-tls-cert", help="PEM certificate of this agent's API (HTTPS); see `shoal tls`.")
@click.option("--api-tls-key", help="PEM private key of --api-tls-cert.")
@click.option("--api-tls-ca", help="PEM cluster CA: verifies other agents and client certificates.")
@click.option("--enable-fault-hook", "enable_fault_hook", is_flag=True,
              help="Serve PUT /v1/agent/fault (the testbed's delay injection); off by default.")
@click.option("--cluster-label", "label",
              help="Cluster label; agents with different cluster labels ignore each other.")
@click.option("--tag", "tags", multiple=True, help="Extra node tag KEY=VALUE; repeatable.")
@click.option("--label", "labels", multiple=True,
              help="Node label KEY=VALUE for constraints and spread (rack, zone, ...); repeatable. "
                   "arch is set from the machine unless given.")
@click.option("--cpus", help="Cores this node offers to jobs (2, 1.5, 500m) instead of the measured ones.")
@click.option("--memory", help="Memory this node offers to jobs (4GiB) instead of the measured amount.")
@click.option("--reserve-cpus", help="Cores kept for the host (default 5%, at least 100m).")
@click.option("--reserve-memory", help="Memory kept for the host (default 10%, at most 256MiB).")
@click.option("--runtime", type=click.Choice(["fake", "docker"]),
              help="Container runtime (default fake: records starts and stops only).")
@click.option("--docker-host", help="Docker engine URL for --runtime docker (default $SHOAL_DOCKER_HOST, "
                                    "else unix:///var/run/docker.sock).")
@click.option("--port-range", help="Host ports for jobs' dynamic ports, LO-HI inclusive (default 20000-32000).")
@click.option("--publish-address", help="IP replicas' ports are published on (default: the advertise address's "
                                        "host; 0.0.0.0 publishes on every interface).")
@click.option("--config", "config_file", type=click.Path(dir_okay=False), help="TOML config file; flags win.")
@click.option("--log-level", type=click.Choice(["DEBUG", "INFO", "WARNING", "ERROR"], case_sensitive=False))
def agent(config_file: str | None, **flags: Any) -> None:
    """Run a shoal agent in the foreground."""
    from node.agent import codecache

    codecache.install()  # before the imports below: their dataclasses' code, compiled once (node.agent.codecache)
    import trio

    from node.agent.agent import run_agent
    from node.agent.config import ConfigError, load_config
    from node.agent.fault_clock import fault_clock
    from node.agent.safe_defaults import insecure_warning

    if not flags.get("insecure_no_encryption"):
        flags["insecure_no_encryption"] = None  # not given: the config file decides
    if not flags.get("enable_fault_hook"):
        flags["enable_fault_hook"] = None
    try:
        cfg = load_config(config_file, flags)
    except ConfigError as e:
        click.echo(f"shoal agent: {e}", err=True)
        sys.exit(2)
    setup_logging(cfg.log_level)
    if (warning := insecure_warning(cfg)) is not None:
        logging.getLogger("shoal.agent").warning(warning)
    from node.state.persist import PersistError

    try:
        # trio's own clock, or with --enable-fault-hook one that is off (chaos testing)
        trio.run(run_agent, cfg, clock=fault_clock(cfg))
    except ConfigError as e:
        click.echo(f"shoal agent: {e}", err=True)
        sys.exit(2)
    except (OSError, PersistError) as e:
        logging.getLogger("shoal.agent").error("cannot start: %s", e)
        sys.exit(1)
    except KeyboardInterrupt:
        sys.exit(130)
