"""The HTTP API's image routes: which images a node has, and its archives
for other agents (node/agent/image_share.py has the design).

    GET /v1/images            ?ref=REF (only that tag) &cluster=1 (every alive
                              member's answer, for `shoal image ls`):
                              {node, images: [{ref, id, size, serving, served}],
                              pulling: [REF], fetching: [REF], loading: [REF],
                              progress: {REF: "pulling ...: 3/5 layers, 1.2/4.0
                              MiB"}}; with cluster=1
                              {nodes: [that, or {node, error}]}
    GET /v1/images/archive    ?ref=REF: the `docker save` tar of that tag
                              (application/x-tar, streamed); 404 if it is not
                              here, 503 if this agent serves its limit already

    POST /v1/images/preload   {image, constraints?: ["zone == a"], source?:
                              "registry" | "peers"}: every alive member whose
                              labels satisfy the constraints is asked to get
                              the image now (node/agent/image_preload.py):
                              {image, nodes: [{node, state: present | started
                              | running} or {node, error}]}; progress is in
                              each node's GET /v1/images (preloads, progress)
    POST /v1/images/preload/local   the same body, for this node only

The GET routes and preload/local are agent-to-agent routes (node.api.server's
PEER_ROUTES): with an API token they also take another agent's credential.
A runtime that keeps no images (the fake one) answers 404 "no image store".
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import trio
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from auction.placement import normalize_image
from node.api.common import ApiError, agent_of, flag, json_body, peer_target
from node.api.forward import (
    FORWARDED_HEADER,
    ForwardRefused,
    forward_client,
    forward_headers,
    httpx_module,
    peer_api_url,
)
from node.api.streaming import TrioStreamingResponse

FANOUT_TIMEOUT_S = 5.0


if TYPE_CHECKING:
    import httpx


# Only an agent with the docker runtime has an image share (node.agent.
# image_share); the engine's and the share's modules (the docker SDK, httpx)
# are imported where a share was found, so other agents never load them.


def _share(request: Request) -> Any:
    share = getattr(agent_of(request).runtime, "image_share", None)
    if share is None:
        raise ApiError(404, f"{agent_of(request).name} has no image store (runtime "
                            f"{getattr(agent_of(request).runtime, 'kind', '?')})")
    return share


def peer_url(agent: Any, name: str) -> tuple[str | None, str]:
    """Node `name`'s API base URL for a forwarded call, or why it cannot be asked."""
    peer = peer_target(agent.view, name)
    try:
        url = None if peer is None else peer_api_url(agent, name, peer)
    except ForwardRefused as e:
        return None, str(e)
    return url, "" if url is not None else "its API is not reachable from here"

async def _local(request: Request, ref: str | None) -> dict[str, Any]:
    agent = agent_of(request)
    share = _share(request)
    from node.runtime.engine import EngineError, RuntimeProblem

    try:
        images = await share.local_images()
    except (EngineError, RuntimeProblem) as e:
        raise ApiError(503, f"the engine on {agent.name} did not list its images: {e}") from None
    puller = share.runtime.puller
    busy = sorted(set(puller.pulling()) | share.fetching)
    paced = {p.image: p.text(agent.name) for p in puller.progress()}
    progress = {r: paced.get(r) or puller.describe(r) or "" for r in busy}
    preloads = share.preloads.snapshot()
    images = [{**i, **share.listing(i["ref"])} for i in images]     # copies sent (node.runtime.spread_rule)
    if ref is not None:
        ref = normalize_image(ref)
        images = [i for i in images if i["ref"] == ref]
        progress = {r: p for r, p in progress.items() if r == ref}
        preloads = {r: p for r, p in preloads.items() if r == ref}
    return {"node": agent.name, "images": images, "pulling": puller.pulling(),
            "fetching": sorted(share.fetching), "loading": sorted(share.loading), "progress": progress,
            "preloads": preloads,
            "serving": share.serving, "max_serves": share.max_serves, "served_bytes": share.served_bytes}


async def images(request: Request) -> Response:
    ref = request.query_params.get("ref") or None
    if not flag(request.query_params.get("cluster")) or request.headers.get(FORWARDED_HEADER):
        return JSONResponse(await _local(request, ref))
    httpx = httpx_module()  # only to ask other agents, without its command line

    agent = agent_of(request)
    names = sorted(agent.view.alive_names() - {agent.name})
    results: dict[str, dict[str, Any]] = {}

    async def local() -> None:
        try:
            results[agent.name] = await _local(request, ref)
        except ApiError as e:
            results[agent.name] = {"node": agent.name, "error": e.message}

    async def remote(client: httpx.AsyncClient, name: str) -> None:
        target = "/v1/images" + (f"?ref={ref}" if ref else "")
        url, why = peer_url(agent, name)
        if url is None:
            results[name] = {"node": name, "error": why}
            return
        try:
            r = await client.get(url + target, headers=forward_headers(agent, "GET", target))
            body = r.json()
        except (httpx.HTTPError, ValueError) as e:
            results[name] = {"node": name, "error": f"asking {url} failed: {e or type(e).__name__}"}
            return
        if r.status_code != 200 or not isinstance(body, dict):
            error = body.get("error") if isinstance(body, dict) else None
            results[name] = {"node": name, "error": error or f"HTTP {r.status_code}"}
            return
        results[name] = {**body, "node": name}

    async with forward_client(agent, FANOUT_TIMEOUT_S) as client:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(local)
            for name in names:
                nursery.start_soon(remote, client, name)
    return JSONResponse({"nodes": [results[n] for n in sorted(results)]})


