"""`shoal exec -i` / `-it`: stdin, a terminal, sizes and the exit code, through
the agent asked to the one that runs the replica (a WebSocket relayed as
itself), and what is refused before any session starts.

Real in-process agents (fake runtime: its sessions echo their stdin, see
node.runtime.fake.EchoSession) with a token and a gossip key; the CLI runs
as a subprocess, on pipes or on a pseudo-terminal, as a user runs it.
"""

from __future__ import annotations

import base64
import fcntl
import os
import signal
import struct
import subprocess
import sys
import termios
from pathlib import Path

import httpx
import pytest
import trio
import trio_websocket as tw

from node.agent.agent import Agent
from node.api.forward import forward_headers
from inproc_agent import agent_starter  # same directory

DEADLINE_S = 10.0
TOKEN = "s3cret-token-123"
KEY = base64.b64encode(bytes(range(32))).decode()
ROOT = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "PYTHONPATH": str(ROOT), "SHOAL_TOKEN": TOKEN}


@pytest.fixture
def start_agent(nursery, tmp_path):
    return agent_starter(nursery, tmp_path)


async def two_agents_with_db_on_b(start_agent) -> tuple[Agent, Agent]:
    a = await start_agent("a", api_token=TOKEN, encrypt=KEY)
    b = await start_agent("b", api_token=TOKEN, encrypt=KEY, join=[str(a.advertise)], labels=("disk=b",))
    spec = {"name": "db", "image": "busybox", "cpu": 0.1, "memory": "16MiB", "constraints": ["disk == b"]}
    async with httpx.AsyncClient(base_url=a.api_url, timeout=10.0,
                                 headers={"Authorization": f"Bearer {TOKEN}"}) as c:
        assert (await c.post("/v1/jobs", json=spec)).status_code == 201
    with trio.fail_after(DEADLINE_S):
        while "db/0" not in b.runtime.running or not a.view.winning_claim("db/0"):
            await trio.sleep(0.05)
    return a, b


async def test_piped_stdin_reaches_the_command_through_the_agent_asked(start_agent):
    a, b = await two_agents_with_db_on_b(start_agent)
    r = await trio.run_process([sys.executable, "-m", "node.cli", "exec", "-i", "db", "--address", a.api_url,
                                "--", "cat"], stdin=b"hello\nworld\n", capture_stdout=True, capture_stderr=True,
                               check=False, env=ENV)
    assert r.returncode == 0, r.stderr
    # stdout and stderr kept apart (no TTY): the echo session writes stdin to both
    assert r.stdout == b"fake runtime: cat in db/0\nhello\nworld\n"
    assert r.stderr == b"hello\nworld\n"
    assert b.runtime.sessions[-1].ended            # it ran on b, and ended with stdin's end
    assert not a.runtime.sessions


def _set_size(fd: int, cols: int, rows: int) -> None:
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))


async def test_a_terminal_session_sends_keys_raw_and_follows_the_size(start_agent):
    a, b = await two_agents_with_db_on_b(start_agent)
    master, slave = os.openpty()
    _set_size(master, 100, 30)
    cooked = termios.tcgetattr(slave)
    proc = await trio.lowlevel.open_process(
        [sys.executable, "-m", "node.cli", "exec", "-it", "db", "--address", a.api_url, "--", "sh"],
        stdin=slave, stdout=slave, stderr=slave, env=ENV, start_new_session=True)
    seen = b""

    async def read_until(text: bytes) -> None:
        nonlocal seen
        with trio.fail_after(DEADLINE_S):
            while text not in seen:
                await trio.lowlevel.wait_readable(master)
                seen += os.read(master, 65536)

    try:
        await read_until(b"fake runtime: sh in db/0")
        session = b.runtime.sessions[-1]
        assert session.tty and session.sizes == [(100, 30)]
        # raw mode: Ctrl-C is a key for the command, not a signal for the CLI
        os.write(master, b"abc\x03")
        await read_until(b"abc\x03")
        assert proc.returncode is None
        _set_size(master, 120, 40)
        proc.send_signal(signal.SIGWINCH)
        with trio.fail_after(DEADLINE_S):
            while session.sizes[-1] != (120, 40):
                await trio.sleep(0.02)
        os.write(master, b"\x04")      # ends the echo session, as Ctrl-D ends cat
        with trio.fail_after(DEADLINE_S):
            await proc.wait()
        assert proc.returncode == 0
        # the terminal is as it was: line editing and echo back on
        assert termios.tcgetattr(slave)[3] == cooked[3]
    finally:
        if proc.returncode is None:
            proc.kill()
        os.close(master)
        os.close(slave)


