"""Refusing what a web page makes a browser send to the agent's API.

How this works: the API's clients are the `shoal` command and other agents,
neither of which is a browser.  A web page the operator visits can still
aim the operator's browser at `http://127.0.0.1:7980`: a form's POST and a
WebSocket need no permission across origins (the browser sends them and
only hides the answer), so without a token a page could submit jobs or run
commands in containers; and a page whose host name it re-points at
127.0.0.1 (DNS rebinding) counts as that origin and reads the answers too
(the gossip keys, the jobs' specs).  Two checks, before any route:

- a request carrying `Origin` is refused: browsers send it with every
  POST, PUT, DELETE and WebSocket a page makes, and the CLI and agents never
  do (the status page /ui is a plain GET, no scripts, no forms);
- with no `api_token` (which the agent allows only on a loopback API) the
  `Host` must be an IP address or `localhost`: a re-pointed name is not.

Refusals are 403 with the reason, counted as dropped (`api_browser_origin`,
`api_host_not_local`).  With a token, a page cannot send it (no custom
headers across origins without the CORS permission the API never gives),
so the Host check is not needed there and DNS names work.
"""

from __future__ import annotations

import ipaddress
from typing import Any

from node.api.common import error_response

ORIGIN_REASON = "api_browser_origin"
HOST_REASON = "api_host_not_local"


def host_is_local_literal(host_header: str) -> bool:
    """Whether a Host header names an IP address or localhost (any port)."""
    host = host_header.strip().lower()
    if host.startswith("["):                      # [v6]:port
        host, closed, _ = host[1:].partition("]")
        if not closed:
            return False
    elif host.count(":") == 1:
        host = host.partition(":")[0]
    if host in ("localhost", "localhost."):
        return True
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


class BrowserGuard:
    """Pure ASGI middleware (streams and WebSockets keep working)."""

    def __init__(self, app: Any, *, check_host: bool, on_refused: Any) -> None:
        self.app = app
        self.check_host = check_host
        self.on_refused = on_refused     # (reason) -> None: counts the drop

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        problem = reason = None
        if b"origin" in headers:
            reason = ORIGIN_REASON
            problem = ("refusing a request sent by a web page (it carries Origin: "
                       f"{headers[b'origin'][:100].decode('latin-1')!r}); the API answers the shoal "
                       "command and other agents")
        elif self.check_host and not host_is_local_literal(headers.get(b"host", b"").decode("latin-1")):
            reason = HOST_REASON
            problem = (f"refusing Host {headers.get(b'host', b'')[:100].decode('latin-1')!r}: an agent "
                       "without api_token answers only requests to an IP address or localhost "
                       "(use http://127.0.0.1:PORT)")
        if problem is None:
            await self.app(scope, receive, send)
            return
        self.on_refused(reason)
        await error_response(403, problem)(scope, receive, send)
