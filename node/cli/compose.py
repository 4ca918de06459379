"""Docker Compose files as shoal jobs: a pure conversion for `shoal stack deploy`.

How this works: `load(text, stack)` parses the YAML (PyYAML's safe loader,
bounded to `MAX_COMPOSE_BYTES`) and `convert(doc, stack)` turns every service
into one job spec dict, which `auction.spec.validate` then checks like any
other job.  The result is a `Stack`: the stack name, one `JobSpec` per
service, which job each service became, and the warnings.  Nothing here does
I/O; the CLI reads the file and talks to the agent.

Names: service `web` of stack `shop` becomes job `shop-web`.  A stack name is
lowercase letters and digits only (no `-`), so a job name's part before its
first `-` says which stack it belongs to: that is the whole record of a stack
(`stack_of(job_name)`); nothing else is stored.  The service part is made a
DNS label (lowercase, every run of other characters becomes one `-`); two
services that end up with the same job name, or a name over 63 characters,
are errors.

What is read (everything else is a warning, see below):

    image                               image (required: shoal builds nothing)
    command                             command (a string is split like a shell)
    environment                         env; a map or a list of K=V; numbers
                                        become strings; booleans are errors
                                        (quote them, as Compose asks)
    healthcheck.test/interval/timeout/  health: ["CMD", ...] or ["CMD-SHELL", s]
      retries/start_period              or a string (run with /bin/sh -c);
                                        Docker's defaults fill what is missing
                                        (interval 30s, timeout 30s, retries 3)
    restart                             no|always|on-failure[:N]|unless-stopped,
                                        used when deploy.restart_policy is absent
    deploy.mode                         replicated (global is an error)
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

Memory sizes are Docker's (`512m`, `1g`, `1gb`: all powers of 1024, as
`docker run -m`); durations are Go's (`1m30s`, `500ms`).  Keys at the top
level other than `services` and `name`, keys of a service or of `deploy`
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

import json
import re
from dataclasses import dataclass, field
from typing import Any

from auction.resources import UnitError, json_kind, parse_cpu
from auction.spec import (
    DEFAULT_MAX_BACKOFF_S, MAX_BACKOFF_S, MIN_BACKOFF_S, JobSpec, Problem, SpecError, validate,
)
from node.agent import probe

MAX_COMPOSE_BYTES = 1024 * 1024
MAX_SERVICES = 200
MAX_STACK_CHARS = 32
MAX_PROBLEMS = 200                   # errors or warnings listed; the rest are counted
STACK_RE = re.compile(r"[a-z0-9]+", re.ASCII)
NOT_SUPPORTED = "not supported by shoal, ignored"

# Docker's HEALTHCHECK defaults, used when a Compose healthcheck leaves them out.
DOCKER_HEALTH_INTERVAL_S = 30.0
DOCKER_HEALTH_TIMEOUT_S = 30.0
DOCKER_HEALTH_RETRIES = 3

SERVICE_KEYS = ("image", "command", "environment", "healthcheck", "restart", "deploy")
DEPLOY_KEYS = ("mode", "replicas", "resources", "placement", "restart_policy")
RESOURCES_KEYS = ("limits", "reservations")
AMOUNT_KEYS = ("cpus", "memory")
PLACEMENT_KEYS = ("constraints", "preferences", "max_replicas_per_node")
RESTART_POLICY_KEYS = ("condition", "max_attempts", "delay")
HEALTH_KEYS = ("test", "interval", "timeout", "retries", "start_period")
CONDITIONS = {"any": "always", "on-failure": "on-failure", "none": "never"}

# Why some keys cannot be honoured, added to the warning.
HINTS = {
    "ports": "replicas run with network mode none; nothing is published",
    "expose": "replicas run with network mode none",
    "networks": "replicas run with network mode none",
    "network_mode": "replicas run with network mode none",
    "volumes": "replicas get no volumes or bind mounts",
    "build": "shoal builds nothing; the image must be on the nodes",
    "depends_on": "services start independently",
    "entrypoint": "the image's ENTRYPOINT is kept; put the whole command in 'command'",
    "env_file": "write the variables under 'environment'",
    "container_name": "shoal names containers shoal-<job>-<index>-<round>",
    "update_config": "a changed image or command replaces replicas one at a time",
    "labels": "shoal sets its own container labels",
}

_DURATION_RE = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)", re.ASCII | re.IGNORECASE)
_DURATION_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
_MEMORY_RE = re.compile(r"\s*(\d+(?:\.\d+)?)\s*([kmgtp]?)(?:i?b)?\s*", re.ASCII | re.IGNORECASE)
_CONSTRAINT_RE = re.compile(r"\s*([A-Za-z0-9_.\-/]+)\s*(==|!=)\s*(.*?)\s*", re.S)
_PLAIN_KEY_RE = re.compile(r"[A-Za-z0-9_-]+", re.ASCII)


class ComposeError(ValueError):
    """Every problem found in a Compose file, each with its path."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = list(problems)
        n = len(self.problems)
        lines = "".join(f"\n  {p}" for p in self.problems)
        super().__init__(f"invalid Compose file for shoal ({n} problem{'s' if n != 1 else ''}):{lines}")


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


