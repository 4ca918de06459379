"""What the DNS server is told: its zone, TTL, resolvers and bounds.

How this works: `DnsSettings` holds every knob of node.dns with its default;
`dns_settings(values)` validates the agent's flat `dns_*` settings (TOML
values) into it, raising node.agent.errors.ConfigError naming the setting.
The agent's config (node.agent.config) keeps the result; docs/configuration.md
documents each setting.
"""

from __future__ import annotations

import ipaddress
import math
import re
from dataclasses import dataclass
from typing import Any

from node.agent.errors import ConfigError

DEFAULT_DNS_BIND = ("127.0.0.1", 8600)   # as Consul
DEFAULT_ZONE = "shoal"
DEFAULT_TTL_S = 5
MAX_TTL_S = 86400
MAX_FORWARDERS = 8
DEFAULT_SOURCE_QPS = 2000.0
ZONE_RE = re.compile(r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*", re.ASCII)


@dataclass(frozen=True, slots=True)
class DnsSettings:
    zone: str = DEFAULT_ZONE                     # without the trailing dot, lowercase
    ttl_s: int = DEFAULT_TTL_S                   # of every record we serve (0 allowed: never cached)
    forward: tuple[tuple[str, int], ...] = ()    # (IP, port) resolvers for other zones; () = REFUSED
    # What we tell EDNS clients we accept and never answer UDP beyond: 1232 is
    # the size that avoids IP fragmentation on any path (DNS flag day 2020).
    udp_payload_max_bytes: int = 1232
    # A query larger than this is dropped unread on either transport (real
    # queries are well under 512 bytes; this bounds the parser's work).
    query_max_bytes: int = 4096
    # Flood bounds.  Per source address, a token bucket (qps 0 = no limit);
    # the table of sources is bounded, the least recently seen go first.
    source_qps: float = DEFAULT_SOURCE_QPS
    source_burst: int = 2000
    max_sources: int = 4096
    # All sources together: keeps a flood from spoofed addresses from taking
    # the agent's one thread away from gossip.
    global_qps: float = 20000.0
    global_burst: int = 20000
    # TCP: connections at once (all, and per source), idle time before we close.
    tcp_max_conns: int = 128
    tcp_max_conns_per_source: int = 16
    tcp_idle_s: float = 10.0
    # Forwarding: one upstream's timeout, and forwards in flight at once (more
    # are answered SERVFAIL at once rather than queued).
    forward_timeout_s: float = 2.0
    forward_max_pending: int = 64
    # How stale the zone may be behind the catalog (it is rebuilt from the
    # catalog at most this often, not per query).
    refresh_s: float = 0.25


def parse_zone(value: Any) -> str:
    if not isinstance(value, str):
        raise ConfigError("dns_zone", f"expected a string, got {type(value).__name__}")
    zone = value.strip().rstrip(".").lower()
    if not zone or len(zone) > 200 or not ZONE_RE.fullmatch(zone):
        raise ConfigError("dns_zone", f"{value!r} is not a DNS name (letters, digits, '-', dots)")
    return zone


def parse_ttl(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ConfigError("dns_ttl_s", f"expected a whole number of seconds, got {value!r}")
    if value != int(value) or not 0 <= value <= MAX_TTL_S:
        raise ConfigError("dns_ttl_s", f"must be a whole number of seconds from 0 to {MAX_TTL_S}, got {value!r}")
    return int(value)


def parse_forward(value: Any) -> tuple[tuple[str, int], ...]:
    """`["IP:PORT", "IP"]` (port 53 by default); IPs only, so forwarding
    never depends on a resolver to find the resolvers."""
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
        raise ConfigError("dns_forward", "expected a list of \"IP:PORT\" strings")
    if len(value) > MAX_FORWARDERS:
        raise ConfigError("dns_forward", f"{len(value)} resolvers; at most {MAX_FORWARDERS}")
    out = []
    for text in value:
        host, port = _ip_port(text.strip(), "dns_forward", 53)
        if port == 0:
            raise ConfigError("dns_forward", f"port 0 in {text!r}")
        out.append((host, port))
    return tuple(out)


def parse_bind(value: Any) -> tuple[str, int] | None:
    """`"IP:PORT"` or `"off"` (None)."""
    if not isinstance(value, str):
        raise ConfigError("dns_bind", f"expected \"IP:PORT\" or \"off\", got {value!r}")
    if value.strip().lower() == "off":
        return None
    return _ip_port(value.strip(), "dns_bind", DEFAULT_DNS_BIND[1])


def parse_rate(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
        raise ConfigError("dns_source_qps", f"expected a number >= 0 (0: no limit), got {value!r}")
    return float(value)


def _ip_port(text: str, field_name: str, default_port: int) -> tuple[str, int]:
    host, port_text = text, None
    if text.startswith("["):
        end = text.find("]")
        host, rest = text[1:end], text[end + 1:]
        if end < 0 or (rest and not rest.startswith(":")):
            raise ConfigError(field_name, f"expected IP:PORT, got {text!r}")
        port_text = rest[1:] or None
    elif text.count(":") == 1:
        host, port_text = text.split(":")
    try:
        ipaddress.ip_address(host)
    except ValueError:
        raise ConfigError(field_name, f"expected an IP address, got {host!r} in {text!r}") from None
    if port_text is None:
        return host, default_port
    if not port_text.isdigit() or not 0 <= int(port_text) <= 65535:
        raise ConfigError(field_name, f"port {port_text!r} out of range 0-65535 in {text!r}")
    return host, int(port_text)


def dns_config_values(values: dict[str, Any]) -> dict[str, Any]:
    """The agent config's `dns_*` fields from raw settings (TOML values or
    flags): only those given, validated."""
    out: dict[str, Any] = {}
    if (v := values.get("dns_bind")) is not None:
        out["dns_bind"] = parse_bind(v)
    if (v := values.get("dns_zone")) is not None:
        out["dns_zone"] = parse_zone(v)
    if (v := values.get("dns_ttl_s")) is not None:
        out["dns_ttl_s"] = parse_ttl(v)
    if (v := values.get("dns_forward")) is not None:
        out["dns_forward"] = parse_forward(v)
    if (v := values.get("dns_on_bridge")) is not None:
        if not isinstance(v, bool):
            raise ConfigError("dns_on_bridge", f"must be true or false, got {v!r}")
        out["dns_on_bridge"] = v
    if (v := values.get("dns_source_qps")) is not None:
        out["dns_source_qps"] = parse_rate(v)
    bind = out.get("dns_bind", DEFAULT_DNS_BIND)
    if bind is not None and bind in out.get("dns_forward", ()):
        raise ConfigError("dns_forward", f"{bind[0]}:{bind[1]} is this agent's own dns_bind: queries would loop")
    return out


def settings_of(config: Any) -> DnsSettings:
    """The server's settings from the agent's config (node.agent.config.AgentConfig)."""
    return DnsSettings(zone=config.dns_zone, ttl_s=config.dns_ttl_s, forward=config.dns_forward,
                       source_qps=config.dns_source_qps)
