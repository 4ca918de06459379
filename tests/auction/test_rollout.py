"""The pacing rule of rolling updates (auction.rollout), on plain values."""

import pytest

from auction.claims import Ballot, Claim
from auction.resources import Resources
from auction.rollout import (
    Rollouts,
    SlotState,
    SlotView,
    is_revert,
    permitted,
    promoted_of,
    promoted_spec,
    revert_target,
)
from auction.spec import UpdatePolicy, validate

S = SlotState
OLD, NEW = "old-hash", "new-hash"


def claim(index, spec_hash, node="n1", rnd=1):
    return Claim(f"web/{index}", Ballot(rnd, "c#1"), node, False, spec_hash, Resources(100, 1 << 26))


@pytest.mark.parametrize(("states", "policy", "promoted", "want"), [
    # max_parallel 1: the lowest old slot, and only while nothing else is down.
    ([S.OLD_SERVING] * 4, UpdatePolicy(), False, [0]),
    ([S.NEW_PENDING, S.OLD_SERVING, S.OLD_SERVING], UpdatePolicy(), False, []),
    ([S.NEW_HEALTHY, S.OLD_SERVING, S.OLD_SERVING], UpdatePolicy(), False, [1]),
    ([S.EMPTY, S.OLD_SERVING], UpdatePolicy(), False, []),               # a lost slot uses the budget
    ([S.NEW_HEALTHY, S.NEW_PENDING, S.OLD_SERVING, S.OLD_SERVING, S.OLD_SERVING],
     UpdatePolicy(max_parallel=3), False, [2, 3]),
    # A slot whose old copy fails is replaced without waiting its turn; one
    # that is only starting (or not known here) waits until it runs or fails.
    ([S.NEW_PENDING, S.OLD_FAILED, S.OLD_SERVING], UpdatePolicy(), False, [1]),
    ([S.OLD_DOWN, S.OLD_SERVING, S.OLD_SERVING], UpdatePolicy(max_parallel=2), False, [1]),
    # Canaries: only the first `canary` slots until promoted.
    ([S.OLD_SERVING] * 4, UpdatePolicy(max_parallel=4, canary=1), False, [0]),
    ([S.NEW_HEALTHY] + [S.OLD_SERVING] * 3, UpdatePolicy(max_parallel=4, canary=1), False, []),
    ([S.NEW_HEALTHY] + [S.OLD_SERVING] * 3, UpdatePolicy(max_parallel=4, canary=1), True, [1, 2, 3]),
])
def test_permitted(states, policy, promoted, want):
    assert permitted(states, policy, promoted) == want


def test_a_revert_replaces_a_slot_on_the_failed_version_that_only_starts_out_of_turn():
    """In a revert every slot on another version runs the one that failed: a
    container the engine keeps restarting is "starting" most of the time,
    and the revert does not wait on it (a plain rollout does)."""
    states = [S.NEW_PENDING, S.NEW_PENDING, S.OLD_DOWN, S.OLD_SERVING]
    assert permitted(states, UpdatePolicy(max_parallel=2), False) == []
    assert permitted(states, UpdatePolicy(max_parallel=2), False, revert=True) == [2]
    # A serving slot still waits for the budget.
    assert permitted([S.OLD_DOWN, S.OLD_SERVING], UpdatePolicy(), False, revert=True) == [0]


def test_revert_goes_to_the_version_most_old_slots_serve():
    views = [SlotView(0, claim(0, NEW), False), SlotView(1, claim(1, "v1"), True),
             SlotView(2, claim(2, "v0"), True), SlotView(3, claim(3, "v1"), True)]
    states = [S.NEW_PENDING, S.OLD_SERVING, S.OLD_SERVING, S.OLD_SERVING]
    assert revert_target(views, NEW, states) == "v1"
    assert revert_target(views[:1], NEW, states[:1]) is None


def spec(**update):
    return validate({"name": "web", "image": "busybox:2", "replicas": 3,
                     "update": {"min_healthy_s": 10, "healthy_deadline_s": 30, "progress_deadline_s": 60, **update}})


def test_a_job_that_never_changes_has_no_rollout():
    s = spec()
    views = [SlotView(i, claim(i, s.container_hash()), True) for i in range(3)]
    r = Rollouts()
    assert r.step("web", s, views, 0.0, may_revert=True).events == ()
    assert r.jobs == {}


