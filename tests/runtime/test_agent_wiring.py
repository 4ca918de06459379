"""node/agent/runtime_link.py: the agent's settings as the Docker runtime's
(no dockerd: the runtime is only built)."""

from __future__ import annotations

from node.agent.agent import Agent
from node.agent.config import load_config
from node.agent.runtime_link import make_runtime


def docker_runtime(**flags):
    return make_runtime(Agent(load_config(None, {"runtime": "docker", **flags})))


def test_ports_are_published_on_the_publish_address_by_default_the_advertised_host():
    assert docker_runtime(bind="127.0.0.1:7946").cfg.publish_address == "127.0.0.1"
    rt = docker_runtime(bind="127.0.0.1:7946", advertise="10.78.0.2:7946", insecure_no_encryption=True)
    assert rt.cfg.publish_address == "10.78.0.2"
    rt = docker_runtime(bind="127.0.0.1:7946", publish_address="127.0.0.2")
    assert rt.cfg.publish_address == "127.0.0.2"
    # Docker's default resolvers until the agent's DNS is wired in.
    assert rt.cfg.dns_servers == () and rt.cfg.dns_search == ()
