"""The agent's `[containers]` table: the node's container policy, with safe
defaults, errors naming the setting, and documentation that matches."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from agentproc import running_agent
from auction.container_policy import DEFAULT_CAPS, POLICY_FIELDS, ContainerPolicy
from auction.spec import validate
from node.agent.config import ConfigError, load_config
from node.agent.tuning import container_policy


REPO = Path(__file__).resolve().parents[2]
CONFIG_DOC = REPO / "docs" / "configuration.md"
EXAMPLE = REPO / "deploy" / "agent.example.toml"


def write(tmp_path: Path, text: str) -> Path:
    """A config file with `text`, gossiping on loopback (no key needed there)."""
    p = tmp_path / "shoal.toml"
    p.write_text('bind = "127.0.0.1:0"\n' + text)
    return p


def test_without_the_table_a_node_allows_only_the_safe_policy():
    policy = load_config(None, {"bind": "127.0.0.1:0"}).containers
    assert policy == ContainerPolicy() == container_policy(None)
    assert policy.allow_caps == DEFAULT_CAPS and policy.allow_devices == frozenset()
    assert policy.refusal(validate({"name": "a", "image": "b", "cap_add": ["SYS_ADMIN"]}), "n1") == (
        "cap SYS_ADMIN is not allowed on n1")


def test_the_table_becomes_the_nodes_policy(tmp_path):
    cfg = load_config(write(tmp_path, '[containers]\nallow_caps = ["chown", "CAP_NET_ADMIN"]\n'
                                      'allow_users = ["*", "root"]\nallow-devices = ["/dev/fuse"]\n'
                                      'max_pids_limit = 8192\n'))
    assert cfg.containers == ContainerPolicy(frozenset({"CHOWN", "NET_ADMIN"}), frozenset({"*", "root"}),
                                             frozenset({"/dev/fuse"}), 8192)
    job = validate({"name": "a", "image": "b", "cap_add": ["NET_ADMIN"], "user": "root",
                    "devices": ["/dev/fuse"], "pids_limit": 8192})
    assert cfg.containers.refusal(job, "n1") is None


@pytest.mark.parametrize("toml,field,words", [
    ('[containers]\nallow_caps = ["SYS_ADMN"]', "containers.allow_caps[0]", "not a Linux capability"),
    ('[containers]\nallow_caps = "ALL"', "containers.allow_caps", "list of strings"),
    ('[containers]\nallow_users = ["a b"]', "containers.allow_users[0]", "not a user"),
    ('[containers]\nallow_devices = ["/etc/shadow"]', "containers.allow_devices[0]", "under /dev/"),
    ("[containers]\nmax_pids_limit = 0", "containers.max_pids_limit", "from 1 to 4194304"),
    ("[containers]\nmax_pids_limit = 1.5", "containers.max_pids_limit", "integer"),
    ("[containers]\nallow_privileged = true", "containers.allow_privileged", "unknown setting"),
    ("containers = 5", "containers", "expected a table"),
])
def test_errors_name_the_setting(tmp_path, toml, field, words):
    with pytest.raises(ConfigError) as e:
        load_config(write(tmp_path, toml))
    assert e.value.field == field
    assert str(e.value).startswith(f"{field}: ") and words in str(e.value), str(e.value)


def test_every_setting_is_documented_with_its_default():
    documented: dict[str, str] = {}
    heading = None
    for line in CONFIG_DOC.read_text().splitlines():
        if m := re.fullmatch(r"### `containers\.([a-z_]+)`", line):
            heading = m.group(1)
        elif heading and (m := re.match(r"Default: `([^`]+)`", line)):
            documented[heading] = m.group(1)
            heading = None
    assert set(documented) == set(POLICY_FIELDS)
    defaults = ContainerPolicy().to_dict()
    assert documented["allow_caps"] == "DEFAULT_CAPS" and defaults["allow_caps"] == sorted(DEFAULT_CAPS)
    for name in ("allow_users", "allow_devices", "max_pids_limit", "allow_host_paths"):
        assert json.loads(documented[name]) == defaults[name], name


def test_the_example_lists_every_setting_at_its_default(tmp_path):
    text = EXAMPLE.read_text()
    table = text[text.index("\n[containers]\n"):text.index("\n[cluster]\n")]
    uncommented = re.sub(r"^# ((?:[a-z_]+ = |  ).*)$", r"\1", table, flags=re.MULTILINE)
    assert load_config(write(tmp_path, uncommented)).containers == ContainerPolicy()
    assert set(re.findall(r"^([a-z_]+) = ", uncommented, re.MULTILINE)) == set(POLICY_FIELDS)


def test_the_cli_refuses_a_bad_setting_naming_it(tmp_path):
    path = write(tmp_path, '[containers]\nallow_caps = ["SYS_ADMN"]\n')
    r = subprocess.run([sys.executable, "-m", "node.cli", "agent", "--config", str(path)], capture_output=True,
                       text=True, cwd=REPO, timeout=60, check=False)
    assert r.returncode == 2
    assert "containers.allow_caps[0]: 'SYS_ADMN' is not a Linux capability" in r.stderr


# ---- the policy reaches the bidder of a real agent ------------------------------------


def _run_job_on_one_agent(tmp_path: Path, name: str, config_text: str, job: dict) -> list[dict]:
    """Start one agent (fake runtime) with config_text, submit job, and return
    its slots once each is placed or all are pending with a reason."""
    with running_agent(tmp_path, name, config_text, "--cpus", "2", "--memory", "2GiB") as info:
        r = httpx.post(f"{info['api']}/v1/jobs", json=job, timeout=10)
        assert r.status_code == 201, r.text
        deadline = time.monotonic() + 30
        slots: list[dict] = []
        while time.monotonic() < deadline:
            slots = httpx.get(f"{info['api']}/v1/jobs/{job['name']}", timeout=5).json()["slots"]
            if slots and (all(s.get("node") for s in slots)
                          or all(s["state"] == "pending" and s.get("reason") for s in slots)):
                return slots
            time.sleep(0.1)
        raise AssertionError(f"slots neither placed nor pending with a reason: {slots}")


def test_an_agents_containers_table_decides_what_its_jobs_may_ask(tmp_path):
    job = {"name": "netadmin", "image": "busybox", "replicas": 1, "cpu": 0.1, "memory": "16MiB",
           "cap_add": ["NET_ADMIN"]}
    refused = _run_job_on_one_agent(tmp_path, "strict", "", job)
    assert refused[0]["state"] == "pending"
    assert "cap NET_ADMIN is not allowed on strict" in refused[0]["reason"], refused
    caps = ", ".join(f'"{c}"' for c in sorted(DEFAULT_CAPS | {"NET_ADMIN"}))
    allowed = _run_job_on_one_agent(tmp_path, "lenient", f"[containers]\nallow_caps = [{caps}]\n", job)
    assert allowed[0].get("node") == "lenient", allowed
