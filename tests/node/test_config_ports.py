"""The agent's host-port settings: `port_range` and `publish_address`, from the
TOML file and the flags, their errors (naming the setting), and where they go
(the range to the node core's ledger, the publish address's default)."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from auction.ports import DEFAULT_PORT_RANGE
from node.agent.config import ConfigError, HostPort, load_config, publish_address
from node.cli.agent_command import agent

LOOPBACK = {"bind": "127.0.0.1:0"}


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "shoal.toml"
    p.write_text('bind = "127.0.0.1:0"\n' + text)
    return p


def test_defaults():
    cfg = load_config(None, LOOPBACK)
    assert cfg.port_range == DEFAULT_PORT_RANGE == (20000, 32000)
    assert cfg.publish_address is None


def test_from_the_file_and_a_flag_wins(tmp_path):
    path = write(tmp_path, 'port_range = "30000-30100"\npublish-address = "192.0.2.11"\n')
    cfg = load_config(path)
    assert cfg.port_range == (30000, 30100) and cfg.publish_address == "192.0.2.11"
    cfg = load_config(path, {"port_range": "40000-40000", "publish_address": "127.0.0.1"})
    assert cfg.port_range == (40000, 40000) and cfg.publish_address == "127.0.0.1"


@pytest.mark.parametrize("value, words", [
    ('"32000-20000"', "low end 32000 is above high end 20000"),
    ('"0-100"', "port 0 out of range 1-65535"),
    ('"20000-70000"', "port 70000 out of range 1-65535"),
    ('"20000"', 'expected "LO-HI"'),
    ('"a-b"', 'expected "LO-HI"'),
    ("20000", 'expected a string "LO-HI", got 20000'),
])
def test_a_bad_port_range_is_refused_naming_the_setting(tmp_path, value, words):
    with pytest.raises(ConfigError) as e:
        load_config(write(tmp_path, f"port_range = {value}\n"))
    assert e.value.field == "port_range" and words in str(e.value), str(e.value)


@pytest.mark.parametrize("value", ["node1.example", "192.0.2.11:80", ""])
def test_publish_address_must_be_an_ip(tmp_path, value):
    with pytest.raises(ConfigError) as e:
        load_config(write(tmp_path, f'publish_address = "{value}"\n'))
    assert e.value.field == "publish_address"


def test_publish_address_defaults_to_the_advertise_host_and_a_wildcard_only_when_given():
    advertise = HostPort("192.0.2.11", 7946)
    assert publish_address(load_config(None, LOOPBACK), advertise) == "192.0.2.11"
    given = load_config(None, {**LOOPBACK, "publish_address": "0.0.0.0"})
    assert publish_address(given, advertise) == "0.0.0.0"
    assert publish_address(load_config(None, {**LOOPBACK, "publish_address": "[::1]"}), advertise) == "::1"


def test_the_agent_command_takes_the_flags_and_reports_a_bad_range():
    r = CliRunner().invoke(agent, ["--bind", "127.0.0.1:0", "--port-range", "9-1"])
    assert r.exit_code == 2 and "port_range: low end 9 is above high end 1" in r.output


def test_the_range_reaches_the_nodes_ledger():
    import random

    from gossip.config import LOCAL
    from gossip.swim import Address
    from auction.resources import Resources
    from node.core.node_core import NodeCore

    core = NodeCore(name="n1", addr=Address("127.0.0.1", 1), gossip_config=LOCAL, rng=random.Random(1), now=0.0,
                    capacity=Resources(1000, 1 << 30), port_range=(30000, 30010))
    assert core.placement.ledger.ports.port_range == (30000, 30010)
