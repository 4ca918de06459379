"""The agent's test-only clock fault (chaos testing): a jump and a rate, read
only with the fault hook on, that move the agent's timers and wall clock together."""

from __future__ import annotations

import contextlib
import time

import httpx
import pytest
import trio
from agentproc import running_agent

from node.agent import fault_clock as fc
from node.agent.config import AgentConfig

HOOK = AgentConfig(enable_fault_hook=True)


def test_the_offset_and_rate_need_the_fault_hook_and_a_sane_value(monkeypatch, caplog):
    monkeypatch.setenv(fc.OFFSET_ENV, "1.5")
    monkeypatch.setenv(fc.RATE_ENV, "1.05")
    assert fc.fault_clock_offset_s(HOOK) == 1.5 and fc.fault_clock_rate(HOOK) == 1.05
    # a production agent ignores both
    assert fc.fault_clock_offset_s(AgentConfig()) == 0.0 and fc.fault_clock_rate(AgentConfig()) == 1.0
    assert fc.fault_clock(AgentConfig()) is None
    clock = fc.fault_clock(HOOK)
    assert isinstance(clock, fc.FaultClock) and (clock.rate, clock.offset_s) == (1.05, 1.5)
    monkeypatch.setenv(fc.OFFSET_ENV, "-2")  # a clock behind (a slow one, restarted later)
    assert fc.fault_clock_offset_s(HOOK) == -2.0
    for bad in ("soon", "1e9", "-4000", "nan", "inf"):
        monkeypatch.setenv(fc.OFFSET_ENV, bad)
        assert fc.fault_clock_offset_s(HOOK) == 0.0
    for bad in ("fast", "0", "-1.05", "0.4", "2.5", "nan"):
        monkeypatch.setenv(fc.RATE_ENV, bad)
        assert fc.fault_clock_rate(HOOK) == 1.0
    assert "SHOAL_FAULT_CLOCK_RATE='2.5' ignored" in caplog.text
    monkeypatch.setenv(fc.OFFSET_ENV, "0")
    monkeypatch.setenv(fc.RATE_ENV, "1")
    assert fc.fault_clock(HOOK) is None  # nothing to change: trio's own clock


def test_the_clock_scales_time_and_sleeps(monkeypatch):
    machine = [100.0]
    monkeypatch.setattr(fc.time, "perf_counter", lambda: machine[0])
    clock = fc.FaultClock(rate=1.05, offset_s=2.0)
    clock.start_clock()
    t0 = clock.current_time()
    machine[0] += 10.0
    assert clock.current_time() - t0 == pytest.approx(10.5)
    assert clock.skew_s() == pytest.approx(2.5)  # the jump plus 5 % of 10 s
    # 2.1 s on this clock is 2 s of the machine's; a deadline passed is no sleep
    assert clock.deadline_to_sleep_time(clock.current_time() + 2.1) == pytest.approx(2.0)
    assert clock.deadline_to_sleep_time(clock.current_time() - 1.0) == 0.0
    slow = fc.FaultClock(rate=0.95)
    slow.start_clock()
    machine[0] += 20.0
    assert slow.skew_s() == pytest.approx(-1.0)


def test_trio_timers_and_the_wall_clock_run_at_the_rate():
    async def main():
        began = time.monotonic()
        await trio.sleep(1.0)
        return time.monotonic() - began, fc.skew_s(), fc.wall_ms() - time.time_ns() // 1_000_000

    took_s, skew_s, ahead_ms = trio.run(main, clock=fc.FaultClock(rate=2.0, offset_s=3.0))
    assert 0.45 <= took_s < 0.95  # a second of a clock twice as fast (trio's own: >= 1 s)
    assert 3.0 + took_s * 0.9 <= skew_s <= 3.0 + took_s * 1.1 + 0.05
    assert abs(ahead_ms - skew_s * 1000) < 50
    assert fc.skew_s() == 0.0  # outside trio: the machine's clock
    assert trio.run(_skew) == 0.0  # trio's own clock: no skew


async def _skew():
    return fc.skew_s()


def _clock(api: str) -> tuple[dict, float, float]:
    before = time.time()
    me = httpx.get(f"{api}/v1/agent/self", timeout=5).json()
    return me["clock"], before, time.time()


def _write(api: str, n: int) -> tuple[float, float, float]:
    """(the write's stamp in s, the wall times around the request)"""
    before = time.time()
    r = httpx.post(f"{api}/v1/jobs", json={"name": f"w{n}", "image": "busybox", "replicas": 0}, timeout=5)
    after = time.time()
    assert r.status_code in (200, 201), r.text
    return r.json()["version"][0] / 1000, before, after


def test_an_agent_with_the_hook_runs_its_clock_ahead_and_fast(tmp_path):
    env = {fc.OFFSET_ENV: "2", fc.RATE_ENV: "1.05"}
    with contextlib.ExitStack() as stack:
        fast = stack.enter_context(running_agent(tmp_path, "fast", "", "--enable-fault-hook", env=env))
        plain = stack.enter_context(running_agent(tmp_path, "plain", "", env=env))  # no hook: ignored
        clock, _, _ = _clock(fast["api"])
        assert clock["rate"] == 1.05 and clock["skew_s"] >= 2.0
        s1, b1, a1 = _write(fast["api"], 1)
        p1, pb1, pa1 = _write(plain["api"], 1)
        time.sleep(6.0)  # real time for the clock to drift: 0.3 s at 5 %
        s2, b2, a2 = _write(fast["api"], 2)
        p2, pb2, pa2 = _write(plain["api"], 2)
        clock2, _, _ = _clock(plain["api"])
    # The stamps of its writes (its HLC, on trio's clock) are 2 s ahead and
    # gain 5 % of the real time between them; a stamp was taken between the
    # wall times around its request.
    assert 2.0 <= s1 - b1 < 2.0 + 0.05 * 30 + 0.1  # at most 30 s since start
    # (a clock at rate 1 gains none: gained_hi would be only the requests' time)
    gained_lo, gained_hi = (s2 - a2) - (s1 - b1), (s2 - b2) - (s1 - a1)
    assert gained_lo <= 0.05 * (a2 - b1) + 0.02 and gained_hi >= 0.05 * (b2 - a1) - 0.02
    # the agent without the hook keeps the machine's clock
    assert clock2 == {"wall_ms": clock2["wall_ms"], "skew_s": 0.0, "rate": 1.0}
    for p, b, a in ((p1, pb1, pa1), (p2, pb2, pa2)):
        assert b - 0.01 <= p <= a + 0.01
