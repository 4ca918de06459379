"""node/runtime/containers.py and network.py: a replica's spec, its claim and
its node's container policy as the Engine API's container config (no dockerd:
the SDK's own HostConfig builder turns the arguments into the JSON dockerd
receives)."""

from __future__ import annotations

import functools

import pytest
from docker.types import HostConfig

from auction.claims import Ballot, Claim
from auction.container_policy import DEFAULT_CAPS, SAFE_POLICY, ContainerPolicy
from auction.spec import validate
from node.runtime.config import API_VERSION, DockerRuntimeConfig
from node.runtime.containers import PolicyRefused, create_kwargs, observed
from node.runtime.network import gateway_of, missing_ports, port_clash, start_refusal

host_config = functools.partial(HostConfig, API_VERSION)


def spec(**more):
    return validate({"name": "web", "image": "busybox", "command": ["sleep", "9"], **more})


def claim_of(sp, node="n1", ports=(), slot="web/0"):
    return Claim(slot, Ballot(3, "c"), node, False, sp.container_hash(), sp.demand(), tuple(sorted(ports)))


def created(sp, policy=SAFE_POLICY, node="n1", ports=(), cfg=None, slot="web/0"):
    return create_kwargs(node, slot, claim_of(sp, node, ports, slot), sp, sp.container_hash(),
                         cfg or DockerRuntimeConfig(), host_config, policy)


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
    assert hc["NetworkMode"] == "bridge" and hc["Memory"] == 64 << 20 and hc["RestartPolicy"] == {"Name": "no"}


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


# ---- networking (node/runtime/network.py) -------------------------------------------------------

WEB_PORTS = {"http": {"to": 8080}, "admin-ui": {"to": 9000, "static": 9000}}


def env_of(kw):
    return dict(kw["environment"])


def test_bridge_publishes_each_port_on_the_publish_address_only_tcp_and_udp():
    sp = spec(ports=WEB_PORTS)
    kw = created(sp, ports=[("http", 20001), ("admin-ui", 9000)])
    hc = kw["host_config"]
    assert hc["NetworkMode"] == "bridge"
    assert hc["PortBindings"] == {
        "8080/tcp": [{"HostIp": "127.0.0.1", "HostPort": "20001"}],
        "8080/udp": [{"HostIp": "127.0.0.1", "HostPort": "20001"}],
        "9000/tcp": [{"HostIp": "127.0.0.1", "HostPort": "9000"}],
        "9000/udp": [{"HostIp": "127.0.0.1", "HostPort": "9000"}]}
    assert sorted(kw["ports"]) == [(8080, "tcp"), (8080, "udp"), (9000, "tcp"), (9000, "udp")]
    assert "Dns" not in hc and "DnsSearch" not in hc          # Docker's default resolvers
    # The operator's publish address is the only one used.
    hc = created(sp, ports=[("http", 20001), ("admin-ui", 9000)],
                 cfg=DockerRuntimeConfig(publish_address="10.78.0.2"))["host_config"]
    assert {b["HostIp"] for binds in hc["PortBindings"].values() for b in binds} == {"10.78.0.2"}


def test_the_replica_learns_its_ports_addresses_node_and_slot():
    sp = spec(ports=WEB_PORTS, env={"GREETING": "hi"})
    kw = created(sp, node="node-2", slot="web/4", ports=[("http", 20001), ("admin-ui", 9000)],
                 cfg=DockerRuntimeConfig(publish_address="10.78.0.3"))
    assert env_of(kw) == {
        "GREETING": "hi", "SHOAL_JOB": "web", "SHOAL_SLOT": "4", "SHOAL_NODE": "node-2",
        "SHOAL_PORT_HTTP": "8080", "SHOAL_HOST_PORT_HTTP": "20001", "SHOAL_ADDR_HTTP": "10.78.0.3:20001",
        "SHOAL_PORT_ADMIN_UI": "9000", "SHOAL_HOST_PORT_ADMIN_UI": "9000", "SHOAL_ADDR_ADMIN_UI": "10.78.0.3:9000"}
    # IPv6 addresses are bracketed, as in a URL.
    kw = created(sp, ports=[("http", 20001), ("admin-ui", 9000)], cfg=DockerRuntimeConfig(publish_address="fd00::2"))
    assert env_of(kw)["SHOAL_ADDR_HTTP"] == "[fd00::2]:20001"


def test_host_networking_has_no_bindings_and_the_replica_listens_on_its_host_port():
    sp = spec(network="host", ports={"http": {}, "metrics": {"static": 9100}})
    kw = created(sp, ports=[("http", 20007), ("metrics", 9100)])
    hc = kw["host_config"]
    assert hc["NetworkMode"] == "host" and not hc.get("PortBindings") and kw["ports"] is None
    env = env_of(kw)
    assert env["SHOAL_PORT_HTTP"] == env["SHOAL_HOST_PORT_HTTP"] == "20007"
    assert env["SHOAL_ADDR_METRICS"] == "127.0.0.1:9100"
    # DNS settings are for bridge replicas (host ones use the host's resolvers).
    hc = created(sp, ports=[("http", 20007), ("metrics", 9100)],
                 cfg=DockerRuntimeConfig(dns_servers=("172.17.0.1",), dns_search=("service.shoal",)))["host_config"]
    assert "Dns" not in hc and "DnsSearch" not in hc


