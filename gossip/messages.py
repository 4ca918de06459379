"""Memberlist protocol messages as frozen value types.

How this works: every message that crosses the wire between two memberlist
peers (shoal or Go) is one of the dataclasses below.  `gossip.wire` turns them
into bytes and back; nothing here knows about bytes.  Field names follow the Go
struct fields (snake_case here, CamelCase on the wire), and the numeric type
bytes are memberlist's `messageType` enum, which upstream says "ONLY APPEND".
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


class MessageType(enum.IntEnum):
    PING = 0
    INDIRECT_PING = 1
    ACK = 2
    SUSPECT = 3
    ALIVE = 4
    DEAD = 5
    PUSH_PULL = 6
    COMPOUND = 7
    USER = 8
    COMPRESS = 9
    ENCRYPT = 10
    NACK = 11
    HAS_CRC = 12
    ERR = 13
    HAS_LABEL = 244


class NodeStateCode(enum.IntEnum):
    """pushNodeState.State on the wire (memberlist state.go)."""

    ALIVE = 0
    SUSPECT = 1
    DEAD = 2
    LEFT = 3


@dataclass(frozen=True, slots=True)
class Ping:
    seq_no: int
    node: str  # the intended recipient; "" means any
    source_addr: bytes = b""  # omitted on the wire when empty
    source_port: int = 0  # omitted when 0
    source_node: str = ""  # omitted when empty


@dataclass(frozen=True, slots=True)
class IndirectPingReq:
    seq_no: int
    target: bytes  # raw 4 or 16 byte IP
    port: int
    node: str
    nack: bool
    source_addr: bytes = b""
    source_port: int = 0
    source_node: str = ""


@dataclass(frozen=True, slots=True)
class AckResp:
    seq_no: int
    payload: bytes = b""  # encoded as msgpack nil when empty


@dataclass(frozen=True, slots=True)
class NackResp:
    seq_no: int


@dataclass(frozen=True, slots=True)
class ErrResp:
    error: str


@dataclass(frozen=True, slots=True)
class Suspect:
    incarnation: int
    node: str
    from_node: str  # "From" on the wire


@dataclass(frozen=True, slots=True)
class Alive:
    incarnation: int
    node: str
    addr: bytes  # raw 4 or 16 byte IP
    port: int
    meta: bytes  # <= 512 bytes; nil on the wire when empty
    vsn: tuple[int, ...]  # (pmin, pmax, pcur, dmin, dmax, dcur)


@dataclass(frozen=True, slots=True)
class Dead:
    incarnation: int
    node: str
    from_node: str  # From == Node means a graceful leave


@dataclass(frozen=True, slots=True)
class UserMsg:
    """Opaque bytes for the layer above (type 8).  Over UDP the raw bytes
    follow the type byte; over TCP a userMsgHeader{UserMsgLen} precedes them."""

    payload: bytes


@dataclass(frozen=True, slots=True)
class PushNodeState:
    name: str
    addr: bytes
    port: int
    meta: bytes
    incarnation: int
    state: NodeStateCode
    vsn: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class PushPull:
    """A whole push/pull exchange half: header + node states + user state."""

    join: bool
    nodes: tuple[PushNodeState, ...]
    user_state: bytes = b""


Message = (
    Ping
    | IndirectPingReq
    | AckResp
    | NackResp
    | ErrResp
    | Suspect
    | Alive
    | Dead
    | UserMsg
    | PushPull
)
