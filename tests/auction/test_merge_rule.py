"""The merge rule (auction.merge_rule): a losing copy stops only once the
winner runs, and a coordinator does not re-auction over a running copy."""

from __future__ import annotations

from auction.claims import Ballot, Claim, release_of
from auction.merge_rule import MergeRule
from auction.resources import Resources


def claim(node: str, rnd: int, coord: str = "c") -> Claim:
    return Claim("web/3", Ballot(rnd, coord), node, False, "h", Resources(100, 1, 0))


def state(reports: dict[str, str]):
    return lambda node, job, index: reports.get(node, "unknown")


def test_a_losing_copy_runs_until_the_winner_reports_running():
    rule = MergeRule(keep_s=30.0)
    win = claim("b", 2)
    assert rule.keeps_copy(win, "a", state({"b": "starting"}), now=0.0)
    assert rule.keeping("web/3")
    assert rule.keeps_copy(win, "a", state({}), now=5.0)          # b not seen yet: still kept
    assert not rule.keeps_copy(win, "a", state({"b": "running"}), now=6.0)
    assert not rule.keeping("web/3")                               # the caller stops it: forgotten


def test_a_released_slot_or_our_own_claim_is_not_kept():
    rule = MergeRule()
    win = claim("b", 2)
    assert not rule.keeps_copy(release_of(win, 3, "c"), "a", state({}), now=0.0)
    assert not rule.keeps_copy(None, "a", state({}), now=0.0)
    assert not rule.keeps_copy(claim("a", 4), "a", state({}), now=0.0)
    assert not rule.keeps_copy(win, "a", None, now=0.0)           # our runtime does not report: as before
    assert not rule.keeping("web/3")


def test_a_winner_that_never_runs_keeps_the_duplicate_at_most_keep_s_per_ballot():
    rule = MergeRule(keep_s=30.0)
    assert rule.keeps_copy(claim("b", 2), "a", state({}), now=0.0)
    assert rule.keeps_copy(claim("b", 2), "a", state({}), now=29.9)
    assert not rule.keeps_copy(claim("b", 2), "a", state({}), now=30.0)
    # The slot was re-auctioned meanwhile: the new winner gets its own keep_s.
    assert rule.keeps_copy(claim("d", 3), "a", state({}), now=31.0)
    assert rule.waits_on("d") and not rule.waits_on("b")


def test_a_coordinator_holds_off_while_a_live_member_runs_a_copy_then_goes_ahead():
    rule = MergeRule(hold_off_s=10.0)
    win = claim("b", 2)
    nobody = lambda job, index, besides: None  # noqa: E731
    a_runs = lambda job, index, besides: "a" if besides != "a" else None  # noqa: E731
    assert rule.holds_off(win, {"a", "b"}, a_runs, now=0.0) is None       # its holder is alive
    assert rule.holds_off(win, {"a"}, nobody, now=0.0) is None            # no copy runs: re-place
    why = rule.holds_off(win, {"a"}, a_runs, now=1.0)
    assert why is not None and "a copy runs on a" in why
    assert rule.holds_off(win, {"a"}, a_runs, now=10.9) is not None
    assert rule.holds_off(win, {"a"}, a_runs, now=11.0) is None           # bounded
    assert rule.holds_off(release_of(win, 3, "c"), {"a"}, a_runs, now=12.0) is None


def test_a_member_coming_back_counts_for_hold_off_s_then_is_forgotten():
    rule = MergeRule(hold_off_s=10.0)
    rule.record_from_failed("b", now=5.0)
    assert rule.coming_back("b", now=14.0)
    assert not rule.coming_back("b", now=15.0)
    rule.prune(now=15.0)
    assert not rule._back
