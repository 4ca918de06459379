"""One Compose service as one job spec: the field mapping of node.cli.compose.

How this works: `ServiceConverter.convert(body)` reads the keys the module
docstring of node.cli.compose lists (image, command, environment,
healthcheck, restart, deploy.*, the container-security keys cap_add,
cap_drop, user, read_only, devices, pids_limit, network_mode and ports
through node.cli.compose_ports, and deploy.update_config,
deploy.rollback_config, stop_grace_period and stop_signal through
node.cli.compose_update) into a job spec dict,
recording for every spec field the Compose path it came from;
`auction.spec.validate` then checks the dict like any submitted job, and
each of its problems is reported at the Compose path of the field (`env.FOO`
-> `services.web.environment.FOO`).  What a node allows of the security
keys is its operator's policy, checked at placement, not here.
Keys it does not read become warnings and values it cannot use become
errors, both in the shared `Report`.
"""

from __future__ import annotations

import re
from typing import Any

from auction.resources import UnitError, json_kind, parse_cpu
from auction.spec import (
    DEFAULT_MAX_BACKOFF_S,
    MAX_BACKOFF_S,
    MIN_BACKOFF_S,
    JobSpec,
    SpecError,
    validate,
)
from node.agent import probe
from node.cli.compose_ports import PortsConverter
from node.cli.compose_report import NOT_SUPPORTED, Report, got, join_path
from node.cli.compose_update import UpdateConverter
from node.cli.beside import BesideFileError, BesideReader
from node.cli.compose_env import MAX_ENV_FILES, EnvFileError, parse_env_file
from node.cli.compose_files import Declared, FilesConverter
from node.cli.compose_options import KEYS as OPTION_KEYS
from node.cli.compose_options import convert_options
from node.cli.compose_volumes import VolumesConverter

# Docker's HEALTHCHECK defaults, used when a Compose healthcheck leaves them out.
DOCKER_HEALTH_INTERVAL_S = 30.0
DOCKER_HEALTH_TIMEOUT_S = 30.0
DOCKER_HEALTH_RETRIES = 3

SERVICE_KEYS = ("image", "command", "environment", "healthcheck", "restart", "deploy",
                "cap_add", "cap_drop", "user", "read_only", "devices", "pids_limit", "network_mode", "ports",
                "stop_grace_period", "stop_signal", "volumes", "tmpfs", "entrypoint", "env_file",
                "configs", "secrets", *OPTION_KEYS)
DEPLOY_KEYS = ("mode", "replicas", "resources", "placement", "restart_policy", "update_config", "rollback_config")
RESOURCES_KEYS = ("limits", "reservations")
AMOUNT_KEYS = ("cpus", "memory")
LIMIT_KEYS = AMOUNT_KEYS + ("pids",)
PLACEMENT_KEYS = ("constraints", "preferences", "max_replicas_per_node")
RESTART_POLICY_KEYS = ("condition", "max_attempts", "delay")
HEALTH_KEYS = ("test", "interval", "timeout", "retries", "start_period")
CONDITIONS = {"any": "always", "on-failure": "on-failure", "none": "never"}

_DURATION_RE = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)", re.ASCII | re.IGNORECASE)
_DURATION_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
_MEMORY_RE = re.compile(r"\s*(\d+(?:\.\d+)?)\s*([kmgtp]?)(?:i?b)?\s*", re.ASCII | re.IGNORECASE)
_CONSTRAINT_RE = re.compile(r"\s*([A-Za-z0-9_.\-/]+)\s*(==|!=)\s*(.*?)\s*", re.DOTALL)


