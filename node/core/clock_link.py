"""The node core's side of cluster time (node.core.cluster_clock holds the rule).

How this works: the core reads its wall clock as raw wall clock plus the
cluster clock's correction (`NodeCore._wall_ms`).  Here it feeds the
cluster clock: `offer` puts our raw wall clock in the gossip layer's
push/pull user state just before the gossip layer may send one (timers,
an incoming stream; a push/pull a datagram starts carries the state of
the last timer, at most a probe interval old), `unread` takes the peers'
user states out of the gossip layer's outputs as samples, and `refresh`
recomputes the estimate (at each sample, over the members alive then:
samples come every push/pull interval or so).  `offer` also gives the
gossip layer the corrected clock its probe slots are numbered on.
`write_wall_ms` is the wall clock a job write is stamped with, and refuses
the write while our clock is still too far ahead after the correction.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, TypeVar

from gossip.events import UserStateReceived
from node.core.cluster_clock import (
    MAX_SAMPLE_AGE_PULLS,
    MAX_SAMPLE_AGE_S,
    ClockAheadError,
    decode_state,
    encode_state,
)

if TYPE_CHECKING:
    from node.core.node_core import NodeCore

Out = TypeVar("Out")


def raw_wall_ms(core: NodeCore, now: float) -> int:
    """Our own wall clock, uncorrected: what we tell peers."""
    return int((now + core.wall_offset_s) * 1000)


def offer(core: NodeCore, now: float) -> None:
    core.swim.set_user_state(encode_state(raw_wall_ms(core, now)))
    # The gossip layer numbers its probe slots on the cluster's wall clock
    # (gossip.members, "The probe ring"): ours, corrected.
    core.swim.probe_clock_offset_s = core.wall_offset_s + core.cluster_clock.correction_ms / 1000


def unread(core: NodeCore, outputs: Iterable[Out], now: float) -> Iterator[Out]:
    """The gossip layer's outputs without the user states we read."""
    for out in outputs:
        if not (isinstance(out, UserStateReceived) and took(core, out, now)):
            yield out


def took(core: NodeCore, out: UserStateReceived, now: float) -> bool:
    """A peer's push/pull user state: True if it was ours to read (a sample
    is taken from a member); False passes it on, as before."""
    wall = decode_state(out.data)
    if wall is None:
        return False
    if out.origin != core.name and core.swim.member(out.origin) is not None:
        core.cluster_clock.sample(out.origin, wall, raw_wall_ms(core, now), now)
        refresh(core, now)
    return True


def refresh(core: NodeCore, now: float) -> None:
    live = core.swim.alive_names() - {core.name}
    pull_s = core.swim.config.push_pull_interval_for(len(live) + 1)  # as the gossip layer spaces them
    core.cluster_clock.update(live, now, max(MAX_SAMPLE_AGE_S, MAX_SAMPLE_AGE_PULLS * pull_s))


def write_wall_ms(core: NodeCore, now: float) -> int:
    """The wall clock to stamp a job write with; ClockAheadError if peers
    would refuse that stamp."""
    why = core.cluster_clock.write_refusal(core.clock.max_skew_ms)
    if why is not None:
        raise ClockAheadError(why)
    return core._wall_ms(now)
