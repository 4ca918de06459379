"""node/core/replay.py: the starts of claims read from disk wait for the peers' word."""

from __future__ import annotations

from auction.claims import Ballot, Claim
from auction.placement_outputs import StartReplica, StopReplica
from auction.spec import validate
from node.core.replay import ReplayHold

SPEC = validate({"name": "web", "image": "busybox", "replicas": 3, "cpu": 0.25, "memory": "16MiB"})
DEMAND = SPEC.demand()


def claim(index: int, node: str = "n1", rnd: int = 1, released: bool = False) -> Claim:
    return Claim(f"web/{index}", Ballot(rnd, "n2#a"), node, released, SPEC.container_hash(), DEMAND)


def start(c: Claim) -> StartReplica:
    return StartReplica(c, SPEC)


def no() -> bool:
    return False


def yes() -> bool:
    return True


# The winning claims as the core holds them (the ones from disk, unless a test changes them).
WINNING: dict[str, Claim] = {}


def winning(key: str) -> Claim | None:
    return WINNING.get(key, claim(int(key.split("/")[1])))


def disk() -> ReplayHold:
    WINNING.clear()
    # web/0 and web/1 were ours; web/2 another node's; web/3 released by us.
    return ReplayHold("n1", [claim(0), claim(1), claim(2, node="n2"), claim(3, released=True)], until=10.0)


def test_a_claim_read_from_disk_only_keeps_what_runs_until_peers_agree():
    hold = disk()
    out = hold.filter([start(claim(0)), start(claim(1))], 1.0, no, winning)
    assert out == [StartReplica(claim(0), SPEC, adopt_only=True), StartReplica(claim(1), SPEC, adopt_only=True)]
    assert hold.filter([], 2.0, no, winning) == []
    # The peers' claims digests match ours: the full starts go out.
    assert hold.filter([], 3.0, yes, winning) == [start(claim(0)), start(claim(1))]
    # ... once: from now on every command passes as it is.
    assert hold.filter([start(claim(0)), StopReplica("web/1", "released")], 4.0, no, winning) == \
        [start(claim(0)), StopReplica("web/1", "released")]


def test_a_slot_that_moved_while_we_were_down_is_stopped_and_never_started():
    hold = disk()
    hold.filter([start(claim(0)), start(claim(1))], 1.0, no, winning)
    stop = StopReplica("web/0", "superseded by n2 (ballot 2)")
    # The sync brought web/0's newer claim: placement stops it, and with
    # that the claims agree; only web/1 starts.
    assert hold.filter([stop], 2.0, yes, winning) == [stop, start(claim(1))]


def test_with_no_peer_to_agree_the_held_starts_go_out_at_the_bound():
    hold = disk()
    hold.filter([start(claim(0))], 1.0, no, winning)
    assert hold.filter([], 9.9, no, winning) == []
    assert hold.filter([], 10.0, no, winning) == [start(claim(0))]


def test_a_new_claim_of_ours_for_the_slot_starts_at_once():
    hold = disk()
    hold.filter([start(claim(0))], 1.0, no, winning)
    newer = start(claim(0, rnd=2))      # re-awarded to us meanwhile (a new ballot)
    assert hold.filter([newer], 2.0, no, winning) == [newer]
    # web/0's hold ended with it: at confirmation only what is still held goes out.
    assert hold.filter([start(claim(1))], 3.0, yes, winning) == [StartReplica(claim(1), SPEC, adopt_only=True),
                                                        start(claim(1))]


def test_claims_not_ours_or_released_and_a_fresh_state_dir_hold_nothing():
    hold = disk()
    other = start(claim(2, node="n1", rnd=2))  # web/2 awarded to us now: not a claim from disk
    assert hold.filter([other], 1.0, no, winning) == [other]
    fresh = ReplayHold("n1", [], until=10.0)
    assert fresh.filter([start(claim(0))], 0.0, no, winning) == [start(claim(0))]


def test_a_slot_given_away_but_not_stopped_yet_is_not_started_at_confirmation():
    # The merge rule keeps a losing copy until the winner runs: no stop yet,
    # but the claim from disk no longer wins, so its start never goes out.
    hold = disk()
    hold.filter([start(claim(0)), start(claim(1))], 1.0, no, winning)
    WINNING["web/0"] = claim(0, node="n2", rnd=2)
    assert hold.filter([], 2.0, yes, winning) == [start(claim(1))]


def test_a_slot_given_away_and_back_to_us_before_it_was_stopped_starts_under_our_new_claim():
    # Placement believes it still runs web/0 (the merge rule kept the copy),
    # so a new ballot of ours for the same version reaches nobody but us.
    hold = disk()
    hold.filter([start(claim(0))], 1.0, no, winning)
    WINNING["web/0"] = claim(0, node="n2", rnd=2)
    assert hold.filter([], 2.0, yes, winning) == []
    assert hold.filter([], 3.0, no, winning) == []
    WINNING["web/0"] = claim(0, rnd=3)
    assert hold.filter([], 4.0, no, winning) == [start(claim(0, rnd=3))]
    assert hold.filter([], 5.0, no, winning) == []


def test_a_slot_given_away_and_then_stopped_is_forgotten():
    hold = disk()
    hold.filter([start(claim(0))], 1.0, no, winning)
    WINNING["web/0"] = claim(0, node="n2", rnd=2)
    hold.filter([], 2.0, yes, winning)
    stop = StopReplica("web/0", "superseded by n2 (ballot 2)")
    assert hold.filter([stop], 3.0, no, winning) == [stop]
    WINNING["web/0"] = claim(0, rnd=3)
    assert hold.filter([start(claim(0, rnd=3))], 4.0, no, winning) == [start(claim(0, rnd=3))]


def test_the_holders_our_disk_names_keep_their_slots_until_our_claims_are_confirmed():
    hold = disk()
    assert hold.keeping(1.0, no) == {"n2"}        # web/2's holder, not heard from yet
    assert hold.keeping(2.0, yes) == frozenset()  # the peers agree: the usual rules again
    assert hold.keeping(3.0, no) == frozenset()
    lone = disk()
    assert lone.keeping(9.9, no) == {"n2"}
    assert lone.keeping(10.0, no) == frozenset()  # nobody to ask: the bound


def test_a_disk_with_only_other_nodes_claims_still_waits_for_them():
    hold = ReplayHold("n1", [claim(2, node="n2"), claim(4, node="n3", released=True)], until=10.0)
    assert hold.keeping(1.0, no) == {"n2"}
    assert hold.filter([start(claim(0, rnd=2))], 1.0, no, winning) == [start(claim(0, rnd=2))]
    assert ReplayHold("n1", [], until=10.0).keeping(0.0, no) == frozenset()
