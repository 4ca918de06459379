"""What replicated state the node core admits from peers, and what it refuses.

How this works: the wire decoders (node.core.wire, node.core.status,
node.core.hlc) refuse anything malformed or any integer that could
overflow; what is left is well-formed but may still be absurd.  Before a
job entry or a slot claim from a peer (or from our own state dir, written
before this check existed) is merged, the core asks here; a refusal names
its reason, is counted (`StateRefused`, shoal_state_refused_total{reason})
and the entry is not merged, not persisted and not passed on.

The rules, and why each is safe for honest traffic:

  * origin: a node-core message (job or claim state, auction traffic) whose
    origin is not a name we know as a member, in any state, is refused
    whole (`not_a_member`; checked in NodeCore._on_message).  State from a
    member we have not heard of yet comes again by anti-entropy once we
    have.  Without encryption the origin is only a claim, so this stops
    blind forgeries, not a forger who names a member: the rules below do.
  * job entries: a stamp more than `max_skew_ms` ahead of cluster time
    is refused (`stamp_ahead`).  Last-writer-wins would otherwise let one
    forged far-future stamp win over every later write, for ever (a
    delete would be acknowledged and lose).  Cluster time is the core's
    wall clock (`NodeCore._wall_ms`): our own, corrected towards the median
    of our live peers' clocks once it is seconds off (node.core.cluster_clock),
    so a node whose clock runs behind still admits honest writes, and a
    node whose clock runs ahead stamps its own in cluster time, which peers
    admit.  A minority of members cannot move the median, and the
    correction is capped (MAX_CORRECTION_MS), so a forged stamp still
    cannot win for long.  An honest entry is refused at most while its
    writer's corrected clock and ours differ by more than the bound (their
    estimates disagree), and anti-entropy brings it again every sync
    interval, so it lands once they agree.  A counter of
    MAX_ADOPTED_COUNTER or more (`counter_absurd`) is never honest (one
    tick per write in one millisecond).
  * claims: a ballot round more than MAX_ROUND_JUMP above the slot's
    current winning round (or above 0 for a slot we hold no claim for) is
    refused (`ballot_jump`).  Rounds grow by one per re-auction of the slot,
    so no honest claim jumps a million; refusing large jumps keeps a forger
    from pushing a slot's round towards MAX_BALLOT_ROUND, past which no
    honest coordinator could re-auction it.  An award from a coordinator
    is held to the same bound before we claim anything from it.

Pure: the caller passes cluster time and the current entries in.
"""

from __future__ import annotations

from collections.abc import Callable

from auction.claims import Claim, slot_key
from auction.messages import Award
from node.core.hlc import MAX_ADOPTED_COUNTER
from node.core.jobstore import Entry
from node.core.outputs import CoreOutput, StateRefused

# Far below 2^63 (msgpack's signed range) and exact in a JSON number, so a
# ballot shown by the API or bumped by `next_round` never overflows.
MAX_BALLOT_ROUND = (1 << 53) - 1
MAX_ROUND_JUMP = 1_000_000
# Every reason a StateRefused may carry (the metric shows each from the start).
REFUSAL_REASONS = ("not_a_member", "stamp_ahead", "counter_absurd", "ballot_jump", "ballot_overflow",
                   "status_malformed", "status_name_mismatch")


def entry_refusal(entry: Entry, wall_ms: int, max_skew_ms: int) -> str | None:
    """Why a job entry from a peer is refused, or None to merge it; wall_ms
    is cluster time as this node sees it (the core's corrected wall clock)."""
    if entry.stamp.wall_ms - wall_ms > max_skew_ms:
        return "stamp_ahead"
    if entry.stamp.counter >= MAX_ADOPTED_COUNTER:
        return "counter_absurd"
    return None


def round_refusal(round_: int, current: Claim | None) -> str | None:
    """Why a ballot round for a slot whose winning claim is `current` is
    refused, or None to accept it."""
    if round_ > MAX_BALLOT_ROUND:
        return "ballot_overflow"
    base = current.ballot.round if current is not None else 0
    if round_ - base > MAX_ROUND_JUMP:
        return "ballot_jump"
    return None


def claim_refusal(claim: Claim, current: Claim | None) -> str | None:
    """Why a slot claim from a peer is refused, or None to merge it."""
    return round_refusal(claim.ballot.round, current)


def admit_entries(entries: list[Entry], wall_ms: int, max_skew_ms: int,
                  origin: str) -> tuple[list[Entry], list[StateRefused]]:
    """Split job entries into those to merge and the refusals to emit."""
    ok: list[Entry] = []
    refused: list[StateRefused] = []
    for entry in entries:
        reason = entry_refusal(entry, wall_ms, max_skew_ms)
        if reason is None:
            ok.append(entry)
        else:
            refused.append(StateRefused("job", entry.name, origin, reason))
    return ok, refused


def admit_claims(claims: list[Claim], current: Callable[[str], Claim | None],
                 origin: str) -> tuple[list[Claim], list[StateRefused]]:
    """Split slot claims into those to merge and the refusals to emit;
    `current(slot)` is the slot's winning claim here."""
    ok: list[Claim] = []
    refused: list[StateRefused] = []
    for claim in claims:
        reason = claim_refusal(claim, current(claim.name))
        if reason is None:
            ok.append(claim)
        else:
            refused.append(StateRefused("claim", claim.name, origin, reason))
    return ok, refused


def award_refusal(award: Award, current: Callable[[str], Claim | None]) -> str | None:
    """Why an award is refused whole (any of its rounds is), or None."""
    for index, round_ in award.slots:
        reason = round_refusal(round_, current(slot_key(award.job, index)))
        if reason is not None:
            return reason
    return None


def admit_stored(entries: list[Entry], claims: list[Claim], wall_ms: int,
                 max_skew_ms: int) -> tuple[list[Entry], list[Claim], list[CoreOutput]]:
    """What our state dir holds passes the same rules as a peer's state (a
    forged entry persisted by an older version stays out): the entries and
    claims to load, and the refusals (origin "") as the core's first outputs."""
    ok_entries, refused = admit_entries(entries, wall_ms, max_skew_ms, "")
    ok_claims, refused_claims = admit_claims(claims, lambda slot: None, "")  # one claim per slot
    return ok_entries, ok_claims, [*refused, *refused_claims]
