"""The agent's configuration: one dataclass, a TOML file, and command-line flags.

How this works: `load_config(path, flags)` reads an optional TOML file
(`tomllib`), overlays the flags that were actually given (a flag always wins
over the file; a repeatable flag such as `--join` replaces the file's list
rather than appending to it), and validates the result into a frozen
`AgentConfig`.  Every problem raises `ConfigError`, whose message starts with
the name of the offending field (`bind: port 70000 out of range`), so both the
CLI and the tests can tell which setting is wrong.

Settings (file keys use the same names; `-` and `_` are interchangeable):

    name          node name, unique in the cluster        default: the hostname
    bind          HOST:PORT for gossip, UDP and TCP        default: 0.0.0.0:7946
                  (port 0 picks a free port for both)
    advertise     HOST:PORT other nodes use to reach us    default: see below
    join          seeds, list of HOST[:PORT] (port 7946)   default: []
    profile       gossip preset: lan | wan | local         default: lan
                  (wan also lengthens placement's rounds and
                  claim wait: node.agent.tuning)
    encrypt       base64 AES key (16, 24 or 32 bytes)      default: none
    insecure_no_encryption  gossip without a key on a    default: false
                  non-loopback address (flag
                  --insecure-no-encryption); see below
    keyring_file  JSON list of base64 keys, primary first  default: <state_dir>/keyring.json
                  when state_dir and encryption are set, else none
    state_dir     directory for keyring.json and agent.json (addresses of a
                  running agent, for scripts and tests)    default: none
    api           HOST:PORT of the HTTP API                default: 127.0.0.1:7980
    label         cluster label (<= 255 bytes; flag        default: "" (none)
                  --cluster-label)
    api_token     bearer token the API requires            default: none
    api_tls_cert, api_tls_key, api_tls_ca   PEM files: the   default: none (HTTP)
                  agent's certificate and key and the cluster CA; all three
                  or none.  With them the API is HTTPS, clients and peers are
                  verified against the CA (node.api.tls; `shoal tls`)
    enable_fault_hook  serve PUT /v1/agent/fault (testbed) default: false
    log_level     DEBUG | INFO | WARNING | ERROR           default: INFO
    tags          table of extra string tags (Serf-style)  default: {}
                  (with role=shoal and api=<api address>, which the agent
                  adds, they must fit memberlist's 512-byte metadata)
    labels        node labels for placement constraints    default: {} (the agent
                  and spread, table of strings (flag        adds arch=<machine>
                  --label KEY=VALUE, repeatable)            unless given)
    cpus          cores offered to jobs, replacing the     default: measured
                  measurement ("2", 1.5, "500m")
    memory        memory offered to jobs ("4GiB")          default: measured
    reserve_cpus  host reserve subtracted from cpus        default: node.agent.probe
    reserve_memory  host reserve subtracted from memory    default: node.agent.probe
    runtime       container runtime: fake | docker         default: fake
                  (fake records start/stop only; see node/runtime/fake.py)
    docker_host   the Docker engine the docker runtime     default: $SHOAL_DOCKER_HOST,
                  talks to (unix:///path, tcp://H:P)         else unix:///var/run/docker.sock
    port_range    "LO-HI", inclusive: the host ports jobs'  default: "20000-32000"
                  dynamic ports come from (1-65535, LO <= HI; auction.portbook)
    publish_address  the IP replicas' ports are published  default: the advertise
                  on; "0.0.0.0" (or "::") only if given     address's host
                  explicitly: then every interface
    dns_bind      IP:PORT of the DNS server (UDP and TCP)  default: 127.0.0.1:8600
                  for the zone below; "off" disables it
    dns_zone      the zone served (node.dns)               default: shoal
    dns_ttl_s     TTL of every answer, whole seconds       default: 5 (0 allowed)
    dns_forward   resolvers for other zones, ["IP:PORT"]   default: [] (REFUSED)
    dns_on_bridge also serve on the Docker bridge's gateway  default: true
                  (port 53) and make it containers' resolver
    dns_source_qps  queries a second per client address    default: 2000 (0: no limit)
    [cluster]     table: job-store sync, status publishing and tombstone timing
                  (node.core.node_core.ClusterConfig)       default: its defaults
    [placement]   table: auction and placement timing and sampling
                  (auction.placement.PlacementConfig)       default: its defaults
    [containers]  table: what jobs may ask of this node's   default: the safe
                  containers (auction.container_policy:      policy
                  allow_caps, allow_users, allow_devices,
                  max_pids_limit, allow_host_paths)
    [images]      table: image pulls and registry           default: 2 pulls at
                  credentials (node.agent.registries:        once, 600 s each,
                  max_concurrent_pulls, pull_timeout_s,      Docker's config.json
                  docker_config, registries.HOST.username /
                  password_file; never a password inline)

The `[cluster]` and `[placement]` tables take the dataclasses' field names
(units in the names: `auction_ttl_s`); docs/configuration.md documents every
one (default, rationale, trade-off).  Each value must be a finite number of
the field's kind (an integer for counts), positive unless the docs say zero
is allowed; `min_backoff_s <= max_backoff_s` and `status_digest_quiet_s <=
status_digest_max_delay_s`.  `cluster.max_spec_bytes` is not a setting: it is
a protocol bound every node must share (see `FIXED_SETTINGS`).

Capacity: what the agent publishes is (cpus, memory) minus the reserve, as
node/agent/probe.py computes it; `reserve_cpus = 0` and `reserve_memory = 0` with
declared cpus/memory publish exactly the declared machine (several agents
on one host acting as several machines).  Node labels follow the constraint
syntax of job specs (auction/spec.py): keys of letters, digits, `. _ / -`,
values of letters, digits and `. _ : / @ + -`, at most 63 characters each,
at most 32 labels, and they must fit the node's status record together.

Advertise address: when `advertise` is unset we advertise the bind host,
unless that is a wildcard (0.0.0.0 or ::); then we take the first IPv4 address
of the first interface that is up and not loopback (psutil's order), falling
back to 127.0.0.1.  Set `advertise` explicitly on multi-homed hosts.

Encryption: `encrypt` alone gives a one-key ring held in memory (rotations
are then lost on restart).  With a keyring file the file is the source of
truth: if it exists it is loaded and `encrypt`, if also given, is ignored with
a warning (as Serf does); if it does not exist, `encrypt` is required and the
file is created holding that key.  Rotations (`shoal keys ...`) are written
back atomically (temp file, fsync, rename, fsync of the directory).

Safe default: a config that would gossip without a key on a non-loopback
bind or advertise address (the default bind 0.0.0.0 is one) is refused with a
ConfigError on `encrypt` saying how to fix it, unless `insecure_no_encryption`
is set (node.agent.safe_defaults has the rule and the texts).

The API port defaults to 7980 (gossip uses 7946 like Serf; 7980 is not used by
Serf, Consul or Nomad).  The API refuses to bind a non-loopback address unless
`api_token` is set, so a cluster is not controllable from the network by
accident.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import re
import socket
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from auction.container_policy import ContainerPolicy
from auction.placement import PlacementConfig
from auction.ports import DEFAULT_PORT_RANGE, MAX_PORT, MIN_PORT
from auction.resources import Resources, UnitError, parse_cpu, parse_memory
from auction.spec import label_key_problem, label_value_problem
from gossip.config import LABEL_MAX_BYTES, PRESETS
from gossip.swim import PAYLOAD_MAX_BYTES
from node.agent.errors import ConfigError
from node.agent.registries import ImagesConfig, images_config
from node.agent.safe_defaults import unencrypted_refusal
from node.agent.tags import TagsTooLarge, encode_tags
from node.agent.tuning import cluster_config, container_policy, placement_config, toml_value
from node.core.config import ClusterConfig
from node.core.status import NodeStatus
from node.dns.settings import (
    DEFAULT_DNS_BIND,
    DEFAULT_SOURCE_QPS,
    DEFAULT_TTL_S,
    DEFAULT_ZONE,
    dns_config_values,
)

DEFAULT_GOSSIP_PORT = 7946
DEFAULT_BIND = "0.0.0.0:7946"
DEFAULT_API = "127.0.0.1:7980"
DEFAULT_API_PORT = 7980
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
KEY_SIZES = (16, 24, 32)
NAME_MAX_BYTES = 255
RUNTIMES = ("fake", "docker")
MAX_NODE_LABELS = 32  # as node.core.status.MAX_LABELS
# A node's status record must fit one gossip payload (1 KiB); its labels get
# what is left after the name, the numbers, the digests and an unhealthy
# reason of up to this many bytes.
STATUS_REASON_ROOM_BYTES = 200


@dataclass(frozen=True, slots=True)
class HostPort:
    host: str
    port: int

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"

    @property
    def is_wildcard(self) -> bool:
        return self.host in ("0.0.0.0", "::", "")

    @property
    def is_loopback(self) -> bool:
        if self.host == "localhost":
            return True
        try:
            return ipaddress.ip_address(self.host).is_loopback
        except ValueError:
            return False


@dataclass(frozen=True, slots=True)
class AgentConfig:
    name: str = field(default_factory=socket.gethostname)
    bind: HostPort = HostPort("0.0.0.0", DEFAULT_GOSSIP_PORT)
    advertise: HostPort | None = None
    join: tuple[HostPort, ...] = ()
    profile: str = "lan"
    encrypt: bytes | None = None  # the raw key
    keyring_file: Path | None = None
    state_dir: Path | None = None
    api: HostPort = HostPort("127.0.0.1", DEFAULT_API_PORT)
    label: str = ""
    api_token: str | None = None
    api_tls_cert: Path | None = None  # all three or none (see the docstring)
    api_tls_key: Path | None = None
    api_tls_ca: Path | None = None
    enable_fault_hook: bool = False
    log_level: str = "INFO"
    tags: tuple[tuple[str, str], ...] = ()
    labels: tuple[tuple[str, str], ...] = ()  # node labels, sorted by key
    cpu_millis: int | None = None  # declared capacity (None: measure)
    memory_bytes: int | None = None
    reserve_cpu_millis: int | None = None  # host reserve (None: node.agent.probe's default)
    reserve_memory_bytes: int | None = None
    # Gossip unencrypted on a non-loopback address anyway (see the docstring).
    insecure_no_encryption: bool = False
    runtime: str = "fake"
    docker_host: str | None = None  # None: $SHOAL_DOCKER_HOST, else Docker's default socket
    # Host ports for jobs' dynamic ports, inclusive (auction.portbook).
    port_range: tuple[int, int] = DEFAULT_PORT_RANGE
    # The IP replicas' ports are published on; None: the advertise address's
    # host (see `publish_address()`).  A wildcard only when set explicitly.
    publish_address: str | None = None
    cluster: ClusterConfig = field(default_factory=ClusterConfig)  # the [cluster] table
    placement: PlacementConfig = field(default_factory=PlacementConfig)  # the [placement] table
    containers: ContainerPolicy = field(default_factory=ContainerPolicy)  # the [containers] table
    # Image pulls and registry credentials: the [images] table (node.agent.registries).
    images: ImagesConfig = field(default_factory=ImagesConfig)
    # DNS (node.dns; docs/configuration.md): where, for which zone, what for other zones.
    dns_bind: tuple[str, int] | None = DEFAULT_DNS_BIND   # None: no DNS server
    dns_zone: str = DEFAULT_ZONE
    dns_ttl_s: int = DEFAULT_TTL_S
    dns_forward: tuple[tuple[str, int], ...] = ()
    dns_on_bridge: bool = True
    dns_source_qps: float = DEFAULT_SOURCE_QPS

    @property
    def encrypted(self) -> bool:
        return self.encrypt is not None or self.keyring_file is not None

    def replace(self, **changes: Any) -> "AgentConfig":
        return replace(self, **changes)


# ---- parsing helpers --------------------------------------------------------


def parse_host_port(text: str, field_name: str, default_port: int | None = None) -> HostPort:
    """`host:port`, `[v6]:port`, or (if default_port) a bare host."""
    if not isinstance(text, str) or not text.strip():
        raise ConfigError(field_name, f"expected HOST:PORT, got {text!r}")
    text = text.strip()
    host: str
    port_text: str | None
    if text.startswith("["):
        end = text.find("]")
        if end < 0:
            raise ConfigError(field_name, f"unclosed '[' in {text!r}")
        host, rest = text[1:end], text[end + 1 :]
        if rest and not rest.startswith(":"):
            raise ConfigError(field_name, f"expected ':' after ']' in {text!r}")
        port_text = rest[1:] if rest else None
    elif text.count(":") == 1:
        host, port_text = text.split(":")
    elif text.count(":") > 1:  # bare IPv6 address
        host, port_text = text, None
    else:
        host, port_text = text, None
    if not host:
        raise ConfigError(field_name, f"missing host in {text!r}")
    if port_text is None:
        if default_port is None:
            raise ConfigError(field_name, f"missing port in {text!r} (expected HOST:PORT)")
        return HostPort(host, default_port)
    try:
        port = int(port_text)
    except ValueError:
        raise ConfigError(field_name, f"port {port_text!r} is not a number") from None
    if not 0 <= port <= 65535:
        raise ConfigError(field_name, f"port {port} out of range 0-65535")
    return HostPort(host, port)


def decode_b64_key(text: str, field_name: str) -> bytes:
    try:
        key = base64.b64decode(text.strip(), validate=True)
    except (binascii.Error, ValueError, AttributeError):
        raise ConfigError(field_name, "not valid base64") from None
    if len(key) not in KEY_SIZES:
        raise ConfigError(field_name, f"key is {len(key)} bytes; AES needs 16, 24 or 32")
    return key


def _ip_literal(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
        return True
    except ValueError:
        return False


# ---- loading ----------------------------------------------------------------

# Setting names (TOML keys and flag names): the fields, except that amounts
# are given with units and stored in the field named with the unit.
_AMOUNTS = {"cpus": "cpu_millis", "memory": "memory_bytes",
            "reserve_cpus": "reserve_cpu_millis", "reserve_memory": "reserve_memory_bytes"}
_FIELD_NAMES = ({f.name for f in fields(AgentConfig)} - set(_AMOUNTS.values())) | set(_AMOUNTS)


def read_config_file(path: Path) -> dict[str, Any]:
    import tomllib  # only with --config: 1-2 ms of every other start

    try:
        with open(path, "rb") as f:
            raw = tomllib.load(f)
    except FileNotFoundError:
        raise ConfigError("config", f"file {str(path)!r} not found") from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError("config", f"{path}: {e}") from None
    except OSError as e:
        raise ConfigError("config", f"cannot read {path}: {e.strerror}") from None
    out: dict[str, Any] = {}
    for key, value in raw.items():
        name = key.replace("-", "_")
        if name not in _FIELD_NAMES:
            raise ConfigError(name, f"unknown setting in {path}")
        out[name] = value
    return out


def load_config(path: Path | str | None = None, flags: dict[str, Any] | None = None) -> AgentConfig:
    """File first, then every flag whose value is not None (or empty) wins."""
    values: dict[str, Any] = read_config_file(Path(path)) if path is not None else {}
    for key, value in (flags or {}).items():
        name = key.replace("-", "_")
        if name not in _FIELD_NAMES:
            raise ConfigError(name, "unknown setting")
        if value is None or (isinstance(value, (list, tuple, dict)) and not value):
            continue
        values[name] = value
    return build_config(values)


def build_config(values: dict[str, Any]) -> AgentConfig:
    """Validate raw values (strings and lists as in TOML) into an AgentConfig."""
    kw: dict[str, Any] = {}

    def text(name: str) -> str | None:
        v = values.get(name)
        if v is None:
            return None
        if not isinstance(v, str):
            raise ConfigError(name, f"expected a string, got {type(v).__name__}")
        return v

    name = text("name")
    if name is not None:
        if not name.strip():
            raise ConfigError("name", "must not be empty")
        if len(name.encode()) > NAME_MAX_BYTES:
            raise ConfigError("name", f"longer than {NAME_MAX_BYTES} bytes")
        kw["name"] = name
    if (v := text("bind")) is not None:
        kw["bind"] = parse_host_port(v, "bind", DEFAULT_GOSSIP_PORT)
        if not _ip_literal(kw["bind"].host):
            raise ConfigError("bind", f"host must be an IP address, got {kw['bind'].host!r}")
    if (v := text("advertise")) is not None:
        adv = parse_host_port(v, "advertise", 0)
        if adv.is_wildcard:
            raise ConfigError("advertise", "cannot advertise a wildcard address")
        kw["advertise"] = adv
    join = values.get("join")
    if join is not None:
        if isinstance(join, str):
            join = [join]
        if not isinstance(join, (list, tuple)) or not all(isinstance(j, str) for j in join):
            raise ConfigError("join", "expected a list of HOST[:PORT] strings")
        kw["join"] = tuple(parse_host_port(j, "join", DEFAULT_GOSSIP_PORT) for j in join)
    if (v := text("profile")) is not None:
        if v not in PRESETS:
            raise ConfigError("profile", f"unknown profile {v!r}; choose one of {', '.join(sorted(PRESETS))}")
        kw["profile"] = v
    if (v := text("encrypt")) is not None:
        kw["encrypt"] = decode_b64_key(v, "encrypt")
    if (v := text("state_dir")) is not None:
        kw["state_dir"] = Path(v)
    if (v := text("keyring_file")) is not None:
        kw["keyring_file"] = Path(v)
    elif kw.get("state_dir") is not None and kw.get("encrypt") is not None:
        kw["keyring_file"] = kw["state_dir"] / "keyring.json"
    if (v := text("api")) is not None:
        kw["api"] = parse_host_port(v, "api", DEFAULT_API_PORT)
    if (v := text("label")) is not None:
        if len(v.encode()) > LABEL_MAX_BYTES:
            raise ConfigError("label", f"longer than {LABEL_MAX_BYTES} bytes")
        kw["label"] = v
    if (v := text("api_token")) is not None:
        if not v:
            raise ConfigError("api_token", "must not be empty")
        kw["api_token"] = v
    kw.update(_tls_files(text))
    if (hook := values.get("enable_fault_hook")) is not None:
        if not isinstance(hook, bool):
            raise ConfigError("enable_fault_hook", f"must be true or false, got {toml_value(hook)}")
        kw["enable_fault_hook"] = hook
    if (v := text("log_level")) is not None:
        if v.upper() not in LOG_LEVELS:
            raise ConfigError("log_level", f"unknown level {v!r}; choose one of {', '.join(LOG_LEVELS)}")
        kw["log_level"] = v.upper()
    tags = values.get("tags")
    if tags is not None:
        if isinstance(tags, (list, tuple)):  # from --tag k=v flags
            pairs = []
            for t in tags:
                if not isinstance(t, str) or "=" not in t:
                    raise ConfigError("tags", f"expected KEY=VALUE, got {t!r}")
                k, _, val = t.partition("=")
                pairs.append((k, val))
            tags = dict(pairs)
        if not isinstance(tags, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in tags.items()):
            raise ConfigError("tags", "expected a table of string values")
        # Room for the tags the agent adds itself (role, api) at their longest.
        probe = {**tags, "role": "shoal", "api": "[ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff]:65535"}
        try:
            encode_tags(probe)
        except TagsTooLarge as e:
            raise ConfigError("tags", str(e)) from None
        kw["tags"] = tuple(sorted(tags.items()))
    labels = values.get("labels")
    if labels is not None:
        kw["labels"] = parse_labels(labels, kw.get("name") or socket.gethostname())
    for setting, field_name in _AMOUNTS.items():
        v = values.get(setting)
        if v is None:
            continue
        try:
            kw[field_name] = parse_cpu(v) if "cpu" in setting else parse_memory(v)
        except UnitError as e:
            raise ConfigError(setting, str(e)) from None
    if (v := text("runtime")) is not None:
        if v not in RUNTIMES:
            raise ConfigError("runtime", f"unknown runtime {v!r}; choose one of {', '.join(RUNTIMES)}")
        kw["runtime"] = v
    if (v := text("docker_host")) is not None:
        if not re.match(r"^(unix|tcp|http|https|npipe|ssh)://.+", v):
            raise ConfigError("docker_host", f"expected a URL such as unix:///var/run/docker.sock or "
                                             f"tcp://HOST:PORT, got {v!r}")
        kw["docker_host"] = v
    if (v := values.get("port_range")) is not None:
        kw["port_range"] = parse_port_range(v)
    if (v := text("publish_address")) is not None:
        kw["publish_address"] = parse_publish_address(v)
    if "cluster" in values:
        kw["cluster"] = cluster_config(values["cluster"])
    kw["placement"] = placement_config(values.get("placement"), kw.get("profile", AgentConfig.profile))
    insecure = values.get("insecure_no_encryption")
    if insecure is not None:
        if not isinstance(insecure, bool):
            raise ConfigError("insecure_no_encryption", f"must be true or false, got {toml_value(insecure)}")
        kw["insecure_no_encryption"] = insecure
    if "containers" in values:
        kw["containers"] = container_policy(values["containers"])
    if "images" in values:
        kw["images"] = images_config(values["images"])
    kw.update(dns_config_values(values))
    cfg = AgentConfig(**kw)
    if not cfg.api.is_loopback and cfg.api_token is None:
        raise ConfigError("api", f"refusing to serve the API on non-loopback {cfg.api} without api_token")
    if (refusal := unencrypted_refusal(cfg)) is not None:
        raise ConfigError("encrypt", refusal)
    return cfg


def parse_port_range(value: Any) -> tuple[int, int]:
    """`"LO-HI"` (inclusive) into (LO, HI); ConfigError on `port_range`."""
    if not isinstance(value, str):
        raise ConfigError("port_range", f'expected a string "LO-HI", got {toml_value(value)}')
    m = re.fullmatch(r"\s*(\d{1,5})\s*-\s*(\d{1,5})\s*", value)
    if m is None:
        raise ConfigError("port_range", f'expected "LO-HI" such as "20000-32000", got {toml_value(value)}')
    lo, hi = int(m.group(1)), int(m.group(2))
    for port in (lo, hi):
        if not MIN_PORT <= port <= MAX_PORT:
            raise ConfigError("port_range", f"port {port} out of range {MIN_PORT}-{MAX_PORT}")
    if lo > hi:
        raise ConfigError("port_range", f"low end {lo} is above high end {hi}")
    return lo, hi


def parse_publish_address(value: str) -> str:
    """An IP address (Docker publishes on an IP, not a name)."""
    text = value.strip()
    if text.startswith("[") and text.endswith("]"):
        text = text[1:-1]
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        raise ConfigError("publish_address", f"expected an IP address such as 192.0.2.11, got {value!r}") from None


def _tls_files(text: Any) -> dict[str, Path]:
    """The API's TLS files (all three or none), each an existing file."""
    names = ("api_tls_cert", "api_tls_key", "api_tls_ca")
    given = {n: v for n in names if (v := text(n)) is not None}
    if given and len(given) < len(names):
        missing = [n for n in names if n not in given]
        raise ConfigError(missing[0], f"TLS for the API needs {', '.join(names)}; {' and '.join(missing)} not set")
    for n, v in given.items():
        if not Path(v).is_file():
            raise ConfigError(n, f"{v!r} is not a readable file")
    return {n: Path(v) for n, v in given.items()}


