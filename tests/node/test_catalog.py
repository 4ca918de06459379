"""The service catalog (node.core.catalog): who is listed, at which address,
and how a replica leaves it; plus the publish address in the status record."""

from __future__ import annotations

import msgpack
import pytest

from auction.claims import Ballot, Claim
from auction.resources import Resources
from auction.spec import validate
from gossip.swim import PAYLOAD_MAX_BYTES
from node.core.catalog import ServiceInstance, build_catalog
from node.core.inputs import Persisted, RuntimeSlots, WriteJob
from node.core.outputs import StartReplica
from node.core.status import NodeStatus, RuntimeSummary, StatusError
from test_core_contract import Link

CAP = Resources(2000, 2 << 30, 0)
HOSTS = {"n1": "10.0.0.1", "n2": "10.0.0.2", "n3": "10.0.0.3"}


def claim(slot: str, node: str, ports=(), released=False, rnd=1) -> Claim:
    return Claim(slot, Ballot(rnd, "c#1"), node, released, "h", Resources(500, 1 << 20, 0), tuple(ports))


def status(name: str, running: dict[str, str] | None = None, **kw) -> NodeStatus:
    runtime = None if running is None else RuntimeSummary.from_states(running)
    return NodeStatus(name, CAP, Resources(0, 0, 0), runtime=runtime, **kw)


def spec(name: str, **extra):
    return validate({"name": name, "image": "busybox", "cpu": 0.5, "memory": "64MiB", **extra})


# ---- the publish address in the status record -----------------------------------


def test_a_record_without_an_address_encodes_exactly_as_before():
    s = status("n1", {"web/0": ("running", "")})
    raw = msgpack.unpackb(s.encode(), raw=False)
    assert len(raw) == 13                                   # no trailing element: old encodings unchanged
    with_addr = status("n1", {"web/0": ("running", "")}, address="192.0.2.7")
    back = NodeStatus.decode(with_addr.encode())
    assert back.address == "192.0.2.7" and back == with_addr
    assert NodeStatus.decode(s.encode()).address == ""


def test_a_malformed_address_is_refused_and_fit_keeps_the_address():
    raw = msgpack.unpackb(status("n1").encode(), raw=False)
    for bad in (7, "x" * 300, None):
        with pytest.raises(StatusError):
            NodeStatus.decode(msgpack.packb([*raw, bad], use_bin_type=True))
    states = {f"job-with-a-longish-name-{j:03d}/{i}": ("failed", "exited 137 after an OOM kill, 4 restarts")
              for j in range(40) for i in range(3)}
    fitted = status("n1", states, address="2001:db8::1").fit(PAYLOAD_MAX_BYTES)
    assert len(fitted.encode()) <= PAYLOAD_MAX_BYTES and fitted.address == "2001:db8::1"


# ---- who is listed ----------------------------------------------------------------


def test_a_running_replica_of_an_alive_node_is_listed_with_its_address_and_ports():
    claims = [claim("web/1", "n2", [("http", 20001)]), claim("web/0", "n1", [("http", 20000)]),
              claim("db/0", "n3")]
    statuses = {"n1": status("n1", {"web/0": ("running", "")}, address="192.0.2.1"),
                "n2": status("n2", {"web/1": ("running", "")}, address="not-an-ip"),
                "n3": status("n3", {"db/0": ("running", "")}, address="0.0.0.0")}   # every interface
    cat = build_catalog(claims, statuses, {"n1", "n2", "n3"}, HOSTS,
                        spec_of=lambda j: spec(j, health={"command": ["true"]}) if j == "db" else None)
    assert cat.instances == (
        ServiceInstance("db", 0, "n3", "10.0.0.3", (), "passing"),
        ServiceInstance("web", 0, "n1", "192.0.2.1", (("http", 20000),), "no check"),
        ServiceInstance("web", 1, "n2", "10.0.0.2", (("http", 20001),), "no check"),  # not an IP: gossip host
    )
    assert cat.names() == ("db", "web")
    assert [i.port("http") for i in cat.service("web")] == [20000, 20001]
    assert cat.nodes == {"n1": "192.0.2.1", "n2": "10.0.0.2", "n3": "10.0.0.3"}
    assert cat.service("web")[0].to_dict() == {"job": "web", "slot": 0, "node": "n1", "address": "192.0.2.1",
                                               "ports": {"http": 20000}, "health": "no check"}


def test_a_replica_not_known_to_run_is_never_listed():
    claims = [claim("a/0", "n1"), claim("b/0", "n1"), claim("c/0", "n1", released=True),
              claim("d/0", "n2"), claim("e/0", "n3"), claim("f/0", "n1"), claim("g/0", "n1")]
    truncated = RuntimeSummary.from_states({"a/0": ("running", "")})
    truncated = RuntimeSummary(truncated.jobs, truncated=True)          # "g" was dropped to fit 1 KiB
    statuses = {
        "n1": NodeStatus("n1", CAP, Resources(0, 0, 0), runtime=RuntimeSummary(
            {**truncated.jobs, **RuntimeSummary.from_states({"b/0": ("failed", "exit 1"), "c/0": ("running", ""),
                                                              "f/0": ("starting", "")}).jobs}, True)),
        "n2": status("n2", None),                                       # publishes no runtime summary
        "n3": status("n3", {"e/0": ("running", "")}),                   # suspected: not alive
    }
    cat = build_catalog(claims, statuses, {"n1", "n2"}, HOSTS)
    assert [(i.job, i.index) for i in cat.instances] == [("a", 0)]
    assert "n3" not in cat.nodes


