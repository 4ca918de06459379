"""auction.retry: when a coordinator tries an unplaced slot again."""

from __future__ import annotations

from auction.retry import RESAMPLES, Retries


def test_a_round_that_called_every_feasible_member_backs_off_doubling():
    r = Retries(0.5, 2.0)
    r.failed("j/0", 10.0, sampled=False)
    assert r.waiting("j/0", 10.4) and not r.waiting("j/0", 10.5)
    r.failed("j/0", 10.5, sampled=False)
    assert r.waiting("j/0", 11.4) and not r.waiting("j/0", 11.5)
    r.failed("j/0", 11.5, sampled=False)
    r.failed("j/0", 13.5, sampled=False)
    assert not r.waiting("j/0", 15.5)  # capped at max_backoff_s
    assert not r.resample_due


def test_a_round_that_failed_by_its_draw_is_retried_at_once_a_few_times_then_backs_off():
    r = Retries(0.5, 30.0)
    for _ in range(RESAMPLES):
        r.opened(["a:1"])
        assert r.closed("a:1")
        r.failed("j/0", 10.0, sampled=True)
        assert r.resample_due and not r.waiting("j/0", 10.0)
        r.resample_due = False
    r.failed("j/0", 10.0, sampled=True)
    assert not r.resample_due and r.waiting("j/0", 10.4)


def test_an_award_resets_both():
    r = Retries(0.5, 30.0)
    for _ in range(RESAMPLES + 1):
        r.failed("j/0", 10.0, sampled=True)
    r.placed("j/0")
    r.failed("j/0", 20.0, sampled=True)
    assert r.resample_due and not r.waiting("j/0", 20.0)


def test_only_rounds_opened_as_sampled_count_as_sampled_and_once():
    r = Retries(0.5, 30.0)
    r.opened(["a:1"])
    assert not r.closed("a:2")
    assert r.closed("a:1") and not r.closed("a:1")


def test_a_round_declined_for_room_is_retried_at_once_at_any_size():
    # A node's room may be held by its reservations for other rounds open
    # at once; they close within milliseconds (auction.retry).
    r = Retries(0.5, 30.0)
    assert r.closed("a:3", room_declined=True)
    assert not r.closed("a:4", room_declined=False)
