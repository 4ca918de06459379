"""A node's host ports: which are held, by which slot, and how a slot gets its own.

How this works: host ports are a node resource, as cpu and memory are
(auction.ledger holds this book next to its resource sums).  Every port a
slot holds, by a reservation (a bid) or a commitment (an accepted award),
is written here under that slot, so concurrent auctions never hand one port
to two slots.  The rule for a slot asking for a job's ports (auction.ports):

  * a `static` port must be free on the node (or already the slot's own);
    it may lie inside or outside the node's range;
  * each dynamic port takes the lowest free port of the node's range
    (inclusive) that this slot does not already use for another label; a
    port the slot already holds for the same label is kept, so re-awards
    and restarts do not move a replica's ports.

Lowest-free is deterministic (no randomness, simulator runs replay) and
keeps the used part of the range compact.  A refusal says why, naming the
port and the slot holding it, or the range that is used up.  Ports a
running replica already holds (adopted after a restart, auction.ledger) are
facts and are written even over a clash.  Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from .ports import DEFAULT_PORT_RANGE, PortSpec

# (label, host port) pairs, sorted by label: what Claim.ports carries.
Assigned = tuple[tuple[str, int], ...]


@dataclass(frozen=True, slots=True)
class PortRefusal:
    """Why a slot cannot have its ports here: `port` is held by `holder`
    (a static clash), or (port None) the range has too few free ports."""

    port: int | None
    holder: str
    port_range: tuple[int, int]
    needed: int = 0
    free: int = 0

    def text(self, node: str) -> str:
        if self.port is not None:
            return f"port {self.port} is taken on {node} by {self.holder}"
        lo, hi = self.port_range
        if self.needed > 1:
            return f"no free port in {lo}-{hi} on {node} (needs {self.needed}, {self.free} free)"
        return f"no free port in {lo}-{hi} on {node}"


class PortBook:
    def __init__(self, port_range: tuple[int, int] = DEFAULT_PORT_RANGE) -> None:
        lo, hi = port_range
        if not 1 <= lo <= hi <= 65535:
            raise ValueError(f"port range {lo}-{hi} is not within 1-65535 with low <= high")
        self.port_range = (lo, hi)
        self._holder: dict[int, str] = {}        # port -> slot
        self._of: dict[str, Assigned] = {}       # slot -> its ports

    # ---- reads
    def of(self, slot: str) -> Assigned:
        return self._of.get(slot, ())

    def holder(self, port: int) -> str | None:
        return self._holder.get(port)

    def held(self) -> dict[int, str]:
        return dict(self._holder)

    def pick(self, slot: str, wanted: Iterable[PortSpec]) -> Assigned | PortRefusal:
        """The ports `slot` would get for `wanted` (nothing changes)."""
        wanted = tuple(wanted)
        if not wanted:
            return ()

        def free_for_slot(port: int) -> bool:
            return self._holder.get(port, slot) == slot

        out: dict[str, int] = {}
        for p in wanted:
            if p.static is not None:
                holder = self._holder.get(p.static, slot)
                if holder != slot:
                    return PortRefusal(p.static, holder, self.port_range)
                out[p.label] = p.static
        lo, hi = self.port_range
        current = dict(self.of(slot))
        dynamic = [p for p in wanted if p.static is None]
        taken = set(out.values())
        rest = []
        for p in dynamic:
            mine = current.get(p.label)
            if mine is not None and lo <= mine <= hi and mine not in taken and free_for_slot(mine):
                out[p.label] = mine
                taken.add(mine)
            else:
                rest.append(p)
        if rest:
            port = lo
            for p in rest:
                while port <= hi and (port in taken or not free_for_slot(port)):
                    port += 1
                if port > hi:
                    statics = {p.static for p in wanted if p.static is not None}
                    return self._exhausted(slot, len(dynamic), statics)
                out[p.label] = port
                taken.add(port)
        return tuple(sorted(out.items()))

    def _exhausted(self, slot: str, needed: int, statics: set[int]) -> PortRefusal:
        # Free for this slot's dynamic ports: the range, less what other
        # slots hold in it, less this slot's own static ports in it.
        lo, hi = self.port_range
        held_in_range = sum(1 for port, s in self._holder.items() if lo <= port <= hi and s != slot)
        statics_in_range = sum(1 for port in statics if lo <= port <= hi and self._holder.get(port, slot) == slot)
        free = hi - lo + 1 - held_in_range - statics_in_range
        return PortRefusal(None, "", self.port_range, needed, free)

    # ---- writes
    def hold(self, slot: str, ports: Assigned) -> None:
        """`slot` now holds exactly `ports` (a later holder of a port wins:
        only adopt, writing facts, can clash)."""
        self.free(slot)
        if not ports:
            return
        self._of[slot] = ports
        for _, port in ports:
            self._holder[port] = slot

    def free(self, slot: str) -> None:
        for _, port in self._of.pop(slot, ()):
            if self._holder.get(port) == slot:
                del self._holder[port]

    def move(self, src: str, dst: str) -> None:
        ports = self._of.get(src, ())
        self.free(src)
        self.hold(dst, ports)

    def holders_of(self, ports: Assigned) -> set[str]:
        """The slots holding any of `ports`."""
        return {s for _, port in ports if (s := self._holder.get(port)) is not None}
