"""A replica's network on Docker: mode, published ports, DNS, and the
environment variables that tell the replica where it is.

How this works
--------------
The job's `network` (auction/ports.py has the rules) is the container's
Docker network mode:

  bridge  Docker's bridge on this node.  Each of the job's ports publishes the
          container's `to` port on the host port the holder put in its claim
          (`Claim.ports`), for TCP and UDP alike (as Nomad does: the replica
          may serve either on its port), bound on the runtime's
          `publish_address` only -- never on every interface unless the
          operator configured 0.0.0.0.  With `dns_servers` / `dns_search` set
          (the agent's DNS on the bridge gateway, `service.shoal`), those are
          the container's resolvers.
  host    the node's own network namespace: no bindings, the replica listens
          on its host port itself.
  none    no network at all.

Every replica gets, set after the spec's own `env` so that they always hold
(the spec checker refuses `SHOAL_*` names in `env`):

  SHOAL_JOB, SHOAL_SLOT (the replica's index), SHOAL_NODE (the node's name),
  and per port label L (`env_suffix`: `http-alt` -> `HTTP_ALT`):
  SHOAL_PORT_L       the port the replica listens on (`to` in bridge mode,
                     the host port in host mode)
  SHOAL_HOST_PORT_L  the host port
  SHOAL_ADDR_L       publish_address:host port, where others reach it

A host port something else holds makes Docker refuse to start the container
("address already in use" from its port proxy, "port is already allocated"
from its own allocator), and so does an engine without the network the job
asks for (a dockerd started with --bridge=none has no `bridge`):
`start_refusal` turns such an answer into the reason the slot gives up on
this node with, so placement puts it elsewhere.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Any

from auction.claims import Claim
from auction.ports import env_suffix
from auction.spec import JobSpec
from node.core.stack_names import stack_search_domain

PROTOCOLS = ("tcp", "udp")
ENV_JOB = "SHOAL_JOB"
ENV_SLOT = "SHOAL_SLOT"
ENV_NODE = "SHOAL_NODE"
ENV_PORT = "SHOAL_PORT_"
ENV_HOST_PORT = "SHOAL_HOST_PORT_"
ENV_ADDR = "SHOAL_ADDR_"

# What dockerd says when a published port cannot be had: its userland proxy
# could not bind it, or its allocator knows another container holds it.
_CLASH_RE = re.compile(r"address already in use|port is already allocated", re.IGNORECASE)
_HOST_PORT_RE = re.compile(r":(\d{1,5})\b")
_NO_NETWORK_RE = re.compile(r"network (\S+) not found")


def host_ports(spec: JobSpec, claim: Claim) -> dict[str, int]:
    """The spec's port labels -> the host port the claim gave each (labels the
    claim has no port for are missing: see `missing_ports`)."""
    given = dict(claim.ports)
    return {p.label: given[p.label] for p in spec.ports if p.label in given}


def missing_ports(spec: JobSpec, claim: Claim) -> str | None:
    """Why the replica cannot be networked as its spec asks, or None: a port of
    a bridge or host job the claim gives no host port."""
    if spec.network == "none":
        return None
    given = dict(claim.ports)
    missing = [p.label for p in spec.ports if p.label not in given]
    if not missing:
        return None
    return f"no host port was assigned to port{'s' if len(missing) > 1 else ''} {', '.join(missing)}"


def address(host: str, port: int) -> str:
    """`host:port`, with an IPv6 host in brackets."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def replica_env(node: str, slot: str, claim: Claim, spec: JobSpec, publish_address: str) -> dict[str, str]:
    """The variables shoal sets in every replica (see the module doc)."""
    _, _, index = slot.rpartition("/")
    env = {ENV_JOB: claim.job, ENV_SLOT: index, ENV_NODE: node}
    ports = host_ports(spec, claim)
    for p in spec.ports:
        if p.label not in ports:
            continue
        host_port = ports[p.label]
        suffix = env_suffix(p.label)
        listens = p.to if spec.network == "bridge" and p.to is not None else host_port
        env[ENV_PORT + suffix] = str(listens)
        env[ENV_HOST_PORT + suffix] = str(host_port)
        env[ENV_ADDR + suffix] = address(publish_address, host_port)
    return env


