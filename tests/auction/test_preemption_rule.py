"""auction.preemption: which replicas a global job's slot takes the room of."""

from __future__ import annotations

from auction.preemption import Candidate, may_preempt, pick_victims
from auction.resources import Resources

MiB = 1 << 20


def r(cpu_millis: int, mib: int = 0) -> Resources:
    return Resources(cpu_millis, mib * MiB)


def test_only_replicas_ten_or_more_below_may_be_preempted():
    assert may_preempt(80, 70) and may_preempt(60, 1)
    assert not may_preempt(80, 71) and not may_preempt(50, 50)


def test_the_fewest_lowest_priority_replicas_that_make_room():
    cands = [Candidate("a/0", 40, r(500)), Candidate("b/0", 10, r(200)), Candidate("b/1", 10, r(300)),
             Candidate("c/0", 75, r(900))]                                   # c: too close to 80
    assert [c.slot for c in pick_victims(r(400), r(100), 80, cands)] == ["b/1"]          # lowest priority, larger
    assert sorted(c.slot for c in pick_victims(r(500), r(100), 80, cands)) == ["b/0", "b/1"]
    # b alone is not enough: a goes too, and b/0 is then not needed
    assert sorted(c.slot for c in pick_victims(r(800), r(100), 80, cands)) == ["a/0", "b/1"]
    assert pick_victims(r(2000), r(100), 80, cands) is None                  # c/0 may not go
    assert pick_victims(r(100), r(100), 80, cands) == []                     # it fits already


def test_memory_counts_as_cpu_does():
    cands = [Candidate("a/0", 10, r(100, 512)), Candidate("a/1", 10, r(900, 64))]
    assert [c.slot for c in pick_victims(r(100, 500), r(500, 100), 80, cands)] == ["a/0"]
