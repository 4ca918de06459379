"""Between the agent and its DNS server (node.dns).

How this works: `start_dns` starts the server in the agent's nursery once
the core exists (the zone comes from the core's catalog, read through its
view between pump turns) and listens on `dns_bind`.  A port that cannot be
bound (in use: several agents on one host; port 53 without root) is one
clear warning, not a failed agent: placement and the API do not depend on
DNS.  `dns_bind = "off"` runs no server.

`listen_on_bridge` (with `dns_on_bridge`, once the runtime runs and before
the pump places anything) asks the runtime for its bridge gateway
(`bridge_gateway()`, the Docker runtime's), serves DNS there on port 53 with
SO_REUSEPORT (several agents sharing one dockerd share the address), and
tells the runtime (`use_dns`) to give the containers it creates from then on
that resolver and the search domain `service.<zone>`.  A runtime without a
bridge, or a port 53 that cannot be bound, is one warning: containers keep
Docker's default resolver.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import trio

from node.core.catalog import Catalog
from node.dns.server import DnsServer
from node.dns.settings import settings_of
from node.dns.stats import DnsStats

if TYPE_CHECKING:
    from node.agent.agent import Agent

log = logging.getLogger("shoal.agent")

BRIDGE_PORT = 53
BRIDGE_LOOKUP_TIMEOUT_S = 5.0   # the engine's answer; agent start waits at most this long for it


def catalog_of(agent: Agent) -> Catalog:
    # CoreView.catalog() derives the catalog from what the core holds; a core
    # without it (older view) serves an empty zone rather than failing.
    catalog = getattr(agent.view, "catalog", None)
    return catalog() if callable(catalog) else Catalog()


async def start_dns(agent: Agent, nursery: trio.Nursery) -> DnsServer | None:
    cfg = agent.config
    if cfg.dns_bind is None:
        log.info("dns: off (dns_bind = \"off\")")
        return None
    stats = DnsStats(agent.metrics.dns_query, agent.metrics.dns_bad)
    server: DnsServer = await nursery.start(DnsServer(settings_of(cfg), lambda: catalog_of(agent), stats).run)
    host, port = cfg.dns_bind
    try:
        bound = await server.listen(host, port)
    except OSError as e:
        log.warning("dns: cannot listen on %s:%d (%s); this agent serves no DNS there. Set dns_bind to a free "
                    "address, or \"off\"", host, port, e.strerror or e)
        return server
    log.info("dns: serving zone %s. on %s:%d (UDP and TCP), ttl %d s, %s", cfg.dns_zone, host, bound,
             cfg.dns_ttl_s, "forwarding other zones to " + ", ".join(f"{h}:{p}" for h, p in cfg.dns_forward)
             if cfg.dns_forward else "refusing other zones")
    return server


async def listen_on_bridge(agent: Agent) -> str | None:
    """Serve DNS on the runtime's bridge gateway; the gateway, or None."""
    cfg, server = agent.config, agent.dns
    gateway_of = getattr(agent.runtime, "bridge_gateway", None)
    use_dns = getattr(agent.runtime, "use_dns", None)
    if server is None or not cfg.dns_on_bridge or not callable(gateway_of) or not callable(use_dns):
        return None
    gateway = None
    try:
        with trio.move_on_after(BRIDGE_LOOKUP_TIMEOUT_S):
            gateway = await gateway_of()
    except Exception as e:  # the engine is down or answers oddly: no bridge DNS, the agent goes on
        log.warning("dns: cannot find the Docker bridge's gateway (%s); containers keep Docker's resolver", e)
        return None
    if not gateway:
        log.info("dns: the runtime has no bridge network; containers keep Docker's resolver")
        return None
    try:
        await server.listen(gateway, BRIDGE_PORT, reuse_port=True)
    except OSError as e:
        log.warning("dns: cannot listen on the bridge gateway %s:%d (%s; port 53 needs root or "
                    "CAP_NET_BIND_SERVICE); containers keep Docker's resolver", gateway, BRIDGE_PORT,
                    e.strerror or e)
        return None
    use_dns((gateway,), (f"service.{cfg.dns_zone}",), f"stack.{cfg.dns_zone}")
    log.info("dns: serving on the bridge gateway %s:%d; containers resolve with it, search service.%s "
             "(a stack's, STACK.stack.%s first)", gateway, BRIDGE_PORT, cfg.dns_zone, cfg.dns_zone)
    return gateway


def dns_address(server: DnsServer | None) -> str | None:
    """host:port of the first address the server listens on (for agent.json)."""
    if server is None or not server.addresses:
        return None
    host, port = server.addresses[0]
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
