"""node/cli/compose.py: Compose files converted to job specs, warnings and errors."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from auction.spec import MiB, RestartMode
from node.cli.compose import (
    NOT_SUPPORTED,
    ComposeError,
    check_stack_name,
    convert,
    default_stack_name,
    job_name,
    load,
    stack_jobs,
    stack_of,
)

THREE_SERVICES = """
version: "3.8"
services:
  web:
    image: nginx:1.25
    command: ["nginx", "-g", "daemon off;"]
    ports: ["8080:80"]
    environment:
      GREETING: hello
      PORT: 8080
    healthcheck:
      test: ["CMD", "wget", "-q", "-O-", "http://127.0.0.1/"]
      interval: 10s
      start_interval: 2s
    deploy:
      replicas: 3
      resources:
        limits: {cpus: "0.5", memory: 256M}
        reservations: {cpus: "0.25", memory: 512M}
      placement:
        constraints: ["node.labels.rack == a", "node.labels.zone!=eu-2", "node.hostname == n1"]
        preferences:
          - spread: node.labels.rack
        max_replicas_per_node: 2
      restart_policy: {condition: on-failure, max_attempts: 3, delay: 5s, window: 2m}
      update_config: {parallelism: 1}
  db_main:
    image: postgres:16
    environment: ["POSTGRES_PASSWORD=secret", "POSTGRES_DB=shop"]
    volumes: ["db:/var/lib/postgresql/data"]
    restart: "on-failure:5"
  worker:
    image: busybox:1.36
    command: sh -c 'while true; do sleep 1; done'
    networks: [back]
    healthcheck:
      test: wget -q -O- http://127.0.0.1/ || exit 1
    deploy:
      restart_policy: {condition: none}
volumes: {db: {}}
networks: {back: {}}
x-defaults: &defaults {image: busybox}
"""


def convert_text(text: str, stack: str = "shop"):
    return load(text, stack)


def paths(problems) -> list[str]:
    return [p.path for p in problems]


def test_three_services_convert():
    st = convert_text(THREE_SERVICES)
    assert st.name == "shop"
    assert st.services == {"web": "shop-web", "db_main": "shop-db-main", "worker": "shop-worker"}
    web, db, worker = st.jobs

    assert web.name == "shop-web" and web.image == "nginx:1.25"
    assert web.command == ("nginx", "-g", "daemon off;")
    assert web.env_map == {"GREETING": "hello", "PORT": "8080"}
    assert web.replicas == 3
    # The larger of limit and reservation: cpu from the limit, memory from the reservation.
    assert web.cpu_millis == 500
    assert web.memory_bytes == 512 * MiB
    assert [str(c) for c in web.constraints] == ["rack == a", "zone != eu-2"]
    assert web.spread == "rack"
    assert web.max_per_node == 2
    assert web.restart.policy is RestartMode.ON_FAILURE
    assert web.restart.max_attempts == 3 and web.restart.backoff_s == 5.0
    assert web.health is not None
    assert web.health.command == ("wget", "-q", "-O-", "http://127.0.0.1/")
    assert web.health.interval_s == 10.0
    assert web.health.timeout_s == 30.0 and web.health.retries == 3   # Docker's defaults
    assert web.network == "bridge" and [(p.label, p.to, p.static) for p in web.ports] == [("port80", 80, 8080)]
    # update_config: Swarm's defaults for what it leaves out (node.cli.compose_update)
    assert (web.update.max_parallel, web.update.min_healthy_s, web.update.order.value) == (1, 5.0, "stop-first")

    assert db.env_map == {"POSTGRES_DB": "shop", "POSTGRES_PASSWORD": "secret"}
    assert db.replicas == 1 and db.command is None
    assert [(v.name, v.kind, v.target) for v in db.volumes] == [("db", "volume", "/var/lib/postgresql/data")]
    assert db.restart.policy is RestartMode.ON_FAILURE and db.restart.max_attempts == 5

    assert worker.command == ("sh", "-c", "while true; do sleep 1; done")
    assert worker.restart.policy is RestartMode.NEVER
    assert worker.health is not None
    assert worker.health.command == ("/bin/sh", "-c", "wget -q -O- http://127.0.0.1/ || exit 1")


def test_unsupported_keys_are_warnings_with_their_paths():
    st = convert_text(THREE_SERVICES)
    by_path = {p.path: p.message for p in st.warnings}
    for path in ("version", "networks",
                 "services.web.healthcheck.start_interval",
                 "services.web.deploy.restart_policy.window",
                 "services.web.deploy.placement.constraints[2]",
                 "services.worker.networks"):
        assert path in by_path, (path, by_path)
    for path, message in by_path.items():
        if path != "version":
            assert message.startswith(NOT_SUPPORTED), (path, message)
    assert "hostname" in by_path["services.web.deploy.placement.constraints[2]"]
    # Extension fields are ignored by every Compose implementation, by the spec.
    assert not any(p.startswith("x-") for p in by_path)
    assert len(st.warnings) == 6


def test_every_unknown_service_key_is_listed():
    text = """
