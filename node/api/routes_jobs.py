"""The HTTP API's job routes: list, read, submit, stop, containers and logs.

How this works: reads render from the core's view (node.api.views) as
blocking queries; writes go through the agent's operations and answer once
durable here (201 / 200), 409 if a newer write for the job won over this one
(the answer says whose), or 503 if they could not be made durable.  Logs and
`?cluster=1` container listings are asked of the node that holds the slot
(or of every alive member), through its published API address
(node.api.common).  The endpoints are listed in node.api.server.
"""

from __future__ import annotations

import json
import math
import sys
from collections.abc import AsyncIterator, Iterable
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import trio
from starlette.requests import HTTPConnection, Request
from starlette.responses import JSONResponse, Response

from auction.claims import slot_key
from auction.spec import MAX_SPEC_BYTES, JobSpec, Problem, SpecError, validate
from gossip.events import MemberInfo
from node.agent.errors import JobNotFound, StateWriteError, WriteSuperseded
from node.api import views
from node.api.common import (
    FORWARD_TIMEOUT_S,
    ApiError,
    agent_of,
    blocking_read,
    client_of,
    flag,
    indexed,
    peer_target,
    read_body,
)
from node.api.forward import (
    FORWARDED_HEADER,
    ForwardRefused,
    forward_client,
    forward_headers,
    httpx_module,
    peer_api_url,
    target_of,
)
from node.api.streaming import TrioStreamingResponse
from node.core.cluster_clock import ClockAheadError
from node.core.node_core import JobLimitError
from node.core.view import CoreView

if TYPE_CHECKING:
    import httpx

    from node.agent.agent import Agent

# A job spec is bounded at 64 KiB as compact JSON; the body may be
# pretty-printed, so it gets some slack before we stop reading it.
MAX_JOB_BODY_BYTES = MAX_SPEC_BYTES + 16 * 1024
CONTAINERS_FANOUT_TIMEOUT_S = 5.0
MAX_LOG_TAIL = 100_000
MAX_LOG_SINCE_S = 10 * 365 * 86400.0


async def jobs(request: Request) -> Response:
    index, body = await blocking_read(request, "jobs", lambda view, now: views.jobs_view(view))
    return indexed(body, index)


async def job(request: Request) -> Response:
    name = request.path_params["name"]
    index, body = await blocking_read(request, "jobs", lambda view, now: views.job_detail(view, name))
    if body is None:
        return indexed({"error": f"no job named {name!r}"}, index, 404)
    return indexed(body, index)


def _spec_error(e: SpecError) -> Response:
    # The size bound is 413, every other problem 400; both list the problems.
    too_big = len(e.problems) == 1 and e.problems[0].path == "" and "the limit is" in e.problems[0].message
    return JSONResponse(e.to_json(), status_code=413 if too_big else 400)


async def spec_of_body(request: Request) -> JobSpec:
    """The job spec in the request body (JSON); raises SpecError listing its problems."""
    body = await read_body(request, MAX_JOB_BODY_BYTES)
    try:
        raw = json.loads(body)
    except UnicodeDecodeError:
        raise SpecError([Problem("", "body is not valid UTF-8")]) from None
    except ValueError as e:
        raise SpecError([Problem("", f"JSON syntax error: {e}")]) from None
    except RecursionError:
        raise SpecError([Problem("", "JSON is nested too deeply")]) from None
    return validate(raw)


async def submit_job(request: Request) -> Response:
    try:
        spec = await spec_of_body(request)
    except SpecError as e:
        return _spec_error(e)
    try:
        result = await agent_of(request).ops.submit_job(spec, by=client_of(request))
    except ClockAheadError as e:  # this agent cannot write now; another can
        raise ApiError(503, str(e)) from None
    except (JobLimitError, WriteSuperseded) as e:
        raise ApiError(409, str(e)) from None
    except ValueError as e:  # the spec size bound, as the core checks it
        raise ApiError(413, str(e)) from None
    except StateWriteError as e:
        raise ApiError(503, str(e)) from None
    return indexed(result, result["index"], 201)


async def stop_job(request: Request) -> Response:
    name = request.path_params["name"]
    try:
        result = await agent_of(request).ops.stop_job(name)
    except JobNotFound:
        raise ApiError(404, f"no job named {name!r}") from None
    except WriteSuperseded as e:
        raise ApiError(409, str(e)) from None
    except (StateWriteError, ClockAheadError) as e:
        raise ApiError(503, str(e)) from None
    return indexed(result, result["index"])


