"""auction.global_jobs: which members run a global job, and which slot index a node takes."""

from __future__ import annotations

from dataclasses import dataclass, field

from auction.claims import Ballot, Claim
from auction.global_jobs import kept_indices, may_run, must_give_up, pick_index
from auction.resources import Resources
from auction.spec import validate

SPEC = validate({"name": "logs", "image": "busybox", "mode": "global", "constraints": ["role != storage"]})


@dataclass
class Status:
    name: str
    labels: dict[str, str] = field(default_factory=dict)
    drained: bool = False
    unhealthy_reason: str = ""
    capacity: Resources = Resources(1000, 1 << 30, 0)
    allocated: Resources = Resources(0, 0, 0)

    @property
    def eligible(self) -> bool:
        return not self.drained and not self.unhealthy_reason


def claim(index: int, node: str) -> Claim:
    return Claim(f"logs/{index}", Ballot(1, node), node, False, SPEC.container_hash(), SPEC.demand())


def test_who_runs_one():
    alive = {"a", "b", "c"}
    assert may_run(SPEC, Status("a"), alive)
    assert not may_run(SPEC, Status("d"), alive)                           # not alive
    assert not may_run(SPEC, Status("a", {"role": "storage"}), alive)      # constraints
    assert not may_run(SPEC, Status("a", drained=True), alive)
    assert not may_run(SPEC, None, alive)                                  # nothing known of it yet
    assert must_give_up(SPEC, Status("a", drained=True)) == "drained"
    assert "role != storage" in must_give_up(SPEC, Status("a", {"role": "storage"}))
    assert must_give_up(SPEC, Status("a", unhealthy_reason="docker is down")) is None   # keeps what it runs


def test_nodes_that_see_the_same_members_pick_different_free_indices():
    statuses = {n: Status(n) for n in ("a", "b", "c", "d")}
    alive = set(statuses)
    held = {0: claim(0, "c"), 2: claim(2, "x")}     # x is dead: its index stays taken
    picks = {n: pick_index(n, SPEC, held, statuses, alive) for n in ("a", "b", "d")}
    assert picks == {"a": 1, "b": 3, "d": 4}
    # A node that sees itself only (its status not heard by the others yet) still picks.
    assert pick_index("e", SPEC, held, statuses, alive) == 5


def test_a_dead_holders_slot_is_not_desired():
    statuses = {n: Status(n) for n in ("a", "b")}
    held = {0: claim(0, "a"), 1: claim(1, "x"), 2: claim(2, "b")}
    assert kept_indices(held, {"a", "b"}, statuses) == [0, 2]


def test_the_room_a_node_commits_for_its_global_slot_stays_committed_until_the_claim_is_written():
    """The core writes a tick's claims after the tick's auction messages, and
    an award among them reconciles: the global slot's commitment, not yet
    backed by a claim of ours, was released there, its room went to the
    award, and the claim's adoption then overcommitted the node (a chaos
    campaign found it: 1.05 cpu on a 1-cpu node)."""
    import random

    from auction.placement import Placement, PlacementConfig
    from gossip.lww import LwwMap
    from node.core.hlc import Stamp
    from node.core.jobstore import Entry
    from node.core.status import NodeStatus

    spec = validate({"name": "logs", "image": "busybox", "mode": "global", "cpu": 0.05, "memory": "32MiB"})
    p = Placement("a", Resources(1000, 1 << 30, 0), random.Random(0), PlacementConfig(), claims=LwwMap(100),
                  ballot_id="a#1")
    _, writes = p.tick(jobs={"logs": Entry("logs", Stamp(1, 0, "a"), spec.canonical_json())}, deleted=set(),
                       statuses={"a": NodeStatus("a", Resources(1000, 1 << 30, 0), Resources(0, 0))},
                       alive={"a"}, now=0.0)
    [claim] = writes
    p.reconcile(lambda job, h: spec, now=0.0)              # an award's reconcile, before the write
    assert p.ledger.holds(claim.name)
    assert p.ledger.free(0.0) == Resources(950, (1 << 30) - 32 * (1 << 20), 0)
