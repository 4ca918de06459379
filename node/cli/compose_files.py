"""A Compose file's `configs:` and `secrets:`, and its file binds, as a job's files (auction.files).

How this works: `declared_files(doc, report, read)` reads the top-level
`configs:` and `secrets:` into their texts: `file: ./nginx.conf` is read
beside the Compose file (node.cli.beside), `content:` is taken as
written (configs); `external`, `environment` and a missing source are
errors (shoal has no store of configs to refer to, and the deploying
shell's environment means nothing on a cluster); `name`, `labels`,
`template_driver` are warnings.  A secret becomes a file marked `secret`
(the API does not show its text, auction.files) and gets a warning: every
node's job store holds it, not encrypted apart as Swarm's secrets are.

`FilesConverter(...).convert(body)` reads one service's `configs:` and
`secrets:` (short: a name; long: `source`, `target`, `mode`, `uid`, `gid`)
into the job spec dict's `files` table: a config goes to `/<name>` unless
`target` says otherwise, a secret to `/run/secrets/<name>` (a relative
`target` is under /run/secrets, as in Compose); mode is Compose's (default
0444); `uid`/`gid` are warnings (the agent's user owns them).
`bind_file` turns a relative bind mount of a file (`./nginx.conf:/etc/
nginx/nginx.conf:ro`, the common way to give a container its config) into a
file of the job, read now: other nodes do not have the Compose file's
directory, and a copy in the job reaches them all.  A relative directory
stays an error.  File names in the job are the config's, the secret's or
the bound file's name, made valid (auction.files.NAME_RE), `-2`, `-3` added
on a clash.
"""

from __future__ import annotations

import os
import re
from typing import Any

from auction.files import MAX_FILE_NAME_CHARS, MAX_FILES
from auction.resources import json_kind
from node.cli.beside import BesideFileError, BesideReader
from node.cli.compose_report import Report, ServicePart, got, join_path

KINDS = ("configs", "secrets")
TOP_KEYS = {"configs": ("file", "content", "external", "environment", "name", "labels", "template_driver"),
            "secrets": ("file", "external", "environment", "name", "labels", "template_driver")}
LONG_KEYS = ("source", "target", "mode", "uid", "gid")
SECRETS_DIR = "/run/secrets"
SECRET_WARNING = ("kept in the job spec as a file marked secret: the API does not show its text, but every "
                  "node's job store holds it, not encrypted apart as Swarm's secrets are")
_NOT_NAME_RE = re.compile(r"[^A-Za-z0-9_.-]+", re.ASCII)

# (kind, name) -> its text; None: declared, but its text could not be had (reported).
Declared = dict[tuple[str, str], str | None]


def declared_files(doc: dict[Any, Any], report: Report, read: BesideReader | None) -> Declared:
    """The top-level configs' and secrets' texts; every problem reported at its path."""
    out: Declared = {}
    for kind in KINDS:
        top = doc.get(kind)
        if top is None:
            continue
        if not isinstance(top, dict):
            report.error(kind, f"must be a mapping of {kind[:-1]} names, got {json_kind(top)}")
            continue
        if len(top) > MAX_FILES * 8:        # before any file is read: a document may declare thousands
            report.error(kind, f"at most {MAX_FILES * 8} {kind} (got {len(top)})")
            continue
        for name, body in top.items():
            path = join_path(kind, name)
            out[(kind, str(name))] = _text(kind, body, path, report, read)
            if kind == "secrets":
                report.warn(path, SECRET_WARNING)
    return out


def _text(kind: str, body: Any, path: str, report: Report, read: BesideReader | None) -> str | None:
    if not isinstance(body, dict):
        report.error(path, f"must be a mapping with {_sources(kind)}, got {json_kind(body)}")
        return None
    report.unknown_keys(body, TOP_KEYS[kind], path)
    for key in ("name", "labels", "template_driver"):
        if key in body:
            report.unsupported(join_path(path, key), key)
    if body.get("external"):
        report.error(join_path(path, "external"), f"shoal keeps no {kind} apart from jobs: give {_sources(kind)}")
        return None
    if "environment" in body:
        report.error(join_path(path, "environment"), "the deploying shell's variables mean nothing on the "
                                                     "cluster: give 'file'")
        return None
    if kind == "configs" and "content" in body:
        content = body["content"]
        if not isinstance(content, str):
            report.error(join_path(path, "content"), f"must be a string, got {json_kind(content)}")
            return None
        return content
    source = body.get("file")
    if not isinstance(source, str):
        report.error(path, "required: 'file' (a path beside the Compose file)"
                     + (" or 'content'" if kind == "configs" else "") if source is None
                     else f"'file' must be a path, got {json_kind(source)}")
        return None
    return read_file(source, join_path(path, "file"), report, read)


def _sources(kind: str) -> str:
    """What a top-level entry of `kind` may give its text with."""
    return "'file' or 'content'" if kind == "configs" else "'file'"