def stack_of(job: str) -> str | None:
    """The stack a job belongs to by the naming convention, or None."""
    stack, dash, rest = job.partition("-")
    return stack if dash and rest and STACK_RE.fullmatch(stack) else None


def stack_jobs(stack: str, job_names: list[str]) -> list[str]:
    """The jobs among `job_names` that belong to `stack` by their names."""
    return sorted(n for n in job_names if stack_of(n) == stack)


# ---- entry points --------------------------------------------------------------------


def parse(text: str) -> Any:
    """The YAML document in `text` (PyYAML's safe loader: plain data only);
    ComposeError if it is too large or not YAML."""
    import yaml

    if len(text) > MAX_COMPOSE_BYTES or len(text.encode("utf-8", "replace")) > MAX_COMPOSE_BYTES:
        raise ComposeError([Problem("", f"the file is larger than {MAX_COMPOSE_BYTES} bytes")])
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise ComposeError([Problem("", f"YAML syntax error: {e}")]) from None
    except RecursionError:
        raise ComposeError([Problem("", "YAML is nested too deeply")]) from None


def load(text: str, stack: str) -> Stack:
    """Parse YAML text and convert it (see `convert`)."""
    return convert(parse(text), stack)


def convert(doc: Any, stack: str) -> Stack:
    """Every service of a parsed Compose document as a validated JobSpec.
    Raises ComposeError listing every problem; returns the warnings otherwise."""
    check_stack_name(stack)
    r = _Report()
    if not isinstance(doc, dict):
        raise ComposeError([Problem("", f"a Compose file is a mapping with 'services', got {json_kind(doc)}")])
    for key in doc:
        if not isinstance(key, str):
            r.error("", f"keys must be strings, got {json_kind(key)}")
        elif key in ("services", "name") or key.startswith("x-"):
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
    for service, body in services.items():
        if not isinstance(service, str):
            r.error("services", f"service names must be strings, got {json_kind(service)}")
            continue
        path = _join("services", service)
        name = job_name(stack, service)
        if name in taken:
            r.error(path, f"becomes job {name!r}, as service {taken[name]!r} does; rename one")
            continue
        taken[name] = service
        spec = _Service(r, path, name).convert(body)
        if spec is not None:
            jobs.append(spec)
            names[service] = spec.name
    if r.errors:
        raise ComposeError(r.errors_report())
    return Stack(stack, tuple(jobs), names, tuple(r.warnings_report()))


# ---- the conversion ---------------------------------------------------------------------


def _got(value: Any) -> str:
    """A user's value in a message: text quoted and cut short, else its kind."""
    return repr(value[:64]) if isinstance(value, str) else json_kind(value)


def _join(prefix: str, key: Any) -> str:
    key = str(key)
    if not _PLAIN_KEY_RE.fullmatch(key):
        return f"{prefix}[{json.dumps(key[:64])}]"
    return f"{prefix}.{key}" if prefix else key


class _Report:
    def __init__(self) -> None:
        self.errors: list[Problem] = []
        self.warnings: list[Problem] = []
        self.dropped_errors = 0
        self.dropped_warnings = 0

    def error(self, path: str, message: str) -> None:
        if len(self.errors) < MAX_PROBLEMS:
            self.errors.append(Problem(path, message))
        else:
            self.dropped_errors += 1

    def warn(self, path: str, message: str) -> None:
        if len(self.warnings) < MAX_PROBLEMS:
            self.warnings.append(Problem(path, message))
        else:
            self.dropped_warnings += 1

    def unsupported(self, path: str, key: str, hint: str | None = None) -> None:
        hint = hint or HINTS.get(key)
        self.warn(path, NOT_SUPPORTED + (f" ({hint})" if hint else ""))

    def unknown_keys(self, table: dict, known: tuple[str, ...], path: str) -> None:
        for key in table:
            if isinstance(key, str) and key.startswith("x-"):
                continue
            if key not in known:
                self.unsupported(_join(path, key), str(key))

    def errors_report(self) -> list[Problem]:
        more = [Problem("", f"{self.dropped_errors} more problems not shown")] if self.dropped_errors else []
        return self.errors + more

    def warnings_report(self) -> list[Problem]:
        more = [Problem("", f"{self.dropped_warnings} more warnings not shown")] if self.dropped_warnings else []
        return self.warnings + more


