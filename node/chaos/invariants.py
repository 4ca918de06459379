"""The invariants a chaos campaign checks, as plain functions of what was
observed, shared by the simulator campaign and the live-cluster audit.

How this works: each check takes ground truth (what runs where, what each
node can hold, which job writes were acknowledged, what each agent stores)
and returns the problems it finds as strings; an empty list is a pass.
Nothing here knows where the observations came from, so the same rule
judges a simulated run, a testbed run and a production cluster.

- `overcommit`: a node runs replicas whose reservations exceed its capacity.
- `slot_problems`: once converged, every desired slot runs exactly once and
  nothing else of ours runs (lost, doubled, undesired).
- `lost_write`: an acknowledged write is neither what an agent stores nor
  beaten by what it stores (last-writer-wins may replace a write, never drop it).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from auction.resources import Resources

# Invariant names, as reports show them.
OVERCOMMIT = "no-overcommit"
EXACTLY_ONCE = "exactly-once"
ACKED_WRITES = "acked-writes"
AWARD_SAFETY = "award-safety"
NO_CRASH = "no-crash"
CONVERGES = "converges"
INVARIANTS = (OVERCOMMIT, EXACTLY_ONCE, ACKED_WRITES, AWARD_SAFETY, NO_CRASH, CONVERGES)


def overcommit(node: str, usage: Resources, capacity: Resources) -> str | None:
    """Why node's running replicas exceed its capacity, or None."""
    if usage.fits_in(capacity):
        return None
    return (f"{node} runs {usage.cpu_millis}m cpu / {usage.memory_bytes >> 20} MiB "
            f"over its capacity {capacity.cpu_millis}m / {capacity.memory_bytes >> 20} MiB")


def total(demands: Iterable[Resources]) -> Resources:
    out = Resources(0, 0, 0)
    for d in demands:
        out = out + d
    return out


def desired_slots(replicas: Mapping[str, int]) -> set[str]:
    """job -> replica count  =>  the slot keys "job/index" that should run."""
    return {f"{job}/{i}" for job, n in replicas.items() for i in range(n)}


def slot_problems(counts: Mapping[str, int], desired: set[str]) -> list[str]:
    """Every desired slot runs exactly once; nothing else runs."""
    problems = []
    for slot in sorted(desired):
        k = counts.get(slot, 0)
        if k == 0:
            problems.append(f"{slot} lost: runs nowhere")
        elif k > 1:
            problems.append(f"{slot} doubled: runs {k} times")
    for slot in sorted(s for s, k in counts.items() if k > 0 and s not in desired):
        problems.append(f"{slot} runs but is not desired")
    return problems


def global_problems(running: Mapping[int, Iterable[str] | None], jobs: Iterable[str]) -> list[str]:
    """Each sampled node (node -> the slots running there; None: not sampled)
    runs exactly one copy of each global job (auction.global_jobs)."""
    problems = []
    for job in sorted(jobs):
        for node, slots in sorted(running.items()):
            if slots is None:
                continue
            k = sum(1 for slot in slots if slot.rpartition("/")[0] == job)
            if k != 1:
                problems.append(f"{job} runs {'nowhere' if k == 0 else f'{k} times'} on node {node}")
    return problems


def lost_write(acked: object, have: object | None) -> bool:
    """Is the acknowledged job-store entry `acked` missing from an agent that
    stores `have` (None: nothing) for the same name?  Entries order by
    `beats` (node.core.jobstore.Entry); a forgotten tombstone (None) still
    honours an acknowledged delete."""
    if have is None:
        return getattr(acked, "spec", b"") is not None
    return not (have == acked or have.beats(acked))  # type: ignore[attr-defined]
