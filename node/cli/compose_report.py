"""Problems found in a Compose file: errors, warnings, and how paths are named.

How this works: a `Report` collects every problem of one conversion, each
with the Compose path it is about (`services.web.deploy.replicas`), as
`auction.spec.Problem`s: errors (the file cannot run as written; all of them
are raised at once as one `ComposeError`) and warnings (a key shoal does not
read, or a value it cannot honour: "PATH: not supported by shoal, ignored",
with a hint when there is one).  At most `MAX_PROBLEMS` of each are kept;
the rest are counted, so a hostile file cannot make the report huge.
Extension fields (`x-...`) are never warned about: the Compose specification
says every implementation ignores them.
"""

from __future__ import annotations

import json
import re
from typing import Any

from auction.resources import json_kind
from auction.spec import Problem

MAX_PROBLEMS = 200                   # errors or warnings listed; the rest are counted
NOT_SUPPORTED = "not supported by shoal, ignored"

# Why some keys cannot be honoured, added to the warning.
HINTS = {
    "expose": "only the ports under 'ports' are published; replicas reach each other by DNS name and "
              "published port",
    "networks": "replicas use Docker's bridge network on each node (network_mode: host or none changes that)",
    "endpoint_mode": "shoal has no virtual IP: its DNS answers with the address of every serving replica, "
                     "as dnsrr does",
    "dns": "replicas resolve names through their node's shoal agent (NAME.service.shoal), which forwards "
           "other names to the resolvers its operator configures",
    "build": "shoal builds nothing; the image must be on the nodes",
    "depends_on": "services start independently",
    "container_name": "shoal names containers shoal-<job>-<index>-<round>",
}

_PLAIN_KEY_RE = re.compile(r"[A-Za-z0-9_-]+", re.ASCII)


class ComposeError(ValueError):
    """Every problem found in a Compose file, each with its path."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = list(problems)
        n = len(self.problems)
        lines = "".join(f"\n  {p}" for p in self.problems)
        super().__init__(f"invalid Compose file for shoal ({n} problem{'s' if n != 1 else ''}):{lines}")


def got(value: Any) -> str:
    """A user's value in a message: text quoted and cut short, else its kind."""
    return repr(value[:64]) if isinstance(value, str) else json_kind(value)


def join_path(prefix: str, key: Any) -> str:
    key = str(key)
    if not _PLAIN_KEY_RE.fullmatch(key):
        return f"{prefix}[{json.dumps(key[:64])}]"
    return f"{prefix}.{key}" if prefix else key


class Report:
    def __init__(self) -> None:
        self.errors: list[Problem] = []
        self.warnings: list[Problem] = []
        self.dropped_errors = 0
        self.dropped_warnings = 0

    def error(self, path: str, message: str) -> None:
        if len(self.errors) < MAX_PROBLEMS:
            self.errors.append(Problem(path, message))
        else:
            self.dropped_errors += 1

    def warn(self, path: str, message: str) -> None:
        if len(self.warnings) < MAX_PROBLEMS:
            self.warnings.append(Problem(path, message))
        else:
            self.dropped_warnings += 1

    def unsupported(self, path: str, key: str, hint: str | None = None) -> None:
        hint = hint or HINTS.get(key)
        self.warn(path, NOT_SUPPORTED + (f" ({hint})" if hint else ""))

    def unknown_keys(self, table: dict, known: tuple[str, ...], path: str) -> None:
        for key in table:
            if isinstance(key, str) and key.startswith("x-"):
                continue
            if key not in known:
                self.unsupported(join_path(path, key), str(key))

    def errors_report(self) -> list[Problem]:
        more = [Problem("", f"{self.dropped_errors} more problems not shown")] if self.dropped_errors else []
        return self.errors + more

    def warnings_report(self) -> list[Problem]:
        more = [Problem("", f"{self.dropped_warnings} more warnings not shown")] if self.dropped_warnings else []
        return self.warnings + more



class ServicePart:
    """What each converter of a part of one service (ports, volumes, files,
    update settings) shares: the report, the service's Compose path, the job
    spec dict being built, the Compose path of each field written (`origin`)
    and every path refused (`failed`), as node.cli.compose_service keeps them."""

    def __init__(self, report: Report, service_path: str, spec: dict[str, Any], origin: dict[str, str],
                 failed: set[str]) -> None:
        self.r = report
        self.path = service_path
        self.spec = spec
        self.origin = origin
        self.failed = failed

    def error(self, path: str, message: str) -> None:
        self.failed.add(path)
        self.r.error(path, message)
