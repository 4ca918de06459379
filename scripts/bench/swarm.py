"""Docker Swarm mode on the testbed's dockerds: the driver the side-by-side
benchmarks share (rollout_bench, catalog_bench, swarm_bench).

How this works: `init(bed, managers=M)` makes node 1 the first manager
(advertising on its testbed address), joins nodes 2..M as managers and the
rest as workers, and waits until every node is `ready`; it returns Swarm's
node ID -> testbed index.  `heartbeat_s` sets the dispatcher's heartbeat
period (Swarm's default is 5 s; a node is declared down after about three
missed ones); `set_heartbeat` changes it later.  `running(bed, service,
nodes)` is the ground truth: the service's containers the given dockerds run
now, counted from the engines, not from the manager's word.  `remove(bed,
service)` removes the service and waits until none of its containers is
left.  Swarm's gossip port is 7946, the agents' too, so a Swarm runs on a
testbed brought up with `--no-agents`.
"""

from __future__ import annotations

from benchbed import N, Bed, wait

SERVICE_LABEL = "com.docker.swarm.service.name"
DEFAULT_HEARTBEAT_S = 5.0


def _spec(api, heartbeat_s: float | None):
    if heartbeat_s is None:
        return None
    return api.create_swarm_spec(dispatcher_heartbeat_period=int(heartbeat_s * 1e9))


def init(bed: Bed, managers: int = 1, heartbeat_s: float | None = None) -> dict[str, int]:
    """A swarm over the bed's nodes: 1..managers managers, the rest workers."""
    d1, addr1 = bed.docker[1], bed.nodes[1]["addr"]
    d1.init_swarm(advertise_addr=addr1, listen_addr=f"{addr1}:2377", swarm_spec=_spec(d1, heartbeat_s))
    tokens = d1.inspect_swarm()["JoinTokens"]
    for i in sorted(bed.nodes):
        if i != 1:
            bed.docker[i].join_swarm([f"{addr1}:2377"], tokens["Manager" if i <= managers else "Worker"],
                                     advertise_addr=bed.nodes[i]["addr"],
                                     listen_addr=f"{bed.nodes[i]['addr']}:2377")
    wait(lambda: ready_nodes(bed) == N, 60, f"{N} swarm nodes ready")
    return {bed.docker[i].info()["Swarm"]["NodeID"]: i for i in bed.nodes}


def ready_nodes(bed: Bed, via: int = 1) -> int:
    return sum(n["Status"]["State"] == "ready" for n in bed.docker[via].nodes())


def set_heartbeat(bed: Bed, heartbeat_s: float, via: int = 1) -> None:
    api = bed.docker[via]
    version = api.inspect_swarm()["Version"]["Index"]
    api.update_swarm(version=version, swarm_spec=_spec(api, heartbeat_s))


def running(bed: Bed, service: str, nodes) -> dict[int, int]:
    """Testbed index -> containers of `service` running on that dockerd."""
    return {i: len(bed.docker[i].containers(filters={"label": f"{SERVICE_LABEL}={service}", "status": "running"}))
            for i in nodes}


def remove(bed: Bed, service: str, nodes, via: int = 1, timeout_s: float = 300) -> None:
    """Remove the service; wait until no container of it is left on `nodes`."""
    bed.docker[via].remove_service(service)
    wait(lambda: not any(bed.docker[i].containers(all=True, filters={"label": f"{SERVICE_LABEL}={service}"})
                         for i in nodes), timeout_s, f"every task of {service} removed", every=0.5)
