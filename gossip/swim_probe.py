"""Failure detection by probing: a part of `gossip.swim.Swim`.

How this works (SWIM §4, memberlist state.go): every probe_interval_s we
ping the next member on the probe ring (gossip.members: in probe slot k,
the node at ring position i probes position i + 1 + k mod (n - 1), where k
counts probe intervals on the cluster's wall clock, `probe_clock_offset_s`
after our `now`).  No ack within
probe_timeout_s -> ask `indirect_checks` random members to ping it for us
(and, for peers that speak protocol >= 3, try a TCP ping too).  No ack by
the end of the probe interval (scaled by our health score, below) -> we
*suspect* it (`swim_membership`).  We also relay indirect pings for others,
answering with a nack when the target stays silent.

Lifeguard (Dadgar et al., 2018):
  * awareness: our own health score stretches the deadline of a probe that
    gets no direct ack (the time indirect and TCP probes get), not the
    direct ping's timeout; probes that are answered keep the probe tick's
    pace, as memberlist's probe ticker does;
  * missing nacks from helpers mean we ourselves may be the problem, and
    raise our health score (gossip.awareness has the rules: nacks count
    until probe_timeout_s after the deadline, and a helper found down
    gives back what its silence cost us);
  * buddy system: a probe of a suspect carries the Suspect message, so the
    suspect learns of it directly and refutes at once.
"""

from __future__ import annotations

from .events import Address, MemberState, StreamPurpose
from .limits import ACK_HANDLERS_MAX, SILENCE_CHARGES_MAX
from .members import bytes_to_host as _host_of
from .messages import AckResp, IndirectPingReq, NackResp, Ping, Suspect
from .swim_base import (
    T_PROBE,
    T_PROBE_END,
    T_PROBE_JUDGE,
    T_PROBE_TIMEOUT,
    T_RELAY_TIMEOUT,
    Probe,
    Relay,
)
from .swim_membership import Membership
from .wire import encode


