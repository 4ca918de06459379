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
"""

from __future__ import annotations

from dataclasses import dataclass

from .resources import ZERO, Resources


class OvercommitError(AssertionError):
    pass


@dataclass(slots=True)
class Reservation:
    auction_id: str
    demand: Resources
    expires_at: float


class Ledger:
    def __init__(self, capacity: Resources) -> None:
        self.capacity = capacity
        self.committed: dict[str, Resources] = {}
        self.reservations: dict[str, Reservation] = {}
        # Set when adopt() took us over capacity; cleared once back under.
        self._adopted_overflow = False

    # ---- reads
    def used(self, now: float) -> Resources:
        self.expire(now)
        total = ZERO
        for d in self.committed.values():
            total = total + d
        for r in self.reservations.values():
            total = total + r.demand
        return total

    def committed_total(self) -> Resources:
        total = ZERO
        for d in self.committed.values():
            total = total + d
        return total

    def free(self, now: float) -> Resources:
        return self.capacity - self.used(now)

    def holds(self, slot: str) -> bool:
        return slot in self.committed

    # ---- writes
    def expire(self, now: float) -> list[str]:
        gone = [s for s, r in self.reservations.items() if r.expires_at <= now]
        for s in gone:
            del self.reservations[s]
        return gone

    def reserve(self, auction_id: str, slots: list[str], demand: Resources, ttl_s: float,
                now: float) -> list[str]:
        """Reserve as many of `slots` as fit, in order; returns those reserved."""
        free = self.free(now)
        out = []
        for slot in slots:
            if slot in self.committed:
                continue  # already ours; nothing more to reserve
            current = self.reservations.get(slot)
            if current is not None:
                # Re-bidding for the same slot (a retry): refresh, not double.
                free = free + current.demand
                del self.reservations[slot]
            if not demand.fits_in(free):
                break
            self.reservations[slot] = Reservation(auction_id, demand, now + ttl_s)
            free = free - demand
            out.append(slot)
        self.check(now)
        return out

    def reserved_by(self, auction_id: str) -> list[str]:
        return [s for s, r in self.reservations.items() if r.auction_id == auction_id]

    def move_reservation(self, src: str, dst: str) -> None:
        """Let the reservation made for slot `src` stand for slot `dst`
        (same auction, same demand: only the coordinator's choice of slot
        differs)."""
        self.reservations[dst] = self.reservations.pop(src)

    def drop_reservation(self, slot: str) -> None:
        self.reservations.pop(slot, None)

    def commit(self, slot: str, demand: Resources, now: float) -> bool:
        """Accept an award: use the reservation if we hold one, else take the
        slot only if it still fits.  False means decline."""
        if slot in self.committed:
            self.committed[slot] = demand
            return True
        reservation = self.reservations.pop(slot, None)
        free = self.free(now)
        if reservation is not None:
            free = free + reservation.demand
        if not demand.fits_in(free):
            if reservation is not None:
                self.reservations[slot] = reservation
            return False
        self.committed[slot] = demand
        self.check(now)
        return True

    def _total_ignoring_expiry(self) -> Resources:
        total = self.committed_total()
        for r in self.reservations.values():
            total = total + r.demand
        return total

    def adopt(self, slot: str, demand: Resources) -> None:
        self.reservations.pop(slot, None)
        self.committed[slot] = demand
        if not self._total_ignoring_expiry().fits_in(self.capacity):
            self._adopted_overflow = True

    def release(self, slot: str) -> None:
        self.committed.pop(slot, None)
        self.reservations.pop(slot, None)
        if self._adopted_overflow and self._total_ignoring_expiry().fits_in(self.capacity):
            self._adopted_overflow = False

    def over_capacity(self, now: float) -> bool:
        return not self.used(now).fits_in(self.capacity)

    def check(self, now: float) -> None:
        used = self.used(now)
        if not used.fits_in(self.capacity) and not self._adopted_overflow:
            raise OvercommitError(f"ledger over capacity: used {used}, capacity {self.capacity}")