def test_a_rollout_paces_by_observed_health_and_ends_done():
    s = spec()
    new = s.container_hash()
    r = Rollouts()
    slots = {i: claim(i, OLD) for i in range(3)}

    def step(now, running=True):
        views = [SlotView(i, c, running) for i, c in sorted(slots.items())]
        return r.step("web", s, views, now, may_revert=False)

    first = step(0.0)
    assert first.permitted == (0,) and [e.kind for e in first.events] == ["started"]
    slots[0] = claim(0, new, rnd=2)
    assert step(1.0).permitted == ()            # slot 0 runs the new version, not yet for 10 s
    assert step(10.9).permitted == ()
    healthy = step(11.0)
    assert healthy.permitted == (1,) and [e.kind for e in healthy.events] == ["healthy"]
    slots[1] = claim(1, new, rnd=2)
    step(12.0)
    slots[2] = claim(2, new, rnd=2)
    assert step(22.0).permitted == ()
    done = step(32.0)
    assert [e.kind for e in done.events] == ["healthy", "done"] and r.jobs == {}


def test_a_replica_not_healthy_in_time_fails_the_rollout_and_the_writer_reverts():
    s = spec(auto_revert=True)
    new = s.container_hash()
    r = Rollouts()
    starting = [SlotView(0, claim(0, new, rnd=2), False), SlotView(1, claim(1, OLD), True),
                SlotView(2, claim(2, OLD), True)]
    assert r.step("web", s, starting, 0.0, may_revert=True).permitted == ()
    # Late, but not known to fail (its holder's record may be slow to come): no verdict.
    assert r.step("web", s, starting, 31.0, may_revert=True).events == ()
    views = [SlotView(0, claim(0, new, rnd=2), False, failed=True), *starting[1:]]
    assert r.step("web", s, views, 30.0, may_revert=True).revert_to is None
    failed = r.step("web", s, views, 30.5, may_revert=True)
    assert [e.kind for e in failed.events] == ["failed"] and failed.revert_to == OLD and failed.reverting
    # Written once; nothing more is permitted for this version.
    again = r.step("web", s, views, 31.0, may_revert=True)
    assert again.revert_to is None and not again.reverting and again.permitted == ()


def test_only_the_designated_writer_reverts():
    s = spec(auto_revert=True)
    r = Rollouts()
    views = [SlotView(0, claim(0, s.container_hash(), rnd=2), False, True), SlotView(1, claim(1, OLD), True)]
    r.step("web", s, views, 0.0, may_revert=False)
    failed = r.step("web", s, views, 31.0, may_revert=False)
    assert [e.kind for e in failed.events] == ["failed"] and not failed.reverting
    # ... unless the job is still on the failing version a healthy deadline
    # later: the writer may never have seen a rollout (it started after every
    # slot had moved); then an agent that saw it fail writes the revert.
    deadline = s.update.healthy_deadline_s
    assert not r.step("web", s, views, 31.0 + deadline, may_revert=False).reverting
    late = r.step("web", s, views, 31.5 + deadline, may_revert=False)
    assert late.reverting and late.revert_to == OLD
    assert not r.step("web", s, views, 32.0 + deadline, may_revert=False).reverting   # once


def test_canaries_wait_for_a_promote_without_failing_for_lack_of_progress():
    s = spec(canary=1, max_parallel=2)
    new = s.container_hash()
    r = Rollouts()
    views = [SlotView(0, claim(0, new, rnd=2), True), SlotView(1, claim(1, OLD), True),
             SlotView(2, claim(2, OLD), True)]
    r.step("web", s, views, 0.0, may_revert=False)
    waiting = r.step("web", s, views, 10.0, may_revert=False)
    assert waiting.permitted == () and "waiting_promotion" in [e.kind for e in waiting.events]
    late = r.step("web", s, views, 500.0, may_revert=False)
    assert "failed" not in [e.kind for e in late.events]
    auto = spec(canary=1, max_parallel=2, auto_promote=True)
    r2 = Rollouts()
    r2.step("web", auto, views, 0.0, may_revert=False)
    promoted = r2.step("web", auto, views, 10.0, may_revert=False)
    assert promoted.permitted == (1, 2) and "promoted" in [e.kind for e in promoted.events]


def test_a_promote_is_the_same_container_without_the_canary_gate():
    s = spec(canary=2)
    p = promoted_spec(s)
    assert p.container_hash() == s.container_hash() and p.spec_hash() != s.spec_hash()
    assert p.update.canary == 0 and validate(p.to_dict()) == p


