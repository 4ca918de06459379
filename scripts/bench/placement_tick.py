#!/usr/bin/env python3
"""What one placement tick costs an agent whose cluster is at rest.

    python scripts/bench/placement_tick.py [--nodes 100] [--jobs 10] [--replicas 100] [--ticks 200]

Every agent runs auction.placement's tick every placement_interval_s (1 s
by default), also when nothing changes.  This builds one agent's placement
(pure, no agent process): `--jobs` jobs of `--replicas` replicas, every slot
claimed by a random one of `--nodes` live, healthy members, then ticks it
`--ticks` times with nothing changing and prints the median wall time of a
tick (the process is single-threaded and does nothing else, so on an idle
machine that is its CPU).  At one tick per second, 1 ms per tick is 0.1 %
of a core per agent.  Compare trees by running it from each (a git
worktree of the older commit).

How this works: the same Placement, claims map and job entries the node
core hands it; the first tick is not counted (it reads every slot).
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from auction.claims import Ballot, Claim, slot_key  # noqa: E402
from auction.placement import Placement, PlacementConfig  # noqa: E402
from auction.resources import Resources  # noqa: E402
from auction.spec import validate  # noqa: E402
from gossip.lww import LwwMap  # noqa: E402
from node.core.hlc import Stamp  # noqa: E402
from node.core.jobstore import Entry  # noqa: E402
from node.core.status import NodeStatus  # noqa: E402

GiB = 1 << 30
CAPACITY = Resources(64000, 256 * GiB)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--nodes", type=int, default=100)
    ap.add_argument("--jobs", type=int, default=10)
    ap.add_argument("--replicas", type=int, default=100)
    ap.add_argument("--ticks", type=int, default=200)
    args = ap.parse_args()
    nodes = [f"node-{i}" for i in range(args.nodes)]
    rng = random.Random(1)
    claims: LwwMap[Claim] = LwwMap(args.jobs * args.replicas + 1000)
    specs = [validate({"name": f"job-{j}", "image": "busybox", "replicas": args.replicas, "cpu": 0.01,
                       "memory": "8MiB"}) for j in range(args.jobs)]
    for spec in specs:
        for index in range(spec.replicas):
            claims.merge(Claim(slot_key(spec.name, index), Ballot(1, "x#1"), rng.choice(nodes), False,
                               spec.container_hash(), spec.demand()))
    p = Placement(nodes[0], CAPACITY, random.Random(0), PlacementConfig(), claims=claims, ballot_id=f"{nodes[0]}#1")
    jobs = {s.name: Entry(s.name, Stamp(1, 0, nodes[0]), s.canonical_json()) for s in specs}
    statuses = {n: NodeStatus(n, CAPACITY, Resources(0, 0)) for n in nodes}
    alive = set(nodes)
    p.tick(jobs=jobs, deleted=set(), statuses=statuses, alive=alive, now=0.0)
    times = []
    for k in range(args.ticks):
        t = time.perf_counter()
        p.tick(jobs=jobs, deleted=set(), statuses=statuses, alive=alive, now=1.0 + k)
        times.append(time.perf_counter() - t)
    median_ms = statistics.median(times) * 1000
    print(f"placement tick at rest: {args.jobs} jobs x {args.replicas} replicas on {args.nodes} nodes: "
          f"median {median_ms:.3f} ms per tick ({median_ms / 10:.3f} % of a core at one tick per second)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
