"""`shoal exec` on a real dockerd (node.runtime.exec): a command in a replica's running container.

Root only (the engine fixture starts dockerd).
"""

from __future__ import annotations

import os

import pytest
import trio

from node.runtime.docker import DockerRuntime
from node.runtime.exec import run_in_container
from test_docker_runtime import claim, fast, ours, running, spec, until  # same directory

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="starts dockerd: needs root")


@needs_root
async def test_a_command_gives_its_output_and_exit_code_bounded_in_size_and_time(engine, node):
    rt = DockerRuntime(node, fast())
    sp = spec(env={"GREETING": "hello"}, restart={"policy": "never"})   # stopped, it stays stopped
    async with trio.open_nursery() as n:
        await n.start(rt.run)
        with pytest.raises(LookupError, match="no container for web/0"):
            await rt.exec("web/0", ["true"], 5)
        rt.start(claim(node, sp), sp)
        await until(lambda: running(rt, "web/0"))
        r = await rt.exec("web/0", ["sh", "-c", "echo $GREETING; echo oops >&2; exit 3"], 10)
        assert (r.exit_code, r.truncated, r.timed_out) == (3, False, False)
        # stdout and stderr both (two pipes in the container: their order between them is not kept)
        assert sorted(r.output.splitlines()) == [b"hello", b"oops"]
        [ctr] = ours(engine, node)
        big = await run_in_container(rt.engine, ctr.id, "web/0", ["sh", "-c", "yes | head -c 100000"], 10,
                                     max_output_bytes=1000)
        assert (big.exit_code, len(big.output), big.truncated) == (0, 1000, True)
        slow = await rt.exec("web/0", ["sleep", "30"], 0.5)
        assert (slow.exit_code, slow.timed_out) == (None, True)
        ctr.stop(timeout=0)
        await until(lambda: not ours(engine, node, status="running"))
        with pytest.raises(ValueError, match="web/0's container on .* is exited"):
            await rt.exec("web/0", ["true"], 5)
        n.cancel_scope.cancel()


async def _read_all(session, limit_s: float = 10.0) -> dict[int, bytes]:
    got = {1: b"", 2: b""}
    with trio.fail_after(limit_s):
        while (pieces := await session.receive()) is not None:
            for stream, data in pieces:
                got[stream] += data
    return got


async def _session(node, command: list[str], stdin: bytes, **kw) -> tuple[dict[int, bytes], int]:
    """Start a replica, run `command` in it with `stdin` (then its end, unless a
    TTY), return its output by stream and its exit code."""
    rt = DockerRuntime(node, fast())
    sp = spec()
    async with trio.open_nursery() as n:
        await n.start(rt.run)
        rt.start(claim(node, sp), sp)
        await until(lambda: running(rt, "web/0"))
        s = await rt.exec_session("web/0", command, **kw)
        try:
            await s.send_stdin(stdin)
            if not kw["tty"]:
                await s.close_stdin()
            got = await _read_all(s)
            with trio.fail_after(10):
                while (code := await s.exit_code()) is None:
                    await trio.sleep(0.05)
        finally:
            await s.aclose()
        n.cancel_scope.cancel()
    return got, code


@needs_root
async def test_a_session_takes_stdin_and_keeps_stdout_and_stderr_apart(engine, node):
    # more than one frame and one read; tr sees the end of its input
    got, code = await _session(node, ["sh", "-c", "tr a-z A-Z; echo done >&2; exit 4"], b"hello " * 20000,
                               tty=False)
    assert got == {1: b"HELLO " * 20000, 2: b"done\n"} and code == 4


@needs_root
async def test_a_terminal_session_runs_a_shell_at_the_size_given(engine, node):
    got, code = await _session(node, ["sh"], b"stty size; echo $((6*7)); exit 5\r", tty=True, cols=91, rows=27)
    assert got[2] == b""                            # a terminal has one stream
    assert b"27 91" in got[1] and b"42\r\n" in got[1] and code == 5, got
