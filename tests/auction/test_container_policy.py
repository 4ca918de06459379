"""Container security: the job spec's fields, a node's operator policy, and
the bidder declining (with the reason) a job that asks more than its node allows."""

from __future__ import annotations

import random

import pytest

from auction.auctioneer import RoundClosed, SendTo
from auction.claims import Claim
from auction.container_policy import (
    DEFAULT_CAPS,
    DEFAULT_MAX_PIDS_LIMIT,
    LINUX_CAPS,
    ContainerPolicy,
    PolicyError,
)
from auction.messages import Award, Bid, CallForBids, Decline
from auction.placement import Placement, PlacementConfig
from auction.placement_outputs import StartReplica
from auction.resources import Resources
from auction.spec import DEFAULT_PIDS_LIMIT, JobSpec, SpecError, validate
from gossip.lww import LwwMap
from node.core.hlc import Stamp
from node.core.jobstore import Entry
from node.core.status import NodeStatus

GiB = 1 << 30
CAPACITY = Resources(8000, 16 * GiB)


def job(**more: object) -> JobSpec:
    return validate({"name": "web", "image": "busybox", "cpu": 1, "memory": "1GiB", **more})


def problems(**more: object) -> dict[str, str]:
    with pytest.raises(SpecError) as info:
        job(**more)
    return {p.path: p.message for p in info.value.problems}


# ---- the spec fields -----------------------------------------------------------------

def test_a_spec_without_security_fields_gets_the_hardened_defaults_and_keeps_its_hash():
    s = job()
    assert (s.cap_add, s.cap_drop, s.user, s.read_only, s.devices) == ((), (), None, False, ())
    assert s.pids_limit == DEFAULT_PIDS_LIMIT == 1024
    # At their defaults they are not written: older agents hash the spec the same.
    assert not {"cap_add", "cap_drop", "user", "read_only", "devices", "pids_limit"} & set(s.to_dict())
    assert job(pids_limit=1024, read_only=False, cap_add=[]).spec_hash() == s.spec_hash()


def test_security_fields_are_canonical_and_round_trip():
    s = job(cap_add=["net_admin", "CAP_SYS_PTRACE", "NET_ADMIN"], cap_drop=["all"], user="1000:1000",
            read_only=True, devices=["/dev/fuse", "/dev/snd:rw", "/dev/sda:/dev/xvda:mr"], pids_limit=64)
    d = s.to_dict()
    assert d["cap_add"] == ["NET_ADMIN", "SYS_PTRACE"] and d["cap_drop"] == ["ALL"]
    assert d["user"] == "1000:1000" and d["read_only"] is True and d["pids_limit"] == 64
    assert d["devices"] == ["/dev/fuse:/dev/fuse:rwm", "/dev/sda:/dev/xvda:rm", "/dev/snd:/dev/snd:rw"]
    assert validate(d) == s


@pytest.mark.parametrize("field,value", [
    ("cap_add", ["NET_ADMIN"]), ("cap_drop", ["CHOWN"]), ("user", "app"), ("read_only", True),
    ("devices", ["/dev/fuse"]), ("pids_limit", 2048),
])
def test_each_security_field_changes_the_container_hash(field, value):
    assert job(**{field: value}).container_hash() != job().container_hash()


