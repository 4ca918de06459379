"""`shoal agent`: run an agent in the foreground, once its flags are parsed.

How this works: the flags (node.cli.agent_options, parsed by click in
node.cli.agent_command or by argparse there) become an `AgentConfig` (flags
win over `--config FILE`; node.agent.config), logging is set up (one line
per event on stderr), and `node.agent.agent.run_agent` runs under
`trio.run`.  Exit status: 0 after a graceful leave (SIGINT/SIGTERM or
`shoal leave`), 2 on a configuration error (the message names the
setting), 1 if the agent cannot start (a port is taken, the state directory
is unusable).  The configuration (which imports the core's modules), trio
and the agent are imported only here, so that `shoal --help` and the client
commands start fast; before them, node.agent.codecache is installed, so
that the methods their dataclasses (and trio's attrs classes) generate
come compiled from the previous start.  Nothing here imports click.
"""

from __future__ import annotations

import gc
import logging
import sys
from functools import partial
from typing import Any

# Allocations between the cyclic GC's young-generation passes while the agent
# starts (the usual 700: a pass every few hundred objects of its ~80,000).
STARTUP_GC_THRESHOLD = 200_000


def setup_logging(level: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # hypercorn repeats our own startup line; keep it to warnings.
    logging.getLogger("shoal.api.server").setLevel(max(logging.WARNING, root.level))


def _gc_once_serving(usual_thresholds: tuple[int, ...]) -> None:
    """The agent serves: what its start-up made (modules, classes, functions,
    the HTTP stack; ~80,000 objects that live as long as the process) is
    frozen out of the cyclic GC's sight, and the usual thresholds are back.
    With the start-up's objects still in the young generations, the first
    passes after the start each scanned them all (4 ms on average for a
    middle-generation pass, 14 ms at the 90th percentile): in 60 agents
    started at once on 2 cores the GC took 1.7 s of their CPU until all saw
    all.  The price: cyclic garbage the start-up left (about 2,400 objects,
    0.5 MB) is kept, frozen with the rest."""
    gc.freeze()
    gc.set_threshold(*usual_thresholds)


def run(config_file: str | None, flags: dict[str, Any]) -> None:
    """Run the agent the flags describe, until it leaves; exits 1, 2 or 130 on failure."""
    # The cyclic GC runs rarely until the agent serves: the imports below
    # (and the HTTP stack's, once it gossips) make some 80,000 objects that
    # live as long as the process, and collecting while they are young scans
    # them again and again (about 7 ms of CPU before the first ack).  Rarely,
    # not never: a start that waits (an engine that does not answer yet)
    # still collects what it leaves behind.  Once it serves, see
    # `_gc_once_serving`.
    usual_thresholds = gc.get_threshold()
    gc.set_threshold(STARTUP_GC_THRESHOLD, *usual_thresholds[1:])
    from node.api import lean_imports

    lean_imports.import_hashes_without_openssl()  # before codecache's: no libcrypto for them
    from node.agent import codecache

    codecache.install()  # before the imports below: their generated code, compiled once (node.agent.codecache)

    # trio without the parts an agent never runs (DTLS, subprocesses, async
    # files, TLS streams): loaded at their first use (node.api.lean_imports)
    trio = lean_imports.import_module("trio", lean_imports.trio_parts())

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
        print(f"shoal agent: {e}", file=sys.stderr)
        sys.exit(2)
    setup_logging(cfg.log_level)
    if (warning := insecure_warning(cfg)) is not None:
        logging.getLogger("shoal.agent").warning(warning)
    from node.state.layout import PersistError

    try:
        # trio's own clock, or with --enable-fault-hook one that is off (chaos testing)
        trio.run(partial(run_agent, cfg, on_started=partial(_gc_once_serving, usual_thresholds)),
                 clock=fault_clock(cfg))
    except ConfigError as e:
        print(f"shoal agent: {e}", file=sys.stderr)
        sys.exit(2)
    except (OSError, PersistError) as e:
        logging.getLogger("shoal.agent").error("cannot start: %s", e)
        sys.exit(1)
    except KeyboardInterrupt:
        sys.exit(130)
