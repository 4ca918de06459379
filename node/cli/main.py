"""The `shoal` command: run an agent, or talk to one over its HTTP API.

How this works: `shoal agent` turns its flags into an `AgentConfig` (flags
win over `--config FILE`), sets up logging (one line per event on stderr) and
runs `node.agent.agent.run_agent` under `trio.run`; it exits 0 after a graceful
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
                [--api HOST:PORT] [--api-token T] [--cluster-label L]
                [--tag K=V ...] [--label K=V ...] [--cpus N] [--memory M]
                [--reserve-cpus N] [--reserve-memory M] [--runtime fake|docker]
                [--docker-host URL]
                [--config FILE] [--log-level LEVEL]
    shoal members [--json]
    shoal job run FILE [--detach] [--timeout S]
                                          submit a TOML job spec; prints its name,
                                          then its progress until every replica runs
    shoal job status [NAME] [--json]      all jobs, or one job's slots
    shoal job stop NAME
    shoal node status [NAME] [--json]     all nodes, or one node
    shoal node drain NAME | undrain NAME
    shoal stack deploy FILE [--name STACK] [--prune] [--dry-run] [--detach] [--timeout S]
                                          a Compose file, one job per service
    shoal stack rm STACK [--file FILE] | stack ls
    shoal ps [--json] [--local] [--job JOB]   containers by node
    shoal logs JOB [SLOT] [--follow] [--tail N]   a replica's output, from any agent
    shoal monitor [--json] [--no-history]     the agent's events as they happen
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
from urllib.parse import quote

import click

from node.agent.config import DEFAULT_API_PORT, ConfigError, load_config

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
    """shoal: a peer-to-peer container scheduler."""


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
@click.option("--config", "config_file", type=click.Path(dir_okay=False), help="TOML config file; flags win.")
@click.option("--log-level", type=click.Choice(["DEBUG", "INFO", "WARNING", "ERROR"], case_sensitive=False))
def agent(config_file: str | None, **flags: Any) -> None:
    """Run a shoal agent in the foreground."""
    import trio

    from node.agent.agent import run_agent

    try:
        cfg = load_config(config_file, flags)
    except ConfigError as e:
        click.echo(f"shoal agent: {e}", err=True)
        sys.exit(2)
    setup_logging(cfg.log_level)
    from node.state.persist import PersistError

    try:
        trio.run(run_agent, cfg)
    except ConfigError as e:
        click.echo(f"shoal agent: {e}", err=True)
        sys.exit(2)
    except (OSError, PersistError) as e:
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
            if isinstance(data, dict) and isinstance(data.get("problems"), list):
                extra += "".join(f"\n  {format_problem(p)}" for p in data["problems"] if isinstance(p, dict))
            fail(f"{msg or resp.reason_phrase} (HTTP {resp.status_code}){extra}")
        return data


def format_problem(p: dict[str, Any]) -> str:
    path, message = p.get("path") or "", p.get("message", "")
    return f"{path}: {message}" if path else str(message)


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


# ---- jobs ---------------------------------------------------------------------------


def table(rows: list[tuple[str, ...]]) -> str:
    """Left-aligned columns, two spaces apart; the last column is not padded."""
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
    lines = ["  ".join([*(c.ljust(w) for c, w in zip(r, widths)), r[-1]]).rstrip() for r in rows]
    return "\n".join(lines) + "\n"


def _ballot(b: dict[str, Any] | None) -> str:
    return f"{b['round']}@{b['coordinator']}" if b else "-"


def format_jobs(jobs: list[dict[str, Any]]) -> str:
    if not jobs:
        return "no jobs\n"
    rows = [("Name", "Replicas", "Placed", "Running", "Pending", "Image")]
    for j in jobs:
        if not j.get("valid", True):
            rows.append((j["name"], "?", "?", "?", "?", "(spec unreadable on this agent)"))
            continue
        rows.append((j["name"], str(j["replicas"]), str(j["placed"]), str(j.get("running", "?")),
                     str(j["pending"]), j["image"]))
    return table(rows)


def format_job(j: dict[str, Any]) -> str:
    spec = j.get("spec") or {}
    head = (f"Job {j['name']}: image {spec.get('image', '?')}, cpu {spec.get('cpu', '?')}, "
            f"memory {spec.get('memory', '?')}; {j.get('replicas', '?')} replicas, "
            f"{j.get('placed', 0)} placed, {j.get('pending', 0)} pending, {j.get('running', '?')} running\n")
    rows = [("Index", "Node", "Ballot", "State")]
    for s in j.get("slots", []):
        state = s["state"] if not s.get("reason") else f"{s['state']}: {s['reason']}"
        if s["state"] == "placed" and s.get("runtime"):  # what the holder's runtime says
            state = s["runtime"] + (f": {s['runtime_reason']}" if s.get("runtime_reason") else "")
        rows.append((str(s["index"]), s.get("node") or "-", _ballot(s.get("ballot")), state))
    for s in j.get("extra", []):
        rows.append((str(s["index"]), s.get("node") or "-", _ballot(s.get("ballot")), s["state"]))
    return head + table(rows)


@cli.group()
def job() -> None:
    """Submit, inspect and stop jobs."""


@job.command("run")
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--json", "as_json", is_flag=True, help="Print the agent's answer as JSON (implies --detach).")
@click.option("--detach", "-d", is_flag=True, help="Return once the job is stored; do not wait for it to run.")
@click.option("--timeout", "timeout_s", type=click.FloatRange(min=0), default=60.0, show_default=True,
              help="Seconds to wait for every replica to run.")
@client_options
def job_run(file: str, as_json: bool, detach: bool, timeout_s: float, address: str, token: str | None) -> None:
    """Submit the job spec in FILE (TOML; docs/jobspec.md).  Prints the job's
    name once the agent has stored it durably, then (on stderr) each replica
    going pending, placed, running or failed, until all run or --timeout.
    Exit 0 when all run, 2 when some do not by then (with why), 1 on errors."""
    from auction.spec import MAX_SPEC_BYTES, SpecError, load_toml

    try:
        with open(file, "rb") as f:
            raw = f.read(MAX_SPEC_BYTES + 1)
    except OSError as e:
        fail(f"cannot read {file}: {e.strerror or e}")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        fail(f"{file}: not UTF-8 text")
    try:
        spec = load_toml(text)
    except SpecError as e:
        lines = "".join(f"\n  {p}" for p in e.problems)
        n = len(e.problems)
        fail(f"{file}: invalid job spec ({n} problem{'s' if n != 1 else ''}):{lines}")
    client = Client(address, token)
    data = client.request("POST", "/v1/jobs", spec.to_dict())
    click.echo(json.dumps(data, indent=2) if as_json else data["name"])
    if not (as_json or detach):
        from node.cli.progress import follow_progress

        try:
            sys.exit(follow_progress(client, [data["name"]], timeout_s))
        except KeyboardInterrupt:
            click.echo(f"stopped watching; {data['name']} goes on (shoal job status {data['name']})", err=True)
            sys.exit(130)


@job.command("status")
@click.argument("name", required=False)
@click.option("--json", "as_json", is_flag=True, help="Print the agent's answer as JSON.")
@client_options
def job_status(name: str | None, as_json: bool, address: str, token: str | None) -> None:
    """List jobs, or show NAME's replica slots: node, ballot, state and why
    a slot is pending."""
    client = Client(address, token)
    data = client.request("GET", f"/v1/jobs/{quote(name, safe='')}" if name else "/v1/jobs")
    if as_json:
        click.echo(json.dumps(data, indent=2))
    else:
        click.echo(format_job(data) if name else format_jobs(data), nl=False)


@job.command("stop")
@click.argument("name")
@client_options
def job_stop(name: str, address: str, token: str | None) -> None:
    """Stop job NAME everywhere (its replicas are stopped, the job deleted)."""
    Client(address, token).request("DELETE", f"/v1/jobs/{quote(name, safe='')}")
    click.echo(f"{name} stopped")


# ---- nodes --------------------------------------------------------------------------


def _res(view: dict[str, Any] | None, key: str, fmt) -> str:
    return fmt(view[key]) if view else "-"


def format_nodes(nodes: list[dict[str, Any]]) -> str:
    from auction.resources import format_cpu, format_memory

    rows = [("Name", "Status", "Health", "Eligible", "CPU free/total", "Memory free/total", "Labels")]
    for n in nodes:
        free, cap = n.get("free"), n.get("capacity")
        cpu = (f"{format_cpu(free['cpu_millis']).removesuffix(' cpu')}/{format_cpu(cap['cpu_millis'])}"
               if free and cap else "-")
        mem = f"{format_memory(free['memory_bytes'])}/{format_memory(cap['memory_bytes'])}" if free and cap else "-"
        eligible = "drained" if n.get("drained") else ("yes" if n.get("eligible") else "no")
        labels = ",".join(f"{k}={v}" for k, v in sorted((n.get("labels") or {}).items()))
        rows.append((n["name"], n["status"], n["health"], eligible, cpu, mem, labels))
    return table(rows)


def format_node(n: dict[str, Any]) -> str:
    lines = [f"Name:           {n['name']}",
             f"Status:         {n['status']} ({n['health']})",
             f"Address:        {n.get('addr')}:{n.get('port')}",
             f"API:            {n.get('api') or '-'}"]
    if n.get("status_known"):
        lines += [f"Eligible:       {'no (drained)' if n['drained'] else 'yes' if n['eligible'] else 'no'}",
                  f"Healthy:        {'yes' if n['healthy'] else 'no: ' + (n.get('unhealthy_reason') or '?')}",
                  f"Capacity:       {n['capacity']['text']}",
                  f"Allocated:      {n['allocated']['text']}",
                  f"Free:           {n['free']['text']}",
                  "Labels:         " + (", ".join(f"{k}={v}" for k, v in sorted(n["labels"].items())) or "-"),
                  f"Agent version:  {n.get('agent_version') or '-'}",
                  f"Jobs known:     {n.get('jobs')}"]
    else:
        lines.append("Status record:  none published (not a shoal agent, or not heard from yet)")
    return "\n".join(lines) + "\n"


@cli.group("node")
def node_group() -> None:
    """Inspect nodes; drain or undrain them."""


@node_group.command("status")
@click.argument("name", required=False)
@click.option("--json", "as_json", is_flag=True, help="Print the agent's answer as JSON.")
@client_options
def node_status(name: str | None, as_json: bool, address: str, token: str | None) -> None:
    """List the nodes (capacity, free, labels, eligibility, health), or show NAME."""
    data = Client(address, token).request("GET", f"/v1/nodes/{quote(name, safe='')}" if name else "/v1/nodes")
    if as_json:
        click.echo(json.dumps(data, indent=2))
    else:
        click.echo(format_node(data) if name else format_nodes(data), nl=False)


def _drain_command(action: str, help_text: str):
    @click.argument("name")
    @client_options
    def command(name: str, address: str, token: str | None) -> None:
        data = Client(address, token).request("POST", f"/v1/nodes/{quote(name, safe='')}/{action}")
        via = f" (through its agent at {data['forwarded_to']})" if data.get("forwarded_to") else ""
        click.echo(f"{name} {action}ed{via}")

    command.__doc__ = help_text
    return node_group.command(action)(command)


_drain_command("drain", "Drain node NAME: its replicas move elsewhere and it takes no new ones.")
_drain_command("undrain", "Make node NAME eligible for replicas again.")


# ---- stacks: Compose files (node/compose.py) -------------------------------------------


@cli.group()
def stack() -> None:
    """Deploy Docker Compose files: each service becomes job STACK-SERVICE."""


def _read_compose(file: str) -> Any:
    from node.cli.compose import MAX_COMPOSE_BYTES, ComposeError, parse

    try:
        with open(file, "rb") as f:
            raw = f.read(MAX_COMPOSE_BYTES + 1)
        return parse(raw.decode("utf-8"))
    except OSError as e:
        fail(f"cannot read {file}: {e.strerror or e}")
    except UnicodeDecodeError:
        fail(f"{file}: not UTF-8 text")
    except ComposeError as e:
        fail(f"{file}: {e}")


@stack.command("deploy")
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--name", "stack_name",
              help="Stack name, lowercase letters and digits (default: the file's top-level "
                   "'name', else its directory's name).")
@click.option("--prune", is_flag=True, help="Also stop the stack's jobs whose service is not in FILE.")
@click.option("--dry-run", is_flag=True, help="Print the job specs as JSON and submit nothing.")
@click.option("--detach", is_flag=True, help="Submit and return; do not follow progress.")
@click.option("--timeout", "timeout_s", type=float, default=60.0, show_default=True,
              help="Follow progress this many seconds at most (exit 2 if some slots cannot be placed).")
@client_options
def stack_deploy(file: str, stack_name: str | None, prune: bool, dry_run: bool, detach: bool,
                 timeout_s: float, address: str, token: str | None) -> None:
    """Submit every service of the Compose FILE as a job.  Keys shoal does not
    support are listed as warnings; any error stops before anything is submitted."""
    from node.cli import compose

    doc = _read_compose(file)
    try:
        name = (compose.check_stack_name(stack_name) if stack_name else
                compose.default_stack_name(doc, os.path.basename(os.path.dirname(os.path.abspath(file)))))
    except compose.ComposeError as e:
        fail(f"--name: {e.problems[0].message}")
    try:
        st = compose.convert(doc, name)
    except compose.ComposeError as e:
        fail(f"{file}: {e}")
    for w in st.warnings:
        click.echo(f"warning: {w}", err=True)
    if dry_run:
        click.echo(json.dumps([j.to_dict() for j in st.jobs], indent=2))
        return
    client = Client(address, token)
    for service, spec in zip(st.services, st.jobs):
        client.request("POST", "/v1/jobs", spec.to_dict())
        click.echo(f"{service}: job {spec.name} ({spec.replicas} replica{'s' if spec.replicas != 1 else ''})")
    if prune:
        existing = [j["name"] for j in client.request("GET", "/v1/jobs")]
        for job_name in compose.stack_jobs(name, existing):
            if job_name not in st.services.values():
                client.request("DELETE", f"/v1/jobs/{quote(job_name, safe='')}")
                click.echo(f"{job_name}: stopped (no longer in {file})")
    click.echo(f"stack {name}: {len(st.jobs)} job(s) submitted; see `shoal stack ls`, `shoal job status`")
    if not detach and st.jobs:
        # The same live progress as `shoal job run`: exit 0 when every
        # replica of every service runs, 2 when some cannot be placed.
        from node.cli.progress import follow_progress

        try:
            sys.exit(follow_progress(client, [j.name for j in st.jobs], timeout_s))
        except KeyboardInterrupt:
            click.echo(f"stopped watching; stack {name} goes on (shoal stack ls)", err=True)
            sys.exit(130)


@stack.command("rm")
@click.argument("name")
@click.option("-f", "--file", "file", type=click.Path(dir_okay=False),
              help="Stop only the jobs of this Compose file's services (default: every job named NAME-...).")
@client_options
def stack_rm(name: str, file: str | None, address: str, token: str | None) -> None:
    """Stop the jobs of stack NAME: every job whose name starts with NAME- (a
    stack name has no '-', so that prefix is the stack), or with --file exactly
    the jobs of that file's services."""
    from node.cli import compose

    try:
        compose.check_stack_name(name)
    except compose.ComposeError as e:
        fail(e.problems[0].message)
    client = Client(address, token)
    existing = [j["name"] for j in client.request("GET", "/v1/jobs")]
    if file is not None:
        doc = _read_compose(file)
        services = doc.get("services") if isinstance(doc, dict) else None
        wanted = {compose.job_name(name, s) for s in (services if isinstance(services, dict) else {})
                  if isinstance(s, str)}
        targets = sorted(wanted & set(existing))
    else:
        targets = compose.stack_jobs(name, existing)
    if not targets:
        fail(f"no jobs of stack {name!r}")
    for job_name in targets:
        client.request("DELETE", f"/v1/jobs/{quote(job_name, safe='')}")
        click.echo(f"{job_name} stopped")


