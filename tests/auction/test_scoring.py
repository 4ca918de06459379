"""Scoring functions against hand-computed values and naive versions.

How this works: each function in auction.scoring is pinned on a few cases
worked out by hand, then compared by Hypothesis with a version written the
slow, obvious way: `fits` against a per-component check, `max_fit` against
counting up until the next replica does not fit, `marginal_scores` against
exact fractions.  `explain_unplaceable` is checked on the messages people
will read.
"""

from __future__ import annotations

from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from auction.resources import GiB, MiB, Resources
from auction.scoring import (
    NodeView, explain_unplaceable, filter_reason, fits, marginal_scores, max_fit,
    max_fit_demand, utilization,
)
from auction.spec import Constraint, JobSpec, Strategy


def job(cpu_millis=500, memory_bytes=GiB, constraints=(), **kw) -> JobSpec:
    return JobSpec(name="web", image="nginx", cpu_millis=cpu_millis, memory_bytes=memory_bytes,
                   constraints=tuple(Constraint.parse(c) for c in constraints), **kw)


def node(name="n1", cpu=4000, mem=8 * GiB, used_cpu=0, used_mem=0, labels=None, eligible=True,
         disk=0, used_disk=0) -> NodeView:
    return NodeView(name, Resources(cpu, mem, disk), Resources(used_cpu, used_mem, used_disk),
                    dict(labels or {}), eligible)


# ---- filter_reason ------------------------------------------------------------------

def test_filter_reason():
    spec = job(constraints=["rack == b", "arch in [amd64, arm64]"])
    assert filter_reason(spec, node(labels={"rack": "b", "arch": "arm64"})) is None
    assert filter_reason(spec, node(labels={"rack": "a", "arch": "arm64"})) == "rack == b"
    assert filter_reason(spec, node(labels={"arch": "arm64"})) == "rack == b"
    assert filter_reason(spec, node(labels={"rack": "b", "arch": "riscv"})) == \
        "arch in [amd64, arm64]"
    # Eligibility comes first, and resources are not looked at.
    assert filter_reason(spec, node(labels={"rack": "a"}, eligible=False)) == "drained"
    assert filter_reason(job(), node(used_cpu=9000)) is None


def test_filter_reason_not_equal_passes_without_label():
    spec = job(constraints=["zone != z1"])
    assert filter_reason(spec, node(labels={})) is None
    assert filter_reason(spec, node(labels={"zone": "z1"})) == "zone != z1"


# ---- fits / max_fit -----------------------------------------------------------------

def test_fits_and_max_fit_by_hand():
    spec = job(cpu_millis=500, memory_bytes=GiB)
    n = node(cpu=4000, mem=8 * GiB, used_cpu=1000, used_mem=2 * GiB)
    assert max_fit(spec, n) == 6                    # 3000m / 500m = 6, 6 GiB / 1 GiB = 6
    assert fits(spec, n) and fits(spec, n, 6) and not fits(spec, n, 7)
    # memory is the limit
    n = node(cpu=4000, mem=8 * GiB, used_mem=7 * GiB)
    assert max_fit(spec, n) == 1
    # cpu is the limit
    n = node(cpu=1200, mem=8 * GiB)
    assert max_fit(spec, n) == 2
    assert max_fit(spec, node(cpu=400)) == 0 and not fits(spec, node(cpu=400))


def test_overcommitted_node_fits_nothing():
    # Over capacity on disk, which the job does not even ask for.
    n = node(disk=GiB, used_disk=2 * GiB)
    assert max_fit(job(), n) == 0
    assert not fits(job(), n)


def test_max_fit_counts_disk():
    assert max_fit_demand(Resources(100, MiB, GiB), Resources(1000, GiB, 3 * GiB + 5)) == 3


def test_zero_demand_is_refused():
    with pytest.raises(ValueError, match="zero"):
        max_fit_demand(Resources(0, 0), Resources(1000, GiB))


def fits_naive(demand, node_view, count):
    return (node_view.used.cpu_millis + count * demand.cpu_millis <= node_view.capacity.cpu_millis
            and node_view.used.memory_bytes + count * demand.memory_bytes
            <= node_view.capacity.memory_bytes
            and node_view.used.disk_bytes + count * demand.disk_bytes
            <= node_view.capacity.disk_bytes)


def max_fit_naive(demand, node_view):
    k = 0
    while fits_naive(demand, node_view, k + 1):
        k += 1
    return k


