"""Container options (auction.container_options): working_dir, init, shm_size, ulimits, extra_hosts, labels."""

from __future__ import annotations

import pytest

from auction.spec import SpecError, load_toml, validate

BASE = {"name": "web", "image": "shoal-demo:latest"}


def problems(**kw) -> list[str]:
    with pytest.raises(SpecError) as e:
        validate({**BASE, **kw})
    return [str(p) for p in e.value.problems]


def test_a_toml_job_with_every_option_round_trips_and_each_replaces_containers():
    spec = load_toml('name = "db"\nimage = "postgres:16"\nworking_dir = "/srv"\ninit = true\nshm_size = "256MiB"\n'
                     '[ulimits]\nnofile = 65536\nmemlock = {soft = -1, hard = -1}\nnproc = {soft = 100, hard = 200}\n'
                     '[extra_hosts]\n"db.internal" = "10.0.0.5"\n"gw" = "host-gateway"\n'
                     '[container_labels]\n"com.example.team" = "shop"\n')
    d = spec.to_dict()
    assert {k: d[k] for k in ("working_dir", "init", "shm_size", "ulimits", "extra_hosts", "container_labels")} == {
        "working_dir": "/srv", "init": True, "shm_size": "256MiB",
        "ulimits": {"memlock": -1, "nofile": 65536, "nproc": {"soft": 100, "hard": 200}},
        "extra_hosts": {"db.internal": "10.0.0.5", "gw": "host-gateway"},
        "container_labels": {"com.example.team": "shop"}}
    assert validate(d) == spec
    plain = validate(BASE)
    assert set(plain.to_dict()) == {"name", "image", "cpu", "memory", "replicas", "restart", "strategy"}
    for field, value in (("working_dir", "/srv"), ("init", True), ("shm_size", "128MiB"), ("ulimits", {"nofile": 9}),
                         ("extra_hosts", {"a": "10.0.0.1"}), ("container_labels", {"a": "b"}),
                         ("sysctls", {"net.core.somaxconn": "1024"}), ("hostname", "db-{index}")):
        assert validate({**BASE, field: value}).container_hash() != plain.container_hash(), field


def test_each_mistake_names_its_field():
    assert problems(working_dir="app") == [
        "working_dir: 'app' is not an absolute path like /var/lib/app (letters, digits, '_', '.', '@', '+', '-')"]
    assert problems(init="yes") == ["init: must be true or false, got a string"]
    assert problems(shm_size="512KiB") == ["shm_size: must be from 1MiB to 64GiB"]
    assert problems(ulimits={"files": 1, "nofile": {"soft": 10, "hard": 5}, "core": "x"}) == [
        "ulimits.files: not a resource limit; one of core, cpu, data, fsize, locks, memlock, msgqueue, nice, "
        "nofile, nproc, rss, rtprio, rttime, sigpending, stack",
        "ulimits.nofile: the soft limit (10) is above the hard one (5)",
        "ulimits.core: must be a whole number from 0 (or -1: unlimited), got 'x'"]
    assert problems(extra_hosts={"bad host": "10.0.0.1", "ok": "nope"}) == [
        'extra_hosts["bad host"]: not a host name (letters, digits, \'-\' and dots)',
        'extra_hosts.ok: must be an IP address or "host-gateway", got \'nope\'']
    assert problems(container_labels={"shoal.job": "x"}) == [
        'container_labels["shoal.job"]: \'shoal.\' labels are the agent\'s own (they say whose container it is)']


def test_sysctls_are_the_containers_own_namespaces_only():
    spec = validate({**BASE, "sysctls": {"net.core.somaxconn": 1024, "kernel.shmmax": "68719476736",
                                         "fs.mqueue.msg_max": "20"}})
    assert spec.to_dict()["sysctls"] == {"fs.mqueue.msg_max": "20", "kernel.shmmax": "68719476736",
                                         "net.core.somaxconn": "1024"}
    assert validate(spec.to_dict()) == spec
    assert problems(sysctls={"vm.swappiness": "10", "Net.x": "1", "net.ipv4.ip_forward": "1;rm"}) == [
        "sysctls[\"vm.swappiness\"]: not one of the container's own namespaces (net.*, kernel.shm*, kernel.msg*, "
        "kernel.sem, fs.mqueue.*): it would change the node",
        "sysctls[\"Net.x\"]: not a sysctl name (like net.core.somaxconn)",
        "sysctls[\"net.ipv4.ip_forward\"]: must be a value like \"1024\" (letters, digits, spaces, '_.:/,-'), "
        "got '1;rm'"]
    assert problems(network="host", sysctls={"net.core.somaxconn": "1024"}) == [
        'sysctls["net.core.somaxconn"]: with network = "host" the network settings are the node\'s own']


def test_a_hostname_template_is_filled_in_per_replica():
    from auction.container_options import hostname_for

    assert validate({**BASE, "hostname": "{job}-{index}"}).options.hostname == "{job}-{index}"
    assert hostname_for("{job}-{index}", "rabbit", 2, "node-1") == "rabbit-2"
    assert hostname_for("mq-{node}", "rabbit", 0, "Edge_Site.7") == "mq-edge-site-7"
    assert hostname_for("{job}" * 9, "a-long-job-name", 0, "n") == ("a-long-job-name" * 5)[:63]
    assert problems(hostname="DB_1") == [
        "hostname: a DNS label (lowercase letters, digits, '-'), which may name {job}, {index} and {node} "
        "(like db-{index}), got 'DB_1'"]
    assert problems(hostname="db-{slot}")[0].startswith("hostname: a DNS label")
    assert problems(hostname="db", network="host") == [
        'hostname: with network = "host" a container has the node\'s own host name']
