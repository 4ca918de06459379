"""The node core's contract: what a driver feeds in, and what comes out.

Two (or three) `NodeCore`s are joined by a fake link that delivers every
datagram and stream at once, on a clock the test moves; each test feeds
inputs from node.core.inputs and asserts on the outputs (node.core.outputs)
and on the read-only view, as a driver would see them.
"""

from __future__ import annotations

import random
from dataclasses import replace
from typing import Any

import msgpack
import pytest

from auction.claims import Ballot, slot_key
from auction.placement import PlacementConfig
from auction.resources import Resources
from auction.spec import validate
from gossip.config import LOCAL
from gossip import userdata
from gossip.events import Address, MemberJoined, OpenStream, SendDatagram, StreamPurpose
from gossip.swim_user import userdata_msg
from node.core import admission, wire
from node.core.hlc import Stamp
from node.core.inputs import (
    AbandonWrite,
    Datagram,
    Join,
    Persisted,
    ReplicaGaveUp,
    RuntimeSlots,
    SendToMembers,
    SetDrained,
    SetHealth,
    StreamIn,
    StreamReply,
    WriteJob,
)
from node.core.jobstore import Entry
from node.core.node_core import ClusterConfig, NodeCore
from node.core.outputs import (
    ClaimChanged,
    JobChanged,
    JobWriteDone,
    NodeStatusChanged,
    PersistEntries,
    StartReplica,
    StateRefused,
    StopReplica,
)
from node.core.status import NodeStatus, StatusError

GiB = 1 << 30
FAST = PlacementConfig(placement_interval_s=0.25, auction_ttl_s=0.1, claim_wait_s=1.0,
                       min_backoff_s=0.2, max_backoff_s=2.0)
CLUSTER = ClusterConfig(store_sync_interval_s=0.5, status_min_interval_s=0.2, status_digest_quiet_s=0.2)
STEP_S = 0.01


class Link:
    """n node cores on a lossless, zero-delay link; outputs other than
    datagrams and streams are kept per node in `seen` (and `fresh` since the
    last `take`)."""

    def __init__(self, n: int = 2, seed: int = 1) -> None:
        rng = random.Random(seed)
        self.now = 0.0
        self.addrs = [Address("10.0.0.1", 7000 + i) for i in range(n)]
        self.cores = [NodeCore(name=f"n{i}", addr=self.addrs[i],
                               gossip_config=LOCAL, rng=random.Random(rng.getrandbits(64)), now=0.0,
                               capacity=Resources(2000, 4 * GiB, 0), cluster_config=CLUSTER,
                               placement_config=FAST) for i in range(n)]
        self.by_port = {a.port: i for i, a in enumerate(self.addrs)}
        self.seen: list[list[Any]] = [[] for _ in range(n)]
        self.fresh: list[list[Any]] = [[] for _ in range(n)]
        self.streams: list[OpenStream] = []  # every stream opened, in order
        self._route()

    def feed(self, i: int, inp: Any) -> Any:
        result = self.cores[i].feed(inp, self.now)
        self._route()
        return result

    def take(self, i: int) -> list[Any]:
        out, self.fresh[i] = self.fresh[i], []
        return out

    def join_all(self) -> None:
        for i in range(1, len(self.cores)):
            self.feed(i, Join((self.addrs[0],)))
        self.run(1.0)

    def run(self, seconds: float) -> None:
        end = self.now + seconds
        while self.now < end:
            self.now = round(self.now + STEP_S, 6)
            for core in self.cores:
                deadline = core.next_deadline()
                if deadline is not None and deadline <= self.now:
                    core.handle_timers(self.now)
            self._route()

    def _route(self) -> None:
        busy = True
        while busy:
            busy = False
            for i, core in enumerate(self.cores):
                for out in core.drain():
                    busy = True
                    if isinstance(out, SendDatagram):
                        dst = self.cores[self.by_port[out.addr.port]]
                        dst.feed(Datagram(out.data, self.addrs[i]), self.now)
                    elif isinstance(out, OpenStream):
                        self.streams.append(out)
                        self._stream(i, out)
                    else:
                        self.seen[i].append(out)
                        self.fresh[i].append(out)

    def _stream(self, i: int, cmd: OpenStream) -> None:
        src, dst = self.cores[i], self.cores[self.by_port[cmd.addr.port]]
        msg = _decode(dst.stream_decoder(True), cmd.data)
        reply = dst.feed(StreamIn(msg, self.addrs[i]), self.now)
        if cmd.expect_reply:
            answer = _decode(src.stream_decoder(False), reply) if reply is not None else None
            src.feed(StreamReply(cmd.stream_id, answer), self.now)


