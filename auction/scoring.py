"""Scoring: which nodes may take a replica, how many fit, and how good each one is.

How this works: a `NodeView` is what a coordinator (from gossip) or a bidder
(from its own ledger) knows of a node: what it offers to jobs (`capacity`),
what is committed or reserved there (`used`), its labels and whether it is
`eligible` (False when drained or unhealthy).

- `filter_reason` applies the hard rules that do not depend on resources:
  eligibility first (reported as "drained"), then each of the job's
  constraints in order; the first one that fails is the reason, in its
  printed form ("rack == b").  None means the node passes.
- `fits` and `max_fit` look only at resources: `count` replicas fit when
  `demand * count` fits componentwise (cpu, memory, disk) in
  `capacity - used`.  `max_fit` is the largest such count (0 when none, or
  when the node is already over capacity in any component).
- `marginal_scores` scores the 1st, 2nd, ... extra replica on a node; higher
  is better.  Utilization after placing i replicas is the mean of the cpu
  and memory fractions used, each clamped to [0, 1] (a node offering none of
  a resource counts as full of it).  `binpack` scores that utilization, so
  the fullest node that fits wins (best fit) and a node's later replicas
  score higher than its first; `spread` scores 1 - utilization, so the
  emptiest node wins among those holding the fewest of the job's replicas
  (auction.winner counts those first).  Scores are plain floats computed the same way on
  every agent (integer amounts, one division per resource), so every
  coordinator ranks the same bids the same way.
- `with_pull_cost`: a node that would have to pull the job's image first
  (pull = "missing" or "always" and the image is not in its engine) bids its
  first replica's score minus `PULL_COST`; its later replicas pay nothing
  (the image is pulled once per node).  The cost is a tie-break with a small
  margin, on purpose far smaller than the share of a node one replica
  usually takes (0.1 % utilization): a node that has the image wins a tie,
  yet with `spread` replicas still go to idle nodes that must pull instead
  of piling onto the one node that has the image.
- `explain_unplaceable` is the status line of a slot that fits nowhere:
  "needs 2.0 cpu, 512.0 MiB; largest free is 1.5 cpu on node-3; 3 nodes
  filtered by rack == b; 1 drained".  Given how many of the job's replicas
  each node holds, it also says when every node with room is at the job's
  max_per_node (bidders decline those: auction.bidder), instead of naming
  them as nodes it fits on.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from .resources import Resources, format_cpu, format_memory
from .spec import JobSpec, Strategy

# filter_reason's answer for a node with eligible=False (drained or unhealthy).
INELIGIBLE_REASON = "drained"


@dataclass(frozen=True, slots=True)
class NodeView:
    """What a coordinator or bidder knows of a node."""
    name: str
    capacity: Resources         # offered to jobs
    used: Resources             # committed + reserved
    labels: dict[str, str]      # plain labels (rack, zone, arch, ...)
    eligible: bool = True       # False when drained or unhealthy

    def free(self) -> Resources:
        """capacity - used; negative components mean the node is overcommitted."""
        return self.capacity - self.used


def filter_reason(spec: JobSpec, node: NodeView) -> str | None:
    """None if the node is eligible and passes every hard constraint (resources are
    not looked at); otherwise "drained" or the first failing constraint, printed."""
    if not node.eligible:
        return INELIGIBLE_REASON
    for constraint in spec.constraints:
        if not constraint.matches(node.labels):
            return str(constraint)
    return None


def fits(spec: JobSpec, node: NodeView, count: int = 1) -> bool:
    """Do `count` more replicas of spec fit in the node's capacity - used?"""
    if count < 0:
        raise ValueError(f"count {count} is negative")
    return (spec.demand() * count).fits_in(node.free())


def max_fit(spec: JobSpec, node: NodeView) -> int:
    """How many more replicas of spec fit (by cpu, memory and disk); 0 if the node
    is over capacity in any component.  Raises ValueError for an all-zero demand,
    which would fit without limit (validated specs always ask for cpu)."""
    return max_fit_demand(spec.demand(), node.free())


def max_fit_demand(demand: Resources, free: Resources) -> int:
    """The largest n with demand * n fitting in free (0 if free has a deficit)."""
    if not free.is_nonnegative():
        return 0
    limits = [have // need for need, have in (
        (demand.cpu_millis, free.cpu_millis),
        (demand.memory_bytes, free.memory_bytes),
        (demand.disk_bytes, free.disk_bytes),
    ) if need > 0]
    if not limits:
        raise ValueError(f"demand {demand} is zero: any number of replicas would fit")
    return min(limits)


def _fraction(amount: int, capacity: int) -> float:
    if capacity <= 0:
        return 1.0
    return min(1.0, max(0.0, amount / capacity))


def utilization(capacity: Resources, used: Resources) -> float:
    """Mean of the cpu and memory fractions used, each clamped to [0, 1]."""
    return (_fraction(used.cpu_millis, capacity.cpu_millis)
            + _fraction(used.memory_bytes, capacity.memory_bytes)) / 2