def parse_labels(labels: Any, node_name: str = "") -> tuple[tuple[str, str], ...]:
    """Node labels from a TOML table or from `--label KEY=VALUE` flags,
    validated as constraints see them; sorted by key."""
    if isinstance(labels, (list, tuple)):
        pairs: dict[str, str] = {}
        for item in labels:
            if not isinstance(item, str) or "=" not in item:
                raise ConfigError("labels", f"expected KEY=VALUE, got {item!r} "
                                            "(the cluster label is --cluster-label)")
            k, _, v = item.partition("=")
            k, v = k.strip(), v.strip()
            if k in pairs:
                raise ConfigError("labels", f"label {k!r} given twice")
            pairs[k] = v
        labels = pairs
    if not isinstance(labels, dict) or not all(isinstance(k, str) and isinstance(v, str)
                                               for k, v in labels.items()):
        raise ConfigError("labels", "expected a table of string values")
    if len(labels) > MAX_NODE_LABELS:
        raise ConfigError("labels", f"{len(labels)} labels; at most {MAX_NODE_LABELS}")
    for k, v in labels.items():
        if problem := label_key_problem(k):
            raise ConfigError("labels", f"key {problem}")
        if problem := label_value_problem(v):
            raise ConfigError("labels", f"{k}: value {problem}")
    check_status_size(node_name, labels)
    return tuple(sorted(labels.items()))


