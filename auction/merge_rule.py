"""Merges keep a copy that runs: the one rule for two copies of a slot that meet.

How this works.  While a partition lasts, each side re-places the slots whose
holders it cannot see, so when it heals most slots have two copies, one per
side, under two claims.  Three rules settle them, and every agent applies
the same three:

1. Who wins: the claim rule (auction.claims rule 1, `Claim.beats`),
   unchanged and the same everywhere, so every agent picks the same winner
   for every slot as soon as it holds both claims.
2. A losing copy stops only once the winner runs.  A node running a copy of
   a slot whose winning claim now names another node N (superseded, not
   released) keeps its copy until N is known to run the slot: N's gossiped
   runtime summary lists it running, under the claims held here
   (node.core.rollout_link.running_lookup, which distrusts a record older
   or newer than our claims).  A released slot (job stopped, scaled down)
   stops at once, as before.  At most `keep_s` (KEEP_LOSING_COPY_S) per
   winning ballot: a winner that never runs (its holder died, its image
   never pulls) does not keep a duplicate forever.  Keeping the copy while N
   is not alive in our view is the point: right after a heal the two sides
   still see each other as failed or suspect for a moment.
3. No coordinator re-auctions a slot whose winning claim's holder it does
   not see alive while another live member reports a running copy of the
   slot (its runtime summary lists the slot, under any ballot: the copy
   kept by rule 2, or one whose claim lost).  Live here: seen alive or
   suspect, or marked failed but a newer status record of it arrived in the
   last hold_off_s (it is coming back: the other side of a heal).  The
   winner's holder is most likely alive and only not yet seen so (the merge
   is under way); a new ballot would supersede both copies and start a
   third.  It waits at most `hold_off_s` (HOLD_OFF_S) per winning ballot,
   then re-auctions as before; the copy that runs keeps serving (rule 2)
   until the new winner runs.

So at no moment after a heal does a slot that ran on both sides have no
running copy (unless every node running one crashes), and the merge starts
nothing new when the winners' holders run their copies.

The bound: two copies of a slot run after a heal until the losing holder
has the winning claim (one gossip spread or claims sync) and then the
winner's runtime record showing the slot running under that claim (the
winner republishes at most status_min_interval_s after the merge moves its
claims: node.core.merge_link), and never longer than KEEP_LOSING_COPY_S
after the losing holder learned of the winning claim (counted again if the
slot gets yet another winner).  In the simulator (scripts/bench/merge_gap.py)
every duplicate is gone 0.5-2.8 s after the sides meet again.  A node whose
own runtime does not report (the simulator's plain fake) stops a losing
copy at once, as before this rule; a winner on an older agent, which
publishes no runtime summary, is never known to run, so the loser keeps its
copy the full KEEP_LOSING_COPY_S.

Pure: the caller passes `now` and the lookups; this module keeps only the
per-slot deadlines.
"""

from __future__ import annotations

from collections.abc import Callable, Collection

from .claims import Ballot, Claim, live

KEEP_LOSING_COPY_S = 30.0
HOLD_OFF_S = 10.0

# (holder, job, index) -> what the holder reports of the slot ("running", ...;
# "unknown" when not known to run: node.core.rollout_link.running_lookup).
WinnerState = Callable[[str, str, int], str]
# (job, index, besides) -> a member seen alive, other than `besides`, whose
# runtime reports a running copy of the slot; None if there is none.
CopyLookup = Callable[[str, int, str], str | None]


class MergeRule:
    """Per-slot deadlines for rules 2 and 3 (see the module docstring)."""

    def __init__(self, keep_s: float = KEEP_LOSING_COPY_S, hold_off_s: float = HOLD_OFF_S) -> None:
        self.keep_s = keep_s
        self.hold_off_s = hold_off_s
        self._keep_until: dict[str, tuple[Ballot, str, float]] = {}  # slot -> (winning ballot, its holder, stop by)
        self._hold_until: dict[str, tuple[Ballot, float]] = {}   # slot -> (winning ballot, re-auction by)
        self._back: dict[str, float] = {}   # member marked failed -> when a newer record of it arrived

    def keeps_copy(self, winner: Claim | None, me: str, state: WinnerState | None, now: float) -> bool:
        """Rule 2: does `me` keep running its copy of `winner`'s slot, which
        `winner` gives to another node?  False for a released slot, and when
        `state` is None (our runtime does not report); False means the
        caller stops the copy now, and the slot is forgotten here."""
        w = live(winner)
        if w is None or w.node == me or state is None:
            if winner is not None:
                self._keep_until.pop(winner.name, None)
            return False
        kept = self._keep_until.get(w.name)
        if kept is None or kept[0] != w.ballot:
            kept = self._keep_until[w.name] = (w.ballot, w.node, now + self.keep_s)
        if now < kept[2] and state(w.node, w.job, w.index) != "running":
            return True
        del self._keep_until[w.name]
        return False

    def keeping(self, slot: str) -> bool:
        """Is a losing copy of `slot` kept here (its resources stay committed)?"""
        return slot in self._keep_until

    def waits_on(self, holder: str) -> bool:
        """Is a losing copy kept here until `holder` runs its slot?  (Then a
        new record of `holder` is worth a look now, not at the next tick.)"""
        return any(node == holder for _, node, _ in self._keep_until.values())

    def holds_off(self, winner: Claim | None, alive: Collection[str], copies: CopyLookup | None,
                  now: float) -> str | None:
        """Rule 3: why the coordinator does not re-auction `winner`'s slot
        now (a pending reason), or None to go ahead (also when `copies` is
        None: nobody says who runs what)."""
        w = live(winner)
        if w is None or w.node in alive or copies is None:
            return None
        other = copies(w.job, w.index, w.node)
        if other is None:
            self._hold_until.pop(w.name, None)
            return None
        held = self._hold_until.get(w.name)
        if held is None or held[0] != w.ballot:
            held = self._hold_until[w.name] = (w.ballot, now + self.hold_off_s)
        if now >= held[1]:
            return None
        return f"a copy runs on {other}; waiting up to {held[1] - now:.1f} s for {w.node} to be seen alive"

    def record_from_failed(self, member: str, now: float) -> None:
        """A newer status record of a member we mark failed arrived: it is
        coming back (a heal), so its copies count for rule 3 for hold_off_s."""
        self._back[member] = now

    def coming_back(self, member: str, now: float) -> bool:
        since = self._back.get(member)
        return since is not None and now - since < self.hold_off_s

    def prune(self, now: float) -> None:
        """Forget hold-offs long over (their slot was re-auctioned or settled)
        and members whose return is old news."""
        for slot in [s for s, (_, until) in self._hold_until.items() if until + self.hold_off_s < now]:
            del self._hold_until[slot]
        for member in [m for m, since in self._back.items() if now - since >= self.hold_off_s]:
            del self._back[member]
