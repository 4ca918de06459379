"""The node core's side of partition merges (auction.merge_rule holds the rule).

How this works: placement asks two things the core knows from published
status records, and the core answers here.

- Does the holder of a slot's winning claim run it?  (`winner_state`, for
  rule 2: a losing copy keeps running until it does.)  That is
  node.core.rollout_link.running_lookup, which trusts a holder's "running"
  only under the claims held here.  None while our own runtime has not
  reported (the simulator's plain fake never does): then a losing copy
  stops at once, as it always did.
- Who else runs a slot?  (`copies`, for rule 3: a coordinator does not
  re-auction a slot a live member still runs.)  From the runtime summaries
  of the members seen alive or suspect, and of those marked failed whose
  newer record arrived lately (`on_record`: they are coming back), ours
  from our runtime's own word; any ballot counts, since a kept copy runs
  under a claim that lost.

And one thing the core does for them: when merged claims change which of
our running slots we hold, our record's claims fingerprint
(rollout_link.stamped) has moved, and peers distrust our "running" until
they see the new one; so such a merge publishes our record as a status
change (`record_moved`), not as a digest-only change that may wait
seconds (node.core.publish).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from gossip.events import MemberState
from node.core import rollout_link

if TYPE_CHECKING:
    from node.core.node_core import NodeCore


def winner_state(core: NodeCore) -> Callable[[str, str, int], str] | None:
    """What a winning claim's holder reports of its slot; None: our runtime does not report."""
    if core.runtime_summary is None:
        return None
    return rollout_link.lookup(core)


def copies(core: NodeCore, now: float) -> Callable[[str, int, str], str | None]:
    """(job, index, besides) -> a live member (auction.merge_rule rule 3), not
    `besides`, whose runtime reports the slot running (the first by name), or None."""
    built: list[dict[tuple[str, int], list[str]]] = []
    core.placement.merges.prune(now)  # once per placement pass

    def lookup(job: str, index: int, besides: str) -> str | None:
        if not built:  # indexed at the first question (most passes ask none): one walk of the records
            merges = core.placement.merges
            up = {m.name for m in core.swim.members()
                  if m.state in (MemberState.ALIVE, MemberState.SUSPECT) or merges.coming_back(m.name, now)}
            runs: dict[tuple[str, int], list[str]] = {}
            for name in sorted({n for n in core.statuses if n in up} | {core.name}):
                status = core.statuses.get(name)
                runtime = core.runtime_summary if name == core.name else status.runtime if status else None
                for j, (running, _) in (runtime.jobs.items() if runtime is not None else ()):
                    for i in running:
                        runs.setdefault((j, i), []).append(name)
            built.append(runs)
        return next((name for name in built[0].get((job, index), ()) if name != besides), None)
    return lookup


def on_record(core: NodeCore, node: str, now: float) -> None:
    """A newer status record of `node` arrived: note it if we mark `node`
    failed, and look again soon at the copies we keep until `node` runs them."""
    member = core.swim.member(node)
    if member is not None and member.state not in (MemberState.ALIVE, MemberState.SUSPECT):
        core.placement.merges.record_from_failed(node, now)
    if core.placement.merges.waits_on(node):
        core._kick(now)


def record_moved(core: NodeCore) -> bool:
    """Do the claims held now give our running slots another fingerprint than our published record?"""
    published = core.status().runtime
    if published is None or not published.ballots:
        return False
    now = rollout_link.stamped(core.runtime_summary, core.name, core._claims.get)
    return now is not None and any(now.ballots.get(job) != fp for job, fp in published.ballots.items())
