"""Finding a healed partition fast: a part of `gossip.swim.Swim`.

How this works: when a partition heals, each side holds the other's
members as failed, and SWIM neither probes nor (after gossip_to_the_dead_s)
gossips to failed members.  Serf's reconnect (a push/pull with one random
failed member every reconnect_interval_s, gossip.swim_sync) is what finds
the way back, on average half an interval after the heal (`lan`: 10 s).
Two cheap rules shorten that to about a probe interval:

  * dead pings: every `dead_ping_interval_for(n)` (GossipConfig: the probe
    interval, stretched once the cluster is larger than DEAD_PING_FANIN so
    the whole cluster sends about DEAD_PING_FANIN of them a probe interval)
    we send a bare UDP ping, nothing piggybacked, to one random failed
    member (not one that left);
  * heal syncs: a sign that a member we hold as failed is reachable -- its
    ack to a dead ping, or a ping from it (its own dead ping, or its probe
    of us: it never held us failed) -- and we push/pull with it at once, at
    most once per member per HEAL_SYNC_GAP_PROBES probe intervals, and at
    most one heal sync of ours per probe interval.  The second bound is
    what keeps a large heal calm: once the first refutations spread, every
    member of one side probes the other side, each probe is such a sign,
    and a push/pull per sign (200 nodes: a hundred full-state exchanges per
    node at once) flooded members until their own side declared them dead.
    One exchange already brings us the whole other side's state.  The
    push/pull tells it that we held it failed, so it refutes in its reply,
    and tells us how it holds us, so we refute too; gossip carries both
    refutations to each side (as after a reconnect).

A real failure costs one small datagram per node per interval, spread
over the failed members, for as long as their tombstones are kept.
"""

from __future__ import annotations

from .events import MemberState
from .limits import HEAL_SYNCS_MAX
from .messages import Ping
from .swim_base import T_DEAD_PING
from .swim_sync import StateSync
from .wire import encode

# One heal sync per member per this many probe intervals: a push/pull and the
# refutations it starts take about one, so sooner would only repeat it.
HEAL_SYNC_GAP_PROBES = 4
# Dead pings whose ack we still take (the newest ones); older acks are ignored.
DEAD_PINGS_REMEMBERED = 16


class HealDetection(StateSync):
    """Dead pings and the push/pulls their answers start."""

    def _dead_ping_tick(self, now: float) -> None:
        if self._leaving or not self._members.counts[MemberState.DEAD]:
            # Nobody left to ping: the timer stops until the next failure
            # (SwimBase._arm_dead_pings), so a cluster that never lost a
            # member runs exactly as it did before this rule.
            self._dead_ping_armed = False
            return
        interval = self.config.dead_ping_interval_for(max(1, self._members.live_count()))
        # Nodes that lost members at the same moment keep different phases.
        self._schedule(now + interval * self._rng.uniform(0.5, 1.5), T_DEAD_PING, None)
        peers = self._members.random_members(1, lambda m: m.state is MemberState.DEAD)
        if not peers:
            return
        target = peers[0]
        seq = self._next_seq()
        pings = self._dead_pings
        pings[seq] = target.name
        while len(pings) > DEAD_PINGS_REMEMBERED:
            del pings[next(iter(pings))]
        self._count("dead_pings_sent")
        # Bare: broadcasts piggybacked on a ping to a member that is most
        # likely gone would use up their transmissions for nothing.
        self._send_raw(target, target.address,
                       encode(Ping(seq, target.name, self._addr_bytes, self.addr.port, self.name)))

    def _dead_ping_acked(self, seq: int, now: float) -> bool:
        """An ack: if it answers a dead ping, the member is reachable."""
        name = self._dead_pings.pop(seq, None)
        if name is None:
            return False
        self._count("dead_pings_acked")
        self._heal_sync(name, now)
        return True

    def _pinged_by(self, name: str, now: float) -> None:
        """A ping from `name`: if we hold it as failed, it is reachable."""
        member = self._members.get(name) if name else None
        if member is not None and member.state is MemberState.DEAD:
            self._heal_sync(name, now)

    def _heal_sync(self, name: str, now: float) -> None:
        member = self._members.get(name)
        if member is None or member.state is not MemberState.DEAD or self._leaving:
            return
        synced = self._heal_synced
        last = synced.get(name)
        if last is not None and now - last < HEAL_SYNC_GAP_PROBES * self.config.probe_interval_s:
            return
        if self._heal_sync_at is not None and now - self._heal_sync_at < self.config.probe_interval_s:
            self._count("heal_syncs_paced")
            return
        if last is None and len(synced) >= HEAL_SYNCS_MAX:
            self._forget_heal_syncs(now)
            if len(synced) >= HEAL_SYNCS_MAX:
                self._count("heal_syncs_dropped")
                return
        synced[name] = now
        self._heal_sync_at = now
        self._count("heal_syncs_started")
        self._push_pull_with(member.address)

    def _forget_heal_syncs(self, now: float) -> None:
        gap = HEAL_SYNC_GAP_PROBES * self.config.probe_interval_s
        for name in [n for n, at in self._heal_synced.items() if now - at >= gap]:
            del self._heal_synced[name]
