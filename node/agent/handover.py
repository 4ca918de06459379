"""Handing our replicas over when the agent leaves the cluster.

How this works: a graceful leave (`shoal leave`, SIGTERM from systemd) is
gossiped first (node.agent.membership), and our peers at once place our
replicas elsewhere under newer ballots.  Our core still runs: it merges
those claims and stops each of our copies once its replacement is known to
run (auction.merge_rule), so the service never has fewer copies than it
had.  `hand_over` waits for that -- until the runtime holds no slot and
lists no container of ours -- and only then lets the agent exit.  The agent
used to exit at once, leaving its containers running with no agent: after
the replacements started every such replica ran twice, and after a
decommission (`systemctl stop`) for good.

A global job's copy (auction.global_jobs) is nobody else's to take over: it
is stopped at once, as the node is no longer a member that runs the job
(a decommissioned node left it running for good before).  Its claim stays,
as for any member that leaves: an agent that starts again runs it again.

Bounded by `HANDOVER_S`, under the unit's TimeoutStopSec (30 s), and no
longer than there is somewhere to go: once no other alive node passes the
constraints and has room (by their gossiped status records) for any of the
replicas still here, for `NOWHERE_S` on end, nothing more is waited for.  What is still here then
keeps running, and this agent's next start adopts or removes it.  With no
other member alive nobody takes anything over, so nothing is waited for: a
one-node cluster's restart keeps its replicas (and adopts
them when it comes back), and when every agent is stopped at once
(`scripts/quickstart down`, a site powered down) each stops waiting as
soon as it sees the others gone too.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import trio

from auction.claims import parse_slot_key
from auction.scoring import NodeView, could_take
from node.core.view import CoreView
from node.runtime.interface import Runtime

log = logging.getLogger("shoal.agent")

HANDOVER_S = 20.0
POLL_S = 0.25
# "Nowhere to go" must hold this long before the wait is given up: one look
# can catch a peer held suspect for a moment (a loaded machine), which takes
# nothing then, and the agent exited with a replica a peer was about to take
# (tests/node/test_leave_handover.py failed so in CI, twice).
NOWHERE_S = 2.0


def global_slot(view: CoreView) -> Callable[[str], bool]:
    """slot -> whether it is a global job's (auction.global_jobs): this node's
    own copy, which nobody takes over and which `hand_over` stops."""
    def is_global(slot: str) -> bool:
        job, _ = parse_slot_key(slot)
        spec = view.spec_of(view.job(job))
        return spec is not None and spec.is_global
    return is_global


def room_elsewhere(view: CoreView) -> Callable[[str], bool]:
    """slot -> whether another alive node could take it (auction.scoring
    could_take: constraints, room, max_per_node), by the claims and the
    gossiped status records."""
    def movable(slot: str) -> bool:
        job, _ = parse_slot_key(slot)
        spec = view.spec_of(view.job(job))
        if spec is None or spec.is_global:
            return False        # a global job's replica is this node's own: nobody takes it over
        winner = view.winning_claim(slot)
        if winner is not None and winner.node != view.name:
            # Placed elsewhere already: wait for it to run.  Its new holder
            # counts it now, so "room for one more" would say no (at
            # max_per_node), and the agent stopped waiting for a replacement
            # about to start (a CI flake of test_leave_handover under load).
            return True
        alive, held = view.alive_names(), view.held_by_node(spec)
        return any(could_take(spec, NodeView(s.name, s.capacity, s.allocated, s.labels, s.eligible), held)
                   for name, s in view.live_statuses().items() if name != view.name and name in alive)
    return movable


async def hand_over(runtime: Runtime, anyone_else: Callable[[], bool], movable: Callable[[str], bool],
                    timeout_s: float = HANDOVER_S, stop_here: Callable[[str], bool] = lambda slot: False,
                    ) -> bool | None:
    """Stop the slots `stop_here` names (global jobs' copies), then wait
    until `runtime` runs nothing of ours (True); until no replica still here
    has anywhere to go, or timeout_s passed (False); or until no other
    member is alive to take anything (None)."""
    for slot in sorted(runtime.slot_states()):
        if stop_here(slot):
            runtime.stop(slot, "this node left the cluster (a global job runs on members)")
    nowhere_since: float | None = None
    why = f"no replacement ran within {timeout_s:.0f} s"
    with trio.move_on_after(timeout_s):
        while True:
            if not anyone_else():
                log.info("no other member is alive: the replicas still here stay for our next start")
                return None
            slots = runtime.slot_states()
            if slots and not any(movable(slot) for slot in slots):
                now = trio.current_time()
                nowhere_since = now if nowhere_since is None else nowhere_since
                if now - nowhere_since >= NOWHERE_S:
                    why = f"no other node has room for them (for {NOWHERE_S:.0f} s on end)"
                    break
            else:
                nowhere_since = None
            if not slots:
                try:
                    if not await runtime.ps():
                        return True
                except Exception as e:  # noqa: BLE001 -- the engine's trouble: ask again (not imported
                    # here: node.runtime.engine loads the Docker SDK, which an agent on the fake runtime never needs)
                    log.debug("handover: listing our containers failed: %s", e)
            await trio.sleep(POLL_S)
    left = sorted(runtime.slot_states())
    log.warning("left the cluster with %d replica(s) still here (%s): %s; they keep running until this agent "
                "starts again", len(left), why, ", ".join(left[:10]) + (", ..." if len(left) > 10 else ""))
    return False
