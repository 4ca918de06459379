"""The HTTP API's routes about this agent and the cluster: self, members,
nodes, drain, join / leave, keys, metrics, events, the status page, faults.

How this works: reads render from the core's view (node.api.views); changes
go through the agent's operations.  Draining another node is forwarded to
that node's own API (only a node sets its own drain flag).  The endpoints
are listed in node.api.server.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from urllib.parse import quote

import trio
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from node.agent.config import DEFAULT_GOSSIP_PORT, ConfigError, parse_host_port
from node.agent.keys import ACTIONS, KeyOpError, parse_key
from node.api import views
from node.api.common import (
    FORWARD_TIMEOUT_S,
    ApiError,
    agent_of,
    blocking_read,
    indexed,
    json_body,
    peer_target,
)
from node.api.forward import (
    FORWARDED_HEADER,
    ForwardRefused,
    forward_client,
    forward_headers,
    httpx_module,
    peer_api_url,
)
from node.api.streaming import TrioStreamingResponse
from node.telemetry.eventlog import TooManySubscribers
from node.telemetry import metrics as agent_metrics

# At most this many event records per chunk of a /v1/events stream (each at
# most a few hundred bytes).
EVENTS_PER_CHUNK = 256

log = logging.getLogger("shoal.api")

MAX_JOIN_ADDRESSES = 64
MAX_FAULT_DELAY_MS = 60_000


async def agent_self(request: Request) -> Response:
    return JSONResponse(agent_of(request).ops.self_info())


async def members(request: Request) -> Response:
    index, body = await blocking_read(
        request, "members", lambda view, now: [views.member_view(m, now) for m in view.members()])
    return indexed(body, index)


async def nodes(request: Request) -> Response:
    index, body = await blocking_read(request, "nodes", views.nodes_view)
    return indexed(body, index)


async def node(request: Request) -> Response:
    name = request.path_params["name"]
    index, body = await blocking_read(request, "nodes", lambda view, now: views.one_node_view(view, name, now))
    if body is None:
        return indexed({"error": f"no node named {name!r} is known to this agent"}, index, 404)
    return indexed(body, index)


async def drain(request: Request) -> Response:
    return await _set_drained(request, True)


async def undrain(request: Request) -> Response:
    return await _set_drained(request, False)


async def _set_drained(request: Request, drained: bool) -> Response:
    agent = agent_of(request)
    name = request.path_params["name"]
    action = "drain" if drained else "undrain"
    if name == agent.name:
        mine = await agent.ops.set_drained(drained)
        return JSONResponse({**mine, "name": name, "drained": drained})
    # Only a node sets its own drain flag (it publishes its status): forward.
    target = peer_target(agent.view, name)
    if target is None:
        raise ApiError(404, f"no node named {name!r} is known to this agent")
    if request.headers.get(FORWARDED_HEADER):
        raise ApiError(409, f"this agent is {agent.name!r}, not {name!r} (forwarded by "
                            f"{request.headers[FORWARDED_HEADER]!r}); ask {name}'s own agent")
    how = f"only {name}'s own agent can {action} it"
    if target["status"] != "alive":
        raise ApiError(409, f"{name} is {target['status']}; {how}")
    try:
        url = peer_api_url(agent, name, target)
    except ForwardRefused as e:
        raise ApiError(409, f"{how}; {e}", node=name, api=target["api"]) from None
    if url is None:
        where = f" (its API listens on {target['api']}, not reachable from here)" if target["api"] else ""
        raise ApiError(409, f"{how}; run the command against {name}'s agent{where}", node=name,
                       api=target["api"])
    httpx = httpx_module()  # only to ask other agents, without its command line

    try:
        path = f"/v1/nodes/{quote(name, safe='')}/{action}"
        async with forward_client(agent, FORWARD_TIMEOUT_S) as client:
            r = await client.post(f"{url}{path}", headers=forward_headers(agent, "POST", path))
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


async def join(request: Request) -> Response:
    body = await json_body(request)
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
    results = await agent_of(request).membership.join(seeds)
    joined = sum(1 for err in results.values() if err is None)
    errors = {seed: err for seed, err in results.items() if err is not None}
    if joined == 0:
        raise ApiError(502, "could not join any of the addresses", joined=0, errors=errors)
    return JSONResponse({"joined": joined, "errors": errors})


async def leave(request: Request) -> Response:
    """Leave, hand our replicas over (up to node.agent.handover's bound), then
    exit.  `handed_over`: true (all run elsewhere), false (some found no
    other node and stay), null (no other member was alive)."""
    agent = agent_of(request)
    handed_over = await agent.leave_and_hand_over()
    # Exit after this response is written: hypercorn finishes in-flight
    # requests when the agent triggers its graceful shutdown.
    agent.request_exit()
    return JSONResponse({"left": True, "name": agent.name, "handed_over": handed_over})


async def keys_list(request: Request) -> Response:
    agent = agent_of(request)
    return JSONResponse(agent.keys.listing())


async def keys_change(request: Request) -> Response:
    body = await json_body(request)
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
    agent = agent_of(request)
    try:
        result = await agent.ops.key_operation(action, key, cluster=not local)
    except KeyOpError as e:
        # 400: encryption is off here; 409: conflicts with the keyring's state.
        raise ApiError(409 if agent.keys.enabled else 400, str(e)) from None
    return JSONResponse(result)


async def metrics(request: Request) -> Response:
    body = agent_of(request).ops.render_metrics()
    return Response(body, media_type=agent_metrics.CONTENT_TYPE)  # prometheus_client's, loaded by the first scrape


async def events(request: Request) -> Response:
    history = request.query_params.get("history", "1").lower() not in ("0", "false", "no")
    try:
        channel = agent_of(request).events.subscribe(history=history)
    except TooManySubscribers as e:
        raise ApiError(503, str(e)) from None

    async def stream() -> AsyncIterator[str]:
        async with channel:
            async for record in channel:
                # The records already waiting go out with this one, in one
                # chunk: a history, or a push/pull that taught us thirty
                # members, is one write through the HTTP stack, not one each
                # (each chunk costs far more there than its JSON).
                lines = [json.dumps(record, separators=(",", ":"))]
                while len(lines) < EVENTS_PER_CHUNK:
                    try:
                        record = channel.receive_nowait()
                    except (trio.WouldBlock, trio.EndOfChannel):
                        break
                    lines.append(json.dumps(record, separators=(",", ":")))
                yield "\n".join(lines) + "\n"

    return TrioStreamingResponse(stream(), media_type="application/x-ndjson")


async def ui_page(request: Request) -> Response:
    from node.api import ui  # the status page's code (~0.6 MiB) loads when it is first asked for

    page = ui.render(ui.gather(agent_of(request)))
    return Response(page, media_type="text/html; charset=utf-8",
                    headers={"Content-Security-Policy": ui.CSP + "; frame-ancestors 'none'",
                             "Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"})


async def fault(request: Request) -> Response:
    agent = agent_of(request)
    body = await json_body(request)
    # {"corrupt_serves": N}: flip a byte in each of the next N image archives
    # this agent serves to a peer (node.agent.image_share), alone or with delay_ms.
    corrupt = body.get("corrupt_serves")
    share = getattr(agent.runtime, "image_share", None)
    if corrupt is not None:
        if isinstance(corrupt, bool) or not isinstance(corrupt, int) or not 0 <= corrupt <= 100 or share is None:
            raise ApiError(400, "corrupt_serves: expected 0 to 100, with the docker runtime")
        share.corrupt_serves = corrupt
        log.warning("fault injection: the next %d image archives served are corrupted", corrupt)
        if "delay_ms" not in body:
            return JSONResponse({"corrupt_serves": corrupt})
    delay = body.get("delay_ms")
    if isinstance(delay, bool) or not isinstance(delay, (int, float)) or not 0 <= delay <= MAX_FAULT_DELAY_MS:
        raise ApiError(400, f"delay_ms: expected a number from 0 to {MAX_FAULT_DELAY_MS}")
    assert agent.transport is not None
    agent.transport.fault_delay_s = float(delay) / 1000.0
    log.warning("fault injection: %g ms added to every outgoing datagram", delay)
    return JSONResponse({"delay_ms": delay, **({"corrupt_serves": corrupt} if corrupt is not None else {})})
