"""`agent.json` in the state dir: where a running agent can be reached.

How this works: once the agent runs, `write_state_file` atomically replaces
`<state-dir>/agent.json` with its name, pid and addresses (scripts and the
CLI read it); `remove_state_file` deletes it at exit, but only if it still
names this process (a newer agent on the same state dir keeps its own).
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

STATE_FILE = "agent.json"


def state_file(state_dir: Path | None) -> Path | None:
    return state_dir / STATE_FILE if state_dir else None


def write_state_file(path: Path | None, info: dict[str, Any]) -> None:
    if path is None:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".agent-", dir=str(path.parent))
    with os.fdopen(fd, "w") as f:
        json.dump({**info, "pid": os.getpid()}, f)
        f.write("\n")
    os.replace(tmp, path)


def remove_state_file(path: Path | None) -> None:
    if path is None:
        return
    try:
        if json.loads(path.read_text()).get("pid") == os.getpid():
            path.unlink()
    except (OSError, ValueError):
        pass