services:
  app:
    image: busybox
    container_name: app1
    entrypoint: ["/bin/sh"]
    env_file: .env
    depends_on: [db]
    labels: {a: b}
    cap_add: [NET_ADMIN]
    deploy:
      endpoint_mode: vip
      labels: {a: b}
      resources:
        limits: {cpus: "1", pids: 100, gpus: 1}
        reservations: {devices: [{capabilities: [gpu]}]}
      placement:
        constraints: ["node.role == manager", "engine.labels.ssd == true"]
        preferences: [{spread: node.labels.rack}, {spread: node.labels.zone}]
      restart_policy: {condition: any, max_attempts: 3}
"""
    st = convert_text(text)
    assert sorted(paths(st.warnings)) == sorted([
        "services.app.container_name", "services.app.env_file",
        "services.app.depends_on",
        "services.app.deploy.endpoint_mode", "services.app.deploy.labels",
        "services.app.deploy.resources.limits.gpus", "services.app.deploy.resources.reservations.devices",
        "services.app.deploy.placement.constraints[0]", "services.app.deploy.placement.constraints[1]",
        "services.app.deploy.placement.preferences[1]",
        "services.app.deploy.restart_policy.max_attempts",
    ])
    (app,) = st.jobs
    assert app.entrypoint == ("/bin/sh",) and app.options.container_labels == (("a", "b"),)
    assert app.spread == "rack" and app.constraints == () and app.cpu_millis == 1000
    assert app.restart.policy is RestartMode.ALWAYS and app.restart.max_attempts is None


def test_bad_values_are_errors_naming_service_and_field():
    text = """
services:
  web:
    image: nginx
    deploy:
      replicas: three
      resources:
        limits: {cpus: lots, memory: 12 parsecs}
      restart_policy: {condition: sometimes, delay: soon}
      placement:
        constraints: ["node.labels.rack = a"]
  api:
    command: ["serve"]
    environment: {DEBUG: yes, 1BAD: x}
  cron:
    image: busybox
    deploy: {mode: daemon}
"""
    with pytest.raises(ComposeError) as ei:
        convert_text(text)
    got = {p.path: p.message for p in ei.value.problems}
    assert set(got) == {
        "services.web.deploy.replicas",
        "services.web.deploy.resources.limits.cpus",
        "services.web.deploy.resources.limits.memory",
        "services.web.deploy.restart_policy.condition",
        "services.web.deploy.restart_policy.delay",
        "services.web.deploy.placement.constraints[0]",
        "services.api.image",
        "services.api.environment.DEBUG",
        "services.api.environment.1BAD",
        "services.cron.deploy.mode",
    }, got
    assert "sometimes" in got["services.web.deploy.restart_policy.condition"]
    assert "replicated or global" in got["services.cron.deploy.mode"]
    assert "quote" in got["services.api.environment.DEBUG"]
    assert got["services.api.image"] == "required"
    assert str(ei.value).startswith("invalid Compose file for shoal (10 problems)")


def test_spec_problems_map_back_to_compose_paths():
    """What only the job validator catches still names the Compose field."""
    text = """
