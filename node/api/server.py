"""The agent's HTTP API: Starlette routes served by hypercorn on trio.

How this works: `build_app(agent)` returns a Starlette app whose handlers
never touch the node core themselves: every read or change goes through
`Agent.call` / the agent's helpers, which run inside the pump task (reads
render a whole answer from one snapshot: node/views.py).
`serve_api()` runs it with `hypercorn.trio.serve` until the agent sets its
shutdown event (a graceful stop of at most ~1 s), and reports the bound URL
through `task_status` (so `--api 127.0.0.1:0` works).

Endpoints (JSON unless noted; errors are {"error": "..."} with a 4xx/5xx):

    GET  /v1/agent/self     this agent: name, addresses, profile, health, stats,
                            capacity, allocated, free, labels, drained, runtime
    GET  /v1/members        [{name, addr, port, status, state, incarnation,
                              tags, meta, health, vsn, since_s}]        (blocking)
    GET  /v1/nodes          [{name, addr, port, status (alive/suspect/failed/
                              left), api, capacity, allocated, free (each
                              {cpu_millis, memory_bytes, disk_bytes, text}),
                              labels, drained, healthy, eligible, health,
                              agent_version, jobs}]                       (blocking)
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
                            is durable here; 400 {error, problems: [{path,
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
                            the output of that replica's container
                            (text/plain, streamed; with follow until the
                            container stops or the client goes).  Asked
                            anywhere: the agent finds the node holding the
                            slot's winning claim and forwards to its API (the
                            `api` tag), streaming the answer through; 404 no
                            such job/slot or no container yet, 409 not placed
                            or holder not reachable from here, 502 forward failed
    GET  /v1/containers     this node's containers: {node, runtime,
                            containers: [{slot, id, name, node, state, status,
                            health, image, ballot, role, restarts, gave_up,
                            done}]} (?job=NAME to filter); ?cluster=1 asks
                            every alive member's API (in parallel, 5 s each)
                            and answers {nodes: [{node, api, runtime,
                            containers, error}]}
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
                            slot_pending, join, key, user_*
    GET  /ui                the status page (text/html; node/ui.py): members,
                            capacity, jobs, placements, recent events; no
                            scripts, a Content-Security-Policy that forbids them
    PUT  /v1/agent/fault    {"delay_ms": N}: testbed fault hook, adds N ms
                            before every outgoing UDP datagram (0 turns it off)

Blocking queries (marked above): the answer carries `X-Shoal-Index`, the
agent-local index of that resource (node/blocking.py).  With `?index=N` the
request answers at once if the index is past N, else waits until it is or
`?wait=` runs out (`5s`, `250ms`, `2m`; default and cap 5 minutes).

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
from urllib.parse import quote

import httpx
import trio
from hypercorn.config import Config as HypercornConfig
from hypercorn.trio import serve
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from auction.spec import MAX_SPEC_BYTES, Problem, SpecError, validate
from node.api import views
from node.api.blocking import parse_index, parse_wait
from node.agent.config import ConfigError, DEFAULT_GOSSIP_PORT, HostPort, parse_host_port
from node.core.node_core import JobLimitError
from node.telemetry.eventlog import TooManySubscribers
from node.agent.keys import ACTIONS, KeyOpError, parse_key
from node.telemetry.metrics import CONTENT_TYPE
from node.agent.tags import decode_tags

if TYPE_CHECKING:
    from node.agent.agent import Agent

log = logging.getLogger("shoal.api")

MAX_BODY_BYTES = 64 * 1024
# A job spec is bounded at 64 KiB as compact JSON; the body may be
# pretty-printed, so it gets some slack before we stop reading it.
MAX_JOB_BODY_BYTES = MAX_SPEC_BYTES + 16 * 1024
MAX_JOIN_ADDRESSES = 64
MAX_FAULT_DELAY_MS = 60_000
FORWARD_TIMEOUT_S = 10.0
FORWARDED_HEADER = "X-Shoal-Forwarded-By"
INDEX_HEADER = "X-Shoal-Index"


class ApiError(Exception):
    def __init__(self, status: int, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.extra = extra


def _error(status: int, message: str, **extra: Any) -> JSONResponse:
    return JSONResponse({"error": message, **extra}, status_code=status)


async def _read_body(request: Request, limit: int) -> bytes:
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


async def _json_body(request: Request) -> dict[str, Any]:
    body = await _read_body(request, MAX_BODY_BYTES)
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


async def _blocking_read(request: Request, resource: str, fn) -> tuple[int, Any]:
    """Wait as a blocking query asks (?index=&wait=), then read (index, fn(core, now))."""
    try:
        index = parse_index(request.query_params.get("index"))
        wait_s = parse_wait(request.query_params.get("wait"))
    except ValueError as e:
        raise ApiError(400, str(e)) from None
    agent = _agent(request)
    if index is not None:
        await agent.indexes.wait_past(resource, index, wait_s)
    return await agent.read(resource, fn)


def _indexed(body: Any, index: int, status_code: int = 200) -> JSONResponse:
    return JSONResponse(body, status_code=status_code, headers={INDEX_HEADER: str(index)})


async def members(request: Request) -> Response:
    index, body = await _blocking_read(
        request, "members", lambda core, now: [views.member_view(m, now) for m in core.swim.members()])
    return _indexed(body, index)


async def nodes(request: Request) -> Response:
    index, body = await _blocking_read(request, "nodes", views.nodes_view)
    return _indexed(body, index)


async def node(request: Request) -> Response:
    name = request.path_params["name"]
    index, body = await _blocking_read(request, "nodes", lambda core, now: views.one_node_view(core, name, now))
    if body is None:
        return _indexed({"error": f"no node named {name!r} is known to this agent"}, index, 404)
    return _indexed(body, index)


async def drain(request: Request) -> Response:
    return await _set_drained(request, True)


async def undrain(request: Request) -> Response:
    return await _set_drained(request, False)


def _drain_target(core, name: str) -> dict[str, Any] | None:
    m = core.swim.member(name)
    if m is None:
        return None
    return {"status": views.member_view(m, 0.0)["status"], "addr": m.addr.host,
            "api": decode_tags(m.meta).get("api")}


async def _set_drained(request: Request, drained: bool) -> Response:
    agent = _agent(request)
    name = request.path_params["name"]
    action = "drain" if drained else "undrain"
    if name == agent.name:
        view = await agent.set_drained(drained)
        return JSONResponse({**view, "name": name, "drained": drained})
    # Only a node sets its own drain flag (it publishes its status): forward.
    target = await agent.call(lambda core, now: _drain_target(core, name))
    if target is None:
        raise ApiError(404, f"no node named {name!r} is known to this agent")
    if request.headers.get(FORWARDED_HEADER):
        raise ApiError(409, f"this agent is {agent.name!r}, not {name!r} (forwarded by "
                            f"{request.headers[FORWARDED_HEADER]!r}); ask {name}'s own agent")
    how = f"only {name}'s own agent can {action} it"
    if target["status"] != "alive":
        raise ApiError(409, f"{name} is {target['status']}; {how}")
    url = _peer_api_url(target)
    if url is None:
        where = f" (its API listens on {target['api']}, not reachable from here)" if target["api"] else ""
        raise ApiError(409, f"{how}; run the command against {name}'s agent{where}", node=name,
                       api=target["api"])
    headers = {FORWARDED_HEADER: agent.name}
    auth = request.headers.get("authorization")
    if auth:
        headers["Authorization"] = auth
    elif agent.config.api_token:
        headers["Authorization"] = f"Bearer {agent.config.api_token}"
    try:
        async with httpx.AsyncClient(timeout=FORWARD_TIMEOUT_S) as client:
            r = await client.post(f"{url}/v1/nodes/{quote(name, safe='')}/{action}", headers=headers)
    except httpx.HTTPError as e:
        raise ApiError(502, f"{how}; forwarding to its agent at {url} failed: {e or type(e).__name__}",
                       node=name, api=url) from None
    try:
        body = r.json()
    except ValueError:
        body = {"error": r.text[:200]}
    if isinstance(body, dict):
        body["forwarded_to"] = url
    return JSONResponse(body, status_code=r.status_code)


def _peer_api_url(target: dict[str, Any]) -> str | None:
    """http://HOST:PORT of a peer's API from its `api` tag, or None when it
    cannot be reached from here (no tag, or loopback on another host)."""
    if not target["api"]:
        return None
    try:
        hp = parse_host_port(target["api"], "api")
    except ConfigError:
        return None
    if hp.is_wildcard:
        hp = HostPort(target["addr"], hp.port)
    elif hp.is_loopback and not HostPort(target["addr"], 0).is_loopback:
        return None
    return f"http://{hp}"


async def jobs(request: Request) -> Response:
    index, body = await _blocking_read(request, "jobs", lambda core, now: views.jobs_view(core))
    return _indexed(body, index)


async def job(request: Request) -> Response:
    name = request.path_params["name"]
    index, body = await _blocking_read(request, "jobs", lambda core, now: views.job_detail(core, name))
    if body is None:
        return _indexed({"error": f"no job named {name!r}"}, index, 404)
    return _indexed(body, index)


def _spec_error(e: SpecError) -> Response:
    # The size bound is 413, every other problem 400; both list the problems.
    too_big = len(e.problems) == 1 and e.problems[0].path == "" and "the limit is" in e.problems[0].message
    return JSONResponse(e.to_json(), status_code=413 if too_big else 400)


async def submit_job(request: Request) -> Response:
    from node.agent.agent import StateWriteError

    body = await _read_body(request, MAX_JOB_BODY_BYTES)
    try:
        try:
            raw = json.loads(body)
        except UnicodeDecodeError:
            raise SpecError([Problem("", "body is not valid UTF-8")]) from None
        except ValueError as e:
            raise SpecError([Problem("", f"JSON syntax error: {e}")]) from None
        except RecursionError:
            raise SpecError([Problem("", "JSON is nested too deeply")]) from None
        spec = validate(raw)
    except SpecError as e:
        return _spec_error(e)
    try:
        result = await _agent(request).submit_job(spec)
    except JobLimitError as e:
        raise ApiError(409, str(e)) from None
    except ValueError as e:  # the spec size bound, as the core checks it
        raise ApiError(413, str(e)) from None
    except StateWriteError as e:
        raise ApiError(503, str(e)) from None
    return _indexed(result, result["index"], 201)


async def stop_job(request: Request) -> Response:
    from node.agent.agent import JobNotFound, StateWriteError

    name = request.path_params["name"]
    try:
        result = await _agent(request).stop_job(name)
    except JobNotFound:
        raise ApiError(404, f"no job named {name!r}") from None
    except StateWriteError as e:
        raise ApiError(503, str(e)) from None
    return _indexed(result, result["index"])


# ---- containers and logs ----------------------------------------------------------

CONTAINERS_FANOUT_TIMEOUT_S = 5.0
MAX_LOG_TAIL = 100_000


def _flag(value: str | None) -> bool:
    return value is not None and value.lower() in ("1", "true", "yes", "on", "")


def _forward_headers(request: Request, agent: "Agent") -> dict[str, str]:
    headers = {FORWARDED_HEADER: agent.name}
    auth = request.headers.get("authorization")
    if auth:
        headers["Authorization"] = auth
    elif agent.config.api_token:
        headers["Authorization"] = f"Bearer {agent.config.api_token}"
    return headers


async def _local_containers(agent: "Agent", job: str | None) -> dict[str, Any]:
    from node.runtime.docker import EngineError, RuntimeProblem

    runtime = agent.runtime
    kind = getattr(runtime, "kind", agent.config.runtime)
    ps = getattr(runtime, "ps", None)
    if ps is None:
        raise ApiError(501, f"the {kind} runtime cannot list containers")
    try:
        rows = await ps()
    except (EngineError, RuntimeProblem) as e:
        raise ApiError(503, f"{agent.name}: {e}") from None
    for r in rows:
        r["node"] = agent.name
    if job is not None:
        rows = [r for r in rows if str(r.get("slot", "")).rpartition("/")[0] == job]
    return {"node": agent.name, "runtime": kind, "containers": rows}


async def containers(request: Request) -> Response:
    agent = _agent(request)
    job = request.query_params.get("job") or None
    if not _flag(request.query_params.get("cluster")) or request.headers.get(FORWARDED_HEADER):
        return JSONResponse(await _local_containers(agent, job))

    def targets(core, now):
        out = []
        for m in core.swim.members():
            view = views.member_view(m, now)
            if view["status"] == "alive" and m.name != agent.name:
                out.append({"node": m.name, "status": "alive", "addr": m.addr.host, "api": view["tags"].get("api")})
        return out

    peers = await agent.call(targets)
    results: dict[str, dict[str, Any]] = {}

    async def local() -> None:
        try:
            results[agent.name] = {**await _local_containers(agent, job), "api": agent.api_url, "error": None}
        except ApiError as e:
            results[agent.name] = {"node": agent.name, "api": agent.api_url, "runtime": None,
                                   "containers": [], "error": e.message}

    async def remote(client: httpx.AsyncClient, peer: dict[str, Any]) -> None:
        name = peer["node"]
        entry = {"node": name, "api": peer["api"], "runtime": None, "containers": [], "error": None}
        results[name] = entry
        url = _peer_api_url(peer)
        if url is None:
            entry["error"] = (f"its API listens on {peer['api']}, not reachable from here" if peer["api"]
                              else "it publishes no API address (not a shoal agent?)")
            return
        entry["api"] = url
        try:
            r = await client.get(f"{url}/v1/containers", params={"job": job} if job else None,
                                 headers=_forward_headers(request, agent))
            body = r.json()
        except (httpx.HTTPError, ValueError) as e:
            entry["error"] = f"asking {url} failed: {e or type(e).__name__}"
            return
        if r.status_code != 200 or not isinstance(body, dict):
            entry["error"] = (body.get("error") if isinstance(body, dict) else None) or f"HTTP {r.status_code}"
            return
        entry.update(runtime=body.get("runtime"), containers=body.get("containers") or [])

    async with httpx.AsyncClient(timeout=CONTAINERS_FANOUT_TIMEOUT_S) as client:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(local)
            for peer in peers:
                nursery.start_soon(remote, client, peer)
    return JSONResponse({"nodes": [results[n] for n in sorted(results)]})


def _slot_holder(core, job: str, index: int) -> dict[str, Any]:
    """Who holds slot job/index (raises ApiError when nobody can say)."""
    from auction.claims import slot_key

    entry = core.job(job)
    if entry is None or entry.deleted:
        raise ApiError(404, f"no job named {job!r}")
    spec = core.placement.spec_of(entry)
    if spec is not None and index >= spec.replicas:
        raise ApiError(404, f"job {job} has {spec.replicas} replica(s): slots 0 to {spec.replicas - 1}")
    key = slot_key(job, index)
    claim = core.placement.winning_claim(key)
    if claim is None or claim.released:
        raise ApiError(409, f"{key} is not placed (see `shoal job status {job}`)")
    target = _drain_target(core, claim.node) or {"status": "unknown", "addr": None, "api": None}
    return {"slot": key, "node": claim.node, **target}


async def job_logs(request: Request) -> Response:
    agent = _agent(request)
    job = request.path_params["name"]
    q = request.query_params
    try:
        index = int(q.get("slot", "0"))
        if index < 0:
            raise ValueError
    except ValueError:
        raise ApiError(400, f"slot: expected a replica index (0, 1, ...), got {q.get('slot')!r}") from None
    follow = _flag(q.get("follow"))
    tail_text = q.get("tail", "all")
    if tail_text == "all":
        tail: int | str = "all"
    elif tail_text.isdigit() and int(tail_text) <= MAX_LOG_TAIL:
        tail = int(tail_text)
    else:
        raise ApiError(400, f"tail: expected a line count up to {MAX_LOG_TAIL} or 'all', got {tail_text!r}")
    holder = await agent.call(lambda core, now: _slot_holder(core, job, index))
    slot, node = holder["slot"], holder["node"]
    headers = {"X-Shoal-Node": node, "Cache-Control": "no-store"}
    if node == agent.name:
        opener = getattr(agent.runtime, "open_logs", None)
        if opener is None:
            raise ApiError(501, f"the {getattr(agent.runtime, 'kind', '?')} runtime keeps no logs")
        from node.runtime.docker import EngineError, RuntimeProblem
        try:
            stream = await opener(slot, follow=follow, tail=tail)
        except LookupError as e:
            raise ApiError(404, f"{e} (yet?)") from None
        except (EngineError, RuntimeProblem) as e:
            raise ApiError(503, f"{agent.name}: {e}") from None
        return StreamingResponse(stream, media_type="text/plain; charset=utf-8", headers=headers)
    if request.headers.get(FORWARDED_HEADER):
        raise ApiError(409, f"{slot} is held by {node}, not by this agent ({agent.name}; forwarded by "
                            f"{request.headers[FORWARDED_HEADER]!r}): the agents disagree for now, retry")
    if holder["status"] != "alive":
        raise ApiError(409, f"{slot} is held by {node}, which is {holder['status']}")
    url = _peer_api_url(holder)
    if url is None:
        where = f" (its API listens on {holder['api']}, not reachable from here)" if holder["api"] else ""
        raise ApiError(409, f"{slot} runs on {node}; ask {node}'s agent{where}", node=node, api=holder["api"])
    client = httpx.AsyncClient(timeout=httpx.Timeout(FORWARD_TIMEOUT_S, read=None if follow else 60.0))
    try:
        req = client.build_request("GET", f"{url}/v1/jobs/{quote(job, safe='')}/logs",
                                   params={"slot": str(index), "follow": "1" if follow else "0",
                                           "tail": str(tail)},
                                   headers=_forward_headers(request, agent))
        resp = await client.send(req, stream=True)
    except httpx.HTTPError as e:
        await client.aclose()
        raise ApiError(502, f"{slot} runs on {node}; forwarding to its agent at {url} failed: "
                            f"{e or type(e).__name__}", node=node, api=url) from None
    if resp.status_code != 200:
        try:
            body = json.loads(await resp.aread())
        except (ValueError, httpx.HTTPError):
            body = {"error": f"{node}'s agent answered HTTP {resp.status_code}"}
        finally:
            await resp.aclose()
            await client.aclose()
        if isinstance(body, dict):
            body["forwarded_to"] = url
        return JSONResponse(body, status_code=resp.status_code)

    async def relay():
        try:
            async for chunk in resp.aiter_raw():
                yield chunk
        except httpx.HTTPError as e:
            yield f"\n[shoal: the stream from {node} broke: {e or type(e).__name__}]\n".encode()
        finally:
            await resp.aclose()
            await client.aclose()

    return StreamingResponse(relay(), media_type="text/plain; charset=utf-8",
                             headers={**headers, "X-Shoal-Forwarded-To": url})


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
    return JSONResponse(await agent.call(lambda core, now: agent.keys.listing()))


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


async def ui_page(request: Request) -> Response:
    from node.api import ui

    page = ui.render(await ui.gather(_agent(request)))
    return Response(page, media_type="text/html; charset=utf-8",
                    headers={"Content-Security-Policy": ui.CSP + "; frame-ancestors 'none'",
                             "Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"})


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
        Route("/v1/nodes", nodes, methods=["GET"]),
        Route("/v1/nodes/{name}", node, methods=["GET"]),
        Route("/v1/nodes/{name}/drain", drain, methods=["POST"]),
        Route("/v1/nodes/{name}/undrain", undrain, methods=["POST"]),
        Route("/v1/jobs", jobs, methods=["GET"]),
        Route("/v1/jobs", submit_job, methods=["POST"]),
        Route("/v1/jobs/{name}", job, methods=["GET"]),
        Route("/v1/jobs/{name}", stop_job, methods=["DELETE"]),
        Route("/v1/jobs/{name}/logs", job_logs, methods=["GET"]),
        Route("/v1/containers", containers, methods=["GET"]),
        Route("/v1/agent/join", join, methods=["POST"]),
        Route("/v1/agent/leave", leave, methods=["POST"]),
        Route("/v1/keys", keys_list, methods=["GET"]),
        Route("/v1/keys", keys_change, methods=["POST"]),
        Route("/v1/metrics", metrics, methods=["GET"]),
        Route("/v1/events", events, methods=["GET"]),
        Route("/v1/agent/fault", fault, methods=["PUT"]),
        Route("/ui", ui_page, methods=["GET"]),
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
