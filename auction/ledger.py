"""A bidder's own ledger: capacity, committed slots, short reservations.

How this works: bids are computed from this ledger, never from gossip (which
is always a little stale).  When a node bids for k slots it *reserves* their
resources for `ttl_s`, so concurrent auctions run by different coordinators
cannot together push it over capacity.  An award turns a reservation into a
commitment; a reservation nobody awards simply expires.  The invariant, which
every mutating method re-checks, is

    sum(committed) + sum(live reservations) <= capacity

with one exception: `adopt` records slots that are already running (an agent
restarting with its containers up, or a partition merge); those are facts, so
they are admitted even over capacity, and the node then bids for nothing
until it is back under.

A reservation may preempt (auction.preemption): it names `victims`,
committed slots of ours whose room it counts on.  They still run until an
award releases them (`commit`), so they stay counted, and the reservation
counts only what their room does not cover (`_counted`): nothing else is
promised room they hold, and no second preempting reservation picks them
(`promised`).  Expiry or a drop leaves them untouched.

Host ports are held the same way, per slot, in the ledger's port book
(auction.portbook has the rule): a reservation holds the ports its slot
would get, a commitment the ports its claim carries, and whatever frees the
slot's resources (expiry, drop, release) frees its ports.  A slot whose
ports cannot be had is not reserved, as one that does not fit.  `adopt`
takes a running replica's ports back from its claim, as facts; a
reservation that held one of them is dropped (its award, if any comes,
picks ports again).
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from itertools import chain

from .portbook import Assigned, PortBook, PortRefusal
from .ports import DEFAULT_PORT_RANGE, PortSpec
from .resources import ZERO, Resources, total_of


class OvercommitError(AssertionError):
    pass


@dataclass(slots=True)
class Reservation:
    auction_id: str
    demand: Resources
    expires_at: float
    victims: tuple[str, ...] = ()    # committed slots whose room this one counts on (preemption)


class Ledger:
    def __init__(self, capacity: Resources, port_range: tuple[int, int] = DEFAULT_PORT_RANGE) -> None:
        self.capacity = capacity
        self.ports = PortBook(port_range)
        self.committed: dict[str, Resources] = {}
        self.reservations: dict[str, Reservation] = {}
        # Set when adopt() took us over capacity; cleared once back under.
        self._adopted_overflow = False

    # ---- reads
    def used(self, now: float) -> Resources:
        self.expire(now)
        return self._total_ignoring_expiry()

    def reserved_for(self, auction_ids: Collection[str]) -> Resources:
        """What our reservations for those auctions hold."""
        if not auction_ids:
            return ZERO
        return total_of(r.demand for r in self.reservations.values() if r.auction_id in auction_ids)

    def committed_total(self) -> Resources:
        return total_of(self.committed.values())

    def promised(self) -> set[str]:
        """Committed slots a preempting reservation counts on (no other may pick them)."""
        return {v for r in self.reservations.values() for v in r.victims}

    def free(self, now: float) -> Resources:
        return self.capacity - self.used(now)

    def holds(self, slot: str) -> bool:
        return slot in self.committed

    def ports_of(self, slot: str) -> Assigned:
        """The host ports `slot` holds here, (label, port) sorted by label."""
        return self.ports.of(slot)

    def port_refusal(self, slot: str, wanted: tuple[PortSpec, ...]) -> PortRefusal | None:
        """Why `slot` cannot have the ports `wanted` here now, or None."""
        picked = self.ports.pick(slot, wanted)
        return picked if isinstance(picked, PortRefusal) else None

    # ---- writes
    def expire(self, now: float) -> list[str]:
        gone = [s for s, r in self.reservations.items() if r.expires_at <= now]
        for s in gone:
            del self.reservations[s]
            self.ports.free(s)
        return gone

    def reserve(self, auction_id: str, slots: list[str], demand: Resources, ttl_s: float,
                now: float, ports: tuple[PortSpec, ...] = ()) -> list[str]:
        """Reserve as many of `slots` as fit (resources and `ports`), in
        order; returns those reserved."""
        free = self.free(now)
        out = []
        for slot in slots:
            if slot in self.committed:
                continue  # already ours; nothing more to reserve
            current = self.reservations.get(slot)
            if current is not None:
                # Re-bidding for the same slot (a retry): refresh, not double.
                free = free + self._counted(current)
                del self.reservations[slot]
            assigned = self.ports.pick(slot, ports) if ports else ()
            if not demand.fits_in(free) or isinstance(assigned, PortRefusal):
                self.ports.free(slot)  # a refreshed reservation's ports go with it
                break
            self.reservations[slot] = Reservation(auction_id, demand, now + ttl_s)
            if assigned:
                self.ports.hold(slot, assigned)
            free = free - demand
            out.append(slot)
        self.check(now)
        return out

    def reserve_preempting(self, auction_id: str, slot: str, demand: Resources, ttl_s: float, now: float,
                           victims: tuple[str, ...], ports: tuple[PortSpec, ...] = ()) -> bool:
        """Reserve `slot` on the room of committed `victims` (auction.preemption
        picked them: with their room, it fits); False if it does not after all."""
        self.drop_reservation(slot)
        victims = tuple(v for v in victims if v in self.committed and v not in self.promised())
        room = self.free(now) + total_of(self.committed[v] for v in victims)     # once they are gone
        assigned = self.ports.pick(slot, ports) if ports else ()
        if not victims or not demand.fits_in(room) or isinstance(assigned, PortRefusal):
            return False
        self.reservations[slot] = Reservation(auction_id, demand, now + ttl_s, victims)
        if assigned:
            self.ports.hold(slot, assigned)
        self.check(now)
        return True

    def victims_of(self, slot: str) -> tuple[str, ...]:
        r = self.reservations.get(slot)
        return () if r is None else r.victims

    def reserved_by(self, auction_id: str) -> list[str]:
        return [s for s, r in self.reservations.items() if r.auction_id == auction_id]

    def move_reservation(self, src: str, dst: str) -> None:
        """Let the reservation made for slot `src` stand for slot `dst`
        (same auction, same demand: only the coordinator's choice of slot
        differs)."""
        self.reservations[dst] = self.reservations.pop(src)
        self.ports.move(src, dst)

    def drop_reservation(self, slot: str) -> None:
        if self.reservations.pop(slot, None) is not None:
            self.ports.free(slot)

    def commit(self, slot: str, demand: Resources, now: float, ports: tuple[PortSpec, ...] = ()) -> bool:
        """Accept an award: use the reservation if we hold one, else take the
        slot only if it still fits (resources and `ports`; the ports a
        reservation or an earlier commitment of the slot holds are kept).
        False means decline."""
        if slot in self.committed:
            if ports or self.ports.of(slot):
                again = self.ports.pick(slot, ports)
                if isinstance(again, PortRefusal):
                    return False
                self.ports.hold(slot, again)
            self.committed[slot] = demand
            return True
        reservation = self.reservations.pop(slot, None)
        victims = [] if reservation is None else [v for v in reservation.victims if v in self.committed]
        free = self.free(now) + total_of(self.committed[v] for v in victims)     # once they are gone
        if reservation is not None and not reservation.victims:
            free = free + reservation.demand
        assigned = self.ports.pick(slot, ports) if ports else ()
        if not demand.fits_in(free) or isinstance(assigned, PortRefusal):
            if reservation is not None:
                self.reservations[slot] = reservation
            return False
        for victim in victims:      # preempted: their room is this slot's now
            self.release(victim)
        self.committed[slot] = demand
        if assigned or self.ports.of(slot):
            self.ports.hold(slot, assigned)
        self.check(now)
        return True

    def _total_ignoring_expiry(self) -> Resources:
        return total_of(chain(self.committed.values(), (self._counted(r) for r in self.reservations.values())))

    def _counted(self, r: Reservation) -> Resources:
        """What a reservation adds to the used total: its demand, less the
        room of its victims (still running, still counted), never below 0."""
        if not r.victims:
            return r.demand
        held = total_of(self.committed[v] for v in r.victims if v in self.committed)
        return Resources(max(0, r.demand.cpu_millis - held.cpu_millis),
                         max(0, r.demand.memory_bytes - held.memory_bytes),
                         max(0, r.demand.disk_bytes - held.disk_bytes))

    def adopt(self, slot: str, demand: Resources, ports: Assigned = ()) -> None:
        self.reservations.pop(slot, None)
        self.committed[slot] = demand
        if ports:
            for other in self.ports.holders_of(ports) - {slot}:
                self.drop_reservation(other)  # a running replica's ports are facts
        self.ports.hold(slot, ports)
        if not self._total_ignoring_expiry().fits_in(self.capacity):
            self._adopted_overflow = True

    def release(self, slot: str) -> None:
        self.committed.pop(slot, None)
        self.reservations.pop(slot, None)
        self.ports.free(slot)
        if self._adopted_overflow and self._total_ignoring_expiry().fits_in(self.capacity):
            self._adopted_overflow = False

    def over_capacity(self, now: float) -> bool:
        return not self.used(now).fits_in(self.capacity)

    def check(self, now: float) -> None:
        used = self.used(now)
        if not used.fits_in(self.capacity) and not self._adopted_overflow:
            raise OvercommitError(f"ledger over capacity: used {used}, capacity {self.capacity}")
