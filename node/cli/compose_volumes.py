"""A Compose service's `volumes:` and `tmpfs:` as a job's volumes (auction.volumes).

How this works: `VolumesConverter(...).convert(body)` reads both keys of one
service into the job spec dict's `volumes` table, one entry per mount, named
so the validator's problems point back at the Compose entry.

    "data:/var/lib/db[:ro]", {type: volume, source: data, target: ...}
        -> a Docker volume per replica on its node, named `data` in the job
           (`shoal-JOB-INDEX-data` on the node); `data` must be declared
           under the top-level `volumes:`, as Compose requires
    "/srv/logs:/logs[:ro]", {type: bind, source: /srv/logs, target: ...}
        -> a `host` volume: the node's path, mounted where its operator
           allows it (allow_host_paths)
    "/var/cache" (a target alone), {type: volume, target: ...} without source
        -> an anonymous volume: a Docker volume per replica all the same
    tmpfs: /run or [/run, /tmp], {type: tmpfs, target, tmpfs: {size}}
        -> a `tmpfs` volume (size as Docker writes it: 64m)

    "./nginx.conf:/etc/nginx/nginx.conf[:ro]" (a relative path to a file)
        -> a file of the job (node.cli.compose_files): read now, copied to
           every node with the job, mounted read-only

What cannot be honoured as written: a relative path to a directory
(`./data:/data`) is an error (it names a directory of this machine, which
other nodes do not have); a named volume used by two services is a warning (each
replica of each service gets its own, nothing is shared); the top-level
volume's `driver`, `driver_opts`, `external`, `name` and `labels` are
warnings (each node's local Docker volumes are used); mount options other
than `ro`/`rw` (`z`, `cached`, `nocopy`, bind propagation) are warnings.
A volume name becomes a job volume name: lowercase, `_` and `.` made `-`,
at most 15 characters, else an error naming the entry.  Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from auction.resources import json_kind
from auction.volumes import MAX_VOLUME_NAME_CHARS, MAX_VOLUMES, NAME_RE
from node.cli.compose_report import Report, ServicePart, got, join_path

LONG_KEYS = ("type", "source", "target", "read_only", "tmpfs", "volume", "bind", "consistency")
TOP_VOLUME_KEYS = ("driver", "driver_opts", "external", "name", "labels")


def declared_volumes(doc: dict[Any, Any], report: Report) -> set[str]:
    """The top-level `volumes:` names; what shoal cannot honour of their settings is warned about."""
    top = doc.get("volumes")
    if top is None:
        return set()
    if not isinstance(top, dict):
        report.error("volumes", f"must be a mapping of volume names, got {json_kind(top)}")
        return set()
    for name, body in top.items():
        for key in (body or {}) if isinstance(body, dict) else ():
            if not str(key).startswith("x-"):
                report.unsupported(join_path(join_path("volumes", name), key), str(key),
                                   "shoal uses each node's local Docker volumes, one per replica")
    return {str(name) for name in top}


class VolumesConverter(ServicePart):
    """The volumes of one service, written into `spec` (the job spec dict
    being built), with each one's Compose path in `origin` and every refused
    path in `failed` (as node.cli.compose_service keeps them).  `declared`:
    the top-level volume names; `used`: volume name -> the first service
    path that mounted it (shared across the file's services)."""

    def __init__(self, report: Report, service_path: str, spec: dict[str, Any], origin: dict[str, str],
                 failed: set[str], declared: set[str], used: dict[str, str],
                 bind_file: Callable[[str, str, bool, str], bool] | None = None) -> None:
        super().__init__(report, service_path, spec, origin, failed)
        self.declared = declared
        self.used = used
        # A relative bind of a file becomes a file of the job (node.cli.compose_files).
        self.bind_file = bind_file
        self.volumes: dict[str, dict[str, Any]] = {}
        self._anonymous = 0

    def convert(self, body: dict[Any, Any]) -> None:
        if "volumes" in body:
            entries = body["volumes"]
            path = join_path(self.path, "volumes")
            if not isinstance(entries, list):
                self.error(path, f"must be a list of mounts, got {json_kind(entries)}")
            elif len(entries) > MAX_VOLUMES:      # before any work: a file may list thousands
                self.error(path, f"at most {MAX_VOLUMES} mounts (got {len(entries)})")
            else:
                for i, entry in enumerate(entries):
                    self.entry(entry, f"{path}[{i}]")
        if "tmpfs" in body:
            paths = body["tmpfs"]
            path = join_path(self.path, "tmpfs")
            for i, target in enumerate((paths if isinstance(paths, list) else [paths])[:MAX_VOLUMES + 1]):
                where = f"{path}[{i}]" if isinstance(paths, list) else path
                if isinstance(target, str):
                    self.add(self.anonymous("tmp"), {"target": target, "type": "tmpfs"}, where)
                else:
                    self.error(where, f"must be a path, got {json_kind(target)}")
        if len(self.volumes) > MAX_VOLUMES:
            self.error(join_path(self.path, "volumes"), f"at most {MAX_VOLUMES} mounts (got {len(self.volumes)})")
        elif self.volumes:
            self.spec["volumes"] = self.volumes

    def anonymous(self, prefix: str) -> str:
        self._anonymous += 1
        return f"{prefix}{self._anonymous}"

    def add(self, name: str, volume: dict[str, Any], path: str) -> None:
        if name in self.volumes:
            self.error(path, f"mounts volume {name!r} a second time")
            return
        self.volumes[name] = volume
        self.origin[f"volumes.{name}"] = path

    def entry(self, entry: Any, path: str) -> None:
        if isinstance(entry, str):
            self.short(entry, path)
        elif isinstance(entry, dict):
            self.long(entry, path)
        else:
            self.error(path, f"must be a string like data:/var/lib/app or a mapping, got {json_kind(entry)}")

    def short(self, text: str, path: str) -> None:
        parts = text.split(":")
        if len(parts) == 1:
            self.add(self.anonymous("anon"), {"target": text}, path)
            return
        if len(parts) > 3:
            self.error(path, f"{got(text)} is not SOURCE:TARGET[:MODE]")
            return
        source, target = parts[0], parts[1]
        read_only = False
        for option in (parts[2].split(",") if len(parts) == 3 else []):
            if option in ("ro", "rw"):
                read_only = option == "ro"
            else:
                self.r.unsupported(path, option, f"mount option {option!r}")
        self.mount("bind" if source[:1] in "/.~" else "volume", source, target, read_only, path)

    def long(self, entry: dict[Any, Any], path: str) -> None:
        self.r.unknown_keys(entry, LONG_KEYS, path)
        for key in ("volume", "bind", "consistency"):
            if key in entry:
                self.r.unsupported(join_path(path, key), key, "mount options are not passed on")
        kind, target, read_only = entry.get("type"), entry.get("target"), entry.get("read_only", False)
        if not isinstance(target, str):
            self.error(join_path(path, "target"), "required: the path in the container")
            return
        if kind == "tmpfs":
            volume: dict[str, Any] = {"target": target, "type": "tmpfs"}
            size = entry["tmpfs"].get("size") if isinstance(entry.get("tmpfs"), dict) else None
            if size is not None:
                volume["size"] = size       # bytes, or Docker's 64m: the validator reads both
            self.add(self.anonymous("tmp"), volume, path)
        elif kind in ("volume", "bind"):
            source = entry.get("source")
            if kind == "volume" and source is None:
                self.add(self.anonymous("anon"), {"target": target, "read_only": read_only}, path)
            elif not isinstance(source, str):
                self.error(join_path(path, "source"), f"must be a {'path' if kind == 'bind' else 'volume name'}")
            else:
                self.mount(kind, source, target, read_only, path)
        else:
            self.error(join_path(path, "type"), f"must be volume, bind or tmpfs, got {got(kind)}")

    def mount(self, kind: str, source: str, target: str, read_only: Any, path: str) -> None:
        if kind == "bind":
            if not source.startswith("/"):
                if self.bind_file is not None and self.bind_file(source, target, read_only is True, path):
                    return
                self.error(path, f"{got(source)} names a directory of this machine (relative, or under ~), which "
                                 "other nodes do not have: give the absolute path on the nodes, or use a named "
                                 "volume (a file is copied into the job, a directory is not)")
                return
            name = self.anonymous("host")
            self.add(name, {"target": target, "type": "host", "source": source, "read_only": read_only}, path)
            return
        if source not in self.declared:
            self.error(path, f"volume {got(source)} is not declared under the top-level 'volumes:'")
            return
        name = source.lower().replace("_", "-").replace(".", "-")
        if len(name) > MAX_VOLUME_NAME_CHARS or not NAME_RE.fullmatch(name):
            self.error(path, f"volume {got(source)} cannot name a shoal volume (lowercase letters, digits and "
                             f"'-', starting with a letter, at most {MAX_VOLUME_NAME_CHARS} characters)")
            return
        first = self.used.setdefault(source, self.path)
        if first != self.path:
            self.r.warn(path, f"volume {source!r} is also mounted by {first}: not shared, each replica of each "
                              "service gets its own on its node")
        self.add(name, {"target": target, "read_only": read_only}, path)

