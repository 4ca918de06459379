"""Files: small texts a job puts into its containers (configs, and Compose secrets).

How this works: a job names its files (`[files.nginx] target =
"/etc/nginx/nginx.conf"`, `content = "..."`, optional `mode`, default
"0444"); the text travels in the job spec itself, so every node that runs a
replica has it and nothing is fetched at start (Swarm configs, Nomad's
template `data`, a Kubernetes ConfigMap do the same job).  The node writes
each file once under its own directory, named by the digest of its content
and mode (`digest`), and mounts it read-only at `target`
(node/runtime/files.py): a replica sees exactly the spec's bytes, and a new
content is a new container (`files` is in the container hash), rolled out
as any other change.  Their size counts in the spec's bound (MAX_SPEC_BYTES,
64 KiB), which keeps them small enough to gossip.

A file is readable by anyone who can read the job store (every node, and a
member with the gossip key): it is not a secret store.  `secret = true`
only keeps its text out of what the API shows of the job (its spec, its
history's changes, a plan: `redact`), so it does not end up on screens,
in terminals' scrollback or in CI logs.

A TOML job file may name a file beside it instead (`source = "nginx.conf"`):
`shoal job run` reads it and sends its text as `content` (`inline_sources`,
given the CLI's reader); over the API a `source` is an error saying so.

`check` validates a spec's `files` table into sorted `FileSpec`s, every
problem with its path (`files.nginx.target`).  Pure: no I/O.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .mounts import check_mounts
from .volumes import MAX_PATH_CHARS, path_problem

if TYPE_CHECKING:
    from .spec_check import Checker

MAX_FILES = 32
MAX_FILE_NAME_CHARS = 63
# Every file's text together is bounded by the spec's own size (MAX_SPEC_BYTES);
# this is only the first cut, before the rest of the spec is measured.
MAX_CONTENT_CHARS = 64 * 1024
DEFAULT_MODE = 0o444
FILE_FIELDS = ("target", "content", "mode", "secret", "source")
NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*", re.ASCII)
MODE_RE = re.compile(r"0?[0-7]{3}", re.ASCII)


@dataclass(frozen=True, slots=True, order=True)
class FileSpec:
    name: str
    target: str                 # where it appears in the container
    content: str
    mode: int = DEFAULT_MODE    # its permission bits (owner root)
    secret: bool = False        # its text is not shown by the API (`redact`)

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"target": self.target, "content": self.content}
        if self.mode != DEFAULT_MODE:
            d["mode"] = f"{self.mode:04o}"
        if self.secret:
            d["secret"] = True
        return d

    def digest(self) -> str:
        """Names the node's copy: equal content and mode are one file on a node."""
        return hashlib.sha256(f"{self.mode:04o}\n{self.content}".encode()).hexdigest()[:32]


def check(c: Checker, value: Any) -> tuple[FileSpec, ...]:
    """The spec's `files` table as FileSpecs, sorted by name; problems go to `c`."""
    return tuple(sorted(check_mounts(c, value, "files", MAX_FILES, NAME_RE, MAX_FILE_NAME_CHARS,
                                 "file names are letters, digits, '_', '.' and '-', starting with a letter or digit, "
                                 f"at most {MAX_FILE_NAME_CHARS} characters (like 'nginx.conf')", FILE_FIELDS, _one)))


def _one(c: Checker, name: str, entry: dict[Any, Any], path: str) -> FileSpec | None:
    target = entry.get("target")
    if target is None:
        c.add(f"{path}.target", "required: the file's path in the container, like /etc/app/config.yml")
        return None
    target = c.string(target, f"{path}.target", MAX_PATH_CHARS)
    if target is None:
        return None
    if (problem := path_problem(target)) is not None:
        c.add(f"{path}.target", problem)
        return None
    if "source" in entry:
        c.add(f"{path}.source", "a file beside a TOML job is read by `shoal job run FILE` (and `job plan`), "
                                "which sends its text as content; give content here")
        return None
    if "content" not in entry:
        c.add(f"{path}.content", "required: the file's text (or, in a TOML job file, source = a file beside it)")
        return None
    content = c.string(entry["content"], f"{path}.content", MAX_CONTENT_CHARS)
    if content is None:
        return None
    mode = _mode(c, entry.get("mode", DEFAULT_MODE), f"{path}.mode")
    if mode is None:
        return None
    secret = entry.get("secret", False)
    if not isinstance(secret, bool):
        c.add(f"{path}.secret", "must be true or false")
        return None
    return FileSpec(name, target, content, mode, secret)


def _mode(c: Checker, value: Any, path: str) -> int | None:
    """Permission bits: an integer (TOML's 0o440) or octal text ("0440")."""
    if isinstance(value, str) and MODE_RE.fullmatch(value):
        return int(value, 8)
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= 0o777:
        return value
    c.add(path, f'must be permission bits like "0440" (or 0o440 in TOML), got {str(value)[:64]!r}')
    return None


def conflicts(files: tuple[FileSpec, ...], volume_targets: dict[str, str]) -> list[tuple[str, str]]:
    """(problem path, message) for each file whose target is a volume's."""
    return [(f"files.{f.name}.target", f"{f.target} is also the target of volumes.{volume_targets[f.target]}")
            for f in files if f.target in volume_targets]


def redact(spec: dict[str, Any]) -> dict[str, Any]:
    """A job's canonical form (JobSpec.to_dict()) as the API shows it: each
    secret file's text replaced by its size and digest (so two versions
    still tell apart).  The rest as it is."""
    files = spec.get("files")
    if not isinstance(files, dict) or not any(isinstance(f, dict) and f.get("secret") for f in files.values()):
        return spec
    shown = {}
    for name, f in files.items():
        if isinstance(f, dict) and f.get("secret") and isinstance(f.get("content"), str):
            text = f["content"].encode()
            f = {**f, "content": f"(secret: {len(text)} bytes, sha256 {hashlib.sha256(text).hexdigest()[:12]})"}
        shown[name] = f
    return {**spec, "files": shown}


def inline_sources(raw: dict[Any, Any], read: Callable[[str], str]) -> list[tuple[str, str]]:
    """Replace each `source` of a parsed TOML job's files with `content`, the
    text `read` gives (the CLI's reader of files beside the job file); the
    (path, message) of each that could not be read."""
    files = raw.get("files")
    if not isinstance(files, dict) or len(files) > MAX_FILES:
        return []           # the validator says what is wrong with it
    problems = []
    for name, entry in files.items():
        if not isinstance(entry, dict) or "source" not in entry:
            continue
        where = f"files.{str(name)[:64]}.source"
        source = entry["source"]
        if "content" in entry:
            problems.append((where, "give source or content, not both"))
        elif not isinstance(source, str) or not source:
            problems.append((where, "must be the path of a file beside the job file"))
        else:
            try:
                text = read(source)
            except FileNotFoundError:
                problems.append((where, f"{source[:64]!r}: no such file (paths are relative to the job file)"))
                continue
            except (OSError, ValueError) as e:
                problems.append((where, f"{source[:64]!r}: {getattr(e, 'strerror', None) or e}"))
                continue
            entry.pop("source")
            entry["content"] = text
    return problems