class _Service:
    """One service: builds the job spec dict, remembering where each field came
    from so that the validator's problems name the Compose path."""

    def __init__(self, report: _Report, path: str, name: str) -> None:
        self.r = report
        self.path = path
        self.name = name
        self.spec: dict[str, Any] = {"name": name}
        self.origin: dict[str, str] = {"name": path}
        self.failed: set[str] = set()        # the Compose paths already reported as errors

    def error(self, path: str, message: str) -> None:
        self.failed.add(path)
        self.r.error(path, message)

    def table(self, value: Any, path: str) -> dict | None:
        if isinstance(value, dict):
            return value
        if value is not None:
            self.error(path, f"must be a mapping, got {json_kind(value)}")
        return None

    def convert(self, body: Any) -> JobSpec | None:
        if body is None:
            body = {}
        if not isinstance(body, dict):
            self.error(self.path, f"a service must be a mapping, got {json_kind(body)}")
            return None
        self.r.unknown_keys(body, SERVICE_KEYS, self.path)
        self.image(body)
        if "command" in body:
            self.command(body["command"], _join(self.path, "command"))
        if "environment" in body:
            self.environment(body["environment"], _join(self.path, "environment"))
        if "healthcheck" in body:
            self.healthcheck(body["healthcheck"], _join(self.path, "healthcheck"))
        deploy = self.table(body.get("deploy"), _join(self.path, "deploy")) or {}
        self.deploy(deploy, _join(self.path, "deploy"))
        if "restart" in body:
            if "restart_policy" in deploy:
                self.r.warn(_join(self.path, "restart"),
                            "ignored: deploy.restart_policy is given and takes precedence")
            else:
                self.restart(body["restart"], _join(self.path, "restart"))
        # The validator checks the rest (a field we refused is left out, so it
        # takes its default; `image` is reported once).
        try:
            spec = validate(self.spec)
        except SpecError as e:
            for p in e.problems:
                if (where := self.where(p.path)) not in self.failed:
                    self.error(where, p.message)
            return None
        return None if self.failed else spec

    def where(self, spec_path: str) -> str:
        """The Compose path of a job spec field path (`env.FOO`, `restart.backoff_s`)."""
        if spec_path in self.origin:
            return self.origin[spec_path]
        best = max((k for k in self.origin if spec_path.startswith(k) and spec_path[len(k):][:1] in ".["),
                   key=len, default=None)
        if best is None:
            return self.path
        return self.origin[best] + spec_path[len(best):]

    # -- fields --

    def image(self, body: dict) -> None:
        path = _join(self.path, "image")
        self.origin["image"] = path
        if "image" not in body:
            hint = " (shoal does not build images: 'build' is not supported)" if "build" in body else ""
            self.error(path, "required" + hint)
            return
        self.put("image", body["image"], path)

    def put(self, key: str, value: Any, path: str) -> None:
        """A scalar the job validator checks.  A list or mapping is refused here:
        YAML aliases can make a small file a huge nested structure."""
        if isinstance(value, (list, dict)):
            self.error(path, f"must be a single value, got {json_kind(value)}")
        else:
            self.spec[key] = value
            self.origin[key] = path

    def command(self, value: Any, path: str, key: str = "command") -> None:
        self.origin[key] = path
        if isinstance(value, list):
            for i, v in enumerate(value):
                if isinstance(v, (list, dict)):
                    self.error(f"{path}[{i}]", f"must be a string, got {json_kind(v)}")
                    return
            value = [str(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else v for v in value]
        elif isinstance(value, dict):
            self.error(path, f"must be a list of strings or a string, got {json_kind(value)}")
            return
        self.spec[key] = value

    def environment(self, value: Any, path: str) -> None:
        env: dict[str, Any] = {}
        self.origin["env"] = path
        if isinstance(value, list):
            pairs = []
            for i, item in enumerate(value):
                if not isinstance(item, str):
                    self.error(f"{path}[{i}]", f"must be a string KEY=VALUE, got {json_kind(item)}")
                    continue
                key, eq, val = item.partition("=")
                pairs.append((key, val if eq else None, f"{path}[{i}]"))
        elif isinstance(value, dict):
            pairs = [(k, v, _join(path, k)) for k, v in value.items()]
        elif value is None:
            return
        else:
            self.error(path, f"must be a mapping or a list of KEY=VALUE, got {json_kind(value)}")
            return
        for key, val, where in pairs:
            if not isinstance(key, str):
                self.error(path, f"variable names must be strings, got {json_kind(key)}")
                continue
            self.origin[_join("env", key)] = where
            if val is None:
                self.r.warn(where, NOT_SUPPORTED + " (no value: Compose would take it from the shell "
                                                   "running it; write the value)")
                continue
            if isinstance(val, bool):
                self.error(where, f"is a boolean ({str(val).lower()}); quote it to pass the text")
                continue
            if isinstance(val, (list, dict)):
                self.error(where, f"must be a string, got {json_kind(val)}")
                continue
            if isinstance(val, (int, float)):
                val = str(val)
            if isinstance(val, str) and "${" in val:
                self.r.warn(where, "variable interpolation (${...}) is not supported by shoal; "
                                   "the text is passed as it is")
            env[key] = val
        if env:
            self.spec["env"] = env

    def healthcheck(self, value: Any, path: str) -> None:
        hc = self.table(value, path)
        if hc is None:
            return
        self.r.unknown_keys(hc, HEALTH_KEYS + ("disable",), path)
        if hc.get("disable") is True:
            self.r.unsupported(_join(path, "disable"), "disable",
                               "shoal cannot turn off an image's HEALTHCHECK; it stays as the image defines it")
            return
        if "disable" in hc and hc["disable"] is not False:
            self.error(_join(path, "disable"), f"must be true or false, got {json_kind(hc['disable'])}")
        test = hc.get("test")
        test_path = _join(path, "test")
        if test is None:
            for key in ("interval", "timeout", "retries", "start_period"):
                if key in hc:
                    self.r.unsupported(_join(path, key), key, "without 'test' shoal keeps the image's "
                                                              "HEALTHCHECK exactly as it is")
            return
        if isinstance(test, str):
            command: Any = ["/bin/sh", "-c", test]
        elif isinstance(test, list) and test and test[0] == "NONE":
            self.r.unsupported(test_path, "test", "shoal cannot turn off an image's HEALTHCHECK")
            return
        elif isinstance(test, list) and len(test) >= 2 and test[0] == "CMD":
            command = test[1:]
            if any(isinstance(v, (list, dict)) for v in command):
                self.error(test_path, "arguments must be strings")
                return
        elif isinstance(test, list) and len(test) == 2 and test[0] == "CMD-SHELL" and isinstance(test[1], str):
            command = ["/bin/sh", "-c", test[1]]
        else:
            self.error(test_path, "must be a string, [\"CMD\", arg, ...], [\"CMD-SHELL\", \"command\"] "
                                  "or [\"NONE\"]")
            return
        health: dict[str, Any] = {"command": command}
        self.origin["health"] = path
        self.origin["health.command"] = test_path
        for key, spec_key, default in (("interval", "interval_s", DOCKER_HEALTH_INTERVAL_S),
                                       ("timeout", "timeout_s", DOCKER_HEALTH_TIMEOUT_S),
                                       ("start_period", "start_period_s", None)):
            where = _join(path, key)
            self.origin[f"health.{spec_key}"] = where
            if key in hc:
                seconds = self.duration(hc[key], where)
                if seconds is not None:
                    health[spec_key] = seconds
            elif default is not None:
                health[spec_key] = default
        self.origin["health.retries"] = _join(path, "retries")
        retries = hc.get("retries", DOCKER_HEALTH_RETRIES)
        if isinstance(retries, (list, dict)):
            self.error(_join(path, "retries"), f"must be an integer, got {json_kind(retries)}")
            return
        health["retries"] = retries
        self.spec["health"] = health

    def deploy(self, deploy: dict, path: str) -> None:
        self.r.unknown_keys(deploy, DEPLOY_KEYS, path)
        mode = deploy.get("mode", "replicated")
        if mode == "global":
            self.error(_join(path, "mode"), "global is not supported by shoal (one replica on every node); "
                                            "use replicas with placement.max_replicas_per_node: 1")
        elif mode != "replicated":
            self.error(_join(path, "mode"), "must be replicated, got " + _got(mode))
        if "replicas" in deploy:
            self.put("replicas", deploy["replicas"], _join(path, "replicas"))
        if "resources" in deploy:
            self.resources(deploy["resources"], _join(path, "resources"))
        if "placement" in deploy:
            self.placement(deploy["placement"], _join(path, "placement"))
        if "restart_policy" in deploy:
            self.restart_policy(deploy["restart_policy"], _join(path, "restart_policy"))

    def resources(self, value: Any, path: str) -> None:
        res = self.table(value, path)
        if res is None:
            return
        self.r.unknown_keys(res, RESOURCES_KEYS, path)
        found: dict[str, list[tuple[int, str]]] = {"cpus": [], "memory": []}
        for part in RESOURCES_KEYS:
            where = _join(path, part)
            table = self.table(res.get(part), where)
            if table is None:
                continue
            self.r.unknown_keys(table, AMOUNT_KEYS, where)
            if "cpus" in table:
                if (millis := self.cpus(table["cpus"], _join(where, "cpus"))) is not None:
                    found["cpus"].append((millis, _join(where, "cpus")))
            if "memory" in table:
                if (size := self.memory(table["memory"], _join(where, "memory"))) is not None:
                    found["memory"].append((size, _join(where, "memory")))
        if found["cpus"]:
            millis, where = max(found["cpus"])
            self.spec["cpu"] = f"{millis}m"
            self.origin["cpu"] = where
        if found["memory"]:
            size, where = max(found["memory"])
            self.spec["memory"] = size
            self.origin["memory"] = where

    def cpus(self, value: Any, path: str) -> int | None:
        try:
            return parse_cpu(value)
        except UnitError as e:
            self.error(path, str(e))
            return None

    def memory(self, value: Any, path: str) -> int | None:
        if type(value) is int and value >= 0:
            return value
        m = _MEMORY_RE.fullmatch(value) if isinstance(value, str) else None
        if m is None:
            self.error(path, "must be a size like '512m' or '1g', or a number of bytes, got " + _got(value))
            return None
        number, unit = m.group(1), m.group(2).lower()
        scale = 1024 ** " kmgtp".index(unit or " ")
        return int(float(number) * scale) if "." in number else int(number) * scale

    def placement(self, value: Any, path: str) -> None:
        placement = self.table(value, path)
        if placement is None:
            return
        self.r.unknown_keys(placement, PLACEMENT_KEYS, path)
        if "max_replicas_per_node" in placement:
            self.put("max_per_node", placement["max_replicas_per_node"], _join(path, "max_replicas_per_node"))
        constraints = placement.get("constraints")
        cpath = _join(path, "constraints")
        if isinstance(constraints, list):
            out = []
            for i, item in enumerate(constraints):
                if (c := self.constraint(item, f"{cpath}[{i}]")) is not None:
                    self.origin[f"constraints[{len(out)}]"] = f"{cpath}[{i}]"
                    out.append(c)
            if out:
                self.spec["constraints"] = out
                self.origin["constraints"] = cpath
        elif constraints is not None:
            self.error(cpath, f"must be a list of strings like 'node.labels.rack == a', got "
                              f"{json_kind(constraints)}")
        prefs = placement.get("preferences")
        ppath = _join(path, "preferences")
        if isinstance(prefs, list):
            for i, item in enumerate(prefs):
                where = f"{ppath}[{i}]"
                if not (isinstance(item, dict) and isinstance(item.get("spread"), str) and len(item) == 1):
                    self.error(where, "must be a mapping {spread: node.labels.NAME}")
                elif not item["spread"].startswith("node.labels.") or len(item["spread"]) == len("node.labels."):
                    self.r.unsupported(where, "spread", "shoal spreads over node labels only: "
                                                        "spread: node.labels.NAME")
                elif "spread" in self.spec:
                    self.r.unsupported(where, "spread", "shoal spreads over one label: the first preference")
                else:
                    self.spec["spread"] = item["spread"][len("node.labels."):]
                    self.origin["spread"] = _join(where, "spread")
        elif prefs is not None:
            self.error(ppath, f"must be a list of {{spread: node.labels.NAME}}, got {json_kind(prefs)}")

    def constraint(self, item: Any, path: str) -> str | None:
        if not isinstance(item, str):
            self.error(path, f"must be a string like 'node.labels.rack == a', got {json_kind(item)}")
            return None
        m = _CONSTRAINT_RE.fullmatch(item)
        if m is None:
            self.error(path, f"{item[:64]!r} is not 'ATTRIBUTE == VALUE' or 'ATTRIBUTE != VALUE'")
            return None
        attr, op, value = m.groups()
        if attr.startswith("node.labels.") and len(attr) > len("node.labels."):
            return f"{attr[len('node.labels.'):]} {op} {value}"
        if attr == "node.platform.arch":
            return f"arch {op} {probe.arch(value)}"
        hints = {
            "node.hostname": "nodes have no hostname label; start the agent with --label host=NAME and "
                             "write node.labels.host == NAME",
            "node.id": "nodes have no id label; use a node label",
            "node.role": "shoal has no managers: every node is the same",
            "node.platform.os": "every shoal node runs Linux containers",
        }
        hint = hints.get(attr) or ("engine labels are not published; use a node label (--label)"
                                   if attr.startswith("engine.labels.") else None)
        if hint is None:
            self.error(path, f"unknown attribute {attr[:64]!r}; write node.labels.NAME")
            return None
        self.r.unsupported(path, attr, hint)
        return None

    def restart_policy(self, value: Any, path: str) -> None:
        rp = self.table(value, path)
        if rp is None:
            return
        self.r.unknown_keys(rp, RESTART_POLICY_KEYS, path)
        restart: dict[str, Any] = {}
        self.origin["restart"] = path
        cond = rp.get("condition", "any")
        cpath = _join(path, "condition")
        self.origin["restart.policy"] = cpath
        if isinstance(cond, str) and cond in CONDITIONS:
            restart["policy"] = CONDITIONS[cond]
        else:
            self.error(cpath, "must be one of any, on-failure, none, got " + _got(cond))
        if "max_attempts" in rp:
            mpath = _join(path, "max_attempts")
            if isinstance(rp["max_attempts"], (list, dict)):
                self.error(mpath, f"must be an integer, got {json_kind(rp['max_attempts'])}")
            elif restart.get("policy") == "on-failure":
                restart["max_attempts"] = rp["max_attempts"]
                self.origin["restart.max_attempts"] = mpath
            elif rp["max_attempts"] not in (None, 0):
                self.r.unsupported(mpath, "max_attempts", "shoal limits attempts only with condition "
                                                          "on-failure; the condition is " + _got(cond))
        if "delay" in rp:
            dpath = _join(path, "delay")
            self.origin["restart.backoff_s"] = dpath
            seconds = self.duration(rp["delay"], dpath)
            if seconds is not None:
                if seconds < MIN_BACKOFF_S:
                    self.r.warn(dpath, f"shoal waits at least {MIN_BACKOFF_S:g} s before a restart; using that")
                    seconds = MIN_BACKOFF_S
                restart["backoff_s"] = seconds
                if MAX_BACKOFF_S >= seconds > DEFAULT_MAX_BACKOFF_S:
                    restart["max_backoff_s"] = seconds
        self.spec["restart"] = restart

    def restart(self, value: Any, path: str) -> None:
        """The service-level `restart` of plain Compose."""
        self.origin["restart"] = path
        self.origin["restart.policy"] = path
        self.origin["restart.max_attempts"] = path
        if value in ("always", "unless-stopped"):
            self.spec["restart"] = {"policy": "always"}
        elif value == "no" or value is False:    # YAML 1.1 reads a bare `no` as false
            self.spec["restart"] = {"policy": "never"}
        elif isinstance(value, str) and re.fullmatch(r"on-failure(:\d+)?", value):
            restart: dict[str, Any] = {"policy": "on-failure"}
            if ":" in value:
                restart["max_attempts"] = int(value.split(":")[1])
            self.spec["restart"] = restart
        else:
            self.error(path, "must be no, always, on-failure[:N] or unless-stopped, got " + _got(value))

    def duration(self, value: Any, path: str) -> float | None:
        """Seconds from a Go duration string ('1m30s', '500ms')."""
        if isinstance(value, str) and value and "".join(m.group(0) for m in _DURATION_RE.finditer(value)) == value:
            return sum(float(m.group(1)) * _DURATION_UNITS[m.group(2).lower()] for m in _DURATION_RE.finditer(value))
        self.error(path, "must be a duration like '10s', '1m30s' or '500ms', got " + _got(value))
        return None
