"""The HTTP API's service routes: the catalog of serving replicas.

How this works: both routes read the core's service catalog
(`CoreView.catalog()`, node.core.catalog: who is listed and why) and are
blocking queries as /v1/jobs is (node.api.blocking), with one difference:
the catalog moves on a subset of what moves the `jobs` index (a claim, a
status record, a member, a container state), and a watcher should wake
only when the catalog itself changed.  So the answer's `X-Shoal-Index` is
the catalog's own index (`ServicesIndex`): the `jobs` index at which this
agent first saw the current catalog.  It only moves when the catalog does,
never goes back, and a request with `?index=N` waits on the `jobs` index
until the catalog's index has passed N (or `?wait=` runs out).

    GET /v1/services        [{name, count, instances: [{job, slot, node,
                              address, ports {label: host port}, health}]}]
    GET /v1/services/NAME   {name, count, instances}; 404 if no job of that
                            name exists and none is listed
"""

from __future__ import annotations

from typing import Any

import trio
from starlette.requests import Request
from starlette.responses import Response

from node.api.blocking import parse_index, parse_wait
from node.api.common import ApiError, agent_of, indexed
from node.core.catalog import Catalog, ServiceInstance


class ServicesIndex:
    """The catalog's blocking-query index, kept per app (one agent)."""

    def __init__(self) -> None:
        self.index = 0
        self._seen: Catalog | None = None

    def observe(self, catalog: Catalog, jobs_index: int) -> int:
        # The view returns the same object while nothing moved; equality
        # catches a rebuild that came out the same (a claim elsewhere).
        if catalog is not self._seen and catalog != self._seen:
            self._seen = catalog
            self.index = max(self.index + 1, jobs_index)
        return self.index


def _index_of(request: Request) -> ServicesIndex:
    state = request.app.state
    tracker: ServicesIndex | None = getattr(state, "services_index", None)
    if tracker is None:
        tracker = state.services_index = ServicesIndex()
    return tracker


async def _catalog(request: Request) -> tuple[int, Catalog, Any]:
    """Wait as ?index=&wait= ask; then (catalog index, catalog, view)."""
    try:
        want = parse_index(request.query_params.get("index"))
        wait_s = parse_wait(request.query_params.get("wait"))
    except ValueError as e:
        raise ApiError(400, str(e)) from None
    agent = agent_of(request)
    tracker = _index_of(request)
    deadline = trio.current_time() + wait_s
    while True:
        jobs_index, (catalog, view) = agent.ops.read("jobs", lambda v, now: (v.catalog(), v))
        index = tracker.observe(catalog, jobs_index)
        left_s = deadline - trio.current_time()
        if want is None or index > want or left_s <= 0:
            return index, catalog, view
        await agent.indexes.wait_past("jobs", jobs_index, left_s)


def _service(name: str, instances: tuple[ServiceInstance, ...]) -> dict[str, Any]:
    return {"name": name, "count": len(instances), "instances": [i.to_dict() for i in instances]}


async def services(request: Request) -> Response:
    index, catalog, _ = await _catalog(request)
    return indexed([_service(name, catalog.service(name)) for name in catalog.names()], index)


async def service(request: Request) -> Response:
    name = request.path_params["name"]
    index, catalog, view = await _catalog(request)
    instances = catalog.service(name)
    entry = view.job(name)
    if not instances and (entry is None or entry.deleted):
        return indexed({"error": f"no service named {name!r}: no job of that name, and none of its "
                                 f"replicas listed (shoal job status shows the jobs)"}, index, 404)
    return indexed(_service(name, instances), index)
