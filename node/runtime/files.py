"""A job's files on this node: written once, mounted read-only (auction.files has the rule).

How this works: `FileStore` keeps one regular file per distinct (content,
mode) under its directory, named by `FileSpec.digest()`.  `mounts(files)`
writes the ones missing (to a temporary name, then renamed: a container
never sees half a file) and returns the engine's bind mounts for them;
the runtime calls it before each create and each start of an existing
container, so a file removed by hand, or a directory cleared by a reboot,
is written again.  `collect(keep)` removes the files no desired replica
uses once they are older than COLLECT_GRACE_S (a container of an older
version may still be starting with one); a running container keeps its
file open through the mount, whatever happens to the name here.

The directory is the agent's `state_dir`/files, or a private temporary one
(mode 0700: the containers see only their own files, through their mounts).
Bind mounts name paths of this machine, so files need an engine on this
machine: `files_refusal` says so of any other.
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path
from typing import Any

from auction.files import FileSpec
from auction.spec import JobSpec

COLLECT_GRACE_S = 600.0


def files_refusal(spec: JobSpec, docker_host: str) -> str | None:
    """Why this node cannot give `spec` its files (its engine is on another
    machine: a bind mount names a path there), or None."""
    if spec.files and not docker_host.startswith("unix://"):
        return f"the job has files, which need the engine on this machine (a unix socket), not {docker_host}"
    return None


class FileStore:
    def __init__(self, directory: Path | None = None) -> None:
        self._dir = directory

    @property
    def directory(self) -> Path:
        if self._dir is None:
            self._dir = Path(tempfile.mkdtemp(prefix="shoal-files-"))
        self._dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        return self._dir

    def path(self, f: FileSpec) -> Path:
        return self.directory / f.digest()

    def mounts(self, files: tuple[FileSpec, ...]) -> list[dict[str, Any]]:
        """HostConfig.Mounts binding each file read-only at its target; writes what is missing."""
        out = []
        for f in files:
            path = self.path(f)
            if not path.is_file():
                self._write(path, f)
            out.append({"Type": "bind", "Source": str(path), "Target": f.target, "ReadOnly": True})
        return out

    def _write(self, path: Path, f: FileSpec) -> None:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".new-")
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(f.content.encode("utf-8"))
            os.chmod(tmp, f.mode)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def collect(self, keep: set[str], now: float | None = None) -> int:
        """Remove files whose digest is not in `keep` and that are older than
        COLLECT_GRACE_S; how many went."""
        if self._dir is None or not self._dir.is_dir():
            return 0
        now = time.time() if now is None else now
        gone = 0
        for entry in os.scandir(self._dir):
            if entry.name in keep:
                continue
            try:
                if now - entry.stat(follow_symlinks=False).st_mtime > COLLECT_GRACE_S:
                    os.unlink(entry.path)
                    gone += 1
            except FileNotFoundError:
                continue
        return gone
