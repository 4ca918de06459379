"""The API's trust boundary: forwarding never carries the caller's token and
goes only to a member's own gossip address, the derived peer credential,
the API over TLS (CLI to agent, agent to agent), clean 4xx bodies.

Real in-process agents on 127.0.0.1 (ephemeral ports, `local` profile); the
CLI runs as a subprocess, as a user runs it.
"""

from __future__ import annotations

import base64
import functools
import json
import os
import ssl
import stat
import sys
from pathlib import Path

import httpx
import pytest
import trio
from click.testing import CliRunner

from node.agent.agent import Agent
from node.agent.config import ConfigError, load_config
from node.agent.peer_auth import PEER_AUTH_WINDOW_S, PeerAuthError, sign, verify
from node.api.forward import REFUSED_REASON, forward_headers
from node.cli.certs import make_ca, make_cert
from node.cli.main import cli
from inproc_agent import agent_starter  # same directory

DEADLINE_S = 10.0
TOKEN = "s3cret-token-123"
KEY = base64.b64encode(bytes(range(32))).decode()
ROOT = Path(__file__).resolve().parents[2]


class RogueAgent(Agent):
    """An agent that publishes `rogue_api` in its `api` tag instead of its API."""

    rogue_api = ""

    def _build_core(self, loaded, keyring, now):
        real, self.api_url = self.api_url, f"http://{self.rogue_api}"
        try:
            return super()._build_core(loaded, keyring, now)
        finally:
            self.api_url = real


@pytest.fixture
def start_agent(nursery, tmp_path):
    return agent_starter(nursery, tmp_path)


class FakeApi:
    """An HTTP server on loopback that records every request head it gets."""

    def __init__(self) -> None:
        self.requests: list[bytes] = []
        self.port = 0

    async def serve(self, host: str, nursery: trio.Nursery) -> None:
        listeners = await nursery.start(functools.partial(trio.serve_tcp, self.handle, 0, host=host))
        self.port = listeners[0].socket.getsockname()[1]

    async def handle(self, stream: trio.SocketStream) -> None:
        head = b""
        with trio.move_on_after(5):
            while b"\r\n\r\n" not in head:
                chunk = await stream.receive_some(65536)
                if not chunk:
                    break
                head += chunk
        self.requests.append(head)
        body = json.dumps({"node": "rogue", "runtime": "fake", "containers": []}).encode()
        await stream.send_all(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n"
                              b"Content-Length: %d\r\n\r\n%s" % (len(body), body))
        await stream.aclose()


async def wait_alive(agent: Agent, names: set[str]) -> None:
    with trio.fail_after(DEADLINE_S):
        while not names <= {m.name for m in agent.view.members() if m.state.value == "alive"}:
            await trio.sleep(0.05)


def authed(agent: Agent, **kw) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=agent.api_url, timeout=10.0,
                             headers={"Authorization": f"Bearer {TOKEN}"}, **kw)


# ---- the rogue `api` tag --------------------------------------------------------


@pytest.mark.parametrize("encrypted", [False, True])
async def test_rogue_api_tag_never_sees_the_token(start_agent, nursery, encrypted):
    fake = FakeApi()
    await fake.serve("127.0.0.1", nursery)
    keying = {"encrypt": KEY} if encrypted else {}
    a = await start_agent("a", api_token=TOKEN, **keying)
    RogueAgent.rogue_api = f"127.0.0.1:{fake.port}"
    await start_agent("rogue", RogueAgent, join=[str(a.advertise)], **keying)
    await wait_alive(a, {"a", "rogue"})
    async with authed(a) as c:
        r = await c.get("/v1/containers", params={"cluster": "1"})
    assert r.status_code == 200
    assert len(fake.requests) == 1
    head = fake.requests[0].decode("latin-1")
    assert "authorization" not in head.lower() and TOKEN not in head
    # it learns who forwarded, and (with a key) a credential for that one request only
    assert "x-shoal-forwarded-by: a" in head.lower()
    assert ("x-shoal-peer-auth:" in head.lower()) == encrypted


