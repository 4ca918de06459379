"""Which bidder wins which slot of a batch auction.

How this works: a coordinator auctions several slots (replica indices) of one
job at once.  Each bidder answers with an `Offer`: the marginal score of each
extra replica it could take (`scores[0]` for its 1st, `scores[1]` for its
2nd, ...; `len(scores)` is how many it can take), the node's value of the
job's spread label, and how many replicas of the job it already runs or holds
claims for.

`choose_winners` is a greedy, deterministic assignment.  Slots are taken in
ascending order; for each, the candidates are the offers that still have
capacity (`taken < len(scores)`) and are under `max_per_node`
(`already + taken < max_per_node`), and the winner is the candidate with the
smallest key

    (replicas in the offer's spread value, -scores[taken], (node name < first, node name))

where "replicas in the spread value" is `spread_counts.get(value, 0)` (what
the cluster already runs there) plus the slots assigned to that value so far
in this call.  So spreading comes first (the least-loaded rack or zone),
then the score (the node's own strategy: binpack or spread), then the name
as a tie-break every agent computes the same way: in name order starting at
`first` and wrapping around.  For a `spread` job the coordinator passes its
own name: rounds that coordinators open at once, between nodes that score
the same, then start on different nodes (with one fixed order, when each
slot of a 10-replica job had its own coordinator, every round put its
first slot on the same node: 5 of 10 on it; a spreading job now has one
coordinator, auction.coordination, and different jobs have different
ones).  `first=""` is plain name order (binpack: every round
fills the same node).  The result does not depend on the
order of `offers`.

Spreading is on when any offer has a `spread_value` that is not None:
the bidder's domain for the job (JobSpec.spread_domain: its value of the
job's spread label, or, for `strategy = "spread"` without one, the node's
own name, so that a job's replicas go onto as many nodes as there are
before any gets a second, as auction.rebalance counts them).  An
offer whose node lacks the label (`spread_value=None`) then counts as the
value `""`: all unlabelled nodes form one more domain, and callers should
count replicas on unlabelled nodes under `""` in `spread_counts`.  When no
offer carries a value, the first key component is 0 for everyone.

Slots with no candidate stay out of the result (they remain pending).
So do slots that would go to a spread domain already holding more than
`level_cap` replicas: the coordinator passes the lowest count among the
candidates that did not answer (auction.auctioneer), so that a round
closed at its deadline does not put a second replica on a node while a
node without one was merely slow to bid.

`most_won_by_one` bounds what one bidder can win when every node is its own
domain (`strategy = "spread"` without a label): the slots are dealt out
fewest-first, so with c candidates and k slots nobody gets more than the
water level they reach, minus what it held (k = 3 over 5 idle nodes: 1).
The call carries the bound and a bidder reserves no more than that
(auction.bidder): reserving the whole batch in every concurrent round ran
small nodes out of room for rounds they would have won.

Cost: O((slots + offers) log offers).  Offers are grouped by spread value;
each group keeps a heap of its offers keyed by (-next score, name), and an
outer heap holds one entry per group keyed by (group count, head of its
heap).  Assigning a slot changes one group's count and head, so it pushes
one new outer entry; outdated entries are dropped when they surface (lazy
deletion).  The straightforward re-scan of every offer for every slot
(`choose_winners_naive` in tests/auction/test_winner.py) gives the same
answer and is what this is tested against.

Scores must not be NaN (NaN has no order); a NaN that would be compared
raises ValueError.  Duplicate slots or two offers from the same node raise
ValueError too: both mean the caller mixed up two auctions.
"""

from __future__ import annotations

import heapq
import math
from dataclasses import dataclass

# The spread value of a node that lacks the job's spread label.
UNLABELLED = ""


@dataclass(frozen=True, slots=True)
class Offer:
    """A bidder's answer for one job's batch of slots."""
    node: str
    scores: tuple[float, ...]   # marginal score for its 1st..k-th slot (k = how many it can take)
    spread_value: str | None    # the node's value of the job's spread label, or None
    already: int                # replicas of this job the node already runs or holds claims for


def offer_capacity(offer: Offer, max_per_node: int | None) -> int:
    """How many slots this offer can win in one call: len(scores), capped by max_per_node."""
    if max_per_node is None:
        return len(offer.scores)
    return max(0, min(len(offer.scores), max_per_node - offer.already))


def spread_key(offer: Offer) -> str:
    """The spread domain an offer counts in (None -> "")."""
    return UNLABELLED if offer.spread_value is None else offer.spread_value


