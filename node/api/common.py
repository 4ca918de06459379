"""What every route of the agent's HTTP API shares.

How this works: `ApiError` is raised by handlers and turned into
{"error": ...} with its status by the app (node.api.server); bodies are read
with a size bound (`read_body`, `json_body`); blocking reads wait as
`?index=&wait=` ask and then read the core's view (`blocking_read`, see
node.api.blocking); `peer_target` says how to reach another member, and
node.api.forward how requests are forwarded to it.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from starlette.requests import HTTPConnection, Request
from starlette.responses import JSONResponse

from node.agent.tags import decode_tags
from node.api import views
from node.api.blocking import parse_index, parse_wait
from node.core.history import MAX_BY_CHARS
from node.core.view import CoreView

if TYPE_CHECKING:
    from node.agent.agent import Agent

MAX_BODY_BYTES = 64 * 1024
FORWARD_TIMEOUT_S = 10.0
INDEX_HEADER = "X-Shoal-Index"
CLIENT_HEADER = "x-shoal-client"


class ApiError(Exception):
    def __init__(self, status: int, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.extra = extra


def error_response(status: int, message: str, **extra: Any) -> JSONResponse:
    return JSONResponse({"error": message, **extra}, status_code=status)


async def read_body(request: Request, limit: int) -> bytes:
    """The request body, reading no more than limit + 1 bytes (413 beyond)."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise ApiError(413, f"request body is {declared} bytes; the limit is {limit}", limit_bytes=limit)
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise ApiError(413, f"request body larger than {limit} bytes", limit_bytes=limit)
        chunks.append(chunk)
    return b"".join(chunks)


async def json_body(request: Request) -> dict[str, Any]:
    body = await read_body(request, MAX_BODY_BYTES)
    if not body:
        return {}
    try:
        obj = json.loads(body)
    except ValueError:  # also bad UTF-8 and integers too long to convert
        raise ApiError(400, "request body is not valid JSON") from None
    except RecursionError:
        raise ApiError(400, "request body is nested too deeply") from None
    if not isinstance(obj, dict):
        raise ApiError(400, "request body must be a JSON object")
    return obj


def client_of(request: Request) -> str:
    """Who the client says it is (`X-Shoal-Client: user@host`, sent by the CLI;
    informational, not authenticated), printable and bounded; "" if unsaid.
    It goes into job history as who wrote a version (node.core.history)."""
    raw = request.headers.get(CLIENT_HEADER, "")
    return "".join(ch for ch in raw if ch.isprintable())[:MAX_BY_CHARS]


def agent_of(request: HTTPConnection) -> Agent:
    agent: Agent = request.app.state.agent
    return agent


async def blocking_read(request: Request, resource: str,
                        fn: Callable[[CoreView, float], Any]) -> tuple[int, Any]:
    """Wait as a blocking query asks (?index=&wait=), then read (index, fn(view, now))."""
    try:
        index = parse_index(request.query_params.get("index"))
        wait_s = parse_wait(request.query_params.get("wait"))
    except ValueError as e:
        raise ApiError(400, str(e)) from None
    agent = agent_of(request)
    if index is not None:
        await agent.indexes.wait_past(resource, index, wait_s)
    return agent.ops.read(resource, fn)


def indexed(body: Any, index: int, status_code: int = 200) -> JSONResponse:
    return JSONResponse(body, status_code=status_code, headers={INDEX_HEADER: str(index)})


def peer_target(view: CoreView, name: str) -> dict[str, Any] | None:
    """How to reach member name: {status, addr, api} (None: not a member)."""
    m = view.member(name)
    if m is None:
        return None
    return {"status": views.member_view(m, 0.0)["status"], "addr": m.addr.host,
            "api": decode_tags(m.meta).get("api")}


def flag(value: str | None) -> bool:
    return value is not None and value.lower() in ("1", "true", "yes", "on", "")
