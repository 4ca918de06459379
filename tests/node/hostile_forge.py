"""Hostile memberlist messages for tests/node/test_hostile_peer.py.

How this works: `Forge` builds valid messages of every kind with the
project's own encoders (gossip.wire, gossip.compound, gossip.userdata,
node.core.wire) for one target agent, and mutates them: fields replaced by
integers at and past every width, wrong types, huge strings and bytes,
unknown or missing fields (`mutate_fields`, `remix`), and encoded bytes
flipped, cut or padded (`mangle`).  Each family (FAMILY_MAKERS) makes one
`Shot` at a time.  `Safety` decodes what is about to be sent the way the
agent will and refuses anything that would make the agent send to an
address or port that is not the test's own (a bit flip can make one).

Names: "ghost-N" are announced as alive (membership messages); "stranger-N"
only ever claim to send user data, so they never become members.
"""

from __future__ import annotations

import ipaddress
import json
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import msgpack

from auction.messages import Award, Bid, CallForBids, Decline, Deferred, Release, RoundExtended
from gossip import userdata
from gossip.compound import make_compound
from gossip.messages import (
    AckResp,
    Alive,
    Dead,
    ErrResp,
    IndirectPingReq,
    Message,
    NackResp,
    NodeStateCode,
    Ping,
    PushNodeState,
    PushPull,
    Suspect,
    UserMsg,
)
from gossip.packet import StreamDecoder, open_packet, seal_packet
from gossip.security import Keyring
from gossip.wire import compress_message, encode, encode_node_state, encode_stream_user
from node.core import wire as core_wire
from node.core.hlc import Stamp
from node.core.jobstore import Entry

VSN = (1, 5, 2, 2, 5, 4)
LOOPBACK4 = ipaddress.IPv4Address("127.0.0.1").packed
LOOPBACK6 = ipaddress.IPv6Address("::1").packed
BEFORE_SPEC = {"name": "before", "image": "busybox", "command": ["sleep", "3600"], "cpu": 0.25,
               "memory": "64MiB", "replicas": 1}


# ---- hostile values -------------------------------------------------------------------

HUGE_INTS = (-1, -(2**31), -(2**63), 2**16, 2**31 - 1, 2**31, 2**32 - 1, 2**32, 2**53 + 1, 2**63 - 1,
             2**63, 2**64 - 1)


