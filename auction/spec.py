"""Job specs: one flat schema, validated all at once, with a canonical form.

How this works: a job spec arrives as a TOML file (`load_toml`) or as JSON
over HTTP (`from_json`); both become a plain dict that `validate` checks
against one schema.  `validate` never stops at the first mistake: it walks
every field, records each problem with its path (`replicas`, `env.FOO`,
`restart.policy`, `constraints[1]`, `command[3]`), and raises one `SpecError`
listing all of them (the API returns them as HTTP 400, the CLI prints them).
Unknown fields are errors, with the closest known name suggested ("unknown
field 'replica' (did you mean 'replicas'?)"); fields planned for later
(`update`, `priority`) are refused the same way until they exist.

A valid spec becomes a frozen `JobSpec` holding exact, typed values
(`cpu_millis`, `memory_bytes`, parsed `Constraint`s, `RestartPolicy`,
`HealthCheck`).  `to_dict()` is its canonical form — defaults filled in,
units normalised, absent optional fields omitted — and `validate(to_dict())`
gives back an equal `JobSpec`.  `spec_hash()` is the SHA-256 of that form as
compact, key-sorted JSON, so every agent computes the same hash for the same
job; `container_hash()` covers only what shapes a container (image, command,
env, limits, health), so scaling or moving a job does not change it.

Every input is bounded (the `MAX_*` constants), starting with the encoded
size of the whole spec, so a hostile spec costs little to reject.  The
rules of each field are in docs/jobspec.md.  Pure: no I/O, no clock.
"""

from __future__ import annotations

import difflib
import enum
import hashlib
import json
import math
import re
import shlex
import tomllib
from dataclasses import dataclass
from typing import Any

from .resources import (
    KiB, MiB, TiB, Resources, UnitError, canonical_memory, format_cpu, format_memory, json_kind,
    parse_cpu, parse_memory,
)

# ---- bounds --------------------------------------------------------------------

MAX_SPEC_BYTES = 64 * KiB           # the spec as compact JSON (and a TOML file's text)
MAX_NAME_CHARS = 63                 # a DNS label
MAX_IMAGE_CHARS = 255
MAX_COMMAND_ARGS = 256
MAX_ARG_CHARS = 4096
MAX_ENV_ENTRIES = 256
MAX_ENV_NAME_CHARS = 256
MAX_ENV_VALUE_CHARS = 8192
DEFAULT_CPU_MILLIS = 100            # 0.1 core
MAX_CPU_MILLIS = 1024 * 1000        # 1024 cores
DEFAULT_MEMORY_BYTES = 64 * MiB
# Docker refuses a memory limit under 6 MiB ("Minimum memory limit allowed is
# 6MB", dockerd 20.10 on this machine), so a smaller spec could never start.
MIN_MEMORY_BYTES = 6 * MiB
MAX_MEMORY_BYTES = 64 * TiB
MAX_REPLICAS = 1000
MAX_CONSTRAINTS = 64
MAX_CONSTRAINT_CHARS = 1024
MAX_CONSTRAINT_VALUES = 64
MAX_LABEL_KEY_CHARS = 63           # as node labels (node/status.py)
MAX_LABEL_VALUE_CHARS = 63
MAX_RESTART_ATTEMPTS = 10_000
DEFAULT_BACKOFF_S = 1.0
DEFAULT_MAX_BACKOFF_S = 60.0
MIN_BACKOFF_S = 0.1
MAX_BACKOFF_S = 3600.0
DEFAULT_HEALTH_INTERVAL_S = 10.0
DEFAULT_HEALTH_TIMEOUT_S = 5.0
DEFAULT_HEALTH_RETRIES = 3
DEFAULT_HEALTH_START_PERIOD_S = 0.0
MIN_HEALTH_INTERVAL_S = 1.0
MIN_HEALTH_TIMEOUT_S = 0.1
MAX_HEALTH_DURATION_S = 3600.0
MAX_HEALTH_RETRIES = 100
MAX_PROBLEMS = 100                  # reported at once; the rest are counted
_SHOW_CHARS = 64                    # user text quoted in a message is cut to this