class ServiceConverter:
    """One service: builds the job spec dict, remembering where each field came
    from so that the validator's problems name the Compose path."""

    def __init__(self, report: Report, path: str, name: str, volumes_declared: set[str] | None = None,
                 volumes_used: dict[str, str] | None = None, read_beside: BesideReader | None = None,
                 files_declared: Declared | None = None) -> None:
        self.r = report
        # Reads env files and bound files (node.cli.beside); None: not read, warned or refused.
        self.read_beside = read_beside
        # The file's top-level configs and secrets, read (node.cli.compose_files).
        self.files_declared = files_declared or {}
        self.path = path
        self.name = name
        # The file's top-level volume names, and which service mounted each first (node.cli.compose_volumes).
        self.volumes_declared = volumes_declared or set()
        self.volumes_used = volumes_used if volumes_used is not None else {}
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
            self.command(body["command"], join_path(self.path, "command"))
        if "entrypoint" in body:
            self.command(body["entrypoint"], join_path(self.path, "entrypoint"), key="entrypoint")
        if "env_file" in body:
            self.env_files(body["env_file"], join_path(self.path, "env_file"))
        if "environment" in body:
            self.environment(body["environment"], join_path(self.path, "environment"))
        if "healthcheck" in body:
            self.healthcheck(body["healthcheck"], join_path(self.path, "healthcheck"))
        for key in ("cap_add", "cap_drop", "devices"):
            if key in body:
                self.strings(key, body[key], join_path(self.path, key))
        if "user" in body:
            # YAML reads `user: 1000` as a number; Docker means the uid.
            user = body["user"]
            is_number = isinstance(user, int) and not isinstance(user, bool)
            self.put("user", str(user) if is_number else user, join_path(self.path, "user"))
        if "read_only" in body:
            self.put("read_only", body["read_only"], join_path(self.path, "read_only"))
        if "pids_limit" in body:
            self.pids(body["pids_limit"], join_path(self.path, "pids_limit"))
        convert_options(body, self.put, self.put_table, self.r, self.path)   # node.cli.compose_options
        PortsConverter(self.r, self.path, self.spec, self.origin, self.failed).convert(body)
        files = FilesConverter(self.r, self.path, self.spec, self.origin, self.failed, self.files_declared,
                               self.read_beside)
        VolumesConverter(self.r, self.path, self.spec, self.origin, self.failed, self.volumes_declared,
                         self.volumes_used, files.bind_file).convert(body)
        files.convert(body)
        deploy = self.table(body.get("deploy"), join_path(self.path, "deploy")) or {}
        self.deploy(deploy, join_path(self.path, "deploy"))
        UpdateConverter(self.r, self.path, self.spec, self.origin, self.failed, self.duration).convert(body, deploy)
        if "restart" in body:
            if "restart_policy" in deploy:
                self.r.warn(join_path(self.path, "restart"),
                            "ignored: deploy.restart_policy is given and takes precedence")
            else:
                self.restart(body["restart"], join_path(self.path, "restart"))
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
        path = join_path(self.path, "image")
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

    def put_table(self, key: str, value: dict[Any, Any], path: str) -> None:
        """A mapping the job validator checks entry by entry (and bounds)."""
        self.spec[key] = value
        self.origin[key] = path

    def strings(self, key: str, value: Any, path: str) -> None:
        """A list of strings the job validator checks item by item (`cap_add`, `devices`)."""
        if not isinstance(value, list):
            self.error(path, f"must be a list of strings, got {json_kind(value)}")
            return
        for i, v in enumerate(value):
            if isinstance(v, (list, dict)):
                self.error(f"{path}[{i}]", f"must be a string, got {json_kind(v)}")
                return
        self.spec[key] = value
        self.origin[key] = path

    def pids(self, value: Any, path: str) -> None:
        """`pids_limit` or `deploy.resources.limits.pids`: the job's pids_limit."""
        if value in (0, -1) and not isinstance(value, bool):
            self.r.warn(path, "unlimited is not supported: shoal always limits pids; the job "
                              "default (1024) applies (set a number to raise it)")
            return
        if "pids_limit" in self.spec and self.spec["pids_limit"] != value:
            self.error(path, f"conflicts with {self.origin['pids_limit']} ({got(self.spec['pids_limit'])})")
            return
        self.put("pids_limit", value, path)

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
        pairs: list[tuple[Any, Any, str]] = []  # (name, value or None, Compose path)
        if isinstance(value, list):
            for i, item in enumerate(value):
                if not isinstance(item, str):
                    self.error(f"{path}[{i}]", f"must be a string KEY=VALUE, got {json_kind(item)}")
                    continue
                key, eq, val = item.partition("=")
                pairs.append((key, val if eq else None, f"{path}[{i}]"))
        elif isinstance(value, dict):
            pairs = [(k, v, join_path(path, k)) for k, v in value.items()]
        elif value is None:
            return
        else:
            self.error(path, f"must be a mapping or a list of KEY=VALUE, got {json_kind(value)}")
            return
        for key, val, where in pairs:
            if not isinstance(key, str):
                self.error(path, f"variable names must be strings, got {json_kind(key)}")
                continue
            self.origin[join_path("env", key)] = where
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
        if env:     # over what env files gave (Compose's order)
            self.spec["env"] = {**self.spec.get("env", {}), **env}

    def env_files(self, value: Any, path: str) -> None:
        if self.read_beside is None:
            self.r.unsupported(path, "env_file", "write the variables under 'environment'")
            return
        entries = value if isinstance(value, list) else [value]
        if len(entries) > MAX_ENV_FILES:
            self.error(path, f"at most {MAX_ENV_FILES} files (got {len(entries)})")
            return
        env: dict[str, str] = {}
        for i, entry in enumerate(entries):
            where = f"{path}[{i}]" if isinstance(value, list) else path
            required = True
            if isinstance(entry, dict):     # long syntax: {path, required}
                entry, required = entry.get("path"), entry.get("required", True) is not False
            if not isinstance(entry, str):
                self.error(where, f"must be a file path, got {json_kind(entry)}")
                continue
            try:
                found = parse_env_file(self.read_beside(entry))
            except FileNotFoundError:
                if required:
                    self.error(where, f"{got(entry)}: no such file (paths are relative to the Compose file)")
                continue
            except (OSError, BesideFileError, EnvFileError) as e:
                self.error(where, f"{got(entry)}: {getattr(e, 'strerror', None) or e}")
                continue
            for key, val in found.items():
                env[key] = val
                self.origin[join_path("env", key)] = where
        if env:
            self.spec["env"] = {**self.spec.get("env", {}), **env}

    def healthcheck(self, value: Any, path: str) -> None:
        hc = self.table(value, path)
        if hc is None:
            return
        self.r.unknown_keys(hc, HEALTH_KEYS + ("disable",), path)
        if hc.get("disable") is True:
            self.r.unsupported(join_path(path, "disable"), "disable",
                               "shoal cannot turn off an image's HEALTHCHECK; it stays as the image defines it")
            return
        if "disable" in hc and hc["disable"] is not False:
            self.error(join_path(path, "disable"), f"must be true or false, got {json_kind(hc['disable'])}")
        test = hc.get("test")
        test_path = join_path(path, "test")
        if test is None:
            for key in ("interval", "timeout", "retries", "start_period"):
                if key in hc:
                    self.r.unsupported(join_path(path, key), key, "without 'test' shoal keeps the image's "
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
            where = join_path(path, key)
            self.origin[f"health.{spec_key}"] = where
            if key in hc:
                seconds = self.duration(hc[key], where)
                if seconds is not None:
                    health[spec_key] = seconds
            elif default is not None:
                health[spec_key] = default
        self.origin["health.retries"] = join_path(path, "retries")
        retries = hc.get("retries", DOCKER_HEALTH_RETRIES)
        if isinstance(retries, (list, dict)):
            self.error(join_path(path, "retries"), f"must be an integer, got {json_kind(retries)}")
            return
        health["retries"] = retries
        self.spec["health"] = health

    def deploy(self, deploy: dict, path: str) -> None:
        self.r.unknown_keys(deploy, DEPLOY_KEYS, path)
        mode = deploy.get("mode", "replicated")
        if mode == "global":    # one replica on every node that may run it (auction.global_jobs)
            self.put("mode", "global", join_path(path, "mode"))
        elif mode != "replicated":
            self.error(join_path(path, "mode"), "must be replicated or global, got " + got(mode))
        if "replicas" in deploy:
            self.put("replicas", deploy["replicas"], join_path(path, "replicas"))
        if "resources" in deploy:
            self.resources(deploy["resources"], join_path(path, "resources"))
        if "placement" in deploy:
            self.placement(deploy["placement"], join_path(path, "placement"))
        if "restart_policy" in deploy:
            self.restart_policy(deploy["restart_policy"], join_path(path, "restart_policy"))

    def resources(self, value: Any, path: str) -> None:
        res = self.table(value, path)
        if res is None:
            return
        self.r.unknown_keys(res, RESOURCES_KEYS, path)
        found: dict[str, list[tuple[int, str]]] = {"cpus": [], "memory": []}
        for part in RESOURCES_KEYS:
            where = join_path(path, part)
            table = self.table(res.get(part), where)
            if table is None:
                continue
            self.r.unknown_keys(table, LIMIT_KEYS if part == "limits" else AMOUNT_KEYS, where)
            if part == "limits" and "pids" in table:
                self.pids(table["pids"], join_path(where, "pids"))
            if "cpus" in table and (millis := self.cpus(table["cpus"], join_path(where, "cpus"))) is not None:
                found["cpus"].append((millis, join_path(where, "cpus")))
            if "memory" in table and (size := self.memory(table["memory"], join_path(where, "memory"))) is not None:
                found["memory"].append((size, join_path(where, "memory")))
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
            self.error(path, "must be a size like '512m' or '1g', or a number of bytes, got " + got(value))
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
            self.put("max_per_node", placement["max_replicas_per_node"], join_path(path, "max_replicas_per_node"))
        constraints = placement.get("constraints")
        cpath = join_path(path, "constraints")
        if isinstance(constraints, list):
            out: list[str] = []
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
        ppath = join_path(path, "preferences")
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
                    self.origin["spread"] = join_path(where, "spread")
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
        cpath = join_path(path, "condition")
        self.origin["restart.policy"] = cpath
        if isinstance(cond, str) and cond in CONDITIONS:
            restart["policy"] = CONDITIONS[cond]
        else:
            self.error(cpath, "must be one of any, on-failure, none, got " + got(cond))
        if "max_attempts" in rp:
            mpath = join_path(path, "max_attempts")
            if isinstance(rp["max_attempts"], (list, dict)):
                self.error(mpath, f"must be an integer, got {json_kind(rp['max_attempts'])}")
            elif restart.get("policy") == "on-failure":
                restart["max_attempts"] = rp["max_attempts"]
                self.origin["restart.max_attempts"] = mpath
            elif rp["max_attempts"] not in (None, 0):
                self.r.unsupported(mpath, "max_attempts", "shoal limits attempts only with condition "
                                                          "on-failure; the condition is " + got(cond))
        if "delay" in rp:
            dpath = join_path(path, "delay")
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
            self.error(path, "must be no, always, on-failure[:N] or unless-stopped, got " + got(value))

    def duration(self, value: Any, path: str) -> float | None:
        """Seconds from a Go duration string ('1m30s', '500ms')."""
        if isinstance(value, str) and value and "".join(m.group(0) for m in _DURATION_RE.finditer(value)) == value:
            return sum(float(m.group(1)) * _DURATION_UNITS[m.group(2).lower()] for m in _DURATION_RE.finditer(value))
        self.error(path, "must be a duration like '10s', '1m30s' or '500ms', got " + got(value))
        return None
