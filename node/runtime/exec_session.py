"""An interactive command in a replica's container: `shoal exec -i` / `-it` on the node that runs it.

How this works: the engine makes an exec instance with stdin attached (and
a TTY when asked), and `exec_start` upgrades its HTTP connection to a raw
two-way byte stream (Docker's "hijacked" connection, as `docker exec -it`
uses).  Its socket is taken over by trio (a duplicate of its descriptor,
non-blocking), so a session holds no worker thread however long it lasts.
Without a TTY, Docker frames the output (8 bytes: stream 1 or 2, three
zeros, a big-endian length; then that many bytes), which `receive` undoes
piece by piece, never holding more than one read; with a TTY the bytes are
the terminal's, one stream.  Closing stdin is a half-close of the socket
(the program reads end of file); the exit code is asked of the engine once
the output has ended.  Only an engine reached over a unix socket or plain
TCP gives a socket trio can take; over TLS the session is refused, saying so.
"""

from __future__ import annotations

import os
import socket
import struct
from typing import Any

import trio

from node.runtime.engine import Engine, RuntimeProblem, close_quietly

STDOUT, STDERR = 1, 2
FRAME_HEADER = struct.Struct(">BxxxL")
READ_BYTES = 32 * 1024


class OutputFrames:
    """Undoes Docker's output framing incrementally: bytes in, (stream, bytes)
    pieces out; a frame's payload may come in many pieces."""

    def __init__(self) -> None:
        self._head = b""
        self._stream = STDOUT
        self._left = 0      # payload bytes of the current frame still to come

    def feed(self, data: bytes) -> list[tuple[int, bytes]]:
        out: list[tuple[int, bytes]] = []
        while data:
            if self._left:
                piece, data = data[:self._left], data[self._left:]
                self._left -= len(piece)
                out.append((self._stream, piece))
                continue
            need = FRAME_HEADER.size - len(self._head)
            self._head, data = self._head + data[:need], data[need:]
            if len(self._head) == FRAME_HEADER.size:
                kind, self._left = FRAME_HEADER.unpack(self._head)
                self._head = b""
                self._stream = STDERR if kind == STDERR else STDOUT
        return out


def _raw_socket(hijacked: Any) -> socket.socket:
    """The plain socket under what the SDK's exec_start(socket=True) gives
    (a SocketIO over it for unix and http engines)."""
    sock = getattr(hijacked, "_sock", hijacked)
    if type(sock) is not socket.socket:
        raise RuntimeProblem("an interactive exec needs the Docker engine on a unix socket or plain TCP "
                             "(this one is reached over TLS); run the command without -i/-t")
    return sock


class ExecSession:
    """One interactive command: its output as (stream, bytes), its stdin,
    its terminal size, its exit code."""

    def __init__(self, engine: Engine, exec_id: str, tty: bool, stream: trio.SocketStream) -> None:
        self.engine = engine
        self.exec_id = exec_id
        self.tty = tty
        self._stream = stream
        self._frames = None if tty else OutputFrames()

    async def receive(self) -> list[tuple[int, bytes]] | None:
        """The next output pieces; None once the command's output has ended."""
        while True:
            try:
                data = await self._stream.receive_some(READ_BYTES)
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                return None
            if not data:
                return None
            if self._frames is None:
                return [(STDOUT, data)]
            if pieces := self._frames.feed(data):
                return pieces

    async def send_stdin(self, data: bytes) -> None:
        await self._stream.send_all(data)

    async def close_stdin(self) -> None:
        """End of file for the command's stdin (a half-close)."""
        try:
            await self._stream.send_eof()
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass

    async def resize(self, cols: int, rows: int) -> None:
        if self.tty:
            await self.engine.call("exec_resize", self.engine.api.exec_resize, self.exec_id,
                                   height=rows, width=cols)

    async def exit_code(self) -> int | None:
        """The command's exit code; None while it still runs."""
        state = await self.engine.call("exec_inspect", self.engine.api.exec_inspect, self.exec_id)
        return None if state.get("Running") else state.get("ExitCode")

    async def aclose(self) -> None:
        await self._stream.aclose()


async def open_session(engine: Engine, container_id: str, command: list[str], *, tty: bool,
                       cols: int = 0, rows: int = 0) -> ExecSession:
    made = await engine.call("exec_create", engine.api.exec_create, container_id, command,
                             stdout=True, stderr=True, stdin=True, tty=tty)
    exec_id = made["Id"]
    hijacked = await engine.call("exec_start", engine.stream_api.exec_start, exec_id, socket=True, tty=tty)
    try:
        raw = _raw_socket(hijacked)
        # A descriptor of our own: the SDK's response object may close its socket when collected.
        mine = socket.socket(raw.family, raw.type, raw.proto, fileno=os.dup(raw.fileno()))
    except BaseException:
        close_quietly(hijacked)
        raise
    close_quietly(hijacked)
    session = ExecSession(engine, exec_id, tty, trio.SocketStream(trio.socket.from_stdlib_socket(mine)))
    if tty and cols > 0 and rows > 0:
        await session.resize(cols, rows)
    return session
