"""Push/pull anti-entropy: a part of `gossip.swim.Swim`.

How this works: gossip can miss a member, so every push_pull_interval_s
(scaled up with the cluster's size) we swap our whole state (every member
as a pushNodeState, plus the per-node payloads and the user state) with one
random live member over TCP; also right after joining (`post_join_sync_s`)
and, every reconnect_interval_s, with a failed member, so healed partitions
merge (gossip.swim_heal finds most heals sooner).  Joining is the same
exchange with the seeds.

Rules for remote state (memberlist mergeState): Alive is handled as an Alive
message, Left as a graceful leave, and remote Dead or Suspect only ever
makes us *suspect* a node: we never accept a death we did not time out
ourselves.  Payloads merge by version (`swim_user`).

A fresh joiner (a departure from memberlist): the members a join reply
tells a node that knew no one are not gossiped by it.  They are its seed's
own members, known to the seed's cluster (its members gossip each one as
they learn it); the only member that lacked the news was the joiner.
memberlist gossips them all again, retransmit_limit(n) times each: a node
joining 1,000 sends 16,000 alives that every receiver drops as old news.
In a simulated storm of 1,000 nodes joining one seed that was 41 % of the
datagrams, and the backlog held each new member's own alive behind them:
every node saw all 1,000 alive at 15-21 virtual s, 3.6 s without it
(seeds 1-3, docs/benchmarks.md).  A join with several seeds can bridge two clusters,
and then the other seed's cluster does need those members: when a later
join reply lacks some of them, they are gossiped after all.

A formed start (`Swim(formed=...)`, simulations only) is a join whose
reply the driver hands over at construction: learned quietly, as above.
"""

from __future__ import annotations

import heapq
from collections.abc import Sequence

from . import userdata
from .broadcast import MEMBERSHIP_LANE
from .events import Address, MemberState, StreamPurpose, UserStateReceived
from .limits import MAX_USER_MSG_BYTES, MEMBERS_MAX
from .members import Member
from .messages import Alive, Dead, NodeStateCode, PushNodeState, PushPull, Suspect
from .swim_base import T_POST_JOIN, T_PUSH_PULL
from .swim_membership import Membership
from .swim_user import UserData
from .wire import encode, encode_push_pull_joined