def test_no_progress_verdict_while_some_slot_is_unknown_here():
    s = spec()
    new = s.container_hash()
    r = Rollouts()
    blind = [SlotView(0, claim(0, new, rnd=2), False, known=False), SlotView(1, claim(1, OLD), True),
             SlotView(2, claim(2, OLD), True)]
    r.step("web", s, blind, 0.0, may_revert=True)
    assert r.step("web", s, blind, 61.0, may_revert=True).events == ()
    seen = [SlotView(0, claim(0, new, rnd=2), False), *blind[1:]]
    assert [e.kind for e in r.step("web", s, seen, 62.0, may_revert=True).events] == ["failed"]


def test_a_promote_recorded_in_the_job_store_lets_the_rest_follow():
    s = spec(canary=1, max_parallel=2)
    new = s.container_hash()
    views = [SlotView(0, claim(0, new, rnd=2), True), SlotView(1, claim(1, OLD), True),
             SlotView(2, claim(2, OLD), True)]
    r = Rollouts()
    r.step("web", s, views, 0.0, may_revert=False)
    assert r.step("web", s, views, 10.0, may_revert=False).permitted == ()
    step = r.step("web", s, views, 11.0, may_revert=False, promoted=True)
    assert step.permitted == (1, 2) and [e.kind for e in step.events] == ["promoted"]


def test_promoted_of_reads_the_entry_meta_where_there_is_one():
    class Meta:
        promoted = "abc"

    class Entry:
        meta = Meta()

    assert promoted_of(Entry()) == "abc"
    assert promoted_of(object()) == "" and promoted_of(None) == ""


def test_a_healthy_slot_stays_healthy_while_its_holders_record_is_about_other_claims():
    """The holder of slots 0 and 1 moves slot 1: its record (stamped with the
    new claim) may arrive before the claim does, so it reads as about other
    claims for both.  Slot 0, healthy under the same claim, stays healthy
    (it does not use up the budget again); slot 1, not seen running under
    its new claim, does not become healthy on such a record."""
    s = spec(max_parallel=1, min_healthy_s=1)
    new = s.container_hash()
    r = Rollouts()
    c0 = claim(0, new, rnd=2)
    views = [SlotView(0, c0, True), SlotView(1, claim(1, OLD), True), SlotView(2, claim(2, OLD), True)]
    r.step("web", s, views, 0.0, may_revert=False)
    step = r.step("web", s, views, 2.0, may_revert=False)
    assert step.states[0] is S.NEW_HEALTHY and step.permitted == (1,)
    c1 = claim(1, new, rnd=2)
    blurred = [SlotView(0, c0, False, known=False, unverified=True),
               SlotView(1, c1, False, known=False, unverified=True), views[2]]
    step = r.step("web", s, blurred, 2.5, may_revert=False)
    assert step.states[:2] == (S.NEW_HEALTHY, S.NEW_PENDING)
    assert [e.kind for e in step.events] == []               # no second "healthy" for slot 0
    step = r.step("web", s, blurred, 9.0, may_revert=False)
    assert step.states[1] is S.NEW_PENDING                    # never proven running: not healthy
    # A record that does not list it running at all (no word) resets it.
    gone = [SlotView(0, c0, False, known=False), *blurred[1:]]
    assert r.step("web", s, gone, 9.5, may_revert=False).states[0] is S.NEW_PENDING


def test_an_old_copy_stays_serving_while_its_holders_record_is_about_other_claims():
    """The holder of slots 1 and 2 moves slot 1: agents that get the new
    claim before the holder's new record read the record as about other
    claims for slot 2 too.  Slot 2, seen serving under the same claim, still
    serves (taken for down, it would use up the budget and stall the
    rollout); one never seen running on a verified record is down."""
    s = spec(max_parallel=1, min_healthy_s=1)
    new = s.container_hash()
    r = Rollouts()
    views = [SlotView(0, claim(0, new, rnd=2), True), SlotView(1, claim(1, OLD), True),
             SlotView(2, claim(2, OLD), True), SlotView(3, claim(3, OLD), True)]
    r.step("web", s, views, 0.0, may_revert=False)
    assert r.step("web", s, views, 2.0, may_revert=False).permitted == (1,)
    blurred = [views[0], SlotView(1, claim(1, new, rnd=2), False, known=False, unverified=True),
               SlotView(2, claim(2, OLD), False, known=False, unverified=True), views[3]]
    step = r.step("web", s, blurred, 2.1, may_revert=False)
    assert step.states[1:] == (S.NEW_PENDING, S.OLD_SERVING, S.OLD_SERVING)
    assert step.permitted == ()                                 # slot 1 in flight uses the budget
    # An agent that first sees the rollout through such a record has no
    # word that slot 2 runs: down (it uses up the budget; safe).
    fresh = Rollouts()
    assert fresh.step("web", s, blurred, 2.1, may_revert=False).states[2] is S.OLD_DOWN
    # A record that does not list it running ends it.
    stopped = [*blurred[:2], SlotView(2, claim(2, OLD), False), views[3]]
    assert r.step("web", s, stopped, 2.2, may_revert=False).states[2] is S.OLD_DOWN
    assert r.step("web", s, blurred, 2.3, may_revert=False).states[2] is S.OLD_DOWN


