"""The DNS server: UDP and TCP listeners on trio around the pure answerer.

How this works: `DnsServer.run()` holds a nursery; `listen(host, port)`
binds a UDP socket and a TCP listener on the same port (port 0: a free one)
and serves both until the server stops.  Every query goes through, in order:

  * the flood bounds (node.dns.limits): the global bucket, then the source's;
    over either, the query is dropped and counted (`rate_global`,
    `rate_source`);
  * the answerer (node.dns.answer) against the zone, which is rebuilt from
    the catalog at most every `refresh_s` and only when the catalog changed;
    its answers are cached (with the id patched in) until the zone changes;
  * a forward (node.dns.forward) for other zones, in its own task for UDP
    so the receive loop never waits on a resolver.

UDP: one receive loop per socket, a receive buffer of query_max_bytes + 1
(a longer datagram is dropped unread).  TCP (RFC 7766): 2-byte length
framing, queries answered in order on one connection, at most
`tcp_max_conns` connections (and `tcp_max_conns_per_source` per address);
an over-bound connection is closed at once; a connection idle for
`tcp_idle_s`, or slower than that in the middle of a message, is closed;
a length under a header or over query_max_bytes closes it.  Nothing a
client sends can raise out of a handler: an exception inside is counted
(`internal_error`), logged and the query dropped.

dnspython (node.dns.answer, .zone and .forward) is imported at the first
query, not with the server: 2.4 MiB resident and 0.03 s of CPU that an
agent whose DNS nobody asks never pays (docs/benchmarks.md, agent start).
The receive loops import it in a thread (`_ready`), so the agent's pump
keeps running meanwhile; that first query waits for it.
"""

from __future__ import annotations

import errno
import importlib
import ipaddress
import logging
import math
import socket
import time
from collections import Counter
from collections.abc import Callable
from types import ModuleType
from typing import TYPE_CHECKING

import trio

from node.core.catalog import Catalog
from node.dns.limits import Bucket, SourceBuckets
from node.dns.settings import DnsSettings
from node.dns.stats import DnsStats

if TYPE_CHECKING:
    from node.dns.answer import Drop, Forward, Reply
    from node.dns.forward import Forwarder
    from node.dns.zone import Zone

log = logging.getLogger("shoal.dns")

# The modules on dnspython, imported at the first query (see the docstring).
DNSPYTHON_MODULES = ("node.dns.answer", "node.dns.zone", "node.dns.forward")


def _dnspython() -> tuple[ModuleType, ModuleType, ModuleType]:
    """node.dns.answer, .zone and .forward (imported on the first call)."""
    answer, zone, forward = (importlib.import_module(name) for name in DNSPYTHON_MODULES)
    return answer, zone, forward

# Answers are cached per query (all but its id), per transport and per id
# modulo CACHE_ROTATIONS (the answerer rotates equal records by the id, so
# cached answers still spread clients over the instances), until the zone
# changes; the cache is emptied when it holds CACHE_MAX_ENTRIES.
CACHE_ROTATIONS = 8
CACHE_MAX_ENTRIES = 4096
CACHE_MAX_QUERY_BYTES = 512
CACHEABLE = frozenset({"answer", "nodata", "nxdomain", "refused"})
BIND_ATTEMPTS = 8            # port 0: tries to find one port free for both UDP and TCP
ERROR_LOG_INTERVAL_S = 10.0  # at most one logged internal error per interval


