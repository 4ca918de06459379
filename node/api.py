"""The agent's HTTP API: Starlette routes served by hypercorn on trio.

How this works: `build_app(agent)` returns a Starlette app whose handlers
never touch the gossip core themselves: every read or change goes through
`Agent.call` / the agent's helpers, which run inside the pump task.
`serve_api()` runs it with `hypercorn.trio.serve` until the agent sets its
shutdown event (a graceful stop of at most ~1 s), and reports the bound URL
through `task_status` (so `--api 127.0.0.1:0` works).

Endpoints (JSON unless noted; errors are {"error": "..."} with a 4xx/5xx):

    GET  /v1/agent/self     this agent: name, addresses, profile, health, stats
    GET  /v1/members        [{name, addr, port, status, state, incarnation,
                              tags, meta, health, vsn, since_s}]
    POST /v1/agent/join     {"addresses": ["HOST[:PORT]", ...]} -> {"joined": n, "errors": {...}}
                            (502 when none could be joined)
    POST /v1/agent/leave    leave the cluster gracefully, then the agent exits
    GET  /v1/keys           {"encrypted", "keys": [b64...], "primary": b64}
    POST /v1/keys           {"action": install|use|remove, "key": b64, "local": false}
                            applied here, then sent to every alive member
                            unless "local" is true
    GET  /v1/metrics        Prometheus text format
    GET  /v1/events         NDJSON stream of events (?history=0 to skip the
                            recent ones already buffered)
    PUT  /v1/agent/fault    {"delay_ms": N}: testbed fault hook, adds N ms
                            before every outgoing UDP datagram (0 turns it off)

Auth: when the agent has an `api_token`, every request must carry
`Authorization: Bearer <token>` or `X-Shoal-Token: <token>` (compared in
constant time), else 401.
"""

from __future__ import annotations

import functools
import hmac
import json
import logging
from typing import TYPE_CHECKING, Any

import trio
from hypercorn.config import Config as HypercornConfig
from hypercorn.trio import serve
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from node.config import ConfigError, DEFAULT_GOSSIP_PORT, parse_host_port
from node.eventlog import TooManySubscribers
from node.keys import ACTIONS, KeyOpError, parse_key
from node.metrics import CONTENT_TYPE

if TYPE_CHECKING:
    from node.agent import Agent

log = logging.getLogger("shoal.api")

MAX_BODY_BYTES = 64 * 1024
MAX_JOIN_ADDRESSES = 64
MAX_FAULT_DELAY_MS = 60_000


class ApiError(Exception):
    def __init__(self, status: int, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.extra = extra


def _error(status: int, message: str, **extra: Any) -> JSONResponse:
    return JSONResponse({"error": message, **extra}, status_code=status)


async def _json_body(request: Request) -> dict[str, Any]:
    body = await request.body()
    if len(body) > MAX_BODY_BYTES:
        raise ApiError(413, f"request body larger than {MAX_BODY_BYTES} bytes")
    if not body:
        return {}
    try:
        obj = json.loads(body)
    except ValueError:
        raise ApiError(400, "request body is not valid JSON") from None
    if not isinstance(obj, dict):
        raise ApiError(400, "request body must be a JSON object")
    return obj


def _agent(request: Request) -> "Agent":
    return request.app.state.agent


# ---- handlers -----------------------------------------------------------------


async def agent_self(request: Request) -> Response:
    return JSONResponse(await _agent(request).self_info())


async def members(request: Request) -> Response:
    return JSONResponse(await _agent(request).members())


async def join(request: Request) -> Response:
    body = await _json_body(request)
    addresses = body.get("addresses")
    if isinstance(addresses, str):
        addresses = [addresses]
    if not isinstance(addresses, list) or not addresses or not all(isinstance(a, str) for a in addresses):
        raise ApiError(400, 'addresses: expected a non-empty list of "HOST[:PORT]" strings')
    if len(addresses) > MAX_JOIN_ADDRESSES:
        raise ApiError(400, f"addresses: at most {MAX_JOIN_ADDRESSES}")
    try:
        seeds = [parse_host_port(a, "addresses", DEFAULT_GOSSIP_PORT) for a in addresses]
    except ConfigError as e:
        raise ApiError(400, str(e)) from None
    results = await _agent(request).join(seeds)
    joined = sum(1 for err in results.values() if err is None)
    errors = {seed: err for seed, err in results.items() if err is not None}
    if joined == 0:
        raise ApiError(502, "could not join any of the addresses", joined=0, errors=errors)
    return JSONResponse({"joined": joined, "errors": errors})


async def leave(request: Request) -> Response:
    agent = _agent(request)
    await agent.leave()
    # Exit after this response is written: hypercorn finishes in-flight
    # requests when the agent triggers its graceful shutdown.
    agent.request_exit()
    return JSONResponse({"left": True, "name": agent.name})


async def keys_list(request: Request) -> Response:
    agent = _agent(request)
    return JSONResponse(await agent.call(lambda swim, now: agent.keys.listing()))


async def keys_change(request: Request) -> Response:
    body = await _json_body(request)
    action = body.get("action")
    if action not in ACTIONS:
        raise ApiError(400, f"action: expected one of {', '.join(ACTIONS)}")
    local = body.get("local", False)
    if not isinstance(local, bool):
        raise ApiError(400, "local: expected true or false")
    try:
        key = parse_key(body.get("key"))
    except KeyOpError as e:
        raise ApiError(400, str(e)) from None
    agent = _agent(request)
    try:
        result = await agent.key_operation(action, key, cluster=not local)
    except KeyOpError as e:
        # 400: encryption is off here; 409: conflicts with the keyring's state.
        raise ApiError(409 if agent.keys.enabled else 400, str(e)) from None
    return JSONResponse(result)


async def metrics(request: Request) -> Response:
    return Response(await _agent(request).render_metrics(), media_type=CONTENT_TYPE)


async def events(request: Request) -> Response:
    history = request.query_params.get("history", "1").lower() not in ("0", "false", "no")
    try:
        channel = _agent(request).events.subscribe(history=history)
    except TooManySubscribers as e:
        raise ApiError(503, str(e)) from None

    async def stream():
        async with channel:
            async for record in channel:
                yield json.dumps(record, separators=(",", ":")) + "\n"

    return StreamingResponse(stream(), media_type="application/x-ndjson")


async def fault(request: Request) -> Response:
    agent = _agent(request)
    body = await _json_body(request)
    delay = body.get("delay_ms")
    if isinstance(delay, bool) or not isinstance(delay, (int, float)) or not 0 <= delay <= MAX_FAULT_DELAY_MS:
        raise ApiError(400, f"delay_ms: expected a number from 0 to {MAX_FAULT_DELAY_MS}")
    assert agent.transport is not None
    agent.transport.fault_delay_s = float(delay) / 1000.0
    log.warning("fault injection: %g ms added to every outgoing datagram", delay)
    return JSONResponse({"delay_ms": delay})


# ---- app ---------------------------------------------------------------------


async def _api_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ApiError)
    return _error(exc.status, exc.message, **exc.extra)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    return _error(exc.status_code, exc.detail or "error")


