"""The agent's HTTP API: Starlette routes served by hypercorn on trio.

How this works: `build_app(agent)` returns a Starlette app whose handlers
(node.api.routes_jobs, node.api.routes_cluster, node.api.routes_services;
shared helpers in node.api.common) never change the node core themselves: changes go through
the agent's operations (node.agent.operations), which feed inputs to the
pump task; reads render a whole answer from the core's read-only view with
no `await` in between (node.api.views).
`serve_api()` runs it with `hypercorn.trio.serve`, on the socket the agent
opened before it loaded this module (node.api.listen), until the agent sets
its shutdown event (a graceful stop of at most ~1 s), and reports the URL
through `task_status`.

Endpoints (JSON unless noted; errors are {"error": "..."} with a 4xx/5xx):

    GET  /v1/agent/self     this agent: name, addresses, profile, health, stats,
                            capacity, allocated, free, labels, drained, runtime
    GET  /v1/members        [{name, addr, port, status, state, incarnation,
                              tags, meta, health, vsn, since_s}]        (blocking)
    GET  /v1/nodes          [{name, addr, port, status (alive/suspect/failed/
                              left), api, capacity, allocated, free (each
                              {cpu_millis, memory_bytes, disk_bytes, text}),
                              labels, drained, healthy, eligible, health,
                              agent_version, jobs, publish_address}]      (blocking)
    GET  /v1/nodes/NAME     one of those, 404 if unknown                  (blocking)
    POST /v1/nodes/NAME/drain, /v1/nodes/NAME/undrain
                            set NAME's drain flag.  Only a node sets its own:
                            for another node the request is forwarded to the
                            API address in its `api` tag (answer passed
                            through, with "forwarded_to"); 409 naming the agent
                            to ask when that is impossible (not alive, API on
                            its loopback), 502 if the forward fails
    GET  /v1/jobs           [{name, image, replicas, placed, pending, cpu,
                              memory, version}]                          (blocking)
    POST /v1/jobs           body: the job spec as JSON (docs/jobspec.md);
                            201 {name, index, durable, version} once the write
                            is durable here (and job_version, its number in
                            the job's history); 400 {error, problems: [{path,
                            message}]} for an invalid spec (every problem);
                            413 for a body over 64 KiB + slack or a spec over
                            64 KiB; 409 at the job-count bound; 503 if the
                            write could not be made durable (not acknowledged)
    GET  /v1/jobs/NAME      {name, spec, replicas, placed, pending, running,
                             failed, version, slots: [{index, slot, node,
                             ballot {round, coordinator}, coordinator, state
                             placed|pending, reason, runtime running|starting|
                             failed|exited|null, runtime_reason}], extra:
                             [slots being retired]}                      (blocking)
    DELETE /v1/jobs/NAME    stop the job (a tombstone); 200 {name, stopped,
                            index} once durable, 404 if no such job
    GET  /v1/jobs/NAME/logs ?slot=INDEX (default 0)&follow=1&tail=N|all
                            &since_s=S (the last S seconds)&timestamps=1
                            the output of that replica's container
                            (text/plain, streamed; with follow until the
                            container stops or the client goes).  Asked
                            anywhere: the agent finds the node holding the
                            slot's winning claim and forwards to its API (the
                            `api` tag), streaming the answer through; 404 no
                            such job/slot or no container yet, 409 not placed
                            or holder not reachable from here, 502 forward failed
    POST /v1/jobs/NAME/exec ?slot=INDEX&cmd=ARG&cmd=ARG...&timeout_s=S (default
                            60, at most 600): run the command in that
                            replica's running container, on its node
                            (forwarded there as logs are; node.api.routes_exec);
                            200 {slot, node, exit_code (null: still running
                            at the timeout), output (at most 1 MiB), truncated,
                            timed_out}; 404 no container, 409 not running
    GET  /v1/jobs/NAME/exec/stream ?slot&cmd...&tty=0|1&cols&rows: a WebSocket
                            to the command, with stdin (and a TTY): `shoal
                            exec -i/-t`, relayed to the holder
                            (node.api.routes_exec_stream; its messages:
                            node.api.exec_channels); refusals are the
                            JSON errors above, before the upgrade
    GET  /v1/jobs/NAME/history  the job's last 10 versions, oldest first: {name,
                            current, versions: [{version, number, current,
                            time, agent, by, why, ref, image, changes,
                            summary, replaces, spec}]}                   (blocking)
    POST /v1/jobs/NAME/rollback {"version": "3"} (default: the previous
                            version): writes it as a new version, why
                            rollback; POST /v1/jobs/NAME/scale {"replicas":
                            N}; POST .../restart, .../promote: the same
                            answers as POST /v1/jobs, or {changed: false}
                            (node.api.routes_versions)
    POST /v1/jobs/plan      body: a job spec; what writing it would do
                            (changes, replaced, moved, started, stopped,
                            unplaceable), writing nothing
    GET  /v1/services       the service catalog: [{name, count, instances:
                            [{job, slot, node, address, ports {label:
                            host port}, health}]}] (blocking, node.api.
                            routes_services: its index moves with the catalog)
    GET  /v1/services/NAME  {name, count, instances}; 404 if no such job and
                            none listed                                  (blocking)
    GET  /v1/containers     this node's containers: {node, runtime,
                            containers: [{slot, id, name, node, state, status,
                            health, image, ballot, role, restarts, gave_up,
                            done}]} (?job=NAME to filter); ?cluster=1 asks
                            every alive member's API (in parallel, 5 s each)
                            and answers {nodes: [{node, api, runtime,
                            containers, error}]}
    GET  /v1/images         this node's images {node, images: [{ref, id, size}],
                            pulling, fetching} (?ref=REF; ?cluster=1: every
                            alive member's); GET /v1/images/archive?ref=REF:
                            `docker save` of that tag, for other agents
                            (node.api.routes_images)
    POST /v1/images/preload {image, constraints?, source?}: the matching alive
                            nodes get the image now (`shoal image preload`);
                            POST /v1/images/preload/local: this node only
    POST /v1/agent/join     {"addresses": ["HOST[:PORT]", ...]} -> {"joined": n, "errors": {...}}
                            (502 when none could be joined)
    POST /v1/agent/leave    leave the cluster gracefully, then the agent exits
    GET  /v1/keys           {"encrypted", "keys": [b64...], "primary": b64}
    POST /v1/keys           {"action": install|use|remove, "key": b64, "local": false}
                            applied here, then sent to every alive member
                            unless "local" is true
    GET  /v1/metrics        Prometheus text format
    GET  /v1/events         NDJSON stream of events (?history=0 to skip the
                            recent ones already buffered): member_*, node_status,
                            job_updated/job_deleted, claim, auction_closed,
                            award_accepted, replica_start/replica_stop,
                            slot_pending, rollout_*, rebalance_moving/moved/failed,
                            image_pull, image_fetch, image_serve, image_preload,
                            join, key,
                            user_*
    GET  /ui                the status page (text/html; node/ui.py): members,
                            capacity, jobs, placements, recent events; no
                            scripts, a Content-Security-Policy that forbids them
    PUT  /v1/agent/fault    {"delay_ms": N}: testbed fault hook, adds N ms
                            before every outgoing UDP datagram (0 turns it off);
                            {"corrupt_serves": N}: a byte flipped in each of the
                            next N image archives served to peers;
                            only when the agent runs with --enable-fault-hook

Blocking queries (marked above): the answer carries `X-Shoal-Index`, the
agent-local index of that resource (node/blocking.py).  With `?index=N` the
request answers at once if the index is past N, else waits until it is or
`?wait=` runs out (`5s`, `250ms`, `2m`; default and cap 5 minutes).

Browsers: a request a web page makes (it carries `Origin`) is refused, and
without an `api_token` so is a `Host` that is not an IP address or
localhost (node.api.browser_guard: cross-site requests, DNS rebinding).

Auth: when the agent has an `api_token`, every request must carry
`Authorization: Bearer <token>` or `X-Shoal-Token: <token>` (compared in
constant time), else 401.  The routes agents forward to one another
(`PEER_ROUTES`: GET /v1/containers, GET /v1/jobs/NAME/logs, POST
/v1/jobs/NAME/exec, POST
/v1/nodes/NAME/drain|undrain, GET /v1/images and /v1/images/archive, POST
/v1/images/preload/local) also take another agent's proof instead: a
client certificate from the cluster CA (TLS, node.api.tls) or a credential
derived from the gossip key (node.agent.peer_auth).  Agents never forward
the caller's token (node.api.forward).

TLS: with `api_tls_cert`, `api_tls_key` and `api_tls_ca` the API is served
over HTTPS (node.api.tls).  Errors never echo an exception's text: a body
that is not a JSON object is a 400 saying so, a failure in a handler a 500
"internal error" (the traceback goes to the agent's log).
"""