def _decode(decoder: Any, data: bytes) -> Any:
    msg = decoder.feed(data)
    return msg if msg is not None else decoder.feed_eof()


def _spec(name: str, replicas: int = 1) -> bytes:
    return validate({"name": name, "image": "busybox", "replicas": replicas, "cpu": 0.5,
                     "memory": "256MiB"}).canonical_json()


def _of(outputs: list[Any], cls: type) -> list[Any]:
    return [o for o in outputs if isinstance(o, cls)]


def test_a_write_is_invisible_until_persisted_then_acknowledged_and_gossiped():
    link = Link()
    link.join_all()
    link.take(0), link.take(1)
    entry = link.feed(0, WriteJob("web", _spec("web"), token=7))
    assert entry.name == "web" and entry.spec == _spec("web")
    assert _of(link.take(0), PersistEntries) == [PersistEntries((entry,), 7)]
    link.run(1.0)
    assert link.cores[0].view.job("web") is None  # not readable before durable
    assert link.cores[1].view.job("web") is None  # nor spread
    assert not _of(link.take(0), JobWriteDone)

    link.feed(0, Persisted(7))
    out = link.take(0)
    assert JobWriteDone(7, entry) in out and JobChanged(entry, True) in out
    assert link.cores[0].view.job("web") == entry
    link.run(1.0)
    assert link.cores[1].view.job("web") == entry
    peer = link.take(1)
    assert JobChanged(entry, False) in peer
    assert PersistEntries((entry,), None) in peer  # the peer writes it, nobody waits


def test_an_abandoned_write_leaves_no_trace():
    link = Link()
    link.join_all()
    link.feed(0, WriteJob("web", _spec("web"), token=3))
    link.take(0)
    link.feed(0, AbandonWrite(3))
    link.feed(0, Persisted(3))  # a late ack for a forgotten write does nothing
    link.run(2.0)
    assert not _of(link.take(0), JobWriteDone)
    assert [c.view.job("web") for c in link.cores] == [None, None]
    assert [c.view.live_job_count for c in link.cores] == [0, 0]


def test_a_refused_write_raises_and_emits_nothing():
    link = Link(1)
    link.take(0)
    with pytest.raises(ValueError, match="the limit is"):
        link.feed(0, WriteJob("huge", b"x" * (1 << 20), token=1))
    assert link.take(0) == []


def test_the_drain_flag_and_health_are_published_in_the_status():
    link = Link()
    link.join_all()
    link.feed(0, SetDrained(True))
    link.feed(0, SetHealth(False, "disk full"))
    assert link.cores[0].view.status.drained
    link.run(1.0)
    seen = link.cores[1].view.statuses["n0"]
    assert seen.drained and not seen.healthy and seen.unhealthy_reason == "disk full"
    assert not seen.eligible
    assert any(s.status.name == "n0" and s.status.drained for s in _of(link.take(1), NodeStatusChanged))


def test_runtime_slots_reach_peers_through_the_status():
    link = Link()
    link.join_all()
    link.feed(0, RuntimeSlots({"web/0": ("running", ""), "web/1": ("failed", "exit 1")}))
    link.run(1.0)
    summary = link.cores[1].view.statuses["n0"].runtime
    assert summary is not None
    assert summary.state_of("web", 0) == ("running", "")
    assert summary.state_of("web", 1) == ("failed", "exit 1")


