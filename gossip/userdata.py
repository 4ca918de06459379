"""shoal's own data inside memberlist user messages and push/pull user state.

How this works: memberlist gives the layer above one opaque channel, the
user message (type 8), and one opaque blob in push/pull.  Serf puts its own
type byte first (0..9); shoal puts MAGIC (0x53, 'S', outside Serf's range) and
a kind byte, then a msgpack body.  A Serf peer logs our messages as unknown
and ignores them; we ignore Serf's the same way, so both can share a cluster.

kinds (`decode` returns the named tuple of the same name):
  PAYLOAD    [node, version, data]    per-node payload, latest version wins
  BROADCAST  [origin, msg_id, data]   user broadcast, de-duplicated by (origin, msg_id)
  DIRECT     [origin, data]           point-to-point user message
  STATE      {"p": {node: [version, data]}, "u": bytes}   push/pull user state

Versions and ids are range-checked here (0..2^63-1, `gossip.limits`); a
value outside is a UserDataError like any malformed field.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from typing import NamedTuple

import msgpack  # type: ignore[import-untyped, unused-ignore]  # msgpack ships no type hints

from .limits import BROADCAST_ID_MAX, PAYLOAD_VERSION_MAX

MAGIC = 0x53


class Kind(enum.IntEnum):
    PAYLOAD = 1
    BROADCAST = 2
    DIRECT = 3
    STATE = 4


class UserDataError(ValueError):
    pass


class Payload(NamedTuple):
    node: str
    version: int
    data: bytes


class Broadcast(NamedTuple):
    origin: str
    msg_id: int
    data: bytes


class Direct(NamedTuple):
    origin: str
    data: bytes


class State(NamedTuple):
    payloads: dict[str, tuple[int, bytes]]
    user: bytes


Decoded = Payload | Broadcast | Direct | State

_packb: Callable[..., bytes] = msgpack.packb
_unpackb: Callable[..., object] = msgpack.unpackb


def _pack(kind: Kind, body: object) -> bytes:
    return bytes((MAGIC, kind)) + _packb(body, use_bin_type=True)


def encode_payload(node: str, version: int, data: bytes) -> bytes:
    return _pack(Kind.PAYLOAD, [node, version, data])


def encode_broadcast(origin: str, msg_id: int, data: bytes) -> bytes:
    return _pack(Kind.BROADCAST, [origin, msg_id, data])


def encode_direct(origin: str, data: bytes) -> bytes:
    return _pack(Kind.DIRECT, [origin, data])


def encode_state(payloads: dict[str, tuple[int, bytes]], user_state: bytes) -> bytes:
    return _pack(Kind.STATE, {"p": {n: [v, d] for n, (v, d) in payloads.items()}, "u": user_state})


def is_ours(buf: bytes) -> bool:
    return len(buf) >= 2 and buf[0] == MAGIC


def _want(cond: bool, what: str) -> None:
    if not cond:
        raise UserDataError(what)


def _in_range(v: object, top: int) -> bool:
    # (a bool is an int to isinstance; not a number here)
    return type(v) is int and 0 <= v <= top


def decode(buf: bytes, max_bytes: int) -> Decoded:
    """The message, as the named tuple of its kind.  Raises UserDataError on
    anything malformed."""
    _want(is_ours(buf), "not a shoal message")
    _want(len(buf) <= max_bytes, "too large")
    try:
        kind = Kind(buf[1])
        body = _unpackb(buf[2:], raw=False, strict_map_key=True,
                        max_bin_len=max_bytes, max_str_len=max_bytes,
                        max_array_len=1_048_576, max_map_len=1_048_576)
    except (ValueError, TypeError, msgpack.UnpackException, msgpack.ExtraData) as exc:
        raise UserDataError(f"undecodable: {exc}") from None
    except Exception as exc:  # msgpack raises a few odd types on garbage
        raise UserDataError(f"undecodable: {exc!r}") from None
    if kind is Kind.PAYLOAD:
        if not (isinstance(body, list) and len(body) == 3):
            raise UserDataError("payload shape")
        node, version, data = body
        _want(isinstance(node, str) and _in_range(version, PAYLOAD_VERSION_MAX)
              and isinstance(data, bytes), "payload fields")
        return Payload(node, version, data)
    if kind is Kind.BROADCAST:
        if not (isinstance(body, list) and len(body) == 3):
            raise UserDataError("broadcast shape")
        origin, msg_id, data = body
        _want(isinstance(origin, str) and _in_range(msg_id, BROADCAST_ID_MAX) and isinstance(data, bytes),
              "broadcast fields")
        return Broadcast(origin, msg_id, data)
    if kind is Kind.DIRECT:
        if not (isinstance(body, list) and len(body) == 2):
            raise UserDataError("direct shape")
        origin, data = body
        _want(isinstance(origin, str) and isinstance(data, bytes), "direct fields")
        return Direct(origin, data)
    if not isinstance(body, dict):
        raise UserDataError("state shape")
    payloads_raw = body.get("p", {})
    user = body.get("u", b"")
    _want(isinstance(payloads_raw, dict) and isinstance(user, bytes), "state fields")
    payloads: dict[str, tuple[int, bytes]] = {}
    for node, entry in payloads_raw.items():
        _want(isinstance(node, str) and isinstance(entry, list) and len(entry) == 2, "state entry")
        version, data = entry
        _want(_in_range(version, PAYLOAD_VERSION_MAX) and isinstance(data, bytes), "state entry fields")
        payloads[node] = (version, data)
    return State(payloads, user)