def marginal_scores(strategy: Strategy | str, node: NodeView, demand: Resources,
                    count: int) -> list[float]:
    """Scores of placing the 1st, 2nd, ... count-th extra replica on node (higher is
    better).  Does not check that they fit: callers pass count <= max_fit."""
    strategy = Strategy(strategy)       # accepts "binpack" / "spread" too
    if count < 0:
        raise ValueError(f"count {count} is negative")
    scores = []
    for i in range(1, count + 1):
        u = utilization(node.capacity, node.used + demand * i)
        scores.append(u if strategy is Strategy.BINPACK else 1.0 - u)
    return scores


# What pulling the image costs a bid (see the module docstring), in units of
# utilization: less than one replica's share of any realistic node.
PULL_COST = 0.001


def with_pull_cost(scores: list[float], must_pull: bool) -> list[float]:
    """A bid's marginal scores, its first one lowered by PULL_COST when the
    node must pull the image first."""
    if not must_pull or not scores:
        return scores
    return [scores[0] - PULL_COST, *scores[1:]]


# ---- why a replica fits nowhere ---------------------------------------------------

_DIMENSIONS: tuple[tuple[str, Callable[[Resources], int], Callable[[int], str]], ...] = (
    ("cpu", lambda r: r.cpu_millis, format_cpu),
    ("memory", lambda r: r.memory_bytes, format_memory),
    ("disk", lambda r: r.disk_bytes, lambda b: f"{format_memory(b)} disk"),
)


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def _shown_free(node: NodeView) -> Resources:
    """Free resources for a message: a deficit shows as nothing free."""
    f = node.free()
    return Resources(max(0, f.cpu_millis), max(0, f.memory_bytes), max(0, f.disk_bytes))


def _shortfall(demand: Resources, candidates: list[NodeView]) -> str:
    """Why none of the candidates (eligible, constraints passed) has room."""
    short, best_nodes = [], []
    for _, get, fmt in _DIMENSIONS:
        if get(demand) <= 0:
            continue
        # Most free in this dimension; ties go to the smallest name.
        best = min(candidates, key=lambda n: (-get(n.free()), n.name))
        best_nodes.append(best)
        if get(best.free()) < get(demand):
            short.append(f"largest free is {fmt(max(0, get(best.free())))} on {best.name}")
    if short:
        return "; ".join(short)
    # Each resource alone is available somewhere, but never all on one node.
    seen: list[str] = []
    shown = []
    for node in best_nodes:
        if node.name not in seen:
            seen.append(node.name)
            shown.append(f"{node.name} has {_shown_free(node)}")
    return f"no node has all of it free ({'; '.join(shown)})"


def could_take(spec: JobSpec, node: NodeView, held: Mapping[str, int] | None = None) -> bool:
    """May `node` take one more replica of spec: it passes the filters, has
    room, and (`held`: the job's replicas on each node) is under max_per_node."""
    return (filter_reason(spec, node) is None and fits(spec, node)
            and (spec.max_per_node is None or held is None or held.get(node.name, 0) < spec.max_per_node))


def _listed(names: list[str]) -> str:
    return ", ".join(names[:3]) + (", ..." if len(names) > 3 else "")


def explain_unplaceable(spec: JobSpec, nodes: list[NodeView], held: Mapping[str, int] | None = None) -> str:
    """A short human reason why one more replica of spec fits on none of
    nodes.  `held`: the job's replicas on each node, for its max_per_node
    (None: not known, the limit is not judged)."""
    demand = spec.demand()
    parts = [f"needs {demand}"]
    if not nodes:
        return f"needs {demand}; no nodes known"
    candidates: list[NodeView] = []
    filtered: Counter[str] = Counter()
    ineligible = 0
    for node in nodes:
        reason = filter_reason(spec, node)
        if reason is None:
            candidates.append(node)
        elif not node.eligible:
            ineligible += 1
        else:
            filtered[reason] += 1
    if not candidates:
        parts.append("no node passes the constraints" if filtered else "no eligible node")
    else:
        fitting = sorted(n.name for n in candidates if fits(spec, n))
        limit = spec.max_per_node
        at_limit = [name for name in fitting if limit is not None and held and held.get(name, 0) >= limit]
        if at_limit:
            full = set(at_limit)
            fitting = [name for name in fitting if name not in full]
        if fitting:
            # Called for a replica that does fit by the published resources (the
            # view changed meanwhile, or those nodes declined for another
            # reason, which the coordinator's part of the status names).
            parts.append(f"room on {_plural(len(fitting), 'node')} ({_listed(fitting)})")
        elif at_limit:
            parts.append(f"every node it fits on ({_listed(at_limit)}) has max_per_node = {limit} "
                         f"replica{'' if limit == 1 else 's'} of {spec.name} already")
        else:
            parts.append(_shortfall(demand, candidates))
    for reason, n in sorted(filtered.items(), key=lambda kv: (-kv[1], kv[0])):
        parts.append(f"{_plural(n, 'node')} filtered by {reason}")
    if ineligible:
        parts.append(f"{ineligible} {INELIGIBLE_REASON}")
    return "; ".join(parts)
