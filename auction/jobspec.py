"""The job spec type: a validated job, its canonical form and its hashes.

How this works: a `JobSpec` holds exact, typed values (`cpu_millis`,
`memory_bytes`, parsed `Constraint`s, a `RestartPolicy`, a `HealthCheck`);
only auction.spec's `validate` (and `load_toml`, `from_json`) builds one from
user input.  `to_dict()` is its canonical form (defaults filled in, units
normalised, absent optional fields omitted) and `validate(to_dict())` gives
back an equal `JobSpec`.  `spec_hash()` is the SHA-256 of that form as
compact, key-sorted JSON, so every agent computes the same hash for the same
job; `container_hash()` covers only what shapes a container (image, command,
env, limits, health, the container-security fields), so scaling or moving a
job does not change it.  Nor do the rollout settings (`update`) and the
stop settings (`stop_signal`, `stop_grace_s`): changing them replaces no
container (the stop settings apply to containers started afterwards).

The container-security fields (`cap_add`, `cap_drop`, `user`, `read_only`,
`devices`, `pids_limit`) are left out of the canonical form while they hold
their defaults, so a spec that does not use them has the canonical form, and
the hashes, it had before they existed: agents of both versions agree on its
hash during a rolling upgrade, and running containers are not replaced.
`update`, `stop_signal`, `stop_grace_s`, `rebalance` and `max_disruption`
follow the same rule.

Also here: the bounds every input is held to (`MAX_*`), the field names of
the schema, and `Problem`/`SpecError`, the errors validation reports.
Import these from auction.spec, the public face of job specs.  Pure: no I/O.
"""

from __future__ import annotations

import enum
import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .ports import DEFAULT_NETWORK, PortSpec
from .resources import KiB, MiB, Resources, TiB, canonical_memory
from .container_options import FIELDS as OPTION_FIELDS
from .container_options import ContainerOptions
from .files import FileSpec
from .volumes import VolumeSpec

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
# A binpack job this small is placed by one coordinator (auction.coordination):
# per-slot coordinators' rounds, open at once, each packed within its own
# draw of a large cluster's members.  Bigger ones share the work: a
# coordinator per chunk of this many slots.
ONE_ROUND_BINPACK_MAX = 32
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
# Container security (docs/jobspec.md, "Container security").  Every replica
# gets a pids limit: a fork bomb (or a thread leak) then stops at this many
# processes and threads inside its own container instead of exhausting the
# host's PID space, which would take the agent and dockerd down with it.
# 1024 is far above what a service typically runs (threads count: a JVM with
# a few hundred threads fits); Docker, Nomad and Kubernetes default to no
# limit, so a job that needs more says so, up to what its node allows.
DEFAULT_PIDS_LIMIT = 1024
MAX_PIDS_LIMIT = 4_194_304          # the kernel's PID_MAX_LIMIT on 64-bit
MAX_USER_CHARS = 64
MAX_DEVICES = 64
MAX_DEVICE_PATH_CHARS = 255
DEVICE_PERMISSIONS = "rwm"          # read, write, mknod (cgroup device rules)
# Rolling updates (`[update]`, auction.rollout); defaults as Nomad's update stanza.
DEFAULT_MAX_PARALLEL = 1
DEFAULT_MIN_HEALTHY_S = 10.0
DEFAULT_HEALTHY_DEADLINE_S = 300.0
DEFAULT_PROGRESS_DEADLINE_S = 600.0
MAX_UPDATE_DURATION_S = 86400.0     # a day: any longer is a mistake, not a plan
# Stopping a replica: the signal first, SIGKILL after the grace (Docker's stop).
# No signal named ("") is Docker's own rule: the image's STOPSIGNAL, else
# SIGTERM; naming one here would override an image that needs another.
DEFAULT_STOP_SIGNAL = ""
DEFAULT_STOP_GRACE_S = 5.0
MAX_STOP_GRACE_S = 600.0
# The signals a container may be asked to stop with (Docker accepts these names).
STOP_SIGNALS = ("SIGTERM", "SIGINT", "SIGQUIT", "SIGHUP", "SIGUSR1", "SIGUSR2", "SIGWINCH", "SIGKILL")
MAX_PROBLEMS = 100                  # reported at once; the rest are counted
SHOW_CHARS = 64                    # user text quoted in a message is cut to this

