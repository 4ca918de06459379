"""Driving `scripts/testbed` for a chaos run: a testbed instance of our own,
its agents' API, and the ground truth of every node's dockerd.

How this works: every call runs the repository's `scripts/testbed` with
SHOAL_TESTBED_PREFIX / _SUBNET / _DIR set to this run's own instance (by
default prefix `shoal-cx`, subnet 10.79.0, state under .shoal/chaos-PREFIX),
so a testbed someone else has up (the default `shoal-tb`) is never touched,
and with SHOAL_TESTBED_PYTHON set to this interpreter, so the agents run the
same code as the command.  `ps(i)` asks node i's dockerd (the Docker CLI with
the node's DOCKER_HOST, as `scripts/testbed docker i ps` does) for the running
containers labelled with a shoal slot: None when the engine does not answer
(a killed node: its containers died with it).  `api(i, method, path)` talks
to node i's agent with the testbed's API token.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "testbed"
DEFAULT_PREFIX = "shoal-cx"
DEFAULT_SUBNET = "10.79.0"
SLOT_LABEL = "shoal.slot"  # node.runtime.containers.LABEL_SLOT


class TestbedError(RuntimeError):
    pass


class Testbed:
    def __init__(self, prefix: str = DEFAULT_PREFIX, subnet: str = DEFAULT_SUBNET,
                 state_dir: Path | None = None) -> None:
        if not SCRIPT.exists():
            raise TestbedError(f"{SCRIPT} not found: `shoal chaos run` needs a source checkout of shoal")
        self.prefix = prefix
        self.env = dict(os.environ, SHOAL_TESTBED_PREFIX=prefix, SHOAL_TESTBED_SUBNET=subnet,
                        SHOAL_TESTBED_DIR=str(state_dir or ROOT / ".shoal" / f"chaos-{prefix}"),
                        SHOAL_TESTBED_PYTHON=sys.executable)
        self.docker = shutil.which("docker") or "docker"
        self.info: dict[str, Any] = {}

    def run(self, *args: str, check: bool = True, timeout: float = 120.0) -> subprocess.CompletedProcess:
        try:
            out = subprocess.run([sys.executable, str(SCRIPT), *args], env=self.env, capture_output=True,
                                 text=True, stdin=subprocess.DEVNULL, timeout=timeout, cwd=ROOT)
        except subprocess.TimeoutExpired:
            raise TestbedError(f"testbed {' '.join(args)} took over {timeout:g} s") from None
        if check and out.returncode != 0:
            raise TestbedError(f"testbed {' '.join(args)}: {out.stderr.strip()[-500:]}")
        return out

    def status(self) -> dict[str, Any]:
        self.info = json.loads(self.run("status", "--json").stdout)
        return self.info

    def node(self, i: int) -> dict[str, Any]:
        return next(n for n in self.info["nodes"] if n["index"] == i)

    def agent_log(self, i: int) -> Path:
        return Path(self.node(i)["state_dir"]) / "agent.log"

    def ps(self, i: int) -> list[tuple[str, str]] | None:
        """(slot, container name) of every running container of ours on node i; None if its engine is down."""
        try:
            out = subprocess.run([self.docker, "-H", self.node(i)["docker_host"], "ps", "--filter",
                                  f"label={SLOT_LABEL}", "--format", f'{{{{.Label "{SLOT_LABEL}"}}}}\t{{{{.Names}}}}'],
                                 capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=10)
        except subprocess.TimeoutExpired:
            return None
        if out.returncode != 0:
            return None
        rows = []
        for line in out.stdout.splitlines():
            slot, _, name = line.partition("\t")
            if slot:
                rows.append((slot, name))
        return rows

    def api(self, i: int, method: str, path: str, body: Any = None, timeout: float = 5.0) -> tuple[int, Any]:
        """(HTTP status, decoded body) from node i's agent; (0, error text) if it cannot be reached."""
        import httpx

        try:
            r = httpx.request(method, self.node(i)["api"] + path, json=body, timeout=timeout,
                              headers={"Authorization": f"Bearer {self.info.get('token') or ''}"})
        except httpx.HTTPError as e:
            return 0, str(e) or type(e).__name__
        try:
            return r.status_code, r.json()
        except ValueError:
            return r.status_code, r.text
