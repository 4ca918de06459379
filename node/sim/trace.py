"""What the simulator writes into its trace for each event.

How this works: every output a core emits that is not a datagram or a
stream, and every simulator-level event (a node started, crashed,
restarted, paused, resumed: the classes here), becomes one trace entry
`(time, node index, kind, subject, number)` in `node.sim.world`.  `KIND`
names the kind; `trace_subject` picks the subject and number (a member
event's member and incarnation, a payload's node and version, a user
message's origin and size, ...).  The golden-trace digests hash these
entries, so changing a name here changes every digest.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from gossip.events import (
    MemberFailed,
    MemberJoined,
    MemberLeft,
    MemberSuspected,
    MemberUpdated,
    PacketDropped,
    PayloadUpdated,
    UserBroadcast,
    UserMessage,
    UserStateReceived,
)


# ---- simulator-level events, seen by listeners and in the trace ------------


@dataclass(frozen=True, slots=True)
class NodeStarted:
    name: str


@dataclass(frozen=True, slots=True)
class NodeFormed:
    """Started as a member of a formed cluster (World.start_formed),
    holding `members` others; no member event is emitted for them."""

    name: str
    members: int


@dataclass(frozen=True, slots=True)
class NodeCrashed:
    name: str


@dataclass(frozen=True, slots=True)
class NodeRestarted:
    name: str


@dataclass(frozen=True, slots=True)
class NodePaused:
    name: str


@dataclass(frozen=True, slots=True)
class NodeResumed:
    name: str


KIND = {
    MemberJoined: "joined",
    MemberUpdated: "updated",
    MemberSuspected: "suspected",
    MemberFailed: "failed",
    MemberLeft: "left",
    PayloadUpdated: "payload",
    UserBroadcast: "broadcast",
    UserMessage: "usermsg",
    UserStateReceived: "userstate",
    PacketDropped: "dropped",
    NodeStarted: "start",
    NodeFormed: "formed",
    NodeCrashed: "crash",
    NodeRestarted: "restart",
    NodePaused: "pause",
    NodeResumed: "resume",
}
MEMBER_EVENTS = (MemberJoined, MemberUpdated, MemberSuspected, MemberFailed, MemberLeft)
MEMBER_KIND = {cls: KIND[cls] for cls in MEMBER_EVENTS}


def trace_subject(ev: Any) -> tuple[str, int]:
    cls = ev.__class__
    if cls in MEMBER_EVENTS:
        m = ev.member
        return m.name, m.incarnation
    if cls is PayloadUpdated:
        return ev.node, ev.version
    if cls is UserBroadcast or cls is UserMessage or cls is UserStateReceived:
        return ev.origin, len(ev.data)
    if cls is PacketDropped:
        return ev.reason, -1
    if cls is NodeFormed:
        return ev.name, ev.members
    if cls.__name__ == "JoinCompleted":
        return str(ev.seed), int(ev.ok)
    return str(getattr(ev, "name", "?")), -1