from __future__ import annotations

import functools
import hmac
import logging
import re
import socket
from typing import TYPE_CHECKING, Any

import trio
from hypercorn.trio import serve
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route, WebSocketRoute

from node.agent.errors import AgentStarting
from node.agent.peer_auth import PeerAuthError, verify
from node.api.browser_guard import BrowserGuard
from node.api.common import ApiError, error_response
from node.api.exec_channels import MAX_MESSAGE_BYTES
from node.api.routes_cluster import (
    agent_self,
    drain,
    events,
    fault,
    join,
    keys_change,
    keys_list,
    leave,
    members,
    metrics,
    node,
    nodes,
    ui_page,
    undrain,
)
from node.api.routes_images import archive, images, preload, preload_local
from node.api.routes_exec import job_exec
from node.api.routes_exec_stream import MAX_EXEC_SESSIONS, job_exec_stream
from node.api.routes_jobs import containers, job, job_logs, jobs, stop_job, submit_job
from node.api.routes_versions import history, plan, promote, restart, rollback, scale
from node.api.routes_services import service, services
from node.api.tls import PEER_CERT, hypercorn_config

if TYPE_CHECKING:
    from node.agent.agent import Agent

log = logging.getLogger("shoal.api")


async def _api_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ApiError)
    return error_response(exc.status, exc.message, **exc.extra)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    return error_response(exc.status_code, exc.detail or "error")


