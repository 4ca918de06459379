"""Named mounts: the walk that volumes (auction.volumes) and files (auction.files) share.

How this works: `check_mounts` walks a spec's table of named entries
(`[volumes.data]`, `[files."nginx.conf"]`): at most `most` of them, each
name matching its kind's rule, each entry a table of its kind's fields,
checked into a value by the kind's own `one`; no two entries with one
target.  Every problem goes to the spec's Checker with its path.  Pure: no I/O.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

if TYPE_CHECKING:
    from .spec_check import Checker


class Mount(Protocol):
    """What a volume and a file have in common: where they appear in the container."""
    @property
    def target(self) -> str: ...


M = TypeVar("M", bound=Mount)


def check_mounts(c: Checker, value: Any, field: str, most: int, name_re: re.Pattern[str], max_name_chars: int,
                 name_rule: str, fields: tuple[str, ...],
                 one: Callable[[Checker, str, dict[Any, Any], str], M | None]) -> list[M]:
    """The table's entries checked by `one`, in table order; `name_rule` is
    said of a name that does not match `name_re`."""
    table = c.table(value, field)
    if table is None:
        return []
    if len(table) > most:
        c.add(field, f"at most {most} {field} (got {len(table)})")
        return []
    out: list[M] = []
    targets: dict[str, str] = {}
    for name, raw in table.items():
        path = f"{field}.{str(name)[:64]}"
        if not isinstance(name, str) or len(name) > max_name_chars or not name_re.fullmatch(name):
            c.add(path, name_rule)
            continue
        entry = c.table(raw, path)
        if entry is None:
            continue
        c.unknown_fields(entry, fields, path)
        mount = one(c, name, entry, path)
        if mount is None:
            continue
        if mount.target in targets:
            c.add(f"{path}.target", f"{mount.target} is also the target of {field}.{targets[mount.target]}")
            continue
        targets[mount.target] = name
        out.append(mount)
    return out