def _neg_score(offer: Offer, taken: int) -> float:
    score = offer.scores[taken]
    if math.isnan(score):
        raise ValueError(f"offer from {offer.node!r} has a NaN score for its slot {taken + 1}")
    return -score


def check_inputs(slots: list[int], offers: list[Offer]) -> None:
    """Raise ValueError on duplicate slots or two offers from one node."""
    if len(set(slots)) != len(slots):
        raise ValueError("duplicate slots in one auction")
    names = [o.node for o in offers]
    if len(set(names)) != len(names):
        dup = sorted({n for n in names if names.count(n) > 1})
        raise ValueError(f"more than one offer from node(s) {dup}")


def tie_key(name: str, first: str) -> tuple[bool, str]:
    """Name order starting at `first` and wrapping around (see the module doc)."""
    return name < first, name


def choose_winners(slots: list[int], offers: list[Offer], *, max_per_node: int | None,
                   spread_counts: dict[str, int], first: str = "",
                   level_cap: int | None = None) -> dict[int, str]:
    """Map each slot that has a candidate to its winning node (see module docstring)."""
    check_inputs(slots, offers)
    spreading = any(o.spread_value is not None for o in offers)

    # Per group: a heap of (-score of next slot, tie key of the node, offer index).
    groups: dict[str, list[tuple[float, tuple[bool, str], int]]] = {}
    taken = [0] * len(offers)
    capacity = [offer_capacity(o, max_per_node) for o in offers]
    for i, offer in enumerate(offers):
        if capacity[i] == 0:
            continue
        key = spread_key(offer) if spreading else UNLABELLED
        groups.setdefault(key, []).append((_neg_score(offer, 0), tie_key(offer.node, first), i))
    count = {}
    outer: list[tuple[int, float, tuple[bool, str], str]] = []   # (group count, -score, tie key, group)
    for key, heap in groups.items():
        heapq.heapify(heap)
        count[key] = spread_counts.get(key, 0) if spreading else 0
        outer.append((count[key], heap[0][0], heap[0][1], key))
    heapq.heapify(outer)

    result: dict[int, str] = {}
    for slot in sorted(slots):
        # Drop outer entries that no longer describe their group's state.
        while outer:
            n, neg, tie, key = outer[0]
            heap = groups[key]
            if heap and n == count[key] and heap[0][1] == tie and heap[0][0] == neg:
                break
            heapq.heappop(outer)
        if not outer:
            break                       # no capacity left anywhere: the rest stay pending
        if level_cap is not None and outer[0][0] > level_cap:
            break                       # above a silent candidate's level: the rest wait for it
        _, _, (_, name), key = heapq.heappop(outer)
        heap = groups[key]
        _, _, i = heap[0]
        result[slot] = name
        taken[i] += 1
        if taken[i] < capacity[i]:
            heapq.heapreplace(heap, (_neg_score(offers[i], taken[i]), tie_key(name, first), i))
        else:
            heapq.heappop(heap)
        if spreading:
            count[key] += 1
        if heap:
            heapq.heappush(outer, (count[key], heap[0][0], heap[0][1], key))
    return result


def most_won_by_one(slot_count: int, counts: list[int], max_per_node: int | None) -> int:
    """The most of `slot_count` slots any one candidate can win when each
    candidate is its own spread domain and every one bids for them all:
    `counts` are the job's replicas each candidate already holds.  The
    slots fill the emptiest first, up to max_per_node, so the highest level
    reached, less the smallest count, bounds any one's share whatever the
    scores and the tie order (at least 1: the bidders' own checks decide the
    rest)."""
    ceiling = max_per_node
    levels = sorted(counts)
    if slot_count <= 0 or not levels:
        return 1
    # Raise the water level one step at a time over the sorted counts: at
    # level L the candidates below it take L - count each (capped).
    left, level, below = slot_count, levels[0], 0
    while left > 0:
        while below < len(levels) and levels[below] <= level:
            below += 1
        if ceiling is not None and level >= ceiling:
            break                       # every candidate is full: the rest stay pending
        next_level = levels[below] if below < len(levels) else None
        step = next_level - level if next_level is not None else -(-left // below)
        if ceiling is not None:
            step = min(step, ceiling - level)
        take = min(left, step * below)
        left -= take
        level += -(-take // below)
    top = level if ceiling is None else min(level, ceiling)
    return max(1, min(slot_count, top - levels[0]))