class DnsServer:
    def __init__(self, settings: DnsSettings, catalog_fn: Callable[[], Catalog],
                 stats: DnsStats | None = None) -> None:
        self.settings = settings
        self.catalog_fn = catalog_fn
        self.stats = stats or DnsStats()
        self.forwarder: Forwarder | None = None  # made with dnspython, at the first query
        self._answer: ModuleType | None = None  # node.dns.answer, once imported
        self._zone_mod: ModuleType | None = None
        self._servfail: Callable[..., bytes] | None = None
        self.sources = SourceBuckets(settings.source_qps, settings.source_burst, settings.max_sources)
        self.global_bucket = Bucket(settings.global_qps, settings.global_burst, 0.0)
        self.addresses: list[tuple[str, int]] = []
        self.tcp_open = 0
        self.tcp_by_source: Counter[str] = Counter()
        self._zone: Zone | None = None
        self._catalog: Catalog | None = None
        self._zone_at = -math.inf
        self._nursery: trio.Nursery | None = None
        self._sockets: list[trio.socket.SocketType] = []
        self._last_error_log = -math.inf
        self._cache: dict[bytes, Reply] = {}

    # ---- lifecycle -------------------------------------------------------------

    async def run(self, task_status: trio.TaskStatus[DnsServer] = trio.TASK_STATUS_IGNORED) -> None:
        try:
            async with trio.open_nursery() as nursery:
                self._nursery = nursery
                task_status.started(self)
                await trio.sleep_forever()
        finally:
            self._nursery = None
            for sock in self._sockets:
                sock.close()

    async def listen(self, host: str, port: int, *, reuse_port: bool = False) -> int:
        """Bind UDP and TCP on host:port and serve them; the port bound.
        Raises OSError if either cannot be bound."""
        assert self._nursery is not None, "listen() needs run() started"
        udp, tcp, bound = await _bind_pair(host, port, reuse_port)
        self._sockets += [udp, tcp]
        self._nursery.start_soon(self._serve_udp, udp)
        self._nursery.start_soon(trio.serve_listeners, self._serve_tcp_conn, [trio.SocketListener(tcp)])
        self.addresses.append((host, bound))
        return bound

    # ---- the shared path --------------------------------------------------------

    def _load(self) -> ModuleType:
        """node.dns.answer, importing dnspython's modules on the first call."""
        if self._answer is None:
            answer, zone, forward = _dnspython()
            if self.settings.forward:
                self.forwarder = forward.Forwarder(self.settings)
            self._zone_mod, self._servfail = zone, forward.servfail
            self._answer = answer
        return self._answer

    async def _ready(self) -> None:
        """Import dnspython's modules in a thread before the first query."""
        if self._answer is None:
            await trio.to_thread.run_sync(_dnspython)
            self._load()

    def zone(self, now: float) -> Zone:
        if self._zone is None or now - self._zone_at >= self.settings.refresh_s:
            self._zone_at = now
            try:
                catalog = self.catalog_fn()
            except Exception:  # the catalog's source is starting or broken: keep what we had
                self._log_error("the catalog could not be read")
                catalog = self._catalog or Catalog()
            if self._zone is None or catalog != self._catalog:
                self._load()
                assert self._zone_mod is not None
                self._zone = self._zone_mod.build_zone(catalog, self.settings.zone, self.settings.ttl_s)
                self._catalog = catalog
                self._cache.clear()
        return self._zone

    def admit(self, source: str, now: float) -> bool:
        if not self.global_bucket.take(now):
            self._dropped("rate_global")
            return False
        if not self.sources.take(source, now):
            self._dropped("rate_source")
            return False
        return True

    def decide(self, wire: bytes, tcp: bool, now: float) -> Reply | Drop | Forward:
        ans = self._load()
        zone = self.zone(now)   # first: a new zone empties the cache
        key = None
        if 12 <= len(wire) <= CACHE_MAX_QUERY_BYTES:
            key = wire[2:] + bytes((tcp, wire[1] % CACHE_ROTATIONS))
            hit = self._cache.get(key)
            if hit is not None:
                return ans.Reply(wire[:2] + hit.wire[2:], hit.outcome, hit.bad, hit.truncated)
        try:
            decision: Reply | Drop | Forward = ans.answer(wire, zone, self.settings, tcp=tcp)
        except Exception:  # a bug must cost one query, never the agent
            self._log_error("answering a query failed")
            return ans.Drop("internal_error")
        if key is not None and isinstance(decision, ans.Reply) and decision.outcome in CACHEABLE:
            if len(self._cache) >= CACHE_MAX_ENTRIES:
                self._cache.clear()
            self._cache[key] = decision
        return decision

    def _count(self, transport: str, decision: Reply) -> None:
        self.stats.query(transport, decision.outcome)
        if decision.bad is not None:
            self.stats.bad_input(decision.bad)
        if decision.truncated:
            self.stats.query(transport, "truncated")

    def _dropped(self, reason: str, transport: str = "udp") -> None:
        self.stats.query(transport, "dropped")
        self.stats.bad_input(reason)

    def _log_error(self, what: str) -> None:
        now = time.monotonic()
        if now - self._last_error_log >= ERROR_LOG_INTERVAL_S:
            self._last_error_log = now
            log.exception("dns: %s (further errors are counted, logged at most every %.0f s)",
                          what, ERROR_LOG_INTERVAL_S)

    # ---- UDP --------------------------------------------------------------------

    async def _serve_udp(self, sock: trio.socket.SocketType) -> None:
        bufsize = self.settings.query_max_bytes + 1
        async with trio.open_nursery() as forwards:
            while True:
                try:
                    wire, addr = await sock.recvfrom(bufsize)
                except OSError:  # e.g. an ICMP error reported on the socket: nothing to do with the next query
                    await trio.lowlevel.checkpoint()
                    continue
                await self._ready()
                now = trio.current_time()
                if not self.admit(addr[0], now):
                    continue
                decision = self.decide(wire, False, now)
                ans = self._load()
                if isinstance(decision, ans.Drop):
                    self._dropped(decision.reason)
                elif isinstance(decision, ans.Forward):
                    assert self.forwarder is not None and self._servfail is not None
                    if self.forwarder.try_acquire():
                        forwards.start_soon(self._forward_udp, sock, decision, addr)
                    else:
                        self.stats.bad_input("forward_busy")
                        self.stats.query("udp", "servfail")
                        await _sendto(sock, self._servfail(decision.query, self.settings, decision.limit_bytes),
                                      addr)
                else:
                    self._count("udp", decision)
                    await _sendto(sock, decision.wire, addr)

    async def _forward_udp(self, sock: trio.socket.SocketType, fwd: Forward, addr: tuple) -> None:
        assert self.forwarder is not None
        try:
            wire, outcome = await self.forwarder.forward(fwd.query, fwd.limit_bytes, tcp=False)
        finally:
            self.forwarder.release()
        self.stats.query("udp", outcome)
        await _sendto(sock, wire, addr)

    # ---- TCP --------------------------------------------------------------------

    async def _serve_tcp_conn(self, stream: trio.SocketStream) -> None:
        try:
            source = stream.socket.getpeername()[0]
        except OSError:
            await stream.aclose()
            return
        if self.tcp_open >= self.settings.tcp_max_conns:
            self._dropped("tcp_conns", "tcp")
            await stream.aclose()
            return
        if self.tcp_by_source[source] >= self.settings.tcp_max_conns_per_source:
            self._dropped("tcp_conns_source", "tcp")
            await stream.aclose()
            return
        self.tcp_open += 1
        self.tcp_by_source[source] += 1
        try:
            await self._tcp_queries(stream, source)
        except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
            pass  # the client went away
        finally:
            self.tcp_open -= 1
            self.tcp_by_source[source] -= 1
            if self.tcp_by_source[source] <= 0:
                del self.tcp_by_source[source]
            await stream.aclose()

    async def _tcp_queries(self, stream: trio.SocketStream, source: str) -> None:
        buf = bytearray()
        idle_s = self.settings.tcp_idle_s
        while True:
            header = None
            with trio.move_on_after(idle_s):
                header = await _read_exact(stream, 2, buf)
            if header is None:
                return  # EOF or idle: a normal end
            length = int.from_bytes(header, "big")
            if length > self.settings.query_max_bytes:
                self._dropped("oversized", "tcp")
                return
            wire = None
            with trio.move_on_after(idle_s):
                wire = await _read_exact(stream, length, buf)
            if wire is None:
                self._dropped("truncated", "tcp")
                return
            await self._ready()
            now = trio.current_time()
            if not self.admit(source, now):
                return
            decision = self.decide(wire, True, now)
            ans = self._load()
            if isinstance(decision, ans.Drop):
                self._dropped(decision.reason, "tcp")
                return
            if isinstance(decision, ans.Forward):
                assert self.forwarder is not None and self._servfail is not None
                if not self.forwarder.try_acquire():
                    self.stats.bad_input("forward_busy")
                    self.stats.query("tcp", "servfail")
                    reply = self._servfail(decision.query, self.settings, decision.limit_bytes)
                else:
                    try:
                        reply, outcome = await self.forwarder.forward(decision.query, decision.limit_bytes, tcp=True)
                    finally:
                        self.forwarder.release()
                    self.stats.query("tcp", outcome)
            else:
                self._count("tcp", decision)
                reply = decision.wire
            with trio.move_on_after(idle_s) as scope:
                await stream.send_all(len(reply).to_bytes(2, "big") + reply)
            if scope.cancelled_caught:
                return