async def test_api_tag_naming_another_host_gets_no_request(start_agent, nursery):
    fake = FakeApi()
    await fake.serve("127.0.0.2", nursery)  # loopback too, but not the host the member gossips from
    a = await start_agent("a", api_token=TOKEN)
    RogueAgent.rogue_api = f"127.0.0.2:{fake.port}"
    await start_agent("rogue", RogueAgent, join=[str(a.advertise)])
    await wait_alive(a, {"a", "rogue"})
    async with authed(a) as c:
        r = await c.get("/v1/containers", params={"cluster": "1"})
        assert r.status_code == 200
        rogue = {n["node"]: n for n in r.json()["nodes"]}["rogue"]
        assert "refusing to forward to rogue" in rogue["error"] and "127.0.0.2" in rogue["error"]
        r = await c.post("/v1/nodes/rogue/drain")
        assert r.status_code == 409 and "not its gossip address 127.0.0.1" in r.json()["error"]
    await trio.sleep(0.2)
    assert fake.requests == []
    assert a.metrics.drop_counts[REFUSED_REASON] == 2


# ---- the derived credential --------------------------------------------------------


def test_peer_credential_accepts_only_its_own_request():
    key, other = bytes(32), bytes(range(32))
    now = 1_700_000_000_000
    h = {k.lower(): v for k, v in sign(key, "GET", "/v1/containers?job=web", "a", now).items()}
    assert verify([other, key], h, "GET", "/v1/containers?job=web", now + 1000) == "a"  # any key of the ring
    with pytest.raises(PeerAuthError, match="does not verify"):
        verify([other], h, "GET", "/v1/containers?job=web", now)  # another cluster's key
    with pytest.raises(PeerAuthError, match="window"):
        verify([key], h, "GET", "/v1/containers?job=web", now + int(PEER_AUTH_WINDOW_S * 1000) + 1)
    for method, target in (("GET", "/v1/containers?job=db"), ("GET", "/v1/jobs/web/logs"),
                           ("POST", "/v1/containers?job=web")):
        with pytest.raises(PeerAuthError, match="does not verify"):
            verify([key], h, method, target, now)
    with pytest.raises(PeerAuthError, match="no peer credential"):
        verify([key], {}, "GET", "/v1/containers", now)


async def test_agents_accept_the_credential_on_forwarded_routes_only(start_agent):
    a = await start_agent("a", api_token=TOKEN, encrypt=KEY)
    b = await start_agent("b", api_token=TOKEN, encrypt=KEY, join=[str(a.advertise)])
    await wait_alive(a, {"a", "b"})
    async with httpx.AsyncClient(base_url=b.api_url, timeout=10.0) as c:
        ok = forward_headers(a, "GET", "/v1/containers")
        assert (await c.get("/v1/containers", headers=ok)).status_code == 200
        # replayed to another route or another query: refused
        r = await c.get("/v1/containers?job=x", headers=ok)
        assert r.status_code == 401 and "does not verify" in r.json()["error"]
        members = forward_headers(a, "GET", "/v1/members")
        assert (await c.get("/v1/members", headers=members)).status_code == 401  # not a forwarded route
    # the real forwards, without the caller's token reaching b: drain and ps across agents
    async with authed(a) as c:
        r = await c.post("/v1/nodes/b/drain")
        assert r.status_code == 200 and r.json()["drained"] is True and r.json()["forwarded_to"] == b.api_url
        nodes = {n["node"]: n for n in (await c.get("/v1/containers?cluster=1")).json()["nodes"]}
        assert nodes["b"]["error"] is None and nodes["b"]["runtime"] == "fake"


async def test_exec_is_forwarded_to_the_holder_and_a_credential_covers_its_command(start_agent):
    a = await start_agent("a", api_token=TOKEN, encrypt=KEY)
    b = await start_agent("b", api_token=TOKEN, encrypt=KEY, join=[str(a.advertise)], labels=("disk=b",))
    await wait_alive(a, {"a", "b"})
    async with authed(a) as c:
        spec = {"name": "db", "image": "busybox", "cpu": 0.1, "memory": "16MiB", "constraints": ["disk == b"]}
        assert (await c.post("/v1/jobs", json=spec)).status_code == 201
        with trio.fail_after(DEADLINE_S):
            while not b.runtime.running:
                await trio.sleep(0.05)
        r = await c.post("/v1/jobs/db/exec?slot=0&cmd=cat&cmd=/etc/hosts")
        # b took a's credential (not 401) and answered for its runtime, which runs no commands
        assert r.status_code == 501 and r.json()["forwarded_to"] == b.api_url, r.text
        assert r.json()["error"] == "the fake runtime runs no commands"
        r = await c.post("/v1/jobs/db/exec?slot=0&timeout_s=9999&cmd=ls")
        assert r.status_code == 400 and r.json()["error"].startswith("timeout_s:")
    async with httpx.AsyncClient(base_url=b.api_url, timeout=10.0) as c:
        signed = forward_headers(a, "POST", "/v1/jobs/db/exec?slot=0&cmd=ls")
        r = await c.post("/v1/jobs/db/exec?slot=0&cmd=rm&cmd=-rf&cmd=%2Fdata", headers=signed)
        assert r.status_code == 401 and "does not verify" in r.json()["error"]     # another command: refused