services:
  web:
    image: "not an image"
    environment: {1BAD: x}
    deploy:
      replicas: 5000
      resources: {reservations: {memory: 1m}}
      placement: {preferences: [{spread: node.labels.bad label}]}
"""
    with pytest.raises(ComposeError) as ei:
        convert_text(text)
    assert sorted(paths(ei.value.problems)) == sorted([
        "services.web.image",
        "services.web.environment.1BAD",
        "services.web.deploy.replicas",
        "services.web.deploy.resources.reservations.memory",
        "services.web.deploy.placement.preferences[0].spread",
    ])


def test_global_mode_becomes_a_global_job_and_replicas_beside_it_is_an_error():
    """deploy.mode: global is Swarm's one task on every node; shoal's global
    job (auction.global_jobs).  A count beside it is Docker's error too."""
    text = """
services:
  logs:
    image: busybox
    deploy:
      mode: global
      placement: {constraints: ["node.labels.role == edge"]}
"""
    (spec,) = convert_text(text).jobs
    assert spec.is_global and [str(c) for c in spec.constraints] == ["role == edge"]
    bad = """
services:
  logs:
    image: busybox
    deploy: {mode: global, replicas: 3, placement: {max_replicas_per_node: 2}}
"""
    with pytest.raises(ComposeError) as ei:
        convert_text(bad)
    got = {p.path: p.message for p in ei.value.problems}
    assert set(got) == {"services.logs.deploy.replicas", "services.logs.deploy.placement.max_replicas_per_node"}
    assert all("global job" in message for message in got.values())


def test_units_durations_and_restart_forms():
    text = """
services:
  a:
    image: busybox
    deploy:
      resources: {limits: {cpus: 2, memory: 1gb}}
      restart_policy: {delay: 1m30s}
    restart: "no"
  b:
    image: busybox
    restart: no
    healthcheck: {test: ["CMD-SHELL", "true"], timeout: 500ms, retries: 5, start_period: 1m}
    deploy:
      resources: {limits: {memory: 1073741824}}
  c:
    image: busybox
    restart: unless-stopped
    deploy: {restart_policy: {delay: 0s}}
"""
    st = convert_text(text)
    a, b, c = st.jobs
    assert a.cpu_millis == 2000 and a.memory_bytes == 1024 * MiB     # Docker's 1gb is 1 GiB
    assert a.restart.policy is RestartMode.ALWAYS
    assert a.restart.backoff_s == 90.0 and a.restart.max_backoff_s == 90.0
    assert b.restart.policy is RestartMode.NEVER and b.memory_bytes == 1024 * MiB
    assert b.health.command == ("/bin/sh", "-c", "true")
    assert (b.health.timeout_s, b.health.retries, b.health.start_period_s) == (0.5, 5, 60.0)
    assert c.restart.backoff_s == 0.1
    assert sorted(paths(st.warnings)) == ["services.a.restart", "services.c.deploy.restart_policy.delay",
                                          "services.c.restart"]


def test_names():
    assert job_name("shop", "db_main") == "shop-db-main"
    assert job_name("shop", "Web.Front") == "shop-web-front"
    assert stack_of("shop-db-main") == "shop" and stack_of("web") is None and stack_of("-x") is None
    assert stack_jobs("shop", ["shop-web", "shopx-web", "shop", "shop-db"]) == ["shop-db", "shop-web"]
    assert check_stack_name("shop2") == "shop2"
    for bad in ("my-app", "Shop", "", "a" * 33):
        with pytest.raises(ComposeError):
            check_stack_name(bad)
    assert default_stack_name({"name": "My-Shop"}, "ignored") == "myshop"
    assert default_stack_name({}, "web_app-2") == "webapp2"
    with pytest.raises(ComposeError):
        default_stack_name({}, "---")


