"""A Compose service's process options (node.cli.compose_options) as the job's container options."""

from __future__ import annotations

import pytest

from node.cli.compose import ComposeError, load


def test_working_dir_init_shm_ulimits_hosts_and_labels_reach_the_job():
    stack = load("""
services:
  db:
    image: postgres:16
    working_dir: /srv
    init: true
    shm_size: 256m
    ulimits:
      nofile: {soft: 20000, hard: 40000}
      nproc: 65535
    extra_hosts: ["db.internal:10.0.0.5", "v6host:::1", "gw=host-gateway"]
    labels: ["com.example.team=shop", "com.example.tier=db"]
    sysctls: ["net.core.somaxconn=1024"]
    hostname: "db-{index}"
  web:
    image: nginx:1
    extra_hosts: {api.internal: 10.0.0.9}
    labels: {traefik.enable: true, traefik.port: 8080}
    sysctls: {net.ipv4.tcp_syncookies: 0}
""", "shop")
    db, web = stack.jobs
    assert (db.options.working_dir, db.options.init, db.options.shm_size_bytes) == ("/srv", True, 256 << 20)
    assert db.options.ulimits == (("nofile", 20000, 40000), ("nproc", 65535, 65535))
    assert db.options.extra_hosts == (("db.internal", "10.0.0.5"), ("gw", "host-gateway"), ("v6host", "::1"))
    assert db.options.container_labels == (("com.example.team", "shop"), ("com.example.tier", "db"))
    assert web.options.extra_hosts == (("api.internal", "10.0.0.9"),)
    assert db.options.sysctls == (("net.core.somaxconn", "1024"),) and db.options.hostname == "db-{index}"
    assert web.options.sysctls == (("net.ipv4.tcp_syncookies", "0"),)
    assert web.options.container_labels == (("traefik.enable", "true"), ("traefik.port", "8080"))
    assert stack.warnings == ()


def test_a_bad_option_is_named_at_its_compose_path():
    with pytest.raises(ComposeError) as e:
        load("""
services:
  db:
    image: postgres:16
    working_dir: srv
    ulimits: {nofiles: 10}
    extra_hosts: ["nocolon"]
    labels: {shoal.job: x}
    hostname: "{{.Service.Name}}-{{.Task.Slot}}"
""", "shop")
    assert [str(p) for p in e.value.problems] == [
        "services.db.extra_hosts[0]: must be host:address, got 'nocolon'",
        "services.db.hostname: Swarm's templates are not read: write {job}, {index} (from 0) or {node}, "
        "like db-{index}",
        "services.db.working_dir: 'srv' is not an absolute path like /var/lib/app "
        "(letters, digits, '_', '.', '@', '+', '-')",
        "services.db.ulimits.nofiles: not a resource limit; one of core, cpu, data, fsize, locks, memlock, "
        "msgqueue, nice, nofile, nproc, rss, rtprio, rttime, sigpending, stack",
        "services.db.labels[\"shoal.job\"]: 'shoal.' labels are the agent's own (they say whose container it is)"]