NAME_RE = re.compile(r"[a-z0-9]([a-z0-9-]*[a-z0-9])?", re.ASCII)
# Registry host, path, tag and digest characters; Docker checks the rest.
IMAGE_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._/:@-]*", re.ASCII)
ENV_NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*", re.ASCII)
# Node labels (`--label k=v`) and constraints share these.
LABEL_KEY_RE = re.compile(r"[A-Za-z0-9]([A-Za-z0-9._/-]*[A-Za-z0-9])?", re.ASCII)
LABEL_VALUE_RE = re.compile(r"[A-Za-z0-9._:/@+-]+", re.ASCII)
_PLAIN_KEY_RE = re.compile(r"[A-Za-z0-9_-]+", re.ASCII)   # written bare in a problem path

FIELDS = ("name", "image", "command", "env", "cpu", "memory", "replicas", "constraints",
          "spread", "max_per_node", "restart", "health", "strategy")
RESTART_FIELDS = ("policy", "max_attempts", "backoff_s", "max_backoff_s")
HEALTH_FIELDS = ("command", "interval_s", "timeout_s", "retries", "start_period_s", "image")
# Refused until implemented (issue 3), with a message saying so.
PLANNED_FIELDS = ("update", "priority")


# ---- errors --------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Problem:
    path: str       # "" for the spec as a whole
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}" if self.path else self.message

    def to_dict(self) -> dict[str, str]:
        return {"path": self.path, "message": self.message}


class SpecError(ValueError):
    """Every problem found in a spec, each with its field path."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = list(problems)
        n = len(self.problems)
        lines = "".join(f"\n  {p}" for p in self.problems)
        super().__init__(f"invalid job spec ({n} problem{'s' if n != 1 else ''}):{lines}")

    def to_json(self) -> dict[str, Any]:
        """The body of an HTTP 400 answer."""
        return {"error": "invalid job spec", "problems": [p.to_dict() for p in self.problems]}


# ---- value types ---------------------------------------------------------------

class Op(enum.Enum):
    EQ = "=="
    NE = "!="
    IN = "in"


class Strategy(enum.Enum):
    BINPACK = "binpack"     # fill the busiest node that fits
    SPREAD = "spread"       # prefer the emptiest node


class RestartMode(enum.Enum):
    ALWAYS = "always"
    ON_FAILURE = "on-failure"
    NEVER = "never"


@dataclass(frozen=True, slots=True)
class Constraint:
    """A hard placement rule on one node label: `rack == a`, `zone != b`, `arch in [x, y]`."""

    label: str
    op: Op
    values: tuple[str, ...]

    def matches(self, labels: dict[str, str]) -> bool:
        """Does a node with these labels satisfy the rule?  A node without the label
        satisfies only `!=` (it is not equal to anything), as in Nomad."""
        value = labels.get(self.label)
        if self.op is Op.EQ:
            return value == self.values[0]
        if self.op is Op.NE:
            return value != self.values[0]
        return value in self.values

    def __str__(self) -> str:
        if self.op is Op.IN:
            return f"{self.label} in [{', '.join(self.values)}]"
        return f"{self.label} {self.op.value} {self.values[0]}"

    @classmethod
    def parse(cls, text: str) -> Constraint:
        """Parse "LABEL == VALUE", "LABEL != VALUE", "LABEL in [a, b]" or "LABEL in a,b";
        raise ValueError saying what is wrong."""
        if len(text) > MAX_CONSTRAINT_CHARS:
            raise ValueError(f"longer than {MAX_CONSTRAINT_CHARS} characters")
        text = text.strip()
        if m := re.fullmatch(r"(\S+?)\s*(==|!=)\s*(.*)", text, re.S):
            label, op, values = m.group(1), Op(m.group(2)), (m.group(3).strip(),)
        elif m := re.fullmatch(r"(\S+)\s+in(?:\s+|(?=\[))(.*)", text, re.S):
            label, op, rest = m.group(1), Op.IN, m.group(2).strip()
            if rest.startswith("["):
                if not rest.endswith("]"):
                    raise ValueError("a list opened with '[' must end with ']'")
                rest = rest[1:-1]
            values = tuple(v.strip() for v in rest.split(","))
            if values == ("",):
                raise ValueError("'in' needs at least one value")
            if len(values) > MAX_CONSTRAINT_VALUES:
                raise ValueError(f"'in' takes at most {MAX_CONSTRAINT_VALUES} values")
        elif re.fullmatch(r"[A-Za-z0-9._/-]+\s*=\s*[^=\s].*", text, re.S):
            raise ValueError(f"{_show(text)} uses '='; write '==' for equality")
        else:
            raise ValueError(f"{_show(text)} is not 'LABEL == VALUE', 'LABEL != VALUE' "
                             "or 'LABEL in [A, B]'")
        if problem := label_key_problem(label):
            raise ValueError(f"label {problem}")
        for value in values:
            if problem := label_value_problem(value):
                raise ValueError(f"value {problem}")
        return cls(label, op, values)


def label_key_problem(key: str) -> str | None:
    """Why `key` is not a valid node label name, or None."""
    if len(key) > MAX_LABEL_KEY_CHARS:
        return f"{_show(key)} is longer than {MAX_LABEL_KEY_CHARS} characters"
    if not LABEL_KEY_RE.fullmatch(key):
        return (f"{_show(key)} must be letters, digits, '.', '_', '/' and '-', "
                "starting and ending with a letter or digit")
    return None


def label_value_problem(value: str) -> str | None:
    """Why `value` is not a valid node label value, or None."""
    if value == "":
        return "is empty"
    if len(value) > MAX_LABEL_VALUE_CHARS:
        return f"{_show(value)} is longer than {MAX_LABEL_VALUE_CHARS} characters"
    if not LABEL_VALUE_RE.fullmatch(value):
        return f"{_show(value)} may contain only letters, digits and . _ : / @ + -"
    return None


@dataclass(frozen=True, slots=True)
class RestartPolicy:
    """When the agent restarts a slot's container that stopped (or turned unhealthy)."""

    policy: RestartMode = RestartMode.ALWAYS
    max_attempts: int | None = None     # on-failure only; None = no limit
    backoff_s: float = DEFAULT_BACKOFF_S
    max_backoff_s: float = DEFAULT_MAX_BACKOFF_S

    def should_restart(self, *, failed: bool, restarts: int) -> bool:
        """After the container stopped (`failed`: non-zero exit or unhealthy), having
        already been restarted `restarts` times on this node, start it again?"""
        if self.policy is RestartMode.ALWAYS:
            return True
        if self.policy is RestartMode.NEVER or not failed:
            return False
        return self.max_attempts is None or restarts < self.max_attempts

    def backoff_delay_s(self, restarts: int) -> float:
        """Wait before restart number `restarts + 1`: backoff_s doubling, capped."""
        return min(self.backoff_s * 2.0 ** min(max(restarts, 0), 64), self.max_backoff_s)

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"policy": self.policy.value}
        if self.max_attempts is not None:
            d["max_attempts"] = self.max_attempts
        d["backoff_s"] = self.backoff_s
        d["max_backoff_s"] = self.max_backoff_s
        return d