def runtime_errors() -> tuple[type[Exception], ...]:
    """The docker runtime's errors, once it is loaded (the docker SDK is
    imported only by an agent that runs the docker runtime; no other raises them)."""
    engine = sys.modules.get("node.runtime.engine")
    return (engine.EngineError, engine.RuntimeProblem) if engine is not None else ()


async def _local_containers(agent: Agent, job: str | None) -> dict[str, Any]:
    runtime = agent.runtime
    kind = getattr(runtime, "kind", agent.config.runtime)
    ps = getattr(runtime, "ps", None)
    if ps is None:
        raise ApiError(501, f"the {kind} runtime cannot list containers")
    try:
        rows = await ps()
    except runtime_errors() as e:
        raise ApiError(503, f"{agent.name}: {e}") from None
    for r in rows:
        r["node"] = agent.name
    if job is not None:
        rows = [r for r in rows if str(r.get("slot", "")).rpartition("/")[0] == job]
    return {"node": agent.name, "runtime": kind, "containers": rows}


def containers_peers(members: Iterable[MemberInfo], me: str, now: float) -> list[dict[str, Any]]:
    """The members `shoal ps` asks for their containers: the alive ones, and
    the suspect ones too (marked so): a member suspected for a moment (a
    loaded machine, a lost ping) still runs its replicas, and leaving them
    out made them vanish from the listing for that moment."""
    peers = []
    for m in members:
        member = views.member_view(m, now)
        if member["status"] in ("alive", "suspect") and m.name != me:
            peers.append({"node": m.name, "status": member["status"], "addr": m.addr.host,
                          "api": member["tags"].get("api")})
    return peers


async def containers(request: Request) -> Response:
    agent = agent_of(request)
    job = request.query_params.get("job") or None
    if not flag(request.query_params.get("cluster")) or request.headers.get(FORWARDED_HEADER):
        return JSONResponse(await _local_containers(agent, job))

    httpx = httpx_module()  # only to ask other agents, without its command line

    peers = containers_peers(agent.view.members(), agent.name, trio.current_time())
    results: dict[str, dict[str, Any]] = {}

    async def local() -> None:
        try:
            results[agent.name] = {**await _local_containers(agent, job), "api": agent.api_url, "error": None}
        except ApiError as e:
            results[agent.name] = {"node": agent.name, "api": agent.api_url, "runtime": None,
                                   "containers": [], "error": e.message}

    async def remote(client: httpx.AsyncClient, peer: dict[str, Any]) -> None:
        name = peer["node"]
        entry = {"node": name, "status": peer["status"], "api": peer["api"], "runtime": None, "containers": [],
                 "error": None}
        results[name] = entry
        try:
            url = peer_api_url(agent, name, peer)
        except ForwardRefused as e:
            entry["error"] = str(e)
            return
        if url is None:
            entry["error"] = (f"its API listens on {peer['api']}, not reachable from here" if peer["api"]
                              else "it publishes no API address (not a shoal agent?)")
            return
        entry["api"] = url
        target = target_of("/v1/containers", {"job": job} if job else None)
        try:
            r = await client.get(f"{url}{target}", headers=forward_headers(agent, "GET", target))
            body = r.json()
        except (httpx.HTTPError, ValueError) as e:
            entry["error"] = f"asking {url} failed: {e or type(e).__name__}"
            return
        if r.status_code != 200 or not isinstance(body, dict):
            entry["error"] = (body.get("error") if isinstance(body, dict) else None) or f"HTTP {r.status_code}"
            return
        entry.update(runtime=body.get("runtime"), containers=body.get("containers") or [])

    async with forward_client(agent, CONTAINERS_FANOUT_TIMEOUT_S) as client:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(local)
            for peer in peers:
                nursery.start_soon(remote, client, peer)
    return JSONResponse({"nodes": [results[n] for n in sorted(results)]})


def slot_holder(view: CoreView, job: str, index: int) -> dict[str, Any]:
    """Who holds slot job/index (raises ApiError when nobody can say)."""
    entry = view.job(job)
    if entry is None or entry.deleted:
        raise ApiError(404, f"no job named {job!r}")
    spec = view.spec_of(entry)
    if spec is not None and spec.is_global:
        if index not in (slots := view.global_slots(spec)):
            raise ApiError(404, f"job {job} is global; its slots now: {', '.join(map(str, slots)) or 'none'}")
    elif spec is not None and index >= spec.replicas:
        raise ApiError(404, f"job {job} has {spec.replicas} replica(s): slots 0 to {spec.replicas - 1}")
    key = slot_key(job, index)
    claim = view.winning_claim(key)
    if claim is None or claim.released:
        raise ApiError(409, f"{key} is not placed (see `shoal job status {job}`)")
    target = peer_target(view, claim.node) or {"status": "unknown", "addr": None, "api": None}
    return {"slot": key, "node": claim.node, **target}