def read_file(source: str, path: str, report: Report, read: BesideReader | None) -> str | None:
    """The text of `source` beside the Compose file, or None after its problem."""
    if read is None:
        report.error(path, f"{got(source)} is read by `shoal stack deploy FILE` from beside the Compose file")
        return None
    try:
        return read(source)
    except FileNotFoundError:
        report.error(path, f"{got(source)}: no such file (paths are relative to the Compose file)")
    except IsADirectoryError:
        report.error(path, f"{got(source)} is a directory; a config is one file")
    except (OSError, BesideFileError) as e:
        report.error(path, f"{got(source)}: {getattr(e, 'strerror', None) or e}")
    return None


def job_file_name(raw: str, taken: dict[str, Any]) -> str:
    """`raw` as a valid file name of the job, not in `taken`."""
    base = _NOT_NAME_RE.sub("-", raw).lstrip("-_.")[:MAX_FILE_NAME_CHARS - 3] or "file"
    name, n = base, 1
    while name in taken:
        n += 1
        name = f"{base}-{n}"
    return name


class FilesConverter(ServicePart):
    """The files of one service, written into `spec["files"]`, with each
    one's Compose path in `origin` and every refused path in `failed` (as
    node.cli.compose_service keeps them)."""

    def __init__(self, report: Report, service_path: str, spec: dict[str, Any], origin: dict[str, str],
                 failed: set[str], declared: Declared, read: BesideReader | None) -> None:
        super().__init__(report, service_path, spec, origin, failed)
        self.declared = declared
        self.read = read
        self.files: dict[str, dict[str, Any]] = {}

    def convert(self, body: dict[Any, Any]) -> None:
        for kind in KINDS:
            if kind not in body:
                continue
            entries, path = body[kind], join_path(self.path, kind)
            if not isinstance(entries, list):
                self.error(path, f"must be a list of {kind[:-1]} names or mappings, got {json_kind(entries)}")
            elif len(entries) > MAX_FILES:
                self.error(path, f"at most {MAX_FILES} {kind} (got {len(entries)})")
            else:
                for i, entry in enumerate(entries):
                    self.entry(kind, entry, f"{path}[{i}]")
        self.done()

    def done(self) -> None:
        if self.files:
            self.spec["files"] = self.files

    def entry(self, kind: str, entry: Any, path: str) -> None:
        if isinstance(entry, str):
            entry = {"source": entry}
        if not isinstance(entry, dict):
            self.error(path, f"must be a {kind[:-1]} name or a mapping, got {json_kind(entry)}")
            return
        self.r.unknown_keys(entry, LONG_KEYS, path)
        for key in ("uid", "gid"):
            if key in entry:
                self.r.unsupported(join_path(path, key), key, "files are owned by the agent's user; "
                                                               "mode decides who reads them")
        source = entry.get("source")
        if not isinstance(source, str) or (kind, source) not in self.declared:
            self.error(path, f"{kind[:-1]} {got(source)} is not declared under the top-level '{kind}:'")
            return
        content = self.declared[(kind, source)]
        if content is None:
            self.failed.add(path)       # its declaration's problem was reported
            return
        target = entry.get("target")
        if target is None:
            target = f"{SECRETS_DIR}/{source}" if kind == "secrets" else f"/{source}"
        elif kind == "secrets" and isinstance(target, str) and not target.startswith("/"):
            target = f"{SECRETS_DIR}/{target}"
        secret = {"secret": True} if kind == "secrets" else {}       # not shown by the API (auction.files)
        self.add(source, {"target": target, "content": content, **_mode(entry.get("mode")), **secret}, path)

    def add(self, raw_name: str, file: dict[str, Any], path: str) -> None:
        name = job_file_name(raw_name, self.files)
        self.files[name] = file
        self.origin[f"files.{name}"] = path

    def bind_file(self, source: str, target: str, read_only: bool, path: str) -> bool:
        """A relative bind mount (`./nginx.conf:/etc/nginx/nginx.conf`): its
        file copied into the job; True if handled (an error included), False
        if it names a directory (the volumes converter says what to do)."""
        if self.read is None:
            return False
        try:
            content = self.read(source)
        except IsADirectoryError:
            return False
        except FileNotFoundError:
            self.error(path, f"{got(source)}: no such file beside the Compose file")
            return True
        except (OSError, BesideFileError) as e:
            self.error(path, f"{got(source)}: {getattr(e, 'strerror', None) or e}")
            return True
        if not read_only:
            self.r.warn(path, f"{source} is copied into the job and mounted read-only: "
                              "what a replica writes there would not reach the file")
        self.add(os.path.basename(source.rstrip("/")), {"target": target, "content": content}, path)
        return True


def _mode(value: Any) -> dict[str, Any]:
    """Compose's mode (an integer, 0440 in YAML) as the job's ("0440"); else passed for the validator to refuse."""
    if value is None:
        return {}
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= 0o777:
        return {"mode": f"{value:04o}"}
    return {"mode": value}
