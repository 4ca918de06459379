"""node/cli/compose_ports.py: Compose `ports:` and `network_mode:` as a job's named ports and network.

Golden specs: each Compose service below must become exactly the job spec
(canonical form) written next to it, with exactly the warnings listed."""

from __future__ import annotations

import pytest

from node.cli.compose import NOT_SUPPORTED, ComposeError, load, parse

BASE = {"image": "shoal-demo:latest", "command": ["httpd", "-f", "-p", "8080"], "cpu": 0.25, "memory": "32MiB",
        "replicas": 1, "strategy": "binpack",
        "restart": {"policy": "always", "backoff_s": 1.0, "max_backoff_s": 60.0}}


def one_service(body: str) -> tuple[dict, dict[str, str]]:
    """The job spec (canonical form) and the warnings {path: message} of service `web`."""
    text = ("services:\n  web:\n    image: shoal-demo:latest\n    command: httpd -f -p 8080\n"
            "    deploy: {resources: {limits: {cpus: '0.25', memory: 32m}}}\n" + body)
    st = load(text, "shop")
    (job,) = st.jobs
    return job.to_dict(), {p.path: p.message for p in st.warnings}


def networking(spec: dict) -> dict:
    return {k: spec[k] for k in ("network", "ports") if k in spec}


GOLDEN = [
    # (service body, the job's network and ports (absent: their defaults), warning paths)
    ("", {}, []),
    ("    network_mode: bridge\n    ports: ['8080']\n", {"ports": {"port8080": {"to": 8080}}}, []),
    ("    ports: ['8080:80']\n", {"ports": {"port80": {"to": 80, "static": 8080}}}, []),
    ("    ports: [8080]\n", {"ports": {"port8080": {"to": 8080}}}, []),
    ("    ports: ['80/tcp', '9000:9001/tcp']\n",
     {"ports": {"port80": {"to": 80}, "port9001": {"to": 9001, "static": 9000}}}, []),
    # YAML 1.1 would read 22:22 as 1342 (base 60); Compose reads YAML 1.2
    ("    ports: [22:22, 53:53]\n",
     {"ports": {"port22": {"to": 22, "static": 22}, "port53": {"to": 53, "static": 53}}}, []),
    ("    ports: ['127.0.0.1:8080:80', '127.0.0.1::81', '[::1]:6001:6001']\n",
     {"ports": {"port80": {"to": 80, "static": 8080}, "port81": {"to": 81},
                "port6001": {"to": 6001, "static": 6001}}},
     ["services.web.ports[0]", "services.web.ports[1]", "services.web.ports[2]"]),
    ("    ports: ['80-80', '0:81']\n", {"ports": {"port80": {"to": 80}, "port81": {"to": 81}}}, []),
    # two host ports for one container port: both published, the second label numbered
    ("    ports: ['8080:80', '8081:80']\n",
     {"ports": {"port80": {"to": 80, "static": 8080}, "port80-2": {"to": 80, "static": 8081}}}, []),
    ("    ports:\n      - {target: 8080, published: '80', name: http, protocol: tcp, mode: host}\n"
     "      - {target: 9090, name: metrics}\n",
     {"ports": {"http": {"to": 8080, "static": 80}, "metrics": {"to": 9090}}}, []),
    ("    ports:\n      - {target: 8080, published: 80, name: Web_UI}\n",
     {"ports": {"port8080": {"to": 8080, "static": 80}}}, ["services.web.ports[0].name"]),
    ("    ports:\n      - {target: 8080, mode: ingress, host_ip: 0.0.0.0, app_protocol: http, x-note: hi}\n",
     {"ports": {"port8080": {"to": 8080}}},
     ["services.web.ports[0].mode", "services.web.ports[0].host_ip", "services.web.ports[0].app_protocol"]),
    # every port is published for tcp and udp alike: entries differing only in protocol are one
    # port; a udp-only entry is a port with a warning; sctp is left out
    ("    ports: ['53:53/udp', '53:53/tcp', '5353/tcp', {target: 5353, protocol: udp}]\n",
     {"ports": {"port53": {"to": 53, "static": 53}, "port5353": {"to": 5353}}}, []),
    ("    ports: ['53:53/udp', {target: 123, protocol: udp}, '9:9/sctp']\n",
     {"ports": {"port53": {"to": 53, "static": 53}, "port123": {"to": 123}}},
     ["services.web.ports[0]", "services.web.ports[1]", "services.web.ports[2]"]),
    ("    network_mode: host\n    ports: ['53:53/udp', '53/tcp']\n",
     {"network": "host", "ports": {"port53": {"static": 53}}}, []),
    ("    network_mode: host\n", {"network": "host"}, []),
    ("    network_mode: host\n    ports: ['8080', '9090:9090', {target: 7000, published: 7001}]\n",
     {"network": "host", "ports": {"port8080": {"static": 8080}, "port9090": {"static": 9090},
                                   "port7000": {"static": 7000}}},
     ["services.web.ports[2]"]),
    ("    network_mode: none\n", {"network": "none"}, []),
    ("    network_mode: none\n    ports: []\n", {"network": "none"}, []),
    ("    networks: [back]\n    expose: ['80']\n", {},
     ["services.web.networks", "services.web.expose"]),
]


@pytest.mark.parametrize(("body", "expected", "warned"), GOLDEN, ids=range(len(GOLDEN)))
def test_golden_specs(body, expected, warned):
    spec, warnings = one_service(body)
    assert networking(spec) == expected
    assert {k: v for k, v in spec.items() if k not in ("network", "ports")} == {"name": "shop-web", **BASE}
    assert sorted(warnings) == sorted(warned), warnings