def test_a_replica_given_up_releases_its_claim_and_stops_here():
    link = Link(3)
    link.join_all()
    link.feed(0, WriteJob("web", _spec("web"), token=1))
    link.feed(0, Persisted(1))
    link.run(3.0)
    holders = [i for i in range(3) if _of(link.seen[i], StartReplica)]
    assert len(holders) == 1, holders
    holder = holders[0]
    slot = slot_key("web", 0)
    assert link.cores[holder].view.winning_claim(slot).node == f"n{holder}"
    link.take(holder)

    link.feed(holder, ReplicaGaveUp(slot, "exited 1 five times"))
    out = link.take(holder)
    released = [c.claim for c in _of(out, ClaimChanged) if c.claim.name == slot]
    assert released and released[0].released and released[0].node == f"n{holder}"
    assert _of(out, StopReplica) and _of(out, StopReplica)[0].slot == slot
    link.run(3.0)
    claim = link.cores[holder].view.winning_claim(slot)
    assert claim is not None and not claim.released and claim.node != f"n{holder}"  # moved elsewhere


def test_send_to_members_opens_a_stream_to_each_other_member_and_returns_their_names():
    link = Link(3)
    link.join_all()
    sent = link.cores[0].feed(SendToMembers(b"hello"), link.now)
    assert sorted(sent) == ["n1", "n2"]
    streams = _of(link.cores[0].drain(), OpenStream)
    assert sorted(s.addr.port for s in streams) == [7001, 7002]


def test_status_exchanges_go_by_datagram_not_a_connection_each():
    # node.core.status_sync: while records move, each member offers its
    # versions to a peer every store_sync_interval_s; small enough for a
    # datagram, none of it opens a TCP connection.
    link = Link(3)
    link.join_all()
    link.streams.clear()
    syncs_before = sum(core.counters.get("status_syncs", 0) for core in link.cores)
    link.run(3.0)
    assert sum(core.counters.get("status_syncs", 0) for core in link.cores) >= syncs_before + 3
    assert [s.purpose for s in link.streams if s.purpose is StreamPurpose.USER] == []


def test_a_join_answers_the_stream_and_both_sides_learn_each_other():
    link = Link()
    link.feed(1, Join((link.addrs[0],)))
    assert {m.member.name for m in _of(link.seen[1], MemberJoined)} >= {"n0"}
    assert {m.member.name for m in _of(link.seen[0], MemberJoined)} >= {"n1"}
    assert link.cores[0].view.alive_names() == {"n0", "n1"}


@pytest.mark.parametrize("bad", ["write web", ("WriteJob", "web"), None, Persisted])
def test_anything_that_is_not_an_input_is_refused(bad):
    core = Link(1).cores[0]
    with pytest.raises(TypeError, match="not a node core input"):
        core.feed(bad, 0.0)


# ---- forged or absurd state is refused, not merged (node.core.admission)

FORGER = Address("10.6.6.6", 666)  # never joined


def _forged(entry: Entry, broadcast: bool = True, origin: str = "n1") -> bytes:
    """The shape of the datagram that injected job `injected`: one memberlist
    user message (UDP), carrying a node-core EntryBroadcast; it claims to come
    from `origin` (a member's name unless told otherwise: nothing checks it
    without encryption)."""
    body = wire.encode(wire.EntryBroadcast(entry))
    return userdata_msg(userdata.encode_broadcast(origin, 1, body) if broadcast
                        else userdata.encode_direct(origin, body))


def _write(link: Link, i: int, name: str, spec: bytes | None, token: int) -> list[Any]:
    link.feed(i, WriteJob(name, spec, token))
    link.feed(i, Persisted(token))
    return _of(link.take(i), JobWriteDone)


