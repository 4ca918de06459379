"""node/runtime/containers.py: a replica's spec and its node's container policy
as the Engine API's container config (no dockerd: the SDK's own HostConfig
builder turns the arguments into the JSON dockerd receives)."""

from __future__ import annotations

import functools

import pytest
from docker.types import HostConfig

from auction.claims import Ballot, Claim
from auction.container_policy import DEFAULT_CAPS, SAFE_POLICY, ContainerPolicy
from auction.spec import validate
from node.runtime.config import API_VERSION, DockerRuntimeConfig
from node.runtime.containers import PolicyRefused, create_kwargs

host_config = functools.partial(HostConfig, API_VERSION)


def spec(**more):
    return validate({"name": "web", "image": "busybox", "command": ["sleep", "9"], **more})


def created(sp, policy=SAFE_POLICY, node="n1"):
    claim = Claim("web/0", Ballot(3, "c"), node, False, sp.container_hash(), sp.demand())
    return create_kwargs(node, "web/0", claim, sp, sp.container_hash(), DockerRuntimeConfig(),
                         host_config, policy)


def test_every_container_is_hardened_by_default():
    kw = created(spec())
    hc = kw["host_config"]
    assert hc["SecurityOpt"] == ["no-new-privileges:true"]
    assert hc["PidsLimit"] == 1024
    assert hc["CapDrop"] == ["ALL"] and hc["CapAdd"] == sorted(DEFAULT_CAPS)
    assert "NET_RAW" not in hc["CapAdd"]
    assert not hc.get("ReadonlyRootfs") and not hc.get("Devices")
    assert kw["user"] is None            # the image's USER
    # What was there before stays.
    assert hc["NetworkMode"] == "none" and hc["Memory"] == 64 << 20 and hc["RestartPolicy"] == {"Name": "no"}


def test_what_the_spec_asks_and_the_policy_allows_is_what_docker_is_told():
    policy = ContainerPolicy(allow_caps=DEFAULT_CAPS | {"NET_ADMIN"}, allow_users=frozenset({"0:0"}),
                             allow_devices=frozenset({"/dev/fuse"}), max_pids_limit=10_000)
    kw = created(spec(cap_add=["NET_ADMIN"], cap_drop=["ALL"], user="0:0", read_only=True,
                      devices=["/dev/fuse:/dev/fuse:rw"], pids_limit=9000), policy)
    hc = kw["host_config"]
    assert hc["CapDrop"] == ["ALL"] and hc["CapAdd"] == ["NET_ADMIN"]
    assert hc["PidsLimit"] == 9000 and hc["ReadonlyRootfs"] is True
    assert hc["Devices"] == [{"PathOnHost": "/dev/fuse", "PathInContainer": "/dev/fuse",
                              "CgroupPermissions": "rw"}]
    assert kw["user"] == "0:0"


def test_cap_drop_takes_from_the_default_set():
    hc = created(spec(cap_drop=["CHOWN", "SETUID"]))["host_config"]
    assert hc["CapAdd"] == sorted(DEFAULT_CAPS - {"CHOWN", "SETUID"})


@pytest.mark.parametrize("more,reason", [
    ({"cap_add": ["SYS_ADMIN"]}, "cap SYS_ADMIN is not allowed on n1"),
    ({"user": "root"}, "user 'root' is not allowed on n1"),
    ({"devices": ["/dev/kvm"]}, "device /dev/kvm is not allowed on n1"),
    ({"pids_limit": 100_000}, "pids_limit 100000 is over the 4096 allowed on n1"),
])
def test_a_spec_the_policy_does_not_allow_is_refused_not_weakened(more, reason):
    with pytest.raises(PolicyRefused) as info:
        created(spec(**more))
    assert str(info.value) == reason
