"""The membership state rules and suspicion handling: a part of `gossip.swim.Swim`.

How this works (SWIM §4, memberlist state.go): a member's state changes on
Alive, Suspect and Dead messages, each carrying an incarnation number.  Only
a node increments its own incarnation, so a live node can always out-vote a
rumour about itself: accused (suspect or dead) at its current incarnation,
it refutes by gossiping Alive with a higher one.  A suspect that does not
refute before its suspicion timeout is declared Dead; Lifeguard's timeouts
start long and shrink as independent members confirm the suspicion
(`gossip.suspicion`).  Every change is queued for gossip, with the bytes we
received when we have them.

Beyond memberlist (against false deaths under heavy loss): a refutation is
a broadcast like any other, and at 20 % loss some member regularly misses
every copy while it holds a suspicion, which then times out.  So
  * an accusation older than the alive we hold is answered, to its sender,
    with that alive (at most once per sender, subject and probe interval);
  * while we suspect a member we send it the accusation with a ping once per
    probe interval (not only when the round-robin reaches it), so a suspect
    that has refuted tells us so directly.
Both use plain memberlist messages; a memberlist peer just ignores the old
accusation.  In the simulator (N=30, 20 % loss, 300 s) they took false
deaths from 11 in 8 seeds to 0 in 12.

First heard of as suspect (also beyond memberlist).  memberlist ignores a
suspicion about a member it does not know, in a push/pull and in gossip.  A
node that joins while its seed suspects member X then does not learn X at
all; X's refutation is gossiped mostly to members that do not know the
joiner yet, so the two can stay strangers until the next push/pull (25-27 s
at N=60 on lan).  So a member we do not know that a push/pull holds as
suspect is added as suspect, with the address, meta and incarnation the
push/pull gives, under our own suspicion timer (`_learn_suspect`).  Why
suspect and not alive: it is what the sender believes, and it keeps SWIM's
rule that only the member itself clears an accusation, by refuting with a
higher incarnation.  Being suspect, it is probed like any member, and the
buddy system's ping carries the accusation, so a live X refutes to us
directly (its ack carries the new alive) within a probe round; a dead X is
declared dead when our timer runs out, within suspicion_max_timeout_s(n) of
learning it, like any suspect.  We do not gossip our own Suspect for it: we
have no evidence of our own, and the sender already gossips its.  An unknown
member a push/pull names as dead is not added (a remote death is never
taken as ours), but its address is kept (bounded, for HEARD_DEAD_KEEP_S) so
that a Suspect message about a newer incarnation of it, which carries no
address, can add it the same way.  On the wire nothing changes: memberlist
peers see only our usual pings, and our push/pull lists the member as
suspect, as the seed's did.

A death we never suspected (also beyond memberlist, which accepts any Dead
at or above the incarnation it holds).  SWIM lets a live member refute
because the suspicion is gossiped before anyone declares it dead.  Across a
partition that fails: one side suspects and declares the other side dead
where the accused never hears of it, and when the cut heals, the Dead
messages still in that side's broadcast queues reach the accused's own side,
which held it alive all along.  Accepted there, they declared a live member
dead on 94 of its 98 peers (simulator, 200 nodes cut into halves and healed
as the last death was declared) before its refutation, within 2 s, made it
rejoin.  So a Dead message about a member we hold alive makes us suspect
it (as memberlist already does with a dead member in a push/pull), under our
own suspicion timer, with its sender as the first accuser; we gossip the
Dead on, so the accused hears of it and refutes.  Further Dead messages
about it only confirm that suspicion (shortening the timer, down to
suspicion_min_timeout_s(n)); it ends in the refutation or in our own
timeout.  A Dead about a member we suspect on other grounds (a Suspect
message, our probe) is accepted, as in memberlist, once that suspicion is
at least half its shortest timeout old: it was gossiped where we are long
enough for the accused to have had its chance.  A younger one takes the
Dead as a confirmation only.  The heal shows why: the other side's stale
Suspect and Dead messages arrive within a few hundred ms of each other, so
a suspicion started by the first was ended by the second before the
accused could answer (simulator, 200 nodes, 4 of 4 seeds: a live member
declared dead on up to 20 peers of its own side in the first second after
the heal).  A crash costs no time where the Suspect spread first, which is
nearly everywhere: the declarer waited at least the shortest timeout, and
the Suspect reached the others within a few gossip rounds of its start; a
member that missed every copy of it declares the death on its own timer
instead.
"""