@pytest.mark.parametrize("broadcast,origin,refusal", [
    (True, "n1", StateRefused("job", "injected", "n1", "stamp_ahead")),
    (False, "n1", StateRefused("job", "injected", "n1", "stamp_ahead")),
    (True, "evil", StateRefused("message", "evil", "evil", "not_a_member")),
])
def test_an_injected_job_with_a_far_future_stamp_is_refused_and_counted(broadcast, origin, refusal):
    link = Link(2)
    link.join_all()
    link.take(0)
    digest = link.cores[0].view.store_digest()
    link.feed(0, Datagram(_forged(Entry("injected", Stamp(1 << 62, 0, "evil"), _spec("injected", 3)),
                                  broadcast, origin), FORGER))
    out = link.take(0)
    assert refusal in out
    assert not _of(out, PersistEntries) and not _of(out, JobChanged)
    assert link.cores[0].view.job("injected") is None
    assert link.cores[0].view.store_digest() == digest
    link.run(2.0)
    assert all(c.view.job("injected") is None for c in link.cores)
    assert not any(_of(seen, StartReplica) for seen in link.seen)

    # a later legitimate write and delete work, and the delete really stops it
    (done,) = _write(link, 0, "injected", _spec("injected"), 1)
    assert done.superseded_by is None
    link.run(3.0)
    assert sum(len(_of(seen, StartReplica)) for seen in link.seen) == 1
    (done,) = _write(link, 1, "injected", None, 2)
    assert done.superseded_by is None
    link.run(3.0)
    assert sum(len(_of(seen, StopReplica)) for seen in link.seen) == 1
    assert all(c.view.job("injected").deleted for c in link.cores)


def test_a_forged_far_future_tombstone_is_refused_and_the_job_keeps_running():
    link = Link(2)
    link.join_all()
    _write(link, 0, "web", _spec("web"), 1)
    link.run(3.0)
    assert sum(len(_of(seen, StartReplica)) for seen in link.seen) == 1
    ten_minutes_ahead_ms = int(link.now * 1000) + 600_000
    tombstone = Entry("web", Stamp(ten_minutes_ahead_ms, 0, "evil"), None)
    for i in range(2):
        link.take(i)
        link.feed(i, Datagram(_forged(tombstone), FORGER))
        assert StateRefused("job", "web", "n1", "stamp_ahead") in link.take(i)
    link.run(3.0)
    assert not any(_of(seen, StopReplica) for seen in link.seen)
    assert all(not c.view.job("web").deleted for c in link.cores)


def test_a_local_write_that_loses_to_a_newer_entry_says_so():
    link = Link(2)
    link.join_all()
    link.take(0)
    link.feed(0, WriteJob("web", _spec("web"), token=5))
    # a newer write by a member, within the clock-skew bound, lands before ours is durable
    newer = Entry("web", Stamp(int(link.now * 1000) + 30_000, 0, "n9"), _spec("web", 2))
    link.feed(0, Datagram(_forged(newer), FORGER))
    link.feed(0, Persisted(5))
    (done,) = _of(link.take(0), JobWriteDone)
    assert done.superseded_by == newer
    assert link.cores[0].view.job("web") == newer


def test_absurd_ballot_rounds_are_refused():
    link = Link(2)
    link.join_all()
    _write(link, 0, "web", _spec("web"), 1)
    link.run(3.0)
    slot = slot_key("web", 0)
    current = link.cores[0].view.winning_claim(slot)
    assert current is not None
    jump = replace(current, ballot=Ballot(current.ballot.round + admission.MAX_ROUND_JUMP + 1, "evil"),
                   node="evil")
    body = wire.encode(wire.ClaimBroadcast((jump,)))
    link.take(0)
    link.feed(0, Datagram(userdata_msg(userdata.encode_direct("n1", body)), FORGER))
    assert StateRefused("claim", slot, "n1", "ballot_jump") in link.take(0)
    assert link.cores[0].view.winning_claim(slot) == current
    # a round that would overflow msgpack is refused at decode (not ours: passed on, never merged)
    overflow = replace(current, ballot=Ballot((1 << 64) - 1, "evil"))
    with pytest.raises(wire.WireError):
        wire.decode(msgpack.packb([wire.KIND_CLAIM, [overflow.to_wire()]]), 1 << 16)


