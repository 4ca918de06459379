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

The details `build_catalog` settles:
  * "alive for placement" is auction.membership's `is_alive` (SWIM says
    ALIVE): the test placement uses before it re-places a holder's slots.
    A drained node's replicas stay listed while they run: draining moves
    them, and dropping them before their replacements run would leave the
    service with nobody to answer.
  * Never a replica not known to run: a node that publishes no runtime
    summary (an older agent, a runtime that does not say) lists nothing,
    and neither does a job its summary dropped to fit the 1 KiB record
    (`RuntimeSummary.truncated`: `state_of` is None for it).  Such replicas
    may well serve; we cannot tell, so we do not answer with them.
  * Our own replicas follow our runtime's latest report (`my_runtime`),
    not the record we last published (which waits for the publication
    interval and may be truncated): a container that stops leaves our own
    catalog at the next runtime report.
  * A job whose spec says `network = "none"` has nothing to reach: never
    listed.  Health is "passing" when the spec names a check (running then
    means the check passes), else "no check" (the image's own HEALTHCHECK,
    if any, still gates running).
  * The address is the node's published `address` when it is an IP
    literal other than a wildcard (0.0.0.0, ::: published on every
    interface), else the host of its gossip address, so the catalog only
    ever holds IP addresses one can connect to (DNS A/AAAA records are made
    from them).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass, field

from auction.claims import Claim, live
from auction.jobspec import JobSpec
from auction.membership import is_alive
from node.core.status import NodeStatus, RuntimeSummary


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


def _ip(text: str) -> str | None:
    """text as a canonical IP literal, or None if it is not one or is a
    wildcard (ports published on every interface: reach it at its gossip
    address)."""
    try:
        ip = ipaddress.ip_address(text)
    except ValueError:
        return None
    return None if ip.is_unspecified else str(ip)


def node_address(status: NodeStatus | None, gossip_host: str | None) -> str | None:
    """Where a node's replicas are reached: its published address if it is
    an IP literal, else its gossip address's host (None: neither)."""
    if status is not None and status.address:
        published = _ip(status.address)
        if published is not None:
            return published
    return _ip(gossip_host) if gossip_host else None


def build_catalog(claims: Iterable[Claim], statuses: Mapping[str, NodeStatus], alive: Collection[str],
                  gossip_hosts: Mapping[str, str], *, spec_of: Callable[[str], JobSpec | None] = lambda _: None,
                  me: str = "", my_runtime: RuntimeSummary | None = None,
                  my_status: NodeStatus | None = None) -> Catalog:
    """The catalog from the winning claims (one per slot), every node's last
    published status, the names SWIM believes alive and each member's gossip
    host.  `me`, `my_runtime` and `my_status`: this agent's own name, its
    runtime's latest report and its own current record (fresher than
    `statuses[me]`)."""
    nodes: dict[str, str] = {}
    for name in sorted(set(alive) | ({me} if me else set())):
        if not is_alive(name, alive):
            continue
        status = my_status if name == me and my_status is not None else statuses.get(name)
        addr = node_address(status, gossip_hosts.get(name))
        if addr is not None:
            nodes[name] = addr
    specs: dict[str, JobSpec | None] = {}
    out: list[ServiceInstance] = []
    for claim in claims:
        c = live(claim)
        if c is None or c.node not in nodes:
            continue
        runtime = my_runtime if c.node == me else _runtime_of(statuses.get(c.node))
        if runtime is None:
            continue
        job, index = c.job, c.index
        state = runtime.state_of(job, index)
        if state is None or state[0] != "running":
            continue
        if job not in specs:
            specs[job] = spec_of(job)
        spec = specs[job]
        if spec is not None and spec.network == "none":
            continue
        health = "passing" if spec is not None and spec.health is not None else "no check"
        out.append(ServiceInstance(job, index, c.node, nodes[c.node], tuple(sorted(c.ports)), health))
    out.sort()
    return Catalog(tuple(out), nodes)


def _runtime_of(status: NodeStatus | None) -> RuntimeSummary | None:
    return None if status is None else status.runtime
