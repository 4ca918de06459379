"""`shoal service ls | show` through click's runner against an in-process
agent (fake runtime) serving the real API; the runner runs in a thread so
the agent keeps answering."""

from __future__ import annotations

import json

import trio
from click.testing import CliRunner

from node.cli.main import cli
from node.cli.services import format_service, format_services
from test_api_jobs import SPEC, client, start_agent, wait_for  # noqa: F401 -- start_agent is a fixture


async def shoal(*args: str):
    return await trio.to_thread.run_sync(lambda: CliRunner().invoke(cli, list(args)))


async def test_service_ls_and_show_against_an_agent(start_agent):  # noqa: F811 -- the imported fixture
    a = await start_agent("a")
    r = await shoal("service", "ls", "--address", a.api_url)
    assert r.exit_code == 0 and "no services" in r.output
    async with client(a) as c:
        assert (await c.post("/v1/jobs", json=SPEC)).status_code == 201
        api = {**SPEC, "name": "api", "replicas": 1,
               "ports": {"http": {"to": 8080}, "admin": {"to": 9901, "static": 9901}}}
        assert (await c.post("/v1/jobs", json=api)).status_code == 201

        async def all_listed():
            return [s["count"] for s in (await c.get("/v1/services")).json()] == [1, 2]

        await wait_for(all_listed, "every replica of api and web listed")
    r = await shoal("service", "ls", "--address", a.api_url)
    assert r.exit_code == 0, r.output
    head, api_line, web_line = r.output.splitlines()
    assert head.split() == ["NAME", "INSTANCES", "ADDRESSES"]
    assert web_line.split() == ["web", "2", "127.0.0.1", "127.0.0.1"]          # no ports: the address alone
    name, count, admin, http = api_line.split()
    assert (name, count, admin) == ("api", "1", "127.0.0.1:9901")                # labels sorted: admin, http
    assert http.startswith("127.0.0.1:") and 20000 <= int(http.split(":")[1]) <= 32000
    r = await shoal("service", "show", "web", "--address", a.api_url)
    assert r.exit_code == 0, r.output
    assert r.output.splitlines() == ["Service web: 2 instances", "SLOT  NODE  ADDRESS    PORTS  HEALTH",
                                     "0     a     127.0.0.1  -      no check", "1     a     127.0.0.1  -      no check"]
    r = await shoal("service", "show", "web", "--json", "--address", a.api_url)
    assert json.loads(r.output)["instances"][1] == {"job": "web", "slot": 1, "node": "a", "address": "127.0.0.1",
                                                    "ports": {}, "health": "no check"}
    r = await shoal("service", "show", "nope", "--address", a.api_url)
    assert r.exit_code == 1 and "no service named 'nope'" in r.output and "HTTP 404" in r.output


def test_addresses_show_each_port_and_ipv6_in_brackets():
    inst = [{"job": "api", "slot": 0, "node": "n1", "address": "10.0.0.1", "ports": {"http": 20001, "admin": 20002},
             "health": "passing"},
            {"job": "api", "slot": 1, "node": "n2", "address": "2001:db8::2", "ports": {"http": 20005},
             "health": "passing"}]
    text = format_services([{"name": "api", "count": 2, "instances": inst}])
    assert text.splitlines()[1].split(None, 2) == ["api", "2", "10.0.0.1:20002 10.0.0.1:20001 [2001:db8::2]:20005"]
    shown = format_service({"name": "api", "count": 2, "instances": inst}).splitlines()
    assert shown[2].split() == ["0", "n1", "10.0.0.1", "admin=20002", "http=20001", "passing"]
    assert "no replica of it is known to run" in format_service({"name": "idle", "count": 0, "instances": []})


def test_help_lists_the_service_command():
    r = CliRunner().invoke(cli, ["--help"])
    assert r.exit_code == 0
    assert any(line.split()[:1] == ["service"] for line in r.output.splitlines()), r.output