@stack.command("ls")
@click.option("--json", "as_json", is_flag=True, help="Print the stacks as JSON.")
@client_options
def stack_ls(as_json: bool, address: str, token: str | None) -> None:
    """List stacks: jobs named STACK-SERVICE grouped by STACK, with their replicas."""
    from node.cli.compose import stack_of

    stacks: dict[str, dict[str, Any]] = {}
    for j in Client(address, token).request("GET", "/v1/jobs"):
        name = stack_of(j["name"])
        if name is None:
            continue
        s = stacks.setdefault(name, {"stack": name, "jobs": [], "replicas": 0, "placed": 0, "pending": 0})
        s["jobs"].append(j["name"])
        for key in ("replicas", "placed", "pending"):
            s[key] += j.get(key) or 0
    if as_json:
        click.echo(json.dumps(sorted(stacks.values(), key=lambda s: s["stack"]), indent=2))
    elif not stacks:
        click.echo("no stacks")
    else:
        rows = [("Stack", "Jobs", "Replicas", "Placed", "Pending")]
        rows += [(s["stack"], str(len(s["jobs"])), str(s["replicas"]), str(s["placed"]), str(s["pending"]))
                 for _, s in sorted(stacks.items())]
        click.echo(table(rows), nl=False)


# ---- containers: ps and logs ---------------------------------------------------------


