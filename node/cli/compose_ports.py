"""A Compose service's `ports:` and `network_mode:` as a job's named ports and network.

How this works: `PortsConverter(...).convert(body)` reads both keys of one
service into the job spec dict's `network` and `ports` (auction.ports has the
rules those obey; the job validator checks the numbers' bounds).

    network_mode: bridge | absent  ->  network "bridge" (Docker's bridge on each node)
    network_mode: host | none      ->  network "host" | "none"
    network_mode: service:X, container:X, a network's name  ->  error naming the service

Every `ports:` entry becomes one named port (but see the protocol below), in short syntax
(`"8080"`, `"8080:80"`, `"127.0.0.1:8080:80"`, `"127.0.0.1::80"`, `"80/tcp"`,
`"[::1]:8080:80"`, a bare number) or long syntax (`target`, `published`,
`protocol`, `mode`, `name`, `host_ip`):

    target     -> `to` (the container's port)
    published  -> `static` (that exact host port; absent, empty or 0: a dynamic
                  one from each node's port range)
    name       -> the port's label, if it is a valid one (lowercase letters,
                  digits, '-', starting with a letter, at most 15 characters);
                  otherwise, and in short syntax, `port<target>` (`port80`),
                  with `-2`, `-3`... when two entries publish the same target

What cannot be honoured as written:
- a port range (`"8000-8010:80"`, `target: 8000-8010`) is an error naming the
  service: name each port (a range of one, `"80-80"`, is that port);
- the protocol: shoal publishes every port for tcp and udp alike (the runtime,
  node.runtime.network), so `"53:53/tcp"` and `"53:53/udp"` are one port; an
  entry that is udp only becomes a port too, with a warning that tcp is
  published as well and that DNS names it `_LABEL._tcp` (there are no `_udp`
  records); `sctp` is a warning and the entry is left out;
- `host_ip` is a warning and ignored: every node publishes on its own publish
  address (an agent setting); a Compose file cannot name one address for all
  nodes;
- `mode: ingress` (Swarm's routing mesh, reachable on every node) is a warning:
  shoal publishes a port only on the node that runs the replica, as
  `mode: host`; clients find the replicas through the catalog or DNS;
- with `network_mode: host` the container listens on the host's port itself,
  as Docker does (Docker discards the mapping): the port is `static = target`,
  and a different `published` is a warning;
- with `network_mode: none` any `ports:` entry is an error.

Plain YAML 1.1 reads `22:22` as the number 1342 (base 60); node.cli.compose
parses Compose files as Docker does, YAML 1.2, where it is the text "22:22".
Pure: no I/O.
"""

from __future__ import annotations

import re
from typing import Any

from auction.ports import MAX_PORTS, NETWORK_MODES, label_problem
from auction.resources import json_kind
from node.cli.compose_report import NOT_SUPPORTED, Report, ServicePart, got, join_path

PORT_KEYS = ("target", "published", "protocol", "mode", "name", "host_ip", "app_protocol")
_NUMBER_RE = re.compile(r"\d{1,5}", re.ASCII)
_RANGE_RE = re.compile(r"(\d{1,5})-(\d{1,5})", re.ASCII)


