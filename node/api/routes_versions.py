"""The HTTP API's version routes: history, rollback, scale, restart, promote, plan.

How this works: each command writes the job's next version through the same
path as a submission (Operations.submit_job: durable here before the answer,
409 when a newer write won, 503 when not durable), with why it was written
and, when the client says who it is (`X-Shoal-Client: user@host`, sent by
the CLI), by whom (node.core.history).  A command that would write the
spec that runs already writes nothing and answers `"changed": false`.
Reads (history, plan) render from the core's view (node.api.history_views).

    GET  /v1/jobs/NAME/history            the last versions, oldest first
    POST /v1/jobs/NAME/rollback           {"version": "3"} or {} for the previous one
    POST /v1/jobs/NAME/scale              {"replicas": N}: replaces nothing
    POST /v1/jobs/NAME/restart            a new restart nonce: every replica replaced, paced
    POST /v1/jobs/NAME/promote            canaries of the current version promoted
    POST /v1/jobs/plan                    a spec (JSON): what writing it would do; writes nothing
"""

from __future__ import annotations

import secrets

from starlette.requests import Request
from starlette.responses import Response

from auction.spec import JobSpec, SpecError, validate
from node.agent.errors import JobNotFound, StateWriteError, WriteSuperseded
from node.api import history_views
from node.api.common import ApiError, agent_of, blocking_read, client_of, indexed, json_body
from node.api.routes_jobs import _spec_error, spec_of_body
from node.core.cluster_clock import ClockAheadError
from node.core.node_core import JobLimitError

async def _write(request: Request, spec: JobSpec, why: str, *, ref: str = "", promote: bool = False,
                 status: int = 200) -> Response:
    try:
        result = await agent_of(request).ops.submit_job(spec, why=why, by=client_of(request), ref=ref,
                                                        promote=promote)
    except (JobLimitError, WriteSuperseded) as e:
        raise ApiError(409, str(e)) from None
    except ValueError as e:
        raise ApiError(413, str(e)) from None
    except (StateWriteError, ClockAheadError) as e:
        raise ApiError(503, str(e)) from None
    return indexed(result, result["index"], status)


def _current(request: Request, name: str) -> JobSpec:
    try:
        return agent_of(request).ops.current_spec(name)
    except JobNotFound:
        raise ApiError(404, f"no job named {name!r}") from None


def _unchanged(request: Request, name: str, what: str) -> Response:
    agent = agent_of(request)
    return indexed({"name": name, "changed": False, "message": what}, agent.indexes.get("jobs"))


async def history(request: Request) -> Response:
    name = request.path_params["name"]
    index, body = await blocking_read(request, "jobs", lambda view, now: history_views.history_view(view, name))
    if body is None:
        return indexed({"error": f"no job named {name!r}"}, index, 404)
    return indexed(body, index)


async def rollback(request: Request) -> Response:
    name = request.path_params["name"]
    body = await json_body(request)
    wanted = body.get("version")
    if wanted is not None and not isinstance(wanted, (str, int)):
        raise ApiError(400, "version: expected a version such as \"3\" or \"3@node-b\"")
    view = agent_of(request).view
    try:
        target = history_views.rollback_target(view, name, None if wanted is None else str(wanted))
    except LookupError as e:
        raise ApiError(404 if view.job(name) is None else 409, str(e.args[0])) from None
    spec = history_views.parse(target)
    if spec is None:
        raise ApiError(409, f"the spec of that version of {name} is unreadable on this agent")
    target_id = history_views.version_id(target, view.history(name))
    if spec == view.spec_of(view.job(name)):
        return _unchanged(request, name, f"version {target_id} is what {name} runs now")
    return await _write(request, spec, "rollback", ref=target_id)


async def scale(request: Request) -> Response:
    name = request.path_params["name"]
    body = await json_body(request)
    replicas = body.get("replicas")
    current = _current(request, name)
    if current.is_global:
        raise ApiError(400, f"{name} is a global job: it runs one replica on every node that may run it, "
                            "and has no count to scale (drain a node, or change its constraints)")
    try:
        spec = validate({**current.to_dict(), "replicas": replicas})
    except SpecError as e:
        return _spec_error(e)
    if spec == current:
        return _unchanged(request, name, f"{name} has {current.replicas} replica(s) already")
    return await _write(request, spec, "scale")


async def restart(request: Request) -> Response:
    name = request.path_params["name"]
    current = _current(request, name)
    try:
        spec = validate({**current.to_dict(), "restart_nonce": secrets.token_hex(4)})
    except SpecError as e:
        return _spec_error(e)
    return await _write(request, spec, "restart")


async def promote(request: Request) -> Response:
    name = request.path_params["name"]
    current = _current(request, name)
    entry = agent_of(request).view.job(name)
    if entry is not None and entry.meta is not None and entry.meta.promoted == current.container_hash():
        return _unchanged(request, name, f"{name}'s current version is promoted already")
    return await _write(request, current, "promote", promote=True)


async def plan(request: Request) -> Response:
    try:
        spec = await spec_of_body(request)
    except SpecError as e:
        return _spec_error(e)
    index, body = await blocking_read(request, "jobs", lambda view, now: history_views.plan_view(view, spec))
    return indexed(body, index)