def test_a_bids_spread_domain_is_a_bounded_text():
    # A spread job's bid names the bidder's domain (its label value, or the
    # node itself with strategy = spread): bounded like every other text.
    def bid(domain):
        return wire.decode(msgpack.packb([wire.KIND_BID, "a#1", "n1", [0.5], domain, 0]), 1 << 16)
    assert bid("n1").spread_value == "n1" and bid(None).spread_value is None
    with pytest.raises(wire.WireError):
        bid("x" * (wire.MAX_TEXT_CHARS + 1))


def test_a_deferral_and_its_extension_cross_the_wire_and_malformed_ones_are_refused():
    # auction.bid_order: a bidder answering earlier spread rounds first tells
    # the coordinator, which keeps the round open (an older agent refuses the
    # unknown kind and closes the round on time, as before).
    from auction.messages import Deferred, RoundExtended
    for msg, kind in ((Deferred("1765000000000.n1#k2:7", "n2"), wire.KIND_DEFERRED),
                      (RoundExtended("1765000000000.n1#k2:7", "n1"), wire.KIND_ROUND_EXTENDED)):
        assert wire.decode(wire.encode(msg), 1 << 16) == msg
        for bad in ([kind, "a#1"], [kind, "a#1", 7], [kind, "a#1", "x" * (wire.MAX_TEXT_CHARS + 1)],
                    [kind, "a#1", "n2", 1]):
            with pytest.raises(wire.WireError):
                wire.decode(msgpack.packb(bad, use_bin_type=True), 1 << 16)


def test_a_calls_win_cap_is_optional_and_bounded():
    # A call that caps what a bidder can win carries it as a ninth field; a
    # call without a cap keeps the eight fields older agents decode.
    from auction.messages import CallForBids
    plain = CallForBids("a#1", "n1", "web", "h", (0, 1, 2), 0.5, b"{}")
    capped = CallForBids("a#1", "n1", "web", "h", (0, 1, 2), 0.5, b"{}", 1)
    assert len(msgpack.unpackb(wire.encode(plain))) == 8
    assert wire.decode(wire.encode(plain), 1 << 16) == plain
    assert wire.decode(wire.encode(capped), 1 << 16) == capped
    for bad in (0, -1, wire.MAX_SLOTS_PER_MESSAGE + 1, 1.5, True, "1"):
        raw = [wire.KIND_CALL, "a#1", "n1", "web", "h", [0], 0.5, b"{}", bad]
        with pytest.raises(wire.WireError):
            wire.decode(msgpack.packb(raw, use_bin_type=True), 1 << 16)


@pytest.mark.parametrize("raw", [[1 << 64, 0, "n"], [0, 1 << 32, "n"], [-1, 0, "n"]])
def test_stamps_that_would_overflow_are_refused_at_decode(raw):
    with pytest.raises(ValueError):
        Stamp.from_wire(raw)


def test_a_status_with_an_overflowing_integer_is_refused():
    status = NodeStatus("n1", Resources(1000, 1, 0), Resources(0, 0, 0))
    raw = msgpack.unpackb(status.encode())
    raw[10] = (1 << 64) - 1  # the job count
    with pytest.raises(StatusError):
        NodeStatus.decode(msgpack.packb(raw))


def test_a_forged_entry_already_in_the_state_dir_stays_out_after_a_restart():
    forged = Entry("injected", Stamp(1 << 62, 0, "evil"), _spec("injected", 3))
    honest = Entry("web", Stamp(1_000, 0, "n0"), _spec("web"))
    core = NodeCore(name="n0", addr=Address("10.0.0.1", 7000), gossip_config=LOCAL, rng=random.Random(1),
                    now=10.0, capacity=Resources(2000, 4 * GiB, 0), cluster_config=CLUSTER,
                    stored_entries=[forged, honest])
    assert StateRefused("job", "injected", "", "stamp_ahead") in core.drain()
    assert core.view.job("injected") is None and core.view.job("web") == honest