async def _starting(request: Request, exc: Exception) -> Response:
    return error_response(503, str(exc))


async def _internal_error(request: Request, exc: Exception) -> Response:
    log.exception("API handler failed: %s %s", request.method, request.url.path, exc_info=exc)
    return error_response(500, "internal error (the agent's log has the details)")


# (method, path) of the requests agents forward to one another (node.api.forward).
PEER_ROUTES = (
    ("GET", re.compile(r"/v1/containers")),
    ("GET", re.compile(r"/v1/jobs/[^/]+/logs")),
    ("POST", re.compile(r"/v1/jobs/[^/]+/exec")),
    ("GET", re.compile(r"/v1/jobs/[^/]+/exec/stream")),     # a WebSocket
    ("POST", re.compile(r"/v1/nodes/[^/]+/(?:un)?drain")),
    ("GET", re.compile(r"/v1/images(?:/archive)?")),
    ("POST", re.compile(r"/v1/images/preload/local")),
)


def is_peer_route(method: str, path: str) -> bool:
    return any(method == m and rx.fullmatch(path) for m, rx in PEER_ROUTES)


class TokenAuth:
    """Pure ASGI middleware (streams keep working): 401 without the token,
    except for another agent's proof on the routes agents forward to."""

    def __init__(self, app: Any, token: str, agent: Agent) -> None:
        self.app = app
        self.token = token.encode()
        self.agent = agent

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        method = scope.get("method", "GET")    # a WebSocket's handshake is a GET
        headers = dict(scope.get("headers") or [])
        given = headers.get(b"x-shoal-token")
        auth = headers.get(b"authorization", b"")
        if given is None and auth[:7].lower() == b"bearer ":
            given = auth[7:].strip()
        if given is not None and hmac.compare_digest(given, self.token):
            await self.app(scope, receive, send)
            return
        problem = "missing or wrong API token (send Authorization: Bearer <token>)"
        if given is None and is_peer_route(method, scope["path"]):
            peer = self.peer_problem(scope, method, headers)
            if peer is None:
                await self.app(scope, receive, send)
                return
            problem += f"; {peer}"
        await error_response(401, problem)(scope, receive, send)

    def peer_problem(self, scope: dict[str, Any], method: str, headers: dict[bytes, bytes]) -> str | None:
        """None if the request carries another agent's proof, else why not."""
        if PEER_CERT.get() is not None:
            return None  # a client certificate the cluster CA issued (checked in the handshake)
        keyring = self.agent.keys.keyring
        if keyring is None:
            return "peer credential: this agent has no gossip key"
        target = (scope.get("raw_path") or scope["path"].encode()).decode("latin-1")
        if scope.get("query_string"):
            target += "?" + scope["query_string"].decode("latin-1")
        text_headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in headers.items()}
        try:
            verify(keyring.keys, text_headers, method, target, self.agent.cluster_wall_ms())
        except PeerAuthError as e:
            return str(e)
        return None


