"""The API's interactive exec: a WebSocket to a command in a replica's container.

How this works: `GET /v1/jobs/NAME/exec/stream?slot=I&cmd=ARG...&tty=0|1&cols=C&rows=R`,
upgraded to a WebSocket (`shoal exec -i/-t`; node.api.exec_channels has
its messages).  The agent asked finds the slot's holder as `shoal exec`
does.  On the holder the runtime starts the command with stdin (and a
TTY) and the connection carries stdin in, output out, terminal sizes in,
and at the end the exit code out.  Elsewhere the agent opens the same
WebSocket to the holder's API (as itself: the credential signs the whole
query, command included, node.api.forward) and relays messages both ways
unchanged.  Refusals before the upgrade (no such job, not placed, no
container, too many sessions) are plain HTTP answers with the usual JSON
error, which the CLI prints.

Bounds: at most MAX_EXEC_SESSIONS sessions on an agent at once (held or
relayed; one more is refused with 503 and counted); a message is at most
exec_channels.MAX_MESSAGE_BYTES (the server closes a connection that sends
a longer one); output is passed on as it comes, each send waiting for the
client, so a slow client slows the command's output rather than filling
memory.  A message on no known channel is counted and dropped.
"""

from __future__ import annotations

import json
import logging
from typing import Any
from urllib.parse import quote

import trio
from starlette.datastructures import QueryParams
from starlette.websockets import WebSocket, WebSocketDisconnect

from node.api.common import FORWARD_TIMEOUT_S, ApiError, agent_of, error_response
from node.api.exec_channels import (
    CLOSE_STDIN,
    MAX_MESSAGE_BYTES,
    MAX_TERMINAL_SIDE,
    RESIZE,
    STATUS,
    STDIN,
    json_message,
    message,
    terminal_size,
)
from node.api.forward import forward_headers, target_of
from node.api.routes_exec import run_here, slot_and_command
from node.api.routes_jobs import holder_url, slot_holder

log = logging.getLogger("shoal.api")

MAX_EXEC_SESSIONS = 32
EXIT_CODE_WAIT_S = 5.0     # the engine may report the command running a moment after its output ended
SESSIONS_FULL_REASON = "exec_sessions_full"
BAD_MESSAGE_REASON = "exec_message_unknown_channel"


async def job_exec_stream(ws: WebSocket) -> None:
    agent = agent_of(ws)
    sessions: trio.Semaphore = ws.app.state.exec_sessions
    try:
        sessions.acquire_nowait()
    except trio.WouldBlock:
        agent.metrics.drop(SESSIONS_FULL_REASON)
        await _deny(ws, 503, f"{agent.name} has {MAX_EXEC_SESSIONS} exec sessions open; retry when one ends")
        return
    try:
        await _serve(ws, agent)
    finally:
        sessions.release()


def _options(q: QueryParams) -> tuple[bool, int, int]:
    tty = q.get("tty", "0")
    if tty not in ("0", "1"):
        raise ApiError(400, "tty: 1 (a terminal) or 0")
    try:
        cols, rows = int(q.get("cols", "0")), int(q.get("rows", "0"))
    except ValueError:
        raise ApiError(400, "cols, rows: the terminal's size in characters") from None
    if not (0 <= cols <= MAX_TERMINAL_SIDE and 0 <= rows <= MAX_TERMINAL_SIDE):
        raise ApiError(400, f"cols, rows: the terminal's size in characters, at most {MAX_TERMINAL_SIDE}")
    return tty == "1", cols, rows


async def _serve(ws: WebSocket, agent: Any) -> None:
    job = ws.path_params["name"]
    try:
        index, command = slot_and_command(ws.query_params)
        tty, cols, rows = _options(ws.query_params)
        holder = slot_holder(agent.view, job, index)
        if holder["node"] != agent.name:
            url = holder_url(agent, ws, holder)
            target = target_of(f"/v1/jobs/{quote(job, safe='')}/exec/stream",
                               {"slot": str(index), "cmd": command, "tty": "1" if tty else "0",
                                "cols": str(cols), "rows": str(rows)})
            await _relay(ws, agent, url, target, holder)
            return
        session = await run_here(agent, "exec_session", holder["slot"], command, tty=tty, cols=cols, rows=rows)
    except ApiError as e:
        await _deny(ws, e.status, e.message, **e.extra)
        return
    try:
        await ws.accept()
        await _pump(ws, agent, session)
    finally:
        with trio.CancelScope(shield=True):
            await session.aclose()
        await _close(ws)


