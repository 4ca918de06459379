"""When a member counts as gone for placement: the one rule.

Placement sees a member through two sources: SWIM's view (the set of names
this agent believes ALIVE; a suspect, failed or left member is not in it)
and the member's published status (drained, healthy; absent until heard).
From those:

    member is            may coordinate   keeps a slot it holds   may win a new slot
    ALIVE, eligible           yes                 yes                    yes
    ALIVE, unhealthy          yes                 yes                    no
    ALIVE, drained            yes           no (slot is moved)           no
    ALIVE, no status yet      yes                 yes                    no
    suspect, in its grace     no                  yes                    no
    suspect/failed/left       no            no (slot is re-placed)       no

Why: coordinating costs a member nothing, so only SWIM liveness matters.  A
suspicion moves coordination at once, but the slots a suspect holds are
re-placed only once its suspicion has outlived a grace (auction.suspicion_rule,
where the bound on starts per false suspicion is stated; the core hands
placement the members that keep their slots).  A replica placed twice
meanwhile is settled by the claim rule, auction.claims.  Draining is the operator's
"move everything off", so a drained holder loses its slots; an unhealthy
one (its runtime is in trouble) keeps what it runs but is offered nothing
new, as is a member whose status has not arrived (nothing is known of its
resources).  Everything placement and the API ask about liveness goes
through these functions.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Protocol

from .resources import Resources


class NodeStatus(Protocol):
    """What placement reads of a node's published status (node.core.status.NodeStatus)."""

    @property
    def name(self) -> str: ...

    @property
    def capacity(self) -> Resources: ...

    @property
    def allocated(self) -> Resources: ...

    @property
    def labels(self) -> dict[str, str]: ...

    @property
    def drained(self) -> bool: ...

    @property
    def unhealthy_reason(self) -> str: ...

    @property
    def eligible(self) -> bool: ...


def is_alive(name: str, alive: Collection[str]) -> bool:
    """Believed ALIVE by SWIM (suspect, failed and left members are not)."""
    return name in alive


def may_coordinate(name: str, alive: Collection[str]) -> bool:
    return is_alive(name, alive)


def holder_gone_reason(holder: str, alive: Collection[str],
                       statuses: Mapping[str, NodeStatus]) -> str | None:
    """Why the slot `holder` holds must be placed again, or None if it keeps it."""
    if not is_alive(holder, alive):
        return f"{holder} is not alive; re-placing"
    status = statuses.get(holder)
    if status is not None and status.drained:
        return f"{holder} is drained; moving"
    return None


def keeps_slot(holder: str, alive: Collection[str], statuses: Mapping[str, NodeStatus]) -> bool:
    return holder_gone_reason(holder, alive, statuses) is None


def may_win(name: str, alive: Collection[str], statuses: Mapping[str, NodeStatus]) -> bool:
    """May be called for bids: alive, its status heard, and eligible (not
    drained, healthy).  The bidder re-checks eligibility from its own view."""
    status = statuses.get(name)
    return is_alive(name, alive) and status is not None and status.eligible
