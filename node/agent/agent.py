"""The shoal agent: one trio nursery around one node core.

How this works
--------------
`Agent.run()` builds, in order: the keyring (node.agent.keys), the sockets
(node.agent.transport, bound first so the core knows its real port), the node's
capacity and labels (node.agent.probe and the config), the durable stores in the
state dir (node.agent.persistence), the HTTP API's socket (node.api.listen,
opened before the core so its address can go into our tags), the core
(`node.core.node_core.NodeCore`, built in `_build_core` from what the stores
held), the container runtime (node.agent.runtime_link), and then starts the
tasks; the agent gossips (and joins) before the DNS server (node.dns and
dnspython; first only when the runtime's bridge must get its resolver before
any placement) and the HTTP API's stack (node.api.server: hypercorn,
starlette, httpx) are even imported, and
`agent.json` is written, and `run`'s task_status reported, only once the API
serves (and, under `shoal agent`, once the code its dataclasses generated is
saved for the next start: node.agent.codecache):

    UDP receiver ─┐                                 ┌──> UDP sender queue
    TCP conns  ───┤                                 ├──> dial tasks (OpenStream)
    dial results ─┼──> input channel ──> PUMP ──────┼──> persistence task ──> SQLite
    API calls  ───┤      (bounded)        │         │      (bounded channel)  (threads)
    Persisted ────┘                       │         └──> runtime.start/stop
         ^                                └──> event log, indexes, metrics, logs
         └──────── persistence task: Persisted(token) after a durable write

EXACTLY ONE task, the pump (node.agent.pump), feeds the core, with input
values from node.core.inputs; its outputs go to node.agent.dispatch.  Reads
(API, metrics, UI) use the core's read-only view (`Agent.view`) between pump
turns.  The parts, one module each:

    node.agent.pump         the input channel and the pump task
    node.agent.dispatch     what each output of the core turns into
    node.agent.persistence  the state dir and the durability of job writes
    node.agent.health       this node's health from the runtime and the state dir
    node.agent.membership   join (with retry) and leave
    node.agent.operations   what the HTTP API asks (writes, reads, keys)
    node.agent.runtime_link runtime reports in, runtime built
    node.agent.statefile    agent.json, where scripts find the agent
    node.agent.droplog      rate-limited warnings for misconfigured peers
    node.agent.dns_link     the DNS server (node.dns) on the core's catalog

Leaving: SIGINT/SIGTERM (or `POST /v1/agent/leave`) leaves the cluster
(node.agent.membership) and then exits cleanly.  A second signal exits at once.
"""

from __future__ import annotations

import importlib
import logging
import os
import random
import signal
import socket
import time
from collections.abc import Callable
from typing import Any

import trio

import node
from auction.resources import Resources
from gossip.config import GossipConfig, preset
from gossip.events import Address, OpenStream
from gossip.messages import Message
from gossip.packet import StreamDecoder
from gossip.security import Keyring
from node.agent import codecache, fault_clock, probe
from node.agent.config import (
    AgentConfig,
    HostPort,
    advertise_address,
    check_status_size,
    publish_address,
)
from node.agent.dispatch import Dispatcher
from node.agent.droplog import DropLog
from node.agent.errors import AgentStarting
from node.agent.health import Health
from node.agent.keys import KeyManager, initial_keys
from node.agent.handover import global_slot, hand_over, room_elsewhere
from node.agent.membership import Membership, alive_others
from node.agent.operations import Operations
from node.agent.persistence import Persistence
from node.agent.pump import Pump
from node.agent.runtime_link import make_runtime, watch_claims_replayed, watch_runtime
from node.agent.statefile import remove_state_file, state_file, write_state_file
from node.agent.tags import encode_tags
from node.agent.transport import Transport
from node.api.blocking import Indexes
from node.api.listen import check_tls, open_api_socket
from node.core.inputs import SetDrained
from node.core.node_core import NodeCore
from node.core.outputs import CoreOutput
from node.core.view import CoreView
from node.state.statedir import Loaded
from node.telemetry.clustermetrics import ClusterMetrics
from node.telemetry.eventlog import EventLog
from node.telemetry.metrics import AgentMetrics

log = logging.getLogger("shoal.agent")

API_SHUTDOWN_WAIT_S = 1.5


def import_api_server(tls: bool) -> Any:
    """node.api.server, with hypercorn and starlette but without the
    standard-library modules they import and an agent never runs, nor ssl
    when the API serves plain HTTP (node.api.lean_imports; in a thread, once
    the agent gossips)."""
    from node.api import lean_imports

    stand_ins = lean_imports.HTTP_STACK if tls else lean_imports.HTTP_STACK | lean_imports.HYPERCORN_SSL
    return lean_imports.import_module("node.api.server", stand_ins)


