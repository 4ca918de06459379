"""Placement's side of rebalancing (auction.rebalance holds the rule).

How this works: at every placement tick, after the coordinator duties,
`tick` looks at each job the rule applies to, as this agent sees it: the
holder that keeps each desired slot, its domain, whether it reports the slot
running (the same lookup rollouts use), and the nodes that may win a slot
and could take one more replica by their published statuses.  The rule's
moves then mean two things here:

  * a move of a slot we hold is remembered (`Rebalancer.pick`): when the
    slot's winning claim then names another node, reconcile keeps our copy
    until that node reports it running (auction.placement's hand-over, as
    for a drain): the move is start-first;
  * a move of a slot we coordinate, once the job is settled, opens one
    auction round for it among the target domains' nodes, under the slot's
    next ballot; the winner's claim supersedes the old holder's.  The round
    is remembered by auction id: its close (`closed`) is no "pending" slot
    (the slot still runs where it was) but an event, and a round that placed
    nothing restarts the job's settle delay.

Events (`RebalanceEvent`): "moving" when a round opens (with the domain
counts that call for it), "moved" when it awarded the slot, "failed" when
nobody could take it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from .auctioneer import AuctionOutput, RoundClosed, SendTo
from .claims import slot_key
from .membership import NodeStatus, keeps_slot, may_win
from .rebalance import RebalanceEvent, SlotState, domain_key, domain_of, plan
from .scoring import NodeView, filter_reason, max_fit
from .spec import JobSpec

if TYPE_CHECKING:
    from .placement import Placement, RunningLookup


def tick(p: Placement, specs: Mapping[str, JobSpec | None], statuses: Mapping[str, NodeStatus],
         alive: set[str], running: RunningLookup, now: float) -> list[AuctionOutput]:
    rb = p.rebalancer
    rb.running = running
    rb.expire(now)
    eligible = frozenset(n for n in alive if may_win(n, alive, statuses))
    rb.observe_cluster(eligible, now)
    rb.forget_others(set(specs))
    out: list[AuctionOutput] = []
    for job in sorted(specs):
        spec = specs[job]
        key = domain_key(spec) if spec is not None else None
        if spec is None or key is None:
            continue
        claims = [p.winning_claim(slot_key(job, i)) for i in range(spec.replicas)]
        holders = tuple(c.node if c is not None and keeps_slot(c.node, alive, statuses) else None
                        for c in claims)
        rb.observe_job(job, holders, now)
        target = p._target_of(spec)  # cached per spec object
        if any(h is None for h in holders) or any(c is not None and c.spec_hash != target for c in claims):
            continue  # failure handling, or a rollout, goes first
        slots = [SlotState(i, h, _domain(key, h, statuses), running(h, job, i) == "running")
                 for i, h in enumerate(holders) if h is not None]
        per_node: dict[str, int] = {}
        for h in holders:
            if h is not None:
                per_node[h] = per_node.get(h, 0) + 1
        room = {n: _domain(key, n, statuses) for n in sorted(eligible)
                if _has_room(spec, statuses[n], per_node.get(n, 0))}
        moves = plan(slots, set(room.values()), spec.max_disruption, key)
        for move in moves:
            if move.from_node == p.name:
                rb.pick(slot_key(job, move.index), now)
        if not moves or not rb.settled(job, now):
            continue
        busy = p.auctioneer.busy_slots(job)
        for move in moves:
            if move.index in busy or not p._coordination.is_coordinator(job, move.index, spec, p.name):
                continue
            candidates = [n for n, d in room.items() if d in move.to_domains]
            counts: dict[str, int] = {}
            for s in slots:
                if s.index != move.index and spec.spread:
                    counts[s.domain] = counts.get(s.domain, 0) + 1
            skey = slot_key(job, move.index)
            rnd = p.next_round(skey)
            p._last_round[skey] = rnd
            sent = p.auctioneer.open_round(
                job=job, spec_hash=target, rounds={move.index: rnd}, candidates=candidates,
                max_per_node=spec.max_per_node, spread_counts=counts, ttl_s=p.cfg.auction_ttl_s, now=now,
                spec_json=spec.canonical_json(), may_preempt=False)   # a better spread is no reason to stop replicas
            for o in sent[:1]:
                if isinstance(o, SendTo):
                    rb.rounds[o.msg.auction_id] = skey
            rb.moves += 1
            to = " or ".join(d or "(none)" for d in move.to_domains)
            rb.events.append(RebalanceEvent(job, "moving", skey, f"from {move.from_node} to {to} ({move.why})"))
            out.extend(sent)
    return out


def closed(p: Placement, rc: RoundClosed, now: float) -> bool:
    """Was `rc` a rebalancing round (then placement adds nothing to it)?"""
    rb = p.rebalancer
    skey = rb.rounds.pop(rc.auction_id, None)
    if skey is None:
        return False
    if rc.awarded:
        node = next(iter(rc.awarded.values()))[0]
        rb.events.append(RebalanceEvent(rc.job, "moved", skey, f"to {node}"))
    else:
        reasons = sorted(set(rc.declines.values()))[:2]
        rb.events.append(RebalanceEvent(rc.job, "failed", skey,
                                        "; ".join(reasons) or "no bid"))
        rb.job_changed(rc.job, now)
    return True


def _domain(key: str, node: str, statuses: Mapping[str, NodeStatus]) -> str:
    status = statuses.get(node)
    return domain_of(key, node, status.labels if status is not None else {})


def _has_room(spec: JobSpec, status: NodeStatus, holding: int) -> bool:
    """Could this node take one more replica, by its published status?"""
    if spec.max_per_node is not None and holding >= spec.max_per_node:
        return False
    view = NodeView(status.name, status.capacity, status.allocated, status.labels, status.eligible)
    return filter_reason(spec, view) is None and max_fit(spec, view) >= 1
