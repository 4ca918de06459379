"""The HTTP API's listening socket, opened before the API's stack is loaded.

How this works: the agent opens (binds and listens on) the API's TCP socket
first, with the standard library only, so the API's real address (`--api
127.0.0.1:0` picks a port) is known before the node core is built (it goes
into our gossiped tags) and before the HTTP stack (hypercorn, starlette,
httpx: most of an agent's start-up) is imported.  node.api.server later
serves on this very socket (hypercorn's `fd://` bind).  Connections that
arrive in between wait in the listen backlog instead of being refused.
`check_tls` loads the API's TLS files once, so that bad ones stop the agent
before it gossips, as they did when the API was started first.
"""

from __future__ import annotations

import socket
from pathlib import Path

from node.agent.config import HostPort

BACKLOG = 100  # hypercorn's default


def open_api_socket(api: HostPort, *, tls: bool) -> tuple[socket.socket, str]:
    """A listening socket on `api` and the URL it serves (http or https,
    `host:port` with the bound port; `[v6]:port` for IPv6).  OSError if the
    address cannot be bound (e.g. the port is taken)."""
    family = socket.AF_INET6 if ":" in api.host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # as hypercorn sets on its own binds
        sock.bind((api.host, api.port))
        sock.listen(BACKLOG)
    except OSError:
        sock.close()
        raise
    host, port = sock.getsockname()[:2]
    where = f"[{host}]:{port}" if family == socket.AF_INET6 else f"{host}:{port}"
    return sock, f"{'https' if tls else 'http'}://{where}"


def check_tls(cert: Path, key: Path, ca: Path) -> None:
    """Load the API's certificate, key and CA as the server will (ssl.SSLError,
    an OSError, if they do not load or do not match).  ssl is imported
    here: an agent serving plain HTTP never loads it (node.api.lean_imports)."""
    import ssl

    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=str(ca))
    context.load_cert_chain(str(cert), str(key))
