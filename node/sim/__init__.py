"""Deterministic cluster simulation of shoal's gossip cores (see world.py).

    from node.sim import World, faults, checkers
    w = World(seed=1, n_nodes=50)
    w.bootstrap()
    w.run_until_converged(checkers.all_agree_alive, timeout=60)
"""

from node.sim import checkers, faults
from node.sim.network import Network, NetworkConfig
from node.sim.world import World, SimError, node_address, node_name

__all__ = ["World", "SimError", "Network", "NetworkConfig", "checkers", "faults",
           "node_address", "node_name"]