def format_ps(nodes: list[dict[str, Any]]) -> str:
    rows = [("Node", "Slot", "Container", "State", "Status", "Restarts", "Image")]
    for n in nodes:
        for c in n.get("containers") or []:
            state = c.get("state") or "-"
            if c.get("role") not in (None, "desired"):
                state += f" ({c['role']})"
            if c.get("gave_up"):
                state += f", gave up: {c['gave_up']}"
            rows.append((n.get("node") or "-", c.get("slot") or "-", c.get("name") or "-", state,
                         c.get("status") or "-", str(c.get("restarts", 0)), c.get("image") or "-"))
    return table(rows) if len(rows) > 1 else "no containers\n"


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Print the answer as JSON.")
@click.option("--local", is_flag=True, help="Only the containers of the agent asked, not every node's.")
@click.option("--job", help="Only this job's containers.")
@client_options
def ps(as_json: bool, local: bool, job: str | None, address: str, token: str | None) -> None:
    """List the replicas' containers by node.  The agent asked gathers every
    alive node's list from that node's own agent (or, with --local, only its
    own)."""
    params = "?" + "&".join(p for p in ("cluster=0" if local else "cluster=1",
                                          f"job={quote(job, safe='')}" if job else "") if p)
    data = Client(address, token).request("GET", "/v1/containers" + params)
    nodes = [data] if local else data.get("nodes", [])
    if as_json:
        click.echo(json.dumps(data, indent=2))
        return
    click.echo(format_ps(nodes), nl=False)
    failed = False
    for n in nodes:
        if n.get("error"):
            failed = True
            click.echo(f"warning: {n['node']}: {n['error']}", err=True)
    if failed and not any(n.get("containers") for n in nodes):
        sys.exit(1)


