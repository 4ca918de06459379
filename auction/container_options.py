"""Container options: how a replica's process is set up, beyond image, command and limits.

How this works: eight job fields, each Docker's (and Compose's) option of
the same meaning, each left out of the canonical form while it holds its
default (so a spec without them keeps the hashes it had before they
existed), and each in the container hash (a change replaces containers):

- `working_dir`: the process's directory (an absolute path; default the
  image's WORKDIR);
- `init`: run an init process as PID 1 (Docker's `--init`, tini), which
  reaps zombies and forwards signals, for programs that do neither;
- `shm_size`: the size of /dev/shm (default Docker's 64MiB; databases and
  browsers want more); counted in the replica's memory by the kernel;
- `ulimits`: resource limits by name, a number (soft = hard) or
  `{soft, hard}`; -1 is unlimited (`nofile = 65536`,
  `memlock = {soft = -1, hard = -1}`);
- `extra_hosts`: host name -> address lines added to /etc/hosts
  (`"db.internal" = "10.0.0.5"`; `"host-gateway"` is the node's bridge
  address, as Docker reads it);
- `container_labels`: labels set on the containers, for tools that read
  them (log shippers, proxies); `shoal.` names are the agent's own;
- `hostname`: the container's host name (default Docker's: the container
  id), a DNS label that may name `{job}`, `{index}` and `{node}`, filled
  in per replica (`hostname_for`), so replicas that need a stable name of
  their own (a RabbitMQ node, a cluster member) have one per slot;
- `sysctls`: kernel settings of the container's own namespaces
  (`"net.core.somaxconn" = "1024"`): only those Docker can set per
  container (`net.*`, `kernel.shm*`, `kernel.msg*`, `kernel.sem`,
  `fs.mqueue.*`); others would change the node itself and are refused.

`check(c, raw)` validates all eight, every problem with its path;
`ContainerOptions.to_dict()` is their part of the canonical form.  Pure:
no I/O.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .resources import GiB, MiB, UnitError, canonical_memory, parse_memory
from .volumes import path_problem

if TYPE_CHECKING:
    from .spec_check import Checker

FIELDS = ("working_dir", "init", "shm_size", "ulimits", "extra_hosts", "container_labels", "sysctls", "hostname")
HOSTNAME_PLACEHOLDERS = ("{job}", "{index}", "{node}")
HOSTNAME_TEMPLATE_RE = re.compile(r"([a-z0-9-]|\{job\}|\{index\}|\{node\})+", re.ASCII)
MAX_HOSTNAME_CHARS = 63
# What Docker sets per container (its namespaced sysctls): anything else is the node's.
SYSCTL_PREFIXES = ("net.", "kernel.shm", "kernel.msg", "fs.mqueue.")
SYSCTL_NAMES = ("kernel.sem",)
MAX_SYSCTLS = 64
SYSCTL_RE = re.compile(r"[a-z0-9_]+(\.[a-z0-9_]+)+", re.ASCII)
SYSCTL_VALUE_RE = re.compile(r"[A-Za-z0-9 _.:/,-]{1,256}", re.ASCII)
ULIMIT_NAMES = ("core", "cpu", "data", "fsize", "locks", "memlock", "msgqueue", "nice", "nofile", "nproc",
                "rss", "rtprio", "rttime", "sigpending", "stack")
UNLIMITED = -1
MAX_ULIMIT = 1 << 62
MIN_SHM_BYTES = 1 * MiB
MAX_SHM_BYTES = 64 * GiB
MAX_EXTRA_HOSTS = 64
MAX_CONTAINER_LABELS = 64
MAX_LABEL_KEY_CHARS = 128
MAX_LABEL_VALUE_CHARS = 1024
RESERVED_LABEL_PREFIX = "shoal."
HOST_GATEWAY = "host-gateway"
HOSTNAME_RE = re.compile(r"[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*",
                         re.ASCII)
LABEL_KEY_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._/-]*", re.ASCII)


@dataclass(frozen=True, slots=True)
class ContainerOptions:
    working_dir: str | None = None                          # None: the image's WORKDIR
    init: bool = False
    shm_size_bytes: int | None = None                       # None: Docker's default (64MiB)
    ulimits: tuple[tuple[str, int, int], ...] = ()          # (name, soft, hard), sorted
    extra_hosts: tuple[tuple[str, str], ...] = ()           # (host name, address), sorted
    container_labels: tuple[tuple[str, str], ...] = ()      # sorted
    sysctls: tuple[tuple[str, str], ...] = ()               # sorted
    hostname: str | None = None                             # a template: `hostname_for` fills it in

    def to_dict(self) -> dict[str, Any]:
        """The fields not at their defaults, as the canonical form writes them."""
        d: dict[str, Any] = {}
        if self.working_dir is not None:
            d["working_dir"] = self.working_dir
        if self.init:
            d["init"] = True
        if self.shm_size_bytes is not None:
            d["shm_size"] = canonical_memory(self.shm_size_bytes)
        if self.ulimits:
            d["ulimits"] = {name: soft if soft == hard else {"soft": soft, "hard": hard}
                            for name, soft, hard in self.ulimits}
        if self.extra_hosts:
            d["extra_hosts"] = dict(self.extra_hosts)
        if self.container_labels:
            d["container_labels"] = dict(self.container_labels)
        if self.sysctls:
            d["sysctls"] = dict(self.sysctls)
        if self.hostname is not None:
            d["hostname"] = self.hostname
        return d


def check(c: Checker, raw: dict[Any, Any], missing: Any) -> ContainerOptions:
    """The eight fields of `raw` (a spec table); `missing` is the checker's absent marker."""
    return ContainerOptions(
        working_dir=_working_dir(c, raw.get("working_dir", missing), missing),
        init=c.boolean(raw.get("init", missing), "init", False),
        shm_size_bytes=_shm_size(c, raw.get("shm_size", missing), missing),
        ulimits=_ulimits(c, raw.get("ulimits", missing), missing),
        extra_hosts=_extra_hosts(c, raw.get("extra_hosts", missing), missing),
        container_labels=_labels(c, raw.get("container_labels", missing), missing),
        sysctls=_sysctls(c, raw.get("sysctls", missing), missing),
        hostname=_hostname(c, raw.get("hostname", missing), missing),
    )


