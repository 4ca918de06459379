"""A node's container policy: what a job may ask of this node's containers.

How this works: every replica runs hardened whatever its spec says:
`no-new-privileges`, a pids limit, and a capability set built from scratch
(Docker is told to drop ALL and add back a list), so what a container holds
does not depend on the engine's version.  That list is
`DEFAULT_CAPS ∩ allow_caps`, minus the job's `cap_drop`, plus the job's
`cap_add`.  A job may ask beyond the hardened default (`cap_add`, `user`,
`devices`, a higher `pids_limit`) only as far as its node's operator allows
(`ContainerPolicy`, the agent's `[containers]` table), and so may a `host`
volume mount a path of the node (auction.volumes; `allow_host_paths`: none
by default).  The rule is one
function, `refusal(spec, node)`: a reason naming what is not allowed on the
node ("cap SYS_ADMIN is not allowed on node-2"), or None.  The bidder
declines a call for bids with that reason, and the runtime refuses to start
such a replica as a second line of defence: a job is never run with less
than it asked for.  `read_only` and `cap_drop` only take away, so they are
always allowed.

`DEFAULT_CAPS` is Docker's default set minus NET_RAW (as Nomad's docker
driver since 1.1): NET_RAW lets a process forge packets (ARP and DNS
spoofing of its neighbours on a bridge network) and plain `ping` does not
need it, since Docker lets containers open unprivileged ICMP sockets.

Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from .volumes import path_problem
from .jobspec import (
    DEFAULT_PIDS_LIMIT,
    DEVICE_PATH_RE,
    MAX_DEVICE_PATH_CHARS,
    MAX_PIDS_LIMIT,
    MAX_USER_CHARS,
    USER_RE,
    JobSpec,
    quote_short,
)

# capabilities(7), as of Linux 5.9 (CAP_CHECKPOINT_RESTORE, number 40).
LINUX_CAPS = frozenset({
    "CHOWN", "DAC_OVERRIDE", "DAC_READ_SEARCH", "FOWNER", "FSETID", "KILL", "SETGID", "SETUID",
    "SETPCAP", "LINUX_IMMUTABLE", "NET_BIND_SERVICE", "NET_BROADCAST", "NET_ADMIN", "NET_RAW",
    "IPC_LOCK", "IPC_OWNER", "SYS_MODULE", "SYS_RAWIO", "SYS_CHROOT", "SYS_PTRACE", "SYS_PACCT",
    "SYS_ADMIN", "SYS_BOOT", "SYS_NICE", "SYS_RESOURCE", "SYS_TIME", "SYS_TTY_CONFIG", "MKNOD",
    "LEASE", "AUDIT_WRITE", "AUDIT_CONTROL", "SETFCAP", "MAC_OVERRIDE", "MAC_ADMIN", "SYSLOG",
    "WAKE_ALARM", "BLOCK_SUSPEND", "AUDIT_READ", "PERFMON", "BPF", "CHECKPOINT_RESTORE",
})
# Docker's default capability set (moby oci/caps/defaults.go).
DOCKER_DEFAULT_CAPS = frozenset({
    "AUDIT_WRITE", "CHOWN", "DAC_OVERRIDE", "FOWNER", "FSETID", "KILL", "MKNOD", "NET_BIND_SERVICE",
    "NET_RAW", "SETFCAP", "SETGID", "SETPCAP", "SETUID", "SYS_CHROOT",
})
DEFAULT_CAPS = DOCKER_DEFAULT_CAPS - {"NET_RAW"}
ALL = "ALL"
ANY_USER = "*"                       # in allow_users: any user that is not root
ROOT_NAMES = frozenset({"0", "root"})
# A node that allows no more than the default pids limit would decline every
# job that does not lower it; the default allows a job to ask for 4x as much.
DEFAULT_MAX_PIDS_LIMIT = 4 * DEFAULT_PIDS_LIMIT
SHOW_NAMES = 3                       # names listed in one refusal; the rest counted
NO_NEW_PRIVILEGES = "no-new-privileges:true"   # Docker's SecurityOpt spelling

POLICY_FIELDS = ("allow_caps", "allow_users", "allow_devices", "max_pids_limit", "allow_host_paths")


def cap_name(text: str) -> str | None:
    """A capability's canonical name (`sys_admin`, `CAP_SYS_ADMIN` -> `SYS_ADMIN`;
    `all` -> `ALL`), or None if Linux has no such capability."""
    name = text.strip().upper()
    name = name.removeprefix("CAP_")
    return name if name in LINUX_CAPS or name == ALL else None


def is_root(user: str) -> bool:
    """Does Docker's `user[:group]` run as root, or with root's group?"""
    return any(part in ROOT_NAMES for part in user.split(":"))


def device_host_path(device: str) -> str:
    """The host side of a canonical device entry `HOST:CONTAINER:PERMS`."""
    return device.split(":", 1)[0]


class PolicyError(ValueError):
    """A `[containers]` setting is invalid; `field` names it."""

    def __init__(self, field_name: str, message: str) -> None:
        super().__init__(f"{field_name}: {message}")
        self.field = field_name
        self.message = message


@dataclass(frozen=True, slots=True)
class ContainerPolicy:
    """What jobs may ask on this node beyond the hardened default.  The
    defaults are the safe policy: no capability beyond DEFAULT_CAPS, any
    user but root, no devices, pids_limit up to DEFAULT_MAX_PIDS_LIMIT."""

    allow_caps: frozenset[str] = DEFAULT_CAPS
    allow_users: frozenset[str] = frozenset({ANY_USER})
    allow_devices: frozenset[str] = frozenset()     # host paths
    max_pids_limit: int = DEFAULT_MAX_PIDS_LIMIT
    # Host directories a `host` volume may mount (auction.volumes): these and what is under them.
    allow_host_paths: frozenset[str] = frozenset()

    def capabilities(self, spec: JobSpec) -> tuple[str, ...]:
        """The capabilities `spec`'s container gets (Docker drops ALL, then adds these)."""
        base = set() if ALL in spec.cap_drop else (DEFAULT_CAPS & self.allow_caps) - set(spec.cap_drop)
        return tuple(sorted(base | set(spec.cap_add)))

    def user_allowed(self, user: str) -> bool:
        if user in self.allow_users:
            return True
        return ANY_USER in self.allow_users and not is_root(user)

    def host_path_allowed(self, path: str) -> bool:
        """Is `path` (a plain absolute path: auction.volumes) one of allow_host_paths or under one?"""
        return any(path == allowed or path.startswith(allowed.rstrip("/") + "/") for allowed in self.allow_host_paths)

    def refusal(self, spec: JobSpec, node: str) -> str | None:
        """Why this node will not run `spec` as asked, or None if it will."""
        reasons = []
        caps = [c for c in spec.cap_add if c not in self.allow_caps]
        if caps:
            reasons.append(f"{_plural('cap', caps)} {_names(caps)} {_be(caps)} not allowed")
        if spec.user is not None and not self.user_allowed(spec.user):
            reasons.append(f"user {quote_short(spec.user)} is not allowed")
        devices = [d for d in (device_host_path(d) for d in spec.devices) if d not in self.allow_devices]
        if devices:
            reasons.append(f"{_plural('device', devices)} {_names(devices)} {_be(devices)} not allowed")
        if spec.pids_limit > self.max_pids_limit:
            reasons.append(f"pids_limit {spec.pids_limit} is over the {self.max_pids_limit} allowed")
        paths = [v.source for v in spec.volumes if v.source is not None and not self.host_path_allowed(v.source)]
        if paths:
            reasons.append(f"host {_plural('path', paths)} {_names(paths)} {_be(paths)} not allowed "
                           "(allow_host_paths)")
        if not reasons:
            return None
        return "; ".join(reasons) + f" on {node}"

    def to_dict(self) -> dict[str, Any]:
        """As the `[containers]` table would say it (for reports)."""
        return {"allow_caps": sorted(self.allow_caps), "allow_users": sorted(self.allow_users),
                "allow_devices": sorted(self.allow_devices), "max_pids_limit": self.max_pids_limit,
                "allow_host_paths": sorted(self.allow_host_paths)}

    @classmethod
    def from_table(cls, raw: Any) -> ContainerPolicy:
        """The policy of a `[containers]` table as parsed from TOML (None: the
        defaults); PolicyError naming the field if a value is wrong."""
        if raw is None:
            return cls()
        if not isinstance(raw, dict):
            raise PolicyError("containers", "expected a table of settings ([containers])")
        values: dict[str, Any] = {}
        for key, value in raw.items():
            name = str(key).replace("-", "_")
            if name not in POLICY_FIELDS:
                raise PolicyError(f"containers.{name[:64]}",
                                  f"unknown setting; [containers] takes {', '.join(POLICY_FIELDS)}")
            values[name] = _PARSERS[name](value, f"containers.{name}")
        return cls(**values)


