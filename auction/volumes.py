"""Volumes: what a job mounts into its containers, and the rule for each kind.

How this works: a job names its volumes (`[volumes.data] target =
"/var/lib/app"`), each of one kind:

- `volume` (the default): a Docker volume on the node, one per slot
  (`docker_volume_name`: `shoal-<job>-<index>-<name>`), created by the engine
  at the first start and kept when the container is replaced (a new
  version, a restart) or the job stops: data outlives the container, as a
  Compose or Swarm named volume does.  It stays on its node: a slot placed
  on another node starts there with an empty one, so jobs with node-local
  data are not rebalanced (auction.rebalance); pin them with constraints
  when the data must not be left behind.
- `tmpfs`: memory, gone with the container (`size`, default 64 MiB, counted
  in the replica's `memory` limit by the kernel); what a `read_only` job
  writes to.
- `host`: a path of the node (`source`), as Docker's bind mount.  A host
  path reaches outside the container, so a node mounts only what its
  operator allows (`allow_host_paths` in the agent's `[containers]` table,
  auction.container_policy): none by default.

`check` validates a spec's `volumes` table into sorted `VolumeSpec`s, every
problem with its path (`volumes.data.target`); `docker_mounts` is what the
runtime gives the engine.  Pure: no I/O.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .mounts import check_mounts
from .resources import MiB, UnitError, canonical_memory, parse_memory

if TYPE_CHECKING:
    from .spec_check import Checker

MAX_VOLUMES = 16
MAX_VOLUME_NAME_CHARS = 15
MAX_PATH_CHARS = 4096
VOLUME_KINDS = ("volume", "tmpfs", "host")
VOLUME_FIELDS = ("target", "type", "source", "read_only", "size")
DEFAULT_TMPFS_BYTES = 64 * MiB
MAX_TMPFS_BYTES = 64 * 1024 * MiB
NAME_RE = re.compile(r"[a-z][a-z0-9-]*", re.ASCII)
PATH_RE = re.compile(r"(/[A-Za-z0-9_.@+-]+)+", re.ASCII)


@dataclass(frozen=True, slots=True, order=True)
class VolumeSpec:
    name: str
    target: str                     # where it is mounted in the container
    kind: str = "volume"            # one of VOLUME_KINDS
    source: str | None = None       # host: the node's path
    read_only: bool = False
    size_bytes: int | None = None   # tmpfs: its size

    @property
    def node_local_data(self) -> bool:
        """Data that stays on the node when the container goes (not tmpfs)."""
        return self.kind != "tmpfs"

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"target": self.target}
        if self.kind != "volume":
            d["type"] = self.kind
        if self.source is not None:
            d["source"] = self.source
        if self.read_only:
            d["read_only"] = True
        if self.size_bytes is not None:
            d["size"] = canonical_memory(self.size_bytes)
        return d


def path_problem(path: str) -> str | None:
    """Why `path` is not a plain absolute path (no `.` or `..` parts), or None."""
    if len(path) > MAX_PATH_CHARS:
        return f"must be at most {MAX_PATH_CHARS} characters"
    if not PATH_RE.fullmatch(path) or any(part in (".", "..") for part in path.split("/")):
        return f"{path[:64]!r} is not an absolute path like /var/lib/app (letters, digits, '_', '.', '@', '+', '-')"
    return None


def check(c: Checker, value: Any) -> tuple[VolumeSpec, ...]:
    """The spec's `volumes` table as VolumeSpecs, sorted by name; problems go to `c`."""
    return tuple(sorted(check_mounts(c, value, "volumes", MAX_VOLUMES, NAME_RE, MAX_VOLUME_NAME_CHARS,
                                 "volume names are lowercase letters, digits and '-', starting with a letter, "
                                 f"at most {MAX_VOLUME_NAME_CHARS} characters (like 'data')", VOLUME_FIELDS, _one)))


def _one(c: Checker, name: str, vol: dict[Any, Any], path: str) -> VolumeSpec | None:
    kind = vol.get("type", "volume")
    if kind not in VOLUME_KINDS:
        c.add(f"{path}.type", f"must be one of {', '.join(VOLUME_KINDS)} (got {str(kind)[:64]!r})")
        return None
    text = _path(c, vol.get("target"), f"{path}.target", "required: the path in the container, like /var/lib/app")
    if text is None:
        return None
    source = vol.get("source")
    if kind == "host":
        source = _path(c, source, f"{path}.source", 'required with type = "host": the node\'s path, like /srv/app')
        if source is None:
            return None
    elif source is not None:
        c.add(f"{path}.source", f'only a host volume has a source; a {kind} one is made for the '
                                f'{"slot" if kind == "volume" else "container"}')
        return None
    read_only = vol.get("read_only", False)
    if not isinstance(read_only, bool):
        c.add(f"{path}.read_only", "must be true or false")
        return None
    size = _size(c, kind, vol.get("size"), f"{path}.size")
    if size is False:
        return None
    return VolumeSpec(name, text, kind, source, read_only, size)


def _path(c: Checker, value: Any, where: str, if_missing: str) -> str | None:
    """A plain absolute path at `where`, or None after its problem."""
    if value is None:
        c.add(where, if_missing)
        return None
    text = c.string(value, where, MAX_PATH_CHARS)
    if text is not None and (problem := path_problem(text)) is not None:
        c.add(where, problem)
        return None
    return text


def _size(c: Checker, kind: str, value: Any, path: str) -> int | None | bool:
    """A tmpfs size in bytes (its default when absent); False after a problem."""
    if kind != "tmpfs":
        if value is not None:
            c.add(path, "only a tmpfs volume has a size")
            return False
        return None
    if value is None:
        return DEFAULT_TMPFS_BYTES
    try:
        n = parse_memory(value)
    except UnitError as e:
        c.add(path, str(e))
        return False
    if not 1 * MiB <= n <= MAX_TMPFS_BYTES:
        c.add(path, f"must be from 1MiB to {canonical_memory(MAX_TMPFS_BYTES)}")
        return False
    return n


def docker_volume_name(job: str, index: int, volume: str) -> str:
    """The Docker volume of slot (job, index)'s `volume`, on its node."""
    return f"shoal-{job}-{index}-{volume}"


def docker_mounts(volumes: tuple[VolumeSpec, ...], job: str, index: int,
                  labels: dict[str, str]) -> list[dict[str, Any]]:
    """The engine API's HostConfig.Mounts for a slot's container; the Docker
    volumes it creates carry `labels` (whose they are)."""
    out: list[dict[str, Any]] = []
    for v in volumes:
        mount: dict[str, Any] = {"Target": v.target, "ReadOnly": v.read_only}
        if v.kind == "volume":
            mount.update(Type="volume", Source=docker_volume_name(job, index, v.name),
                         VolumeOptions={"Labels": dict(labels)})
        elif v.kind == "tmpfs":
            mount.update(Type="tmpfs", TmpfsOptions={"SizeBytes": v.size_bytes})
        else:
            mount.update(Type="bind", Source=v.source)
        out.append(mount)
    return out
