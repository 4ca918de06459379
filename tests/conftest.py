"""Suite-wide test options.

The `large` tier: tests marked `@pytest.mark.large` (the 1,000-node simulator
runs, minutes of CPU each) are skipped unless the run asks for them with
`--large` (what `scripts/test --large` passes) or SHOAL_LARGE=1.  The default
suite checks the same properties at a size that fits CI's 15 minutes.

Running on several workers (pytest-xdist, `scripts/test` passes `-n` and
`--dist loadgroup`): most of the suite's wall time is spent waiting on real
processes (dockerds, agents, a three-minute chaos run) while the rest is pure
simulation burning one core, so they overlap.  What may share a worker is
decided here, in one place:
  * tests that use the host's dockerd (it is shared: scripts/docker-up
    starts one for all of them, and the quickstart's agents take fixed
    ports and the host's 127.0.0.1 port ranges) or its network set-up
    (`HOST_DOCKER_DIRS`, `HOST_DOCKER_FILES`) form one group and so run one
    at a time, in file order, as in a serial run;
  * tests that start agents or Serf on the host's loopback without Docker
    (the `real` marker, `HOST_AGENT_DIRS`) form a second such group: each
    agent binds port 0, so they cannot collide with the first group, and
    one at a time keeps at most two tests' agents sharing the cores (their
    timing assumptions were made for a few agents, not dozens);
  * the testbed tests (tests/testbed: nodes in network namespaces of their
    own, each with its own dockerd) form a third group, one at a time too:
    several of them pick fixed or pid-derived subnets that must never be up
    twice at once;
  * the seeded chaos run is a group of its own: its own testbed prefix and
    subnet (10.80.x) isolate it, and it is three minutes of mostly waiting;
  * every other file is a group of its own, so a module-scoped fixture (the
    shared 200-node world of tests/sim/test_sim_large.py) sees its tests in
    file order on one worker, as in a serial run.
The long groups go first, so no worker is left alone with one at the end.
"""

from __future__ import annotations

import os
from pathlib import PurePosixPath

import pytest

HOST_DOCKER_GROUP = "host-docker"
HOST_DOCKER_DIRS = ("tests/runtime",)
HOST_DOCKER_FILES = ("tests/node/test_quickstart.py", "tests/test_netns_script.py")
HOST_AGENT_GROUP = "host-agents"
HOST_AGENT_DIRS = ("tests/interop",)
TESTBED_GROUP = "testbed"
TESTBED_DIR = "tests/testbed"
# Isolated (own testbed prefix and subnet) and long: may overlap the other groups.
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
    if path.is_relative_to(TESTBED_DIR):
        return TESTBED_GROUP
    if str(path) in HOST_DOCKER_FILES or any(path.is_relative_to(d) for d in HOST_DOCKER_DIRS):
        return HOST_DOCKER_GROUP
    if item.get_closest_marker("real") is not None or any(path.is_relative_to(d) for d in HOST_AGENT_DIRS):
        return HOST_AGENT_GROUP
    return str(path)


# tryfirst: pytest-xdist's worker reads the xdist_group marks in its own
# collection hook (turning them into the "@group" suffix its scheduler
# groups by); ours must have added them by then.
@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    groups = {item.nodeid: worker_group(item) for item in items}
    # Each worker takes one group, and a second at once when its first has
    # at most two tests left (pytest-xdist's loadscope): so the one-test
    # chaos run goes fourth, and its worker starts on a simulation file
    # when it ends, not on a second long group behind it.
    rank = {HOST_AGENT_GROUP: 0, TESTBED_GROUP: 0, HOST_DOCKER_GROUP: 1, **{f: 2 for f in OWN_GROUP_FILES}}
    # A stable sort: inside a group (and a file) the order stays as collected.
    items.sort(key=lambda item: rank.get(groups[item.nodeid], 3))
    for item in items:
        item.add_marker(pytest.mark.xdist_group(groups[item.nodeid]))
    if large_tier_enabled(config):
        return
    skip = pytest.mark.skip(reason="large tier: run with `scripts/test --large` (or SHOAL_LARGE=1)")
    for item in items:
        if item.get_closest_marker("large") is not None:
            item.add_marker(skip)