SAFE_POLICY = ContainerPolicy()


def _strings(value: Any, path: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise PolicyError(path, "expected a list of strings")
    return value


def _allow_caps(value: Any, path: str) -> frozenset[str]:
    out: set[str] = set()
    for i, text in enumerate(_strings(value, path)):
        name = cap_name(text)
        if name is None:
            raise PolicyError(f"{path}[{i}]", f"{quote_short(text)} is not a Linux capability "
                                              "(like NET_ADMIN; see capabilities(7))")
        out |= LINUX_CAPS if name == ALL else {name}
    return frozenset(out)


def _allow_users(value: Any, path: str) -> frozenset[str]:
    # Checked like the spec's `user`: an entry no job could match is a mistake.
    for i, user in enumerate(_strings(value, path)):
        if user != ANY_USER and user_problem(user) is not None:
            raise PolicyError(f"{path}[{i}]", f"{quote_short(user)} is not a user like 'app', '1000' "
                                              f"or '1000:1000' (or '{ANY_USER}': any but root)")
    return frozenset(value)


def _allow_devices(value: Any, path: str) -> frozenset[str]:
    for i, device in enumerate(_strings(value, path)):
        if (problem := device_path_problem(device, host=True)) is not None:
            raise PolicyError(f"{path}[{i}]", problem)
    return frozenset(value)


def _allow_host_paths(value: Any, path: str) -> frozenset[str]:
    for i, allowed in enumerate(_strings(value, path)):
        if (problem := path_problem(allowed)) is not None:
            raise PolicyError(f"{path}[{i}]", problem)
    return frozenset(value)


def _max_pids(value: Any, path: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_PIDS_LIMIT:
        raise PolicyError(path, f"expected an integer from 1 to {MAX_PIDS_LIMIT}")
    return value


def user_problem(user: str) -> str | None:
    """Why `user` is not Docker's `user[:group]` (names or ids), or None."""
    if len(user) > MAX_USER_CHARS:
        return f"must be at most {MAX_USER_CHARS} characters"
    if not USER_RE.fullmatch(user):
        return (f"{quote_short(user)} is not a user like 'app', '1000' or '1000:1000' "
                "(letters, digits, '_', '.', '-')")
    return None


def device_path_problem(path: str, *, host: bool) -> str | None:
    """Why `path` is not a usable device path (the host side: under /dev), or None."""
    if len(path) > MAX_DEVICE_PATH_CHARS:
        return f"must be at most {MAX_DEVICE_PATH_CHARS} characters"
    if not DEVICE_PATH_RE.fullmatch(path) or any(part in (".", "..") for part in path.split("/")):
        return f"{quote_short(path)} is not an absolute path like /dev/fuse"
    if host and not path.startswith("/dev/"):
        return f"{quote_short(path)} is not a device under /dev/"
    return None


_PARSERS = {"allow_caps": _allow_caps, "allow_users": _allow_users, "allow_devices": _allow_devices,
            "max_pids_limit": _max_pids, "allow_host_paths": _allow_host_paths}


def _plural(word: str, items: list[str]) -> str:
    return word if len(items) == 1 else word + "s"


def _be(items: list[str]) -> str:
    return "is" if len(items) == 1 else "are"


def _names(items: Iterable[str]) -> str:
    items = list(items)
    shown = ", ".join(i if len(i) <= 64 else i[:64] + "..." for i in items[:SHOW_NAMES])
    return shown + (f" (and {len(items) - SHOW_NAMES} more)" if len(items) > SHOW_NAMES else "")
