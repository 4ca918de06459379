"""Settled jobs: placement's per-tick walks skip a job with nothing to do.

How this works: every tick, every agent walks every slot of every job twice
(auction.rollout_act looks for slots running another version,
Placement._coordinate for slots needing placing), reading each slot's
claim: per agent and second, work that grows with the cluster's replicas,
and in a cluster at rest it finds nothing to do (1.1 ms per tick at 1,000
replicas, 11.7 ms at 10,000: scripts/bench/placement_tick.py).  While jobs
are placed or healed, some claim of nearly every job changes at every
tick, and the skip below saves little.  What either walk decides for a
job depends only on its spec, its slots' claims, who keeps slots (the
tick's keeping set: auction.suspicion_rule) and who is drained.  So a walk
that finds a job with nothing to do records it, under its spec and the
version of the keeping and drained sets, and later ticks skip the job
until one of those moves or a claim of the job is merged (`claims_merged`,
which the core calls with every merge; a change of the map it was not
told of, seen by the map's digest, forgets every job).

`_coordinate` records a job only when it has no round of its own open and
every slot has a claim its holder keeps: its look-ups then change nothing
(the claim waits and pending reasons it clears for such slots are clear).
The only other writer of those is a round closing, and a job with a round
open is never recorded; the claims its awards bring unsettle it.
`rollout_act` records a job every claim of which names the spec's version
and which has no rollout in progress (checked every tick).

One more walk reads every claim, not every job: a slot's coordinator
releases the claim of a dead holder for a slot nobody wants any more (a
deleted job's, or one at an index past `replicas`).  What it finds depends
only on the claims map, the view of who is alive (which also picks the
coordinators), the specs and the deleted jobs, so `SettledSweep` skips it
while none of those moved since a sweep that found nothing: at rest that
walk was the whole tick (1.49 ms of 1.5 at 10 x 1,000 replicas).

Pure: no I/O, no clock.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping

from .claims import Claim
from .membership import NodeStatus
from .spec import JobSpec

# What a walk's verdict on a job depended on besides its claims: (its spec,
# the version of the keeping and drained sets).
Inputs = tuple[JobSpec, int]


# The two walks (auction.rollout_act's, Placement._coordinate's).
ROLL, COORDINATE = "roll", "coordinate"


class SettledJobs:
    """The jobs each walk found with nothing to do, under which inputs."""

    def __init__(self) -> None:
        self._settled: dict[str, dict[str, Inputs]] = {ROLL: {}, COORDINATE: {}}  # walk -> job -> inputs
        self._holders: tuple[set[str], frozenset[str]] = (set(), frozenset())  # (keeping, drained)
        self._version = 0
        self._claims_digest: bytes | None = None  # the claims map as last told of

    def start_tick(self, keeping: Collection[str], statuses: Mapping[str, NodeStatus],
                   jobs: Collection[str], claims_digest: bytes) -> None:
        """Note this tick's keeping set, drained members and claims map; forget jobs gone."""
        if claims_digest != self._claims_digest:
            self._forget_all(claims_digest)
        drained = frozenset(name for name, status in statuses.items() if status.drained)
        if keeping != self._holders[0] or drained != self._holders[1]:
            self._holders = (set(keeping), drained)
            self._version += 1
        for settled in self._settled.values():
            for job in [j for j in settled if j not in jobs]:
                del settled[job]

    def claims_merged(self, merged: Iterable[Claim], digest_before: bytes, digest_after: bytes) -> None:
        """These claims changed the map (from digest_before to digest_after)."""
        if digest_before != self._claims_digest:
            self._forget_all(digest_after)
            return
        for claim in merged:
            for settled in self._settled.values():
                settled.pop(claim.job, None)
        self._claims_digest = digest_after

    def _forget_all(self, claims_digest: bytes) -> None:
        for settled in self._settled.values():
            settled.clear()
        self._claims_digest = claims_digest

    def inputs(self, spec: JobSpec) -> Inputs:
        return (spec, self._version)

    def is_settled(self, walk: str, job: str, inputs: Inputs) -> bool:
        """Whether `walk` found `job` with nothing to do under these inputs."""
        return self._settled[walk].get(job) == inputs

    def record(self, walk: str, job: str, inputs: Inputs, settled: bool) -> None:
        """What `walk` found of `job` under these inputs."""
        if settled:
            self._settled[walk][job] = inputs
        else:
            self._settled[walk].pop(job, None)


class SettledSweep:
    """Whether the release sweep (above) found nothing under the inputs it
    is asked with again."""

    def __init__(self) -> None:
        self._found_nothing_under: tuple[bytes, frozenset[str], dict[str, JobSpec | None], frozenset[str]] | None = None

    def is_settled(self, claims_digest: bytes, view: frozenset[str], specs: Mapping[str, JobSpec | None],
                   deleted: Collection[str]) -> bool:
        last = self._found_nothing_under
        return (last is not None and last[0] == claims_digest and last[1] is view and len(last[2]) == len(specs)
                and all(last[2].get(job, False) is spec for job, spec in specs.items()) and last[3] == deleted)

    def record(self, claims_digest: bytes, view: frozenset[str], specs: Mapping[str, JobSpec | None],
               deleted: Collection[str], found_nothing: bool) -> None:
        self._found_nothing_under = (claims_digest, view, dict(specs), frozenset(deleted)) if found_nothing else None
