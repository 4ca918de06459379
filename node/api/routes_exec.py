"""The HTTP API's exec route: run a command in a replica's container, wherever it runs.

How this works: `POST /v1/jobs/NAME/exec?slot=I&cmd=ARG&cmd=ARG...&timeout_s=S`
finds the node holding the slot's winning claim (as logs do).  On that
node the runtime runs the command in the slot's running container
(node.runtime.exec: no TTY, no stdin; output bounded) and the answer is
JSON: {slot, node, exit_code, output, truncated, timed_out}.  Elsewhere the
request is forwarded to the holder's API.  Everything is in the query
string, so the credential a forwarding agent signs (method and target,
node.api.forward) covers the command too: a forwarded request cannot be
given another command on its way.
"""

from __future__ import annotations

import math
from typing import Any
from urllib.parse import quote

from starlette.datastructures import QueryParams
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from auction.spec import MAX_ARG_CHARS, MAX_COMMAND_ARGS
from node.api.common import FORWARD_TIMEOUT_S, ApiError, agent_of
from node.api.forward import forward_client, forward_headers, httpx_module, target_of
from node.api.routes_jobs import holder_url, runtime_errors, slot_holder

DEFAULT_TIMEOUT_S = 60.0
MAX_TIMEOUT_S = 600.0


def slot_and_command(q: QueryParams) -> tuple[int, list[str]]:
    """The replica index and the command of an exec's query (also an
    interactive one's, node.api.routes_exec_stream); ApiError (400) naming
    the parameter."""
    slot_text = q.get("slot", "0")
    if not slot_text.isdigit() or len(slot_text) > 6:
        raise ApiError(400, f"slot: expected a replica index (0, 1, ...), got {slot_text[:32]!r}")
    command = q.getlist("cmd")
    if not command:
        raise ApiError(400, "cmd: the command and its arguments, one cmd= each (cmd=cat&cmd=/etc/hosts)")
    if len(command) > MAX_COMMAND_ARGS:
        raise ApiError(400, f"cmd: at most {MAX_COMMAND_ARGS} arguments (got {len(command)})")
    if any(len(a) > MAX_ARG_CHARS or "\x00" in a for a in command):
        raise ApiError(400, f"cmd: each argument at most {MAX_ARG_CHARS} characters, without NUL")
    return int(slot_text), command


def _request(request: Request) -> tuple[int, list[str], float]:
    q = request.query_params
    index, command = slot_and_command(q)
    try:
        timeout_s = float(q.get("timeout_s", DEFAULT_TIMEOUT_S))
    except ValueError:
        timeout_s = math.nan
    if not 0 < timeout_s <= MAX_TIMEOUT_S:
        raise ApiError(400, f"timeout_s: expected seconds, more than 0 and at most {MAX_TIMEOUT_S:.0f}")
    return index, command, timeout_s


async def run_here(agent: Any, method: str, slot: str, *args: Any, **kwargs: Any) -> Any:
    """The runtime's `method` (exec, exec_session) for a slot held here; its
    refusals as the API's: 404 no container, 409 not running, 501 a runtime
    that runs no commands, 503 the engine."""
    call = getattr(agent.runtime, method, None)
    if call is None:
        raise ApiError(501, f"the {getattr(agent.runtime, 'kind', '?')} runtime runs no commands")
    try:
        return await call(slot, *args, **kwargs)
    except LookupError as e:
        raise ApiError(404, f"{e} (yet?)") from None
    except ValueError as e:
        raise ApiError(409, str(e)) from None
    except runtime_errors() as e:
        raise ApiError(503, f"{agent.name}: {e}") from None


async def job_exec(request: Request) -> Response:
    agent = agent_of(request)
    job = request.path_params["name"]
    index, command, timeout_s = _request(request)
    holder = slot_holder(agent.view, job, index)
    slot, node = holder["slot"], holder["node"]
    if node == agent.name:
        result = await run_here(agent, "exec", slot, command, timeout_s)
        return JSONResponse({"slot": slot, "node": node, **result.to_json()})
    return await _forward(request, agent, job, index, command, timeout_s, holder)


async def _forward(request: Request, agent: Any, job: str, index: int, command: list[str], timeout_s: float,
                   holder: dict[str, Any]) -> Response:
    slot, node = holder["slot"], holder["node"]
    url = holder_url(agent, request, holder)
    httpx = httpx_module()
    target = target_of(f"/v1/jobs/{quote(job, safe='')}/exec",
                       {"slot": str(index), "timeout_s": repr(timeout_s), "cmd": command})
    try:
        async with forward_client(agent, httpx.Timeout(FORWARD_TIMEOUT_S, read=timeout_s + FORWARD_TIMEOUT_S)) \
                as client:
            r = await client.post(f"{url}{target}", headers=forward_headers(agent, "POST", target))
    except httpx.HTTPError as e:
        raise ApiError(502, f"{slot} runs on {node}; forwarding to its agent at {url} failed: "
                            f"{e or type(e).__name__}", node=node, api=url) from None
    try:
        body = r.json()
    except ValueError:
        body = {"error": f"{node}'s agent answered HTTP {r.status_code}"}
    if isinstance(body, dict):
        body["forwarded_to"] = url
    return JSONResponse(body, status_code=r.status_code)