@dataclass(frozen=True, slots=True)
class HealthCheck:
    """An exec probe run inside the container (Docker HEALTHCHECK CMD semantics).
    A spec without one (`health` absent, or `{image = true}`) keeps whatever
    HEALTHCHECK the image defines."""

    command: tuple[str, ...]
    interval_s: float = DEFAULT_HEALTH_INTERVAL_S
    timeout_s: float = DEFAULT_HEALTH_TIMEOUT_S
    retries: int = DEFAULT_HEALTH_RETRIES
    start_period_s: float = DEFAULT_HEALTH_START_PERIOD_S

    def to_dict(self) -> dict[str, Any]:
        return {"command": list(self.command), "interval_s": self.interval_s,
                "timeout_s": self.timeout_s, "retries": self.retries,
                "start_period_s": self.start_period_s}


@dataclass(frozen=True, slots=True)
class JobSpec:
    """A validated job.  Build it with `validate`, `load_toml` or `from_json`."""

    name: str
    image: str
    command: tuple[str, ...] | None = None      # None: the image's CMD
    env: tuple[tuple[str, str], ...] = ()       # sorted by name
    cpu_millis: int = DEFAULT_CPU_MILLIS
    memory_bytes: int = DEFAULT_MEMORY_BYTES
    replicas: int = 1
    constraints: tuple[Constraint, ...] = ()
    spread: str | None = None                   # a label whose values replicas spread over
    max_per_node: int | None = None
    restart: RestartPolicy = RestartPolicy()
    health: HealthCheck | None = None           # None: the image's HEALTHCHECK, if any
    strategy: Strategy = Strategy.BINPACK

    @property
    def env_map(self) -> dict[str, str]:
        return dict(self.env)

    def demand(self) -> Resources:
        """What one replica reserves on a node."""
        return Resources(self.cpu_millis, self.memory_bytes)

    def to_dict(self) -> dict[str, Any]:
        """The canonical form: JSON- and TOML-able; `validate` turns it back into self."""
        d: dict[str, Any] = {"name": self.name, "image": self.image}
        if self.command is not None:
            d["command"] = list(self.command)
        if self.env:
            d["env"] = dict(self.env)
        d["cpu"] = self.cpu_millis / 1000
        d["memory"] = canonical_memory(self.memory_bytes)
        d["replicas"] = self.replicas
        if self.constraints:
            d["constraints"] = [str(c) for c in self.constraints]
        if self.spread is not None:
            d["spread"] = self.spread
        if self.max_per_node is not None:
            d["max_per_node"] = self.max_per_node
        d["restart"] = self.restart.to_dict()
        if self.health is not None:
            d["health"] = self.health.to_dict()
        d["strategy"] = self.strategy.value
        return d

    def canonical_json(self) -> bytes:
        """`to_dict()` as compact, key-sorted UTF-8 JSON: the bytes to store and gossip."""
        return _canonical_json(self.to_dict())

    def spec_hash(self) -> str:
        """SHA-256 (hex) of `canonical_json()`: equal specs hash equal on every agent."""
        return hashlib.sha256(self.canonical_json()).hexdigest()

    def container_hash(self) -> str:
        """SHA-256 (hex) of the fields that shape a container: a change here means
        replacing running containers; a change elsewhere (replicas, placement,
        restart policy) does not."""
        d = self.to_dict()
        shape = {k: d[k] for k in ("image", "command", "env", "cpu", "memory", "health") if k in d}
        return hashlib.sha256(_canonical_json(shape)).hexdigest()