async def test_peer_credentials_are_stamped_and_checked_in_cluster_time(start_agent, monkeypatch):
    # A node whose clock is off corrects it by the cluster's (node.core.cluster_clock);
    # its credentials must use the corrected clock too, or a peer a minute
    # away refuses every forward (seen after a 30-minute chaos run: 94 s off).
    a = await start_agent("a", api_token=TOKEN, encrypt=KEY)
    b = await start_agent("b", api_token=TOKEN, encrypt=KEY, join=[str(a.advertise)])
    await wait_alive(a, {"a", "b"})
    assert abs(a.cluster_wall_ms() - b.cluster_wall_ms()) < 1000      # in step: no correction
    from node.core.cluster_clock import ClusterClock
    monkeypatch.setattr(ClusterClock, "update", lambda *args, **kw: None)  # keep the corrections set below
    async with httpx.AsyncClient(base_url=b.api_url, timeout=10.0) as c:
        b.core.cluster_clock.correction_ms = -100_000  # b keeps cluster time 100 s behind its own clock
        late = forward_headers(a, "GET", "/v1/containers")
        r = await c.get("/v1/containers", headers=late)
        assert r.status_code == 401 and "100 s from this agent's clock" in r.json()["error"]
        a.core.cluster_clock.correction_ms = -100_000  # a keeps the same cluster time
        assert (await c.get("/v1/containers", headers=forward_headers(a, "GET", "/v1/containers"))).status_code == 200


# ---- TLS ----------------------------------------------------------------------------


@pytest.fixture
def pki(tmp_path):
    ca, _ = make_ca(tmp_path / "ca")
    certs = {}
    for name in ("a", "b"):
        certs[name] = make_cert(name, tmp_path / "ca", tmp_path / "certs", ips=["127.0.0.1"])
    other, _ = make_ca(tmp_path / "other-ca")
    intruder = make_cert("intruder", tmp_path / "other-ca", tmp_path / "certs", ips=["127.0.0.1"])
    return {"ca": ca, "other_ca": other, "intruder": intruder, **certs}


def tls_flags(pki, name):
    cert, key = pki[name]
    return {"api_tls_cert": str(cert), "api_tls_key": str(key), "api_tls_ca": str(pki["ca"])}


async def shoal(*args: str) -> trio.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return await trio.run_process([sys.executable, "-m", "node.cli", *args], capture_stdout=True,
                                  capture_stderr=True, check=False, env=env)