def test_names_that_collide_or_run_long_are_errors():
    with pytest.raises(ComposeError) as ei:
        convert({"services": {"db_main": {"image": "a"}, "db-main": {"image": "b"}}}, "s")
    assert paths(ei.value.problems) == ["services.db-main"]
    assert "db_main" in ei.value.problems[0].message
    with pytest.raises(ComposeError) as ei:
        convert({"services": {"x" * 70: {"image": "a"}}}, "s")
    assert ei.value.problems[0].path.startswith("services") and "63" in ei.value.problems[0].message


def test_not_a_compose_file():
    for text, where in (("services: [a, b]", "services"), ("just text", ""), ("a: [", ""),
                        ("image: busybox", "services")):
        with pytest.raises(ComposeError) as ei:
            convert_text(text)
        assert ei.value.problems[0].path == where, (text, ei.value.problems)
    with pytest.raises(ComposeError) as ei:
        convert_text("services:\n  web: 3\n")
    assert paths(ei.value.problems) == ["services.web"]


def test_alias_bombs_and_odd_types_are_refused_quickly():
    """YAML aliases make a small file a huge nested structure: nothing may walk it."""
    bomb = "x-a: &a [x, x, x, x, x, x, x, x, x, x]\n"
    for prev, cur in zip("abcdefgh", "bcdefghi"):
        bomb += f"x-{cur}: &{cur} [{', '.join([f'*{prev}'] * 10)}]\n"
    bomb += """services:
  web:
    image: *i
    command: [*i]
    environment: {A: *i}
    healthcheck: {test: [CMD, *i], retries: *i}
    deploy:
      mode: *i
      replicas: *i
      restart_policy: {condition: *i, max_attempts: *i}
      placement: {max_replicas_per_node: *i}
"""
    started = time.monotonic()
    with pytest.raises(ComposeError) as ei:
        convert_text(bomb)
    assert time.monotonic() - started < 2
    assert sorted(paths(ei.value.problems)) == sorted([
        "services.web.image", "services.web.command[0]", "services.web.environment.A",
        "services.web.healthcheck.test", "services.web.deploy.mode", "services.web.deploy.replicas",
        "services.web.deploy.restart_policy.condition", "services.web.deploy.restart_policy.max_attempts",
        "services.web.deploy.placement.max_replicas_per_node",
    ])
    assert all(len(str(p)) < 300 for p in ei.value.problems)


# ---- `shoal stack` against a real agent --------------------------------------------------

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def agent_api(tmp_path):
    """One real agent on loopback (fake runtime, ephemeral ports), killed by PID."""
    state = tmp_path / "state"
    log_path = tmp_path / "agent.log"
    argv = [sys.executable, "-m", "node.cli", "agent", "--name", "a1", "--bind", "127.0.0.1:0",
            "--api", "127.0.0.1:0", "--profile", "local", "--state-dir", str(state),
            "--cpus", "4", "--memory", "4GiB", "--reserve-cpus", "0", "--reserve-memory", "0",
            "--label", "rack=a"]
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                cwd=REPO, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        deadline = time.monotonic() + 15
        while True:
            assert proc.poll() is None, log_path.read_text()
            try:
                yield json.loads((state / "agent.json").read_text())["api"]
                break
            except (OSError, ValueError):
                assert time.monotonic() < deadline, log_path.read_text()
                time.sleep(0.05)
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=5)


def shoal(api: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "node.cli", *args], check=False, capture_output=True, text=True,
                          cwd=REPO, env={**os.environ, "SHOAL_ADDR": api}, timeout=60)


