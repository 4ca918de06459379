"""The service catalog: which replicas serve, where, on which ports.

How this works: the catalog is not gossiped on its own; every agent derives
it from what it already holds for the whole cluster.  A replica (job, index)
is listed when
  * the slot's winning claim is live and names node N (auction.claims), the
    claim carries the host ports N gave it (auction.ports), and
  * N is alive for placement (not suspected, not gone: auction.membership),
  * N's published runtime summary says the slot runs (node.core.status:
    "running" means its container is up and passes its health check, or
    has none).
Its address is N's publish address (the advertise address unless the
operator set another).  So a replica leaves every agent's catalog as soon
as its node reports it stopped or unhealthy, or as soon as placement learns
that its node is suspected or gone.  Pure: no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True, order=True)
class ServiceInstance:
    """One serving replica of a job (a service is a job: `web` serves as `web`)."""

    job: str
    index: int
    node: str
    address: str                                  # IP the replica is reached at
    ports: tuple[tuple[str, int], ...] = ()       # (label, host port), sorted by label
    health: str = "passing"                       # "passing" | "no check"

    def port(self, label: str) -> int | None:
        for name, port in self.ports:
            if name == label:
                return port
        return None

    def to_dict(self) -> dict[str, object]:
        return {"job": self.job, "slot": self.index, "node": self.node, "address": self.address,
                "ports": dict(self.ports), "health": self.health}


@dataclass(frozen=True, slots=True)
class Catalog:
    """The whole cluster's serving replicas, sorted by (job, index), and the
    address of every node alive for placement."""

    instances: tuple[ServiceInstance, ...] = ()
    nodes: dict[str, str] = field(default_factory=dict)   # node name -> address

    def service(self, job: str) -> tuple[ServiceInstance, ...]:
        return tuple(i for i in self.instances if i.job == job)

    def names(self) -> tuple[str, ...]:
        return tuple(sorted({i.job for i in self.instances}))
