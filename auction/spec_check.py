"""The spec checker: walks a raw spec and records every problem it finds.

How this works: each `Checker` method checks one field (or one shape:
table, string, integer, seconds, choice) and returns a usable value even when
the input is wrong (the default, or a placeholder), recording a `Problem`
with the field's path (`replicas`, `env.FOO`, `restart.policy`,
`constraints[1]`, `command[3]`).  So checking always reaches the end of the
spec, and auction.spec's `validate` reports every problem at once; a field
left out is `MISSING` and gets its default.  Unknown fields are problems,
with the closest known name suggested.  At most MAX_PROBLEMS are listed; the
rest are counted.  Pure: no I/O.
"""

from __future__ import annotations

import enum
import json
import math
import re
from typing import Any, overload

from .container_policy import (
    ALL,
    LINUX_CAPS,
    cap_name,
    device_path_problem,
    user_problem,
)
from .jobspec import (
    DEFAULT_BACKOFF_S,
    DEFAULT_CPU_MILLIS,
    DEFAULT_HEALTH_INTERVAL_S,
    DEFAULT_HEALTH_RETRIES,
    DEFAULT_HEALTH_START_PERIOD_S,
    DEFAULT_HEALTH_TIMEOUT_S,
    DEFAULT_MAX_BACKOFF_S,
    DEFAULT_MEMORY_BYTES,
    DEFAULT_HEALTHY_DEADLINE_S,
    DEFAULT_MAX_PARALLEL,
    DEFAULT_MIN_HEALTHY_S,
    DEFAULT_PIDS_LIMIT,
    DEFAULT_PROGRESS_DEADLINE_S,
    DEFAULT_STOP_SIGNAL,
    DEVICE_PERMISSIONS,
    ENV_NAME_RE,
    HEALTH_FIELDS,
    IMAGE_RE,
    MAX_ARG_CHARS,
    MAX_BACKOFF_S,
    MAX_COMMAND_ARGS,
    MAX_CONSTRAINTS,
    MAX_CPU_MILLIS,
    MAX_DEVICES,
    MAX_ENV_ENTRIES,
    MAX_ENV_NAME_CHARS,
    MAX_ENV_VALUE_CHARS,
    MAX_HEALTH_DURATION_S,
    MAX_HEALTH_RETRIES,
    MAX_IMAGE_CHARS,
    MAX_MEMORY_BYTES,
    MAX_NAME_CHARS,
    MAX_PIDS_LIMIT,
    MAX_PROBLEMS,
    MAX_REPLICAS,
    MAX_RESTART_ATTEMPTS,
    MAX_UPDATE_DURATION_S,
    MAX_USER_CHARS,
    MIN_BACKOFF_S,
    MIN_HEALTH_INTERVAL_S,
    MIN_HEALTH_TIMEOUT_S,
    MIN_MEMORY_BYTES,
    NAME_RE,
    PLANNED_FIELDS,
    RESTART_FIELDS,
    SHOW_CHARS,
    STOP_SIGNALS,
    UPDATE_FIELDS,
    Constraint,
    HealthCheck,
    Problem,
    RestartMode,
    RestartPolicy,
    UpdateOrder,
    UpdatePolicy,
    label_key_problem,
    quote_short,
)
from .ports import (
    DEFAULT_NETWORK,
    MAX_PORT,
    MAX_PORTS,
    MIN_PORT,
    NETWORK_MODES,
    PortSpec,
    label_problem,
)
from .resources import (
    UnitError,
    canonical_memory,
    format_cpu,
    format_memory,
    json_kind,
    parse_cpu,
    parse_memory,
)

PORT_FIELDS = ("to", "static")
# The runtime sets SHOAL_PORT_HTTP, SHOAL_NODE, ... in every replica; a spec
# may not set or shadow them.
RESERVED_ENV_PREFIX = "SHOAL_"
_PLAIN_KEY_RE = re.compile(r"[A-Za-z0-9_-]+", re.ASCII)   # written bare in a problem path


class _Missing:
    def __repr__(self) -> str:
        return "<missing>"


