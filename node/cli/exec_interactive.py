"""`shoal exec -i` / `-it`: a command in a replica's container, with stdin and a terminal.

How this works: one WebSocket to the agent asked (node.api.routes_exec_stream,
which relays it to the holder; the messages: node.api.exec_channels).
Three tasks: stdin is read in a worker thread (a terminal, a pipe or a file
alike; the thread is abandoned at the end, as nothing can interrupt a
blocking read) and sent in chunks of at most 32 KiB, then its end; with
-t, the terminal is put in raw mode (keys, Ctrl-C included, go to the
command, as `docker exec -it` does) and restored on the way out, and each
SIGWINCH sends the new size; the output is written as it comes, stdout to
stdout and stderr to stderr.  The command's exit code, sent last, is this
command's.
"""

from __future__ import annotations

import json
import os
import signal
import ssl
import sys
from typing import Any
from urllib.parse import quote, urlencode

import click
import trio
import trio_websocket as tw

from node.api.exec_channels import (
    CLOSE_STDIN,
    MAX_MESSAGE_BYTES,
    MAX_PAYLOAD_BYTES,
    RESIZE,
    STATUS,
    STDERR,
    STDIN,
    STDOUT,
    json_message,
    message,
)
from node.cli.client import CLIENT_TIMEOUT_S, Client, fail

LOST_EXIT = 255     # the session ended without the command's exit code
INTERRUPTED_EXIT = 130


def _terminal_size() -> tuple[int, int]:
    for fd in (1, 0, 2):
        try:
            size = os.get_terminal_size(fd)
            return size.columns, size.lines
        except OSError:
            continue
    return 0, 0


def _url(client: Client, job: str, slot: int, command: list[str], tty: bool) -> str:
    cols, rows = _terminal_size() if tty else (0, 0)
    query = urlencode({"slot": str(slot), "cmd": command, "tty": "1" if tty else "0",
                       "cols": str(cols), "rows": str(rows)}, doseq=True)
    return "ws" + client.address.removeprefix("http") + f"/v1/jobs/{quote(job, safe='')}/exec/stream?{query}"


def _ssl_context(client: Client, url: str) -> ssl.SSLContext | None:
    if not url.startswith("wss://"):
        return None
    return client.verify if isinstance(client.verify, ssl.SSLContext) else ssl.create_default_context()


def run_session(client: Client, job: str, slot: int, command: list[str], *, interactive: bool, tty: bool) -> int:
    """Run the session; its exit code (the command's)."""
    if tty and not os.isatty(0):
        fail("-t needs a terminal on stdin (the input is not a TTY); to pass a pipe or a file, use -i alone")
    url = _url(client, job, slot, command, tty)
    restore = _raw_terminal() if tty else None
    try:
        return trio.run(_session, client, url, interactive, tty)
    except (KeyboardInterrupt, BrokenPipeError, BaseExceptionGroup) as e:
        ended = _ended_by_user(e)
        if ended is None:
            raise
        return ended
    finally:
        if restore is not None:
            restore()


def _ended_by_user(e: BaseException) -> int | None:
    """The exit code when only Ctrl-C (with -t it is a key for the command
    instead) or a reader that went (`shoal exec -i web -- cat | head -1`)
    ended the session, alone or from inside a task; None otherwise."""
    kinds = (KeyboardInterrupt, BrokenPipeError)
    if isinstance(e, BaseExceptionGroup):
        matched, rest = e.split(kinds)
        if matched is None or rest is not None:
            return None
        e = matched.exceptions[0]
        while isinstance(e, BaseExceptionGroup):
            e = e.exceptions[0]
    if isinstance(e, KeyboardInterrupt):
        return INTERRUPTED_EXIT
    sys.stderr.close()
    return 0


def _raw_terminal() -> Any:
    import termios
    import tty as ttymod

    saved = termios.tcgetattr(0)
    ttymod.setraw(0, termios.TCSANOW)     # (not TCSAFLUSH: keys typed ahead are kept for the command)
    return lambda: termios.tcsetattr(0, termios.TCSADRAIN, saved)


async def _session(client: Client, url: str, interactive: bool, tty: bool) -> int:
    headers = [(k.encode(), v.encode()) for k, v in client.headers.items()]
    try:
        async with tw.open_websocket_url(url, _ssl_context(client, url), extra_headers=headers,
                                         max_message_size=MAX_MESSAGE_BYTES,
                                         connect_timeout=CLIENT_TIMEOUT_S) as ws:
            async with trio.open_nursery() as nursery:
                if interactive:
                    nursery.start_soon(_send_stdin, ws)
                if tty:
                    nursery.start_soon(_send_sizes, ws)
                status = await _receive_output(ws)
                nursery.cancel_scope.cancel()
    except tw.ConnectionRejected as e:
        _refused(client, e)
    except tw.HandshakeError as e:
        cause = e.__cause__ or e
        fail(client.unreachable(cause if isinstance(cause, Exception) else e))
    except tw.ConnectionClosed as e:
        status = {"error": f"the connection to the agent closed ({e.reason})"}
    if "exit_code" not in status or not isinstance(status["exit_code"], int):
        click.echo(f"\r\nshoal: {status.get('error') or 'the command exit code is unknown'}", err=True)
        return LOST_EXIT
    code: int = status["exit_code"]
    return code if 0 <= code <= 255 else 1


def _refused(client: Client, e: tw.ConnectionRejected) -> None:
    try:
        body = json.loads(e.body or b"{}")
    except ValueError:
        body = None
    problem = body.get("error") if isinstance(body, dict) else None
    fail(problem or f"the agent at {client.address} answered HTTP {e.status_code}")


async def _send_stdin(ws: tw.WebSocketConnection) -> None:
    fd = sys.stdin.fileno()
    while True:
        data = await trio.to_thread.run_sync(os.read, fd, MAX_PAYLOAD_BYTES, abandon_on_cancel=True)
        if not data:
            await ws.send_message(message(CLOSE_STDIN))
            return
        await ws.send_message(message(STDIN, data))


async def _send_sizes(ws: tw.WebSocketConnection) -> None:
    with trio.open_signal_receiver(signal.SIGWINCH) as changes:
        async for _ in changes:
            cols, rows = _terminal_size()
            if cols and rows:
                await ws.send_message(json_message(RESIZE, {"cols": cols, "rows": rows}))


async def _receive_output(ws: tw.WebSocketConnection) -> dict[str, Any]:
    out, err = sys.stdout.buffer, sys.stderr.buffer
    while True:
        data = await ws.get_message()
        if not isinstance(data, bytes) or not data:
            continue
        channel, payload = data[0], data[1:]
        if channel in (STDOUT, STDERR):
            stream = out if channel == STDOUT else err
            stream.write(payload)
            stream.flush()
        elif channel == STATUS:
            try:
                status = json.loads(payload)
            except ValueError:
                status = None
            return status if isinstance(status, dict) else {"error": "the agent sent an unreadable status"}