def _canonical_json(obj: Any) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                      allow_nan=False).encode("utf-8")


# ---- entry points --------------------------------------------------------------

def load_toml(text: str) -> JobSpec:
    """Parse and validate a TOML job file; a syntax error is a SpecError at path ""."""
    _check_text_size(text)
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise SpecError([Problem("", f"TOML syntax error: {e}")]) from None
    except ValueError as e:     # an integer of thousands of digits
        raise SpecError([Problem("", f"TOML value error: {_show(str(e))}")]) from None
    except RecursionError:
        raise SpecError([Problem("", "TOML is nested too deeply")]) from None
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
            raise SpecError([Problem("", f"JSON value error: {_show(str(e))}")]) from None
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
        raise SpecError([Problem("", f"cannot be encoded as JSON ({_show(str(e))})")]) from None
    if size > MAX_SPEC_BYTES:
        raise SpecError([_too_big(size)])

    c = _Checker()
    c.unknown_fields(raw, FIELDS, "")
    spec = JobSpec(
        name=c.name(raw.get("name", _MISSING)),
        image=c.image(raw.get("image", _MISSING)),
        command=c.command(raw.get("command", _MISSING), "command"),
        env=c.env(raw.get("env", _MISSING)),
        cpu_millis=c.cpu(raw.get("cpu", _MISSING)),
        memory_bytes=c.memory(raw.get("memory", _MISSING)),
        replicas=c.integer(raw.get("replicas", _MISSING), "replicas", 0, MAX_REPLICAS, 1),
        constraints=c.constraints(raw.get("constraints", _MISSING)),
        spread=c.spread(raw.get("spread", _MISSING)),
        max_per_node=c.integer(raw.get("max_per_node", _MISSING), "max_per_node", 1, MAX_REPLICAS, None),
        restart=c.restart(raw.get("restart", _MISSING)),
        health=c.health(raw.get("health", _MISSING)),
        strategy=c.choice(raw.get("strategy", _MISSING), "strategy", Strategy, Strategy.BINPACK)
        or Strategy.BINPACK,
    )
    if c.problems:
        raise SpecError(c.report())
    size = len(spec.canonical_json())
    if size > MAX_SPEC_BYTES:
        raise SpecError([_too_big(size)])
    return spec


# ---- the checker ---------------------------------------------------------------

class _Missing:
    def __repr__(self) -> str:
        return "<missing>"


_MISSING: Any = _Missing()


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


def _show(text: str) -> str:
    """repr() of user text, cut short so messages stay bounded."""
    if len(text) > _SHOW_CHARS:
        return repr(text[:_SHOW_CHARS]) + "..."
    return repr(text)