NAME_RE = re.compile(r"[a-z0-9]([a-z0-9-]*[a-z0-9])?", re.ASCII)
# Registry host, path, tag and digest characters; Docker checks the rest.
IMAGE_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._/:@-]*", re.ASCII)
ENV_NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*", re.ASCII)
# Node labels (`--label k=v`) and constraints share these.
LABEL_KEY_RE = re.compile(r"[A-Za-z0-9]([A-Za-z0-9._/-]*[A-Za-z0-9])?", re.ASCII)
LABEL_VALUE_RE = re.compile(r"[A-Za-z0-9._:/@+-]+", re.ASCII)
# Docker's `--user`: a name or uid, optionally with `:group` or `:gid`.
USER_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*(:[A-Za-z0-9_][A-Za-z0-9_.-]*)?", re.ASCII)
# A device path: absolute, plain path characters (':' separates the parts).
DEVICE_PATH_RE = re.compile(r"(/[A-Za-z0-9_.+-]+)+", re.ASCII)

FIELDS = ("name", "image", "command", "env", "cpu", "memory", "replicas", "constraints",
          "spread", "max_per_node", "restart", "health", "strategy",
          "cap_add", "cap_drop", "user", "read_only", "devices", "pids_limit",
          "network", "ports", "pull", "source", "restart_nonce", "update", "stop_signal",
          "stop_grace_s", "rebalance", "max_disruption", "mode", "volumes", "entrypoint", "files",
          "priority", *OPTION_FIELDS)
# `shoal job restart` sets a new restart_nonce: in the canonical form and the
# container hash only when set, so it replaces every replica (paced as any
# container change) and a spec without one keeps its hashes.
MAX_RESTART_NONCE_CHARS = 64
# Shape the container; in the canonical form only when not at their defaults.
SECURITY_FIELDS = ("cap_add", "cap_drop", "user", "read_only", "devices", "pids_limit")
RESTART_FIELDS = ("policy", "max_attempts", "backoff_s", "max_backoff_s")
HEALTH_FIELDS = ("command", "interval_s", "timeout_s", "retries", "start_period_s", "image")
UPDATE_FIELDS = ("max_parallel", "min_healthy_s", "healthy_deadline_s", "progress_deadline_s", "order",
                 "canary", "auto_promote", "auto_revert")
# Refused until implemented, with a message saying so (none now).
PLANNED_FIELDS: tuple[str, ...] = ()
# Priorities (auction.preemption): 1 to 100, as Nomad's; a global job preempts
# replicas at least PREEMPT_DELTA lower on its node.
DEFAULT_PRIORITY = 50
MIN_PRIORITY, MAX_PRIORITY = 1, 100


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
    SPREAD = "spread"       # fewest replicas of the job per node first, then the emptiest node


class Mode(enum.Enum):
    """How many replicas a job runs (docs/jobspec.md, auction.global_jobs)."""
    REPLICATED = "replicated"   # `replicas` of them, placed by auctions
    GLOBAL = "global"           # one on every node that may run it (Swarm's global, Nomad's system jobs)


# Fields a global job may not set: its replicas follow the nodes, one each.
NOT_GLOBAL_FIELDS = ("replicas", "max_per_node", "spread", "strategy", "rebalance", "max_disruption")


class PullPolicy(enum.Enum):
    """When a node pulls the job's image from its registry (docs/jobspec.md)."""
    MISSING = "missing"     # only when the node lacks it (a node that has it is preferred)
    ALWAYS = "always"       # before every container is created (a moved tag runs the new image)
    NEVER = "never"         # never: only nodes that have it bid