@pytest.mark.parametrize("more,path,fragment", [
    ({"cap_add": ["SYS_ADMN"]}, "cap_add[0]", "did you mean 'SYS_ADMIN'?"),
    ({"cap_add": ["ALL"]}, "cap_add[0]", "list the capabilities"),
    ({"cap_add": "NET_ADMIN"}, "cap_add", "must be a list"),
    ({"cap_add": [7]}, "cap_add[0]", "must be a capability name"),
    ({"cap_drop": ["CHOWN", "NOPE"]}, "cap_drop[1]", "not a Linux capability"),
    ({"cap_add": ["KILL"], "cap_drop": ["kill"]}, "cap_add", "KILL also in cap_drop"),
    ({"user": 1000}, "user", "quote it"),
    ({"user": "a b"}, "user", "is not a user"),
    ({"user": "x" * 65}, "user", "at most 64"),
    ({"read_only": "yes"}, "read_only", "must be true or false"),
    ({"devices": "/dev/fuse"}, "devices", "must be a list"),
    ({"devices": ["/etc/passwd"]}, "devices[0]", "not a device under /dev/"),
    ({"devices": ["/dev/../etc/shadow"]}, "devices[0]", "not an absolute path"),
    ({"devices": ["dev/fuse"]}, "devices[0]", "not an absolute path"),
    ({"devices": ["/dev/fuse:/dev/fuse:rwx"]}, "devices[0]", "permissions 'rwx'"),
    ({"devices": ["/dev/a:/dev/x:r:w"]}, "devices[0]", "HOST[:CONTAINER[:PERMISSIONS]]"),
    ({"devices": ["/dev/a:/dev/x", "/dev/b:/dev/x"]}, "devices[1]", "already the container path"),
    ({"devices": ["/dev/x"] * 65}, "devices", "at most 64"),
    ({"pids_limit": 0}, "pids_limit", "between 1 and 4194304"),
    ({"pids_limit": True}, "pids_limit", "must be an integer"),
])
def test_each_bad_security_field_is_named(more, path, fragment):
    found = problems(**more)
    assert path in found, found
    assert fragment in found[path], found


def test_every_bad_security_field_is_reported_at_once():
    found = problems(cap_add=["BOGUS"], user="", read_only=1, devices=["/x"], pids_limit=-1)
    assert set(found) == {"cap_add[0]", "user", "read_only", "devices[0]", "pids_limit"}


# ---- the policy ----------------------------------------------------------------------

def test_default_capabilities_are_dockers_without_net_raw():
    assert "NET_RAW" not in DEFAULT_CAPS and {"CHOWN", "SETUID", "NET_BIND_SERVICE"} <= DEFAULT_CAPS
    assert len(DEFAULT_CAPS) == 13 and DEFAULT_CAPS <= LINUX_CAPS and len(LINUX_CAPS) == 41
    safe = ContainerPolicy()
    assert safe.capabilities(job()) == tuple(sorted(DEFAULT_CAPS))
    assert safe.capabilities(job(cap_drop=["ALL"])) == ()
    assert safe.capabilities(job(cap_drop=["ALL"], cap_add=["CHOWN"])) == ("CHOWN",)
    assert "MKNOD" not in safe.capabilities(job(cap_drop=["MKNOD"]))
    # The operator's allow_caps also narrows the default set.
    narrow = ContainerPolicy(allow_caps=frozenset({"CHOWN", "NET_ADMIN"}))
    assert narrow.capabilities(job()) == ("CHOWN",)
    assert narrow.capabilities(job(cap_add=["NET_ADMIN"])) == ("CHOWN", "NET_ADMIN")


def test_the_safe_policy_refuses_more_than_the_default_and_says_what_and_where():
    safe = ContainerPolicy()
    assert safe.refusal(job(), "node-2") is None
    assert safe.refusal(job(cap_add=["CHOWN"], cap_drop=["ALL"], read_only=True, user="1000:1000",
                            pids_limit=DEFAULT_MAX_PIDS_LIMIT), "node-2") is None
    assert safe.refusal(job(cap_add=["SYS_ADMIN"]), "node-2") == "cap SYS_ADMIN is not allowed on node-2"
    assert safe.refusal(job(cap_add=["NET_RAW", "SYS_ADMIN", "BPF", "PERFMON"]), "n") == (
        "caps BPF, NET_RAW, PERFMON (and 1 more) are not allowed on n")
    assert safe.refusal(job(user="root"), "n") == "user 'root' is not allowed on n"
    assert safe.refusal(job(user="1000:0"), "n") == "user '1000:0' is not allowed on n"
    assert safe.refusal(job(devices=["/dev/fuse"]), "n") == "device /dev/fuse is not allowed on n"
    assert safe.refusal(job(pids_limit=5000), "n") == "pids_limit 5000 is over the 4096 allowed on n"
    both = safe.refusal(job(cap_add=["NET_ADMIN"], devices=["/dev/kvm"]), "n")
    assert both == "cap NET_ADMIN is not allowed; device /dev/kvm is not allowed on n"