async def _pump(ws: WebSocket, agent: Any, session: Any) -> None:
    """Output out and, at its end, the exit code; stdin and sizes in; the
    first side to end ends the session."""
    async with trio.open_nursery() as nursery:

        async def output() -> None:
            while (pieces := await session.receive()) is not None:
                for stream, data in pieces:
                    await ws.send_bytes(message(stream, data))
            await ws.send_bytes(json_message(STATUS, {"exit_code": await _exit_code(session)}))
            nursery.cancel_scope.cancel()

        async def commands() -> None:
            while True:
                msg = await ws.receive()
                if msg["type"] == "websocket.disconnect":
                    break
                data = msg.get("bytes") or b""
                channel, payload = (data[0], data[1:]) if data else (-1, b"")
                if channel == STDIN:
                    await session.send_stdin(payload)
                elif channel == CLOSE_STDIN:
                    await session.close_stdin()
                elif channel == RESIZE and (size := terminal_size(payload)) is not None:
                    await session.resize(*size)
                else:
                    agent.metrics.drop(BAD_MESSAGE_REASON)
            nursery.cancel_scope.cancel()

        nursery.start_soon(output)
        nursery.start_soon(commands)


async def _exit_code(session: Any) -> int | None:
    with trio.move_on_after(EXIT_CODE_WAIT_S):
        while (code := await session.exit_code()) is None:
            await trio.sleep(0.05)
        return int(code)
    return None


async def _relay(ws: WebSocket, agent: Any, url: str, target: str, holder: dict[str, Any]) -> None:
    """The same WebSocket to the holder's API, messages passed on both ways."""
    import trio_websocket as tw      # loaded by the first relayed session, not by every agent at start

    from node.api.tls import peer_client_context

    headers = [(k.encode(), v.encode()) for k, v in forward_headers(agent, "GET", target).items()]
    context = peer_client_context(agent.config) if agent.config.api_tls_cert is not None else None
    ws_url = "ws" + url.removeprefix("http") + target
    accepted = False
    try:
        async with tw.open_websocket_url(ws_url, context, extra_headers=headers, max_message_size=MAX_MESSAGE_BYTES,
                                         connect_timeout=FORWARD_TIMEOUT_S,
                                         disconnect_timeout=FORWARD_TIMEOUT_S) as peer:
            accepted = True
            await ws.accept()
            await _pass_on(ws, peer, tw)
    except tw.ConnectionRejected as e:
        await _deny_as_holder(ws, e, url, holder)
    except (tw.HandshakeError, OSError) as e:
        if not accepted:
            await _deny(ws, 502, f"{holder['slot']} runs on {holder['node']}; forwarding to its agent at {url} "
                                 f"failed: {explain_handshake(e)}", node=holder["node"], api=url)
    except (tw.ConnectionClosed, WebSocketDisconnect):
        pass
    finally:
        if accepted:
            await _close(ws)


async def _pass_on(ws: WebSocket, peer: Any, tw: Any) -> None:
    async with trio.open_nursery() as nursery:

        async def down() -> None:
            try:
                while True:
                    await ws.send_bytes(_as_bytes(await peer.get_message()))
            except tw.ConnectionClosed:
                pass
            nursery.cancel_scope.cancel()

        async def up() -> None:
            while (msg := await ws.receive())["type"] != "websocket.disconnect":
                if (data := msg.get("bytes")) is not None:
                    await peer.send_message(data)
            nursery.cancel_scope.cancel()

        nursery.start_soon(down)
        nursery.start_soon(up)


async def _deny_as_holder(ws: WebSocket, e: Any, url: str, holder: dict[str, Any]) -> None:
    """The holder's refusal, passed on as this agent's (with forwarded_to)."""
    try:
        body = json.loads(e.body or b"{}")
    except ValueError:
        body = None
    body = body if isinstance(body, dict) else {}
    problem = body.pop("error", None) or f"{holder['node']}'s agent answered HTTP {e.status_code}"
    await _deny(ws, e.status_code, str(problem), **{**body, "forwarded_to": url})


def explain_handshake(e: BaseException) -> str:
    cause = e.__cause__ or e
    return str(cause) or type(cause).__name__


def _as_bytes(data: bytes | str) -> bytes:
    return data if isinstance(data, bytes) else data.encode()


async def _deny(ws: WebSocket, status: int, problem: str, **extra: Any) -> None:
    await ws.send_denial_response(error_response(status, problem, **extra))


async def _close(ws: WebSocket) -> None:
    try:
        await ws.close()
    except (RuntimeError, WebSocketDisconnect, OSError):
        pass    # the client went first