async def test_refusals_come_before_any_session(start_agent, monkeypatch):
    monkeypatch.setattr("node.api.server.MAX_EXEC_SESSIONS", 2)
    monkeypatch.setattr("node.api.routes_exec_stream.MAX_EXEC_SESSIONS", 2)
    a, b = await two_agents_with_db_on_b(start_agent)
    ws_a = "ws" + a.api_url.removeprefix("http")
    ws_b = "ws" + b.api_url.removeprefix("http")
    auth = [(b"authorization", f"Bearer {TOKEN}".encode())]

    async def refused(url: str, headers: list[tuple[bytes, bytes]]) -> tw.ConnectionRejected:
        with pytest.raises(tw.ConnectionRejected) as e:
            async with tw.open_websocket_url(url, extra_headers=headers):
                pass
        return e.value

    path = "/v1/jobs/db/exec/stream?slot=0&cmd=sh&tty=0"
    assert (await refused(ws_a + path, [])).status_code == 401                  # no token
    e = await refused(ws_a + path, auth + [(b"origin", b"https://evil.example")])
    assert e.status_code == 403 and b"web page" in e.body                       # a browser's page
    e = await refused(ws_a + "/v1/jobs/db/exec/stream?slot=5&cmd=sh", auth)
    assert e.status_code == 404 and b"slots 0 to 0" in e.body
    # b refuses another command than the one a's credential signed
    signed = forward_headers(a, "GET", path)
    e = await refused(ws_b + path.replace("cmd=sh", "cmd=rm"), [(k.encode(), v.encode()) for k, v in signed.items()])
    assert e.status_code == 401 and b"does not verify" in e.body
    # at most 2 sessions on b (held or relayed): a third is refused, saying so, and counted
    async with tw.open_websocket_url(ws_b + path, extra_headers=auth), \
            tw.open_websocket_url(ws_a + path, extra_headers=auth):
        with trio.fail_after(DEADLINE_S):
            while len(b.runtime.sessions) < 2:
                await trio.sleep(0.02)
        e = await refused(ws_a + path, auth)
        assert e.status_code == 503 and b"b has 2 exec sessions open" in e.body and b"forwarded_to" in e.body
        assert b.metrics.drop_counts["exec_sessions_full"] == 1
    # both closed by their clients: room again
    with trio.fail_after(DEADLINE_S):
        while True:
            try:
                async with tw.open_websocket_url(ws_a + path, extra_headers=auth) as ws:
                    assert (await ws.get_message()).startswith(b"\x01fake runtime: sh in db/0")
                break
            except tw.ConnectionRejected:
                await trio.sleep(0.05)


async def test_ctrl_c_ends_a_piped_session_quietly(start_agent):
    a, b = await two_agents_with_db_on_b(start_agent)
    proc = await trio.lowlevel.open_process(
        [sys.executable, "-m", "node.cli", "exec", "-i", "db", "--address", a.api_url, "--", "cat"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=ENV)
    try:
        await proc.stdin.send_all(b"still typing\n")
        seen = b""
        with trio.fail_after(DEADLINE_S):
            while b"still typing" not in seen:
                seen += await proc.stdout.receive_some(65536)
        proc.send_signal(signal.SIGINT)
        with trio.fail_after(DEADLINE_S):
            await proc.wait()
        err = b""
        while chunk := await proc.stderr.receive_some(65536):
            err += chunk
        assert proc.returncode == 130 and b"Traceback" not in err, err
    finally:
        if proc.returncode is None:
            proc.kill()
