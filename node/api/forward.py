"""Forwarding an API request to another agent: where to, and as whom.

How this works: a request is forwarded only to the API of the member it is
about, at the host that member gossips from.  `peer_api_url` reads the port
(and host) from the member's `api` tag, but the host must be the member's
gossip address itself (a wildcard tag means that address); a tag naming any
other host is refused with `ForwardRefused` and counted (dropped packets,
reason `forward_api_not_gossip_host`), so a member cannot aim this agent's
requests at another machine.  A loopback tag of a member gossiping from
another address names that member's own loopback: not reachable from here
(None).

The forwarded request never carries the caller's credentials: it
authenticates as this agent (`forward_headers`), with a credential derived
from the cluster's primary gossip key (node.agent.peer_auth) and, when the
API has TLS, with this agent's certificate on the connection
(`forward_client`, node.api.tls).  The scheme is https when this agent's API
has TLS: TLS is a cluster-wide setting, and a member cannot downgrade it.
"""

from __future__ import annotations

import ipaddress
import logging
import types
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from node.agent.config import ConfigError, HostPort, parse_host_port
from node.agent.peer_auth import sign
from node.api import lean_imports

if TYPE_CHECKING:
    import httpx

    from node.agent.agent import Agent

log = logging.getLogger("shoal.api")

FORWARDED_HEADER = "X-Shoal-Forwarded-By"
REFUSED_REASON = "forward_api_not_gossip_host"


class ForwardRefused(Exception):
    """The member's `api` tag names a host it does not gossip from."""


def _same_host(a: str, b: str) -> bool:
    try:
        return ipaddress.ip_address(a) == ipaddress.ip_address(b)
    except ValueError:
        return a.lower() == b.lower()


def peer_api_url(agent: Agent, name: str, target: dict[str, Any]) -> str | None:
    """SCHEME://HOST:PORT of member `name`'s API (target: {addr, api} as
    node.api.common.peer_target gives), None when it cannot be reached from
    here (no tag, or a loopback API on another host); ForwardRefused when the
    tag names another host than its gossip address."""
    if not target["api"]:
        return None
    try:
        hp = parse_host_port(target["api"], "api")
    except ConfigError:
        return None
    addr = target["addr"]
    if hp.is_wildcard:
        hp = HostPort(addr, hp.port)
    elif not _same_host(hp.host, addr):
        if hp.is_loopback and not HostPort(addr, 0).is_loopback:
            return None
        agent.metrics.drop(REFUSED_REASON)
        log.warning("not forwarding to %s: its api tag names %s, not its gossip address %s",
                    name, hp.host, addr)
        raise ForwardRefused(f"refusing to forward to {name}: its api tag names host {hp.host}, "
                             f"not its gossip address {addr}")
    scheme = "https" if agent.config.api_tls_cert is not None else "http"
    return f"{scheme}://{hp}"


def target_of(path: str, params: dict[str, str] | dict[str, str | list[str]] | None = None) -> str:
    """The request target (path and query) as it is sent and signed; a
    list value is the parameter repeated (`cmd=a&cmd=b`)."""
    return f"{path}?{urlencode(params, doseq=True)}" if params else path


def forward_headers(agent: Agent, method: str, target: str) -> dict[str, str]:
    """Headers of a request this agent forwards: who forwards it and, when
    the cluster has a gossip key, the credential for exactly `method target`.
    Never the caller's token."""
    headers = {FORWARDED_HEADER: agent.name}
    keyring = agent.keys.keyring
    if keyring is not None:
        headers.update(sign(keyring.primary, method, target, agent.name, agent.cluster_wall_ms()))
    return headers


def httpx_module() -> types.ModuleType:
    """httpx, loaded by the first request to another agent, not by every
    agent at start (about 0.8 MiB), and without its command line
    (node.api.lean_imports)."""
    return lean_imports.import_module("httpx", lean_imports.HTTPX)


def forward_client(agent: Agent, timeout: float | httpx.Timeout) -> httpx.AsyncClient:
    """An HTTP client for requests to other agents (mutual TLS when the API has TLS)."""
    httpx = httpx_module()

    # node.api.tls brings hypercorn's config: with the HTTP stack (node.api.lean_imports),
    # not before it with the image share, which imports this module
    from node.api.tls import peer_client_context

    cfg = agent.config
    verify: Any = peer_client_context(cfg) if cfg.api_tls_cert is not None else True
    return httpx.AsyncClient(timeout=timeout, verify=verify)