def build_app(agent: Agent) -> Any:
    routes = [
        Route("/v1/agent/self", agent_self, methods=["GET"]),
        Route("/v1/members", members, methods=["GET"]),
        Route("/v1/nodes", nodes, methods=["GET"]),
        Route("/v1/nodes/{name}", node, methods=["GET"]),
        Route("/v1/nodes/{name}/drain", drain, methods=["POST"]),
        Route("/v1/nodes/{name}/undrain", undrain, methods=["POST"]),
        Route("/v1/jobs", jobs, methods=["GET"]),
        Route("/v1/jobs", submit_job, methods=["POST"]),
        Route("/v1/jobs/{name}", job, methods=["GET"]),
        Route("/v1/jobs/{name}", stop_job, methods=["DELETE"]),
        Route("/v1/jobs/{name}/logs", job_logs, methods=["GET"]),
        Route("/v1/jobs/{name}/exec", job_exec, methods=["POST"]),
        WebSocketRoute("/v1/jobs/{name}/exec/stream", job_exec_stream),
        Route("/v1/jobs/plan", plan, methods=["POST"]),
        Route("/v1/jobs/{name}/history", history, methods=["GET"]),
        Route("/v1/jobs/{name}/rollback", rollback, methods=["POST"]),
        Route("/v1/jobs/{name}/scale", scale, methods=["POST"]),
        Route("/v1/jobs/{name}/restart", restart, methods=["POST"]),
        Route("/v1/jobs/{name}/promote", promote, methods=["POST"]),
        Route("/v1/services", services, methods=["GET"]),
        Route("/v1/services/{name}", service, methods=["GET"]),
        Route("/v1/containers", containers, methods=["GET"]),
        Route("/v1/images", images, methods=["GET"]),
        Route("/v1/images/archive", archive, methods=["GET"]),
        Route("/v1/images/preload", preload, methods=["POST"]),
        Route("/v1/images/preload/local", preload_local, methods=["POST"]),
        Route("/v1/agent/join", join, methods=["POST"]),
        Route("/v1/agent/leave", leave, methods=["POST"]),
        Route("/v1/keys", keys_list, methods=["GET"]),
        Route("/v1/keys", keys_change, methods=["POST"]),
        Route("/v1/metrics", metrics, methods=["GET"]),
        Route("/v1/events", events, methods=["GET"]),
        Route("/ui", ui_page, methods=["GET"]),
    ]
    if agent.config.enable_fault_hook:
        routes.append(Route("/v1/agent/fault", fault, methods=["PUT"]))
    app = Starlette(
        routes=routes,
        exception_handlers={ApiError: _api_error, HTTPException: _http_error, AgentStarting: _starting,
                            Exception: _internal_error},
    )
    app.state.agent = agent
    app.state.exec_sessions = trio.Semaphore(MAX_EXEC_SESSIONS)
    authed = TokenAuth(app, agent.config.api_token, agent) if agent.config.api_token else app
    return BrowserGuard(authed, check_host=not agent.config.api_token, on_refused=agent.metrics.drop)


async def serve_api(
    agent: Agent,
    sock: socket.socket,
    shutdown: trio.Event,
    done: trio.Event,
    *,
    task_status: trio.TaskStatus[str] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve on `sock` (opened by node.api.listen, which this takes over)
    until `shutdown` is set; set `done` when fully stopped."""
    cfg = hypercorn_config(agent.config)  # HTTPS when the TLS settings are set
    cfg.bind = [f"fd://{sock.detach()}"]
    cfg.accesslog = None
    cfg.errorlog = logging.getLogger("shoal.api.server")
    cfg.graceful_timeout = 1.0
    cfg.keep_alive_timeout = 5.0
    cfg.websocket_max_message_size = MAX_MESSAGE_BYTES     # the exec WebSocket's bound (16 MiB by default)
    try:
        async with trio.open_nursery() as nursery:
            binds = await nursery.start(
                functools.partial(serve, build_app(agent), cfg, shutdown_trigger=shutdown.wait)
            )
            task_status.started(binds[0])
    finally:
        done.set()
