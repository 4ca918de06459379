"""When a node publishes its status record (node.core.publish): a replica
that turned running or failed goes out within status_slot_min_interval_s,
other changes within status_min_interval_s."""

from __future__ import annotations

from node.core.config import ClusterConfig
from node.core.publish import PublishSchedule
from node.core.status import RuntimeSummary, listing_moved, slots_moved

CFG = ClusterConfig(status_min_interval_s=1.0, status_slot_min_interval_s=0.2)


def test_an_urgent_change_waits_only_the_short_interval():
    when = PublishSchedule(CFG)
    assert when.ask(0.0, False)                 # the first one goes at once
    assert not when.ask(0.05, False)            # an allocation change: waits for 1.0
    assert when.status_due == 1.0
    assert not when.ask(0.1, False, urgent=True)
    assert when.status_due == 0.2               # a slot that turned running: 0.2
    # The deadline's re-ask (without the flag) still publishes at 0.2.
    when.status_due = None
    assert when.ask(0.2, False)
    assert not when.ask(0.3, False, urgent=True) and when.status_due == 0.4


def test_a_plain_change_still_waits_the_long_interval():
    when = PublishSchedule(CFG)
    assert when.ask(0.0, False)
    assert not when.ask(0.5, False) and when.status_due == 1.0
    when.status_due = None
    assert not when.ask(0.9, False)
    assert when.ask(1.0, False)


def test_which_runtime_changes_are_urgent():
    starting = RuntimeSummary.from_states({"web/0": ("starting", ""), "web/1": ("running", "")})
    running = RuntimeSummary.from_states({"web/0": ("running", ""), "web/1": ("running", "")})
    failed = RuntimeSummary.from_states({"web/0": ("failed", "exited 1"), "web/1": ("running", "")})
    assert slots_moved(starting, running)       # web/0 turned running
    assert slots_moved(starting, failed)        # web/0 failed
    assert not slots_moved(running, starting)   # running -> starting: nobody waits on it
    assert not slots_moved(running, running)
    assert slots_moved(None, running) and not slots_moved(running, None)



def test_which_runtime_changes_move_the_catalogs():
    # Every catalog lists exactly the running slots: a change there is
    # published twice (repeat), whichever way it goes.
    starting = RuntimeSummary.from_states({"web/0": ("starting", ""), "web/1": ("running", "")})
    running = RuntimeSummary.from_states({"web/0": ("running", ""), "web/1": ("running", "")})
    failed = RuntimeSummary.from_states({"web/0": ("failed", "unhealthy"), "web/1": ("running", "")})
    exited = RuntimeSummary.from_states({"web/0": ("exited", "exit 1"), "web/1": ("running", "")})
    assert listing_moved(starting, running) and listing_moved(running, failed)   # up, unhealthy
    assert listing_moved(failed, running) and listing_moved(running, starting)   # healthy again, restarting
    assert not listing_moved(starting, failed) and not listing_moved(failed, exited)  # web/0 never listed
    assert listing_moved(None, running) and listing_moved(running, None) and not listing_moved(None, RuntimeSummary())


def test_a_change_for_a_rollout_goes_out_again_status_repeat_s_later():
    """Gossip can miss a member with one record; a rollout waits on it, so
    such a change is published a second time (a fresh version), once."""
    when = PublishSchedule(CFG)
    assert when.ask(0.0, False)
    assert not when.ask(0.1, False, urgent=True, repeat=True) and when.status_due == 0.2
    when.status_due = None
    assert when.ask(0.2, False)                 # the change goes out ...
    assert when.status_due == 0.2 + CFG.status_repeat_s
    when.status_due = None
    assert when.ask(0.7, False)                 # ... and again
    assert when.status_due is None              # once
    # A change for no rollout is published once.
    assert when.ask(1.0, False, urgent=True) and when.status_due is None
