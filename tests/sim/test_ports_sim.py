"""Host ports in the simulator: a static port runs at most once per node (the
extra replicas stay pending saying which port is taken), dynamic ports are
distinct on a node and come from its range, a used-up range is a pending
reason, and ports come free when replicas stop.  Safety checks of ClusterSim
(no overcommit, starts trace to awards) hold throughout."""

from __future__ import annotations

import re

from auction.claims import Claim, holds
from auction.placement import PlacementConfig
from auction.spec import JobSpec, validate
from gossip.config import LOCAL
from node.core.node_core import ClusterConfig
from node.sim.cluster import ClusterSim

CFG = LOCAL.replace(enable_compression=False)
FAST = PlacementConfig(placement_interval_s=0.25, auction_ttl_s=0.1, claim_wait_s=1.0,
                       min_backoff_s=0.2, max_backoff_s=2.0)
CLUSTER = ClusterConfig(store_sync_interval_s=0.5, status_min_interval_s=0.5)


def job(name: str, replicas: int, **ports: dict[str, int]) -> JobSpec:
    return validate({"name": name, "image": "busybox", "replicas": replicas, "cpu": 0.1,
                     "memory": "64MiB", "ports": ports})


def make(seed: int, n: int, **kw: object) -> ClusterSim:
    sim = ClusterSim(seed, n, CFG, placement_config=FAST, cluster_config=CLUSTER, **kw)  # type: ignore[arg-type]
    sim.world.bootstrap(seeds="random")
    sim.world.run_for(3)
    return sim


def running_claims(sim: ClusterSim, i: int) -> list[Claim]:
    """The claims (as node i has them) of the replicas node i runs."""
    core = sim.world.core(i)
    out = []
    for slot in sim.running[i]:
        claim = core.placement.claims.get(slot)
        assert claim is not None and holds(claim, core.name), slot
        out.append(claim)
    return out


def ports_by_node(sim: ClusterSim) -> dict[int, list[int]]:
    return {i: sorted(p for c in running_claims(sim, i) for _, p in c.ports) for i in sim.live_indices()}


def pending(sim: ClusterSim, slot: str) -> list[str]:
    return [r for i in sim.live_indices() if (r := sim.world.core(i).view.pending_reasons().get(slot))]


def test_a_static_port_runs_once_per_node_and_the_rest_wait_saying_why():
    sim = make(21, 3)
    web = job("web", 5, http={"to": 8080, "static": 80}, admin={"to": 9000})
    sim.submit(0, web)
    sim.world.run_for(8)
    counts = sim.replica_counts()
    assert len(counts) == 3 and set(counts.values()) == {1}, counts
    for i in sim.live_indices():
        claims = running_claims(sim, i)
        assert len(claims) == 1 and dict(claims[0].ports) == {"http": 80, "admin": 20000}, claims
    waiting = sorted({f"web/{k}" for k in range(5)} - set(counts))
    assert len(waiting) == 2
    for slot in waiting:
        reasons = pending(sim, slot)
        assert reasons and all("port 80 is taken on node-" in r for r in reasons), (slot, reasons)
    assert not sim.violations
    # Stopping the job frees every port: another job may take port 80 everywhere.
    sim.stop_job(1, "web")
    api = job("api", 3, http={"to": 8080, "static": 80})
    assert sim.world.run_until_converged(lambda _: not sim.replica_counts(), 10) is not None
    assert all(not sim.world.core(i).placement.ledger.ports.held() for i in sim.live_indices())
    sim.submit(2, api)
    assert sim.world.run_until_converged(lambda _: not sim.placement_problems([api]), 10) is not None
    assert ports_by_node(sim) == {0: [80], 1: [80], 2: [80]}
    assert not sim.violations


def test_dynamic_ports_are_distinct_per_node_from_its_range_and_a_full_range_is_a_reason():
    sim = make(22, 3, port_ranges=[(30000, 30003)] * 3)
    web = job("web", 6, http={"to": 8080}, admin={"to": 9000})  # two ports a replica: two replicas a node
    sim.submit(0, web)
    sim.world.run_for(8)
    counts = sim.replica_counts()
    assert len(counts) == 6 and set(counts.values()) == {1}, counts
    for i, ports in ports_by_node(sim).items():
        assert ports == [30000, 30001, 30002, 30003], (i, ports)
    more = job("more", 1, http={"to": 8080})
    sim.submit(1, more)
    sim.world.run_for(4)
    assert "more/0" not in sim.replica_counts()
    reasons = pending(sim, "more/0")
    # (one line for the nodes that declined alike: "3 declined (node-0, ...): no free port in ... on each")
    assert reasons and all(re.search(r"no free port in 30000-30003 on (node-\d|each)", r) for r in reasons), reasons
    # Scaling web down frees ports; the waiting job then runs.
    sim.submit(2, job("web", 4, http={"to": 8080}, admin={"to": 9000}))
    settled = sim.world.run_until_converged(
        lambda _: not sim.placement_problems([job("web", 4, http={"to": 8080}, admin={"to": 9000}), more]), 15)
    assert settled is not None, sim.replica_counts()
    for i, ports in ports_by_node(sim).items():
        assert len(ports) == len(set(ports)) and all(30000 <= p <= 30003 for p in ports), (i, ports)
    assert not sim.violations