# Small amounts in coarse steps, so that exact fits and deficits are common.
amount = st.integers(0, 40)
nodes_st = st.builds(
    lambda c, m, d, uc, um, ud: node(cpu=c * 250, mem=m * 256 * MiB, disk=d * GiB,
                                     used_cpu=uc * 250, used_mem=um * 256 * MiB,
                                     used_disk=ud * GiB),
    amount, amount, st.integers(0, 3), amount, amount, st.integers(0, 3))
specs_st = st.builds(lambda c, m: job(cpu_millis=c * 250, memory_bytes=m * 256 * MiB),
                     st.integers(1, 12), st.integers(1, 12))


@settings(max_examples=1000, deadline=None)
@given(specs_st, nodes_st, st.integers(0, 50))
def test_fits_matches_naive(spec, n, count):
    assert fits(spec, n, count) == fits_naive(spec.demand(), n, count)


@settings(max_examples=1000, deadline=None)
@given(specs_st, nodes_st)
def test_max_fit_matches_naive(spec, n):
    assert max_fit(spec, n) == max_fit_naive(spec.demand(), n)


# ---- marginal_scores ----------------------------------------------------------------

def test_marginal_scores_by_hand():
    n = node(cpu=4000, mem=8 * GiB, used_cpu=1000, used_mem=2 * GiB)
    d = Resources(500, GiB)
    # after 1: (1500/4000 + 3/8) / 2 = 0.375; after 2: (2000/4000 + 4/8) / 2 = 0.5
    assert marginal_scores("binpack", n, d, 2) == [0.375, 0.5]
    assert marginal_scores(Strategy.BINPACK, n, d, 2) == [0.375, 0.5]
    assert marginal_scores("spread", n, d, 2) == [0.625, 0.5]
    assert marginal_scores("binpack", n, d, 0) == []
    # cpu and memory fractions differ: (1000/2000 + 1/4) / 2 = 0.375
    assert marginal_scores("binpack", node(cpu=2000, mem=4 * GiB), Resources(1000, GiB), 1) \
        == [0.375]


def test_binpack_prefers_fuller_node_spread_the_emptier():
    d = Resources(500, GiB)
    full = node(used_cpu=3000, used_mem=6 * GiB)
    empty = node()
    assert marginal_scores("binpack", full, d, 1)[0] > marginal_scores("binpack", empty, d, 1)[0]
    assert marginal_scores("spread", full, d, 1)[0] < marginal_scores("spread", empty, d, 1)[0]


def test_marginal_scores_edge_cases():
    # A node offering no memory counts as full of it; overcommit is clamped.
    assert marginal_scores("binpack", node(cpu=1000, mem=0), Resources(500, 0), 1) == [0.75]
    assert marginal_scores("binpack", node(cpu=1000, used_cpu=5000), Resources(500, 0), 1) \
        == [0.5]
    with pytest.raises(ValueError):
        marginal_scores("first-fit", node(), Resources(500, GiB), 1)
    with pytest.raises(ValueError):
        marginal_scores("binpack", node(), Resources(500, GiB), -1)


def utilization_exact(capacity, used):
    def frac(a, c):
        if c <= 0:
            return Fraction(1)
        return min(Fraction(1), max(Fraction(0), Fraction(a, c)))
    return (frac(used.cpu_millis, capacity.cpu_millis)
            + frac(used.memory_bytes, capacity.memory_bytes)) / 2


@settings(max_examples=1000, deadline=None)
@given(nodes_st, specs_st, st.integers(0, 20))
def test_marginal_scores_match_exact(n, spec, count):
    d = spec.demand()
    binpack = marginal_scores("binpack", n, d, count)
    spread = marginal_scores("spread", n, d, count)
    assert len(binpack) == len(spread) == count
    for i, (b, s) in enumerate(zip(binpack, spread), start=1):
        exact = utilization_exact(n.capacity, n.used + d * i)
        assert b == pytest.approx(float(exact), abs=1e-12)
        assert 0.0 <= b <= 1.0 and s == 1.0 - b
    # Each extra replica makes the node fuller: binpack never decreases.
    assert binpack == sorted(binpack)
    assert utilization(n.capacity, n.used) <= (binpack[0] if binpack else 1.0)


# ---- explain_unplaceable ------------------------------------------------------------

def test_explain_cpu_short_with_filters_and_drained():
    spec = job(cpu_millis=2000, memory_bytes=512 * MiB, constraints=["rack == b"])
    nodes = [
        node("node-1", cpu=2000, used_cpu=1000, labels={"rack": "b"}),
        node("node-3", cpu=4000, used_cpu=2500, labels={"rack": "b"}),
        node("node-2", cpu=8000, labels={"rack": "a"}),
        node("node-4", cpu=8000, labels={"rack": "a"}),
        node("node-5", cpu=8000, labels={}),
        node("node-6", cpu=8000, labels={"rack": "b"}, eligible=False),
    ]
    assert explain_unplaceable(spec, nodes) == (
        "needs 2.0 cpu, 512.0 MiB; largest free is 1.5 cpu on node-3; "
        "3 nodes filtered by rack == b; 1 drained")


