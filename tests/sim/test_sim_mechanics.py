"""The simulator's own plumbing, checked with a trivial stand-in core.

Each test drives `EchoCore` (tests/sim/fakecore.py) through the world and
asserts what the world must have done: delays, ordering, pause queues, crash
and restart, clock drift, partitions, streams and their timeouts.
"""

from __future__ import annotations

import pytest

from fakecore import EchoCore
from node.sim import NetworkConfig, SimError, World, faults
from node.sim.world import CRASHED, PAUSED, RUNNING


def make(seed=1, n=2, **net):
    w = World(seed, n, network=NetworkConfig(**net), core_factory=EchoCore)
    return w


def ticks(core):
    return [d.decode() for _, _, d in core.received]


def test_datagram_delay_and_ticks():
    w = make(base_delay_s=0.01, jitter_s=0.0)
    w.start_node(0)
    w.start_node(1, [0])
    w.run_until(3.5)
    got = w.core(0).received
    assert [d for _, _, d in got] == [b"tick:node-1:1", b"tick:node-1:2", b"tick:node-1:3"]
    assert [round(t, 6) for t, _, _ in got] == [1.01, 2.01, 3.01]
    assert all(src == w.nodes[1].addr for _, src, _ in got)
    assert w.stats["datagrams_delivered"] == 3


def test_jitter_reorders_but_is_deterministic():
    def run(seed):
        w = make(seed, base_delay_s=0.0, jitter_s=2.0)
        w.start_node(0)
        w.start_node(1, [0])
        w.run_until(30)
        return ticks(w.core(0)), w.trace_digest()

    a, da = run(5)
    b, db = run(5)
    c, dc = run(6)
    assert a == b and da == db
    assert da != dc
    assert a != sorted(a, key=lambda s: int(s.rsplit(":", 1)[1])), "2 s jitter should reorder 1 s ticks"


def test_loss_is_seeded():
    w = make(3, loss=0.5)
    w.start_node(0)
    w.start_node(1, [0])
    w.run_until(1000.5)
    n = len(w.core(0).received)
    assert 400 < n < 600, n
    assert w.stats["datagrams_lost"] == 1000 - n


def test_pause_queues_inputs_and_fires_timers_late():
    w = make(base_delay_s=0.01, jitter_s=0.0)
    w.start_node(0)
    w.start_node(1, [0])
    w.core(0).peers = [w.nodes[1].addr]  # node-0 ticks to node-1 as well
    faults.pause(w, 0, 3.0, at=2.5)
    w.run_until(5.4)
    c0 = w.core(0)
    assert w.nodes[0].status is PAUSED
    assert ticks(c0) == ["tick:node-1:1", "tick:node-1:2"]
    assert all(t < 2.5 for t in c0.timer_log)
    w.run_until(5.6)
    # Queued datagrams arrive at resume time, in order, before overdue timers.
    assert ticks(c0)[2:] == ["tick:node-1:3", "tick:node-1:4", "tick:node-1:5"]
    assert [t for t, _, _ in c0.received[2:]] == [5.5, 5.5, 5.5]
    assert c0.timer_log[-1] == 5.5
    # node-0's ticks 3, 4, 5 all went out at 5.5 (late), so node-1 gets them together.
    late = [t for t, _, d in w.core(1).received if d.startswith(b"tick:node-0:") and int(d.split(b":")[2]) >= 3]
    assert late == [pytest.approx(5.51)] * 3


def test_crash_drops_and_restart_is_a_fresh_core():
    w = make(base_delay_s=0.01, jitter_s=0.0)
    w.start_node(0)
    w.start_node(1, [0])
    w.run_until(2.5)
    old = w.core(0)
    faults.crash(w, 0)
    w.run_until(4.5)
    assert w.nodes[0].status is CRASHED
    assert w.stats["datagrams_to_down_node"] == 2
    faults.restart(w, 0, seeds=[1])
    assert w.core(0) is not old and w.nodes[0].status is RUNNING
    w.run_until(6.5)
    assert ticks(w.core(0)) == ["tick:node-1:5", "tick:node-1:6"]
    assert ticks(old) == ["tick:node-1:1", "tick:node-1:2"]
    kinds = [e[2] for e in w.trace]
    assert "crash" in kinds and "restart" in kinds


def test_clock_drift_scales_timers_and_local_time():
    w = make(base_delay_s=0.0, jitter_s=0.0)
    w.start_node(0)
    w.start_node(1, [0])
    faults.drift(w, 1, 2.0)  # node-1's clock runs twice as fast
    w.run_until(2.1)
    # Ticks every 1 s of node-1's time = every 0.5 s of world time.
    assert [t for t, _, _ in w.core(0).received] == [0.5, 1.0, 1.5, 2.0]
    assert w.core(1).timer_log == [1.0, 2.0, 3.0, 4.0]
    faults.drift(w, 1, 0.5)
    w.run_until(6.1)
    # Node-1 local is 4.2 at t=2.1; next tick at local 5.0 -> world 2.1 + 0.8/0.5 = 3.7
    assert [round(t, 9) for t, _, _ in w.core(0).received[4:]] == [3.7, 5.7]


def test_drift_with_awkward_rates_never_wakes_early():
    w = make(base_delay_s=0.0, jitter_s=0.0)
    w.start_node(0)
    w.start_node(1, [0])
    faults.drift(w, 1, 1.0 + 1e-7 * 3)
    w.run_until(500)
    assert len(w.core(0).received) == 500
    assert all(t >= k + 1 for k, t in enumerate(w.core(1).timer_log))