def test_an_operator_allows_exactly_what_the_table_says():
    policy = ContainerPolicy.from_table({"allow_caps": ["cap_net_admin", "CHOWN"], "allow_users": ["root"],
                                         "allow-devices": ["/dev/fuse"], "max_pids_limit": 100})
    assert policy == ContainerPolicy(frozenset({"NET_ADMIN", "CHOWN"}), frozenset({"root"}),
                                     frozenset({"/dev/fuse"}), 100)
    assert policy.refusal(job(cap_add=["NET_ADMIN"], user="root", devices=["/dev/fuse:/dev/f:r"],
                              pids_limit=100), "n") is None
    # allow_users lists root only: "*" is not in it, so other users are refused.
    assert policy.refusal(job(user="app", pids_limit=100), "n") == "user 'app' is not allowed on n"
    # The default pids limit is over this node's maximum: declined, not lowered.
    assert policy.refusal(job(), "n") == "pids_limit 1024 is over the 100 allowed on n"
    assert ContainerPolicy.from_table({"allow_caps": ["ALL"]}).allow_caps == LINUX_CAPS
    assert ContainerPolicy.from_table({"allow_users": []}).refusal(job(user="app"), "n") is not None
    assert ContainerPolicy.from_table(None) == ContainerPolicy.from_table({}) == ContainerPolicy()


def test_a_host_volume_mounts_only_paths_its_node_allows():
    logs = job(volumes={"logs": {"type": "host", "source": "/srv/app/logs", "target": "/logs"}})
    assert ContainerPolicy().refusal(logs, "n") == "host path /srv/app/logs is not allowed (allow_host_paths) on n"
    allowing = ContainerPolicy.from_table({"allow_host_paths": ["/srv/app"]})
    assert allowing.refusal(logs, "n") is None                                   # under an allowed directory
    assert allowing.refusal(job(volumes={"x": {"type": "host", "source": "/srv/application", "target": "/x"}}),
                            "n") is not None                                     # a prefix is not a parent
    # Docker volumes and tmpfs reach nothing of the node's: allowed everywhere.
    assert ContainerPolicy().refusal(job(volumes={"d": {"target": "/d"}, "t": {"target": "/t", "type": "tmpfs"}}),
                                     "n") is None


@pytest.mark.parametrize("table,field,fragment", [
    ({"allow_host_paths": ["srv"]}, "containers.allow_host_paths[0]", "not an absolute path"),
    ({"allow_host_paths": ["/srv/../etc"]}, "containers.allow_host_paths[0]", "not an absolute path"),
    ({"allow_caps": ["SYS_ADMN"]}, "containers.allow_caps[0]", "not a Linux capability"),
    ({"allow_caps": "SYS_ADMIN"}, "containers.allow_caps", "list of strings"),
    ({"allow_users": ["a b"]}, "containers.allow_users[0]", "not a user"),
    ({"allow_devices": ["/etc/passwd"]}, "containers.allow_devices[0]", "under /dev/"),
    ({"max_pids_limit": 0}, "containers.max_pids_limit", "from 1 to"),
    ({"max_pids_limit": "10"}, "containers.max_pids_limit", "integer"),
    ({"allow_privileged": True}, "containers.allow_privileged", "unknown setting"),
])
def test_a_bad_policy_setting_is_named(table, field, fragment):
    with pytest.raises(PolicyError) as info:
        ContainerPolicy.from_table(table)
    assert info.value.field == field and fragment in str(info.value)


# ---- declining at bidding time -------------------------------------------------------

def status(name: str) -> NodeStatus:
    return NodeStatus(name, CAPACITY, Resources(0, 0))


def placement(name: str, claims: LwwMap[Claim], policy: ContainerPolicy | None = None) -> Placement:
    more = {} if policy is None else {"container_policy": policy}
    return Placement(name, CAPACITY, random.Random(0), PlacementConfig(), claims=claims,
                     ballot_id=f"{name}#1", **more)