class PortsConverter(ServicePart):
    """The network and ports of one service, written into `spec` (the job spec
    dict being built), with the Compose path of each field in `origin` and
    every refused path in `failed` (as node.cli.compose_service keeps them)."""

    def __init__(self, report: Report, service_path: str, spec: dict[str, Any], origin: dict[str, str],
                 failed: set[str]) -> None:
        super().__init__(report, service_path, spec, origin, failed)
        self.network = "bridge"
        self.labels: dict[str, str] = {}          # label -> the Compose path that took it
        self.published: dict[int, str] = {}       # host port -> the Compose path that asked for it
        # (to, static) -> the label and protocols of the port made for it: a
        # second entry differing only in protocol is the same port.
        self.made: dict[tuple[int | None, int | None], tuple[str, set[str]]] = {}

    def convert(self, body: dict) -> None:
        if "network_mode" in body:
            self.network_mode(body["network_mode"], join_path(self.path, "network_mode"))
        if "ports" in body:
            self.ports(body["ports"], join_path(self.path, "ports"))

    def network_mode(self, value: Any, path: str) -> None:
        if isinstance(value, str) and value in NETWORK_MODES:
            self.network = value
            if value != "bridge":           # the default stays out of the spec (and its hash)
                self.spec["network"] = value
                self.origin["network"] = path
        elif isinstance(value, str) and value.partition(":")[0] in ("service", "container"):
            self.error(path, f"{got(value)} is not supported by shoal: a replica cannot share another "
                             "container's network (its replicas may run on other nodes); use bridge, host "
                             "or none, and reach the other service by its DNS name")
        else:
            self.error(path, "must be bridge, host or none, got " + got(value))

    def ports(self, value: Any, path: str) -> None:
        if value is None:
            return
        if not isinstance(value, list):
            self.error(path, f"must be a list of ports, got {json_kind(value)}")
            return
        if value and self.network == "none":
            self.error(path, "ports cannot be published with network_mode: none")
            return
        if len(value) > MAX_PORTS:
            self.error(path, f"at most {MAX_PORTS} ports (got {len(value)})")
            return
        ports: dict[str, dict[str, int]] = {}
        for i, item in enumerate(value):
            where = f"{path}[{i}]"
            if isinstance(item, dict):
                entry = self.long(item, where)
            elif isinstance(item, str) or (isinstance(item, int) and not isinstance(item, bool)):
                entry = self.short(str(item), where)
            else:
                self.error(where, f"must be a string like '8080:80' or a mapping with 'target', got "
                                  f"{json_kind(item)}")
                continue
            if entry is None:
                continue
            name, target, published, protocol = entry
            port = self.port(target, published, where)
            key = (port.get("to"), port.get("static"))
            if key in self.made and protocol not in self.made[key][1]:
                self.made[key][1].add(protocol)
                continue
            if (static := port.get("static")) is not None:
                if static in self.published:
                    self.error(where, f"host port {static} is also published by {self.published[static]}")
                    continue
                self.published[static] = where
            label = self.label(name, target, where)
            self.made[key] = (label, {protocol})
            ports[label] = port
            self.origin[f"ports.{label}"] = where
            long = isinstance(item, dict)
            self.origin[f"ports.{label}.to"] = join_path(where, "target") if long else where
            # With host networking the static port is the target (see `port`).
            published_key = "target" if self.network == "host" else "published"
            self.origin[f"ports.{label}.static"] = join_path(where, published_key) if long else where
        for label, protocols in self.made.values():
            if protocols == {"udp"}:
                self.r.warn(self.origin[f"ports.{label}"], f"udp: shoal publishes the port for tcp and udp alike, "
                            f"and DNS names it _{label}._tcp (there are no _udp records)")
        if ports:
            self.spec["ports"] = ports
            self.origin["ports"] = path

    # -- one entry: (name or None, target, published or None, protocol), or None when left out --

    def short(self, text: str, path: str) -> tuple[str | None, int, int | None, str] | None:
        """`[[HOST_IP:]PUBLISHED:]TARGET[/PROTOCOL]`, as `docker run -p`."""
        body, slash, protocol = text.partition("/")
        if slash and not self.protocol(protocol, path, text):
            return None
        parts = body.rsplit(":", 2)
        target_text = parts[-1]
        published_text = parts[-2] if len(parts) >= 2 else ""
        if len(parts) == 3:
            self.host_ip(parts[0].strip("[]"), path)
        target = self.number(target_text, path, text)
        published = self.number(published_text, path, text) if published_text else None
        if target is None or (published_text and published is None):
            return None
        return None, target, published or None, protocol if slash else "tcp"

    def long(self, item: dict, path: str) -> tuple[str | None, int, int | None, str] | None:
        self.r.unknown_keys(item, PORT_KEYS, path)
        if "app_protocol" in item:
            self.r.unsupported(join_path(path, "app_protocol"), "app_protocol",
                               "the port's DNS SRV name is _<label>._tcp")
        protocol = item.get("protocol", "tcp")
        if "protocol" in item and not self.protocol(protocol, join_path(path, "protocol"), None):
            return None
        if "host_ip" in item:
            self.host_ip(item["host_ip"], join_path(path, "host_ip"))
        mode = item.get("mode", "host")
        if mode == "ingress":
            self.r.warn(join_path(path, "mode"), "ingress is " + NOT_SUPPORTED + " (shoal has no routing mesh: "
                        "the port is published only on the node that runs each replica, as mode: host; "
                        "find the replicas through `shoal service show` or DNS)")
        elif mode != "host":
            self.error(join_path(path, "mode"), "must be host or ingress, got " + got(mode))
            return None
        if "target" not in item:
            self.error(join_path(path, "target"), "required: the container's port")
            return None
        target = self.number(item["target"], join_path(path, "target"), None)
        published = None
        if item.get("published") not in (None, ""):
            published = self.number(item["published"], join_path(path, "published"), None)
            if published is None:
                return None
        if target is None:
            return None
        name = item.get("name")
        if name is not None and not isinstance(name, str):
            self.error(join_path(path, "name"), f"must be a string, got {json_kind(name)}")
            return None
        return name, target, published or None, protocol

    def protocol(self, value: Any, path: str, text: str | None) -> bool:
        """True for tcp and udp; sctp is left out with a warning."""
        if value in ("tcp", "udp"):
            return True
        if value == "sctp":
            what = f" ({text})" if text else ""
            self.r.warn(path, f"sctp{what} is {NOT_SUPPORTED} (shoal publishes tcp and udp; this port is "
                              "not published)")
            return False
        self.error(path, "must be tcp or udp, got " + got(value))
        return False

    def host_ip(self, value: Any, path: str) -> None:
        self.r.warn(path, f"{got(value)} is ignored: each node publishes ports on its own publish address "
                          "(an agent setting), the same for every job")

    def number(self, value: Any, path: str, text: str | None) -> int | None:
        """A port number (an int or its digits), or None after an error; ranges are errors."""
        shown = text if text is not None else value
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, str):
            if _NUMBER_RE.fullmatch(value):
                return int(value)
            m = _RANGE_RE.fullmatch(value)
            if m and m.group(1) == m.group(2):
                return int(m.group(1))
            if m:
                self.error(path, f"port ranges are not supported by shoal ({got(shown)}): list each port")
                return None
        self.error(path, "must be a port number, got " + got(shown))
        return None

    def port(self, target: int, published: int | None, path: str) -> dict[str, int]:
        """The job's port table (auction.spec_check checks the numbers' bounds)."""
        if self.network != "host":
            return {"to": target} if published is None else {"to": target, "static": published}
        # Docker discards the mapping with host networking: the process listens on its own port.
        if published is not None and published != target:
            self.r.warn(path, f"published {published} is ignored with network_mode: host (the container "
                              f"listens on the host's port {target} itself)")
        return {"static": target}

    def label(self, name: str | None, target: int, path: str) -> str:
        """The long syntax `name` if it is a valid port label, else port<target>, made unique."""
        if name is not None and label_problem(name) is None and name not in self.labels:
            self.labels[name] = path
            return name
        base = f"port{target}"
        label, n = base, 1
        while label in self.labels:
            n += 1
            label = f"{base}-{n}"
        if name is not None:
            why = label_problem(name) or f"{self.labels[name]} has that name"
            self.r.warn(join_path(path, "name"), f"{got(name)} cannot name the port ({why}); it is named {label}")
        self.labels[label] = path
        return label
