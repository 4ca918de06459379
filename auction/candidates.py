"""Whom a coordinator calls for bids: the feasible members, or a sample.

How this works: a member is feasible for a job when it may win (alive, its
status heard, eligible: auction.membership) and, by its gossiped status,
passes the job's filters with room for at least one replica
(auction.scoring); when none has room, a job whose priority may preempt
calls those without that hold replicas 10 or more below it
(auction.preemption: they may bid on their room).  A large cluster calls at most
max(sample_min, sample_d * slots) of them, drawn at random (power-of-d
choices); `Candidates.sampled` says the draw left feasible members out, which
is what lets a round that failed only for its draw be retried at once with
another (auction.retry).  A draw passes over the members in `avoid` (they
declined the job for room a moment ago: auction.retry keeps that list) as
long as enough others remain to draw from: gossiped allocations lag by a
second or more, and while a large cluster fills up, the members that are
already full by their own ledgers still look free in their statuses.  A job that spreads also gets the count
of its replicas per domain (a value of its spread label, or a node with
`strategy = "spread"`: JobSpec.spread_domain), from the winning claims; when
every node is its own domain, also the most slots one candidate can win
(auction.winner.most_won_by_one), which the call carries so that bidders
reserve no more than that.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass

from .claims import Claim, slot_key
from .membership import NodeStatus, is_alive, may_win
from .preemption import PREEMPT_DELTA
from .scoring import NodeView, filter_reason, max_fit
from .spec import JobSpec
from .winner import most_won_by_one


@dataclass(frozen=True, slots=True)
class Candidates:
    names: list[str]
    spread_counts: dict[str, int]
    sampled: bool  # feasible members were left out of `names`
    max_wins: int | None = None  # the most slots one of `names` can win; None: all of them


def choose(job: str, spec: JobSpec, statuses: Mapping[str, NodeStatus], alive: set[str], slots: int, *,
           sample_min: int, sample_d: int, rng: random.Random,
           winning_claim: Callable[[str], Claim | None], avoid: Collection[str] = (),
           holding_below: Callable[[int], set[str]] | None = None) -> Candidates:
    """`holding_below(p)`: the nodes holding a replica of a job at priority p
    or lower (none given: no node is called on the room of others)."""
    feasible: list[str] = []
    full: list[str] = []
    for name in sorted(alive):
        if not may_win(name, alive, statuses):
            continue
        status = statuses[name]
        view = NodeView(name, status.capacity, status.allocated, status.labels, status.eligible)
        if filter_reason(spec, view) is None:
            (feasible if max_fit(spec, view) >= 1 else full).append(name)
    if not feasible and full and holding_below is not None and spec.priority > PREEMPT_DELTA:
        # They may bid on the room of lower-priority replicas (auction.preemption).
        lower = holding_below(spec.priority - PREEMPT_DELTA)
        feasible = [n for n in full if n in lower]
    limit = max(sample_min, sample_d * slots)
    sampled = len(feasible) > limit
    if sampled:
        if avoid:
            fresh = [n for n in feasible if n not in avoid]
            feasible = fresh if len(fresh) > limit else feasible
        feasible = sorted(rng.sample(feasible, limit))
    spread_counts: dict[str, int] = {}
    if spec.spreads:
        # Replicas on every alive holder count, drained ones included:
        # they run until they have moved.
        for index in range(spec.replicas):
            claim = winning_claim(slot_key(job, index))
            if claim is not None and is_alive(claim.node, alive):
                holder = statuses.get(claim.node)
                value = spec.spread_domain(claim.node, holder.labels if holder is not None else {})
                if value is not None:
                    spread_counts[value] = spread_counts.get(value, 0) + 1
    max_wins = None
    if spec.spreads_over_nodes and feasible:
        max_wins = most_won_by_one(slots, [spread_counts.get(n, 0) for n in feasible], spec.max_per_node)
    return Candidates(feasible, spread_counts, sampled, max_wins)
