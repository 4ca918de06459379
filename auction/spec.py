"""Job specs: one flat schema, validated all at once, with a canonical form.

How this works: a job spec arrives as a TOML file (`load_toml`) or as JSON
over HTTP (`from_json`); both become a plain dict that `validate` checks
against one schema.  `validate` never stops at the first mistake: it walks
every field, records each problem with its path (`replicas`, `env.FOO`,
`restart.policy`, `constraints[1]`, `command[3]`), and raises one `SpecError`
listing all of them (the API returns them as HTTP 400, the CLI prints them).
Unknown fields are errors, with the closest known name suggested ("unknown
field 'replica' (did you mean 'replicas'?)"); a field planned for later
(PLANNED_FIELDS, none now) is refused the same way until it exists.

A valid spec becomes a frozen `JobSpec` (auction.jobspec: the type, its
canonical form `to_dict()`, `spec_hash()` and `container_hash()`); the
field-by-field checks are auction.spec_check.  This module is the entry
point, and every public name of the other two is importable from here.

Every input is bounded (the `MAX_*` constants), starting with the encoded
size of the whole spec, so a hostile spec costs little to reject.  The
rules of each field are in docs/jobspec.md.  Pure: no I/O, no clock.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from typing import Any

from .jobspec import (
    DEFAULT_PRIORITY,
    MAX_PRIORITY,
    MIN_PRIORITY,
    DEFAULT_BACKOFF_S,
    DEFAULT_CPU_MILLIS,
    DEFAULT_HEALTH_INTERVAL_S,
    DEFAULT_HEALTH_RETRIES,
    DEFAULT_HEALTH_START_PERIOD_S,
    DEFAULT_HEALTH_TIMEOUT_S,
    DEFAULT_MAX_BACKOFF_S,
    DEFAULT_MEMORY_BYTES,
    DEFAULT_PIDS_LIMIT,
    DEFAULT_STOP_GRACE_S,
    DEFAULT_STOP_SIGNAL,
    ENV_NAME_RE,
    FIELDS,
    HEALTH_FIELDS,
    IMAGE_RE,
    LABEL_KEY_RE,
    LABEL_VALUE_RE,
    MAX_ARG_CHARS,
    MAX_BACKOFF_S,
    MAX_COMMAND_ARGS,
    MAX_CONSTRAINT_CHARS,
    MAX_CONSTRAINT_VALUES,
    MAX_CONSTRAINTS,
    MAX_CPU_MILLIS,
    MAX_DEVICES,
    MAX_ENV_ENTRIES,
    MAX_ENV_NAME_CHARS,
    MAX_ENV_VALUE_CHARS,
    MAX_HEALTH_DURATION_S,
    MAX_HEALTH_RETRIES,
    MAX_IMAGE_CHARS,
    MAX_LABEL_KEY_CHARS,
    MAX_LABEL_VALUE_CHARS,
    MAX_MEMORY_BYTES,
    MAX_NAME_CHARS,
    MAX_PIDS_LIMIT,
    MAX_PROBLEMS,
    MAX_REPLICAS,
    MAX_RESTART_NONCE_CHARS,
    MAX_RESTART_ATTEMPTS,
    MAX_SPEC_BYTES,
    MAX_STOP_GRACE_S,
    MAX_USER_CHARS,
    MIN_BACKOFF_S,
    NOT_GLOBAL_FIELDS,
    MIN_HEALTH_INTERVAL_S,
    MIN_HEALTH_TIMEOUT_S,
    MIN_MEMORY_BYTES,
    NAME_RE,
    PLANNED_FIELDS,
    RESTART_FIELDS,
    SECURITY_FIELDS,
    STOP_SIGNALS,
    UPDATE_FIELDS,
    Constraint,
    HealthCheck,
    JobSpec,
    ImageSource,
    Mode,
    Op,
    Problem,
    PullPolicy,
    RestartMode,
    RestartPolicy,
    SpecError,
    Strategy,
    UpdateOrder,
    UpdatePolicy,
    label_key_problem,
    label_value_problem,
    quote_short,
)
from .resources import KiB, MiB, TiB, format_memory, json_kind
from .spec_check import MISSING, Checker
from .container_options import check as check_options
from .files import check as check_files
from .files import inline_sources
from .files import conflicts as file_conflicts
from .volumes import check as check_volumes

__all__ = [
    "DEFAULT_BACKOFF_S",
    "DEFAULT_CPU_MILLIS",
    "DEFAULT_HEALTH_INTERVAL_S",
    "DEFAULT_HEALTH_RETRIES",
    "DEFAULT_HEALTH_START_PERIOD_S",
    "DEFAULT_HEALTH_TIMEOUT_S",
    "DEFAULT_MAX_BACKOFF_S",
    "DEFAULT_MEMORY_BYTES",
    "DEFAULT_PIDS_LIMIT",
    "DEFAULT_STOP_GRACE_S",
    "DEFAULT_STOP_SIGNAL",
    "ENV_NAME_RE",
    "FIELDS",
    "HEALTH_FIELDS",
    "IMAGE_RE",
    "LABEL_KEY_RE",
    "LABEL_VALUE_RE",
    "MAX_ARG_CHARS",
    "MAX_BACKOFF_S",
    "MAX_COMMAND_ARGS",
    "MAX_CONSTRAINTS",
    "MAX_CONSTRAINT_CHARS",
    "MAX_CONSTRAINT_VALUES",
    "MAX_CPU_MILLIS",
    "MAX_DEVICES",
    "MAX_ENV_ENTRIES",
    "MAX_ENV_NAME_CHARS",
    "MAX_ENV_VALUE_CHARS",
    "MAX_HEALTH_DURATION_S",
    "MAX_HEALTH_RETRIES",
    "MAX_IMAGE_CHARS",
    "MAX_LABEL_KEY_CHARS",
    "MAX_LABEL_VALUE_CHARS",
    "MAX_MEMORY_BYTES",
    "MAX_NAME_CHARS",
    "MAX_PIDS_LIMIT",
    "MAX_PROBLEMS",
    "MAX_REPLICAS",
    "MAX_RESTART_NONCE_CHARS",
    "MAX_RESTART_ATTEMPTS",
    "MAX_SPEC_BYTES",
    "MAX_STOP_GRACE_S",
    "MAX_USER_CHARS",
    "MIN_BACKOFF_S",
    "MIN_HEALTH_INTERVAL_S",
    "MIN_HEALTH_TIMEOUT_S",
    "MIN_MEMORY_BYTES",
    "NAME_RE",
    "NOT_GLOBAL_FIELDS",
    "PLANNED_FIELDS",
    "RESTART_FIELDS",
    "SECURITY_FIELDS",
    "STOP_SIGNALS",
    "UPDATE_FIELDS",
    "Constraint",
    "HealthCheck",
    "JobSpec",
    "KiB",
    "MiB",
    "ImageSource",
    "Mode",
    "Op",
    "Problem",
    "PullPolicy",
    "RestartMode",
    "RestartPolicy",
    "SpecError",
    "Strategy",
    "TiB",
    "UpdateOrder",
    "UpdatePolicy",
    "from_json",
    "label_key_problem",
    "label_value_problem",
    "load_toml",
    "validate",
]


# ---- entry points --------------------------------------------------------------

def load_toml(text: str, read_beside: Callable[[str], str] | None = None) -> JobSpec:
    """Parse and validate a TOML job file; a syntax error is a SpecError at path "".
    `read_beside` reads the files its `[files.X] source` names (the CLI's,
    node.cli.beside; auction.files.inline_sources); None: a source is an error."""
    _check_text_size(text)
    import tomllib  # here, not atop: an agent imports this module at every start and parses TOML rarely

    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise SpecError([Problem("", f"TOML syntax error: {e}")]) from None
    except ValueError as e:     # an integer of thousands of digits
        raise SpecError([Problem("", f"TOML value error: {quote_short(str(e))}")]) from None
    except RecursionError:
        raise SpecError([Problem("", "TOML is nested too deeply")]) from None
    if read_beside is not None and (unread := inline_sources(raw, read_beside)):
        raise SpecError([Problem(path, message) for path, message in unread])
    return validate(raw)


def from_json(obj: Any) -> JobSpec:
    """Validate a decoded JSON object, or decode JSON text/bytes first."""
    if isinstance(obj, (bytes, bytearray)):
        if len(obj) > MAX_SPEC_BYTES:
            raise SpecError([_too_big(len(obj))])
        try:
            obj = obj.decode("utf-8")
        except UnicodeDecodeError:
            raise SpecError([Problem("", "JSON body is not valid UTF-8")]) from None
    if isinstance(obj, str):
        _check_text_size(obj)
        try:
            obj = json.loads(obj)
        except json.JSONDecodeError as e:
            raise SpecError([Problem("", f"JSON syntax error: {e}")]) from None
        except ValueError as e:     # an integer of thousands of digits
            raise SpecError([Problem("", f"JSON value error: {quote_short(str(e))}")]) from None
        except RecursionError:
            raise SpecError([Problem("", "JSON is nested too deeply")]) from None
    return validate(obj)


def validate(raw: Any) -> JobSpec:
    """Check `raw` against the schema; return a JobSpec or raise SpecError with
    every problem found.  Raises nothing else, whatever `raw` holds."""
    if not isinstance(raw, dict):
        raise SpecError([Problem("", f"a job spec must be a table (JSON object), got {json_kind(raw)}")])
    try:
        size = len(_canonical_json_lenient(raw))
    except (ValueError, TypeError, RecursionError) as e:
        # Circular, nested too deeply, lone surrogates, integers of thousands of digits.
        raise SpecError([Problem("", f"cannot be encoded as JSON ({quote_short(str(e))})")]) from None
    if size > MAX_SPEC_BYTES:
        raise SpecError([_too_big(size)])

    c = Checker()
    c.unknown_fields(raw, FIELDS, "")
    mode = c.choice(raw.get("mode", MISSING), "mode", Mode, Mode.REPLICATED) or Mode.REPLICATED
    if mode is Mode.GLOBAL:
        for field in NOT_GLOBAL_FIELDS:
            if field in raw:
                c.add(field, "a global job runs one replica on every node that may run it; "
                             f"{field} is for replicated jobs (remove it, or drop mode = \"global\")")
    spec = JobSpec(
        name=c.name(raw.get("name", MISSING)),
        image=c.image(raw.get("image", MISSING)),
        command=c.command(raw.get("command", MISSING), "command"),
        entrypoint=c.command(raw.get("entrypoint", MISSING), "entrypoint", "ENTRYPOINT"),
        env=c.env(raw.get("env", MISSING)),
        cpu_millis=c.cpu(raw.get("cpu", MISSING)),
        memory_bytes=c.memory(raw.get("memory", MISSING)),
        replicas=c.integer(raw.get("replicas", MISSING), "replicas", 0, MAX_REPLICAS, 1),
        constraints=c.constraints(raw.get("constraints", MISSING)),
        spread=c.spread(raw.get("spread", MISSING)),
        max_per_node=c.integer(raw.get("max_per_node", MISSING), "max_per_node", 1, MAX_REPLICAS, None),
        restart=c.restart(raw.get("restart", MISSING)),
        health=c.health(raw.get("health", MISSING)),
        strategy=c.choice(raw.get("strategy", MISSING), "strategy", Strategy, Strategy.BINPACK)
        or Strategy.BINPACK,
        cap_add=c.caps(raw.get("cap_add", MISSING), "cap_add", allow_all=False),
        cap_drop=c.caps(raw.get("cap_drop", MISSING), "cap_drop", allow_all=True),
        user=c.user(raw.get("user", MISSING)),
        read_only=c.boolean(raw.get("read_only", MISSING), "read_only", False),
        devices=c.devices(raw.get("devices", MISSING)),
        pids_limit=c.pids_limit(raw.get("pids_limit", MISSING)),
        network=(network := c.network(raw.get("network", MISSING))),
        ports=c.ports(raw.get("ports", MISSING), network),
        pull=c.choice(raw.get("pull", MISSING), "pull", PullPolicy, PullPolicy.MISSING) or PullPolicy.MISSING,
        source=c.choice(raw.get("source", MISSING), "source", ImageSource, ImageSource.REGISTRY)
        or ImageSource.REGISTRY,
        restart_nonce=None if (nonce := raw.get("restart_nonce", MISSING)) is MISSING
        else c.string(nonce, "restart_nonce", MAX_RESTART_NONCE_CHARS),
        update=c.update(raw.get("update", MISSING)),
        stop_signal=c.stop_signal(raw.get("stop_signal", MISSING)),
        stop_grace_s=c.seconds(raw.get("stop_grace_s", MISSING), "stop_grace_s", 0.0, MAX_STOP_GRACE_S,
                               DEFAULT_STOP_GRACE_S),
        rebalance=c.boolean(raw.get("rebalance", MISSING), "rebalance", True),
        max_disruption=c.integer(raw.get("max_disruption", MISSING), "max_disruption", 1, MAX_REPLICAS, 1),
        mode=mode,
        volumes=() if (volumes := raw.get("volumes", MISSING)) is MISSING else check_volumes(c, volumes),
        files=() if (files := raw.get("files", MISSING)) is MISSING else check_files(c, files),
        options=check_options(c, raw, MISSING),
        priority=c.integer(raw.get("priority", MISSING), "priority", MIN_PRIORITY, MAX_PRIORITY, DEFAULT_PRIORITY),
    )
    for where, message in file_conflicts(spec.files, {v.target: v.name for v in spec.volumes}):
        c.add(where, message)
    if spec.network == "host":
        if spec.options.hostname is not None:
            c.add("hostname", 'with network = "host" a container has the node\'s own host name')
        for key, _ in spec.options.sysctls:
            if key.startswith("net."):
                c.add(c.key_path("sysctls", key), 'with network = "host" the network settings are the node\'s own')
    if mode is Mode.GLOBAL:
        spec = dataclasses.replace(spec, replicas=0, max_per_node=1)
    c.cap_conflicts(spec.cap_add, spec.cap_drop)
    if spec.source is ImageSource.PEERS and spec.pull is not PullPolicy.MISSING:
        # always asks the registry for the tag's current image; never fetches nothing.
        c.add("source", f'"peers" needs pull = "missing" (pull = "{spec.pull.value}" '
                        f'{"asks the registry every time" if spec.pull is PullPolicy.ALWAYS else "fetches nothing"})')
    if c.problems:
        raise SpecError(c.report())
    size = len(spec.canonical_json())
    if size > MAX_SPEC_BYTES:
        raise SpecError([_too_big(size)])
    return spec


# ---- size checks ---------------------------------------------------------------

def _canonical_json_lenient(raw: Any) -> bytes:
    # TOML dates and times are not JSON: count them as their text.
    return json.dumps(raw, sort_keys=False, separators=(",", ":"), ensure_ascii=False,
                      default=str).encode("utf-8")


def _check_text_size(text: str) -> None:
    if not isinstance(text, str):
        raise TypeError(f"expected str, got {type(text).__name__}")
    if len(text) > MAX_SPEC_BYTES or len(text.encode("utf-8", "replace")) > MAX_SPEC_BYTES:
        raise SpecError([_too_big(len(text.encode("utf-8", "replace")))])


def _too_big(size: int) -> Problem:
    return Problem("", f"the spec is {size} bytes; the limit is {MAX_SPEC_BYTES} ({format_memory(MAX_SPEC_BYTES)})")