def test_no_network_is_none_and_a_job_without_ports_still_learns_who_it_is():
    kw = created(spec(network="none"), slot="web/0")
    assert kw["host_config"]["NetworkMode"] == "none" and kw["ports"] is None
    assert env_of(kw) == {"SHOAL_JOB": "web", "SHOAL_SLOT": "0", "SHOAL_NODE": "n1"}
    hc = created(spec())["host_config"]
    assert hc["NetworkMode"] == "bridge" and not hc.get("PortBindings")


def test_bridge_containers_get_the_configured_resolvers():
    cfg = DockerRuntimeConfig(dns_servers=("172.17.0.1",), dns_search=("service.shoal",),
                              dns_stack_domain="stack.shoal")
    hc = created(spec(), cfg=cfg)["host_config"]
    assert hc["Dns"] == ["172.17.0.1"] and hc["DnsSearch"] == ["service.shoal"]
    # A stack's job searches its stack first: `db` is shop-db, as under Compose.
    hc = created(spec(name="shop-api"), cfg=cfg, slot="shop-api/0")["host_config"]
    assert hc["DnsSearch"] == ["shop.stack.shoal", "service.shoal"]


def test_a_port_the_claim_gives_no_host_port_is_a_reason_to_give_up():
    sp = spec(ports=WEB_PORTS)
    assert missing_ports(sp, claim_of(sp, ports=[("http", 20001)])) == "no host port was assigned to port admin-ui"
    assert missing_ports(sp, claim_of(sp)) == "no host port was assigned to ports admin-ui, http"
    assert missing_ports(sp, claim_of(sp, ports=[("http", 20001), ("admin-ui", 9000)])) is None
    assert missing_ports(spec(), claim_of(spec())) is None


@pytest.mark.parametrize("message", [
    # dockerd 20.10's answers (its userland proxy, its port allocator)
    "driver failed programming external connectivity on endpoint shoal-web-0-3 (0123abcd): Error starting "
    "userland proxy: listen tcp4 127.0.0.1:20001: bind: address already in use",
    "driver failed programming external connectivity on endpoint shoal-web-0-3 (0123abcd): Bind for "
    "127.0.0.1:20001 failed: port is already allocated",
])
def test_a_host_port_held_by_something_else_is_named_in_the_reason(message):
    sp = spec(ports=WEB_PORTS)
    c = claim_of(sp, ports=[("http", 20001), ("admin-ui", 9000)])
    assert port_clash(message, "n1", sp, c, "127.0.0.1") == (
        "host port 127.0.0.1:20001 (http) is already in use on node n1")
    assert port_clash("No such image: busybox", "n1", sp, c, "127.0.0.1") is None


def test_an_engine_without_the_jobs_network_is_a_reason_to_give_up():
    sp = spec()
    # dockerd 20.10's answer to starting a bridge container when it runs with --bridge=none
    assert start_refusal("network bridge not found", "n1", sp, claim_of(sp), "127.0.0.1") == (
        "the Docker engine of node n1 has no bridge network")
    assert start_refusal("container exited with code 1", "n1", sp, claim_of(sp), "127.0.0.1") is None


def test_the_bridge_gateway_from_the_engine_network_inspection():
    assert gateway_of({"IPAM": {"Config": [{"Subnet": "172.18.0.0/16", "Gateway": "172.18.0.1"}]}}) == "172.18.0.1"
    # dockerd leaves Gateway out for the default bridge it made: the subnet's first address.
    assert gateway_of({"IPAM": {"Config": [{"Subnet": "172.17.0.0/16"}]}}) == "172.17.0.1"
    assert gateway_of({"IPAM": {"Config": [{"Subnet": "fd00::/64"}]}}) is None
    assert gateway_of({"IPAM": {"Config": None}}) is None and gateway_of({}) is None


def test_the_jobs_stop_signal_and_grace_are_the_containers():
    kw = created(spec(stop_signal="SIGQUIT", stop_grace_s=2.5))
    assert (kw["stop_signal"], kw["stop_timeout"]) == ("SIGQUIT", 3)    # whole seconds, never shorter
    kw = created(spec())
    # None named: the engine uses the image's STOPSIGNAL (else SIGTERM), as `docker run` does.
    assert "stop_signal" not in kw and kw["stop_timeout"] == 5


def test_the_stop_grace_is_read_back_from_the_containers_label():
    # The runtime stops a container with the grace of the job that made it,
    # also one it finds after a restart; an older container's has none.
    labels = created(spec(stop_grace_s=30))["labels"]
    row = {"Id": "abc", "Names": ["/shoal-web-0-3"], "Labels": labels, "State": "running", "Status": "Up"}
    assert observed([row])[0].stop_grace_s == 30
    for bad in ({}, {"shoal.stop_grace_s": "x"}, {"shoal.stop_grace_s": "9999"}):
        assert observed([{**row, "Labels": {**labels, **bad} if bad else {
            k: v for k, v in labels.items() if k != "shoal.stop_grace_s"}}])[0].stop_grace_s is None