class Forge:
    """Builds valid messages for one target and mutates them."""

    def __init__(self, rng: random.Random, target_name: str, target_port: int, sink_port: int, udp_port: int) -> None:
        self.rng = rng
        self.target_name = target_name
        self.ports = (sink_port, target_port, 0)
        self.allowed_ports = {sink_port, target_port, 0, udp_port}

    # -- values
    def big_int(self) -> int:
        r = self.rng
        return r.choice(HUGE_INTS) if r.random() < 0.8 else r.randrange(-(2**63), 2**64)

    def text(self, udp: bool = True) -> str:
        r = self.rng
        n = r.choice((0, 1, 64, 255, 256, 1024, 4096, 20_000 if udp else 200_000))
        return r.choice(("x", "ü", "\x00", "名", "a/b")) * n

    def blob(self, udp: bool = True) -> bytes:
        r = self.rng
        n = r.choice((0, 1, 16, 512, 513, 4096, 30_000 if udp else 300_000))
        return r.randbytes(min(n, 64)) * (n // 64 + 1) if n else b""

    def wrong(self, udp: bool = True) -> Any:
        r = self.rng
        return r.choice((None, True, False, 1.5, float("nan"), -7, self.big_int(), "str", b"bytes",
                         [1, "two", None], {"k": [1, 2]}, {1: 2}, [[[[[]]]]], self.text(udp), self.blob(udp)))

    def name(self, pool: str) -> str:
        """A node name from the pool, or the target's own, or an absurd one.
        Never the target's for "stranger": a message naming a member as its
        origin is that member's as far as the core can tell (without a key,
        the origin is only a claim), so it may write."""
        r = self.rng
        roll = r.random()
        if roll < 0.15 and pool != "stranger":
            return self.target_name
        if roll < 0.25:
            return ""
        if roll < 0.3:
            return self.text()
        return f"{pool}-{r.randrange(40)}"

    def addr(self) -> bytes:
        return self.rng.choice((LOOPBACK4, LOOPBACK4, LOOPBACK6, b"", b"\x7f", b"\x7f\x00\x00\x01\x00"))

    def port(self) -> int:
        return self.rng.choice(self.ports)

    def meta(self) -> bytes:
        r = self.rng
        meta = r.choice((b"", b"role=shoal", b"\x00" * 512, b"\x00" * 513, r.randbytes(40), b"k=v" * 400))
        return meta.replace(b"api", b"ap_")

    def vsn(self) -> tuple[int, ...]:
        return VSN

    # -- mutation of a message's fields (a msgpack map or array)
    def mutate_fields(self, body: Any, udp: bool = True) -> Any:
        r = self.rng
        if isinstance(body, dict):
            body = dict(body)
            for _ in range(r.randint(1, 3)):
                keys = list(body)
                roll = r.random()
                if not keys or roll < 0.1:
                    body[r.choice(("Unknown", "X" * 300, "Payload", "Meta"))] = self.wrong(udp)
                    continue
                k = r.choice(keys)
                if roll < 0.2:
                    del body[k]
                elif k in ("Addr", "SourceAddr", "Target"):
                    body[k] = r.choice((self.addr(), self.wrong(udp)))
                elif k in ("Port", "SourcePort"):
                    body[k] = r.choice((self.port(), self.big_int(), self.wrong(udp)))
                elif roll < 0.6:
                    body[k] = self.big_int() if isinstance(body[k], int) else self.wrong(udp)
                else:
                    body[k] = self.wrong(udp)
            return body
        if isinstance(body, list) and body:
            body = list(body)
            for _ in range(r.randint(1, 3)):
                i = r.randrange(len(body))
                roll = r.random()
                if roll < 0.15:
                    del body[i]
                    if not body:
                        break
                elif roll < 0.25:
                    body.append(self.wrong(udp))
                elif isinstance(body[i], list) and roll < 0.6:
                    body[i] = self.mutate_fields(body[i], udp)
                elif isinstance(body[i], int) and not isinstance(body[i], bool):
                    body[i] = self.big_int()
                else:
                    body[i] = self.wrong(udp)
            return body
        return self.wrong(udp)

    def remix(self, encoded: bytes, udp: bool = True) -> bytes:
        """memberlist's type byte + msgpack map (Go's old raw-string form) ->
        the same type with mutated fields, in either msgpack form."""
        return encoded[:1] + pack(self.mutate_fields(unpack_go(encoded[1:]), udp), bin_type=self.rng.random() < 0.5)

    def mangle(self, data: bytes) -> bytes:
        """Byte-level damage after encoding."""
        r = self.rng
        roll = r.random()
        if not data:
            return r.randbytes(r.randrange(1, 64))
        if roll < 0.4:
            b = bytearray(data)
            for _ in range(r.randint(1, 4)):
                b[r.randrange(len(b))] ^= 1 << r.randrange(8)
            return bytes(b)
        if roll < 0.7:
            return data[: r.randrange(len(data))]
        if roll < 0.85:
            return data + r.randbytes(r.randrange(1, 200))
        return data[:1] + r.randbytes(len(data) - 1)

    # -- valid messages, one per kind
    def ping(self) -> bytes:
        return encode(Ping(self.rng.randrange(2**32), self.name("ghost"), LOOPBACK4, self.port(), self.name("ghost")))

    def indirect_ping(self) -> bytes:
        return encode(IndirectPingReq(self.rng.randrange(2**32), LOOPBACK4, self.port(), self.name("ghost"),
                                      self.rng.random() < 0.5, LOOPBACK4, self.port(), self.name("ghost")))

    def ack(self) -> bytes:
        return encode(AckResp(self.rng.randrange(2**32), self.rng.choice((b"", b"\x01" * 100))))

    def nack(self) -> bytes:
        return encode(NackResp(self.rng.randrange(2**32)))

    def err(self) -> bytes:
        return encode(ErrResp(self.text()))

    def alive(self) -> bytes:
        r = self.rng
        return encode(Alive(r.choice((0, 1, r.randrange(2**32))), self.name("ghost"), self.addr_valid(), self.port(),
                            self.meta()[:512], self.vsn()))

    def addr_valid(self) -> bytes:
        return self.rng.choice((LOOPBACK4, LOOPBACK6))

    def suspect(self) -> bytes:
        r = self.rng
        return encode(Suspect(r.choice((0, 1, 2**32 - 1, r.randrange(2**32))), self.name("ghost"), self.name("ghost")))

    def dead(self) -> bytes:
        r = self.rng
        return encode(Dead(r.choice((0, 1, 2**32 - 1, r.randrange(2**32))), self.name("ghost"), self.name("ghost")))

    def node_state(self) -> PushNodeState:
        r = self.rng
        return PushNodeState(self.name("ghost"), self.addr_valid(), r.choice(self.ports[:2]), self.meta()[:512],
                             r.randrange(2**32), r.choice(list(NodeStateCode)), VSN)

    def push_pull(self, udp: bool = False) -> bytes:
        """The stream form, with mutated node states, header or user state."""
        r = self.rng
        nodes = [self.node_state() for _ in range(r.choice((0, 1, 3, 20)))]
        user = self.user_state(udp)
        if r.random() < 0.5:
            return encode(PushPull(r.random() < 0.5, tuple(nodes), user))
        header: Any = {"Join": r.random() < 0.5, "Nodes": len(nodes), "UserStateLen": len(user)}
        states = [unpack_go(encode_node_state(n)) for n in nodes]
        roll = r.random()
        if roll < 0.35:
            header = self.mutate_fields(header, udp)
        elif roll < 0.7 and states:
            i = r.randrange(len(states))
            states[i] = self.mutate_fields(states[i], udp)
        else:
            user = self.mangle(user)
        bin_type = r.random() < 0.5
        return b"\x06" + pack(header) + b"".join(pack(s, bin_type) for s in states) + user

    def user_state(self, udp: bool) -> bytes:
        r = self.rng
        payloads = {self.name("ghost"): (self.version(), self.status_or_blob(udp)) for _ in range(r.choice((0, 1, 5)))}
        return userdata.encode_state(payloads, r.choice((b"", self.blob(udp))))

    def version(self) -> int:
        r = self.rng
        return r.choice((0, 1, 2**32, 2**63 - 1, 2**63, 2**64 - 1, r.randrange(2**20)))

    def status_or_blob(self, udp: bool = True) -> bytes:
        r = self.rng
        if r.random() < 0.5:
            return self.blob(udp)
        status = [1, self.name("ghost"), [2000, 2**31, 10**9], [0, 0, 0], {"arch": "amd64"}, False, True, "", "x",
                  b"", 0, b"", None]
        return pack(self.mutate_fields(status, udp))

    def user(self, udp: bool = True) -> bytes:
        """A gossip user message (UDP form) carrying shoal's user data; its
        node messages write no job or claim (those are the node_messages
        family's, so each finding shows in one family)."""
        r = self.rng
        kind = r.randrange(4)
        if kind == 0:
            body = userdata.encode_payload(self.name("stranger") if r.random() < 0.7 else self.target_name,
                                           self.version(), self.status_or_blob(udp))
        elif kind == 1:
            body = userdata.encode_broadcast(self.name("stranger"), self.version(), self.node_message(udp, False))
        elif kind == 2:
            body = userdata.encode_direct(self.name("stranger"), self.node_message(udp, False))
        else:
            body = self.user_state(udp)
        if r.random() < 0.5:
            body = body[:2] + pack(self.mutate_fields(msgpack.unpackb(body[2:], raw=False, strict_map_key=False), udp))
        return b"\x08" + body

    def stamp(self) -> Stamp:
        r = self.rng
        now_ms = int(time.time() * 1000)
        wall = r.choice((now_ms, now_ms + 1, now_ms + 3_600_000, 2**62, 2**63 - 1, 2**64 - 1, 0))
        return Stamp(wall, r.choice((0, 1, 2**32, 2**63)), self.name("stranger"))

    def entry(self, udp: bool) -> Entry:
        r = self.rng
        name = r.choice(("before", "injected", "web", self.text(udp)[:200] or "x"))
        spec = {**BEFORE_SPEC, "name": name, "replicas": r.choice((0, 3, 99, 10**9))}
        return Entry(name, self.stamp(), None if r.random() < 0.3 else json.dumps(spec).encode())


    def node_message(self, udp: bool = True, writes: bool = True) -> bytes:
        """A node-core message (node.core.wire); `writes`: job entries and
        claims among them."""
        r = self.rng
        kind = r.randrange(8) if writes else r.choice((2, 3, 4, 5))
        msg: Any
        if kind == 0:
            msg = core_wire.EntryBroadcast(self.entry(udp))
        elif kind == 1:
            msg = core_wire.SyncEntries(core_wire.MAP_JOBS, tuple(self.entry(udp) for _ in range(r.randint(1, 5))),
                                        (0, 1))
        elif kind == 2:
            msg = core_wire.SyncDigest(r.choice(core_wire.MAPS), [r.randbytes(8) for _ in range(4)])
        elif kind == 3:
            msg = CallForBids(f"a#{r.randrange(99)}", self.name("stranger"), "before", "h", (0,), 5.0,
                              json.dumps(BEFORE_SPEC).encode())
        elif kind == 4:
            msg = Award(f"a#{r.randrange(99)}", self.name("stranger"), "before", "h", ((0, r.randrange(2**32)),))
        elif kind == 5:
            msg = r.choice((Bid(f"a#{r.randrange(99)}", self.name("stranger"), (1.0,), 0.5, 0),
                            Decline(f"a#{r.randrange(99)}", self.name("stranger"), "no"),
                            Deferred(f"a#{r.randrange(99)}", self.name("stranger")),
                            RoundExtended(f"a#{r.randrange(99)}", self.name("stranger")),
                            Release(f"a#{r.randrange(99)}", self.name("stranger"))))
        elif kind == 6:
            msg = None
        else:
            return pack([r.choice((1, 2, 3, 4, 10, 11, 12, 13, 14, 15, 16, 99)), *(self.wrong(udp) for _ in range(3))])
        try:
            data = core_wire.encode(msg) if msg is not None else pack([4, [self.claim_wire()]])
        except (TypeError, ValueError, AttributeError, OverflowError):
            data = pack([1, self.wrong(udp)])
        if r.random() < 0.5:
            data = pack(self.mutate_fields(msgpack.unpackb(data, raw=False, strict_map_key=False), udp))
        return data

    def claim_wire(self) -> list[Any]:
        """A claim (auction.claims.Claim.to_wire's layout) by a stranger on the job submitted before."""
        r = self.rng
        return [f"before/{r.randrange(3)}", r.choice((1, 2**32, 2**63)), self.name("stranger"),
                r.choice((self.target_name, self.name("stranger"))), r.random() < 0.3, "h", 250, 2**26, 0]


def unpack_go(body: bytes) -> Any:
    """A memberlist msgpack body (Go's raw strings: bytes and text alike),
    its map keys as text."""
    obj = msgpack.unpackb(body, raw=True, strict_map_key=False)
    if isinstance(obj, dict):
        obj = {k.decode("latin-1") if isinstance(k, bytes) else k: v for k, v in obj.items()}
    return obj


def pack(obj: Any, bin_type: bool = True) -> bytes:
    try:
        return msgpack.packb(obj, use_bin_type=bin_type)
    except (OverflowError, ValueError, TypeError):
        return msgpack.packb(str(obj)[:100], use_bin_type=bin_type)


# ---- what may be sent ----------------------------------------------------------------


def targets_of(msg: Message) -> list[tuple[bytes, Any]]:
    """The (address, port) pairs in a decoded message that the agent may send to."""
    if isinstance(msg, Ping):
        return [(msg.source_addr, msg.source_port)]
    if isinstance(msg, IndirectPingReq):
        return [(msg.target, msg.port), (msg.source_addr, msg.source_port)]
    if isinstance(msg, Alive):
        return [(msg.addr, msg.port)]
    if isinstance(msg, PushPull):
        return [(n.addr, n.port) for n in msg.nodes]
    return []


def metas_of(msg: Message) -> list[bytes]:
    if isinstance(msg, Alive):
        return [msg.meta]
    if isinstance(msg, PushPull):
        return [n.meta for n in msg.nodes]
    return []


class Safety:
    """Decodes what is about to be sent the way the agent will, and refuses
    anything that would make it send to an address or port not ours."""

    def __init__(self, allowed_ports: set[int]) -> None:
        self.allowed_ports = allowed_ports
        self.refused = 0

    def ok_messages(self, msgs: list[Message]) -> bool:
        for m in msgs:
            for addr, port in targets_of(m):
                if addr not in (b"", LOOPBACK4, LOOPBACK6) or port not in self.allowed_ports:
                    self.refused += 1
                    return False
            if any(b"api" in meta for meta in metas_of(m)):
                self.refused += 1
                return False
        return True

    def datagram(self, data: bytes, keyring: Keyring | None) -> bool:
        try:
            msgs = open_packet(data, label=b"", keyring=keyring)
        except Exception:  # noqa: BLE001 -- the agent cannot decode it either: it drops it
            return True
        return self.ok_messages(msgs)

    def stream(self, data: bytes, keyring: Keyring | None) -> bool:
        dec = StreamDecoder(label=b"", keyring=keyring, expect_label_header=True)
        try:
            msg = dec.feed(data) or dec.feed_eof()
        except Exception:  # noqa: BLE001 -- undecodable: dropped
            return True
        return self.ok_messages([msg])


# ---- the families ----------------------------------------------------------------------


@dataclass
class Shot:
    """One thing to send: its plaintext bytes (before any sealing) and how."""

    what: str
    data: bytes
    tcp: bool = False


def _probe(f: Forge) -> Shot:
    r = f.rng
    kind = r.choice(("ping", "indirect_ping", "ack", "nack", "err"))
    raw = getattr(f, kind)()
    tcp = kind in ("ping", "err") and r.random() < 0.2
    return Shot(kind, f.remix(raw, udp=not tcp) if r.random() < 0.7 else raw, tcp)


def _membership(f: Forge) -> Shot:
    r = f.rng
    kind = r.choice(("alive", "suspect", "dead"))
    raw = getattr(f, kind)()
    return Shot(kind, f.remix(raw) if r.random() < 0.7 else raw, r.random() < 0.1)


def _push_pull(f: Forge) -> Shot:
    r = f.rng
    udp = r.random() < 0.2
    return Shot("push_pull", f.push_pull(udp), not udp)


def _user(f: Forge) -> Shot:
    r = f.rng
    tcp = r.random() < 0.25
    raw = f.user(udp=not tcp)
    if tcp:
        from_udp = raw[1:]
        if r.random() < 0.3:  # a header whose length lies
            return Shot("user(stream, bad length)", b"\x08" + pack({"UserMsgLen": f.big_int()}) + from_udp, True)
        return Shot("user(stream)", encode_stream_user(UserMsg(from_udp)), True)
    return Shot("user", raw)


def _node_messages(f: Forge) -> Shot:
    r = f.rng
    data = f.node_message()
    body = (userdata.encode_broadcast(f.name("stranger"), f.version(), data) if r.random() < 0.6
            else userdata.encode_direct(f.name("stranger"), data))
    return Shot("node message", b"\x08" + body, r.random() < 0.15)


def _envelopes(f: Forge) -> Shot:
    """compound, compress, crc, label and encryption headers around valid or mutated parts."""
    r = f.rng
    makers = (f.ping, f.ack, f.alive, f.suspect, f.dead, f.nack, f.user)
    parts = [r.choice(makers)() for _ in range(r.choice((1, 2, 5, 30)))]
    parts = [f.remix(p) if p[0] != 8 and r.random() < 0.3 else p for p in parts]
    parts = [p for p in parts if len(p) < 65_536] or [f.ping()]  # a compound part's length is a u16
    roll = r.random()
    if roll < 0.3:
        return Shot("compound", make_compound(parts[:255]))
    if roll < 0.45:
        n = r.choice((0, 1, 255))
        lengths = b"".join(r.randbytes(2) for _ in range(n))
        return Shot("compound(lying lengths)", bytes((7, n)) + lengths + b"".join(parts))
    if roll < 0.65:
        inner = make_compound(parts[:255]) if len(parts) > 1 else parts[0]
        if r.random() < 0.5:
            return Shot("compress", compress_message(inner))
        body = {"Algo": r.choice((0, 1, 255, f.big_int())), "Buf": r.choice((f.blob(), compress_message(inner)[2:]))}
        return Shot("compress(mutated)", b"\x09" + pack(f.mutate_fields(body)))
    if roll < 0.75:
        return Shot("crc", seal_packet(parts[0], label=b"", keyring=None, crc=True, compress=False))
    if roll < 0.85:
        return Shot("label", bytes((244, r.randrange(256))) + r.choice((b"", b"prod", f.blob())) + parts[0])
    if roll < 0.93:
        # an encryption envelope in the clear
        return Shot("encrypt header", bytes((10,)) + r.randbytes(r.choice((0, 4, 40, 300))), r.random() < 0.5)
    # a stream compressed, or with an encryption header whose length lies
    return Shot("stream envelope", r.choice((compress_message(r.choice(parts)),
                                             bytes((10,)) + (f.big_int() % 2**32).to_bytes(4, "big"))), True)


def _random(f: Forge) -> Shot:
    r = f.rng
    roll = r.random()
    tcp = r.random() < 0.2
    if roll < 0.4:
        return Shot("random bytes", r.randbytes(r.choice((1, 2, 17, 300, 1400, 9000))), tcp)
    if roll < 0.7:  # each type byte with a random msgpack body
        t = r.choice((*range(14), 244, 255))
        return Shot(f"type {t} + random body", bytes((t,)) + pack(f.wrong(not tcp)), tcp)
    maker = r.choice((f.ping, f.indirect_ping, f.ack, f.nack, f.err, f.alive, f.suspect, f.dead, f.user))
    return Shot("damaged valid message", f.mangle(maker()), tcp)


FAMILY_MAKERS: dict[str, Callable[[Forge], Shot]] = {
    "probes": _probe,
    "membership": _membership,
    "push_pull": _push_pull,
    "user": _user,
    "node_messages": _node_messages,
    "envelopes": _envelopes,
    "random": _random,
}
