"""A simulated node's record: its name, address, status and bookkeeping.

How this works: `node.sim.world.World` holds one `SimNode` per node and
changes it as the node starts, crashes, pauses, restarts or has its clock
skewed; checkers and faults read it (`status`, `crashed_at`, ...).  The
statuses are plain strings, compared by identity.  Addresses are virtual:
nothing is ever sent to them outside the simulator.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

from gossip.events import Address

NEW = "new"
RUNNING = "running"
PAUSED = "paused"
CRASHED = "crashed"

PORT = 7946


class SimError(RuntimeError):
    """The simulation (or a core inside it) did something impossible."""


def _not_started(inp: Any, now: float) -> Any:
    raise SimError("the node has no core yet")


def node_address(i: int) -> Address:
    """Node i's purely virtual address (nothing is ever sent to it)."""
    return Address(f"10.99.{i // 250}.{i % 250 + 1}", PORT)


def node_name(i: int) -> str:
    return f"node-{i}"


class SimNode:
    __slots__ = (
        "addr",
        "clock",
        "core",
        "core_kwargs",
        "crashed_at",
        "deadline",
        "epoch",
        "feed",
        "gen",
        "idx",
        "inbox",
        "inbox_bytes",
        "last_pause",
        "name",
        "paused_since",
        "pending",
        "receive_datagram",
        "restarted_at",
        "rng",
        "spin_t",
        "spins",
        "status",
    )

    def __init__(self, idx: int, name: str, addr: Address) -> None:
        self.idx = idx
        self.name = name
        self.addr = addr
        self.core: Any = None
        self.feed: Callable[[Any, float], Any] = _not_started
        self.receive_datagram: Callable[[bytes, Address, float], None] | None = None
        self.rng: random.Random | None = None
        self.status = NEW
        self.epoch = 0  # bumped at every crash/restart
        self.gen = 0  # timer generation
        self.deadline: float | None = None  # world time of the live timer
        self.pending: dict[int, tuple[int, bool]] = {}  # stream_id -> (dst, expect_reply)
        self.inbox: list[tuple[int, Any, Any]] = []  # queued (kind, a, b) while paused
        self.inbox_bytes = 0  # datagram bytes in inbox (the socket buffer)
        self.clock: tuple[float, float, float] | None = None  # (tbase, lbase, rate)
        self.paused_since: float | None = None
        self.spin_t = -1.0
        self.spins = 0
        self.crashed_at: float | None = None
        self.restarted_at: float | None = None
        self.last_pause: tuple[float, float] | None = None  # (start, end) of last pause
        self.core_kwargs: dict[str, Any] = {}

    def local(self, t: float) -> float:
        c = self.clock
        if c is None:
            return t
        tb, lb, rate = c
        return lb + (t - tb) * rate

    def __repr__(self) -> str:
        return f"<SimNode {self.name} {self.status}>"
