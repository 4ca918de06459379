"""Lifeguard local health awareness (LHA).

How this works: a node that is itself slow (CPU starved, GC, packet loss on
its own link) misses acks and would wrongly suspect healthy peers.  Lifeguard
keeps a small integer health score: a failed probe whose helpers stayed
silent raises it, any ack to our probe lowers it, having to refute a suspicion
about ourselves raises it.  A failing probe's deadline (the time indirect
and TCP probes get) is multiplied by (score + 1), so an unhealthy node slows
its own accusations instead of spreading them.  Score range is
[0, max_multiplier - 1] (memberlist awareness.go).

What a failed probe adds (gossip.swim_probe, _failed_probe_penalty):
  * 0 if a helper's nack came: a nack proves our own round trip works (our
    request went out, its reply came in and was handled in time) and that
    the target is silent to others too, so the failure is not ours;
  * 0 if we had no helper to ask: the silence says nothing about us;
  * otherwise one per silent helper that we still believe alive
    (memberlist's rule, minus helpers that are suspect or gone by then), or
    1 if no helper could nack (memberlist's +1).
Nacks are counted until probe_timeout_s after the probe's deadline: the
helper's nack timer starts when our request reaches it, so a healthy node's
nacks land just after the deadline (lan: 0.5 s + 0.5 s of a 1 s interval),
and memberlist, reading them at the deadline, misses live helpers' nacks.
And the points a silent helper cost us are given back if it turns out to be
down: when another member suspects it too, or it is declared dead.  They
stand once it is heard alive (an ack from it, or a newer alive).
Why: with most peers dead at once (3 of 5 killed) every probe went through
dead helpers; memberlist's rule took the survivors' scores to the cap, a
failing probe then took 8 probe intervals, and the last death was first
suspected 10.8 s after the kill.  A node that is really slow gets no nack
in time from live helpers, whose silence is never refunded (nobody else
suspects them): it slows down as with memberlist (simulator, a node taking
1.2 s to read its socket: 9 suspicions of live members in 60 s, as before;
57 without Lifeguard).

The bound on declaring a dead member dead, with nobody left to confirm
(GossipConfig.detection_bound_s): every probe slot lasts at most
(h + 1) * probe_interval_s at health score h, and our walk of the probe
ring (gossip.members) reaches any member within 2 (n - 1) slots of the
last change of the membership (n - 1 while each slot keeps pace with the
clock; one pass more when a slot number is skipped, or a stretched slot
returns us to the clock's); our suspicion timer then runs at most
suspicion_max_timeout_s(n), which does not depend on our health score at
all (gossip.suspicion).  So, for a cluster of n members,

    T_dead <= 2 (n - 1) (h + 1) probe_interval_s
              + suspicion_max_timeout_mult * suspicion_mult * max(1, log10 n) * probe_interval_s

with h <= awareness_max_multiplier - 1 always (lan, n = 5: at most 88 s;
at h = 0, which is what the survivors kept when 3 of 5 were killed, 32 s;
measured in the simulator over 20 seeds: median 15.1 s, at most 31.8 s;
docs/configuration.md has the table).
"""

from __future__ import annotations


class Awareness:
    __slots__ = ("max_multiplier", "score")

    def __init__(self, max_multiplier: int) -> None:
        self.max_multiplier = max_multiplier
        self.score = 0

    def apply_delta(self, delta: int) -> None:
        self.score = min(max(self.score + delta, 0), self.max_multiplier - 1)

    def scale(self, timeout_s: float) -> float:
        return timeout_s * (self.score + 1)