def test_a_job_without_network_is_not_listed_and_a_drained_node_still_serves():
    claims = [claim("quiet/0", "n1"), claim("web/0", "n1")]
    statuses = {"n1": status("n1", {"quiet/0": ("running", ""), "web/0": ("running", "")}, drained=True)}
    cat = build_catalog(claims, statuses, {"n1"}, HOSTS,
                        spec_of=lambda j: spec(j, network="none") if j == "quiet" else spec(j))
    assert [i.job for i in cat.instances] == ["web"]


def test_our_own_replicas_follow_our_runtime_not_our_last_published_record():
    claims = [claim("web/0", "n1"), claim("web/1", "n2")]
    published = {"n1": status("n1", {"web/0": ("running", "")}), "n2": status("n2", {"web/1": ("running", "")})}
    latest = RuntimeSummary.from_states({"web/0": ("failed", "unhealthy")})
    cat = build_catalog(claims, published, {"n1", "n2"}, HOSTS, me="n1", my_runtime=latest,
                        my_status=status("n1", address="192.0.2.9"))
    assert [(i.job, i.index, i.node) for i in cat.instances] == [("web", 1, "n2")]
    assert cat.nodes["n1"] == "192.0.2.9"


# ---- on live cores -----------------------------------------------------------------


def _placed(link: Link, replicas: int) -> dict[str, int]:
    """Submit web with `replicas` and run until each slot started somewhere: slot -> node index."""
    job = validate({"name": "web", "image": "busybox", "replicas": replicas, "cpu": 0.5, "memory": "64MiB"})
    link.feed(0, WriteJob("web", job.canonical_json(), token=1))
    link.feed(0, Persisted(1))
    where: dict[str, int] = {}
    for _ in range(50):
        link.run(0.2)
        for i in range(len(link.cores)):
            for out in link.take(i):
                if isinstance(out, StartReplica):
                    where[out.claim.name] = i
        if len(where) == replicas:
            return where
    raise AssertionError(f"not placed: {where}")


def test_the_catalog_converges_and_a_stopped_replica_leaves_its_own_node_at_once():
    link = Link(3)
    link.join_all()
    where = _placed(link, 3)
    for i in range(3):
        link.feed(i, RuntimeSlots({s: ("running", "") for s, n in where.items() if n == i}))
    link.run(1.0)
    catalogs = [core.view.catalog() for core in link.cores]
    assert catalogs[0] == catalogs[1] == catalogs[2]
    assert {(f"{i.job}/{i.index}", i.node, i.address) for i in catalogs[0].instances} == {
        (s, f"n{n}", "10.0.0.1") for s, n in where.items()}
    assert link.cores[1].view.catalog() is catalogs[1]        # cached while nothing moved

    slot, holder = sorted(where.items())[0]
    other = (holder + 1) % 3
    link.feed(holder, RuntimeSlots({s: ("failed" if s == slot else "running", "exit 1")
                                    for s, n in where.items() if n == holder}))
    mine = {f"{i.job}/{i.index}" for i in link.cores[holder].view.catalog().instances}
    assert slot not in mine                                    # at once, before any publication
    assert slot in {f"{i.job}/{i.index}" for i in link.cores[other].view.catalog().instances}
    link.run(1.0)
    assert slot not in {f"{i.job}/{i.index}" for i in link.cores[other].view.catalog().instances}



def _publications(link, inp=None, seconds: float = 2.0) -> list[float]:
    """When core 0 published a new version of its status record after being
    fed `inp`, within `seconds` (0.0: at once)."""
    core, times = link.cores[0], []
    version = core.swim.payloads()[core.name][0]
    start = link.now
    if inp is not None:
        link.feed(0, inp)
    while True:
        now_version = core.swim.payloads()[core.name][0]
        if now_version != version:
            times.append(round(link.now - start, 2))
            version = now_version
        if link.now >= start + seconds - 1e-9:
            return times
        link.run(0.01)


def test_a_record_that_changes_what_the_catalogs_list_goes_out_twice():
    # Gossip misses a member now and then (at 16 nodes every node relays a
    # record 6 times, and none of the ~90 sends may go to one member: in
    # tests/sim/test_catalog_sim.py's scene about 1 change in 60 missed some
    # member); that member's catalog then lists a replica that turned
    # unhealthy, or misses one that passes again, until push/pull repairs it
    # many seconds later.  So such a record goes out again status_repeat_s
    # later, as for a rollout.
    link = Link(1)
    repeat_s = link.cores[0].cfg.status_repeat_s
    _publications(link)                                             # the start-up publications are done

    def states(web0: str, *more: str) -> RuntimeSlots:
        return RuntimeSlots({"web/0": (web0, "unhealthy" if web0 == "failed" else ""), "web/1": ("running", ""),
                             **{slot: ("exited", "exit 1") for slot in more}})

    first = _publications(link, states("running"))
    assert len(first) == 2 and first[1] - first[0] >= repeat_s - 0.011   # turned running: twice
    assert len(_publications(link, states("failed"))) == 2           # unhealthy: twice
    assert len(_publications(link, states("running"))) == 2          # healthy again: twice
    # A slot that never ran exits: the catalogs list the same, so once.
    assert len(_publications(link, states("running", "web/2"))) == 1