def hostname_for(template: str, job: str, index: int, node: str) -> str:
    """A replica's host name: the template with its placeholders filled in
    (a node name made a DNS label), cut to 63 characters, no '-' at an end."""
    label = re.sub(r"[^a-z0-9-]+", "-", node.lower())
    name = template.replace("{job}", job).replace("{index}", str(index)).replace("{node}", label)
    return name[:MAX_HOSTNAME_CHARS].strip("-") or "replica"


def _hostname(c: Checker, value: Any, missing: Any) -> str | None:
    if value is missing:
        return None
    text = c.string(value, "hostname", MAX_HOSTNAME_CHARS)
    if text is None:
        return None
    if not HOSTNAME_TEMPLATE_RE.fullmatch(text) or text.startswith("-"):
        c.add("hostname", "a DNS label (lowercase letters, digits, '-'), which may name {job}, {index} and {node} "
                          f"(like db-{{index}}), got {text[:64]!r}")
        return None
    return text


def _working_dir(c: Checker, value: Any, missing: Any) -> str | None:
    if value is missing:
        return None
    text = c.string(value, "working_dir", 4096)
    if text is not None and (problem := path_problem(text)) is not None:
        c.add("working_dir", problem)
        return None
    return text


def _shm_size(c: Checker, value: Any, missing: Any) -> int | None:
    if value is missing:
        return None
    try:
        n = parse_memory(value)
    except UnitError as e:
        c.add("shm_size", str(e))
        return None
    if not MIN_SHM_BYTES <= n <= MAX_SHM_BYTES:
        c.add("shm_size", f"must be from {canonical_memory(MIN_SHM_BYTES)} to {canonical_memory(MAX_SHM_BYTES)}")
        return None
    return n


