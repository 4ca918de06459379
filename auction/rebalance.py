"""Rebalancing: when a placed job's replicas move to a better place, and which.  The one rule.

How this works
--------------
Placement puts a replica where it fits best *when it is placed*: a replica
re-placed while its rack was down stays where it went after the rack comes
back.  This rule says when such a job moves replicas back.  Every agent
computes it from gossiped state alone (the claims, the nodes' published
statuses, membership, what holders report running); the coordinator of a
slot the rule picks (auction.coordination) moves it, and its holder, seeing
the same pick, keeps its copy serving until the new one runs.

Domains.  A job with `spread = "L"` is balanced over the values of node
label L (a node without L: the value ""); a job with `strategy = "spread"`
and no spread label, over nodes (each node its own domain).  A binpack job
without a spread label is never rebalanced: packing running replicas tighter
would disrupt them to save room nobody has asked for.  Nor is a job with
`rebalance = false`, or with fewer than two replicas.

The rule (`plan`), on one agent's view of one job:

  counts[d]  = desired slots whose holder is in domain d;
  open       = domains with a node that may win a slot (auction.membership)
               and, by its published free resources, constraints and
               max_per_node, could take one more replica of the job;
  violated   = max(counts) - min(counts[d] for d in open) >= IMBALANCE
               (2; an open domain holding none counts 0);
  the move   = the highest index held in the fullest domain (ties: the
               smaller domain name), to the open domains with the fewest;
               repeated on the counts after each move while the budget lasts;
  budget     = spec.max_disruption - slots in flight (a desired slot with no
               holder keeping it, or whose holder does not report it running).

Hysteresis, by construction: a move takes one replica from a domain holding
`high` to one holding `low <= high - 2`, leaving `high - 1` and `low + 1`:
it never makes the reverse move due, and two equally good placements (counts
differing by at most one) never trigger anything.  So a job settles after at
most (sum of excesses) moves and stays put.

Nothing moves unless the job is settled (`Rebalancer.settled`): every
desired slot has a holder that keeps it and reports it running, no rollout
is in progress (every claim is for the job's current container hash), and
for `settle_s` this agent has seen no change in which nodes may win a slot
(a join, a return, a failure, a drain or its end: the cluster is still
converging) and no change of the job's holders (a move just made, a
re-placement).  A node that flaps faster than `settle_s` therefore never
draws replicas back, and moves of one job are at least `settle_s` apart.
A failed move attempt (nobody bid) counts as a change of the job's holders,
so it is retried `settle_s` later at the earliest.

Start-first: the move is an auction among the open target domains' nodes
(auction.rebalance_act); the winner claims the slot under a newer ballot
(auction.claims) and starts its copy; the old holder, having seen the same
pick (`Rebalancer.picked`, remembered for PICK_MEMORY_S), keeps its copy
until the new holder reports the slot running (as a drain does, at most
auction.reconcile_act.DRAIN_HANDOFF_S).  An old holder whose view lagged and did
not see the pick keeps its copy too, as for any slot that moved to another
node, until the new holder runs it (auction.merge_rule rule 2; at once when
its runtime does not report).  Holders
pick without waiting for the settle delay (a pick only lets them hand over
start-first); coordinators act only once settled.

Pure: the caller passes `now` and the gossiped state.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from .spec import JobSpec

IMBALANCE = 2
DEFAULT_SETTLE_S = 10.0
# How long a holder remembers that the rule picked its slot to move: the
# move's auction and claim arrive well within this.
PICK_MEMORY_S = 10.0


@dataclass(frozen=True, slots=True)
class SlotState:
    """One desired slot as this agent sees it: its holder (None: no live
    claim, or a holder that does not keep it), the holder's domain, and
    whether the holder reports it running."""

    index: int
    holder: str | None
    domain: str
    running: bool


@dataclass(frozen=True, slots=True)
class Move:
    index: int
    from_node: str
    from_domain: str
    to_domains: tuple[str, ...]
    why: str   # the counts that call for it, for events: "rack a 2, b 1, c 0"


@dataclass(frozen=True, slots=True)
class RebalanceEvent:
    """A move, for the event stream (`kind`: moving, moved, failed)."""

    job: str
    kind: str
    slot: str
    detail: str = ""

    @property
    def name(self) -> str:   # the simulator's trace subject
        return self.job


def domain_key(spec: JobSpec) -> str | None:
    """What the job is balanced over: its spread label; "" for nodes
    (strategy spread); None: not rebalanced.  A job whose replicas keep data
    on their node (auction.volumes) is not: a move would start the slot on
    an empty volume elsewhere, for no reason the operator gave."""
    if not spec.rebalance or spec.replicas < 2 or not spec.spreads or spec.node_local_data:
        return None
    return spec.spread or ""


def domain_of(key: str, node: str, labels: Mapping[str, str]) -> str:
    """The domain of `node` under `key` (see domain_key): the same domains
    placement evens replicas out over (JobSpec.spread_domain)."""
    return labels.get(key, "") if key else node


def plan(slots: Sequence[SlotState], open_domains: set[str], max_disruption: int,
         label: str = "") -> list[Move]:
    """The moves the rule makes now (empty when nothing is violated or the
    budget is spent); `label` only words the reason."""
    in_flight = sum(1 for s in slots if s.holder is None or not s.running)
    budget = max_disruption - in_flight
    if budget <= 0 or not open_domains:
        return []
    counts: dict[str, int] = {d: 0 for d in open_domains}
    held: dict[str, list[SlotState]] = {}
    for s in slots:
        if s.holder is not None:
            counts[s.domain] = counts.get(s.domain, 0) + 1
            held.setdefault(s.domain, []).append(s)
    moves: list[Move] = []
    while len(moves) < budget:
        low = min(counts[d] for d in open_domains)
        high_domain = min(counts, key=lambda d: (-counts[d], d))
        if counts[high_domain] - low < IMBALANCE or not held.get(high_domain):
            break
        slot = max(held[high_domain], key=lambda s: s.index)
        held[high_domain].remove(slot)
        to = tuple(sorted(d for d in open_domains if counts[d] == low))
        why = ", ".join(f"{d or '(none)'} {n}" for d, n in sorted(counts.items()))
        moves.append(Move(slot.index, slot.holder or "", high_domain, to, f"{label or 'nodes'}: {why}"))
        counts[high_domain] -= 1
        for d in to[:1]:
            counts[d] += 1
    return moves


class Rebalancer:
    """One agent's memory for the rule: when it last saw the cluster's
    eligible nodes or a job's holders change, and which of its own slots
    the rule picked (so it hands them over start-first)."""

    def __init__(self, settle_s: float = DEFAULT_SETTLE_S) -> None:
        self.settle_s = settle_s
        self._eligible: frozenset[str] | None = None
        self._eligible_since = 0.0
        self._holders: dict[str, tuple[str | None, ...]] = {}
        self._holders_since: dict[str, float] = {}
        self._picked: dict[str, float] = {}   # slot key -> remember until
        self.moves = 0          # moves this agent started (as coordinator)
        self.events: list[RebalanceEvent] = []
        self.rounds: dict[str, str] = {}     # auction id -> slot key, of our open move rounds
        # What holders report of their slots, as of the last tick (the hand-over waits on it).
        self.running: Callable[[str, str, int], str] | None = None

    def observe_cluster(self, eligible: frozenset[str], now: float) -> None:
        if eligible != self._eligible:
            self._eligible, self._eligible_since = eligible, now

    def observe_job(self, job: str, holders: tuple[str | None, ...], now: float) -> None:
        if self._holders.get(job) != holders:
            self._holders[job], self._holders_since[job] = holders, now

    def job_changed(self, job: str, now: float) -> None:
        """Restart the job's settle delay (a failed move attempt)."""
        self._holders_since[job] = now

    def forget_others(self, jobs: set[str]) -> None:
        for job in set(self._holders) - jobs:
            del self._holders[job]
            self._holders_since.pop(job, None)

    def settled(self, job: str, now: float) -> bool:
        """Has this agent seen neither the eligible nodes nor the job's
        holders change for settle_s?"""
        since = max(self._eligible_since, self._holders_since.get(job, now))
        return now - since >= self.settle_s

    def pick(self, slot: str, now: float) -> None:
        self._picked[slot] = now + PICK_MEMORY_S

    def picked(self, slot: str, now: float) -> bool:
        """Did the rule pick our `slot` to move lately (hand it over start-first)?"""
        until = self._picked.get(slot)
        if until is not None and until <= now:
            del self._picked[slot]
            return False
        return until is not None

    def expire(self, now: float) -> None:
        for slot in [s for s, until in self._picked.items() if until <= now]:
            del self._picked[slot]

    def drain_events(self) -> list[RebalanceEvent]:
        out, self.events = self.events, []
        return out