def test_a_node_declines_a_job_asking_more_than_it_allows_with_the_reason():
    spec = job(cap_add=["SYS_ADMIN"])
    call = CallForBids("x:1", "x", "web", spec.container_hash(), (0,), 0.5)
    strict = placement("node-2", LwwMap(100))       # the safe default policy
    assert strict.on_call(call, spec=spec, status=status("node-2"), now=0.0) == Decline(
        "x:1", "node-2", "cap SYS_ADMIN is not allowed on node-2")
    assert strict.ledger.reservations == {}          # nothing reserved for it
    lenient = placement("node-3", LwwMap(100), ContainerPolicy(allow_caps=DEFAULT_CAPS | {"SYS_ADMIN"}))
    assert isinstance(lenient.on_call(call, spec=spec, status=status("node-3"), now=0.0), Bid)
    # A job asking nothing more is welcome on the strict node.
    plain = job()
    plain_call = CallForBids("x:2", "x", "web", plain.container_hash(), (0,), 0.5)
    assert isinstance(strict.on_call(plain_call, spec=plain, status=status("node-2"), now=0.0), Bid)


def test_the_job_lands_on_the_node_that_allows_it_and_the_pending_reason_says_why_not_elsewhere():
    spec = job(devices=["/dev/fuse"])
    claims: LwwMap[Claim] = LwwMap(100)
    nodes = {"a": placement("a", claims),
             "b": placement("b", claims, ContainerPolicy(allow_devices=frozenset({"/dev/fuse"})))}
    statuses = {n: status(n) for n in nodes}
    entry = Entry("web", Stamp(1, 0, "a"), spec.canonical_json())
    outs = []
    for coord in nodes.values():
        got, _ = coord.tick(jobs={"web": entry}, deleted=set(), statuses=statuses, alive=set(nodes), now=0.0)
        outs += got
    calls = [(o.node, o.msg) for o in outs if isinstance(o, SendTo) and isinstance(o.msg, CallForBids)]
    assert sorted(n for n, _ in calls) == ["a", "b"]    # the coordinator does not know the policies
    coord = next(p for p in nodes.values() if p.auctioneer.busy_slots("web"))
    results = []
    for name, call in calls:
        answer = nodes[name].on_call(call, spec=nodes[name].spec_from_call(call), status=statuses[name], now=0.1)
        if isinstance(answer, Decline):
            assert answer.reason == "device /dev/fuse is not allowed on a"
            results += coord.auctioneer.on_decline(answer, now=0.1)
        else:
            results += coord.auctioneer.on_bid(answer, now=0.1)
    [award] = [o.msg for o in results if isinstance(o, SendTo) and isinstance(o.msg, Award)]
    assert [o.node for o in results if isinstance(o, SendTo) and isinstance(o.msg, Award)] == ["b"]
    for c in nodes["b"].on_award(award, spec=spec, now=0.2):
        claims.merge(c)
    assert [type(c) for c in nodes["b"].reconcile(lambda j, h: spec, now=0.2)] == [StartReplica]


def test_when_no_node_allows_it_the_slot_stays_pending_with_the_reason():
    spec = job(user="root")
    p = placement("a", LwwMap(100))
    entry = Entry("web", Stamp(1, 0, "a"), spec.canonical_json())
    outs, _ = p.tick(jobs={"web": entry}, deleted=set(), statuses={"a": status("a")}, alive={"a"}, now=0.0)
    [call] = [o.msg for o in outs if isinstance(o, SendTo) and isinstance(o.msg, CallForBids)]
    answer = p.on_call(call, spec=p.spec_from_call(call), status=status("a"), now=0.0)
    assert isinstance(answer, Decline)
    [rc] = [o for o in p.auctioneer.on_decline(answer, now=0.0) if isinstance(o, RoundClosed)]
    p.on_round_closed(rc, now=0.0)
    assert p.pending_reasons == {"web/0": "1 declined: user 'root' is not allowed on a"}