def agent_version() -> str:
    return node.__version__


def node_capacity(cfg: AgentConfig) -> Resources:
    """What this node offers to jobs: declared or measured, minus the reserve
    (declared, or node.agent.probe's default for the machine)."""
    measured = probe.measure(cfg.state_dir)
    machine = Resources(
        cfg.cpu_millis if cfg.cpu_millis is not None else measured.cpu_millis,
        cfg.memory_bytes if cfg.memory_bytes is not None else measured.memory_bytes,
        measured.disk_bytes,
    )
    default = probe.default_reserve(machine)
    reserve = Resources(
        cfg.reserve_cpu_millis if cfg.reserve_cpu_millis is not None else default.cpu_millis,
        cfg.reserve_memory_bytes if cfg.reserve_memory_bytes is not None else default.memory_bytes,
        default.disk_bytes,
    )
    return probe.capacity(cfg.state_dir, cpus=f"{machine.cpu_millis}m", memory_bytes=machine.memory_bytes,
                          reserve=reserve, measured=measured)


def node_labels(cfg: AgentConfig) -> dict[str, str]:
    labels = {"arch": probe.arch(), **dict(cfg.labels)}
    check_status_size(cfg.name, labels)
    return labels


# ---- the agent ------------------------------------------------------------------


class Agent:
    def __init__(self, config: AgentConfig, *, gossip_config: GossipConfig | None = None,
                 runtime: Any = None) -> None:
        self.config = config
        self.gossip_config = gossip_config or preset(config.profile)
        self.name = config.name
        self.metrics = AgentMetrics()
        self.cluster_metrics = ClusterMetrics(self.metrics)
        self.events = EventLog()
        self.indexes = Indexes()
        self.drop_log = DropLog()
        self.core: NodeCore | None = None
        self.runtime: Any = runtime
        self.transport: Transport | None = None
        self.keys: KeyManager = KeyManager(None, None)
        self.advertise: HostPort | None = None
        self.api_url: str | None = None
        self.gossip_port: int | None = None
        self.capacity: Resources | None = None
        self.labels: dict[str, str] = {}
        self.started_at = time.time()
        # The parts (one module each); the pump calls back into the
        # dispatcher and the membership through the two methods below.
        self.pump = Pump(self.metrics, self._dispatch, self._dial_result)
        self.health = Health(self.pump)
        self.persistence = Persistence(config.state_dir, self.cluster_metrics, self.pump, self.health)
        self.membership = Membership(self.pump, self.gossip_config, self.events,
                                     lambda: self.view, lambda: self.advertise)
        self.dispatcher = Dispatcher(self)
        self.ops = Operations(self)
        self._exit = trio.Event()
        self._api_shutdown = trio.Event()
        self._api_done = trio.Event()
        self._nursery: trio.Nursery | None = None
        self.dns: Any = None  # node.dns.server.DnsServer, once started (node.agent.dns_link)
        self._dns_link: Any = None  # that module, imported once the agent gossips (most agents)

    def _dispatch(self, outputs: list[CoreOutput], now: float) -> None:
        self.dispatcher.dispatch(outputs, now)

    def _dial_result(self, cmd: OpenStream, error: str | None) -> None:
        self.membership.dial_result(cmd, error)

    def cluster_wall_ms(self) -> int:
        """This agent's wall clock in cluster time: its own (node.agent.fault_clock)
        plus the core's correction when it is seconds off its peers'.  Peer
        credentials are stamped and checked with it, so a node whose clock
        drifted still talks to its peers, as its job writes do."""
        correction_ms = self.core.view.clock_correction_ms if self.core is not None else 0
        return fault_clock.wall_ms() + correction_ms

    @property
    def view(self) -> CoreView:
        """The core's read-only view (node.core.view): read between pump turns."""
        if self.core is None:
            raise AgentStarting("this agent is still starting")
        return self.core.view

    # ---- lifecycle ------------------------------------------------------------

    async def _start_dns(self, nursery: trio.Nursery) -> None:
        """Start the DNS server (node.agent.dns_link), its module imported in a thread."""
        self._dns_link = await trio.to_thread.run_sync(importlib.import_module, "node.agent.dns_link")
        self.dns = await self._dns_link.start_dns(self, nursery)
        await self._dns_link.listen_on_bridge(self)

    async def run(
        self, *, handle_signals: bool = False, on_started: Callable[[], None] | None = None,
        task_status: trio.TaskStatus[Agent] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        """Run until asked to exit; `on_started` is called once the agent
        serves, as task_status is reported (`shoal agent` turns the cyclic
        GC back on there: node.cli.agent_run)."""
        cfg = self.config
        self.capacity = node_capacity(cfg)
        self.labels = node_labels(cfg)  # ConfigError if they do not fit the status record
        self.runtime = self.runtime if self.runtime is not None else make_runtime(self)
        keys = initial_keys(cfg)
        keyring = Keyring(keys, os.urandom) if keys else None
        self.keys = KeyManager(keyring, cfg.keyring_file, metrics=self.metrics, wall_ms=fault_clock.wall_ms)
        self.transport = Transport(
            cfg.bind,
            self.metrics,
            tcp_timeout_s=self.gossip_config.tcp_timeout_s,
            decoder_factory=self._decoder,
            on_drop=self._stream_dropped,
        )
        api_sock: socket.socket | None = None
        try:
            loaded = await self.persistence.open()
            self.gossip_port = await self.transport.bind()
            self.advertise = advertise_address(cfg, self.gossip_port)
            # The API's address goes into our tags, so its socket is opened
            # before the core is built; the HTTP stack itself comes later.
            if cfg.api_tls_cert is not None:
                check_tls(cfg.api_tls_cert, cfg.api_tls_key, cfg.api_tls_ca)
            api_sock, self.api_url = open_api_socket(cfg.api, tls=cfg.api_tls_cert is not None)
            async with trio.open_nursery() as nursery:
                self._nursery = nursery
                self.core = self._build_core(loaded, keyring, trio.current_time())
                nursery.start_soon(self.persistence.run)
                if hasattr(self.runtime, "run"):
                    await nursery.start(self.runtime.run)
                # Containers get the bridge DNS only if it serves before the
                # pump places anything; without a bridge, DNS (dnspython, a
                # fair part of start-up) waits until we gossip.
                dns_first = cfg.dns_on_bridge and callable(getattr(self.runtime, "use_dns", None))
                if dns_first:
                    await self._start_dns(nursery)
                await nursery.start(self._run_transport)
                nursery.start_soon(self.pump.run, self.core)
                if hasattr(self.runtime, "desired_complete"):
                    nursery.start_soon(watch_claims_replayed, self)
                nursery.start_soon(watch_runtime, self)
                if (share := getattr(self.runtime, "image_share", None)) is not None:
                    nursery.start_soon(share.preloads.run)     # `shoal image preload` (node.agent.image_preload)
                if handle_signals:
                    nursery.start_soon(self._watch_signals)
                # Gossiping from here on.  The HTTP stack is most of an
                # agent's start-up: it is imported in a thread, so the pump
                # answers peers meanwhile, and served on the socket above.
                if not dns_first:
                    await self._start_dns(nursery)
                server = await trio.to_thread.run_sync(import_api_server, cfg.api_tls_cert is not None)
                # We join once that import is done, not while it runs: the
                # import holds the interpreter in turns with the pump, and on
                # a loaded machine (60 agents started at once on 2 cores) a
                # member slowed that way answers probes and syncs late, is
                # suspected, and spreads its own alive late.  Joining after
                # it, the last of the 60 saw all 60 at a median 10.5 s, not
                # 11.4 s (ten interleaved runs each, docs/benchmarks.md).
                # The cost: on an idle machine the join starts some 50 ms
                # later; pings are answered as early as before.
                if cfg.join:
                    nursery.start_soon(self.membership.join_with_retry, list(cfg.join))
                await nursery.start(server.serve_api, self, api_sock, self._api_shutdown, self._api_done)
                await self.persistence.stores_ready.wait()  # a first start creates them meanwhile
                codecache.save()  # what this start compiled, for the next (node.agent.codecache)
                write_state_file(state_file(cfg.state_dir), {
                    "name": self.name,
                    "gossip": str(self.advertise),
                    "bind": str(HostPort(cfg.bind.host, self.gossip_port or 0)),
                    "api": self.api_url,
                    "dns": self._dns_link.dns_address(self.dns),
                })
                log.info(
                    "agent %s running: gossip on %s (advertised %s), api %s, profile %s, encryption %s%s; "
                    "capacity %s, labels %s, runtime %s, %d jobs and %d claims from the state dir",
                    cfg.name,
                    HostPort(cfg.bind.host, self.gossip_port),
                    self.advertise,
                    self.api_url,
                    self.gossip_config.profile,
                    f"on ({len(keys)} key{'s' if len(keys) != 1 else ''})" if keys else "off",
                    f", label {cfg.label!r}" if cfg.label else "",
                    self.capacity,
                    ",".join(f"{k}={v}" for k, v in sorted(self.labels.items())),
                    getattr(self.runtime, "kind", type(self.runtime).__name__),
                    sum(1 for e in loaded.entries if not e.deleted),
                    sum(1 for c in loaded.claims if not c.released),
                )
                if on_started is not None:
                    on_started()
                task_status.started(self)
                await self._exit.wait()
                self._api_shutdown.set()
                with trio.move_on_after(API_SHUTDOWN_WAIT_S):
                    await self._api_done.wait()
                nursery.cancel_scope.cancel()
        finally:
            self._nursery = None
            if api_sock is not None:
                api_sock.close()  # a no-op once the API server took it over
            self.transport.close()
            self.persistence.close()
            remove_state_file(state_file(cfg.state_dir))
        log.info("agent %s stopped", cfg.name)

    def _build_core(self, loaded: Loaded, keyring: Keyring | None, now: float) -> NodeCore:
        """The node core, from the config and what the state dir held (the
        one place a NodeCore is built)."""
        cfg = self.config
        assert self.advertise is not None and self.api_url is not None and self.capacity is not None
        api_hp = self.api_url.split("://", 1)[-1]
        tags = {**dict(cfg.tags), "role": "shoal", "api": api_hp}
        core = NodeCore(
            name=cfg.name,
            addr=Address(self.advertise.host, self.advertise.port),
            gossip_config=self.gossip_config,
            rng=random.Random(int.from_bytes(os.urandom(8), "big")),
            now=now,
            capacity=self.capacity,
            labels=self.labels,
            agent_version=agent_version(),
            address=publish_address(cfg, self.advertise),  # where replicas' ports are published (the catalog's)
            # the wall clock of the HLC: ahead and drifting under a fault clock (node.agent.fault_clock)
            wall_offset_s=time.time() - now + fault_clock.skew_s(),
            meta=encode_tags(tags),
            keyring=keyring,
            label=cfg.label.encode(),
            stored_entries=loaded.entries,
            stored_claims=loaded.claims,
            cluster_config=cfg.cluster,
            placement_config=cfg.placement,
            container_policy=cfg.containers,
            port_range=cfg.port_range,
        )
        if loaded.drained:
            # Before the pump runs: its first drain dispatches what this caused.
            core.feed(SetDrained(True), now)
            log.info("this node is drained (as it was before the restart)")
        return core

    def request_exit(self) -> None:
        self._exit.set()

    async def leave_and_hand_over(self) -> bool | None:
        """Leave the cluster; then, if others are alive, wait (bounded) until
        our replicas run elsewhere and ours stopped (node.agent.handover).
        True: all handed over; False: some are still here; None: nobody to
        hand them to (they stay, for our next start to adopt)."""
        others = bool(alive_others(self.view))
        await self.membership.leave()
        if not others or self.runtime is None:
            return None
        handed = await hand_over(self.runtime, lambda: bool(alive_others(self.view)), room_elsewhere(self.view),
                                 stop_here=global_slot(self.view))
        if handed:
            log.info("every replica of ours runs elsewhere now")
        return handed

    async def leave_and_exit(self) -> None:
        await self.leave_and_hand_over()
        self.request_exit()

    async def _watch_signals(self) -> None:
        with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
            async for signum in signals:
                if self.membership.leaving:
                    log.warning("second %s: exiting now", signal.Signals(signum).name)
                    self.request_exit()
                    return
                log.info("%s received: leaving the cluster", signal.Signals(signum).name)
                assert self._nursery is not None
                self._nursery.start_soon(self.leave_and_exit)

    # ---- the transport's side of the pump ----------------------------------------

    async def _run_transport(self, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        assert self.transport is not None
        await self.transport.run(
            on_datagram=self.pump.offer_datagram,
            on_stream=self._on_stream,
            on_dial_result=self.pump.dial_result,
            task_status=task_status,
        )

    async def _on_stream(self, msg: Message, src: Address) -> bytes | None:
        return await self.pump.stream(msg, src)

    def _decoder(self, incoming: bool) -> StreamDecoder:
        # A pure factory of the core (label + keyring); see node.agent.transport.
        assert self.core is not None
        return self.core.stream_decoder(incoming)

    def _stream_dropped(self, reason: str, src: Address | None) -> None:
        self.metrics.drop(reason)
        self.drop_log.report(reason, src, "stream")


async def run_agent(
    config: AgentConfig,
    *,
    handle_signals: bool = True,
    on_started: Callable[[], None] | None = None,
    task_status: trio.TaskStatus[Agent] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Run an agent until it leaves (signal or API) or is cancelled."""
    agent = Agent(config)
    await agent.run(handle_signals=handle_signals, on_started=on_started, task_status=task_status)