class StateSync(Membership, UserData):
    """Push/pull with a random member, a failed one, or the join seeds."""

    def join(self, seeds: list[Address], now: float) -> None:
        payload = self._local_push_pull(join=True)
        self._join_replies_awaited += len(seeds)
        if not self._joined_once:
            # Our own alive, gossiped by us too once we know members (as
            # memberlist queues it when it starts): with the seed's members
            # no longer gossiped by a fresh joiner (module docstring), only
            # the seed's epidemic carried it, and with retransmit_limit(8)
            # of 4 it missed a member in some seeds.
            self._queue.add(self._alive_msg(), ("member", self.name))
        for seed in seeds:
            self._open_stream(seed, payload, StreamPurpose.PUSH_PULL, seed, True,
                              self.config.tcp_timeout_s)
        if not self._joined_once:
            self._joined_once = True
            self._schedule(now + self.config.post_join_sync_s, T_POST_JOIN, 1)

    def _start_formed(self, states: Sequence[PushNodeState], now: float) -> None:
        """Start as a member of a formed cluster: hold each alive member of
        `states` (a push/pull's node list) as a join storm would have left
        us, learned quietly, with the push/pull timer set for the cluster's
        size.  No MemberJoined for them: the driver gave the list (at
        10,000 nodes the events alone would be 100 million).  For
        simulations that study a large cluster without paying for its
        forming (`node.sim.World.start_formed`): 1,000 nodes joining at
        once cost ~30 s of CPU, 10,000 would cost hours, and what follows a
        storm is what they study.  Entries that are not alive, repeat a
        name, or fail the checks of any learned member are counted and
        left out."""
        by_name = self._members.by_name
        default_port = self.addr.port
        alive = NodeStateCode.ALIVE
        room = MEMBERS_MAX - len(by_name)
        fields_ok = self._member_fields_ok
        learned: dict[str, Member] = {}
        for st in states:
            name = st.name
            if name in by_name or name in learned or st.state != alive or len(learned) >= room:
                self._count("formed_skipped")
            elif fields_ok(name, st.addr, st.meta, st.vsn):
                learned[name] = Member(name, st.addr, st.port or default_port, st.meta, tuple(st.vsn),
                                       st.incarnation, MemberState.ALIVE, now)
        self._members.add_all(list(learned.values()))
        self._joined_once = True
        # The push/pull timer was set for a cluster of one.
        self._timers = [t for t in self._timers if t[2] != T_PUSH_PULL]
        heapq.heapify(self._timers)
        self._schedule(now + self._push_pull_interval(), T_PUSH_PULL, None)

    def _post_join_sync(self, k: int, now: float) -> None:
        """Sync k (from 1) after joining: the first always; the next ones
        only while the member count still changes, i.e. while others are
        joining too.  In a join storm a member whose own alive spreads late
        can miss every copy of another's (each member sends it only
        retransmit_limit times, to members it knows by then), and only a
        push/pull tells it; otherwise that is the periodic one."""
        cfg = self.config
        known = len(self._members.by_name)
        if k == 1 or known != self._post_join_known:
            self._push_pull_random(now)
            self._count("post_join_syncs")
            if k < cfg.post_join_syncs:
                self._schedule(now + cfg.post_join_sync_s, T_POST_JOIN, k + 1)
        self._post_join_known = known

    def _gossip_what_seed_lacks(self, pp: PushPull) -> None:
        """A later join reply from a seed that lacks members the first one
        told us of: we bridge two clusters, and this seed's needs them."""
        learned = self._quiet_learned
        if learned is None:
            return
        known_there = {st.name for st in pp.nodes}
        by_name = self._members.by_name
        for name in sorted(learned - known_there):
            m = by_name.get(name)
            if m is not None and m.state is MemberState.ALIVE:
                self._queue.add(self._alive_of(m), ("member", name), lane=MEMBERSHIP_LANE)
                self._count("join_bridge_alives")
            learned.discard(name)

    def _join_reply_settled(self) -> None:
        """A join's push/pull answered or failed."""
        self._join_replies_awaited = max(0, self._join_replies_awaited - 1)
        if not self._join_replies_awaited:
            self._quiet_learned = None

    def _local_push_pull(self, join: bool) -> bytes:
        # The node list is encoded once per change of the member table and
        # reused (MemberTable.node_states): a push/pull carries the whole
        # table, and a large cluster's joins exchange it thousands of times.
        count, nodes = self._members.node_states()
        user = userdata.encode_state(self._payloads, self._user_state)
        return encode_push_pull_joined(join, count, nodes, user)

    def _push_pull_with(self, address: Address) -> None:
        self._open_stream(address, self._local_push_pull(join=False), StreamPurpose.PUSH_PULL, None, True,
                          self.config.tcp_timeout_s)

    def _push_pull_random(self, now: float) -> None:
        peers = self._members.random_members(1, lambda m: m.state is MemberState.ALIVE)
        if peers:
            self._count("push_pulls_started")
            self._push_pull_with(peers[0].address)

    def _reconnect(self, now: float) -> None:
        if not self._members.counts[MemberState.DEAD]:
            # Nobody to reconnect to.  Without this check random_members
            # would spend its 3 * n random tries finding no one, every
            # reconnect interval, on every node of a healthy cluster.
            return
        peers = self._members.random_members(1, lambda m: m.state is MemberState.DEAD)
        if peers:
            self._count("reconnects_started")
            self._push_pull_with(peers[0].address)

    def _merge_remote(self, pp: PushPull, now: float, src: Address | None = None,
                      join_reply: bool = False) -> None:
        by_name = self._members.by_name
        default_port = self.addr.port
        alive = NodeStateCode.ALIVE
        # A fresh joiner's first reply (module docstring): learn, do not gossip.
        quiet = join_reply and len(by_name) <= 1
        if quiet:
            self._quiet_learned = learned = set()
        for st in pp.nodes:
            if st.state == alive:
                # A push/pull carries the whole table, mostly members we hold
                # exactly as sent: the old-news test of receive_datagram,
                # made before building an Alive for it.  The same decoded
                # state comes again and again (every sender encodes a member
                # alike, and decodings are shared): once found old news it
                # is skipped by identity (Member.old_news).
                m = by_name.get(st.name)
                if m is None:
                    if self._member_fields_ok(st.name, st.addr, st.meta, st.vsn):
                        news = None if quiet else encode(
                            Alive(st.incarnation, st.name, st.addr, st.port, st.meta, st.vsn))
                        if self._learn_member(st.name, st.addr, st.port, st.meta, st.vsn, st.incarnation,
                                              now, news) and quiet:
                            learned.add(st.name)
                    continue
                if m.old_news is st:
                    continue
                if (st.incarnation <= m.incarnation and st.addr == m.addr_bytes and st.meta == m.meta
                        and st.vsn == m.vsn and (st.port or default_port) == m.port
                        and st.name != self.name):
                    m.old_news = st
                    continue
                self._on_alive(Alive(st.incarnation, st.name, st.addr, st.port, st.meta, st.vsn),
                               now, bootstrap=True, regossip=not quiet)
                if quiet and st.name != self.name:
                    learned.add(st.name)
            elif st.state == NodeStateCode.LEFT:
                self._on_dead(Dead(st.incarnation, st.name, st.name), now)
            elif st.name not in by_name:
                # A member we never heard of, held as suspect or dead there:
                # memberlist ignores both; see swim_membership ("First heard
                # of as suspect").
                if st.state == NodeStateCode.SUSPECT:
                    self._learn_suspect(st, self.name, now)
                else:
                    self._hear_of_dead(st, now)
            else:
                # Never accept a remote death: at most suspect it ourselves,
                # and a death told by the sender is only hearsay: no other
                # Dead message ends that suspicion early (swim_membership,
                # "A death we never suspected").
                self._on_suspect(Suspect(st.incarnation, st.name, self.name), now,
                                 hearsay=st.state == NodeStateCode.DEAD)
        if join_reply and not quiet and self._quiet_learned:
            self._gossip_what_seed_lacks(pp)
        if pp.user_state and userdata.is_ours(pp.user_state):
            try:
                value = userdata.decode(pp.user_state, MAX_USER_MSG_BYTES)
            except userdata.UserDataError:
                self._drop("user_state_invalid", src)
                return
            if not isinstance(value, userdata.State):
                self._drop("user_state_invalid", src)
                return
            payloads, user = value
            for node, (version, data) in payloads.items():
                self._merge_payload(node, version, data, now, src)
            if user:
                origin = pp.nodes[0].name if pp.nodes else ""
                self._emit(UserStateReceived(origin, user, pp.join))