def test_partition_and_heal():
    w = make(base_delay_s=0.01, jitter_s=0.0)
    w.start_node(0)
    w.start_node(1, [0])
    faults.partition(w, [[0], [1]], at=1.5, heal_after=2.0)
    w.run_until(5.5)
    assert ticks(w.core(0)) == ["tick:node-1:1", "tick:node-1:4", "tick:node-1:5"]


def _open(w, src, dst, data, expect_reply, timeout):
    core = w.core(src)
    sid = core.open(w.nodes[dst].addr, data, expect_reply, timeout, w.now)
    w._settle(w.nodes[src])
    return sid


def test_streams_reply_fail_and_timeout():
    w = make(base_delay_s=0.01, jitter_s=0.0)
    w.start_node(0)
    w.start_node(1)
    sid = _open(w, 0, 1, b"ask1", True, 5.0)
    w.run_until(1.0)
    assert w.core(1).incoming == [(pytest.approx(0.03), w.nodes[0].addr, b"ask1")]
    assert w.core(0).stream_log == [(pytest.approx(0.04), sid, b"re:ask1")]
    # A message that gets no reply: failure reported at the timeout.
    sid2 = _open(w, 0, 1, b"tell", True, 5.0)
    # No reply expected: nothing is reported back.
    _open(w, 0, 1, b"fire-and-forget", False, 5.0)
    w.run_until(7.0)
    assert w.core(0).stream_log[1:] == [(6.0, sid2, None)]
    # Partition: failure at the timeout.
    w.network.partition([[0], [1]])
    sid3 = _open(w, 0, 1, b"ask3", True, 2.0)
    w.run_until(10.0)
    assert w.core(0).stream_log[2:] == [(9.0, sid3, None)]
    w.network.heal()
    # Target paused past the timeout: the source gives up; the target still
    # reads the data on resume, but its reply goes nowhere.
    faults.pause(w, 1, 5.0)
    sid4 = _open(w, 0, 1, b"ask4", True, 2.0)
    w.run_until(20.0)
    assert w.core(0).stream_log[3:] == [(12.0, sid4, None)]
    assert w.core(1).incoming[-1] == (15.0, w.nodes[0].addr, b"ask4")
    # Source crashed before the reply: nothing reaches the restarted core.
    _open(w, 0, 1, b"ask5", True, 2.0)
    w.run_until(20.01)
    faults.crash(w, 0)
    faults.restart(w, 0, seeds=[])
    w.run_until(30.0)
    assert w.core(0).stream_log == []


def test_lost_stream_segments_are_resent_after_tcp_timeouts():
    # Streams are reliable but pay for loss the way TCP does: a lost SYN or
    # SYN-ACK costs 1 s, lost data 0.2 s, doubling on repeats; datagrams
    # are simply dropped.  So at 50 % loss most streams arrive late, none
    # is lost, and each delay is the handshake plus a sum of timeouts.
    w = make(base_delay_s=0.01, jitter_s=0.0, loss=0.3)
    w.start_node(0)
    w.start_node(1)
    for k in range(40):
        _open(w, 0, 1, b"ask%d" % k, False, 600.0)
    w.run_until(1200.0)
    delays = sorted(round(t - 0.03, 6) for t, _, _ in w.core(1).incoming)
    assert len(delays) == 40
    late = [d for d in delays if d > 0]
    assert len(late) >= 20
    # every delay is a sum of the timeouts (1, 2, 4 ... for the two handshake
    # segments; 0.2, 0.4 ... for the data): a multiple of 0.2 s
    assert all(abs(d / 0.2 - round(d / 0.2)) < 1e-6 for d in delays), delays


class StuckCore(EchoCore):
    def next_deadline(self):
        return 1.0  # never advances


def test_livelock_is_reported():
    w = World(1, 1, core_factory=StuckCore, livelock_spins=100)
    w.start_node(0)
    with pytest.raises(SimError, match="livelock"):
        w.run_until(2.0)


def test_staggered_bootstrap_and_actions_are_ordered():
    w = make(n=4)
    w.bootstrap(stagger_s=0.5)
    assert [nd.status for nd in w.nodes] == [RUNNING, "new", "new", "new"]
    w.run_until(1.0)
    assert [nd.status for nd in w.nodes] == [RUNNING, RUNNING, RUNNING, "new"]
    w.run_until(1.5)
    starts = [(t, i) for t, i, k, _, _ in w.trace if k == "start"]
    assert starts == [(0.0, 0), (0.5, 1), (1.0, 2), (1.5, 3)]


def test_paused_socket_buffer_overflows():
    w = World(1, 2, network=NetworkConfig(base_delay_s=0.01, jitter_s=0.0), core_factory=EchoCore,
              socket_buffer_bytes=30)
    w.start_node(0)
    w.start_node(1, [0])
    faults.pause(w, 0, 10.0, at=0.5)
    w.run_until(11.0)
    # Ticks 1..10 arrive while paused; b"tick:node-1:k" is 13-14 bytes, so
    # two fit in 30 bytes and the other eight are dropped.
    assert ticks(w.core(0)) == ["tick:node-1:1", "tick:node-1:2"]
    assert w.stats["inbox_overflow"] == 8
