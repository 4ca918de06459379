"""Host ports as a node resource: the port book's rule, bids that hold ports
as they hold cpu and memory, declines that say which port or range, claims
that carry the ports, and ports freed when a replica stops, its job scales
down or is deleted, and taken back after a restart."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from auction.bidder import Bidder
from auction.claims import Ballot, Claim
from auction.ledger import Ledger
from auction.messages import Award, Bid, CallForBids, Decline, Release
from auction.placement import Placement, PlacementConfig
from auction.placement_outputs import StartReplica, StopReplica
from auction.portbook import PortBook, PortRefusal
from auction.ports import PortSpec
from auction.resources import Resources
from auction.spec import JobSpec, validate
from gossip.lww import LwwMap
from node.core.hlc import Stamp
from node.core.jobstore import Entry
from node.core.status import NodeStatus

GiB = 1 << 30
CAPACITY = Resources(8000, 16 * GiB)


def job(name: str, replicas: int = 4, **ports: dict[str, int]) -> JobSpec:
    return validate({"name": name, "image": "busybox", "replicas": replicas, "cpu": 0.1,
                     "memory": "64MiB", "ports": ports})


def call(auction_id: str, spec: JobSpec, slots: list[int]) -> CallForBids:
    return CallForBids(auction_id, "coord", spec.name, spec.container_hash(), tuple(slots), 0.5)


def bid(bidder: Bidder, c: CallForBids, spec: JobSpec, now: float = 0.0) -> Bid | Decline:
    return bidder.on_call(c, spec=spec, spec_hash=spec.container_hash(), labels={}, eligible=True,
                          ineligible_reason="", already=0, now=now)


def award(bidder: Bidder, auction_id: str, spec: JobSpec, *indices: int,
          now: float = 0.05) -> tuple[list[tuple[int, int]], list[int]]:
    a = Award(auction_id, "coord", spec.name, spec.container_hash(), tuple((i, 1) for i in indices))
    return bidder.on_award(a, spec=spec, now=now)


# ---- the rule ------------------------------------------------------------------------

def test_dynamic_ports_are_the_lowest_free_of_the_range_and_distinct():
    book = PortBook((30000, 30009))
    wanted = (PortSpec("admin", 9000), PortSpec("http", 8080))
    book.hold("web/0", book.pick("web/0", wanted))  # type: ignore[arg-type]
    assert book.of("web/0") == (("admin", 30000), ("http", 30001))
    book.hold("web/1", book.pick("web/1", wanted))  # type: ignore[arg-type]
    assert book.of("web/1") == (("admin", 30002), ("http", 30003))
    book.free("web/0")
    assert book.pick("web/2", wanted) == (("admin", 30000), ("http", 30001))  # freed ports come back


def test_a_static_port_inside_the_range_is_never_handed_out_dynamically():
    book = PortBook((30000, 30002))
    book.hold("api/0", book.pick("api/0", (PortSpec("http", 80, 30000),)))  # type: ignore[arg-type]
    assert book.pick("web/0", (PortSpec("http", 8080),)) == (("http", 30001),)
    # A static port below the range is fine and costs the range nothing.
    assert book.pick("dns/0", (PortSpec("dns", 53, 53),)) == (("dns", 53),)


def test_a_slot_keeps_its_ports_when_asked_again():
    book = PortBook((30000, 30009))
    wanted = (PortSpec("http", 8080),)
    book.hold("web/0", (("http", 30005),))  # as adopted from a claim after a restart
    assert book.pick("web/0", wanted) == (("http", 30005),)


def test_refusals_name_the_port_and_holder_or_the_range():
    book = PortBook((30000, 30001))
    book.hold("web/1", (("http", 80),))
    refusal = book.pick("web/2", (PortSpec("http", 8080, 80),))
    assert isinstance(refusal, PortRefusal)
    assert refusal.text("node-2") == "port 80 is taken on node-2 by web/1"
    book.hold("a/0", (("x", 30000), ("y", 30001)))
    full = book.pick("b/0", (PortSpec("http", 8080),))
    assert isinstance(full, PortRefusal) and full.text("node-2") == "no free port in 30000-30001 on node-2"
    book.free("a/0")
    book.hold("a/0", (("x", 30000),))
    two = book.pick("b/0", (PortSpec("a", 1), PortSpec("b", 2)))
    assert isinstance(two, PortRefusal)
    assert two.text("n") == "no free port in 30000-30001 on n (needs 2, 1 free)"


@pytest.mark.parametrize("bad", [(0, 10), (20, 10), (1, 65536)])
def test_a_range_outside_1_to_65535_or_reversed_is_refused(bad: tuple[int, int]) -> None:
    with pytest.raises(ValueError):
        PortBook(bad)


# ---- bids and awards ----------------------------------------------------------------

def test_a_static_port_is_bid_for_one_slot_and_the_clash_names_the_holder():
    spec = job("web", http={"to": 8080, "static": 80})
    bidder = Bidder("node-2", Ledger(CAPACITY))
    b = bid(bidder, call("a1", spec, [0, 1, 2]), spec)
    assert isinstance(b, Bid) and len(b.scores) == 1  # cpu for all three, port 80 for one
    assert award(bidder, "a1", spec, 1) == ([(1, 1)], [])
    assert bidder.ledger.ports_of("web/1") == (("http", 80),)
    d = bid(bidder, call("a2", spec, [2]), spec, now=0.1)
    assert isinstance(d, Decline) and d.reason == "port 80 is taken on node-2 by web/1"
    # Another job asking for the same host port is refused the same way.
    other = job("api", http={"to": 8080, "static": 80})
    d = bid(bidder, call("b1", other, [0]), other, now=0.1)
    assert isinstance(d, Decline) and d.reason == "port 80 is taken on node-2 by web/1"


def test_host_networking_with_a_static_port_follows_the_same_rule():
    spec = validate({"name": "edge", "image": "busybox", "replicas": 2, "network": "host",
                     "ports": {"http": {"static": 8000}}})
    bidder = Bidder("node-1", Ledger(CAPACITY))
    assert isinstance(bid(bidder, call("a1", spec, [0]), spec), Bid)
    award(bidder, "a1", spec, 0)
    d = bid(bidder, call("a2", spec, [1]), spec, now=0.1)
    assert isinstance(d, Decline) and d.reason == "port 8000 is taken on node-1 by edge/0"


def test_concurrent_auctions_never_hand_one_port_to_two_slots():
    web = job("web", http={"to": 8080})
    api = job("api", http={"to": 8080})
    bidder = Bidder("n", Ledger(CAPACITY, (30000, 30002)))
    assert isinstance(bid(bidder, call("a1", web, [0, 1]), web), Bid)   # reserves 30000, 30001
    b = bid(bidder, call("b1", api, [0, 1]), api, now=0.01)            # only 30002 is left
    assert isinstance(b, Bid) and len(b.scores) == 1
    d = bid(bidder, call("c1", api, [2]), api, now=0.02)
    assert isinstance(d, Decline) and d.reason == "no free port in 30000-30002 on n"
    # The coordinator awards other slots than those reserved: the ports go with the reservations.
    award(bidder, "a1", web, 3, 2)
    award(bidder, "b1", api, 1)
    held = [bidder.ledger.ports_of(k) for k in ("web/2", "web/3", "api/1")]
    assert sorted(p for ports in held for _, p in ports) == [30000, 30001, 30002]


def test_an_unused_or_expired_reservation_frees_its_ports():
    spec = job("web", http={"to": 8080})
    bidder = Bidder("n", Ledger(CAPACITY, (30000, 30000)))
    assert isinstance(bid(bidder, call("a1", spec, [0]), spec), Bid)
    assert isinstance(bid(bidder, call("a2", spec, [1]), spec, now=0.01), Decline)
    # The reservation's TTL is 2 * 0.5 + 0.5 s: past it, the port is free again.
    assert isinstance(bid(bidder, call("a3", spec, [1]), spec, now=1.6), Bid)


def test_jobs_without_ports_hold_no_ports():
    spec = validate({"name": "plain", "image": "busybox", "replicas": 2, "cpu": 0.1})
    bidder = Bidder("n", Ledger(CAPACITY, (30000, 30000)))
    assert isinstance(bid(bidder, call("a1", spec, [0, 1]), spec), Bid)
    award(bidder, "a1", spec, 0, 1)
    assert bidder.ledger.ports.held() == {}


# ---- placement: claims carry the ports; stop, scale-down, delete free them; restart --

def placement(name: str, claims: LwwMap[Claim], port_range: tuple[int, int] = (30000, 30009)) -> Placement:
    return Placement(name, CAPACITY, random.Random(0), PlacementConfig(), claims=claims,
                     ballot_id=f"{name}#1", port_range=port_range)


def win(p: Placement, spec: JobSpec, *indices: int, auction_id: str = "a1") -> list[Claim]:
    """Bid for and accept `indices`; merge the claims written."""
    c = call(auction_id, spec, list(indices))
    assert isinstance(p.on_call(c, spec=spec, status=NodeStatus(p.name, CAPACITY, Resources(0, 0)), now=0.0), Bid)
    a = Award(auction_id, "coord", spec.name, spec.container_hash(), tuple((i, 1) for i in indices))
    claims = p.on_award(a, spec=spec, now=0.05)
    for claim in claims:
        p.claims.merge(claim)
    return claims


def entry(spec: JobSpec) -> Entry:
    return Entry(spec.name, Stamp(1, 0, "a"), spec.canonical_json())


def specs_of(*specs: JobSpec):  # type: ignore[no-untyped-def]
    return lambda job, spec_hash: next((s for s in specs if s.name == job), None)


def test_the_claim_carries_the_ports_and_the_start_gets_them():
    spec = job("web", admin={"to": 9000}, http={"to": 8080, "static": 80})
    p = placement("a", LwwMap(100))
    claims = win(p, spec, 0, 1)
    assert [(c.name, c.ports) for c in claims] == [("web/0", (("admin", 30000), ("http", 80)))]
    starts = [c for c in p.reconcile(specs_of(spec), now=0.1) if isinstance(c, StartReplica)]
    assert [s.claim.ports for s in starts] == [(("admin", 30000), ("http", 80))]


def test_ports_are_freed_when_a_replica_stops_is_scaled_away_or_its_job_deleted():
    spec = job("web", 3, http={"to": 8080})
    p = placement("a", LwwMap(100))
    claims = win(p, spec, 0, 1, 2)
    assert sorted(port for c in claims for _, port in c.ports) == [30000, 30001, 30002]
    p.reconcile(specs_of(spec), now=0.1)
    # Stopped: the slot went to another node (a superseding claim).
    moved = claims[0]
    p.claims.merge(Claim(moved.name, Ballot(5, "x#1"), "b", False, moved.spec_hash, moved.demand,
                         (("http", 30000),)))
    assert p.reconcile(specs_of(spec), now=0.2) == [StopReplica("web/0", "superseded by b (ballot 5)")]
    assert 30000 not in p.ledger.ports.held()
    # Scaled down to one replica: the holder releases web/1 and web/2.
    smaller = job("web", 1, http={"to": 8080})
    _, writes = p.tick(jobs={"web": entry(smaller)}, deleted=set(), statuses={}, alive={"a"}, now=0.3)
    assert sorted(w.name for w in writes) == ["web/1", "web/2"] and all(not w.ports for w in writes)
    for w in writes:
        p.claims.merge(w)
    p.reconcile(specs_of(smaller), now=0.3)
    assert p.ledger.ports.held() == {}
    # Deleted: a new replica's port is freed once the job is gone.
    api = job("api", 1, http={"to": 8080})
    win(p, api, 0, auction_id="a2")
    p.reconcile(specs_of(api), now=0.4)
    assert p.ledger.ports.held() == {30000: "api/0"}
    _, writes = p.tick(jobs={}, deleted={"api"}, statuses={}, alive={"a"}, now=0.5)
    for w in writes:
        p.claims.merge(w)
    assert p.reconcile(specs_of(api), now=0.5) == [StopReplica("api/0", "released")]
    assert p.ledger.ports.held() == {}


def test_after_a_restart_the_ledger_takes_the_ports_back_from_our_claims():
    spec = job("web", 2, http={"to": 8080})
    claims: LwwMap[Claim] = LwwMap(100)
    before = placement("a", claims)
    win(before, spec, 0)
    assert claims.get("web/0") is not None and claims.get("web/0").ports == (("http", 30000),)  # type: ignore[union-attr]
    after = placement("a", claims)  # the restarted agent, with the claims from its state dir
    # Even before the spec is known here, the port is ours again.
    after.reconcile(specs_of(), now=1.0)
    assert after.ledger.ports.held() == {30000: "web/0"}
    after.reconcile(specs_of(spec), now=1.0)
    assert after.ledger.ports_of("web/0") == (("http", 30000),)
    # A new slot gets another port, and a re-award of web/0 keeps its own.
    assert [c.ports for c in win(after, spec, 1, auction_id="a2")] == [(("http", 30001),)]
    assert after.ledger.commit("web/0", spec.demand(), 1.1, spec.ports)
    assert after.ledger.ports_of("web/0") == (("http", 30000),)


def test_adopting_a_port_drops_a_reservation_that_held_it():
    ledger = Ledger(CAPACITY, (30000, 30009))
    wanted = (PortSpec("http", 8080),)
    assert ledger.reserve("a1", ["web/5"], Resources(100, 0), 1.0, 0.0, wanted) == ["web/5"]
    assert ledger.ports_of("web/5") == (("http", 30000),)
    ledger.adopt("web/0", Resources(100, 0), (("http", 30000),))
    assert "web/5" not in ledger.reservations and ledger.ports.held() == {30000: "web/0"}
    # Its award, if it comes, picks a free port.
    assert ledger.commit("web/5", Resources(100, 0), 0.1, wanted)
    assert ledger.ports_of("web/5") == (("http", 30001),)


# ---- any interleaving: no port is ever held by two slots -------------------------------

JOBS = (job("web", 6, http={"to": 8080, "static": 30001}, admin={"to": 9000}),
        job("api", 6, http={"to": 8080}),
        job("dns", 6, dns={"to": 53, "static": 53}))


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["call", "award", "release", "stop", "adopt"]),
                          st.integers(0, 2), st.lists(st.integers(0, 5), min_size=1, max_size=3),
                          st.floats(0, 1.0)), max_size=40))
def test_no_interleaving_gives_one_port_to_two_slots(ops: list[tuple[str, int, list[int], float]]) -> None:
    bidder = Bidder("n", Ledger(CAPACITY, (30000, 30004)))
    ledger = bidder.ledger
    now, auctions = 0.0, []  # (auction id, its job's spec): an award is for its auction's job
    for op, j, slots, dt in ops:
        spec, now = JOBS[j], now + dt
        if op == "call":
            auctions.append((f"a{len(auctions)}", spec))
            bid(bidder, call(auctions[-1][0], spec, slots), spec, now=now)
        elif op == "award" and auctions:
            auction_id, of = auctions[j % len(auctions)]
            award(bidder, auction_id, of, *sorted(set(slots)), now=now)
        elif op == "release" and auctions:
            bidder.on_release(Release(auctions[j % len(auctions)][0], "coord"))
        elif op == "stop":
            ledger.release(f"{spec.name}/{slots[0]}")
        elif op == "adopt":
            # A claim of ours from before a restart: its ports are facts, and
            # may be ports a reservation holds now (never a commitment's: we
            # gave them out once).
            key = f"{spec.name}/{slots[0]}"
            facts = tuple((p.label, p.static if p.static is not None else 30000 + slots[-1 - k])
                          for k, p in enumerate(spec.ports))
            clash = any(ledger.ports.holder(port) in set(ledger.committed) - {key} for _, port in facts)
            if not clash and len({port for _, port in facts}) == len(facts):
                ledger.adopt(key, spec.demand(), facts)
        ledger.expire(now)
        owners: dict[int, str] = {}
        for key in (*ledger.committed, *ledger.reservations):
            for _, port in ledger.ports_of(key):
                assert owners.setdefault(port, key) == key, (port, owners[port], key)
                assert ledger.ports.holder(port) == key
            of = next(s for s in JOBS if s.name == key.split("/")[0])
            assert {label for label, _ in ledger.ports_of(key)} == {p.label for p in of.ports}
        # Nothing held for a slot that is neither reserved nor committed.
        assert set(ledger.ports.held().values()) <= set(ledger.committed) | set(ledger.reservations)