def _ulimits(c: Checker, value: Any, missing: Any) -> tuple[tuple[str, int, int], ...]:
    if value is missing:
        return ()
    table = c.table(value, "ulimits")
    if table is None:
        return ()
    out = []
    for name, limit in list(table.items())[:len(ULIMIT_NAMES) + 1]:
        path = c.key_path("ulimits", str(name))
        if name not in ULIMIT_NAMES:
            c.add(path, f"not a resource limit; one of {', '.join(ULIMIT_NAMES)}")
            continue
        if isinstance(limit, dict):
            c.unknown_fields(limit, ("soft", "hard"), path)
            soft, hard = _limit(c, limit.get("soft"), f"{path}.soft"), _limit(c, limit.get("hard"), f"{path}.hard")
        else:
            soft = hard = _limit(c, limit, path)
        if soft is None or hard is None:
            continue
        if hard != UNLIMITED and (soft == UNLIMITED or soft > hard):
            c.add(path, f"the soft limit ({soft}) is above the hard one ({hard})")
            continue
        out.append((name, soft, hard))
    return tuple(sorted(out))


def _limit(c: Checker, value: Any, path: str) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int) or not (value == UNLIMITED or 0 <= value <= MAX_ULIMIT):
        c.add(path, f"must be a whole number from 0 (or -1: unlimited), got {str(value)[:64]!r}")
        return None
    return value


def _pairs(c: Checker, value: Any, missing: Any, field: str, most: int,
           one: Callable[[Checker, Any, Any, str], str | None]) -> tuple[tuple[str, str], ...]:
    """A table of text keys to values, at most `most` entries, each kept
    when `one(c, key, value, path)` gives its value (else it said why)."""
    if value is missing:
        return ()
    table = c.table(value, field)
    if table is None:
        return ()
    if len(table) > most:
        c.add(field, f"at most {most} entries (got {len(table)})")
        return ()
    out = []
    for key, item in table.items():
        kept = one(c, key, item, c.key_path(field, str(key)))
        if kept is not None:
            out.append((key, kept))
    return tuple(sorted(out))


def _extra_hosts(c: Checker, value: Any, missing: Any) -> tuple[tuple[str, str], ...]:
    return _pairs(c, value, missing, "extra_hosts", MAX_EXTRA_HOSTS, _host)


def _host(c: Checker, host: Any, address: Any, path: str) -> str | None:
    if not isinstance(host, str) or len(host) > 253 or not HOSTNAME_RE.fullmatch(host):
        c.add(path, "not a host name (letters, digits, '-' and dots)")
        return None
    if address != HOST_GATEWAY:
        try:
            ipaddress.ip_address(address if isinstance(address, str) else "-")
        except ValueError:
            c.add(path, f'must be an IP address or "{HOST_GATEWAY}", got {str(address)[:64]!r}')
            return None
    return str(address)


def _labels(c: Checker, value: Any, missing: Any) -> tuple[tuple[str, str], ...]:
    return _pairs(c, value, missing, "container_labels", MAX_CONTAINER_LABELS, _label)


def _label(c: Checker, key: Any, text: Any, path: str) -> str | None:
    if not isinstance(key, str) or len(key) > MAX_LABEL_KEY_CHARS or not LABEL_KEY_RE.fullmatch(key):
        c.add(path, f"label names are letters, digits, '.', '_', '/' and '-', at most {MAX_LABEL_KEY_CHARS}")
        return None
    if key.startswith(RESERVED_LABEL_PREFIX):
        c.add(path, f"'{RESERVED_LABEL_PREFIX}' labels are the agent's own (they say whose container it is)")
        return None
    return c.string(text, path, MAX_LABEL_VALUE_CHARS)


def _sysctls(c: Checker, value: Any, missing: Any) -> tuple[tuple[str, str], ...]:
    return _pairs(c, value, missing, "sysctls", MAX_SYSCTLS, _sysctl)


def _sysctl(c: Checker, key: Any, setting: Any, path: str) -> str | None:
    if not isinstance(key, str) or len(key) > 128 or not SYSCTL_RE.fullmatch(key):
        c.add(path, "not a sysctl name (like net.core.somaxconn)")
        return None
    if not key.startswith(SYSCTL_PREFIXES) and key not in SYSCTL_NAMES:
        c.add(path, "not one of the container's own namespaces (net.*, kernel.shm*, kernel.msg*, kernel.sem, "
                    "fs.mqueue.*): it would change the node")
        return None
    if isinstance(setting, int) and not isinstance(setting, bool):
        setting = str(setting)
    if not isinstance(setting, str) or not SYSCTL_VALUE_RE.fullmatch(setting):
        c.add(path, f"must be a value like \"1024\" (letters, digits, spaces, '_.:/,-'), got {str(setting)[:64]!r}")
        return None
    return setting
