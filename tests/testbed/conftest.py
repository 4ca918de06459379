"""The session's 5-node testbed (testbed_cluster.py says what it is and why one)."""

from __future__ import annotations

import os

import pytest

import testbed_cluster as tc


@pytest.fixture(scope="session")
def cluster(tmp_path_factory):
    if os.geteuid() != 0:
        pytest.skip("scripts/testbed needs root")
    with tc.own_testbed(tmp_path_factory.mktemp("e2e"), "e") as cl:
        cl.wait_all_up()
        yield cl