def test_warnings_say_what_happens_instead():
    _, w = one_service("    ports:\n      - '53:53/udp'\n      - {target: 80, mode: ingress, host_ip: 10.0.0.1}\n"
                       "      - {target: 81, name: Web_UI}\n      - 9:9/sctp\n")
    assert w["services.web.ports[0]"] == ("udp: shoal publishes the port for tcp and udp alike, and DNS names it "
                                          "_port53._tcp (there are no _udp records)")
    assert w["services.web.ports[3]"] == (f"sctp (9:9/sctp) is {NOT_SUPPORTED} (shoal publishes tcp and udp; "
                                          "this port is not published)")
    assert "only on the node that runs each replica" in w["services.web.ports[1].mode"]
    assert w["services.web.ports[1].host_ip"].startswith("'10.0.0.1' is ignored: each node publishes ports on "
                                                         "its own publish address")
    assert w["services.web.ports[2].name"].endswith("; it is named port81")
    _, w = one_service("    network_mode: host\n    ports: ['8080:80']\n")
    assert w == {"services.web.ports[0]": "published 8080 is ignored with network_mode: host (the container "
                                          "listens on the host's port 80 itself)"}


def test_a_name_used_twice_is_kept_once():
    spec, w = one_service("    ports:\n      - {target: 80, name: http}\n      - {target: 81, name: http}\n")
    assert spec["ports"] == {"http": {"to": 80}, "port81": {"to": 81}}
    assert "services.web.ports[0] has that name" in w["services.web.ports[1].name"]


ERRORS = [
    ("    ports: ['8000-8010:80']\n", "services.web.ports[0]",
     "port ranges are not supported by shoal ('8000-8010:80'): list each port"),
    ("    ports: ['8000:80-81']\n", "services.web.ports[0]",
     "port ranges are not supported by shoal ('8000:80-81'): list each port"),
    ("    ports: [{target: 80, published: 8000-8010}]\n", "services.web.ports[0].published",
     "port ranges are not supported by shoal ('8000-8010'): list each port"),
    ("    network_mode: 'service:db'\n", "services.web.network_mode",
     "'service:db' is not supported by shoal: a replica cannot share another container's network (its "
     "replicas may run on other nodes); use bridge, host or none, and reach the other service by its DNS name"),
    ("    network_mode: 'container:abc'\n", "services.web.network_mode", None),
    ("    network_mode: backend\n", "services.web.network_mode", "must be bridge, host or none, got 'backend'"),
    ("    network_mode: none\n    ports: ['80']\n", "services.web.ports",
     "ports cannot be published with network_mode: none"),
    ("    ports: '80'\n", "services.web.ports", "must be a list of ports, got a string"),
    ("    ports: [abc]\n", "services.web.ports[0]", "must be a port number, got 'abc'"),
    ("    ports: [1.5]\n", "services.web.ports[0]", None),
    ("    ports: ['80/xyz']\n", "services.web.ports[0]", "must be tcp or udp, got 'xyz'"),
    ("    ports: [{published: 80}]\n", "services.web.ports[0].target", "required: the container's port"),
    ("    ports: [{target: 80, mode: vip}]\n", "services.web.ports[0].mode", "must be host or ingress, got 'vip'"),
    ("    ports: ['8080:80', '8080:81']\n", "services.web.ports[1]",
     "host port 8080 is also published by services.web.ports[0]"),
    # bounds are the job spec's, reported at the Compose path
    ("    ports: ['80:99999']\n", "services.web.ports[0]", "must be between 1 and 65535 (got 99999)"),
    ("    ports: [{target: 80, published: 70000}]\n", "services.web.ports[0].published",
     "must be between 1 and 65535 (got 70000)"),
    ("    ports: [" + ", ".join(str(p) for p in range(8000, 8017)) + "]\n", "services.web.ports",
     "at most 16 ports (got 17)"),
]


@pytest.mark.parametrize(("body", "path", "message"), ERRORS, ids=range(len(ERRORS)))
def test_errors_name_the_service_and_entry(body, path, message):
    with pytest.raises(ComposeError) as ei:
        one_service(body)
    problems = {p.path: p.message for p in ei.value.problems}
    assert list(problems) == [path], problems
    if message is not None:
        assert problems[path] == message


def test_numbers_are_read_as_compose_reads_them():
    doc = parse("a: [22:22, 1:30.5, 8080, 0x10, 1.5, '7', no]\n")
    assert doc == {"a": ["22:22", "1:30.5", 8080, 16, 1.5, "7", False]}


def test_the_example_compose_file_is_the_demo_web_service():
    from pathlib import Path

    from node.cli.compose import convert, parse
    from node.cli.beside import reader_beside

    path = Path(__file__).resolve().parents[2] / "examples" / "compose.yml"
    st = convert(parse(path.read_text()), "demo", read_beside=reader_beside(str(path)))
    (web,) = st.jobs
    assert st.warnings == () and web.name == "demo-web"
    assert web.to_dict()["ports"] == {"http": {"to": 8080}} and web.network == "bridge"
    assert web.command is not None and "from $SHOAL_JOB slot $SHOAL_SLOT on $SHOAL_NODE" in web.command[2]
    assert [(f.target, f.content) for f in web.files] == [("/etc/demo/greeting", "hello\n")]
