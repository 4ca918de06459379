"""A slow engine is not a dead engine: call timeouts and the stall rule.

How this works
--------------
Under load (a busy machine, many containers starting at once) `docker
start` can take tens of seconds.  A runtime that calls the engine
"not answering" after a fixed 10 s, and unhealthy after three such calls,
moves work off nodes that are only slow.  Two rules, both pure (the driver,
node/runtime/engine.py, hands in `now` and what it measured):

Timeouts scale with what the engine is doing (`call_timeout_s`):

    timeout = base_s * weight(what) * (1 + in_flight / concurrency)
    raised to LATENCY_MULT * the recent latency of that kind of call,
    capped at MAX_SCALE * base_s

`weight`: calls that make or start containers (create, start, restart)
take longer than listings; `in_flight / concurrency`: a call waits its turn
behind the others for a worker thread, and that wait counts against its
timeout; the recent latency (`ewma` of the answered calls of that kind,
late answers included) follows how loaded the engine is now.

The engine is unhealthy only after a sustained stall, with hysteresis
(`engine_failed` / `engine_answered`, thresholds in `StallRules`):

  - a call the engine did not answer (timeout, refused) is a failure; the
    stall began when the first failing call since the last answer was made;
  - healthy -> unhealthy once `failures_needed` failures in a row span at
    least `unhealthy_after_s` of stall with no answer at all between them;
    any answer while healthy ends the stall (a slow answer is an answer: a
    stalled-then-slow engine never turns unhealthy);
  - unhealthy -> healthy only once the engine has answered steadily for
    `healthy_after_s` (an unbroken run of answers; a failure starts the run
    over), so an engine that answers one call in three does not flap.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

# How much longer than `base_s` each kind of call may take (others: 1).
CALL_WEIGHT = {"create": 2.0, "start": 2.0, "restart": 2.0, "rm": 1.5, "stop": 1.5}
# A call may take this many times the recent latency of its kind ...
LATENCY_MULT = 4.0
# ... but never more than this many times the configured base timeout.
MAX_SCALE = 6.0
# Weight of the newest sample in the recent latency.
EWMA_ALPHA = 0.3


def call_timeout_s(what: str, base_s: float, *, in_flight: int, concurrency: int,
                   recent_s: float | None) -> float:
    """How long to wait for one call of kind `what` (see the module doc).
    `in_flight`: calls in progress or waiting for a worker, this one included."""
    load = 1.0 + max(0, in_flight - 1) / max(1, concurrency)
    t = base_s * CALL_WEIGHT.get(what, 1.0) * load
    if recent_s is not None:
        t = max(t, LATENCY_MULT * recent_s)
    return min(max(t, base_s), MAX_SCALE * base_s)


def ewma(prev_s: float | None, sample_s: float) -> float:
    """The recent latency after one more answered call."""
    return sample_s if prev_s is None else prev_s + EWMA_ALPHA * (sample_s - prev_s)


@dataclass(frozen=True, slots=True)
class StallRules:
    failures_needed: int = 3          # unanswered calls in a row ...
    unhealthy_after_s: float = 30.0   # ... spanning at least this much stall -> unhealthy
    healthy_after_s: float = 5.0      # answered steadily this long -> healthy again


@dataclass(frozen=True, slots=True)
class EngineHealth:
    healthy: bool = True
    reason: str = ""
    failures_in_row: int = 0
    stalled_since: float | None = None      # when the first failing call since the last answer was made
    last_answer_at: float | None = None
    answering_since: float | None = None    # while unhealthy: start of the current run of answers


def engine_failed(h: EngineHealth, reason: str, *, now: float, issued_at: float,
                  rules: StallRules) -> tuple[EngineHealth, bool]:
    """A call made at `issued_at` that the engine did not answer.  Returns the
    new health and whether the runtime just turned unhealthy."""
    n = h.failures_in_row + 1
    since = h.stalled_since
    if since is None:
        # The engine answered something after this call was made: the stall began then.
        since = issued_at if h.last_answer_at is None else max(issued_at, h.last_answer_at)
    text = f"docker engine not answering: {reason}"
    if not h.healthy:
        return replace(h, reason=text, failures_in_row=n, stalled_since=since, answering_since=None), False
    if n >= rules.failures_needed and now - since >= rules.unhealthy_after_s:
        stalled = now - since
        return replace(h, healthy=False, reason=f"{text} (no answer for {stalled:.0f} s)", failures_in_row=n,
                       stalled_since=since, answering_since=None), True
    return replace(h, failures_in_row=n, stalled_since=since), False


def engine_answered(h: EngineHealth, *, now: float, rules: StallRules) -> tuple[EngineHealth, bool]:
    """A call the engine answered (even with an error, even late).  Returns the
    new health and whether the runtime just turned healthy again."""
    if h.healthy:
        if h.failures_in_row == 0 and h.stalled_since is None:
            return (h if h.last_answer_at == now else replace(h, last_answer_at=now)), False
        return EngineHealth(last_answer_at=now), False
    run_since = now if h.answering_since is None else h.answering_since
    if now - run_since >= rules.healthy_after_s:
        return EngineHealth(last_answer_at=now), True
    return replace(h, failures_in_row=0, stalled_since=None, last_answer_at=now, answering_since=run_since), False