def check_status_size(node_name: str, labels: dict[str, str]) -> None:
    """Raise ConfigError if a status record with these labels (and the
    largest numbers, digests and agent version it can carry) would not fit
    one gossip payload."""
    big = Resources(1 << 62, 1 << 62, 1 << 62)
    probe = NodeStatus(node_name, big, big, dict(labels), True, False, "", "0.0.0-dev+" + "x" * 16,
                       bytes(16), 1 << 31, bytes(16),
                       address="ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255")  # the longest IP text
    size = len(probe.encode()) + STATUS_REASON_ROOM_BYTES
    if size > PAYLOAD_MAX_BYTES:
        raise ConfigError("labels", f"the node status record would be {size} bytes with these labels "
                                    f"(and name); it must fit {PAYLOAD_MAX_BYTES}")


# ---- derived addresses --------------------------------------------------------


def first_public_ipv4() -> str:
    """First IPv4 of the first up, non-loopback interface; else 127.0.0.1."""
    try:
        import psutil

        stats = psutil.net_if_stats()
        for ifname, addrs in psutil.net_if_addrs().items():
            st = stats.get(ifname)
            if st is not None and not st.isup:
                continue
            for a in addrs:
                if a.family == socket.AF_INET and not ipaddress.ip_address(a.address).is_loopback:
                    return a.address
    except Exception:  # pragma: no cover - psutil missing or odd platform
        pass
    return "127.0.0.1"


def resolve_host(host: str, field_name: str) -> str:
    """A textual IP for `host` (resolving a name with the system resolver)."""
    if _ip_literal(host):
        return host
    try:
        infos = socket.getaddrinfo(host, None, type=socket.SOCK_DGRAM)
    except socket.gaierror as e:
        raise ConfigError(field_name, f"cannot resolve {host!r}: {e.strerror}") from None
    return infos[0][4][0]


def publish_address(cfg: AgentConfig, advertise: HostPort) -> str:
    """The IP replicas' host ports are published on: the configured one,
    else the advertise address's host, the address other nodes (and the
    service catalog) already reach this node at.  Never every interface
    unless the operator set publish_address = "0.0.0.0" (advertise never
    is a wildcard: `advertise_address`)."""
    return cfg.publish_address if cfg.publish_address is not None else advertise.host


def advertise_address(cfg: AgentConfig, bound_port: int) -> HostPort:
    """The address peers should use for us (see module docstring)."""
    if cfg.advertise is not None:
        host = resolve_host(cfg.advertise.host, "advertise")
        return HostPort(host, cfg.advertise.port or bound_port)
    host = first_public_ipv4() if cfg.bind.is_wildcard else cfg.bind.host
    return HostPort(host, bound_port)