from __future__ import annotations

from .broadcast import FAILURE_LANE, MEMBERSHIP_LANE
from .compound import make_compound
from .events import (
    Address,
    MemberFailed,
    MemberJoined,
    MemberLeft,
    MemberState,
    MemberSuspected,
    MemberUpdated,
)
from .limits import (
    CORRECTIONS_MAX,
    HEARD_DEAD_KEEP_S,
    HEARD_DEAD_MAX,
    INCARNATION_MAX,
    MEMBERS_MAX,
    META_MAX_BYTES,
    NODE_NAME_MAX_CHARS,
    VSN_MAX_BYTES,
)
from .members import Member
from .messages import Alive, Dead, NodeStateCode, Ping, PushNodeState, Suspect
from .suspicion import Suspicion
from .swim_base import T_REASK, T_SUSPICION, SwimBase
from .wire import encode

# Suspects re-asked per probe interval (_reask_suspects): a few suspicions at
# a time are the normal case under loss; a partition makes hundreds.
REASK_MAX_PER_INTERVAL = 3

# A Dead ends a suspicion of ours (not hearsay) only once it is this share of
# its shortest timeout old (module docstring, "A death we never suspected").
REFUTE_SHARE = 0.5


class Membership(SwimBase):
    """Alive / suspect / dead rules, refutation and suspicion timeouts."""

    def _refute(self, accused_incarnation: int, src: Address | None = None) -> None:
        me = self._me
        incarnation = max(me.incarnation, accused_incarnation) + 1
        if incarnation > INCARNATION_MAX:
            # Accused at the top of uint32: no higher incarnation exists
            # (memberlist would wrap to 0, which peers ignore just the
            # same).  Storing 2^32 would make our alive unencodable.
            self._drop("incarnation_overflow", src)
            return
        me.incarnation = incarnation
        self._members.changed(me)
        self._queue.add(self._alive_msg(), ("member", self.name), lane=FAILURE_LANE)
        self._awareness.apply_delta(1)
        self._count("refutations")

    def _member_fields_ok(self, node: str, addr: bytes, meta: bytes, vsn: tuple[int, ...]) -> bool:
        """Whether what an alive (or a node state) says about a member may be
        stored; counts the refusal otherwise."""
        if len(vsn) < 3 or vsn[0] == 0 or vsn[1] == 0 or vsn[0] > vsn[1]:
            self._count("alive_bad_version")
            return False
        if len(vsn) > VSN_MAX_BYTES or len(meta) > META_MAX_BYTES or not node or \
                len(node) > NODE_NAME_MAX_CHARS or len(addr) not in (4, 16):
            self._count("alive_invalid")
            return False
        return True

    def _on_alive(self, a: Alive, now: float, bootstrap: bool = False, raw: bytes | None = None,
                  regossip: bool = True) -> None:
        if self._leaving and a.node == self.name:
            return
        if not self._member_fields_ok(a.node, a.addr, a.meta, a.vsn):
            return
        member = self._members.by_name.get(a.node)
        if member is None:
            if self._learn_member(a.node, a.addr, a.port, a.meta, a.vsn, a.incarnation, now,
                                  (raw if raw is not None else encode(a)) if regossip else None):
                self._remember_old_alive(raw)  # applied: from now on, old news
            return
        updates_addr = False
        if member.addr_bytes != a.addr or member.port != (a.port or self.addr.port):
            reclaimable = member.state is MemberState.LEFT or (
                member.state is MemberState.DEAD
                and now - member.state_change_at > self.config.dead_node_reclaim_s)
            if a.node == self.name or not reclaimable:
                self._count("alive_conflict")
                return
            updates_addr = True
        is_local = a.node == self.name
        if not is_local and a.incarnation <= member.incarnation and not updates_addr:
            return
        if is_local and a.incarnation < member.incarnation:
            return
        self._suspicions.pop(a.node, None)
        if self._silence_charges:
            self._settle_silence(a.node, refund=False)
        if is_local:
            if a.incarnation == member.incarnation and a.meta == member.meta and tuple(a.vsn) == member.vsn:
                return  # our own alive coming back to us
            self._refute(a.incarnation)
            return
        # Rebroadcast the bytes we received when we have them (memberlist
        # re-encodes; the result is the same message).
        # An alive that ends a suspicion is failure news (gossip.broadcast).
        # Not gossiped when `regossip` is false: a fresh joiner's first
        # join reply (gossip.swim_sync says why).
        if regossip:
            self._queue.add(raw if raw is not None else encode(a), ("member", a.node),
                            lane=FAILURE_LANE if member.state is MemberState.SUSPECT else MEMBERSHIP_LANE)
        old_state = member.state
        meta_changed = member.meta != a.meta
        if updates_addr:
            self._members.readdress(member, a.addr, a.port or self.addr.port)
        member.incarnation = a.incarnation
        member.meta = a.meta
        member.vsn = tuple(a.vsn)
        self._members.changed(member)
        self._members.set_state(member, MemberState.ALIVE, now)
        self._remember_old_alive(raw)  # applied: from now on, old news
        if old_state is MemberState.DEAD or old_state is MemberState.LEFT:
            self._emit(MemberJoined(member.info()))
        elif meta_changed or updates_addr or old_state is MemberState.SUSPECT:
            self._emit(MemberUpdated(member.info()))

    def _learn_member(self, name: str, addr: bytes, port: int, meta: bytes, vsn: tuple[int, ...],
                      incarnation: int, now: float, news: bytes | None) -> bool:
        """A member we do not hold, alive, its fields already checked
        (_member_fields_ok): added, unless the table is full; `news`, its
        alive message, is gossiped on (None: learned quietly, gossip.swim_sync).
        Every node learns every member once this way, from gossip or from a
        push/pull (a million times when 1,000 nodes join at once), so none
        of _on_alive's steps for a member we hold are taken.  False if the
        table was full."""
        members = self._members
        if len(members) >= MEMBERS_MAX:
            self._drop("members_full", None)
            return False
        member = Member(name, addr, port or self.addr.port, meta, tuple(vsn), incarnation, MemberState.ALIVE, now)
        members.add(member)
        self._suspicions.pop(name, None)
        if self._silence_charges:
            self._settle_silence(name, refund=False)
        if news is not None:
            self._queue.add(news, ("member", name), lane=MEMBERSHIP_LANE)
        self._emit(MemberJoined(member.info()))
        return True

    def _on_suspect(self, s: Suspect, now: float, raw: bytes | None = None,
                    src: Address | None = None, hearsay: bool = False) -> None:
        member = self._members.get(s.node)
        if member is None:
            heard = self._heard_dead.get(s.node)
            # Dead at incarnation i where we heard of it, suspected at a
            # newer one now: it came back, and someone probes it.
            if heard is not None and s.incarnation > heard[0].incarnation:
                st = heard[0]
                self._learn_suspect(PushNodeState(st.name, st.addr, st.port, st.meta, s.incarnation,
                                                  NodeStateCode.SUSPECT, st.vsn), s.from_node, now)
            return
        if s.incarnation < member.incarnation:
            if src is not None:
                self._correct_stale_accusation(member, src, now)
            return
        if s.from_node != self.name and self._silence_charges:
            # Another member finds it silent too: its silence was not ours.
            self._settle_silence(s.node, refund=True)
        susp = self._suspicions.get(s.node)
        if susp is not None:
            if susp.confirm(s.from_node):
                self._queue.add(raw if raw is not None else encode(s), ("member", s.node), lane=FAILURE_LANE)
                self._schedule(susp.deadline(), T_SUSPICION, (s.node, susp.generation))
            return
        if member.state is not MemberState.ALIVE:
            return
        if s.node == self.name:
            self._refute(s.incarnation, src)
            return
        self._queue.add(raw if raw is not None else encode(s), ("member", s.node), lane=FAILURE_LANE)
        member.incarnation = s.incarnation
        self._members.changed(member)
        self._members.set_state(member, MemberState.SUSPECT, now)
        self._start_suspicion(member, s.from_node, now, hearsay)
        self._emit(MemberSuspected(member.info()))

    def _start_suspicion(self, member: Member, from_node: str, now: float, hearsay: bool = False) -> None:
        """Our suspicion timer for `member` (gossip.suspicion)."""
        n = self._members.live_count()
        k = self.config.suspicion_confirmations_wanted()
        if n - 2 < k:
            k = 0
        self._suspicion_gen += 1
        susp = Suspicion(from_node=from_node, k=k,
                         min_timeout_s=self.config.suspicion_min_timeout_s(n),
                         max_timeout_s=self.config.suspicion_max_timeout_s(n),
                         base_min_timeout_s=self.config.suspicion_base_min_timeout_s(),
                         now=now, generation=self._suspicion_gen, hearsay=hearsay)
        self._suspicions[member.name] = susp
        self._schedule(susp.deadline(), T_SUSPICION, (member.name, susp.generation))
        if not self._reask_scheduled:
            self._schedule_reask(now)

    def _learn_suspect(self, st: PushNodeState, from_node: str, now: float) -> None:
        """A member we did not know, first heard of as suspect (module
        docstring: "First heard of as suspect"): added as suspect, under our
        own suspicion timer, so that we probe it."""
        if st.name == self.name or st.name in self._members.by_name:
            return
        if not self._member_fields_ok(st.name, st.addr, st.meta, st.vsn):
            return
        if len(self._members) >= MEMBERS_MAX:
            self._drop("members_full", None)
            return
        member = Member(st.name, st.addr, st.port or self.addr.port, st.meta, tuple(st.vsn), st.incarnation,
                        MemberState.SUSPECT, now)
        self._members.add(member)
        self._heard_dead.pop(st.name, None)
        self._start_suspicion(member, from_node, now)
        self._count("learned_as_suspect")
        self._emit(MemberJoined(member.info()))

    def _hear_of_dead(self, st: PushNodeState, now: float) -> None:
        """A push/pull named a member we do not know as dead: not added (a
        remote death is never taken as ours), but its address is kept for a
        while in case it is suspected at a newer incarnation (_on_suspect)."""
        if st.name == self.name or st.name in self._members.by_name:
            return
        heard = self._heard_dead
        if len(heard) >= HEARD_DEAD_MAX and st.name not in heard:
            del heard[next(iter(heard))]  # the oldest
        heard[st.name] = (st, now)

    def _forget_heard_dead(self, now: float) -> None:
        heard = self._heard_dead
        for name in [name for name, (_, at) in heard.items()
                     if now - at > HEARD_DEAD_KEEP_S or name in self._members.by_name]:
            del heard[name]

    def _correct_stale_accusation(self, member: Member, src: Address, now: float) -> None:
        """`src` gossiped a suspect or dead message about `member` older than
        the alive we hold: it has not heard the refutation, and may itself be
        counting down to declaring a live node dead.  Tell it, directly.

        Why: a refutation spreads like any broadcast, each member sending it
        retransmit_limit times within a few gossip rounds, so under heavy
        loss a member can miss every copy; nothing but the next push/pull
        (30 s with lan) would then tell it, and its suspicion timer (6 s at
        N=30) expires first.  A member still gossiping the old accusation is
        exactly such a member, and every up-to-date member that hears it can
        answer.  At most one answer per (sender, subject) per probe interval.
        memberlist ignores the old message; the answer is a plain alive
        message, so memberlist peers take it like any other."""
        if member.state is not MemberState.ALIVE:
            return
        key = (src, member.name)
        last = self._corrections.get(key)
        if last is not None and now - last < self.config.probe_interval_s:
            return
        if len(self._corrections) >= CORRECTIONS_MAX:
            self._corrections.clear()
        self._corrections[key] = now
        self._send(None, src, self._alive_of(member))
        self._count("stale_accusations_answered")

    def _send_ping_with_suspicion(self, target: Member, seq: int) -> None:
        """A ping to a member we suspect, carrying our Suspect message."""
        ping = encode(Ping(seq, target.name, self._addr_bytes, self.addr.port, self.name))
        suspect = encode(Suspect(target.incarnation, target.name, self.name))
        self._send_raw(target, target.address, make_compound([ping, suspect]))

    def _schedule_reask(self, now: float) -> None:
        self._reask_scheduled = True
        self._schedule(now + self.config.probe_interval_s, T_REASK, None)

    def _reask_suspects(self, now: float) -> None:
        """Once per probe interval while we suspect anyone: send up to
        REASK_MAX_PER_INTERVAL of our suspects (picked at random) a ping
        carrying the accusation (the buddy system's message, outside the
        probe round).

        Why: our round-robin probes reach a given member only once per N
        probe intervals, so the buddy system alone rarely tells a suspect
        that *we* still suspect it.  If it has refuted already and we missed
        every copy of the refutation (heavy loss can do that), it answers
        our stale accusation with its current alive message
        (_correct_stale_accusation) and our suspicion ends; if it has not
        heard of the accusation, it refutes.  The ping's ack is not waited
        for: only a newer incarnation clears a suspicion, as in SWIM.

        Why a bound: a partition makes every node suspect the whole other
        side at once; re-asking each of them every interval would send
        hundreds of datagrams per node per second into the cut."""
        names = list(self._suspicions)
        if len(names) > REASK_MAX_PER_INTERVAL:
            names = self._rng.sample(names, REASK_MAX_PER_INTERVAL)
        for name in names:
            member = self._members.get(name)
            if member is None or member.state is not MemberState.SUSPECT:
                continue
            self._send_ping_with_suspicion(member, self._next_seq())
            self._count("suspects_reasked")

    def _suspicion_timeout(self, name: str, generation: int, now: float) -> None:
        """A suspicion's deadline passed; it counts only if that suspicion
        still stands (not refuted, not replaced by a newer one)."""
        susp = self._suspicions.get(name)
        if susp is not None and susp.generation == generation:
            self._suspicion_expired(name, now)

    def _suspicion_expired(self, name: str, now: float) -> None:
        member = self._members.get(name)
        self._suspicions.pop(name, None)
        if member is None or member.state is not MemberState.SUSPECT:
            return
        self._count("suspicions_expired")
        self._on_dead(Dead(member.incarnation, name, self.name), now)

    def _death_taken_as_suspicion(self, member: Member, d: Dead, now: float, raw: bytes | None) -> bool:
        """Somebody else's verdict that `member` is dead, about a member we
        hold alive or suspect only on such verdicts: we suspect it instead
        (module docstring: "A death we never suspected").  True if handled
        so; False if the death is to be accepted (memberlist's rule)."""
        if member.state is MemberState.ALIVE:
            self._queue.add(raw if raw is not None else encode(d), ("member", d.node), lane=FAILURE_LANE)
            if self._silence_charges:
                self._settle_silence(d.node, refund=True)
            member.incarnation = d.incarnation
            self._members.changed(member)
            self._members.set_state(member, MemberState.SUSPECT, now)
            self._start_suspicion(member, d.from_node, now, hearsay=True)
            self._count("deaths_taken_as_suspicion")
            self._emit(MemberSuspected(member.info()))
            return True
        susp = self._suspicions.get(d.node)
        if susp is None:
            return False
        if not susp.hearsay and now - susp.started_at >= susp.min_timeout_s * REFUTE_SHARE:
            return False
        # Another member's verdict on the same suspect: a confirmation.
        if susp.confirm(d.from_node):
            self._queue.add(raw if raw is not None else encode(d), ("member", d.node), lane=FAILURE_LANE)
            self._schedule(susp.deadline(), T_SUSPICION, (d.node, susp.generation))
        return True

    def _on_dead(self, d: Dead, now: float, raw: bytes | None = None,
                 src: Address | None = None) -> None:
        member = self._members.get(d.node)
        if member is None:
            return
        if d.incarnation < member.incarnation:
            if src is not None:
                self._correct_stale_accusation(member, src, now)
            return
        if d.node != self.name and d.from_node != d.node and d.from_node != self.name and \
                not member.dead_or_left() and self._death_taken_as_suspicion(member, d, now, raw):
            return
        self._suspicions.pop(d.node, None)
        if member.dead_or_left():
            return
        if d.node == self.name:
            if not self._leaving:
                self._refute(d.incarnation, src)
            return
        self._queue.add(raw if raw is not None else encode(d), ("member", d.node), lane=FAILURE_LANE)
        if self._silence_charges:
            self._settle_silence(d.node, refund=True)
        member.incarnation = d.incarnation
        self._members.changed(member)
        if d.from_node == d.node:
            self._members.set_state(member, MemberState.LEFT, now)
            self._emit(MemberLeft(member.info()))
        else:
            self._members.set_state(member, MemberState.DEAD, now)
            self._arm_dead_pings(now)
            self._emit(MemberFailed(member.info()))
