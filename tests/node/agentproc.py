"""One real agent process for a test: started with a config file, stopped with SIGTERM.

`running_agent(...)` yields the agent's `agent.json` (its addresses, from its
state dir) and its process id ("pid") once the agent has written it; on exit it sends SIGTERM and waits,
killing it only if it does not leave in time.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
START_TIMEOUT_S = 30
STOP_TIMEOUT_S = 15


@contextmanager
def running_agent(tmp_path: Path, name: str, config_text: str, *extra: str,
                  env: dict[str, str] | None = None) -> Iterator[dict[str, Any]]:
    state = tmp_path / name
    state.mkdir()
    config = tmp_path / f"{name}.toml"
    config.write_text(config_text)
    argv = [sys.executable, "-m", "node.cli", "agent", "--config", str(config), "--name", name,
            "--bind", "127.0.0.1:0", "--api", "127.0.0.1:0", "--profile", "local", "--state-dir", str(state),
            *extra]
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=REPO,
                            stdin=subprocess.DEVNULL, env={**os.environ, **(env or {})})
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        info = None
        while info is None and time.monotonic() < deadline and proc.poll() is None:
            try:
                info = json.loads((state / "agent.json").read_text())
            except (OSError, ValueError):
                time.sleep(0.05)
        assert info is not None, f"agent {name} did not start (rc {proc.poll()})"
        yield {**info, "pid": proc.pid}
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)