def test_explain_memory_short_and_both_short():
    spec = job(cpu_millis=1000, memory_bytes=4 * GiB)
    nodes = [node("a", cpu=4000, mem=8 * GiB, used_mem=6 * GiB),
             node("b", cpu=4000, mem=4 * GiB, used_mem=GiB)]
    assert explain_unplaceable(spec, nodes) == "needs 1.0 cpu, 4.0 GiB; largest free is 3.0 GiB on b"
    nodes = [node("a", cpu=500, mem=GiB), node("b", cpu=250, mem=2 * GiB)]
    assert explain_unplaceable(spec, nodes) == (
        "needs 1.0 cpu, 4.0 GiB; largest free is 0.5 cpu on a; largest free is 2.0 GiB on b")


def test_explain_no_single_node_has_both():
    spec = job(cpu_millis=1000, memory_bytes=4 * GiB)
    nodes = [node("a", cpu=4000, mem=8 * GiB, used_mem=7 * GiB),
             node("b", cpu=4000, mem=8 * GiB, used_cpu=3500)]
    assert explain_unplaceable(spec, nodes) == (
        "needs 1.0 cpu, 4.0 GiB; no node has all of it free "
        "(a has 4.0 cpu, 1.0 GiB; b has 0.5 cpu, 8.0 GiB)")


def test_explain_ties_and_overcommit():
    spec = job(cpu_millis=2000, memory_bytes=MiB * 64)
    # Equal free cpu: the smaller name is named.  An overcommitted node shows 0.
    nodes = [node("z", cpu=1000), node("m", cpu=1000), node("x", cpu=1000, used_cpu=3000)]
    assert explain_unplaceable(spec, nodes) == "needs 2.0 cpu, 64.0 MiB; largest free is 1.0 cpu on m"
    nodes = [node("x", cpu=1000, used_cpu=3000)]
    assert explain_unplaceable(spec, nodes) == "needs 2.0 cpu, 64.0 MiB; largest free is 0.0 cpu on x"


def test_explain_nothing_passes():
    spec = job(cpu_millis=1000, memory_bytes=GiB, constraints=["zone == z1", "arch == arm64"])
    nodes = [node("a", labels={"zone": "z2"}), node("b", labels={"zone": "z1"}),
             node("c", labels={"zone": "z1"}), node("d", eligible=False)]
    assert explain_unplaceable(spec, nodes) == (
        "needs 1.0 cpu, 1.0 GiB; no node passes the constraints; "
        "2 nodes filtered by arch == arm64; 1 node filtered by zone == z1; 1 drained")
    assert explain_unplaceable(spec, [node("d", eligible=False), node("e", eligible=False)]) == (
        "needs 1.0 cpu, 1.0 GiB; no eligible node; 2 drained")
    assert explain_unplaceable(spec, []) == "needs 1.0 cpu, 1.0 GiB; no nodes known"


def test_explain_judges_max_per_node_against_what_each_node_holds():
    spec = job(cpu_millis=1000, memory_bytes=GiB, max_per_node=2)
    nodes = [node("n0"), node("n1"), node("tiny", cpu=100)]
    # Room on n0 and n1, but both hold 2 replicas of the job already.
    assert explain_unplaceable(spec, nodes, {"n0": 2, "n1": 2, "tiny": 1}) == (
        "needs 1.0 cpu, 1.0 GiB; every node it fits on (n0, n1) has max_per_node = 2 replicas of web already")
    # One below its limit: that one it fits on.
    assert explain_unplaceable(spec, nodes, {"n0": 2, "n1": 1}) == "needs 1.0 cpu, 1.0 GiB; room on 1 node (n1)"
    # Nothing known of what the nodes hold: not judged.
    assert explain_unplaceable(spec, nodes) == "needs 1.0 cpu, 1.0 GiB; room on 2 nodes (n0, n1)"


def test_explain_when_it_does_fit():
    spec = job(cpu_millis=1000, memory_bytes=GiB)
    nodes = [node(f"n{i}") for i in range(5)] + [node("tiny", cpu=100)]
    assert explain_unplaceable(spec, nodes) == (
        "needs 1.0 cpu, 1.0 GiB; room on 5 nodes (n0, n1, n2, ...)")