def _key_path(prefix: str, key: str) -> str:
    """`env.FOO`; a key that is empty or holds other characters is quoted: `env["a b"]`."""
    key = key if len(key) <= _SHOW_CHARS else key[:_SHOW_CHARS] + "..."
    if not _PLAIN_KEY_RE.fullmatch(key):
        return f"{prefix}[{json.dumps(key)}]"
    return f"{prefix}.{key}" if prefix else key


def _closest(word: str, known: tuple[str, ...]) -> str | None:
    close = difflib.get_close_matches(word[:_SHOW_CHARS], known, n=1, cutoff=0.6)
    return close[0] if close else None


class _Checker:
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

    # -- shapes --

    def unknown_fields(self, table: dict, known: tuple[str, ...], prefix: str) -> None:
        for key in table:
            if not isinstance(key, str):
                self.add(prefix, f"field names must be strings, got {json_kind(key)}")
            elif key in PLANNED_FIELDS and not prefix:
                self.add(key, f"unknown field {key!r} (planned for a later version; not accepted yet)")
            elif key not in known:
                guess = _closest(key, known)
                hint = f" (did you mean {guess!r}?)" if guess else ""
                self.add(_key_path(prefix, key), f"unknown field {_show(key)}{hint}")

    def table(self, value: Any, path: str) -> dict | None:
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

    def integer(self, value: Any, path: str, lo: int, hi: int, default: int | None) -> int | None:
        if value is _MISSING:
            return default
        if isinstance(value, bool) or not isinstance(value, int):
            self.add(path, f"must be an integer, got {json_kind(value)}")
            return default
        if not lo <= value <= hi:
            self.add(path, f"must be between {lo} and {hi} (got {value if abs(value) < 10**18 else 'a huge number'})")
            return default
        return value

    def seconds(self, value: Any, path: str, lo: float, hi: float, default: float) -> float:
        if value is _MISSING:
            return default
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            self.add(path, f"must be a number of seconds, got {json_kind(value)}")
            return default
        if isinstance(value, int) and abs(value) > 10**18:
            self.add(path, f"must be between {lo:g} and {hi:g} seconds (got a huge number)")
            return default
        value = float(value)
        if not (math.isfinite(value) and lo <= value <= hi):
            self.add(path, f"must be between {lo:g} and {hi:g} seconds (got {value:g})")
            return default
        return value

    def choice(self, value: Any, path: str, enum_type: type[enum.Enum], default: Any) -> Any:
        if value is _MISSING:
            return default
        names = tuple(str(m.value) for m in enum_type)
        if isinstance(value, str) and value in names:
            return enum_type(value)
        if isinstance(value, str):
            guess = _closest(value, names)
            got = _show(value) + (f"; did you mean {guess!r}?" if guess else "")
        else:
            got = json_kind(value)
        self.add(path, f"must be one of {', '.join(names)} (got {got})")
        return None

    # -- fields --

    def name(self, value: Any) -> str:
        if value is _MISSING:
            self.add("name", "required")
        elif (v := self.string(value, "name", MAX_NAME_CHARS)) is not None:
            if NAME_RE.fullmatch(v):
                return v
            self.add("name", f"{_show(v)} must be lowercase letters, digits and '-', starting and "
                             "ending with a letter or digit (like 'web-1')")
        return "invalid"

    def image(self, value: Any) -> str:
        if value is _MISSING:
            self.add("image", "required")
        elif (v := self.string(value, "image", MAX_IMAGE_CHARS)) is not None:
            if IMAGE_RE.fullmatch(v):
                return v
            self.add("image", "must not be empty" if v == "" else
                     f"{_show(v)} is not an image reference like 'busybox:1.36' or "
                     "'registry.local:5000/team/app' (no spaces)")
        return "invalid"

    def command(self, value: Any, path: str) -> tuple[str, ...] | None:
        if value is _MISSING:
            return None
        if isinstance(value, str):
            if len(value) > MAX_ARG_CHARS * 4:
                self.add(path, f"must be at most {MAX_ARG_CHARS * 4} characters")
                return None
            try:
                value = shlex.split(value)
            except ValueError as e:
                self.add(path, f"cannot be split into arguments like a shell would: {e}")
                return None
            if not value:
                self.add(path, "is empty (omit it to use the image's CMD)")
                return None
            return self.args(value, path, split=True)
        if isinstance(value, list):
            if not value:
                self.add(path, "is empty (omit it to use the image's CMD)")
                return None
            return self.args(value, path, split=False)
        self.add(path, f"must be a list of strings or a string, got {json_kind(value)}")
        return None

    def args(self, args: list, path: str, split: bool) -> tuple[str, ...] | None:
        if len(args) > MAX_COMMAND_ARGS:
            self.add(path, f"must have at most {MAX_COMMAND_ARGS} arguments (got {len(args)})")
            return None
        before = len(self.problems) + self.dropped
        out = []
        for i, arg in enumerate(args):
            # A string was split by us: point at the whole field, not a made-up index.
            where = path if split else f"{path}[{i}]"
            out.append(self.string(arg, where, MAX_ARG_CHARS))
        if len(self.problems) + self.dropped != before:
            return None
        return tuple(out)

    def env(self, value: Any) -> tuple[tuple[str, str], ...]:
        if value is _MISSING or (table := self.table(value, "env")) is None:
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
                self.add(path, f"{_show(key)} is not a variable name (letters, digits and '_', "
                               "not starting with a digit)")
            if isinstance(val, (int, float)) and not isinstance(val, bool):
                self.add(path, f"must be a string, got {json_kind(val)} (quote it: \"{val}\")")
            elif (v := self.string(val, path, MAX_ENV_VALUE_CHARS)) is not None:
                out[key] = v
        return tuple(sorted(out.items()))

    def cpu(self, value: Any) -> int:
        if value is _MISSING:
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
        if value is _MISSING:
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
        if value is _MISSING:
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
        if value is _MISSING:
            return None
        if not isinstance(value, str):
            self.add("spread", f"must be a label name like \"rack\", got {json_kind(value)}")
        elif problem := label_key_problem(value):
            self.add("spread", problem)
        else:
            return value
        return None

    def restart(self, value: Any) -> RestartPolicy:
        if value is _MISSING or (table := self.table(value, "restart")) is None:
            return RestartPolicy()
        self.unknown_fields(table, RESTART_FIELDS, "restart")
        policy = self.choice(table.get("policy", _MISSING), "restart.policy", RestartMode,
                             RestartMode.ALWAYS)
        attempts = self.integer(table.get("max_attempts", _MISSING), "restart.max_attempts",
                                0, MAX_RESTART_ATTEMPTS, None)
        # (An invalid policy is already reported; do not pile a second problem on it.)
        if attempts is not None and policy not in (None, RestartMode.ON_FAILURE):
            self.add("restart.max_attempts", f"applies only to policy 'on-failure' (policy is "
                                             f"{policy.value!r})")
        backoff_s = self.seconds(table.get("backoff_s", _MISSING), "restart.backoff_s",
                                 MIN_BACKOFF_S, MAX_BACKOFF_S, DEFAULT_BACKOFF_S)
        max_backoff_s = self.seconds(table.get("max_backoff_s", _MISSING), "restart.max_backoff_s",
                                     MIN_BACKOFF_S, MAX_BACKOFF_S, DEFAULT_MAX_BACKOFF_S)
        if backoff_s > max_backoff_s:
            self.add("restart.backoff_s", f"must not exceed max_backoff_s ({backoff_s:g} > "
                                          f"{max_backoff_s:g})")
        return RestartPolicy(policy or RestartMode.ALWAYS, attempts, backoff_s, max_backoff_s)

    def health(self, value: Any) -> HealthCheck | None:
        if value is _MISSING or (table := self.table(value, "health")) is None:
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
        command = self.command(table.get("command", _MISSING), "health.command")
        return HealthCheck(
            command=command or ("true",),
            interval_s=self.seconds(table.get("interval_s", _MISSING), "health.interval_s",
                                    MIN_HEALTH_INTERVAL_S, MAX_HEALTH_DURATION_S,
                                    DEFAULT_HEALTH_INTERVAL_S),
            timeout_s=self.seconds(table.get("timeout_s", _MISSING), "health.timeout_s",
                                   MIN_HEALTH_TIMEOUT_S, MAX_HEALTH_DURATION_S,
                                   DEFAULT_HEALTH_TIMEOUT_S),
            retries=self.integer(table.get("retries", _MISSING), "health.retries",
                                 1, MAX_HEALTH_RETRIES, DEFAULT_HEALTH_RETRIES),
            start_period_s=self.seconds(table.get("start_period_s", _MISSING),
                                        "health.start_period_s", 0.0, MAX_HEALTH_DURATION_S,
                                        DEFAULT_HEALTH_START_PERIOD_S),
        )