@pytest.mark.real
def test_stack_deploy_ls_rm_on_a_real_agent(agent_api, tmp_path):
    shop = tmp_path / "shop"
    shop.mkdir()
    (shop / "compose.yml").write_text(THREE_SERVICES)
    r = shoal(agent_api, "stack", "deploy", str(shop / "compose.yml"), "--detach")
    assert r.returncode == 0, r.stderr
    warnings = [line for line in r.stderr.splitlines() if line.startswith("warning: ")]
    assert "warning: services.worker.networks: not supported by shoal, ignored" in "\n".join(warnings)
    assert len(warnings) == 6, r.stderr     # volumes are read now (node.cli.compose_volumes)
    assert "web: job shop-web (3 replicas)" in r.stdout
    jobs = {j["name"]: j for j in httpx.get(f"{agent_api}/v1/jobs", timeout=5).json()}
    assert {"shop-web", "shop-db-main", "shop-worker"} <= set(jobs)
    assert jobs["shop-web"]["replicas"] == 3

    # A job of another name stays out of the stack.
    assert shoal(agent_api, "stack", "deploy", str(shop / "compose.yml"), "--name", "other",
                 "--detach").returncode == 0
    r = shoal(agent_api, "stack", "ls", "--json")
    assert r.returncode == 0, r.stderr
    listing = {s["stack"]: s for s in json.loads(r.stdout)}
    assert set(listing) == {"shop", "other"} and listing["shop"]["replicas"] == 5

    # --prune stops what left the file; rm stops the rest of the stack only.
    (shop / "compose.yml").write_text("services:\n  web:\n    image: nginx:1.25\n")
    r = shoal(agent_api, "stack", "deploy", str(shop / "compose.yml"), "--prune", "--detach")
    assert r.returncode == 0, r.stderr
    assert "shop-db-main: stopped" in r.stdout and "shop-worker: stopped" in r.stdout
    r = shoal(agent_api, "stack", "rm", "shop")
    assert r.returncode == 0 and r.stdout.split() == ["shop-web", "stopped"], r
    names = {j["name"] for j in httpx.get(f"{agent_api}/v1/jobs", timeout=5).json()}
    assert names == {"other-web", "other-db-main", "other-worker"}
    assert shoal(agent_api, "stack", "rm", "shop").returncode == 1

    # Errors stop before anything is submitted.
    (shop / "bad.yml").write_text("services:\n  api:\n    deploy: {replicas: three}\n")
    r = shoal(agent_api, "stack", "deploy", str(shop / "bad.yml"), "--name", "bad")
    assert r.returncode == 1
    assert "services.api.image: required" in r.stderr and "services.api.deploy.replicas" in r.stderr
    assert not any(n.startswith("bad-") for n in (j["name"] for j in httpx.get(f"{agent_api}/v1/jobs").json()))


WEB_WITH_PORTS = """
services:
  web:
    image: shoal-demo:latest
    command: ["sh", "-c", "exec httpd -f -p 8080 -h /www"]
    ports:
      - "8080"
      - target: 9090
        name: metrics
      - "5353/udp"
    deploy:
      replicas: 2
      resources: {limits: {cpus: "0.25", memory: 32m}}
  tool:
    image: shoal-demo:latest
    network_mode: host
    ports: ["7000"]
"""


