"""Files beside a Compose file: the one thing a stack's conversion reads from disk.

How this works: `reader_beside(compose_file)` gives the converter a
function that reads a path relative to the Compose file's directory (`~`
expanded, as Compose does), at most MAX_BESIDE_FILE_BYTES, as UTF-8 text;
`env_file` (node.cli.compose_env) and `configs`/`secrets`/file binds
(node.cli.compose_files) read through it.  It raises OSError (no such file,
a directory) or BesideFileError (too large, not UTF-8 text); the converter
reports either at the entry that named the path.  The rest of the
conversion is pure, and is given no reader when nothing may be read (it
then warns or errs for what needs one).
"""

from __future__ import annotations

import os
from collections.abc import Callable

MAX_BESIDE_FILE_BYTES = 64 * 1024       # a job spec's own bound: nothing larger could travel in one

# path -> the file's text; raises OSError or BesideFileError.
BesideReader = Callable[[str], str]


class BesideFileError(ValueError):
    pass


def reader_beside(compose_file: str) -> BesideReader:
    """Reads paths relative to `compose_file`'s directory, bounded, as UTF-8."""
    base = os.path.dirname(os.path.abspath(compose_file))

    def read(path: str) -> str:
        full = os.path.join(base, os.path.expanduser(path))
        with open(full, "rb") as f:
            data = f.read(MAX_BESIDE_FILE_BYTES + 1)
        if len(data) > MAX_BESIDE_FILE_BYTES:
            raise BesideFileError(f"larger than {MAX_BESIDE_FILE_BYTES} bytes")
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError:
            raise BesideFileError("not UTF-8 text") from None
    return read