def environment(node: str, slot: str, claim: Claim, spec: JobSpec, publish_address: str) -> dict[str, str]:
    """The container's environment: the spec's, then ours (ours always hold)."""
    return {**spec.env_map, **replica_env(node, slot, claim, spec, publish_address)}


def exposed_ports(spec: JobSpec) -> list[tuple[int, str]] | None:
    """`create_container(ports=...)`: the container ports a bridge job publishes."""
    if spec.network != "bridge" or not spec.ports:
        return None
    return [(p.to, proto) for p in spec.ports if p.to is not None for proto in PROTOCOLS]


def host_config_network(spec: JobSpec, claim: Claim, publish_address: str, dns_servers: tuple[str, ...],
                        dns_search: tuple[str, ...], dns_stack_domain: str = "") -> dict[str, Any]:
    """The network part of `create_host_config`'s arguments.  A stack's job
    searches its stack's domain first (node.core.stack_names: `db` is the
    stack's job STACK-db), then `dns_search`."""
    if spec.network != "bridge":
        return {"network_mode": spec.network}
    ports = host_ports(spec, claim)
    bindings: dict[str, tuple[str, int]] = {}
    for p in spec.ports:
        if p.to is not None and p.label in ports:
            for proto in PROTOCOLS:
                bindings[f"{p.to}/{proto}"] = (publish_address, ports[p.label])
    out: dict[str, Any] = {"network_mode": "bridge"}
    if bindings:
        out["port_bindings"] = bindings
    if dns_servers:
        out["dns"] = list(dns_servers)
    if dns_search:
        stack = stack_search_domain(spec.name, dns_stack_domain)
        out["dns_search"] = ([stack] if stack else []) + list(dns_search)
    return out


def port_clash(message: str, node: str, spec: JobSpec, claim: Claim, publish_address: str) -> str | None:
    """If `message` (dockerd's answer to a start) says a published host port is
    held by something else, the reason this node gives up on the slot."""
    if not _CLASH_RE.search(message):
        return None
    ports = host_ports(spec, claim)
    named = {int(m) for m in _HOST_PORT_RE.findall(message)}
    hit = [(label, port) for label, port in ports.items() if port in named] or list(ports.items())
    what = ", ".join(f"{address(publish_address, port)} ({label})" for label, port in hit) or "a published port"
    return f"host port {what} is already in use on node {node}"


def missing_network(message: str, node: str) -> str | None:
    """If `message` (dockerd's answer to a start) says the container's network
    does not exist on this engine, the reason this node gives up on the slot."""
    m = _NO_NETWORK_RE.search(message)
    if m is None:
        return None
    return f"the Docker engine of node {node} has no {m.group(1)} network"


def start_refusal(message: str, node: str, spec: JobSpec, claim: Claim, publish_address: str) -> str | None:
    """Why dockerd's answer to a start means this node cannot run the replica
    (so it gives up on the slot here), or None for any other failure."""
    return port_clash(message, node, spec, claim, publish_address) or missing_network(message, node)


def gateway_of(network: dict[str, Any]) -> str | None:
    """The gateway address of a Docker network, from its inspection: the IPAM
    config's Gateway, else (Docker leaves it out for the default bridge it
    made itself) the first address of its subnet, which is what Docker gives
    the bridge then.  None if the network has no IPv4 subnet."""
    for conf in (network.get("IPAM") or {}).get("Config") or ():
        gateway = (conf or {}).get("Gateway")
        if gateway:
            return str(gateway).split("/")[0]
    for conf in (network.get("IPAM") or {}).get("Config") or ():
        try:
            subnet = ipaddress.ip_network((conf or {}).get("Subnet") or "", strict=False)
        except ValueError:
            continue
        if subnet.version == 4 and subnet.num_addresses > 2:
            return str(subnet.network_address + 1)
    return None
