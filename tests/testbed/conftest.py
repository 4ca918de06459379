"""The session's 5-node testbed (testbed_cluster.py says what it is and why one)."""

from __future__ import annotations

import os

import pytest

import test_testbed as tb    # same directory (pytest's default prepend import mode)
import testbed_cluster as tc


@pytest.fixture(scope="session")
def cluster(tmp_path_factory):
    if os.geteuid() != 0:
        pytest.skip("scripts/testbed needs root")
    bed = tb.Bed(tmp_path_factory.mktemp("e2e"), "e")
    cl = None
    ids: dict[int, list[str]] = {}
    try:
        bed.run("up", str(tc.N), "--profile", "local", *tc.CAPACITY)
        cl = tc.Cluster(bed)
        cl.wait_all_up()
        yield cl
    finally:
        if cl is not None:
            ids = {i: sorted(set(tb.container_ids(n)) | cl.seen_ids[i]) for i, n in cl.nodes.items()}
            for client in cl.docker.values():
                client.close()
        out = bed.run("down", check=False)
    assert out.returncode == 0, out.stderr
    assert bed.leftovers(ids) == []
