"""The agent's DNS on the Docker bridge's gateway (node.agent.dns_link):
served on port 53 and handed to the runtime for its containers, or one
warning and nothing handed over."""

from __future__ import annotations

import logging
import os
from types import SimpleNamespace

import dns.asyncbackend
import dns.asyncquery
import dns.message
import dns.rcode
import trio

from dns_fixtures import CATALOG
from node.agent.config import AgentConfig
from node.agent.dns_link import listen_on_bridge
from node.dns.server import DnsServer
from node.dns.settings import DnsSettings

GATEWAY = "127.0.9.1"   # a loopback address no system resolver uses


class StubRuntime:
    def __init__(self, gateway: str | None = GATEWAY, fail: bool = False) -> None:
        self.gateway, self.fail = gateway, fail
        self.dns: list[tuple[tuple[str, ...], tuple[str, ...], str]] = []

    async def bridge_gateway(self) -> str | None:
        if self.fail:
            raise RuntimeError("engine unreachable")
        return self.gateway

    def use_dns(self, servers: tuple[str, ...], search: tuple[str, ...], stack_domain: str = "") -> None:
        self.dns.append((servers, search, stack_domain))


async def _with_agent(runtime: object, **config: object) -> tuple[str | None, DnsServer]:
    async with trio.open_nursery() as nursery:
        server = await nursery.start(DnsServer(DnsSettings(), lambda: CATALOG).run)
        agent = SimpleNamespace(config=AgentConfig(name="n1", **config), dns=server, runtime=runtime)
        gateway = await listen_on_bridge(agent)
        if gateway is not None:
            q = dns.message.make_query("api.service.shoal", "A")
            reply = await dns.asyncquery.udp(q, gateway, timeout=5, port=53,
                                             backend=dns.asyncbackend.get_backend("trio"))
            assert reply.rcode() == dns.rcode.NOERROR and len(reply.answer[0]) == 2
        nursery.cancel_scope.cancel()
    return gateway, server


async def test_the_gateway_serves_dns_and_containers_get_it_as_resolver(caplog) -> None:
    runtime = StubRuntime()
    with caplog.at_level(logging.INFO, "shoal.agent"):
        gateway, server = await _with_agent(runtime, dns_zone="cluster")
    if os.geteuid() == 0:
        assert gateway == GATEWAY and (GATEWAY, 53) in server.addresses
        assert runtime.dns == [((GATEWAY,), ("service.cluster",), "stack.cluster")]
    else:   # port 53 needs root: one warning, Docker's resolver stays
        assert gateway is None and runtime.dns == []
        assert "cannot listen on the bridge gateway" in caplog.text


async def test_no_bridge_or_an_engine_error_hands_nothing_over(caplog) -> None:
    for runtime in (StubRuntime(gateway=None), StubRuntime(fail=True)):
        with caplog.at_level(logging.INFO, "shoal.agent"):
            gateway, _ = await _with_agent(runtime)
        assert gateway is None and runtime.dns == []
    assert "cannot find the Docker bridge's gateway (engine unreachable)" in caplog.text


async def test_dns_on_bridge_false_leaves_containers_alone() -> None:
    runtime = StubRuntime()
    gateway, server = await _with_agent(runtime, dns_on_bridge=False)
    assert gateway is None and runtime.dns == [] and server.addresses == []


async def test_a_runtime_without_a_bridge_is_fine() -> None:
    gateway, _ = await _with_agent(SimpleNamespace())
    assert gateway is None
