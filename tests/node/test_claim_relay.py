"""node.core.claim_relay's rules, on a stand-in core: whom a holder tells of
an award it accepted; who tells the losing holder of a slot the winning
claim, and how often."""

from __future__ import annotations

from typing import Any

from auction.claims import Ballot, Claim
from auction.resources import Resources
from node.core import wire
from node.core.claim_relay import ClaimRelay
from node.core.job_push import PUSH_MIN_MEMBERS


def claim(rnd: int, coordinator: str, node: str, slot: str = "web/0") -> Claim:
    return Claim(slot, Ballot(rnd, coordinator), node, False, "h", Resources(100, 1 << 20, 0))


class Coordination:
    def __init__(self, coordinator: str, successor: str = "next") -> None:
        self.coordinator, self.successor = coordinator, successor
        self.view: frozenset[str] = frozenset()

    def is_coordinator(self, job: str, index: int, spec: Any, me: str) -> bool:
        return me == self.coordinator

    def coordinators_of(self, job: str, index: int, spec: Any, count: int) -> list[str]:
        return [self.coordinator, self.successor][:count]


class Core:
    """What ClaimRelay.merged reads of a NodeCore, and what it sends."""

    def __init__(self, name: str, members: int = PUSH_MIN_MEMBERS + 1, coordinator: str = "c",
                 successor: str = "next") -> None:
        self.name, self.ballot_id = name, f"{name}#1"
        self.claims: dict[str, Claim] = {}
        self.sent: list[tuple[str, tuple[Claim, ...]]] = []
        self.counters: dict[str, int] = {}
        self.swim = type("Swim", (), {"live_count": lambda _self: members})()
        self.store = type("Store", (), {"get": lambda _self, job: None})()
        self.placement = type("Placement", (), {"spec_of": lambda _self, entry: None,
                                                "known_spec": lambda _self, job, spec_hash: None,
                                                "my_claims": lambda _self: {k: c for k, c in self.claims.items()
                                                                            if c.node == name and not c.released},
                                                "coordination": Coordination(coordinator, successor)})()
        self._claims = type("Map", (), {"get": lambda _self, key: self.claims.get(key)})()

    def _count(self, key: str) -> None:
        self.counters[key] = self.counters.get(key, 0) + 1

    def _send(self, peer: str, msg: wire.ClaimBroadcast, now: float, reliable: bool = True) -> None:
        self.sent.append((peer, msg.claims))


def arrive(relay: ClaimRelay, core: Core, incoming: Claim, direct: bool) -> None:
    """`incoming` is merged into the stand-in's map as the core would, then handed to the relay."""
    before = {incoming.name: core.claims.get(incoming.name)}
    old = before[incoming.name]
    changed = [incoming] if old is None or incoming.beats(old) else []
    if changed:
        core.claims[incoming.name] = incoming
    relay.merged(core, before, [incoming], changed, 0.0, direct)  # type: ignore[arg-type]


def test_a_claim_addressed_to_us_that_loses_here_brings_its_holder_the_winner() -> None:
    core, relay = Core("c1"), ClaimRelay()
    winner = claim(2, "c1#1", "h1")
    core.claims[winner.name] = winner
    arrive(relay, core, claim(1, "c2#1", "h2"), direct=True)  # h2's relay: we coordinate by its view
    assert core.sent == [("h2", (winner,))]


def test_a_gossiped_losing_claim_is_told_by_the_winners_holder_once() -> None:
    core, relay = Core("h1"), ClaimRelay()
    winner = claim(2, "c1#1", "h1")
    core.claims[winner.name] = winner
    for _ in range(3):  # gossip brings one claim several times
        arrive(relay, core, claim(1, "c2#1", "h2"), direct=False)
    assert core.sent == [("h2", (winner,))]


def test_a_claim_that_beats_another_holders_claim_here_is_told_to_that_holder() -> None:
    core, relay = Core("c2"), ClaimRelay()
    core.claims["web/0"] = claim(1, "c1#1", "h1")
    newer = claim(2, "c2#1", "h2")  # our run awarded it
    arrive(relay, core, newer, direct=False)
    assert core.sent == [("h1", (newer,))]


def test_bystanders_leave_it_to_gossip() -> None:
    core, relay = Core("x", coordinator="c1"), ClaimRelay()
    core.claims["web/0"] = claim(2, "c1#1", "h1")
    arrive(relay, core, claim(1, "c2#1", "h2"), direct=False)
    arrive(relay, core, claim(3, "c3#1", "h3"), direct=False)
    assert core.sent == []


def test_nothing_to_tell_for_the_same_holder_a_copy_of_the_winner_or_ourselves() -> None:
    core, relay = Core("c1"), ClaimRelay()
    winner = claim(2, "c1#1", "h1")
    core.claims[winner.name] = winner
    arrive(relay, core, winner, direct=True)                  # the holder's acknowledgement
    arrive(relay, core, claim(1, "c2#1", "h1"), direct=True)  # an older ballot of the same holder
    arrive(relay, core, claim(1, "c2#1", "c1"), direct=True)  # we lost: our reconcile stops our copy
    assert core.sent == []