class ImageSource(enum.Enum):
    """Where a node that lacks the job's image asks first (docs/jobspec.md)."""
    REGISTRY = "registry"   # pull from the registry; a peer that has it if the pull fails
    PEERS = "peers"         # a peer that has it; the registry if no peer can give it


class UpdateOrder(enum.Enum):
    START_FIRST = "start-first"     # the new container runs before the old one stops (when there is room)
    STOP_FIRST = "stop-first"


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
        values: tuple[str, ...]
        if m := re.fullmatch(r"(\S+?)\s*(==|!=)\s*(.*)", text, re.DOTALL):
            label, op, values = m.group(1), Op(m.group(2)), (m.group(3).strip(),)
        elif m := re.fullmatch(r"(\S+)\s+in(?:\s+|(?=\[))(.*)", text, re.DOTALL):
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
        elif re.fullmatch(r"[A-Za-z0-9._/-]+\s*=\s*[^=\s].*", text, re.DOTALL):
            raise ValueError(f"{quote_short(text)} uses '='; write '==' for equality")
        else:
            raise ValueError(f"{quote_short(text)} is not 'LABEL == VALUE', 'LABEL != VALUE' "
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
        return f"{quote_short(key)} is longer than {MAX_LABEL_KEY_CHARS} characters"
    if not LABEL_KEY_RE.fullmatch(key):
        return (f"{quote_short(key)} must be letters, digits, '.', '_', '/' and '-', "
                "starting and ending with a letter or digit")
    return None


def label_value_problem(value: str) -> str | None:
    """Why `value` is not a valid node label value, or None."""
    if value == "":
        return "is empty"
    if len(value) > MAX_LABEL_VALUE_CHARS:
        return f"{quote_short(value)} is longer than {MAX_LABEL_VALUE_CHARS} characters"
    if not LABEL_VALUE_RE.fullmatch(value):
        return f"{quote_short(value)} may contain only letters, digits and . _ : / @ + -"
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
class UpdatePolicy:
    """How a changed container spec reaches running replicas (auction.rollout
    applies it).  Not part of `container_hash`: changing it replaces nothing."""

    max_parallel: int = DEFAULT_MAX_PARALLEL        # slots replaced at once (not yet healthy on the new version)
    min_healthy_s: float = DEFAULT_MIN_HEALTHY_S    # running this long on the new version = healthy
    healthy_deadline_s: float = DEFAULT_HEALTHY_DEADLINE_S  # a new replica not healthy by then fails the rollout
    progress_deadline_s: float = DEFAULT_PROGRESS_DEADLINE_S  # no slot turned healthy for this long: failed
    order: UpdateOrder = UpdateOrder.START_FIRST
    canary: int = 0                                  # this many slots first; the rest wait for a promote
    auto_promote: bool = False                       # promote once the canaries are healthy
    auto_revert: bool = False                        # a failed rollout goes back to the last healthy version

    def to_dict(self) -> dict[str, Any]:
        return {"max_parallel": self.max_parallel, "min_healthy_s": self.min_healthy_s,
                "healthy_deadline_s": self.healthy_deadline_s, "progress_deadline_s": self.progress_deadline_s,
                "order": self.order.value, "canary": self.canary, "auto_promote": self.auto_promote,
                "auto_revert": self.auto_revert}


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
    # Container security: what the job asks beyond the hardened default; each
    # node's operator policy (auction.container_policy) decides if it may.
    cap_add: tuple[str, ...] = ()               # capability names ("NET_ADMIN"), sorted
    cap_drop: tuple[str, ...] = ()              # names, or ("ALL",); sorted
    user: str | None = None                     # None: the image's USER
    read_only: bool = False                     # read-only root filesystem
    devices: tuple[str, ...] = ()               # "HOST:CONTAINER:PERMS", sorted
    pids_limit: int = DEFAULT_PIDS_LIMIT
    # Networking (auction.ports): Docker's network mode and the named ports.
    network: str = DEFAULT_NETWORK              # "bridge" | "host" | "none"
    ports: tuple[PortSpec, ...] = ()            # sorted by label
    # Where the image comes from; not in container_hash (changing it does not
    # replace running containers), left out of the canonical form at its default.
    pull: PullPolicy = PullPolicy.MISSING
    source: ImageSource = ImageSource.REGISTRY  # as pull: not in container_hash, left out at its default
    restart_nonce: str | None = None            # set by `shoal job restart` (see FIELDS)
    # Rolling updates and stopping (auction.rollout, the runtime).
    update: UpdatePolicy = UpdatePolicy()
    stop_signal: str = DEFAULT_STOP_SIGNAL
    stop_grace_s: float = DEFAULT_STOP_GRACE_S
    # Rebalancing (auction.rebalance): whether running replicas move back to a
    # better placement, and at most how many of the job's slots at once.
    rebalance: bool = True
    max_disruption: int = 1
    # A global job (auction.global_jobs) runs one replica on every node that
    # may run it: `replicas` is 0 and `max_per_node` 1, neither in its
    # canonical form; each node claims its own slot, no auction.
    mode: Mode = Mode.REPLICATED
    # What the containers mount (auction.volumes), sorted by name; shapes the container.
    volumes: tuple[VolumeSpec, ...] = ()
    # None: the image's ENTRYPOINT.  Set, the image's CMD is not used either
    # (as `docker run --entrypoint` and Compose do): `command` gives the arguments.
    entrypoint: tuple[str, ...] | None = None
    # Texts mounted read-only into the containers (auction.files), sorted by name; shapes the container.
    files: tuple[FileSpec, ...] = ()
    # working_dir, init, shm_size, ulimits, extra_hosts, container_labels
    # (auction.container_options): top-level fields of the canonical form, out at their defaults.
    options: ContainerOptions = ContainerOptions()
    # Placement only (auction.preemption): out of the canonical form at its
    # default, not in the container hash.
    priority: int = DEFAULT_PRIORITY

    @property
    def node_local_data(self) -> bool:
        """Does a replica keep data on its node (a Docker or host volume: auction.volumes)?"""
        return any(v.node_local_data for v in self.volumes)

    @property
    def is_global(self) -> bool:
        return self.mode is Mode.GLOBAL

    @property
    def env_map(self) -> dict[str, str]:
        return dict(self.env)

    def demand(self) -> Resources:
        """What one replica reserves on a node."""
        return Resources(self.cpu_millis, self.memory_bytes)

    @property
    def spreads(self) -> bool:
        """Does the job spread its replicas: over a label's values (`spread`)
        or over nodes (`strategy = "spread"`)?  Such a job has one
        coordinator for all its slots (auction.coordination)."""
        return bool(self.spread) or self.strategy is Strategy.SPREAD

    @property
    def one_round(self) -> bool:
        """Is the job placed by one coordinator, in one round for all its
        slots (auction.coordination)?  A job that spreads, and a binpack job
        of at most ONE_ROUND_BINPACK_MAX replicas."""
        return self.spreads or self.replicas <= ONE_ROUND_BINPACK_MAX

    @property
    def spreads_over_nodes(self) -> bool:
        """Is every node its own spread domain (`strategy = "spread"` and no
        `spread` label)?"""
        return not self.spread and self.strategy is Strategy.SPREAD

    def spread_domain(self, node: str, labels: Mapping[str, str]) -> str | None:
        """The domain `node` is in for this job's spreading: its value of the
        `spread` label ("" without it); with `strategy = "spread"` and no
        label, the node itself; None: the job does not spread.  Placement
        evens replicas out over these domains first (auction.winner), and
        rebalancing balances over the same ones (auction.rebalance)."""
        if self.spread:
            return labels.get(self.spread, "")
        return node if self.spreads_over_nodes else None

    def to_dict(self) -> dict[str, Any]:
        """The canonical form: JSON- and TOML-able; `validate` turns it back into self."""
        d: dict[str, Any] = {"name": self.name, "image": self.image}
        if self.entrypoint is not None:
            d["entrypoint"] = list(self.entrypoint)
        if self.command is not None:
            d["command"] = list(self.command)
        if self.env:
            d["env"] = dict(self.env)
        d["cpu"] = self.cpu_millis / 1000
        d["memory"] = canonical_memory(self.memory_bytes)
        if self.is_global:
            d["mode"] = self.mode.value     # out at its default, as the fields below
        else:
            d["replicas"] = self.replicas
        if self.constraints:
            d["constraints"] = [str(c) for c in self.constraints]
        if self.spread is not None:
            d["spread"] = self.spread
        if self.max_per_node is not None and not self.is_global:
            d["max_per_node"] = self.max_per_node
        d["restart"] = self.restart.to_dict()
        if self.health is not None:
            d["health"] = self.health.to_dict()
        if not self.is_global:
            d["strategy"] = self.strategy.value
        if self.cap_add:
            d["cap_add"] = list(self.cap_add)
        if self.cap_drop:
            d["cap_drop"] = list(self.cap_drop)
        if self.user is not None:
            d["user"] = self.user
        if self.read_only:
            d["read_only"] = True
        if self.devices:
            d["devices"] = list(self.devices)
        if self.pids_limit != DEFAULT_PIDS_LIMIT:
            d["pids_limit"] = self.pids_limit
        # Left out at their defaults, as the security fields: a spec without
        # them keeps the hashes it had before they existed.
        if self.network != DEFAULT_NETWORK:
            d["network"] = self.network
        if self.ports:
            d["ports"] = {p.label: p.to_dict() for p in self.ports}
        if self.pull is not PullPolicy.MISSING:
            d["pull"] = self.pull.value
        if self.source is not ImageSource.REGISTRY:
            d["source"] = self.source.value
        if self.restart_nonce is not None:
            d["restart_nonce"] = self.restart_nonce
        if self.volumes:
            d["volumes"] = {v.name: v.to_dict() for v in self.volumes}
        if self.files:
            d["files"] = {f.name: f.to_dict() for f in self.files}
        d.update(self.options.to_dict())
        # Also left out at their defaults (same reason); none of the three is
        # in container_hash: a change of them replaces no running container.
        if self.update != UpdatePolicy():
            d["update"] = self.update.to_dict()
        if self.stop_signal != DEFAULT_STOP_SIGNAL:  # also one that names SIGTERM
            d["stop_signal"] = self.stop_signal
        if self.stop_grace_s != DEFAULT_STOP_GRACE_S:
            d["stop_grace_s"] = self.stop_grace_s
        # Placement only, out at their defaults too (the hashes stay as they were).
        if not self.rebalance:
            d["rebalance"] = False
        if self.max_disruption != 1:
            d["max_disruption"] = self.max_disruption
        if self.priority != DEFAULT_PRIORITY:
            d["priority"] = self.priority
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
        shape = {k: d[k] for k in ("image", "command", "env", "cpu", "memory", "health", *SECURITY_FIELDS,
                                   "network", "ports", "restart_nonce", "volumes", "entrypoint", "files",
                                   *OPTION_FIELDS)
                 if k in d}
        return hashlib.sha256(_canonical_json(shape)).hexdigest()


def _canonical_json(obj: Any) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                      allow_nan=False).encode("utf-8")


def quote_short(text: str) -> str:
    """repr() of user text, cut short so messages stay bounded."""
    if len(text) > SHOW_CHARS:
        return repr(text[:SHOW_CHARS]) + "..."
    return repr(text)
