"""auction.suspicion_rule: a suspect keeps its slots through its grace."""

from __future__ import annotations

from auction import suspicion_rule
from auction.suspicion_rule import GRACE_SHARE, in_grace, keeping, next_expiry
from gossip.suspicion import Suspicion


def _susp(started_at: float, min_timeout_s: float = 0.6):
    return Suspicion(from_node="x", k=1, min_timeout_s=min_timeout_s, max_timeout_s=6 * min_timeout_s,
                     now=started_at, generation=1).info()


def test_a_fresh_suspect_keeps_its_slots_and_loses_them_when_its_grace_ends():
    s = _susp(10.0)
    end = 10.0 + GRACE_SHARE * 0.6
    assert keeping({"a"}, {"b": s}, 10.0) == {"a", "b"}
    assert keeping({"a"}, {"b": s}, end - 1e-6) == {"a", "b"}
    assert keeping({"a"}, {"b": s}, end) == {"a"}


def test_the_grace_ends_before_the_suspicion_could_end_in_death():
    # Confirmations shorten a suspicion to min_timeout_s, never below: a real
    # death is re-placed no later than it is declared.
    s = _susp(0.0, min_timeout_s=4.0)
    assert 0.0 < suspicion_rule.grace_s(s) <= s.min_timeout_s
    assert not in_grace(s, s.min_timeout_s)


def test_placement_is_told_when_to_look_again():
    a, b = _susp(1.0), _susp(2.0)
    assert next_expiry({"a": a, "b": b}, 1.0) == 1.0 + GRACE_SHARE * 0.6
    assert next_expiry({"a": a, "b": b}, 1.0 + GRACE_SHARE * 0.6) == 2.0 + GRACE_SHARE * 0.6
    assert next_expiry({"a": a}, 5.0) is None
    assert next_expiry({}, 0.0) is None


def test_confirmations_do_not_shorten_the_grace():
    s = Suspicion(from_node="x", k=2, min_timeout_s=1.0, max_timeout_s=6.0, now=0.0, generation=1)
    before = s.info()
    s.confirm("y")
    after = s.info()
    assert after.confirmations == 1 and after.deadline < before.deadline
    assert suspicion_rule.grace_s(after) == suspicion_rule.grace_s(before)


def test_the_grace_does_not_grow_with_the_cluster():
    # lan at 1,000 members: the suspicion can end in death no sooner than
    # 12 s, but the suspect keeps its slots only the 2 s it keeps them at 5
    # members (the grace outlasts a stall, whose length does not grow with n).
    from gossip.config import LAN

    def at(n):
        return Suspicion(from_node="x", k=2, min_timeout_s=LAN.suspicion_min_timeout_s(n),
                         max_timeout_s=LAN.suspicion_max_timeout_s(n), now=0.0, generation=1,
                         base_min_timeout_s=LAN.suspicion_base_min_timeout_s()).info()

    assert at(1000).min_timeout_s == 3 * at(5).min_timeout_s == 12.0
    assert suspicion_rule.grace_s(at(1000)) == suspicion_rule.grace_s(at(5)) == 2.0
    assert keeping(set(), {"b": at(1000)}, 1.99) == {"b"}
    assert keeping(set(), {"b": at(1000)}, 2.0) == set()
