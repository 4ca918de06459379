"""What the gossip core hands back to its driver: commands and events.

How this works: the core never performs I/O.  After feeding it an input the
driver calls `Swim.drain()` and gets a list of these values, in order.
Commands (`SendDatagram`, `OpenStream`) are requests the driver must carry out;
their results come back as inputs (`receive_datagram`, `stream_reply`).
Events (`Member*`, `Payload*`, `User*`) are facts for the layers above.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Address:
    host: str  # textual IP ("127.0.0.1", "::1")
    port: int

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


class MemberState(enum.Enum):
    ALIVE = "alive"
    SUSPECT = "suspect"
    DEAD = "dead"  # failed
    LEFT = "left"  # left gracefully


@dataclass(frozen=True, slots=True)
class MemberInfo:
    name: str
    addr: Address
    state: MemberState
    incarnation: int
    meta: bytes
    vsn: tuple[int, ...]
    state_change_at: float  # core time of the last state change


class StreamPurpose(enum.Enum):
    PUSH_PULL = "push_pull"
    PING = "ping"  # TCP fallback ping
    USER = "user"  # reliable user message (no reply expected)


# ---- commands -------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SendDatagram:
    addr: Address
    data: bytes


@dataclass(frozen=True, slots=True)
class OpenStream:
    """Dial `addr` over TCP, write `data`, and if `expect_reply` read one
    framed reply with `Swim.stream_decoder(dialer=True)`.  Report the outcome
    with `Swim.stream_reply(stream_id, reply_or_None, now)` (a reply of None
    means the dial, write or read failed or timed out).  Give up after
    `timeout_s`."""

    stream_id: int
    addr: Address
    data: bytes
    expect_reply: bool
    timeout_s: float
    purpose: StreamPurpose


# ---- events ---------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class MemberJoined:
    member: MemberInfo


@dataclass(frozen=True, slots=True)
class MemberUpdated:
    """Alive member whose address or meta changed, or who came back from
    suspicion (refuted)."""

    member: MemberInfo


@dataclass(frozen=True, slots=True)
class MemberSuspected:
    member: MemberInfo


@dataclass(frozen=True, slots=True)
class MemberFailed:
    member: MemberInfo


@dataclass(frozen=True, slots=True)
class MemberLeft:
    member: MemberInfo


@dataclass(frozen=True, slots=True)
class PayloadUpdated:
    """A newer version of some node's per-node payload (latest wins)."""

    node: str
    version: int
    data: bytes


@dataclass(frozen=True, slots=True)
class UserBroadcast:
    origin: str
    data: bytes


@dataclass(frozen=True, slots=True)
class UserMessage:
    """A point-to-point message from `origin` (best effort or reliable)."""

    origin: str
    data: bytes


@dataclass(frozen=True, slots=True)
class UserStateReceived:
    """The opaque user state a peer sent in push/pull (see Swim.set_user_state)."""

    origin: str
    data: bytes
    join: bool


@dataclass(frozen=True, slots=True)
class JoinCompleted:
    """Outcome of the push/pull started by `Swim.join` for one seed."""

    seed: Address
    ok: bool
    error: str = ""
    learned: int = 0  # members in the seed's state


@dataclass(frozen=True, slots=True)
class PacketDropped:
    """A datagram or stream that failed to decode.  Counted by the driver."""

    reason: str  # "malformed", "label", "decrypt", "crc", "too_large", "unencrypted", ...
    source: Address | None


Command = SendDatagram | OpenStream
Event = (
    MemberJoined
    | MemberUpdated
    | MemberSuspected
    | MemberFailed
    | MemberLeft
    | PayloadUpdated
    | UserBroadcast
    | UserMessage
    | UserStateReceived
    | JoinCompleted
    | PacketDropped
)
Output = Command | Event
