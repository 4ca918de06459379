"""A running agent loads only what its configuration uses.

An agent with the fake runtime and no gossip key, its API serving, must not
have imported the docker SDK, httpx (only to forward to another agent),
prometheus_client (only at the first scrape), cryptography (only with a key),
the image share (only with the docker runtime), the status page
(node.api.ui) or dnspython (only at its DNS server's first query, which is
then answered): each costs start-up CPU and resident memory (see
docs/benchmarks.md, agent start and footprint).  Checked in a fresh
interpreter, since this test process has loaded them all.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

# importlib.metadata: dnspython imports it.
NOT_AT_IDLE = ("docker", "requests", "httpx", "prometheus_client", "cryptography", "node.runtime.docker",
               "node.runtime.engine", "node.agent.image_share", "node.api.ui", "dns", "node.dns.answer",
               "node.dns.zone", "node.dns.forward", "importlib.metadata")

PROBE = """
import json, sys, tempfile
import trio
from node.agent.agent import Agent
from node.agent.config import load_config

# A DNS query for the zone's SOA (id 0x5e1f, one question: shoal. SOA IN).
SOA_QUERY = bytes.fromhex("5e1f01000001000000000000") + b"\\x05shoal\\x00" + bytes.fromhex("00060001")

async def main():
    cfg = load_config(None, {"bind": "127.0.0.1:0", "api": "127.0.0.1:0", "profile": "local",
                             "dns_bind": "127.0.0.1:0", "state_dir": tempfile.mkdtemp()})
    async with trio.open_nursery() as nursery:
        agent = await nursery.start(Agent(cfg).run)
        before = sorted(sys.modules)
        # A scrape loads prometheus_client, and only then.
        agent.ops.render_metrics()
        after = sorted(sys.modules)
        # The first DNS query loads dnspython, and is answered.
        sock = trio.socket.socket(trio.socket.AF_INET, trio.socket.SOCK_DGRAM)
        await sock.sendto(SOA_QUERY, tuple(agent.dns.addresses[0]))
        with trio.fail_after(30):
            reply = await sock.recv(4096)
        print(json.dumps({"api": agent.api_url, "before": before, "after": after, "dns_reply": reply.hex(),
                          "after_dns": sorted(sys.modules)}))
        nursery.cancel_scope.cancel()

trio.run(main)
"""


def loaded(names: list[str], prefixes: tuple[str, ...]) -> list[str]:
    return sorted(m for m in names if any(m == p or m.startswith(p + ".") for p in prefixes))


def test_idle_agent_loads_no_docker_httpx_metrics_or_crypto() -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.run([sys.executable, "-c", PROBE], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["api"].startswith("http://127.0.0.1:")
    assert "node.api.server" in out["before"]  # the API serves...
    assert loaded(out["before"], NOT_AT_IDLE) == []  # ...without these
    assert "prometheus_client" in out["after"]
    reply = bytes.fromhex(out["dns_reply"])
    assert reply[:2] == bytes.fromhex("5e1f") and reply[3] & 0x0F == 0 and int.from_bytes(reply[6:8], "big") == 1
    assert "dns" in out["after_dns"]


# What the agent needs before it gossips is loaded by `node.agent.agent`; the
# DNS server (dnspython: a fair part of start-up) is imported only once the
# agent gossips, unless the runtime's bridge must get it before any placement;
# the capacity probe asks the OS, not psutil.  SQLite and the stores come with
# the first open of the state dir (a fresh one: once the agent gossips),
# tomllib with a TOML file, difflib and shlex with a job spec that needs them;
# amounts are parsed without fractions (and decimal).
BEFORE_GOSSIP_NOT = ("dns", "node.dns.server", "node.agent.dns_link", "node.api.server", "starlette", "hypercorn",
                     "psutil", "sqlite3", "node.state.persist", "node.state.claimstore", "node.state.versionstore",
                     "tomllib", "difflib", "shlex", "fractions", "decimal")


def test_the_agent_module_loads_no_dns_or_http_stack() -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    probe = ("import json, sys\nimport node.agent.agent, node.agent.config\n"
             "from node.agent.config import load_config\n"
             "cfg = load_config(None, {'bind': '127.0.0.1:0', 'api': '127.0.0.1:0', 'profile': 'local'})\n"
             "node.agent.agent.node_capacity(cfg)\nprint(json.dumps(sorted(sys.modules)))")
    proc = subprocess.run([sys.executable, "-c", probe], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert loaded(json.loads(proc.stdout.strip().splitlines()[-1]), BEFORE_GOSSIP_NOT) == []