async def archive(request: Request) -> Response:
    ref = request.query_params.get("ref")
    if not ref:
        raise ApiError(400, "ref: required (an image tag, like reg:5000/app:1)")
    share = _share(request)
    from node.agent.image_share import ServeBusy
    from node.runtime.engine import EngineError, RuntimeProblem

    ref = normalize_image(ref)
    try:
        here = await share.local(ref)
    except (EngineError, RuntimeProblem) as e:
        raise ApiError(503, f"the engine did not list its images: {e}") from None
    if here is None:
        raise ApiError(404, f"image {ref} is not on {agent_of(request).name}")
    try:
        stream = await share.serve(ref, here["size"], request.headers.get(FORWARDED_HEADER, ""))
    except ServeBusy as e:
        raise ApiError(503, str(e)) from None
    return TrioStreamingResponse(stream, media_type="application/x-tar",
                                 headers={"X-Shoal-Image-Id": here["id"], "X-Shoal-Image-Size": str(here["size"])})


def _preload_spec(body: dict[str, Any]) -> Any:
    """The request as a job spec (the image, constraints and source checked
    as a job's are); ApiError 400 with the problems."""
    from auction.spec import SpecError, validate

    unknown = sorted(set(body) - {"image", "constraints", "source"})
    if unknown:
        raise ApiError(400, f"unknown field {unknown[0]}; known: image, constraints, source")
    try:
        return validate({"name": "preload", **body})
    except SpecError as e:
        raise ApiError(400, "invalid preload request", problems=[p.to_dict() for p in e.problems]) from None


async def preload_local(request: Request) -> Response:
    from auction.spec import ImageSource
    from node.agent.image_preload import PreloadBusy

    spec = _preload_spec(await json_body(request))
    share = _share(request)
    try:
        state = share.preloads.request(spec.image, spec.source is ImageSource.PEERS)
    except PreloadBusy as e:
        raise ApiError(503, str(e)) from None
    return JSONResponse({"node": agent_of(request).name, "state": state})


async def preload(request: Request) -> Response:
    httpx = httpx_module()  # only to ask other agents, without its command line

    body = await json_body(request)
    spec = _preload_spec(body)
    agent = agent_of(request)
    alive = agent.view.alive_names()
    targets = sorted(name for name, st in agent.view.live_statuses().items()
                     if name in alive and all(c.matches(st.labels) for c in spec.constraints))
    if not targets:
        raise ApiError(409, "no alive node matches " + (" and ".join(str(c) for c in spec.constraints) or "(none)"))
    forwarded = {"image": spec.image, "source": spec.source.value}
    results: dict[str, dict[str, Any]] = {}

    async def local() -> None:
        from node.agent.image_preload import PreloadBusy

        try:
            state = _share(request).preloads.request(spec.image, forwarded["source"] == "peers")
            results[agent.name] = {"node": agent.name, "state": state}
        except PreloadBusy as e:
            results[agent.name] = {"node": agent.name, "error": str(e)}
        except ApiError as e:
            results[agent.name] = {"node": agent.name, "error": e.message}

    async def remote(client: httpx.AsyncClient, name: str) -> None:
        target = "/v1/images/preload/local"
        url, why = peer_url(agent, name)
        if url is None:
            results[name] = {"node": name, "error": why}
            return
        try:
            r = await client.post(url + target, json=forwarded, headers=forward_headers(agent, "POST", target))
            answer = r.json()
        except (httpx.HTTPError, ValueError) as e:
            results[name] = {"node": name, "error": f"asking {url} failed: {e or type(e).__name__}"}
            return
        if r.status_code != 200 or not isinstance(answer, dict):
            error = answer.get("error") if isinstance(answer, dict) else None
            results[name] = {"node": name, "error": error or f"HTTP {r.status_code}"}
            return
        results[name] = {"node": name, "state": str(answer.get("state", "?"))}

    async with forward_client(agent, FANOUT_TIMEOUT_S) as client:
        async with trio.open_nursery() as nursery:
            for name in targets:
                if name == agent.name:
                    nursery.start_soon(local)
                else:
                    nursery.start_soon(remote, client, name)
    return JSONResponse({"image": spec.image, "source": spec.source.value,
                         "nodes": [results[n] for n in sorted(results)]})
