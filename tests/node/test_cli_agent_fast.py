"""`shoal agent` reads its options without click when it can (node.cli.agent_options).

What a user would notice if it broke: an agent command line that means one
thing to click (the help page, the documentation) and another to the fast
path; an error that is no longer click's; or an agent that still loads
click (no faster start).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from node.cli import agent_run
from node.cli.agent_command import agent
from node.cli.agent_options import parse_fast

REPO = Path(__file__).resolve().parents[2]


def click_values(argv: list[str], monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    got: dict[str, Any] = {}

    def run(config_file: str | None, flags: dict[str, Any]) -> None:
        got.update(flags, config_file=config_file)

    monkeypatch.setattr(agent_run, "run", run)
    result = CliRunner().invoke(agent, argv)
    assert result.exit_code == 0, result.output
    return got


@pytest.mark.parametrize("argv", [
    [],
    ["--name", "a", "--bind", "127.0.0.1:7946", "--api", "127.0.0.1:0", "--profile", "local"],
    ["--join", "10.0.0.1", "--join=10.0.0.2:7946", "--tag", "role=db", "--label", "rack=r1", "--label", "zone=z"],
    ["--cluster-label", "prod", "--insecure-no-encryption", "--enable-fault-hook", "--log-level", "debug"],
    ["--runtime", "docker", "--docker-host", "unix:///run/d.sock", "--cpus", "1.5", "--memory", "2GiB",
     "--reserve-cpus", "100m", "--reserve-memory", "64MiB", "--port-range", "20000-20100"],
    ["--name", "first", "--name", "second", "--config", "shoal.toml", "--state-dir", "/var/lib/shoal"],
    ["--name=", "--tag=a=b", "--cpus=2", "--join", "", "--log-level=Info"],
    ["--api-tls-cert", "c.pem", "--api-tls-key", "k.pem", "--api-tls-ca", "ca.pem", "--publish-address", "0.0.0.0",
     "--advertise", "10.0.0.5:7946", "--encrypt", "a2V5", "--keyring-file", "k.json"],
])
def test_the_fast_path_reads_what_click_reads(argv: list[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SHOAL_API_TOKEN", "from-env")
    fast = parse_fast(argv)
    assert fast is not None
    assert fast == click_values(argv, monkeypatch)
    assert fast["api_token"] == "from-env"


@pytest.mark.parametrize("argv", [
    ["--help"], ["-h"], ["--nmae", "a"], ["--profile", "fast"], ["extra"], ["--name"], ["--bind", "x", "--", "y"],
    ["--config", "."], ["--insecure-no-encryption=yes"], ["--bin", "127.0.0.1:1"], ["--name", "-x"],
    ["-n", "a"], ["--help=x"], ["--name", "a", "--join"],
])
def test_what_the_fast_path_is_unsure_of_is_left_to_click(argv: list[str]) -> None:
    assert parse_fast(argv) is None


def test_shoal_agent_runs_without_loading_click_and_still_reports_a_bad_setting_clearly(tmp_path: Path) -> None:
    probe = ("import sys, runpy\n"
             "sys.argv = ['shoal', 'agent', '--port-range', '9-1', '--state-dir', sys.argv[1]]\n"
             "try:\n    runpy.run_module('node.cli', run_name='__main__')\n"
             "finally:\n    print(json.dumps(sorted(sys.modules)), file=sys.stderr)\n")
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.run([sys.executable, "-c", "import json\n" + probe, str(tmp_path)], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2, proc.stderr
    assert "shoal agent:" in proc.stderr and "port" in proc.stderr.lower()
    modules = json.loads(proc.stderr.strip().splitlines()[-1])
    assert "click" not in modules and "argparse" not in modules and "node.agent.config" in modules
