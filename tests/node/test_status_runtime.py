"""The runtime summary in a node's status record (node/status.py)."""

from __future__ import annotations

import msgpack

from auction.resources import Resources
from gossip.swim import PAYLOAD_MAX_BYTES
from auction.placement import normalize_image
from node.core.status import NodeStatus, RuntimeSummary

CAP = Resources(2000, 2 << 30, 0)


def status(**kw) -> NodeStatus:
    return NodeStatus("n1", CAP, Resources(0, 0, 0), {"rack": "a"}, **kw)


def test_summary_from_slot_states_round_trips_and_answers_per_slot():
    s = RuntimeSummary.from_states({"web/0": ("running", ""), "web/2": ("failed", "exited 1, 2 restarts"),
                                    "web/3": ("starting", ""), "db/1": ("exited", "exited 0 (policy never)"),
                                    "bad": ("running", "")})
    assert s.jobs == {"db": ((), ((1, "exited", "exited 0 (policy never)"),)),
                      "web": ((0,), ((2, "failed", "exited 1, 2 restarts"),))}
    back = NodeStatus.decode(status(runtime=s).encode())
    assert back.runtime == s
    assert s.state_of("web", 0) == ("running", "")
    assert s.state_of("web", 2) == ("failed", "exited 1, 2 restarts")
    assert s.state_of("web", 3) == ("starting", "")        # held, not listed
    assert s.state_of("other", 0) == ("starting", "")      # complete summary: not started yet
    assert len(RuntimeSummary.from_states({"j/0": ("failed", "x" * 500)}).jobs["j"][1][0][2]) == 60


def test_records_without_a_summary_still_decode_both_ways():
    old = NodeStatus.decode(status().encode())
    assert old.runtime is None
    # an older agent's record (12 fields) and a newer one with more fields than we know
    raw = msgpack.unpackb(status().encode(), raw=False)
    assert NodeStatus.decode(msgpack.packb(raw[:12], use_bin_type=True)).runtime is None
    raw[12] = [False, {"web": [[0], []]}]
    assert NodeStatus.decode(msgpack.packb(raw + ["future"], use_bin_type=True)).runtime.state_of("web", 0) == (
        "running", "")
    raw[12] = "garbage"
    assert NodeStatus.decode(msgpack.packb(raw, use_bin_type=True)).runtime is None


def test_fit_drops_whole_jobs_until_the_record_fits_and_says_so():
    states = {f"job-with-a-longish-name-{j:03d}/{i}": ("failed", "exited 137 after an OOM kill, 4 restarts")
              for j in range(40) for i in range(3)}
    big = status(runtime=RuntimeSummary.from_states(states))
    assert len(big.encode()) > PAYLOAD_MAX_BYTES
    fitted = big.fit(PAYLOAD_MAX_BYTES)
    assert len(fitted.encode()) <= PAYLOAD_MAX_BYTES
    assert fitted.runtime.truncated and 0 < len(fitted.runtime.jobs) < 40
    assert min(fitted.runtime.jobs) == "job-with-a-longish-name-000"   # the last names went first
    assert fitted.runtime.state_of("job-with-a-longish-name-039", 0) is None  # unknown, not "starting"
    small = status(runtime=RuntimeSummary.from_states({"web/0": ("running", "")}))
    assert small.fit(PAYLOAD_MAX_BYTES) is small


def test_image_names_normalize_as_docker_lists_them():
    for given, want in [("busybox", "busybox:latest"), ("docker.io/library/busybox", "busybox:latest"),
                        ("docker.io/library/busybox:1.36", "busybox:1.36"), ("docker.io/me/app", "me/app:latest"),
                        ("registry.local:5000/team/app", "registry.local:5000/team/app:latest"),
                        ("app@sha256:abc", "app@sha256:abc")]:
        assert normalize_image(given) == want
