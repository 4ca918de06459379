"""`shoal exec [-i] [-t] JOB [SLOT] -- CMD...`: run a command in a replica's container, from any agent.

How this works: the agent asked finds the node that runs the slot and
forwards there (node.api.routes_exec).  Without -i/-t the command runs
without a TTY or stdin, as `docker exec` without `-it`: its output (stdout
and stderr together, at most 1 MiB) is printed and this command exits with
its exit code, so scripts can test it; 124 (as `timeout`) when it was still
running after `--timeout`, and it then goes on in the container.  With -i
(stdin) or -t (a terminal) it is a session over a WebSocket instead
(node.cli.exec_interactive), as long as the command runs; --timeout does
not apply.
"""

from __future__ import annotations

import sys
from urllib.parse import quote, urlencode

import click

from node.cli.client import CLIENT_TIMEOUT_S, Client, client_options, fail, placed_slots

TIMED_OUT_EXIT = 124


@click.command(context_settings={"ignore_unknown_options": True})
@click.argument("job_name", metavar="JOB")
@click.argument("words", metavar="[SLOT] [--] CMD...", nargs=-1, required=True, type=click.UNPROCESSED)
@click.option("--timeout", "timeout_s", type=click.FloatRange(min=0, min_open=True, max=600), default=60.0,
              show_default=True, help="Seconds to wait for the command (at most 600).")
@click.option("--node", help="The replica on this node (a global job's copy there, say), instead of SLOT.")
@click.option("-i", "--interactive", is_flag=True, help="Pass this command's stdin to CMD (a pipe, a file or the "
              "terminal).")
@click.option("-t", "--tty", is_flag=True, help="Give CMD a terminal (with -i: a shell, `shoal exec -it web -- sh`).")
@client_options
def exec_command(job_name: str, words: tuple[str, ...], timeout_s: float, node: str | None, interactive: bool,
                 tty: bool, address: str, token: str | None) -> None:
    """Run CMD in the container of replica SLOT (an index, default 0) of JOB,
    or of its replica on --node, on whichever node runs it; print its output
    and exit with its exit code: `shoal exec web 0 -- cat /etc/hosts`,
    `shoal exec node-exporter --node node-2 -- ps`.  With -i CMD reads this
    command's stdin (`shoal exec -i db -- sh -c 'cat > /tmp/x' < x`), with
    -it it gets a terminal (`shoal exec -it web 2 -- sh`)."""
    slot, command = 0, list(words)
    if len(command) > 1 and command[0].isdigit():
        if node is not None:
            fail("give SLOT or --node, not both")
        slot, command = int(command[0]), command[1:]
    if command and command[0] == "--":
        command = command[1:]
    if not command:
        fail("no command given: shoal exec JOB [SLOT] -- CMD...")
    client = Client(address, token)
    if node is not None:
        held = [i for i, n in placed_slots(client, job_name) if n == node]
        if len(held) != 1:
            fail(f"{node} holds {'no replica' if not held else f'{len(held)} replicas'} of {job_name}"
                 + (f" ({', '.join(f'{job_name}/{i}' for i in held)}): give SLOT" if held else ""))
        slot = held[0]
    if interactive or tty:
        from node.cli.exec_interactive import run_session   # trio and its WebSocket client: only here

        sys.exit(run_session(client, job_name, slot, command, interactive=interactive, tty=tty))
    query = urlencode({"slot": str(slot), "timeout_s": str(timeout_s), "cmd": command}, doseq=True)
    result = client.request("POST", f"/v1/jobs/{quote(job_name, safe='')}/exec?{query}",
                            timeout_s=timeout_s + CLIENT_TIMEOUT_S)
    sys.stdout.write(result.get("output", ""))
    sys.stdout.flush()
    if result.get("truncated"):
        click.echo(f"shoal: output cut at 1 MiB ({result['slot']} on {result['node']})", err=True)
    if result.get("timed_out"):
        click.echo(f"shoal: still running after {timeout_s:g} s in {result['slot']} on {result['node']} "
                   "(left running there)", err=True)
        sys.exit(TIMED_OUT_EXIT)
    code = result.get("exit_code")
    sys.exit(code if isinstance(code, int) and 0 <= code <= 255 else 1)