async def _read_exact(stream: trio.SocketStream, n: int, buf: bytearray) -> bytes | None:
    """`n` bytes from the stream (what is left over stays in `buf`), or None
    at EOF.  Never reads more than `n` bytes ahead, so `buf` stays bounded."""
    while len(buf) < n:
        chunk = await stream.receive_some(n - len(buf))
        if not chunk:
            return None
        buf += chunk
    out = bytes(buf[:n])
    del buf[:n]
    return out


async def _sendto(sock: trio.socket.SocketType, wire: bytes, addr: tuple) -> None:
    try:
        await sock.sendto(wire, addr)
    except OSError:  # the client's address is unreachable or the buffer full: the client retries
        pass


async def _bind_pair(host: str, port: int,
                     reuse_port: bool) -> tuple[trio.socket.SocketType, trio.socket.SocketType, int]:
    family = socket.AF_INET6 if ipaddress.ip_address(host).version == 6 else socket.AF_INET
    last: OSError | None = None
    for _ in range(BIND_ATTEMPTS if port == 0 else 1):
        udp = trio.socket.socket(family, socket.SOCK_DGRAM)
        tcp = trio.socket.socket(family, socket.SOCK_STREAM)
        try:
            for sock in (udp, tcp):
                if reuse_port:
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            await udp.bind((host, port))
            bound = udp.getsockname()[1]
            await tcp.bind((host, bound))
            tcp.listen(64)
            return udp, tcp, bound
        except OSError as e:
            udp.close()
            tcp.close()
            last = e
            if port != 0 or e.errno != errno.EADDRINUSE:
                break
    assert last is not None
    raise last
