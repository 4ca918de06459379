"""Claims read from disk: a restarted agent starts none of them until its peers confirm them.

How this works: an agent that restarts reads the claims it held from its
state dir, and placement hands them to the runtime as it would fresh ones.
But while the agent was down its peers may have given those slots to other
nodes (a power cut longer than failure detection): the claim on disk is
then superseded, and the agent learns so only when the claims sync brings
the newer claim, a second or more later.  Starting such a slot meanwhile, or
restarting its container that died with the machine, runs it twice -- here
and on its new holder -- until the sync says stop.

The rule: for a slot whose winning claim is still the one read from disk,
the first `StartReplica` goes out with `adopt_only`: the runtime keeps a
container of that claim that still runs (an agent restart without a reboot:
no interruption, nothing removed) and starts nothing.  The full start of
every slot still held follows once the claims are confirmed: our claims
digest matches every live peer's (the sync is done: a slot given away
meanwhile has been stopped here, in the same pass that merged the newer
claim), or `ClusterConfig.replay_confirm_s` after the core started, at the
latest (no peer to ask, or digests that never settle) -- each only if that
claim still wins its slot.  A slot given away meanwhile may not be stopped
yet (auction.merge_rule keeps a losing copy until the winner runs): it
stays held, starts nothing, and if it comes back to us before placement
stops it (a new ballot of ours for the same version, which placement does
not pass on for a slot it believes running) the full start goes out under
that claim.  A stop of the slot, or a start under another claim (a new
award, a new version), ends its hold.
Claims that reach us from peers, and every claim once confirmed, pass as
they always did.

The same wait covers the other nodes' claims on disk (`keeping`): until
confirmed, every node a claim read from disk names keeps its slots, alive
to us or not.  A restarted agent's first placement passes run before its
join has found anyone: every peer looks gone, and it would coordinate their
slots onto itself under new ballots -- stealing running replicas from live
nodes (seen on the testbed: a node back from a power cut took two of its
peers' three slots, then rebalancing moved one back).  Once confirmed, the
holders that really are gone are re-placed as usual, by then with the
cluster's view; a lone survivor waits `replay_confirm_s` at most.

Pure: the caller passes `now`, how to ask whether the claims agree, and
each slot's winning claim.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import replace

from auction.claims import Ballot, Claim, holds
from auction.placement_outputs import StartReplica, StopReplica

RuntimeCommand = StartReplica | StopReplica


class ReplayHold:
    def __init__(self, name: str, claims: Iterable[Claim], until: float) -> None:
        self._name = name
        # slot -> the ballot of our claim read from disk, while unconfirmed
        claims = list(claims)
        self._replayed: dict[str, Ballot] = {c.name: c.ballot for c in claims if holds(c, name)}
        # other nodes holding slots by our disk, kept until confirmed
        self._others: frozenset[str] = frozenset(c.node for c in claims if holds(c, c.node) and c.node != name)
        self._until = until
        self._confirmed = not self._replayed and not self._others
        self._held: dict[str, StartReplica] = {}     # full starts not given yet

    def filter(self, commands: Iterable[RuntimeCommand], now: float, agreed: Callable[[], bool],
               winning: Callable[[str], Claim | None]) -> list[RuntimeCommand]:
        """Placement's runtime commands, with the starts of unconfirmed
        claims read from disk made adopt-only; once confirmed, the held full
        starts of those that still win (after this pass's own commands)."""
        if not self._replayed and not self._held:
            return list(commands)
        out: list[RuntimeCommand] = []
        for cmd in commands:
            if isinstance(cmd, StartReplica):
                key = cmd.claim.name
                if self._replayed.get(key) == cmd.claim.ballot:
                    self._held[key] = cmd
                    cmd = replace(cmd, adopt_only=True)
                else:
                    self._forget(key)
            else:
                self._forget(cmd.slot)
            out.append(cmd)
        if self._confirm(now, agreed):
            for key in sorted(self._held):
                held, claim = self._held[key], winning(key)
                if claim == held.claim or (holds(claim, self._name) and claim is not None
                                           and claim.spec_hash == held.claim.spec_hash):
                    out.append(replace(held, claim=claim))
                    del self._held[key]
        return out

    def keeping(self, now: float, agreed: Callable[[], bool]) -> frozenset[str]:
        """The nodes that keep their slots because our disk names them as
        holders and our claims are not confirmed yet (empty once they are)."""
        return frozenset() if self._confirm(now, agreed) else self._others

    def _confirm(self, now: float, agreed: Callable[[], bool]) -> bool:
        if not self._confirmed and (now >= self._until or agreed()):
            self._confirmed = True
            self._replayed.clear()
            self._others = frozenset()
        return self._confirmed

    def _forget(self, key: str) -> None:
        self._replayed.pop(key, None)
        self._held.pop(key, None)
