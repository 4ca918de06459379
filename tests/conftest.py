"""Suite-wide test options.

The `large` tier: tests marked `@pytest.mark.large` (the 1,000-node simulator
runs, minutes of CPU each) are skipped unless the run asks for them with
`--large` (what `scripts/test --large` passes) or SHOAL_LARGE=1.  The default
suite checks the same properties at a size that fits CI's 15 minutes.

Running on several workers (pytest-xdist, `scripts/test` passes `-n` and
`--dist loadgroup`): about half of the suite's wall time is spent waiting on
real processes (dockerds, agents, a three-minute chaos run) while the rest is
pure simulation burning one core, so the two overlap.  What may share a worker
is decided here, in one place:
  * tests that start agents, dockerds, registries, namespaces or Serf, or use
    the host's shared dockerd (`PROCESS_DIRS`, `PROCESS_FILES`, the `real`
    marker) form ONE group and so run one at a time, in file order, exactly
    as in a serial run: they share the host dockerd and loopback ports, and
    their timing assumptions were made for an otherwise quiet set of agents;
  * the seeded chaos run has a group of its own: its own testbed prefix and
    subnet isolate it, and it is three minutes of mostly waiting;
  * every other file is a group of its own, so a module-scoped fixture (the
    shared 200-node world of tests/sim/test_sim_large.py) sees its tests in
    file order on one worker, as in a serial run.
Groups are ordered longest first, so the worker that takes the process group
is not left waiting for a long simulation at the end.
"""

from __future__ import annotations

import os
from pathlib import PurePosixPath

import pytest

PROCESS_GROUP = "processes"
PROCESS_DIRS = ("tests/runtime", "tests/testbed", "tests/interop")
PROCESS_FILES = ("tests/test_netns_script.py",)
# Isolated (own testbed prefix and subnet) and long: may overlap the process group.
OWN_GROUP_FILES = ("tests/testbed/test_chaos_run.py",)


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--large", action="store_true", default=False,
                     help="also run the tests marked `large` (1,000-node simulations; env SHOAL_LARGE=1)")


def large_tier_enabled(config: pytest.Config) -> bool:
    return bool(config.getoption("--large")) or os.environ.get("SHOAL_LARGE") == "1"


def worker_group(item: pytest.Item) -> str:
    """The xdist group of a test (see the module docstring)."""
    path = PurePosixPath(item.nodeid.split("::")[0])
    if str(path) in OWN_GROUP_FILES:
        return str(path)
    if (item.get_closest_marker("real") is not None or str(path) in PROCESS_FILES
            or any(path.is_relative_to(d) for d in PROCESS_DIRS)):
        return PROCESS_GROUP
    return str(path)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    groups = {item.nodeid: worker_group(item) for item in items}
    rank = {PROCESS_GROUP: 0, **{f: 1 for f in OWN_GROUP_FILES}}
    # A stable sort: inside a group (and a file) the order stays as collected.
    items.sort(key=lambda item: rank.get(groups[item.nodeid], 2))
    for item in items:
        item.add_marker(pytest.mark.xdist_group(groups[item.nodeid]))
    if large_tier_enabled(config):
        return
    skip = pytest.mark.skip(reason="large tier: run with `scripts/test --large` (or SHOAL_LARGE=1)")
    for item in items:
        if item.get_closest_marker("large") is not None:
            item.add_marker(skip)