async def test_api_over_tls_end_to_end(start_agent, pki):
    # no gossip key: agent to agent, only the client certificate proves who forwards
    a = await start_agent("a", api_token=TOKEN, **tls_flags(pki, "a"))
    b = await start_agent("b", api_token=TOKEN, join=[str(a.advertise)], labels=("disk=b",), **tls_flags(pki, "b"))
    assert a.api_url.startswith("https://127.0.0.1:")
    await wait_alive(a, {"a", "b"})

    out = await shoal("ps", "--json", "--address", a.api_url, "--ca", str(pki["ca"]), "--token", TOKEN)
    assert out.returncode == 0, out.stderr.decode()
    nodes = {n["node"]: n for n in json.loads(out.stdout)["nodes"]}
    assert set(nodes) == {"a", "b"} and nodes["b"]["error"] is None and nodes["b"]["api"] == b.api_url

    out = await shoal("members", "--address", a.api_url, "--ca", str(pki["other_ca"]), "--token", TOKEN)
    assert out.returncode == 1
    assert "does not verify against the CA in" in out.stderr.decode() and out.stdout == b""

    # b's forwarded routes: a certificate from the cluster CA is a proof, none or a stranger's is not
    async with httpx.AsyncClient(base_url=b.api_url, timeout=10.0, verify=tls_context(pki)) as c:
        assert (await c.get("/v1/containers")).status_code == 401
    async with httpx.AsyncClient(base_url=b.api_url, timeout=10.0, verify=tls_context(pki, "a")) as c:
        assert (await c.get("/v1/containers")).status_code == 200
        assert (await c.get("/v1/members")).status_code == 401  # not a forwarded route
    async with httpx.AsyncClient(base_url=b.api_url, timeout=10.0, verify=tls_context(pki)) as c:
        assert (await c.get("/v1/containers")).status_code == 401  # the proof is per connection
    with pytest.raises(httpx.HTTPError):
        async with httpx.AsyncClient(base_url=b.api_url, timeout=10.0, verify=tls_context(pki, "intruder")) as c:
            await c.get("/v1/containers")

    # an interactive exec: the CLI's WebSocket over TLS to a, relayed by a to b with a's certificate
    async with authed(a, verify=tls_context(pki)) as c:
        spec = {"name": "db", "image": "busybox", "cpu": 0.1, "memory": "16MiB", "constraints": ["disk == b"]}
        assert (await c.post("/v1/jobs", json=spec)).status_code == 201
    with trio.fail_after(DEADLINE_S):
        while "db/0" not in b.runtime.running or a.view.winning_claim("db/0") is None:
            await trio.sleep(0.05)
    out = await trio.run_process([sys.executable, "-m", "node.cli", "exec", "-i", "db", "--address", a.api_url,
                                  "--ca", str(pki["ca"]), "--token", TOKEN, "--", "cat"], stdin=b"over tls\n",
                                 capture_stdout=True, capture_stderr=True, check=False,
                                 env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert out.returncode == 0 and out.stdout == b"fake runtime: cat in db/0\nover tls\n", out.stderr.decode()


def tls_context(pki, cert: str | None = None) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(pki["ca"]))
    if cert is not None:
        context.load_cert_chain(*map(str, pki[cert]))
    return context


def test_tls_settings_all_or_none(pki, tmp_path):
    base = {"name": "a", "bind": "127.0.0.1:0"}
    cfg = load_config(None, {**base, **tls_flags(pki, "a")})
    assert cfg.api_tls_ca == pki["ca"] and cfg.enable_fault_hook is False
    with pytest.raises(ConfigError, match="^api_tls_ca: .*not set"):
        load_config(None, {**base, **tls_flags(pki, "a"), "api_tls_ca": None})
    with pytest.raises(ConfigError, match="^api_tls_key: .*not a readable file"):
        load_config(None, {**base, **tls_flags(pki, "a"), "api_tls_key": str(tmp_path / "missing.pem")})
    with pytest.raises(ConfigError, match="^enable_fault_hook: must be true or false"):
        load_config(None, {**base, "enable_fault_hook": "yes"})


def test_tls_commands_write_keys_private(tmp_path):
    runner = CliRunner()
    r = runner.invoke(cli, ["tls", "ca", "--out", str(tmp_path / "ca")])
    assert r.exit_code == 0, r.output
    r = runner.invoke(cli, ["tls", "cert", "n1", "--ca", str(tmp_path / "ca"), "--ip", "127.0.0.1",
                            "--dns", "n1.example", "--out", str(tmp_path / "n1")])
    assert r.exit_code == 0, r.output
    for key in (tmp_path / "ca" / "ca-key.pem", tmp_path / "n1" / "n1-key.pem"):
        assert stat.S_IMODE(key.stat().st_mode) == 0o600
    r = runner.invoke(cli, ["tls", "ca", "--out", str(tmp_path / "ca")])
    assert r.exit_code == 1 and "not overwriting" in r.output
    r = runner.invoke(cli, ["tls", "cert", "n2", "--ca", str(tmp_path / "ca"), "--out", str(tmp_path / "n2")])
    assert r.exit_code == 1 and "--ip or --dns" in r.output


# ---- body errors ----------------------------------------------------------------------


async def test_malformed_bodies_are_4xx_without_exception_text(start_agent):
    a = await start_agent("a", enable_fault_hook=True)
    nested = b"[" * 50_000 + b"]" * 50_000
    async with httpx.AsyncClient(base_url=a.api_url, timeout=10.0) as c:
        for method, path in (("POST", "/v1/agent/join"), ("POST", "/v1/keys"), ("PUT", "/v1/agent/fault")):
            for body in (nested, b'{"a": ' * 10_000, b"\xff\xfe", b"[1, 2]", b'{"addresses": {"x": [1]}}'):
                r = await c.request(method, path, content=body)
                assert 400 <= r.status_code < 500, (path, body[:20], r.text)
                err = r.json()["error"]
                assert "Error" not in err and "Traceback" not in err, err
