"""Between the agent and its DNS server (node.dns).

How this works: `start_dns` starts the server in the agent's nursery once
the core exists (the zone comes from the core's catalog, read through its
view between pump turns) and listens on `dns_bind`.  A port that cannot be
bound (in use: several agents on one host; port 53 without root) is one
clear warning, not a failed agent: placement and the API do not depend on
DNS.  `dns_bind = "off"` runs no server.
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


def dns_address(server: DnsServer | None) -> str | None:
    """host:port of the first address the server listens on (for agent.json)."""
    if server is None or not server.addresses:
        return None
    host, port = server.addresses[0]
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