def holder_url(agent: Agent, request: HTTPConnection, holder: dict[str, Any]) -> str:
    """The API of the node holding a slot (`slot_holder`), to forward a
    request about it to; ApiError (409) saying why it cannot be."""
    slot, node = holder["slot"], holder["node"]
    if request.headers.get(FORWARDED_HEADER):
        raise ApiError(409, f"{slot} is held by {node}, not by this agent ({agent.name}; forwarded by "
                            f"{request.headers[FORWARDED_HEADER]!r}): the agents disagree for now, retry")
    if holder["status"] != "alive":
        raise ApiError(409, f"{slot} is held by {node}, which is {holder['status']}")
    try:
        url = peer_api_url(agent, node, holder)
    except ForwardRefused as e:
        raise ApiError(409, f"{slot} runs on {node}; {e}", node=node, api=holder["api"]) from None
    if url is None:
        where = f" (its API listens on {holder['api']}, not reachable from here)" if holder["api"] else ""
        raise ApiError(409, f"{slot} runs on {node}; ask {node}'s agent{where}", node=node, api=holder["api"])
    return url


def _since_s(text: str | None) -> float | None:
    """`since_s`: only output from that many seconds back (on the holder's clock)."""
    if text is None:
        return None
    try:
        since_s = float(text)
    except ValueError:
        since_s = math.nan
    if not 0 <= since_s <= MAX_LOG_SINCE_S:
        raise ApiError(400, f"since_s: expected seconds back from now, 0 to {MAX_LOG_SINCE_S:.0f}, got {text[:32]!r}")
    return since_s


async def job_logs(request: Request) -> Response:
    agent = agent_of(request)
    job = request.path_params["name"]
    q = request.query_params
    try:
        index = int(q.get("slot", "0"))
        if index < 0:
            raise ValueError
    except ValueError:
        raise ApiError(400, f"slot: expected a replica index (0, 1, ...), got {q.get('slot')!r}") from None
    follow = flag(q.get("follow"))
    tail_text = q.get("tail", "all")
    if tail_text == "all":
        tail: int | str = "all"
    elif tail_text.isdigit() and int(tail_text) <= MAX_LOG_TAIL:
        tail = int(tail_text)
    else:
        raise ApiError(400, f"tail: expected a line count up to {MAX_LOG_TAIL} or 'all', got {tail_text!r}")
    since_s = _since_s(q.get("since_s"))
    timestamps = flag(q.get("timestamps"))
    holder = slot_holder(agent.view, job, index)
    slot, node = holder["slot"], holder["node"]
    headers = {"X-Shoal-Node": node, "Cache-Control": "no-store"}
    if node == agent.name:
        opener = getattr(agent.runtime, "open_logs", None)
        if opener is None:
            raise ApiError(501, f"the {getattr(agent.runtime, 'kind', '?')} runtime keeps no logs")
        try:
            stream = await opener(slot, follow=follow, tail=tail, since_s=since_s, timestamps=timestamps)
        except LookupError as e:
            raise ApiError(404, f"{e} (yet?)") from None
        except runtime_errors() as e:
            raise ApiError(503, f"{agent.name}: {e}") from None
        return TrioStreamingResponse(stream, media_type="text/plain; charset=utf-8", headers=headers)
    url = holder_url(agent, request, holder)
    httpx = httpx_module()  # only to ask other agents, without its command line

    client = forward_client(agent, httpx.Timeout(FORWARD_TIMEOUT_S, read=None if follow else 60.0))
    params = {"slot": str(index), "follow": "1" if follow else "0", "tail": str(tail)}
    if since_s is not None:
        params["since_s"] = repr(since_s)
    if timestamps:
        params["timestamps"] = "1"
    target = target_of(f"/v1/jobs/{quote(job, safe='')}/logs", params)
    try:
        req = client.build_request("GET", f"{url}{target}", headers=forward_headers(agent, "GET", target))
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

    async def relay() -> AsyncIterator[bytes]:
        try:
            async for chunk in resp.aiter_raw():
                yield chunk
        except httpx.HTTPError as e:
            yield f"\n[shoal: the stream from {node} broke: {e or type(e).__name__}]\n".encode()
        finally:
            await resp.aclose()
            await client.aclose()

    return TrioStreamingResponse(relay(), media_type="text/plain; charset=utf-8",
                                 headers={**headers, "X-Shoal-Forwarded-To": url})
