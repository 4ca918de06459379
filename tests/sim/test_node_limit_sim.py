"""max_per_node holds across concurrent auctions (auction.node_limit), in the simulator.

Five nodes, a job of five replicas with max_per_node = 1.  The slots have
different coordinators, so their rounds overlap; a slow network (50 ms mean
jitter, as under heavy machine load) stretches the rounds and makes
coordinators re-auction slots whose claims they have not seen yet.  Before
the rule counted a node's reservations for other auctions of the job, these
seeds ended with two replicas on one node for good (the rebalancer does not
move binpack jobs, nor, in the simulator, slots it does not know run).
"""

from __future__ import annotations

import pytest

from gossip.config import LOCAL
from node.sim.cluster import ClusterSim
from node.sim.network import NetworkConfig
from node.sim.swarm import CLUSTER, FAST, job

CFG = LOCAL.replace(enable_compression=False)
N = 5


def claims_per_node(sim: ClusterSim, name: str) -> dict[int, list[str]]:
    """Each live node's own view of the slots of `name` it holds."""
    out = {}
    for i in sim.live_indices():
        mine = sorted(k for k, c in sim.world.core(i).placement.my_claims().items() if c.job == name)
        if mine:
            out[i] = mine
    return out


@pytest.mark.parametrize("strategy,seed", [("spread", 4), ("spread", 5), ("binpack", 0), ("binpack", 3)])
def test_overlapping_auctions_never_put_two_replicas_on_one_node(strategy, seed):
    sim = ClusterSim(seed, N, CFG, network=NetworkConfig(base_delay_s=0.002, jitter_s=0.05),
                     placement_config=FAST, cluster_config=CLUSTER)
    sim.world.bootstrap(seeds="random")
    sim.world.run_for(3)
    spec = job("web", N, strategy=strategy, max_per_node=1)
    sim.submit(seed % N, spec)
    over = []
    for step in range(50):       # 5 s of slow network, looked at every 0.1 s
        sim.world.run_for(0.1)
        over += [(step, i, held) for i, held in claims_per_node(sim, "web").items() if len(held) > 1]
    assert not over, over[:3]
    sim.world.network.set_delay(0.0005, 0.0002)
    took = sim.world.run_until_converged(lambda _: not sim.placement_problems([spec]), 30.0)
    assert took is not None, sim.placement_problems([spec])
    per_node = {i: sorted(s for s in sim.running[i] if s.startswith("web/")) for i in sim.live_indices()}
    assert all(len(slots) == 1 for slots in per_node.values()), per_node
    assert not sim.violations


def test_lowering_max_per_node_moves_the_extra_replicas_to_other_nodes():
    # The holder's rule (auction.node_limit rule 3) heals what bids did not
    # prevent; here, replicas placed under an older, looser limit.
    sim = ClusterSim(7, N, CFG, placement_config=FAST, cluster_config=CLUSTER)
    sim.world.bootstrap(seeds="random")
    sim.world.run_for(3)
    loose = job("web", 4, strategy="binpack", max_per_node=2)
    sim.submit(0, loose)
    assert sim.world.run_until_converged(lambda _: not sim.placement_problems([loose]), 30.0) is not None

    def per_node() -> list[int]:
        return sorted(n for n in (sum(1 for s in sim.running[i] if s.startswith("web/"))
                                  for i in sim.live_indices()) if n)

    assert per_node() == [2, 2]      # binpack fills two nodes up to the limit
    before = {i: sorted((s, b) for s, b in sim.running[i].items() if s.startswith("web/"))
              for i in sim.live_indices()}
    tight = job("web", 4, strategy="binpack", max_per_node=1)
    sim.submit(1, tight)
    assert sim.world.run_until_converged(
        lambda _: not sim.placement_problems([tight]) and per_node() == [1, 1, 1, 1], 30.0) is not None
    # Each holder kept its lowest slot running (the same copy: same ballot) and gave back the other.
    for i, slots in before.items():
        if slots:
            assert sorted(sim.running[i].items()) == slots[:1], (i, slots, sim.running[i])
    assert not sim.violations