async def _internal_error(request: Request, exc: Exception) -> Response:
    log.exception("API handler failed: %s %s", request.method, request.url.path, exc_info=exc)
    return _error(500, f"internal error: {type(exc).__name__}: {exc}")


class TokenAuth:
    """Pure ASGI middleware (streams keep working): 401 without the token."""

    def __init__(self, app: Any, token: str) -> None:
        self.app = app
        self.token = token.encode()

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        given = headers.get(b"x-shoal-token")
        auth = headers.get(b"authorization", b"")
        if given is None and auth[:7].lower() == b"bearer ":
            given = auth[7:].strip()
        if given is None or not hmac.compare_digest(given, self.token):
            resp = _error(401, "missing or wrong API token (send Authorization: Bearer <token>)")
            await resp(scope, receive, send)
            return
        await self.app(scope, receive, send)


def build_app(agent: "Agent") -> Any:
    routes = [
        Route("/v1/agent/self", agent_self, methods=["GET"]),
        Route("/v1/members", members, methods=["GET"]),
        Route("/v1/agent/join", join, methods=["POST"]),
        Route("/v1/agent/leave", leave, methods=["POST"]),
        Route("/v1/keys", keys_list, methods=["GET"]),
        Route("/v1/keys", keys_change, methods=["POST"]),
        Route("/v1/metrics", metrics, methods=["GET"]),
        Route("/v1/events", events, methods=["GET"]),
        Route("/v1/agent/fault", fault, methods=["PUT"]),
    ]
    app = Starlette(
        routes=routes,
        exception_handlers={ApiError: _api_error, HTTPException: _http_error, Exception: _internal_error},
    )
    app.state.agent = agent
    if agent.config.api_token:
        return TokenAuth(app, agent.config.api_token)
    return app


async def serve_api(
    agent: "Agent",
    shutdown: trio.Event,
    done: trio.Event,
    *,
    task_status: trio.TaskStatus[str] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve until `shutdown` is set; set `done` when fully stopped."""
    cfg = HypercornConfig()
    cfg.bind = [str(agent.config.api)]
    cfg.accesslog = None
    cfg.errorlog = logging.getLogger("shoal.api.server")
    cfg.graceful_timeout = 1.0
    cfg.keep_alive_timeout = 5.0
    try:
        async with trio.open_nursery() as nursery:
            binds = await nursery.start(
                functools.partial(serve, build_app(agent), cfg, shutdown_trigger=shutdown.wait)
            )
            task_status.started(binds[0])
    finally:
        done.set()
