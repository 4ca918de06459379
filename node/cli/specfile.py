"""Reading a job spec file for the client commands (`job run`, `job plan`).

How this works: `load_spec_file` reads at most the spec bound (plus one byte,
so a larger file is refused, not cut), decodes UTF-8, parses TOML and
validates it (auction.spec), reading each `[files.X] source` beside the file
into its content (node.cli.beside); any problem fails the command, listing
every problem the spec has.
"""

from __future__ import annotations

from typing import Any

from node.cli.client import fail


def load_spec_file(file: str) -> Any:
    """The validated JobSpec in TOML FILE, or fail saying every problem."""
    from auction.spec import MAX_SPEC_BYTES, SpecError, load_toml

    try:
        with open(file, "rb") as f:
            raw = f.read(MAX_SPEC_BYTES + 1)
    except OSError as e:
        fail(f"cannot read {file}: {e.strerror or e}")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        fail(f"{file}: not UTF-8 text")
    from node.cli.beside import reader_beside

    try:
        spec = load_toml(text, read_beside=reader_beside(file))
    except SpecError as e:
        lines = "".join(f"\n  {p}" for p in e.problems)
        n = len(e.problems)
        fail(f"{file}: invalid job spec ({n} problem{'s' if n != 1 else ''}):{lines}")
    return spec