class Probing(Membership):
    """Probes we run, and indirect probes we relay for others."""

    def _probe_tick(self, now: float) -> None:
        """The probe round's tick: the next probe now, or as soon as the one
        still running ends."""
        self._schedule(now + self.config.probe_interval_s, T_PROBE, None)
        if self._probe_in_flight is not None:
            self._probe_tick_pending = True
        else:
            self._probe(now)

    def _probe(self, now: float) -> None:
        """Start probing the next member.  It ends at its first ack, or
        failed at the awareness-scaled probe interval (_probe_done)."""
        if self._leaving:
            return
        interval = self._awareness.scale(self.config.probe_interval_s)
        # A stretched slot steps to the next member instead (gossip.members).
        slot = (int((now + self.probe_clock_offset_s) // self.config.probe_interval_s)
                if self._awareness.score == 0 else None)
        target = self._members.next_probe_target(slot)
        if target is None:
            return
        # The direct ping's timeout is not scaled by our health score (as in
        # memberlist): waiting longer rarely gets a UDP ack through, while
        # the longer probe interval leaves the indirect pings and the TCP
        # fallback more time.
        timeout = self.config.probe_timeout_s
        seq = self._next_seq()
        self._probes[seq] = Probe(target.name, target.incarnation)
        self._probe_in_flight = seq
        if target.state is MemberState.SUSPECT:
            # Buddy system: tell the suspect directly that it is suspected.
            self._send_ping_with_suspicion(target, seq)
        else:
            self._send(target, target.address,
                       encode(Ping(seq, target.name, self._addr_bytes, self.addr.port, self.name)))
        self._count("probes_sent")
        self._schedule(now + timeout, T_PROBE_TIMEOUT, seq)
        self._schedule(now + interval, T_PROBE_END, seq)

    def _probe_done(self, seq: int, now: float) -> None:
        """Probe `seq` ended (acked, or failed at its deadline): a tick that
        came while it ran starts the next probe now."""
        if seq != self._probe_in_flight:
            return
        self._probe_in_flight = None
        if self._probe_tick_pending:
            self._probe_tick_pending = False
            self._probe(now)

    def _probe_timeout(self, seq: int, now: float) -> None:
        probe = self._probes.get(seq)
        if probe is None or probe.acked:
            return
        target = self._members.get(probe.target)
        if target is None or target.dead_or_left():
            return
        probe.indirect_started = True
        helpers = self._members.random_members(
            self.config.indirect_checks,
            lambda m: m.state is MemberState.ALIVE and m.name != target.name)
        probe.helpers = len(helpers)
        for helper in helpers:
            want_nack = helper.protocol_max >= 4
            if want_nack:
                probe.nack_helpers.append(helper.name)
            req = IndirectPingReq(seq, target.addr_bytes, target.port, target.name, want_nack,
                                  self._addr_bytes, self.addr.port, self.name)
            self._send(helper, helper.address, encode(req))
        if not self.config.disable_tcp_pings and target.protocol_max >= 3:
            remaining = self._awareness.scale(self.config.probe_interval_s) - self.config.probe_timeout_s
            ping = encode(Ping(seq, target.name, self._addr_bytes, self.addr.port, self.name))
            self._open_stream(target.address, ping, StreamPurpose.PING, seq, True, max(remaining, 0.01))

    def _probe_end(self, seq: int, now: float) -> None:
        probe = self._probes.get(seq)
        if probe is None or probe.ended:
            return
        if probe.acked:
            del self._probes[seq]
            return
        probe.ended = True
        self._count("probes_failed")
        # Our health is judged a little later (_probe_judged), the
        # suspicion now, as memberlist does at the probe's deadline.
        self._schedule(now + self.config.probe_timeout_s, T_PROBE_JUDGE, seq)
        self._suspect_unanswered(probe, now)
        self._probe_done(seq, now)

    def _suspect_unanswered(self, probe: Probe, now: float) -> None:
        target = self._members.get(probe.target)
        if target is None or target.dead_or_left():
            return
        # The incarnation we probed, not the one we hold now (memberlist
        # probes a copy of the node's state): a member that restarted and
        # rejoined, or refuted, while our ping to its old self went
        # unanswered is not accused.
        self._on_suspect(Suspect(probe.incarnation, target.name, self.name), now)

    def _probe_judged(self, seq: int) -> None:
        """probe_timeout_s after a probe failed: what it says about our own
        health, counting the nacks that came late.  A helper starts its
        nack timer (probe_timeout_s, as memberlist's) only when our request
        reaches it, probe_timeout_s into the probe, so at health 0 its nack
        lands at or just after the probe's deadline (lan: 0.5 s + 0.5 s of
        a 1 s interval); read at the deadline, as memberlist does, a healthy
        node misses the nack of every live helper (Lifeguard paper, note 5)."""
        probe = self._probes.pop(seq, None)
        if probe is None:
            return
        penalty, silent = self._failed_probe_penalty(probe)
        awareness = self._awareness
        before = awareness.score
        awareness.apply_delta(penalty)
        # Remember what each silent helper cost us (as far as the score
        # rose: not past its cap), to give it back if the helper is down.
        charges = self._silence_charges
        for name in silent[: awareness.score - before]:
            if name in charges or len(charges) < SILENCE_CHARGES_MAX:
                charges[name] = charges.get(name, 0) + 1

    def _failed_probe_penalty(self, probe: Probe) -> tuple[int, list[str]]:
        """What a failed probe adds to our health score, and the silent
        helpers we still believe alive (gossip.awareness states the rule
        and where it departs from memberlist's)."""
        if probe.helpers == 0 or probe.nacks:
            return 0, []
        if not probe.nack_helpers:
            return 1, []  # helpers too old to nack: memberlist's +1
        # One per silent helper (memberlist), but only those we still
        # believe alive.
        members = self._members.by_name
        silent = [name for name in probe.nack_helpers
                  if (helper := members.get(name)) is not None and helper.state is MemberState.ALIVE]
        return len(silent), silent

    def _on_ping(self, ping: Ping, src: Address) -> None:
        if ping.node and ping.node != self.name:
            self._count("ping_wrong_node")
            return
        if ping.source_addr and ping.source_port:
            try:
                reply_to = Address(_host_of(ping.source_addr), ping.source_port)
            except ValueError:
                self._drop("malformed", src)
                return
        else:
            reply_to = src
        member = self._members.get(ping.source_node) if ping.source_node else None
        self._send(member, reply_to, encode(AckResp(ping.seq_no)))

    def _on_indirect_ping(self, req: IndirectPingReq, src: Address, now: float) -> None:
        if req.source_addr and req.source_port:
            try:
                reply_to = Address(_host_of(req.source_addr), req.source_port)
            except ValueError:
                self._drop("malformed", src)
                return
        else:
            reply_to = src
        try:
            target_addr = Address(_host_of(req.target), req.port or self.addr.port)
        except ValueError:
            self._drop("malformed", src)
            return
        if len(self._relays) >= ACK_HANDLERS_MAX:
            self._count("relays_dropped")
            return
        seq = self._next_seq()
        self._relays[seq] = Relay(req.seq_no, reply_to, req.nack)
        self._send(self._members.get(req.node), target_addr,
                   encode(Ping(seq, req.node, self._addr_bytes, self.addr.port, self.name)))
        self._schedule(now + self.config.probe_timeout_s, T_RELAY_TIMEOUT, seq)

    def _relay_timeout(self, seq: int) -> None:
        """No ack from the target of an indirect probe we relay: a nack to
        the requester if it asked for one (Lifeguard)."""
        relay = self._relays.pop(seq, None)
        if relay is not None and not relay.acked and relay.want_nack:
            self._send(None, relay.reply_to, encode(NackResp(relay.requester_seq)))

    def _on_ack(self, seq: int, now: float) -> None:
        probe = self._probes.get(seq)
        if probe is not None:
            if not probe.acked and not probe.ended:
                probe.acked = True
                if self._silence_charges:
                    self._settle_silence(probe.target, refund=False)
                # Any ack, direct, relayed or over TCP, means the probe
                # worked, which improves our own health (memberlist probeNode).
                self._awareness.apply_delta(-1)
                self._count("acks_received")
                self._probe_done(seq, now)
            return
        relay = self._relays.get(seq)
        if relay is not None and not relay.acked:
            relay.acked = True
            self._send(None, relay.reply_to, encode(AckResp(relay.requester_seq)))

    def _on_nack(self, seq: int) -> None:
        probe = self._probes.get(seq)
        if probe is not None:
            probe.nacks += 1