def test_small_clusters_leave_conflicts_to_gossip() -> None:
    core, relay = Core("c1", members=PUSH_MIN_MEMBERS), ClaimRelay()
    core.claims["web/0"] = claim(2, "c1#1", "h1")
    arrive(relay, core, claim(1, "c2#1", "h2"), direct=True)
    assert core.sent == []


def hold(core: Core, relay: ClaimRelay, award: Claim, origin: str) -> None:
    """`core` accepts `award` from `origin` (merged first, as the core does)."""
    core.claims[award.name] = award
    relay.accepted(core, [award], origin, 0.0)  # type: ignore[arg-type]


def test_a_holder_tells_the_slots_next_coordinator_of_its_award_so_a_successor_does_not_award_it_again() -> None:
    # The coordinator awarded web/0 to h1 and may die before gossip brings
    # the claim to its successor c2, which would take the slot for unplaced.
    core, relay = Core("h1", coordinator="c1", successor="c2"), ClaimRelay()
    award = claim(1, "c1#1", "h1")
    hold(core, relay, award, "c1")
    assert core.sent == [("c2", (award,))]


def placed(core: Core, relay: ClaimRelay, view: set[str], now: float) -> None:
    """A placement pass of `core` under `view`."""
    core.placement.coordination.view = frozenset(view)
    relay.placed(core, now)  # type: ignore[arg-type]


def test_when_a_told_coordinator_leaves_the_holders_view_the_next_in_line_is_told() -> None:
    core, relay = Core("h1", coordinator="c1", successor="c2"), ClaimRelay()
    placed(core, relay, {"h1", "c1", "c2", "c3", "c4"}, 0.0)
    award = claim(1, "c1#1", "h1")
    hold(core, relay, award, "c1")
    core.sent.clear()
    placed(core, relay, {"h1", "c1", "c2", "c3", "c4"}, 1.0)
    assert core.sent == []                      # nobody left
    core.placement.coordination.coordinator, core.placement.coordination.successor = "c2", "c3"
    placed(core, relay, {"h1", "c2", "c3", "c4"}, 2.0)
    assert core.sent == [("c3", (award,))]      # c1 died: c3 is next after c2
    core.sent.clear()
    core.placement.coordination.coordinator, core.placement.coordination.successor = "c2", "c4"
    core.claims[award.name] = claim(2, "c2#1", "h2")  # the slot moved on: no longer ours
    placed(core, relay, {"h1", "c2", "c4"}, 3.0)
    assert core.sent == []


def test_an_award_from_a_lagging_coordinator_goes_to_both_coordinators_by_the_holders_view() -> None:
    core, relay = Core("h1", coordinator="c1", successor="c2"), ClaimRelay()
    award = claim(1, "c3#1", "h1")
    hold(core, relay, award, "c3")
    assert core.sent == [("c1", (award,)), ("c2", (award,))]


def test_a_holder_that_is_itself_next_in_line_tells_no_one_but_the_coordinator() -> None:
    core, relay = Core("h1", coordinator="c1", successor="h1"), ClaimRelay()
    hold(core, relay, claim(1, "c1#1", "h1"), "c1")
    assert core.sent == []


def test_a_small_clusters_holder_tells_the_next_coordinator_too() -> None:
    # 16 agents under `local` suspect within 0.6 s, before gossip spread a
    # large deploy's claims: a successor re-awarded a slot there as well.
    small, relay = Core("h1", members=5, coordinator="c1", successor="c2"), ClaimRelay()
    award = claim(1, "c1#1", "h1")
    hold(small, relay, award, "c1")
    assert small.sent == [("c2", (award,))]


def test_a_holder_without_the_job_in_its_store_tells_the_coordinators_of_the_awards_spec() -> None:
    # A big binpack job has a coordinator per chunk of its slots
    # (auction.coordination), so whom to tell depends on the spec.  An award
    # can come before the job store has the job (the call carried it): a
    # holder that took the slot key instead told the slot's own first two by
    # rendezvous, not the chunk's, and a dead coordinator's successor awarded
    # 13 slots again (scripts/bench/coordinator_kill.py, seed 6).
    from auction.coordination import Coordination as Real, coordination_key
    from auction.spec import validate

    spec = validate({"name": "web", "image": "busybox", "replicas": 100, "cpu": "10m", "memory": "8MiB"})
    names = [f"n{i}" for i in range(40)]
    core, relay = Core("h1"), ClaimRelay()
    core.placement.coordination = Real(names)
    core.placement.known_spec = lambda job, spec_hash: spec if (job, spec_hash) == ("web", "h") else None
    award = claim(1, "n0#1", "h1", slot="web/5")
    by_chunk = core.placement.coordination.coordinators_of("web", 5, spec, 2)
    assert coordination_key("web", 5, spec) == "job:web#0"
    assert by_chunk != core.placement.coordination.coordinators_of("web", 5, None, 2)   # the scene
    hold(core, relay, award, "n0")
    assert sorted(peer for peer, _ in core.sent) == sorted(set(by_chunk) - {"n0"})
