"""What a web page makes the operator's browser send to a local agent is
refused: a cross-site form POST that would submit a job, and (without a
token) a re-pointed host name reading the gossip keys (DNS rebinding).

Real in-process agents on 127.0.0.1 (fake runtime).
"""

from __future__ import annotations

import json

import httpx
import pytest

from node.api.browser_guard import HOST_REASON, ORIGIN_REASON, host_is_local_literal
from inproc_agent import agent_starter  # same directory

TOKEN = "s3cret-token-123"
JOB = {"name": "miner", "image": "busybox", "cpu": 0.1, "memory": "16MiB"}


@pytest.fixture
def start_agent(nursery, tmp_path):
    return agent_starter(nursery, tmp_path)


@pytest.mark.parametrize(("host", "local"), [
    ("127.0.0.1:7980", True), ("localhost:7980", True), ("LOCALHOST", True), ("[::1]:7980", True),
    ("10.0.0.5", True), ("::1", True),
    ("evil.example:7980", False), ("127.0.0.1.nip.io", False), ("", False), ("[::1", False),
])
def test_local_hosts_are_ip_literals_or_localhost(host, local):
    assert host_is_local_literal(host) is local


async def test_a_web_pages_post_submits_nothing(start_agent):
    a = await start_agent("a")       # no token: a loopback API, the default
    async with httpx.AsyncClient(base_url=a.api_url, timeout=10.0) as c:
        # what <form method=post enctype=text/plain> on another site sends
        r = await c.post("/v1/jobs", content=json.dumps(JOB), headers={
            "Origin": "https://evil.example", "Content-Type": "text/plain"})
        assert r.status_code == 403 and "web page" in r.json()["error"], r.text
        r = await c.post("/v1/jobs/x/exec?cmd=sh", headers={"Origin": "null"})
        assert r.status_code == 403
        assert a.view.job("miner") is None
        assert a.metrics.drop_counts[ORIGIN_REASON] == 2
        # the CLI's own requests (no Origin) go through
        assert (await c.post("/v1/jobs", json=JOB)).status_code == 201


async def test_a_repointed_host_name_reads_nothing_without_a_token(start_agent):
    a = await start_agent("a")
    async with httpx.AsyncClient(base_url=a.api_url, timeout=10.0) as c:
        r = await c.get("/v1/keys", headers={"Host": "rebind.evil.example:7980"})
        assert r.status_code == 403 and "use http://127.0.0.1:PORT" in r.json()["error"]
        assert a.metrics.drop_counts[HOST_REASON] == 1
        assert (await c.get("/v1/keys", headers={"Host": "localhost"})).status_code == 200
        assert (await c.get("/v1/keys")).status_code == 200


async def test_with_a_token_host_names_work(start_agent):
    # a page cannot send the token, so names (TLS, a load balancer) are the operator's to use
    a = await start_agent("a", api_token=TOKEN)
    async with httpx.AsyncClient(base_url=a.api_url, timeout=10.0) as c:
        r = await c.get("/v1/keys", headers={"Host": "agents.example.org", "Authorization": f"Bearer {TOKEN}"})
        assert r.status_code == 200
        r = await c.get("/v1/keys", headers={"Host": "agents.example.org", "Origin": "https://agents.example.org",
                                             "Authorization": f"Bearer {TOKEN}"})
        assert r.status_code == 403
