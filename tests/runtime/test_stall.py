"""node/runtime/stall.py: a slow engine is not a dead engine.

Calls are replayed as (time, answered?) with the time each was made; the
rule must mark the runtime unhealthy only after a sustained stall, and
healthy again only after steady answers.
"""

from __future__ import annotations

import pytest

from node.runtime.stall import (
    MAX_SCALE,
    EngineHealth,
    StallRules,
    call_timeout_s,
    engine_answered,
    engine_failed,
    ewma,
)

RULES = StallRules(failures_needed=3, unhealthy_after_s=30.0, healthy_after_s=5.0)


def replay(calls, h=None, rules=RULES):
    """calls: (now, issued_at, answered).  Returns (health, flips)."""
    h, flips = h or EngineHealth(), []
    for now, issued_at, ok in calls:
        if ok:
            h, flipped = engine_answered(h, now=now, rules=rules)
        else:
            h, flipped = engine_failed(h, f"call at {issued_at:g}", now=now, issued_at=issued_at, rules=rules)
        if flipped:
            flips.append((now, h.healthy))
    return h, flips


def timeouts(start, end, every_s=10.0):
    """Calls that each time out after 10 s, one every `every_s` from `start`."""
    t, out = start, []
    while t + 10.0 <= end:
        out.append((t + 10.0, t, False))
        t += every_s
    return out


def test_a_stalled_then_slow_engine_is_not_marked_unhealthy():
    # 20 s of timeouts (the load peak), then answers that take 15 s each.
    calls = timeouts(0.0, 25.0, every_s=5.0) + [(40.0 + 15 * k, 25.0 + 15 * k, True) for k in range(6)]
    calls.sort()
    h, flips = replay(calls)
    assert flips == [] and h.healthy


def test_a_sustained_stall_is_marked_unhealthy_once():
    calls = timeouts(0.0, 60.0, every_s=5.0)
    h, flips = replay(calls)
    assert not h.healthy and "not answering" in h.reason
    assert flips == [(30.0, False)]       # three failures, and 30 s since the first call was made


def test_three_quick_refusals_are_not_a_sustained_stall():
    h, flips = replay([(1.0, 1.0, False), (1.1, 1.1, False), (1.2, 1.2, False)])
    assert h.healthy and flips == [] and h.failures_in_row == 3


def test_an_answer_between_failures_ends_the_stall():
    calls = timeouts(0.0, 28.0, every_s=5.0) + [(28.0, 27.0, True)] + timeouts(30.0, 55.0, every_s=5.0)
    h, flips = replay(sorted(calls))
    assert h.healthy and flips == []


def test_an_unhealthy_engine_that_answers_now_and_then_does_not_flap():
    h, _ = replay(timeouts(0.0, 60.0, every_s=5.0))
    assert not h.healthy
    # one answer in three, for a minute: stays unhealthy, no flip at all
    calls = []
    for k in range(20):
        t = 60.0 + 3 * k
        calls.append((t, t - 1, k % 3 == 0))
    h2, flips = replay(calls, h)
    assert not h2.healthy and flips == []
    # then steady answers: healthy once they have lasted healthy_after_s
    h3, flips = replay([(130.0 + k, 129.5 + k, True) for k in range(8)], h2)
    assert h3.healthy and flips == [(135.0, True)]


def test_a_stall_counts_from_the_last_answer_not_from_an_old_call():
    # A call made at 0 times out at 60, but the engine answered at 50: 10 s of stall.
    h, _ = replay([(50.0, 49.0, True)])
    h, flips = replay([(60.0, 0.0, False), (61.0, 51.0, False), (62.0, 52.0, False)], h)
    assert h.healthy and flips == [] and h.stalled_since == 50.0


def test_timeouts_grow_with_the_kind_of_call_the_queue_and_the_engines_latency():
    base = 10.0
    assert call_timeout_s("ps", base, in_flight=1, concurrency=8, recent_s=None) == 10.0
    assert call_timeout_s("start", base, in_flight=1, concurrency=8, recent_s=None) == 20.0
    # 17 calls in flight on 8 threads: this one waits behind two rounds
    assert call_timeout_s("ps", base, in_flight=17, concurrency=8, recent_s=None) == 30.0
    # the engine answers starts in 12 s lately: wait 4x that
    assert call_timeout_s("start", base, in_flight=1, concurrency=8, recent_s=12.0) == 48.0
    # never more than MAX_SCALE x the base, never less than the base
    assert call_timeout_s("start", base, in_flight=100, concurrency=8, recent_s=None) == MAX_SCALE * base
    assert call_timeout_s("ps", base, in_flight=1, concurrency=8, recent_s=0.01) == base


@pytest.mark.parametrize("samples, expect", [([1.0], 1.0), ([1.0, 11.0], 4.0)])
def test_recent_latency_follows_the_answers(samples, expect):
    r = None
    for x in samples:
        r = ewma(r, x)
    assert r == pytest.approx(expect)
