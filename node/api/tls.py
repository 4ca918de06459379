"""TLS for the agent's HTTP API: the server's context, the one agents use to
reach each other, and which client certificate a request came with.

How this works: with `api_tls_cert`, `api_tls_key` and `api_tls_ca` set
(node.agent.config) hypercorn serves HTTPS with the agent's certificate and
asks every client for a certificate (`CERT_OPTIONAL`): a client that shows
none is served (the `shoal` CLI, authenticated by the API token), one that
shows a certificate not issued by the cluster CA is refused in the
handshake.  Hypercorn does not pass the client certificate to the app, so
the server context's SSL objects record it, once the handshake verified it,
in the context variable `PEER_CERT`: trio runs each connection in its own
task and the request handlers are started from that task, so they see the
value of their own connection only.  Agents forwarding to one another
present their own certificate (`peer_client_context`) and verify the other
agent's against the cluster CA; the name checked is the host forwarded to,
which is the member's gossip address (node.api.forward), so each agent's
certificate must carry its advertised address as a SAN (`shoal tls cert`).
"""

from __future__ import annotations

from contextvars import ContextVar
from functools import cache
from typing import TYPE_CHECKING, Any

from hypercorn.config import Config as HypercornConfig

if TYPE_CHECKING:
    import ssl

    from node.agent.config import AgentConfig

# The verified client certificate of the current request's connection
# (ssl's getpeercert() dict), or None when it showed none.
PEER_CERT: ContextVar[dict[str, Any] | None] = ContextVar("shoal_api_peer_cert", default=None)


@cache
def _tls_hypercorn_config() -> type[HypercornConfig]:
    """Hypercorn's config, whose SSL context records client certificates.
    Made at the first use: ssl is imported only by an agent serving TLS
    (one serving plain HTTP never loads it, node.api.lean_imports)."""
    import ssl

    class RecordingSSLObject(ssl.SSLObject):
        """Records the verified client certificate when the handshake completes."""

        def do_handshake(self) -> None:
            super().do_handshake()
            PEER_CERT.set(self.getpeercert() or None)

    class TLSHypercornConfig(HypercornConfig):
        def create_ssl_context(self) -> ssl.SSLContext | None:
            context = super().create_ssl_context()
            if context is not None:
                context.sslobject_class = RecordingSSLObject
            return context

    return TLSHypercornConfig


def hypercorn_config(cfg: AgentConfig) -> HypercornConfig:
    """A hypercorn config serving HTTPS when the agent's TLS settings are set."""
    if cfg.api_tls_cert is None:
        return HypercornConfig()
    import ssl

    hc = _tls_hypercorn_config()()
    hc.certfile = str(cfg.api_tls_cert)
    hc.keyfile = str(cfg.api_tls_key)
    hc.ca_certs = str(cfg.api_tls_ca)
    hc.verify_mode = ssl.CERT_OPTIONAL
    return hc


def peer_client_context(cfg: AgentConfig) -> ssl.SSLContext:
    """The context for this agent's requests to another agent: verify it
    against the cluster CA, present our own certificate."""
    import ssl

    context = ssl.create_default_context(cafile=str(cfg.api_tls_ca))
    context.load_cert_chain(str(cfg.api_tls_cert), str(cfg.api_tls_key))
    return context
