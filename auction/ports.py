"""Host ports and network modes: what a job asks for, the rules they follow.

How this works: a job names its ports (`[ports.http] to = 8080`).  Each
replica gets, on the node that runs it, one host port per label: the
`static` port the spec names, or a dynamic one from the node's port range
(`--port-range`, default 20000-32000).  The holder picks the dynamic ports
when it accepts an award and writes them into its claim (auction.claims:
`Claim.ports`), so every agent knows where each replica listens and the
holder gets the same ports back after a restart.

Network modes (Docker's): `bridge` (the default; the replica's `to` port is
published on the node's publish address), `host` (the replica shares the
node's network and listens on its host port itself; `to`, if given, must
equal `static`), `none` (no network; ports are an error).

A port label is what names the port in environment variables
(`SHOAL_PORT_HTTP`) and in DNS SRV names (`_http._tcp.web.service.shoal`):
lowercase letters, digits and '-', at most 15 characters (RFC 6335's limit
for a service name).  Pure: no I/O.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

NETWORK_MODES = ("bridge", "host", "none")
DEFAULT_NETWORK = "bridge"
MAX_PORTS = 16                      # per job
MAX_PORT_LABEL_CHARS = 15           # RFC 6335 service names
MIN_PORT = 1
MAX_PORT = 65535
DEFAULT_PORT_RANGE = (20000, 32000)  # inclusive, as Nomad's dynamic range
PORT_LABEL_RE = re.compile(r"[a-z]([a-z0-9-]*[a-z0-9])?", re.ASCII)


@dataclass(frozen=True, slots=True, order=True)
class PortSpec:
    """One named port of a job: `to` is the container's port (None with host
    networking: the replica listens on its host port); `static` an exact
    host port (None: dynamic, from the node's range)."""

    label: str
    to: int | None = None
    static: int | None = None

    def to_dict(self) -> dict[str, int]:
        d: dict[str, int] = {}
        if self.to is not None:
            d["to"] = self.to
        if self.static is not None:
            d["static"] = self.static
        return d


def label_problem(label: str) -> str | None:
    """Why `label` cannot name a port, or None."""
    if len(label) > MAX_PORT_LABEL_CHARS:
        return f"port names are at most {MAX_PORT_LABEL_CHARS} characters"
    if not PORT_LABEL_RE.fullmatch(label):
        return "port names are lowercase letters, digits and '-', starting with a letter (like 'http')"
    return None


def env_suffix(label: str) -> str:
    """`http-alt` -> `HTTP_ALT`: the label as it appears in SHOAL_PORT_<LABEL>."""
    return label.upper().replace("-", "_")