MISSING: Any = _Missing()


def _key_path(prefix: str, key: str) -> str:
    """`env.FOO`; a key that is empty or holds other characters is quoted: `env["a b"]`."""
    key = key if len(key) <= SHOW_CHARS else key[:SHOW_CHARS] + "..."
    if not _PLAIN_KEY_RE.fullmatch(key):
        return f"{prefix}[{json.dumps(key)}]"
    return f"{prefix}.{key}" if prefix else key


def _closest(word: str, known: tuple[str, ...]) -> str | None:
    import difflib  # only for a misspelt field: not imported at every agent start

    close = difflib.get_close_matches(word[:SHOW_CHARS], known, n=1, cutoff=0.6)
    return close[0] if close else None


class Checker:
    """Collects problems while each method returns a usable value (the default,
    or a placeholder) so that checking always reaches the end of the spec."""

    def __init__(self) -> None:
        self.problems: list[Problem] = []
        self.dropped = 0

    def add(self, path: str, message: str) -> None:
        if len(self.problems) < MAX_PROBLEMS:
            self.problems.append(Problem(path, message))
        else:
            self.dropped += 1

    def report(self) -> list[Problem]:
        if self.dropped:
            return self.problems + [Problem("", f"{self.dropped} more problems not shown")]
        return self.problems

    @staticmethod
    def key_path(prefix: str, key: str) -> str:
        """`env.FOO`, or `env["a b"]` for a key that is not plain."""
        return _key_path(prefix, key)

    # -- shapes --

    def unknown_fields(self, table: dict[Any, Any], known: tuple[str, ...], prefix: str) -> None:
        for key in table:
            if not isinstance(key, str):
                self.add(prefix, f"field names must be strings, got {json_kind(key)}")
            elif key in PLANNED_FIELDS and not prefix:
                self.add(key, f"unknown field {key!r} (planned for a later version; not accepted yet)")
            elif key not in known:
                guess = _closest(key, known)
                hint = f" (did you mean {guess!r}?)" if guess else ""
                self.add(_key_path(prefix, key), f"unknown field {quote_short(key)}{hint}")

    def table(self, value: Any, path: str) -> dict[Any, Any] | None:
        if isinstance(value, dict):
            return value
        self.add(path, f"must be a table, got {json_kind(value)}")
        return None

    def string(self, value: Any, path: str, max_chars: int) -> str | None:
        if not isinstance(value, str):
            self.add(path, f"must be a string, got {json_kind(value)}")
            return None
        if len(value) > max_chars:
            self.add(path, f"must be at most {max_chars} characters (got {len(value)})")
            return None
        if "\x00" in value:
            self.add(path, "must not contain NUL characters")
            return None
        return value

    @overload
    def integer(self, value: Any, path: str, lo: int, hi: int, default: int) -> int: ...

    @overload
    def integer(self, value: Any, path: str, lo: int, hi: int, default: None) -> int | None: ...

    def integer(self, value: Any, path: str, lo: int, hi: int, default: int | None) -> int | None:
        if value is MISSING:
            return default
        if isinstance(value, bool) or not isinstance(value, int):
            self.add(path, f"must be an integer, got {json_kind(value)}")
            return default
        if not lo <= value <= hi:
            self.add(path, f"must be between {lo} and {hi} (got {value if abs(value) < 10**18 else 'a huge number'})")
            return default
        return value

    def seconds(self, value: Any, path: str, lo: float, hi: float, default: float) -> float:
        if value is MISSING:
            return default
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            self.add(path, f"must be a number of seconds, got {json_kind(value)}")
            return default
        if isinstance(value, int) and abs(value) > 10**18:
            self.add(path, f"must be between {lo:g} and {hi:g} seconds (got a huge number)")
            return default
        number = float(value)
        if not (math.isfinite(number) and lo <= number <= hi):
            self.add(path, f"must be between {lo:g} and {hi:g} seconds (got {number:g})")
            return default
        return number

    def choice(self, value: Any, path: str, enum_type: type[enum.Enum], default: Any) -> Any:
        if value is MISSING:
            return default
        names = tuple(str(m.value) for m in enum_type)
        if isinstance(value, str) and value in names:
            return enum_type(value)
        if isinstance(value, str):
            guess = _closest(value, names)
            got = quote_short(value) + (f"; did you mean {guess!r}?" if guess else "")
        else:
            got = json_kind(value)
        self.add(path, f"must be one of {', '.join(names)} (got {got})")
        return None

    # -- fields --

    def name(self, value: Any) -> str:
        if value is MISSING:
            self.add("name", "required")
        elif (v := self.string(value, "name", MAX_NAME_CHARS)) is not None:
            if NAME_RE.fullmatch(v):
                return v
            self.add("name", f"{quote_short(v)} must be lowercase letters, digits and '-', starting and "
                             "ending with a letter or digit (like 'web-1')")
        return "invalid"

    def image(self, value: Any) -> str:
        if value is MISSING:
            self.add("image", "required")
        elif (v := self.string(value, "image", MAX_IMAGE_CHARS)) is not None:
            if IMAGE_RE.fullmatch(v):
                return v
            self.add("image", "must not be empty" if v == "" else
                     f"{quote_short(v)} is not an image reference like 'busybox:1.36' or "
                     "'registry.local:5000/team/app' (no spaces)")
        return "invalid"

    def command(self, value: Any, path: str, image_default: str = "CMD") -> tuple[str, ...] | None:
        if value is MISSING:
            return None
        if isinstance(value, str):
            if len(value) > MAX_ARG_CHARS * 4:
                self.add(path, f"must be at most {MAX_ARG_CHARS * 4} characters")
                return None
            import shlex  # only for a command given as one string: not imported at every agent start

            try:
                value = shlex.split(value)
            except ValueError as e:
                self.add(path, f"cannot be split into arguments like a shell would: {e}")
                return None
            if not value:
                self.add(path, f"is empty (omit it to use the image's {image_default})")
                return None
            return self.args(value, path, split=True)
        if isinstance(value, list):
            if not value:
                self.add(path, f"is empty (omit it to use the image's {image_default})")
                return None
            return self.args(value, path, split=False)
        self.add(path, f"must be a list of strings or a string, got {json_kind(value)}")
        return None

    def args(self, args: list[Any], path: str, split: bool) -> tuple[str, ...] | None:
        if len(args) > MAX_COMMAND_ARGS:
            self.add(path, f"must have at most {MAX_COMMAND_ARGS} arguments (got {len(args)})")
            return None
        before = len(self.problems) + self.dropped
        out: list[str] = []
        for i, arg in enumerate(args):
            # A string was split by us: point at the whole field, not a made-up index.
            where = path if split else f"{path}[{i}]"
            if (checked := self.string(arg, where, MAX_ARG_CHARS)) is not None:
                out.append(checked)
        # A bad argument was recorded as a problem (or counted as dropped).
        if len(self.problems) + self.dropped != before:
            return None
        return tuple(out)

    def env(self, value: Any) -> tuple[tuple[str, str], ...]:
        if value is MISSING or (table := self.table(value, "env")) is None:
            return ()
        if len(table) > MAX_ENV_ENTRIES:
            self.add("env", f"must have at most {MAX_ENV_ENTRIES} entries (got {len(table)})")
            return ()
        out = {}
        for key, val in table.items():
            if not isinstance(key, str):
                self.add("env", f"variable names must be strings, got {json_kind(key)}")
                continue
            path = _key_path("env", key)
            if len(key) > MAX_ENV_NAME_CHARS:
                self.add(path, f"variable name must be at most {MAX_ENV_NAME_CHARS} characters")
            elif not ENV_NAME_RE.fullmatch(key):
                self.add(path, f"{quote_short(key)} is not a variable name (letters, digits and '_', "
                               "not starting with a digit)")
            elif key.startswith(RESERVED_ENV_PREFIX):
                self.add(path, f"{RESERVED_ENV_PREFIX}* variables are set by shoal in every replica "
                               "(its node, slot and ports: see docs/jobspec.md, Networking)")
            if isinstance(val, (int, float)) and not isinstance(val, bool):
                self.add(path, f"must be a string, got {json_kind(val)} (quote it: \"{val}\")")
            elif (v := self.string(val, path, MAX_ENV_VALUE_CHARS)) is not None:
                out[key] = v
        return tuple(sorted(out.items()))

    def cpu(self, value: Any) -> int:
        if value is MISSING:
            return DEFAULT_CPU_MILLIS
        try:
            millis = parse_cpu(value)
        except UnitError as e:
            self.add("cpu", str(e))
            return DEFAULT_CPU_MILLIS
        if millis <= 0:
            self.add("cpu", "must be more than 0 (at least 0.001 cores)")
        elif millis > MAX_CPU_MILLIS:
            self.add("cpu", f"must be at most {format_cpu(MAX_CPU_MILLIS)} "
                            f"(got {format_cpu(millis) if millis < 10**18 else 'a huge number'})")
        else:
            return millis
        return DEFAULT_CPU_MILLIS

    def memory(self, value: Any) -> int:
        if value is MISSING:
            return DEFAULT_MEMORY_BYTES
        try:
            n = parse_memory(value)
        except UnitError as e:
            self.add("memory", str(e))
            return DEFAULT_MEMORY_BYTES
        if n < MIN_MEMORY_BYTES:
            self.add("memory", f"must be at least {canonical_memory(MIN_MEMORY_BYTES)} "
                               f"(Docker's minimum; got {format_memory(n)})")
        elif n > MAX_MEMORY_BYTES:
            self.add("memory", f"must be at most {canonical_memory(MAX_MEMORY_BYTES)}")
        else:
            return n
        return DEFAULT_MEMORY_BYTES

    def constraints(self, value: Any) -> tuple[Constraint, ...]:
        if value is MISSING:
            return ()
        if not isinstance(value, list):
            self.add("constraints", f"must be a list of strings like \"rack == a\", got {json_kind(value)}")
            return ()
        if len(value) > MAX_CONSTRAINTS:
            self.add("constraints", f"must have at most {MAX_CONSTRAINTS} entries (got {len(value)})")
            return ()
        out = []
        for i, item in enumerate(value):
            path = f"constraints[{i}]"
            if not isinstance(item, str):
                self.add(path, f"must be a string like \"rack == a\", got {json_kind(item)}")
                continue
            try:
                out.append(Constraint.parse(item))
            except ValueError as e:
                self.add(path, str(e))
        return tuple(out)

    def spread(self, value: Any) -> str | None:
        if value is MISSING:
            return None
        if not isinstance(value, str):
            self.add("spread", f"must be a label name like \"rack\", got {json_kind(value)}")
        elif problem := label_key_problem(value):
            self.add("spread", problem)
        else:
            return value
        return None

    def restart(self, value: Any) -> RestartPolicy:
        if value is MISSING or (table := self.table(value, "restart")) is None:
            return RestartPolicy()
        self.unknown_fields(table, RESTART_FIELDS, "restart")
        policy = self.choice(table.get("policy", MISSING), "restart.policy", RestartMode,
                             RestartMode.ALWAYS)
        attempts = self.integer(table.get("max_attempts", MISSING), "restart.max_attempts",
                                0, MAX_RESTART_ATTEMPTS, None)
        # (An invalid policy is already reported; do not pile a second problem on it.)
        if attempts is not None and policy not in (None, RestartMode.ON_FAILURE):
            self.add("restart.max_attempts", f"applies only to policy 'on-failure' (policy is "
                                             f"{policy.value!r})")
        backoff_s = self.seconds(table.get("backoff_s", MISSING), "restart.backoff_s",
                                 MIN_BACKOFF_S, MAX_BACKOFF_S, DEFAULT_BACKOFF_S)
        max_backoff_s = self.seconds(table.get("max_backoff_s", MISSING), "restart.max_backoff_s",
                                     MIN_BACKOFF_S, MAX_BACKOFF_S, DEFAULT_MAX_BACKOFF_S)
        if backoff_s > max_backoff_s:
            self.add("restart.backoff_s", f"must not exceed max_backoff_s ({backoff_s:g} > "
                                          f"{max_backoff_s:g})")
        return RestartPolicy(policy or RestartMode.ALWAYS, attempts, backoff_s, max_backoff_s)

    def health(self, value: Any) -> HealthCheck | None:
        if value is MISSING or (table := self.table(value, "health")) is None:
            return None
        self.unknown_fields(table, HEALTH_FIELDS, "health")
        if "image" in table:
            if table["image"] is not True:
                self.add("health.image", f"can only be true (use the image's HEALTHCHECK), "
                                         f"got {json_kind(table['image'])}")
            others = sorted(k for k in table if isinstance(k, str) and k != "image" and k in HEALTH_FIELDS)
            if others:
                self.add("health", f"image = true uses the image's HEALTHCHECK as it is; "
                                   f"remove {', '.join(others)}")
            return None
        if "command" not in table:
            self.add("health.command", "required (or write image = true to use the image's HEALTHCHECK)")
        command = self.command(table.get("command", MISSING), "health.command", "HEALTHCHECK")
        return HealthCheck(
            command=command or ("true",),
            interval_s=self.seconds(table.get("interval_s", MISSING), "health.interval_s",
                                    MIN_HEALTH_INTERVAL_S, MAX_HEALTH_DURATION_S,
                                    DEFAULT_HEALTH_INTERVAL_S),
            timeout_s=self.seconds(table.get("timeout_s", MISSING), "health.timeout_s",
                                   MIN_HEALTH_TIMEOUT_S, MAX_HEALTH_DURATION_S,
                                   DEFAULT_HEALTH_TIMEOUT_S),
            retries=self.integer(table.get("retries", MISSING), "health.retries",
                                 1, MAX_HEALTH_RETRIES, DEFAULT_HEALTH_RETRIES),
            start_period_s=self.seconds(table.get("start_period_s", MISSING),
                                        "health.start_period_s", 0.0, MAX_HEALTH_DURATION_S,
                                        DEFAULT_HEALTH_START_PERIOD_S),
        )


    # -- rolling updates and stopping (auction.rollout; docs/jobspec.md "Updates") --

    def update(self, value: Any) -> UpdatePolicy:
        if value is MISSING or (table := self.table(value, "update")) is None:
            return UpdatePolicy()
        self.unknown_fields(table, UPDATE_FIELDS, "update")
        get = table.get
        max_parallel = self.integer(get("max_parallel", MISSING), "update.max_parallel", 1, MAX_REPLICAS,
                                    DEFAULT_MAX_PARALLEL)
        min_healthy_s = self.seconds(get("min_healthy_s", MISSING), "update.min_healthy_s", 0.0,
                                     MAX_UPDATE_DURATION_S, DEFAULT_MIN_HEALTHY_S)
        healthy_deadline_s = self.seconds(get("healthy_deadline_s", MISSING), "update.healthy_deadline_s", 1.0,
                                          MAX_UPDATE_DURATION_S, DEFAULT_HEALTHY_DEADLINE_S)
        progress_deadline_s = self.seconds(get("progress_deadline_s", MISSING), "update.progress_deadline_s",
                                           1.0, MAX_UPDATE_DURATION_S, DEFAULT_PROGRESS_DEADLINE_S)
        # As Nomad: a replica must have time to turn healthy before its deadline,
        # and the rollout as a whole at least as long as one replica.
        if healthy_deadline_s <= min_healthy_s:
            self.add("update.healthy_deadline_s", f"must be more than min_healthy_s ({healthy_deadline_s:g} <= "
                                                  f"{min_healthy_s:g})")
        if progress_deadline_s < healthy_deadline_s:
            self.add("update.progress_deadline_s", f"must be at least healthy_deadline_s "
                                                   f"({progress_deadline_s:g} < {healthy_deadline_s:g})")
        order = self.choice(get("order", MISSING), "update.order", UpdateOrder, UpdateOrder.START_FIRST)
        return UpdatePolicy(
            max_parallel=max_parallel, min_healthy_s=min_healthy_s, healthy_deadline_s=healthy_deadline_s,
            progress_deadline_s=progress_deadline_s, order=order or UpdateOrder.START_FIRST,
            canary=self.integer(get("canary", MISSING), "update.canary", 0, MAX_REPLICAS, 0),
            auto_promote=self.boolean(get("auto_promote", MISSING), "update.auto_promote", False),
            auto_revert=self.boolean(get("auto_revert", MISSING), "update.auto_revert", False))

    def stop_signal(self, value: Any) -> str:
        """A signal name ("SIGTERM", or "TERM"; any case), kept as "SIGTERM"."""
        if value is MISSING:
            return DEFAULT_STOP_SIGNAL
        if not isinstance(value, str):
            self.add("stop_signal", f"must be a signal name, got {json_kind(value)}")
            return DEFAULT_STOP_SIGNAL
        name = value.strip().upper()
        name = name if name.startswith("SIG") else "SIG" + name
        if name not in STOP_SIGNALS:
            self.add("stop_signal", f"must be one of {', '.join(STOP_SIGNALS)} (got {quote_short(value)})")
            return DEFAULT_STOP_SIGNAL
        return name

    # -- container security (auction.container_policy says what a node allows) --

    def boolean(self, value: Any, path: str, default: bool) -> bool:
        if value is MISSING:
            return default
        if not isinstance(value, bool):
            self.add(path, f"must be true or false, got {json_kind(value)}")
            return default
        return value

    def caps(self, value: Any, path: str, *, allow_all: bool) -> tuple[str, ...]:
        """Capability names, canonical (`NET_ADMIN`) and sorted; `ALL` only if allowed
        (then alone: it says everything)."""
        if value is MISSING:
            return ()
        if not isinstance(value, list):
            self.add(path, f"must be a list of capability names like [\"NET_ADMIN\"], got {json_kind(value)}")
            return ()
        if len(value) > len(LINUX_CAPS) + 1:
            self.add(path, f"must have at most {len(LINUX_CAPS) + 1} entries (got {len(value)})")
            return ()
        out = set()
        for i, item in enumerate(value):
            where = f"{path}[{i}]"
            if not isinstance(item, str):
                self.add(where, f"must be a capability name like \"NET_ADMIN\", got {json_kind(item)}")
            elif (name := cap_name(item[:SHOW_CHARS])) is None or len(item) > SHOW_CHARS:
                guess = _closest(item.strip().upper().removeprefix("CAP_"), tuple(sorted(LINUX_CAPS)))
                hint = f" (did you mean {guess!r}?)" if guess else " (see capabilities(7))"
                self.add(where, f"{quote_short(item)} is not a Linux capability{hint}")
            elif name == ALL and not allow_all:
                self.add(where, "ALL is not accepted: list the capabilities the job needs")
            else:
                out.add(name)
        return (ALL,) if ALL in out else tuple(sorted(out))

    def cap_conflicts(self, cap_add: tuple[str, ...], cap_drop: tuple[str, ...]) -> None:
        both = sorted(set(cap_add) & set(cap_drop))
        if both:
            self.add("cap_add", f"{', '.join(both)} also in cap_drop: a capability is added or dropped, "
                                "not both")

    def user(self, value: Any) -> str | None:
        if value is MISSING:
            return None
        if isinstance(value, int) and not isinstance(value, bool):
            self.add("user", f"must be a string, got {json_kind(value)} (quote it: \"{value}\")")
        elif (v := self.string(value, "user", MAX_USER_CHARS)) is not None:
            if (problem := user_problem(v)) is None:
                return v
            self.add("user", problem)
        return None

    def devices(self, value: Any) -> tuple[str, ...]:
        """Docker's `HOST[:CONTAINER][:PERMISSIONS]`, as `HOST:CONTAINER:PERMS`, sorted."""
        if value is MISSING:
            return ()
        if not isinstance(value, list):
            self.add("devices", f"must be a list of device paths like \"/dev/fuse\", got {json_kind(value)}")
            return ()
        if len(value) > MAX_DEVICES:
            self.add("devices", f"must have at most {MAX_DEVICES} entries (got {len(value)})")
            return ()
        out: dict[str, str] = {}       # container path -> entry
        for i, item in enumerate(value):
            where = f"devices[{i}]"
            if not isinstance(item, str):
                self.add(where, f"must be a string like \"/dev/fuse\", got {json_kind(item)}")
                continue
            entry = self.device(item, where)
            if entry is None:
                continue
            inside = entry.split(":")[1]
            if out.get(inside, entry) != entry:
                self.add(where, f"{quote_short(inside)} is already the container path of another device")
            out[inside] = entry
        return tuple(sorted(out.values()))

    def device(self, text: str, path: str) -> str | None:
        parts = text.split(":")
        if len(parts) == 2 and parts[1] and set(parts[1]) <= set(DEVICE_PERMISSIONS):
            parts = [parts[0], parts[0], parts[1]]     # HOST:PERMS, as Docker reads it
        if len(parts) > 3:
            self.add(path, f"{quote_short(text)} is not HOST[:CONTAINER[:PERMISSIONS]]")
            return None
        host = parts[0]
        inside = parts[1] if len(parts) > 1 and parts[1] else host
        perms = parts[2] if len(parts) > 2 else DEVICE_PERMISSIONS
        for side, p, is_host in (("host", host, True), ("container", inside, False)):
            if (problem := device_path_problem(p, host=is_host)) is not None:
                self.add(path, f"{side} path {problem}")
                return None
        if not perms or not set(perms) <= set(DEVICE_PERMISSIONS) or len(set(perms)) != len(perms):
            self.add(path, f"permissions {quote_short(perms)} must be some of r, w, m (like rw or rwm)")
            return None
        return f"{host}:{inside}:{''.join(c for c in DEVICE_PERMISSIONS if c in perms)}"

    def pids_limit(self, value: Any) -> int:
        return self.integer(value, "pids_limit", 1, MAX_PIDS_LIMIT, DEFAULT_PIDS_LIMIT)

    # -- networking (auction.ports has the rules) --

    def network(self, value: Any) -> str:
        if value is MISSING:
            return DEFAULT_NETWORK
        if isinstance(value, str) and value in NETWORK_MODES:
            return value
        got = quote_short(value) if isinstance(value, str) else json_kind(value)
        self.add("network", f"must be one of {', '.join(NETWORK_MODES)} (got {got})")
        return DEFAULT_NETWORK

    def ports(self, value: Any, network: str) -> tuple[PortSpec, ...]:
        if value is MISSING:
            return ()
        table = self.table(value, "ports")
        if table is None:
            return ()
        if len(table) > MAX_PORTS:
            self.add("ports", f"at most {MAX_PORTS} ports (got {len(table)})")
            return ()
        if table and network == "none":
            self.add("ports", 'a job with network = "none" cannot have ports')
        out: list[PortSpec] = []
        statics: dict[int, str] = {}
        for label, raw in table.items():
            path = _key_path("ports", str(label))
            if not isinstance(label, str):
                self.add(path, "port names must be strings")
                continue
            if (problem := label_problem(label)) is not None:
                self.add(path, problem)
                continue
            port = self.table(raw, path)
            if port is None:
                continue
            self.unknown_fields(port, PORT_FIELDS, path)
            to = self.integer(port.get("to", MISSING), f"{path}.to", MIN_PORT, MAX_PORT, None)
            static = self.integer(port.get("static", MISSING), f"{path}.static", MIN_PORT, MAX_PORT, None)
            if network == "bridge" and to is None and "to" not in port:
                self.add(f"{path}.to", "required with bridge networking (the port the container listens on)")
            if network == "host" and to is not None and to != static:
                self.add(f"{path}.to", "with host networking the replica listens on its host port: "
                                       "leave 'to' out (or equal to 'static')")
            if static is not None:
                if static in statics:
                    self.add(f"{path}.static", f"port {static} is also asked for by ports.{statics[static]}")
                statics[static] = label
            out.append(PortSpec(label, to, static))
        return tuple(sorted(out))
