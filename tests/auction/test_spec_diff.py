"""auction.spec_diff: what a new version changes, and what writing it would do."""

from __future__ import annotations

from auction.resources import Resources
from auction.scoring import NodeView
from auction.spec import validate
from auction.spec_diff import Change, diff, plan, replaces_containers, summary

GiB = 1 << 30
BASE = {"name": "web", "image": "busybox:1", "cpu": 1, "memory": "256MiB", "replicas": 3,
        "env": {"A": "1", "B": "2"}}


def spec(**changes):
    return validate({**BASE, **changes})


def node(name: str, cpu_free_millis: int, labels: dict[str, str] | None = None, eligible: bool = True) -> NodeView:
    return NodeView(name, Resources(4000, 8 * GiB), Resources(4000 - cpu_free_millis, 0), labels or {}, eligible)


def test_fields_are_compared_one_by_one_and_tables_key_by_key():
    old, new = spec(), spec(image="busybox:2", env={"A": "1", "C": "3"}, spread="rack")
    assert diff(old, new) == [Change("env.B", "2", None), Change("env.C", None, "3"),
                              Change("image", "busybox:1", "busybox:2"), Change("spread", None, "rack")]
    assert replaces_containers(old, new)
    assert summary(diff(old, new)) == "env.B, env.C, image, +1 more"
    assert diff(old, old) == [] and summary([]) == "no change"


def test_a_files_change_names_the_part_of_the_file_that_changed():
    conf = {"target": "/etc/app.conf", "content": "a = 1\n" * 40}
    old = spec(files={"app.conf": conf})
    new = spec(files={"app.conf": {**conf, "content": "a = 2\n" * 40, "mode": "0440"},
                      "key": {"target": "/key", "content": "k"}})
    assert [c.path for c in diff(old, new)] == ["files.app.conf.content", "files.app.conf.mode", "files.key"]
    assert replaces_containers(old, new)


def test_replicas_constraints_and_restart_replace_nothing():
    old = spec()
    new = spec(replicas=5, constraints=["rack == a"], restart={"policy": "never"})
    assert [c.path for c in diff(old, new)] == ["constraints", "replicas", "restart.policy"]
    assert not replaces_containers(old, new) and not replaces_containers(None, new)


def test_plan_replaces_in_place_moves_what_no_longer_fits_and_stops_the_extra():
    old, new = spec(), spec(cpu=2, replicas=2)
    holders = {0: "roomy", 1: "tight", 2: "roomy"}
    nodes = [node("roomy", 2000), node("tight", 500), node("spare", 3000)]
    p = plan(old, new, holders, nodes)
    assert p.replaces and p.replaced == [0] and p.moved == [1] and p.stopped == [2]
    assert p.started == [1] and p.fits_on == {1: "spare"} and p.unplaceable == {}


def test_new_slots_go_where_filters_and_room_allow_and_the_rest_say_why():
    old, new = spec(replicas=1), spec(replicas=4, constraints=["rack == a"], max_per_node=1)
    nodes = [node("a1", 4000, {"rack": "a"}), node("a2", 4000, {"rack": "a"}), node("b1", 4000, {"rack": "b"}),
             node("a3", 4000, {"rack": "a"}, eligible=False)]
    p = plan(old, new, {0: "a1"}, nodes)
    assert not p.replaces and p.replaced == [] and p.started == [1, 2, 3]
    assert p.fits_on == {1: "a2"}
    assert p.unplaceable == {i: "needs 1.0 cpu, 256.0 MiB; every node it fits on (a1, a2) has max_per_node = 1 "
                                "replica of web already; 1 node filtered by rack == a; 1 drained" for i in (2, 3)}
    p = plan(old, spec(replicas=3, constraints=["rack == a"]), {0: "a1"}, nodes[1:3])
    assert p.fits_on == {1: "a2", 2: "a2"} and p.unplaceable == {}
    p = plan(old, spec(replicas=2, constraints=["rack == c"]), {0: "a1"}, nodes)
    assert p.unplaceable == {1: "needs 1.0 cpu, 256.0 MiB; no node passes the constraints; "
                                "3 nodes filtered by rack == c; 1 drained"}


def test_a_new_job_places_every_slot():
    p = plan(None, spec(replicas=2), {}, [node("n1", 4000)])
    assert p.changes[0] == Change("cpu", None, 1.0) and not p.replaces
    assert p.started == [0, 1] and p.fits_on == {0: "n1", 1: "n1"}