@pytest.mark.real
def test_stack_with_ports_deploys_on_a_real_agent(agent_api, tmp_path):
    """A Compose file with `ports:` and `network_mode:` deploys: the jobs carry the
    named ports and network, and every replica runs (reachability through the
    published ports is the quickstart's and the testbed's test, on real Docker)."""
    (tmp_path / "compose.yml").write_text(WEB_WITH_PORTS)
    r = shoal(agent_api, "stack", "deploy", str(tmp_path / "compose.yml"), "--name", "shop", "--timeout", "30")
    assert r.returncode == 0, r.stderr
    warnings = [line for line in r.stderr.splitlines() if line.startswith("warning: ")]
    assert warnings == ["warning: services.web.ports[2]: udp: shoal publishes the port for tcp and udp alike, "
                        "and DNS names it _port5353._tcp (there are no _udp records)"], r.stderr
    web = httpx.get(f"{agent_api}/v1/jobs/shop-web", timeout=5).json()
    assert web["spec"]["ports"] == {"port8080": {"to": 8080}, "metrics": {"to": 9090}, "port5353": {"to": 5353}}
    assert "network" not in web["spec"]          # bridge, the default
    tool = httpx.get(f"{agent_api}/v1/jobs/shop-tool", timeout=5).json()
    assert tool["spec"]["network"] == "host" and tool["spec"]["ports"] == {"port7000": {"static": 7000}}
    assert [s["runtime"] for s in web["slots"]] == ["running", "running"], web["slots"]
    # the service catalog lists each replica with the host ports its node gave it
    deadline = time.monotonic() + 15
    while True:
        r = shoal(agent_api, "service", "show", "shop-web", "--json")
        instances = json.loads(r.stdout)["instances"] if r.returncode == 0 else []
        if len(instances) == 2 or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert [(i["slot"], i["node"], sorted(i["ports"])) for i in instances] == [
        (0, "a1", ["metrics", "port5353", "port8080"]), (1, "a1", ["metrics", "port5353", "port8080"])], r
    host_ports = [p for i in instances for p in i["ports"].values()]
    assert len(set(host_ports)) == 6 and all(20000 <= p <= 32000 for p in host_ports), instances
    r = shoal(agent_api, "service", "show", "shop-tool", "--json")
    assert r.returncode == 0 and json.loads(r.stdout)["instances"][0]["ports"] == {"port7000": 7000}, r


# ---- container security --------------------------------------------------------------

def test_container_security_keys_become_the_job_fields_without_warnings():
    text = """
services:
  app:
    image: busybox
    cap_add: [NET_ADMIN, sys_ptrace]
    cap_drop: [ALL]
    user: 1000
    read_only: true
    devices: ["/dev/fuse", "/dev/sda:/dev/xvda:r"]
    deploy:
      resources:
        limits: {pids: 200}
  other:
    image: busybox
    user: "app:app"
    pids_limit: 50
"""
    st = convert_text(text)
    assert st.warnings == ()
    app, other = st.jobs
    assert app.cap_add == ("NET_ADMIN", "SYS_PTRACE") and app.cap_drop == ("ALL",)
    assert app.user == "1000" and app.read_only is True and app.pids_limit == 200
    assert app.devices == ("/dev/fuse:/dev/fuse:rwm", "/dev/sda:/dev/xvda:r")
    assert (other.user, other.pids_limit, other.read_only, other.cap_add) == ("app:app", 50, False, ())


def test_unlimited_pids_is_a_warning_and_the_job_default_applies():
    st = convert_text("services:\n  app:\n    image: busybox\n    pids_limit: -1\n")
    assert paths(st.warnings) == ["services.app.pids_limit"]
    assert "always limits pids" in st.warnings[0].message
    assert st.jobs[0].pids_limit == 1024


def test_bad_container_security_values_are_errors_at_their_compose_path():
    text = """
services:
  app:
    image: busybox
    cap_add: [NET_ADMIN, SYS_ADMN]
    cap_drop: CHOWN
    user: [root]
    read_only: "yes"
    devices: ["/etc/passwd", {source: /dev/fuse}]
    pids_limit: 100
    deploy:
      resources:
        limits: {pids: 200}
"""
    with pytest.raises(ComposeError) as ei:
        convert_text(text)
    got = {p.path: p.message for p in ei.value.problems}
    assert set(got) == {
        "services.app.cap_add[1]", "services.app.cap_drop", "services.app.user",
        "services.app.read_only", "services.app.devices[1]",
        "services.app.deploy.resources.limits.pids",
    }, got
    assert "did you mean 'SYS_ADMIN'?" in got["services.app.cap_add[1]"]
    assert "conflicts with services.app.pids_limit" in got["services.app.deploy.resources.limits.pids"]


