"""Pull progress (node/runtime/pull_progress.py, node/core/image_progress.py):
Docker's recorded pull stream reduced to layers and bytes, paced to one
report per image a second, and carried in the node's status record."""

from __future__ import annotations

from auction.resources import Resources
from node.core.image_progress import MAX_PULLS, ImageProgress
from node.core.status import NodeStatus, RuntimeSummary
from node.runtime.pull_progress import LayerTally, Pace

MIB = 1 << 20

# What `api.pull("busybox", tag="2", stream=True, decode=True)` yields (recorded;
# "Extracting" and the closing lines carry nothing to count).
STREAM = [
    {"status": "Pulling from library/busybox", "id": "2"},
    {"status": "Pulling fs layer", "progressDetail": {}, "id": "a1"},
    {"status": "Pulling fs layer", "progressDetail": {}, "id": "b2"},
    {"status": "Already exists", "progressDetail": {}, "id": "c3"},
    {"status": "Waiting", "progressDetail": {}, "id": "b2"},
    {"status": "Downloading", "progressDetail": {"current": 4 * MIB, "total": 32 * MIB}, "id": "a1",
     "progress": "[=>   ]"},
    {"status": "Downloading", "progressDetail": {"current": 1 * MIB, "total": 16 * MIB}, "id": "b2"},
    {"status": "Downloading", "progressDetail": {"current": 12 * MIB, "total": 32 * MIB}, "id": "a1"},
    {"status": "Verifying Checksum", "progressDetail": {}, "id": "b2"},
    {"status": "Download complete", "progressDetail": {}, "id": "b2"},
    {"status": "Extracting", "progressDetail": {"current": 16 * MIB, "total": 16 * MIB}, "id": "b2"},
    {"status": "Pull complete", "progressDetail": {}, "id": "b2"},
]
END = [
    {"status": "Download complete", "progressDetail": {}, "id": "a1"},
    {"status": "Pull complete", "progressDetail": {}, "id": "a1"},
    {"status": "Digest: sha256:" + "0" * 64},
    {"status": "Status: Downloaded newer image for busybox:2"},
]


def test_a_recorded_pull_stream_reduces_to_layers_and_bytes():
    tally = LayerTally()
    for msg in STREAM[:8]:
        tally.feed(msg)
    # c3 is here already, a1 and b2 are downloading: 16 of 48 MiB known so far.
    assert tally.counts() == (1, 3, 13 * MIB, 48 * MIB)
    for msg in STREAM[8:]:
        tally.feed(msg)
    assert tally.progress("busybox:2") == ImageProgress("busybox:2", "", 2, 3, 28 * MIB, 48 * MIB)
    assert tally.progress("busybox:2").text("node-3") == "pulling busybox:2 on node-3: 2/3 layers, 28.0/48.0 MiB"
    for msg in END:
        tally.feed(msg)
    assert tally.counts() == (3, 3, 48 * MIB, 48 * MIB) and tally.error is None


def test_garbage_is_ignored_and_an_error_is_kept():
    tally = LayerTally()
    for msg in ["x", None, {"status": 3, "id": "a"}, {"id": ["a"], "status": "Downloading"},
                {"status": "Downloading", "id": "a", "progressDetail": {"current": "9", "total": -4}},
                {"status": "Downloading", "id": "a", "progressDetail": "50%"}]:
        tally.feed(msg)
    assert tally.counts() == (0, 1, 0, 0)
    tally.feed({"error": "manifest unknown", "errorDetail": {"message": "manifest unknown"}})
    assert tally.error == "manifest unknown"


def test_reports_are_paced_to_one_change_per_image_a_second():
    pace = Pace(every_s=1.0)
    p = ImageProgress("app:1", "", 0, 2, 0, 0)
    assert pace.offer(p, 10.0)                                      # the first at once
    assert not pace.offer(ImageProgress("app:1", "", 1, 2, 5, 9), 10.5)   # too soon
    assert pace.offer(ImageProgress("db:1", "", 0, 1, 0, 0), 10.5)  # another image has its own pace
    assert not pace.offer(p, 11.2)                                  # unchanged: nothing to tell
    assert pace.offer(ImageProgress("app:1", "", 1, 2, 5, 9), 11.2)
    assert [x.image for x in pace.current()] == ["app:1", "db:1"]
    pace.end("app:1")
    assert [x.image for x in pace.current()] == ["db:1"]


def test_the_status_record_carries_pulls_and_drops_them_first_when_full():
    fetch = ImageProgress("app:1", "node-1", 0, 0, 3 * MIB, 12 * MIB)
    assert fetch.text("node-2") == "fetching app:1 on node-2 from node-1: 3.0/12.0 MiB"
    pulls = tuple(ImageProgress(f"img{i}:1", "", i, 5, i, 10) for i in range(MAX_PULLS))
    base = NodeStatus("n1", Resources(2000, 2 << 30, 0), Resources(0, 0, 0))
    for runtime in (None, RuntimeSummary({"web": ((0,), ())})):
        st = NodeStatus("n1", base.capacity, base.allocated, runtime=runtime, pulls=pulls)
        assert NodeStatus.decode(st.encode()) == st
        assert NodeStatus.decode(st.encode()).pulls == pulls
    # Without pulls, a record encodes exactly as before they existed.
    assert len(NodeStatus.decode(base.encode()).encode()) == len(base.encode())
    big = NodeStatus("n1", base.capacity, base.allocated, runtime=RuntimeSummary({"web": ((0,), ())}),
                     pulls=pulls)
    fitted = big.fit(len(big.encode()) - 1)
    assert fitted.pulls == () and fitted.runtime == big.runtime


def test_shoal_monitor_shows_progress_events_in_words():
    from node.cli.monitor import describe
    pull = {"event": "image_pull", "node": "node-3", "image": "busybox:2", "state": "progress", "layers": 5,
            "layers_done": 3, "bytes": int(12.1 * MIB), "bytes_total": 48 * MIB}
    assert describe(pull, "x") == ("image", "pulling busybox:2 on node-3: 3/5 layers, 12.1/48.0 MiB")
    fetch = {"event": "image_fetch", "node": "node-2", "image": "app:1", "peer": "node-1", "state": "progress",
             "bytes": 3 * MIB, "bytes_total": 12 * MIB}
    assert describe(fetch, "x") == ("image", "fetching app:1 on node-2 from node-1: 3.0/12.0 MiB")
