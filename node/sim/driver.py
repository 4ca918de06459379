"""How the simulator feeds a core: one `feed(input, now)` for every kind of core.

How this works: the world hands every input to a node as a value from
`node.core.inputs` (Datagram, StreamIn, StreamReply, Join, Leave, Broadcast,
WriteJob, Persisted, ...), exactly as the trio agent does.  A `NodeCore` takes
them itself (`NodeCore.feed`).  A gossip-only core (`gossip.swim.Swim`, or
the tests' EchoCore) has the older shape, one method per input; `SwimFeed`
maps the inputs such a core understands onto those methods, so gossip-only
simulations (and their golden traces) run unchanged.  Time stays
`next_deadline()` / `handle_timers(now)` on every core.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from node.core.inputs import Broadcast, Datagram, Join, Leave, StreamIn, StreamReply


class SwimFeed:
    """`feed(input, now)` for a core with Swim's method-per-input shape."""

    __slots__ = ("core",)

    def __init__(self, core: Any) -> None:
        self.core = core

    def feed(self, inp: object, now: float) -> Any:
        core = self.core
        if inp.__class__ is Datagram:
            # The hot path: most inputs are datagrams (see NodeCore.feed).
            core.receive_datagram(inp.data, inp.src, now)  # type: ignore[attr-defined]
            return None
        match inp:
            case Datagram(data, src):
                core.receive_datagram(data, src, now)
            case StreamIn(msg, src):
                return core.receive_stream(msg, src, now)
            case StreamReply(stream_id, reply):
                core.stream_reply(stream_id, reply, now)
            case Join(seeds):
                core.join(list(seeds), now)
            case Leave():
                core.leave(now)
            case Broadcast(data):
                core.broadcast(data, now)
            case _:
                raise TypeError(f"{type(core).__name__} takes no {type(inp).__name__} input")
        return None


def datagram_receiver(core: Any) -> Callable[[bytes, Any, float], None] | None:
    """For a gossip-only core, its own `receive_datagram`, which the world calls
    directly: datagrams are most of a gossip simulation's inputs, and building
    a Datagram value for each cost a few per cent of its CPU.  None for a core
    with `feed` (the NodeCore), which gets Datagram values like the agent's."""
    return None if callable(getattr(core, "feed", None)) else core.receive_datagram


def gossip_of(core: Any) -> Any:
    """The gossip layer of a core: a gossip-only core itself, or a NodeCore's Swim."""
    return getattr(core, "swim", core)


def feeder(core: Any) -> Callable[[Any, float], Any]:
    """The function that feeds inputs to core: its own `feed`, or SwimFeed's."""
    own = getattr(core, "feed", None)
    return own if callable(own) else SwimFeed(core).feed