def test_volumes_and_tmpfs_become_the_jobs_volumes():
    text = """
services:
  db:
    image: busybox
    read_only: true
    volumes:
      - db_data:/var/lib/db
      - /srv/backups:/backups:ro
      - /var/cache/app
      - type: tmpfs
        target: /run
        tmpfs: {size: 16m}
    tmpfs: /tmp
  web:
    image: busybox
    volumes: ["db_data:/data:ro,z"]
volumes:
  db_data:
    driver: local
"""
    st = convert_text(text)
    db, web = st.jobs
    assert {v.name: (v.kind, v.target, v.source, v.read_only, v.size_bytes) for v in db.volumes} == {
        "db-data": ("volume", "/var/lib/db", None, False, None),
        "host1": ("host", "/backups", "/srv/backups", True, None),
        "anon2": ("volume", "/var/cache/app", None, False, None),
        "tmp3": ("tmpfs", "/run", None, False, 16 * MiB),
        "tmp4": ("tmpfs", "/tmp", None, False, 64 * MiB),
    }
    assert [(v.name, v.read_only) for v in web.volumes] == [("db-data", True)]
    warned = {p.path: p.message for p in st.warnings}
    assert "one per replica" in warned["volumes.db_data.driver"]
    assert "not shared" in warned["services.web.volumes[0]"]


def test_volumes_that_cannot_be_honoured_are_errors_at_their_entry():
    text = """
services:
  app:
    image: busybox
    volumes:
      - ./data:/data
      - undeclared:/x
      - type: npipe
        target: /p
      - "/srv/a:relative"
"""
    with pytest.raises(ComposeError) as ei:
        convert_text(text)
    got = {p.path: p.message for p in ei.value.problems}
    assert set(got) == {"services.app.volumes[0]", "services.app.volumes[1]", "services.app.volumes[2].type",
                        "services.app.volumes[3].target"}, got
    assert "other nodes" in got["services.app.volumes[0]"]
    assert "not declared" in got["services.app.volumes[1]"]


def test_env_files_are_read_beside_the_compose_file_and_environment_wins(tmp_path):
    from node.cli.compose import convert, parse
    from node.cli.beside import reader_beside

    (tmp_path / "common.env").write_text(
        "# shared\nLEVEL=info\nexport REGION='eu west'\nGREETING=\"hi\\nthere\"  \nURL=http://x/#frag # a comment\n")
    (tmp_path / "web.env").write_text("LEVEL=debug\n")
    text = """
services:
  web:
    image: busybox
    env_file: [common.env, web.env, {path: missing.env, required: false}]
    environment: {REGION: us}
"""
    (web,) = convert(parse(text), "shop", read_beside=reader_beside(str(tmp_path / "compose.yml"))).jobs
    assert web.env_map == {"LEVEL": "debug", "REGION": "us", "GREETING": "hi\nthere", "URL": "http://x/#frag"}
    (tmp_path / "bad.env").write_text("OK=1\nNO_VALUE\n")
    bad = """
services:
  web:
    image: busybox
    env_file: [bad.env, gone.env]
"""
    with pytest.raises(ComposeError) as ei:
        convert(parse(bad), "shop", read_beside=reader_beside(str(tmp_path / "compose.yml")))
    got = {p.path: p.message for p in ei.value.problems}
    assert "line 2: NO_VALUE has no value" in got["services.web.env_file[0]"]
    assert "no such file" in got["services.web.env_file[1]"]


def test_a_service_listing_more_mounts_than_a_job_has_is_refused_at_once():
    mounts = "\n".join(f"      - v{i}:/m{i}" for i in range(40))
    text = f"services:\n  app:\n    image: busybox\n    volumes:\n{mounts}\nvolumes: {{}}\n"
    with pytest.raises(ComposeError) as ei:
        convert_text(text)
    assert [(p.path, p.message) for p in ei.value.problems] == [
        ("services.app.volumes", "at most 16 mounts (got 40)")]
