"""When a coordinator tries a slot again after a round that did not place it.

How this works: a failed round backs off per slot, the delay doubling from
`min_backoff_s` up to `max_backoff_s`; an award clears it.

One exception.  A round that called only a random sample of the feasible
members (auction.candidates) and placed nothing for a slot may have failed
for its draw alone: in a large cluster placing many slots at once, every
member is called by many concurrent rounds and reserves room for the first
ones only (auction.bidder), so it declines the others even though it will
end up winning one of them at most.  With 16 candidates a round found none
with room about one time in eight (placement_sim, 300 nodes, 1,000 fresh
replicas), and each such slot then waited out the whole first back-off
(0.5 s by default).  Such a slot is retried at once, with a fresh draw, up
to RESAMPLES times before the back-off applies; `resample_due` tells the
owner to run a placement pass soon.  The members that declined a sampled
round of a job for room are passed over by that job's draws for
AVOID_S (`avoid`; auction.candidates): at 1,000 nodes, where the job's
replicas fit 1,333 slots' worth of room in all, the draws kept finding
members already full by their own ledgers whose statuses did not say so
yet, and a tenth of the slots needed three rounds.

So does a round a bidder declined for room, at any cluster size: a
node's room goes to reservations for every round open at once (it bids in
each, for the whole batch, and binpack counts them), so ten 3-replica jobs
sent together to 5 nodes found nodes "full" that were not, and their slots
waited out the back-off: 0.6-1.4 s to place them all, 0.05 s when they go
out again at once (the other rounds have closed by then).  A cluster that
is really full backs off after RESAMPLES such rounds, as before.

The same goes for a round whose call capped what each bidder may win
(CallForBids.max_wins, a job spread over nodes): the cap assumes every
candidate bids, so when some decline, slots are left over that the others
would have taken with whole-batch reservations; the next round, with the
counts the awards changed, gives them out at once.

And for a round that held slots for candidates that did not answer
(auction.auctioneer: a second replica on a node that answered, or wait
for one that has none yet): retried at once, the silent node usually
done with its queue of earlier rounds by then.  A slot is held at most
SILENT_HOLDS times (`may_hold`): a member that stays silent may be dead
and not yet suspected, and its slot must not wait on it for long.
"""

from __future__ import annotations

from collections.abc import Iterable

RESAMPLES = 3
AVOID_S = 1.0  # about how long a member's status takes to show what it committed
SAMPLED_MAX = 1024  # rounds remembered as sampled (bounded like open rounds)
SILENT_HOLDS = 2   # rounds a slot may wait for silent candidates (at most a round's ttl each)


class Retries:
    def __init__(self, min_backoff_s: float, max_backoff_s: float) -> None:
        self.min_backoff_s = min_backoff_s
        self.max_backoff_s = max_backoff_s
        self._backoff: dict[str, tuple[float, float]] = {}  # slot -> (retry_at, delay)
        self._resamples: dict[str, int] = {}                # slot -> immediate retries used
        self._sampled: set[str] = set()                     # auction ids of sampled rounds
        self._avoid: dict[str, dict[str, float]] = {}       # job -> member -> pass over it until
        self._holds: dict[str, int] = {}                    # slot -> rounds held for silent candidates
        self.resample_due = False

    def waiting(self, key: str, now: float) -> bool:
        """Is the slot still backing off?"""
        retry = self._backoff.get(key)
        return retry is not None and retry[0] > now

    def opened(self, auction_ids: Iterable[str]) -> None:
        """These rounds called a sample of the feasible members, or capped
        their bidders' wins."""
        if len(self._sampled) >= SAMPLED_MAX:
            self._sampled.clear()  # only costs those rounds their quick retry
        self._sampled.update(auction_ids)

    def closed(self, auction_id: str, room_declined: bool = False) -> bool:
        """Forget the round; are the slots it left retried at once (it was
        sampled or capped, or a bidder declined it for room)?"""
        if auction_id in self._sampled:
            self._sampled.discard(auction_id)
            return True
        return room_declined

    def declined(self, job: str, members: Iterable[str], now: float) -> None:
        """Members that declined a sampled round of `job` for room."""
        avoid = self._avoid.setdefault(job, {})
        for member in members:
            avoid[member] = now + AVOID_S
        if len(self._avoid) > SAMPLED_MAX:
            self._avoid.pop(next(iter(self._avoid)))

    def avoid(self, job: str, now: float) -> set[str]:
        avoid = self._avoid.get(job)
        if not avoid:
            return set()
        for member in [m for m, until in avoid.items() if until <= now]:
            del avoid[member]
        if not avoid:
            del self._avoid[job]
        return set(avoid)

    def may_hold(self, keys: Iterable[str]) -> bool:
        """May a round of these slots hold them for silent candidates?"""
        return all(self._holds.get(key, 0) < SILENT_HOLDS for key in keys)

    def placed(self, key: str) -> None:
        self._backoff.pop(key, None)
        self._resamples.pop(key, None)
        self._holds.pop(key, None)

    def failed(self, key: str, now: float, sampled: bool, held: bool = False) -> None:
        """A round left the slot unplaced; `held`: for silent candidates."""
        if held:
            self._holds[key] = self._holds.get(key, 0) + 1
        used = self._resamples.get(key, 0)
        if sampled and used < RESAMPLES:
            self._resamples[key] = used + 1
            self._backoff.pop(key, None)
            self.resample_due = True
            return
        _, delay = self._backoff.get(key, (0.0, self.min_backoff_s / 2))
        delay = min(delay * 2, self.max_backoff_s)
        self._backoff[key] = (now + delay, delay)
