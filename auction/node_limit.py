"""max_per_node: how many replicas of a job one node may hold.  The one rule.

How this works.  A job's `max_per_node = m` is a hard constraint: no node
holds more than m of the job's desired slots, once the cluster settles.
Three places keep it, all with the counts defined here:

1. Bidding (auction.bidder).  A node's replicas of a job `here` are the
   distinct slots of the job it holds a claim for, has committed in its
   ledger, or has *reserved for another auction* (`replicas_here`).  The
   last part matters: the slots of one job are coordinated by different
   nodes (auction.coordination), so several auctions for the same job run
   at once, and a bidder that counted only its claims would reserve in each
   of them and could win a slot in every one.  A call is bid for at most
   `m - here` slots, so claims + commitments + live reservations of the job
   never exceed m through bids.  (A slot re-auctioned by a new coordinator
   while the old one's round still holds our reservation for it is declined
   until that round releases it or its TTL ends: rare, and retried.)
2. Committing (auction.bidder.on_award).  An awarded slot is accepted only
   while the job's claimed + committed slots here are fewer than m (an award
   whose reservation expired, while another auction reserved room, must not
   push the node over): the refused slot is re-auctioned by its coordinator.
3. Healing (`to_give_up`, run by every holder at each placement tick).  A
   holder whose live claims name more than m desired slots of the job (a
   node that won before this rule existed, claims read back after a restart,
   a lowered max_per_node) keeps the m lowest indices and releases the rest
   (auction.claims rule 3), highest first, as a scale-down does: each
   released slot is re-auctioned and, by rule 1, lands on a node under the
   limit, or stays pending saying why ("max_per_node=1 reached").  The copy
   stops when the release is written (stop-first), like any released slot.

Pure: counts over slot keys; the ledger and the claims map are the caller's.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping

from .claims import Claim, parse_slot_key
from .ledger import Ledger
from .spec import JobSpec


def _of_job(job: str, keys: Iterable[str]) -> set[str]:
    return {k for k in keys if parse_slot_key(k)[0] == job}


def replicas_here(job: str, claimed: Collection[str], ledger: Ledger, *, auction_id: str | None = None) -> int:
    """Rule 1: the distinct slots of `job` this node holds (claimed or
    committed) or has reserved for auctions other than `auction_id` (a
    re-bid in the same auction refreshes its own).  The caller expires the
    ledger first."""
    held = _of_job(job, claimed) | _of_job(job, ledger.committed)
    others = {k for k, r in ledger.reservations.items() if r.auction_id != auction_id}
    return len(held | _of_job(job, others))


def committed_here(job: str, claimed: Collection[str], ledger: Ledger) -> set[str]:
    """Rule 2: the slots of `job` this node holds (claimed or committed)."""
    return _of_job(job, claimed) | _of_job(job, ledger.committed)


def to_give_up(mine: Mapping[str, Claim], specs: Mapping[str, JobSpec | None]) -> list[Claim]:
    """Rule 3: which of our live claims `mine` to release, highest index
    first.  Slots of jobs without a spec here or without max_per_node, and
    slots at or beyond `replicas` (a scale-down releases those), do not count;
    a global job counts every slot (auction.global_jobs: one a node)."""
    by_job: dict[str, list[Claim]] = {}
    for claim in mine.values():
        spec = specs.get(claim.job)
        if (spec is not None and spec.max_per_node is not None and (spec.is_global or claim.index < spec.replicas)
                and not claim.released):
            by_job.setdefault(claim.job, []).append(claim)
    out: list[Claim] = []
    for job in sorted(by_job):
        keep = specs[job].max_per_node or 0  # type: ignore[union-attr]  # only jobs with a spec are here
        held = sorted(by_job[job], key=lambda c: c.index)
        out.extend(reversed(held[keep:]))
    return out
