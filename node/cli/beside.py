"""Files beside a Compose file or a job spec file: the one thing the CLI's conversions read from disk.

How this works: `reader_beside(path)` gives a conversion a function that
reads a path relative to that file's directory (`~` expanded, as Compose
does), at most MAX_BESIDE_FILE_BYTES, as UTF-8 text: `env_file`
(node.cli.compose_env), `configs`/`secrets`/file binds
(node.cli.compose_files) and a TOML job's `[files.X] source`
(node.cli.specfile, auction.files) read through it.  It raises OSError
(no such file, a directory) or BesideFileError (too large, not UTF-8
text); the conversion reports either at the entry that named the path.
The rest of each conversion is pure, and is given no reader when nothing
may be read (it then warns or errs for what needs one).
"""

from __future__ import annotations

import os
from collections.abc import Callable

MAX_BESIDE_FILE_BYTES = 64 * 1024       # a job spec's own bound: nothing larger could travel in one

# path -> the file's text; raises OSError or BesideFileError.
BesideReader = Callable[[str], str]


class BesideFileError(ValueError):
    pass


def reader_beside(file: str) -> BesideReader:
    """Reads paths relative to `file`'s directory, bounded, as UTF-8."""
    base = os.path.dirname(os.path.abspath(file))

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
