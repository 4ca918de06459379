"""Docker Compose files as shoal jobs: a pure conversion for `shoal stack deploy`.

How this works: `load(text, stack)` parses the YAML (PyYAML's safe loader,
bounded to `MAX_COMPOSE_BYTES`) and `convert(doc, stack)` turns every service
into one job spec dict (node.cli.compose_service, the field mapping below),
which `auction.spec.validate` then checks like any other job; errors and
warnings are collected by node.cli.compose_report.  The result is a `Stack`: the stack name, one `JobSpec` per
service, which job each service became, and the warnings.  Nothing here does
I/O; the CLI reads the file and talks to the agent.

Names: service `web` of stack `shop` becomes job `shop-web`.  A stack name is
lowercase letters and digits only (no `-`), so a job name's part before its
first `-` says which stack it belongs to: that is the whole record of a stack
(`stack_of(job_name)`, node.core.stack_names); nothing else is stored.  The service part is made a
DNS label (lowercase, every run of other characters becomes one `-`); two
services that end up with the same job name, or a name over 63 characters,
are errors.

What is read (everything else is a warning, see below):

    image                               image (required: shoal builds nothing)
    command                             command (a string is split like a shell)
    entrypoint                          entrypoint (the same; the image's CMD is
                                        then not used, as in Compose)
    env_file                            env, read from the files (relative to
                                        the Compose file; environment wins)
    environment                         env; a map or a list of K=V; numbers
                                        become strings; booleans are errors
                                        (quote them, as Compose asks)
    healthcheck.test/interval/timeout/  health: ["CMD", ...] or ["CMD-SHELL", s]
      retries/start_period              or a string (run with /bin/sh -c);
                                        Docker's defaults fill what is missing
                                        (interval 30s, timeout 30s, retries 3)
    restart                             no|always|on-failure[:N]|unless-stopped,
                                        used when deploy.restart_policy is absent
    deploy.mode                         mode: replicated, or global (one replica
                                        on every node that passes the
                                        constraints; deploy.replicas is then
                                        an error, as in Docker)
    deploy.replicas                     replicas
    deploy.resources.limits.cpus/memory and reservations.cpus/memory:
                                        cpu / memory = the larger of the two.
                                        shoal has one amount per replica that
                                        is both reserved on the node and
                                        enforced as the container's limit, so
                                        the larger keeps the Compose limit (a
                                        replica is never throttled below it)
                                        and the reservation (never reserved
                                        less); the cost is reserving the limit.
    deploy.placement.constraints        node.labels.X == Y / != Y  ->  X == Y;
                                        node.platform.arch == x86_64 -> arch ==
                                        amd64 (Docker's spelling, as the agent
                                        labels nodes); node.hostname, node.id,
                                        node.role, node.platform.os and
                                        engine.labels.* are warnings (shoal
                                        has no such labels and no managers)
    deploy.placement.preferences        the first `spread: node.labels.X` ->
                                        spread "X"; any further one is a warning
    deploy.placement.max_replicas_per_node   max_per_node
    deploy.restart_policy.condition     any -> always, on-failure, none -> never
    deploy.restart_policy.max_attempts  max_attempts (only with on-failure; with
                                        another condition it is a warning)
    deploy.restart_policy.delay         backoff_s (shoal doubles it on each
                                        further restart, up to max_backoff_s,
                                        which is raised to the delay if larger)
    cap_add, cap_drop, user, read_only, the job fields of the same name
      devices                           (docs/jobspec.md, "Container security";
                                        `user: 1000` becomes "1000")
    pids_limit, deploy.resources.       pids_limit (both given: they must
      limits.pids                       agree; -1 or 0, unlimited, is a
                                        warning: the job default applies)
    network_mode                        network: bridge (also when absent),
                                        host, none; service:X and container:X
                                        are errors
    deploy.update_config,               update (max_parallel, min_healthy_s =
      deploy.rollback_config,           monitor + delay, order, auto_revert =
      stop_grace_period, stop_signal    failure_action rollback), stop_grace_s,
                                        stop_signal; rollback_config must match
                                        (node.cli.compose_update)
    ports (short and long syntax)       ports: one named port per entry, label
                                        `name` or port<target>, target -> to,
                                        published -> static (none: dynamic);
                                        ranges are errors, udp and host_ip
                                        warnings (node.cli.compose_ports)
    volumes (short and long syntax),    volumes: a named volume (declared at
      tmpfs, top-level volumes          the top level) -> a Docker volume per
                                        replica on its node; an absolute bind
                                        path -> a host volume (the node's
                                        allow_host_paths); tmpfs -> tmpfs; a
                                        relative path to a file -> a file of
                                        the job (below); to a directory, an
                                        error; drivers and sharing warnings
                                        (node.cli.compose_volumes)
    configs, secrets (service and       files: each read from its `file`
      top level)                        beside the Compose file (or a
                                        config's `content`), mounted
                                        read-only at its target (/NAME,
                                        /run/secrets/NAME); a secret is kept
                                        in the job like a config (a warning
                                        says so); external ones are errors
                                        (node.cli.compose_files)
    working_dir, init, shm_size,        the same fields; labels ->
      ulimits, extra_hosts, labels      container_labels (node.cli.compose_options)

Memory sizes are Docker's (`512m`, `1g`, `1gb`: all powers of 1024, as
`docker run -m`); durations are Go's (`1m30s`, `500ms`).  Keys at the top
level other than `services`, `name`, `volumes`, `configs` and `secrets`, keys of a service or of `deploy`
that shoal does not read, and values it cannot honour (a `node.hostname`
constraint, `healthcheck.disable`) are each listed as a warning
"PATH: not supported by shoal, ignored", sometimes with a hint; nothing is
dropped silently.  The one exception is extension fields (`x-...`), which
the Compose specification says every implementation ignores.  Problems that
make a service impossible to run as written are errors, every one with its
path (`services.web.deploy.replicas: must be an integer, got string`),
collected all at once and raised as one `ComposeError`.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass, field
from typing import Any

from auction.resources import json_kind
from auction.spec import JobSpec, Problem
from node.cli.compose_report import NOT_SUPPORTED, ComposeError, Report, join_path
from node.cli.beside import BesideReader
from node.cli.compose_files import declared_files
from node.cli.compose_service import ServiceConverter
from node.cli.compose_volumes import declared_volumes
from node.core.stack_names import STACK_RE, stack_of

__all__ = ["MAX_COMPOSE_BYTES", "NOT_SUPPORTED", "ComposeError", "Stack", "check_stack_name", "convert",
           "default_stack_name", "job_name", "load", "parse", "stack_jobs", "stack_of"]

MAX_COMPOSE_BYTES = 1024 * 1024
MAX_SERVICES = 200
MAX_STACK_CHARS = 32


@dataclass(frozen=True)
class Stack:
    name: str
    jobs: tuple[JobSpec, ...]
    services: dict[str, str]                 # Compose service -> job name, in file order
    warnings: tuple[Problem, ...] = field(default=())


# ---- names -----------------------------------------------------------------------


def check_stack_name(name: str) -> str:
    """`name` if it is a valid stack name, else ComposeError."""
    if not isinstance(name, str) or not STACK_RE.fullmatch(name) or len(name) > MAX_STACK_CHARS:
        raise ComposeError([Problem("name", f"stack name {name!r} must be 1 to {MAX_STACK_CHARS} lowercase "
                                            "letters and digits (no '-': a job's name up to its first '-' "
                                            "is its stack)")])
    return name


def default_stack_name(doc: Any, directory: str) -> str:
    """The stack name when none is given: the file's top-level `name`, else the
    directory's name, lowercased, keeping letters and digits (as `docker compose`
    names a project after its directory)."""
    if isinstance(doc, dict) and isinstance(doc.get("name"), str) and doc["name"].strip():
        raw = doc["name"]
    else:
        raw = directory
    name = re.sub(r"[^a-z0-9]", "", raw.lower())[:MAX_STACK_CHARS]
    if not name:
        raise ComposeError([Problem("name", f"cannot make a stack name from {raw!r}; give one with --name")])
    return name


def job_name(stack: str, service: str) -> str:
    """`<stack>-<service>`, the service part made a DNS label (may be invalid if
    nothing is left of the service name or it is too long; `validate` says so)."""
    part = re.sub(r"[^a-z0-9]+", "-", service.lower()).strip("-")
    return f"{stack}-{part}"


def stack_jobs(stack: str, job_names: list[str]) -> list[str]:
    """The jobs among `job_names` that belong to `stack` by their names."""
    return sorted(n for n in job_names if stack_of(n) == stack)


# ---- entry points --------------------------------------------------------------------


@functools.cache
def _loader() -> type:
    """PyYAML's safe loader, reading numbers as YAML 1.2 does (as Docker Compose
    does): YAML 1.1 reads `22:22` as 1342 (base 60), which would turn a port
    mapping into a port number; here it stays the text "22:22"."""
    import yaml

    class ComposeLoader(yaml.SafeLoader):
        def resolve(self, kind: Any, value: Any, implicit: Any) -> Any:
            tag = super().resolve(kind, value, implicit)
            if kind is yaml.ScalarNode and implicit[0] and ":" in value and tag in _BASE60_TAGS:
                return "tag:yaml.org,2002:str"
            return tag

    return ComposeLoader


_BASE60_TAGS = ("tag:yaml.org,2002:int", "tag:yaml.org,2002:float")


def parse(text: str) -> Any:
    """The YAML document in `text` (PyYAML's safe loader: plain data only, numbers
    as YAML 1.2 reads them); ComposeError if it is too large or not YAML."""
    import yaml

    if len(text) > MAX_COMPOSE_BYTES or len(text.encode("utf-8", "replace")) > MAX_COMPOSE_BYTES:
        raise ComposeError([Problem("", f"the file is larger than {MAX_COMPOSE_BYTES} bytes")])
    try:
        return yaml.load(text, Loader=_loader())  # noqa: S506 -- a SafeLoader subclass
    except yaml.YAMLError as e:
        raise ComposeError([Problem("", f"YAML syntax error: {e}")]) from None
    except RecursionError:
        raise ComposeError([Problem("", "YAML is nested too deeply")]) from None


def load(text: str, stack: str) -> Stack:
    """Parse YAML text and convert it (see `convert`)."""
    return convert(parse(text), stack)


def convert(doc: Any, stack: str, read_beside: BesideReader | None = None) -> Stack:
    """Every service of a parsed Compose document as a validated JobSpec.
    Raises ComposeError listing every problem; returns the warnings otherwise.
    `read_beside` reads the files it names, beside the Compose file (env_file,
    configs, secrets, bound files: node.cli.beside; None: not read,
    warned about or refused)."""
    check_stack_name(stack)
    r = Report()
    if not isinstance(doc, dict):
        raise ComposeError([Problem("", f"a Compose file is a mapping with 'services', got {json_kind(doc)}")])
    for key in doc:
        if not isinstance(key, str):
            r.error("", f"keys must be strings, got {json_kind(key)}")
        elif key in ("services", "name", "volumes", "configs", "secrets") or key.startswith("x-"):
            continue
        elif key == "version":
            r.warn("version", "not used by shoal (obsolete in the Compose specification), ignored")
        else:
            r.unsupported(key, key)
    services = doc.get("services")
    if not isinstance(services, dict) or not services:
        r.error("services", "required: a mapping of service names to services"
                if services is None else f"must be a non-empty mapping, got {json_kind(services)}")
        raise ComposeError(r.errors_report())
    if len(services) > MAX_SERVICES:
        raise ComposeError([Problem("services", f"at most {MAX_SERVICES} services (got {len(services)})")])
    jobs: list[JobSpec] = []
    names: dict[str, str] = {}
    taken: dict[str, str] = {}
    declared, used = declared_volumes(doc, r), {}       # node.cli.compose_volumes
    files = declared_files(doc, r, read_beside)         # node.cli.compose_files
    for service, body in services.items():
        if not isinstance(service, str):
            r.error("services", f"service names must be strings, got {json_kind(service)}")
            continue
        path = join_path("services", service)
        name = job_name(stack, service)
        if name in taken:
            r.error(path, f"becomes job {name!r}, as service {taken[name]!r} does; rename one")
            continue
        taken[name] = service
        spec = ServiceConverter(r, path, name, declared, used, read_beside, files).convert(body)
        if spec is not None:
            jobs.append(spec)
            names[service] = spec.name
    if r.errors:
        raise ComposeError(r.errors_report())
    return Stack(stack, tuple(jobs), names, tuple(r.warnings_report()))