@cli.command()
@click.argument("job_name", metavar="JOB")
@click.argument("slot", type=click.IntRange(min=0), default=0, required=False)
@click.option("-f", "--follow", is_flag=True, help="Keep streaming new output.")
@click.option("--tail", default="all", show_default=True, help="Only the last N lines ('all' for everything).")
@client_options
def logs(job_name: str, slot: int, follow: bool, tail: str, address: str, token: str | None) -> None:
    """Print the output of replica SLOT (an index, default 0) of JOB, from
    whichever node runs it: the agent asked forwards to that node's agent."""
    import httpx

    client = Client(address, token)
    url = f"{client.address}/v1/jobs/{quote(job_name, safe='')}/logs"
    params = {"slot": str(slot), "follow": "1" if follow else "0", "tail": tail}
    timeout = httpx.Timeout(CLIENT_TIMEOUT_S, read=None if follow else CLIENT_TIMEOUT_S)
    out = sys.stdout.buffer
    try:
        with httpx.stream("GET", url, params=params, headers=client.headers, timeout=timeout) as resp:
            if resp.status_code >= 400:
                resp.read()
                try:
                    msg = resp.json().get("error")
                except (ValueError, AttributeError):
                    msg = None
                fail(f"{msg or resp.reason_phrase} (HTTP {resp.status_code})")
            for chunk in resp.iter_raw():
                out.write(chunk)
                out.flush()
    except httpx.HTTPError as e:
        fail(f"cannot reach shoal agent at {client.address}: {e or type(e).__name__}")
    except KeyboardInterrupt:
        sys.exit(130)
    except BrokenPipeError:  # `shoal logs web | head`
        sys.stderr.close()
        sys.exit(0)


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Print the raw NDJSON records.")
@click.option("--no-history", is_flag=True, help="Only new events, not the recent ones the agent kept.")
@client_options
def monitor(as_json: bool, no_history: bool, address: str, token: str | None) -> None:
    """Stream the agent's events as they happen: members, node statuses, jobs,
    auctions, placements, container states.  Ctrl-C stops."""
    import httpx

    from node.cli.monitor import monitor as run_monitor

    client = Client(address, token)
    here = "" if as_json else client.request("GET", "/v1/agent/self").get("name", "this agent")
    params = {"history": "0" if no_history else "1"}
    try:
        with httpx.stream("GET", f"{client.address}/v1/events", params=params, headers=client.headers,
                          timeout=httpx.Timeout(CLIENT_TIMEOUT_S, read=None)) as resp:
            if resp.status_code >= 400:
                resp.read()
                fail(f"{resp.text[:200] or resp.reason_phrase} (HTTP {resp.status_code})")
            run_monitor(resp.iter_lines(), here, lambda line: click.echo(line), as_json)
    except httpx.HTTPError as e:
        fail(f"the event stream from {client.address} broke: {e or type(e).__name__}")
    except KeyboardInterrupt:
        sys.exit(130)
    except BrokenPipeError:
        sys.stderr.close()
        sys.exit(0)
    fail(f"the agent at {client.address} closed the event stream (it stopped, or this reader fell behind)")


def main() -> None:
    cli(prog_name="shoal")


if __name__ == "__main__":
    main()