def test_a_failed_revert_is_not_reverted_again():
    """Its way back would be the version that failed: it stops, for an operator."""
    s = spec(auto_revert=True)
    r = Rollouts()
    views = [SlotView(0, claim(0, s.container_hash(), rnd=2), False, True), SlotView(1, claim(1, OLD), True)]
    r.step("web", s, views, 0.0, may_revert=True, revertible=False)
    failed = r.step("web", s, views, 31.0, may_revert=True, revertible=False)
    assert [e.kind for e in failed.events] == ["failed"] and not failed.reverting
    assert not r.step("web", s, views, 500.0, may_revert=True, revertible=False).reverting
    # ... but it does not stop halfway: a slot still on the version it left
    # is replaced once it fails (a plain rollout's verdict stops it there).
    views[1] = SlotView(1, claim(1, OLD), False, True)
    assert r.step("web", s, views, 501.0, may_revert=True, revertible=False).permitted == (1,)
    plain = Rollouts()
    plain.step("web", s, views[:1] + [SlotView(1, claim(1, OLD), True)], 0.0, may_revert=False)
    assert plain.step("web", s, views, 31.0, may_revert=False).permitted == ()

    class Meta:
        def __init__(self, why):
            self.why = why

    class Entry:
        def __init__(self, why):
            self.meta = Meta(why)

    assert is_revert(Entry("revert")) and not is_revert(Entry("submit")) and not is_revert(None)


def test_the_moment_a_running_slot_turns_healthy_is_a_deadline():
    """A pass at that moment counts it healthy (and lets the next slot go),
    not the next periodic pass."""
    s = spec()
    new = s.container_hash()
    r = Rollouts()
    slots = {i: claim(i, OLD) for i in range(3)}

    def step(now):
        return r.step("web", s, [SlotView(i, c, True) for i, c in sorted(slots.items())], now, may_revert=False)

    step(0.0)
    assert r.next_healthy_at() is None          # nothing new runs yet
    slots[0] = claim(0, new, rnd=2)
    step(1.5)                                   # first seen running at 1.5
    assert r.next_healthy_at() == 11.5          # + min_healthy_s 10
    assert step(11.5).permitted == (1,)         # a pass at that moment moves on
    assert r.next_healthy_at() is None


def test_a_slot_lost_during_a_rollout_goes_back_on_the_version_it_served():
    s = spec()
    new = s.container_hash()
    r = Rollouts()
    assert r.way_back("web", claim(1, OLD)) is None              # no rollout: the job's spec
    views = [SlotView(0, claim(0, new, rnd=2), False), SlotView(1, claim(1, OLD), True),
             SlotView(2, claim(2, "older"), False)]
    r.step("web", s, views, 0.0, may_revert=False)
    assert r.way_back("web", claim(1, OLD, node="dead")) == OLD  # seen serving: back on it
    assert r.way_back("web", claim(2, "older")) is None          # never seen serving here
    assert r.way_back("web", claim(0, new)) is None              # already on the target
    assert r.way_back("web", None) is None                       # released, or never placed
    assert r.way_back("other", claim(1, OLD)) is None
    # Still so once the slot is gone from the views (its holder died), and
    # after the rollout failed: the old version keeps its count.
    r.step("web", s, [views[0], SlotView(1, None, False), views[2]], 1.0, may_revert=False)
    assert r.way_back("web", claim(1, OLD)) == OLD


def test_a_revert_places_every_lost_slot_on_its_own_target():
    """A revert's older versions are the one that failed: never brought back."""
    s = spec()
    r = Rollouts()
    views = [SlotView(0, claim(0, s.container_hash(), rnd=2), True), SlotView(1, claim(1, OLD), True)]
    r.step("web", s, views, 0.0, may_revert=False, revertible=False)
    assert r.way_back("web", claim(1, OLD)) is None
