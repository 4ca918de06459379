"""A Compose service's `env_file:`: variables read from files beside the Compose file.

How this works: `shoal stack deploy` reads the files (relative to the
Compose file's directory, bounded: node.cli.beside) and
`parse_env_file` turns each into variables, as
Compose reads them: one `KEY=VALUE` a line; blank lines and lines starting
with `#` skipped; an optional `export ` before the name; a value in single
quotes taken as written, in double quotes with `\\n`, `\\t`, `\\"` and `\\\\`
unescaped, unquoted up to an inline ` #` comment and stripped.  A line
without `=` is an error naming its file and line (Compose would take the
value from the shell running it, which means nothing on a cluster).  Files
listed later win, and the service's own `environment` wins over them all
(node.cli.compose_service).  No `${...}` interpolation, as for
`environment`.
"""

from __future__ import annotations

import re

MAX_ENV_FILES = 16
_NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*", re.ASCII)
_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", '"': '"', "\\": "\\"}


class EnvFileError(ValueError):
    pass


def parse_env_file(text: str) -> dict[str, str]:
    """The variables of one env file; EnvFileError naming the line of a problem."""
    out: dict[str, str] = {}
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        line = line.removeprefix("export ").lstrip()
        name, eq, value = line.partition("=")
        name = name.strip()
        if not _NAME_RE.fullmatch(name):
            raise EnvFileError(f"line {number}: {name[:64]!r} is not a variable name")
        if not eq:
            raise EnvFileError(f"line {number}: {name} has no value (write {name}=VALUE)")
        out[name] = _value(value.strip(), number)
    return out


def _value(text: str, number: int) -> str:
    if text[:1] == "'":
        if len(text) < 2 or not text.endswith("'"):
            raise EnvFileError(f"line {number}: the single quote is not closed")
        return text[1:-1]
    if text[:1] == '"':
        out, i = [], 1
        while i < len(text) and text[i] != '"':
            if text[i] == "\\" and i + 1 < len(text):
                out.append(_ESCAPES.get(text[i + 1], "\\" + text[i + 1]))
                i += 2
            else:
                out.append(text[i])
                i += 1
        if i >= len(text):
            raise EnvFileError(f"line {number}: the double quote is not closed")
        return "".join(out)
    comment = text.find(" #")
    return (text if comment < 0 else text[:comment]).strip()
