"""`shoal agent`: the click command (its help page and error messages).

How this works: the options are declared once in node.cli.agent_options
(click-free, so that `shoal agent` can start without click when argparse
reads its command line: see there); this module turns each into a click
option and hands the values to node.cli.agent_run.run, which builds the
config and runs the agent (exit status 0 after a graceful leave, 2 on a
configuration error naming the setting, 1 if the agent cannot start).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click

from node.cli.agent_options import OPTIONS, Option


def _click_option(opt: Option) -> Callable[[Any], Any]:
    kw: dict[str, Any] = {"help": opt.help or None}
    if opt.kind == "flag":
        kw["is_flag"] = True
    elif opt.kind == "multiple":
        kw["multiple"] = True
    elif opt.kind == "path":
        kw["type"] = click.Path(dir_okay=False)
    if opt.choices:
        kw["type"] = click.Choice(list(opt.choices), case_sensitive=opt.case_sensitive)
    if opt.envvar:
        kw["envvar"] = opt.envvar
    return click.option(opt.flag, opt.dest, **kw)


def _agent(config_file: str | None, **flags: Any) -> None:
    """Run a shoal agent in the foreground."""
    from node.cli.agent_run import run

    run(config_file, flags)


command: Any = _agent
for _opt in reversed(OPTIONS):
    command = _click_option(_opt)(command)
agent = click.command(name="agent")(command)
