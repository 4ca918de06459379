"""A deterministic world that steps real gossip cores on a virtual clock.

How this works
--------------
There is no trio, no socket and no real clock here.  A `World` owns:

- one master `random.Random(seed)`; every node's core gets its own
  `random.Random` seeded from it (in node order, then in the order restarts
  happen), and the network gets another, so a seed replays exactly;
- a virtual clock `world.now` (seconds) and one event heap of plain tuples
  `(time, seq, kind, node, a, b)`.  `seq` is a global counter, so events at
  the same instant run in the order they were scheduled and the tuple
  comparison never looks past it;
- one `SimNode` per node (node.sim.simnode): its core (`gossip.swim.Swim` unless a
  `core_factory` is given), status, clock and bookkeeping.

Each step pops the earliest event and feeds one core an input value from
`node.core.inputs` (the same values the trio agent feeds; gossip-only cores
are fed through `node.sim.driver`): a datagram arrives (`Datagram`), a stream
arrives (decoded with `stream_decoder(incoming=True)`, fed as `StreamIn`), a
stream's reply or failure comes back (`StreamReply`), a node's timer fires
(`handle_timers`), or a scheduled action runs (faults, joins, broadcasts;
anything given to `world.at`).  Tests and `node.sim.cluster` feed inputs of
their own with `world.feed(node, input)` (a job write, its `Persisted`, ...).  After feeding, the world
`drain()`s that core and routes its outputs in order:

- `SendDatagram` -> the network draws a delay (or drops it) and a datagram
  event is pushed; with duplication, a second copy with its own delay.
- `OpenStream` -> if the target is reachable, a stream event arrives after a
  handshake delay; the target's reply bytes (if `expect_reply`) come back one
  delay later and are decoded with the source's `stream_decoder(incoming=False)`.
  A stream timeout event is always scheduled at `now + timeout_s`; whichever of
  reply and timeout comes first settles the stream, so partitions, dead
  targets, a target that returns no reply and slow paused targets all end as
  `StreamReply(stream_id, None)` at `now + timeout_s`.  A stream that expects no
  reply is settled when its data is delivered (no `StreamReply` is fed for
  it: nothing is read back).
- events (`Member*`, `User*`, ...) -> appended to the trace and passed to
  listeners (checkers subscribe here).

Then the world re-reads `core.next_deadline()` and, if it moved, pushes one
timer event for that node.  A node has at most one live timer: every reschedule
bumps the node's generation counter and a popped timer whose generation is
stale is skipped (lazy deletion).  A core that keeps asking to be woken at the
same instant without making progress is reported as a livelock.

Node status: NEW (not started), RUNNING, PAUSED (like SIGSTOP: inputs queue up
in arrival order, datagrams up to a socket buffer's worth of bytes, and are
fed on resume, before its overdue timers fire) and
CRASHED (inputs to it are dropped, its timers and stream replies are
discarded).  A restart builds a fresh core with the same name and address;
the node's `epoch` goes up so nothing addressed to the old process reaches the
new one.  Faults are in `node.sim.faults`.

Clocks: each node may run at its own rate (drift) and offset.  A node sees
`local = lbase + (t - tbase) * rate`; every `now` handed to its core is its
local time, and its local deadlines are mapped back to world time (rounded up
so a timer never fires a hair early).

Trace: each event becomes `(time, node index, kind, subject, incarnation)`
(node.sim.trace names the kinds and defines the simulator-level events).
Entries are hashed in chunks into a running sha256 (`trace_digest()`), and
kept in `world.trace` unless `keep_trace=False` (the default above 200 nodes,
where the list would take hundreds of MB).
"""

from __future__ import annotations

import hashlib
import heapq
import itertools
import math
import random
from collections.abc import Callable, Iterable
from typing import Any

from gossip.config import VSN, GossipConfig, preset
from gossip.events import (
    Address,
    OpenStream,
    SendDatagram,
)
from gossip.members import addr_to_bytes
from gossip.messages import NodeStateCode, PushNodeState
from node.core.inputs import Broadcast, Datagram, Join, Leave, StreamIn, StreamReply
from node.sim.driver import datagram_receiver, feeder, gossip_of
from node.sim.gc_policy import fewer_collections
from node.sim.network import Network, NetworkConfig
from node.sim.simnode import CRASHED, NEW, PAUSED, RUNNING, SimError, SimNode, node_address, node_name
from node.sim.trace import (
    KIND,
    MEMBER_KIND,
    NodeCrashed,
    NodeFormed,
    NodePaused,
    NodeRestarted,
    NodeResumed,
    NodeStarted,
    trace_subject,
)

# event kinds (third tuple field)
K_DGRAM = 0  # a: src index, b: bytes
K_TIMER = 1  # a: generation
K_STREAM_IN = 2  # a: src index, b: (src_epoch, stream_id, data, expect_reply)
K_STREAM_REPLY = 3  # a: epoch of the receiving (source) node, b: (stream_id, bytes)
K_STREAM_TIMEOUT = 4  # a: epoch, b: stream_id
K_ACTION = 5  # a: callable, b: args tuple (node is -1)


def default_core_factory(*, name: str, addr: Address, config: GossipConfig,
                         rng: random.Random, now: float, **kwargs: Any) -> Any:
    from gossip.swim import Swim  # imported late: the core may land after the simulator

    return Swim(name=name, addr=addr, config=config, rng=rng, now=now, **kwargs)


class World:
    def __init__(
        self,
        seed: int,
        n_nodes: int,
        config: GossipConfig | None = None,
        *,
        network: NetworkConfig | None = None,
        core_factory: Callable[..., Any] | None = None,
        core_kwargs: dict[str, Any] | None = None,
        keep_trace: bool | None = None,
        socket_buffer_bytes: int = 2 * 1024 * 1024,
        livelock_spins: int = 10_000,
    ) -> None:
        self.seed = seed
        self.n = n_nodes
        self.config = config if config is not None else preset("lan")
        self.rng = random.Random(seed)
        self.network = Network(network or NetworkConfig(), random.Random(self.rng.getrandbits(64)), n_nodes)
        self.network.clock = lambda: self.now
        self.core_factory = core_factory or default_core_factory
        self.core_kwargs = dict(core_kwargs or {})
        self.nodes = [SimNode(i, node_name(i), node_address(i)) for i in range(n_nodes)]
        for nd in self.nodes:
            nd.rng = random.Random(self.rng.getrandbits(64))
        # Keyed by (host, port): hashing the Address dataclass runs Python code
        # (__hash__, __eq__ against the core's own Address objects) per datagram.
        self.by_addr = {(nd.addr.host, nd.addr.port): nd.idx for nd in self.nodes}
        self.by_name = {nd.name: nd.idx for nd in self.nodes}
        self.now = 0.0
        self._heap: list[tuple] = []
        self._seq = itertools.count()
        self.listeners: list[Callable[[float, int, Any], None]] = []
        self.keep_trace = (n_nodes <= 200) if keep_trace is None else keep_trace
        self.trace: list[tuple[float, int, str, str, int]] = []
        self._trace_buf: list[tuple[float, int, str, str, int]] = []
        self._hash = hashlib.sha256()
        # A paused node's UDP receive buffer (memberlist asks for 2 MiB);
        # datagrams beyond it are dropped, like the kernel would.
        self.socket_buffer_bytes = socket_buffer_bytes
        self.livelock_spins = livelock_spins
        self.stats = {
            "events": 0, "datagrams_sent": 0, "datagrams_delivered": 0, "datagrams_lost": 0,
            "datagrams_duplicated": 0, "datagrams_to_down_node": 0, "datagram_bytes": 0,
            "streams_opened": 0, "streams_ok": 0, "streams_failed": 0, "unknown_address": 0,
            "inbox_overflow": 0, "timers": 0,
        }

    # ---- addressing -------------------------------------------------------
    def idx(self, node: int | str) -> int:
        return node if isinstance(node, int) else self.by_name[node]

    def core(self, node: int | str) -> Any:
        return self.nodes[self.idx(node)].core

    def running(self) -> list[SimNode]:
        return [nd for nd in self.nodes if nd.status is RUNNING]

    def live(self) -> list[SimNode]:
        """Nodes whose process exists (running or paused)."""
        return [nd for nd in self.nodes if nd.status is RUNNING or nd.status is PAUSED]

    # ---- scheduling -------------------------------------------------------
    def at(self, t: float, fn: Callable[..., Any], *args: Any) -> None:
        """Run fn(*args) at world time t (>= now)."""
        heapq.heappush(self._heap, (max(t, self.now), next(self._seq), K_ACTION, -1, fn, args))

    def after(self, dt: float, fn: Callable[..., Any], *args: Any) -> None:
        self.at(self.now + dt, fn, *args)

    def _push(self, t: float, kind: int, i: int, a: Any, b: Any) -> None:
        heapq.heappush(self._heap, (t, next(self._seq), kind, i, a, b))

    # ---- node lifecycle (faults.py builds on these) ------------------------
    def _make_core(self, nd: SimNode, **extra: Any) -> None:
        kwargs = dict(self.core_kwargs)
        kwargs.update(nd.core_kwargs)
        kwargs.update(extra)
        nd.core = self.core_factory(
            name=nd.name, addr=nd.addr, config=self.config, rng=nd.rng,
            now=nd.local(self.now), **kwargs,
        )
        nd.feed = feeder(nd.core)
        nd.receive_datagram = datagram_receiver(nd.core)

    def start_node(self, node: int | str, seeds: Iterable[int | str] = ()) -> None:
        """Create node's core now and join it to seeds (indices or names)."""
        nd = self.nodes[self.idx(node)]
        if nd.status is not NEW:
            raise SimError(f"{nd.name} already started")
        self._make_core(nd)
        nd.status = RUNNING
        self._emit(nd.idx, NodeStarted(nd.name))
        self._join(nd, seeds)

    def _join(self, nd: SimNode, seeds: Iterable[int | str]) -> None:
        addrs = [self.nodes[self.idx(s)].addr for s in seeds if self.idx(s) != nd.idx]
        nd.feed(Join(tuple(addrs)), nd.local(self.now))
        self._settle(nd)

    def join(self, node: int | str, seeds: Iterable[int | str]) -> None:
        nd = self.nodes[self.idx(node)]
        self._join(nd, seeds)

    def _kill(self, nd: SimNode) -> None:
        nd.epoch += 1
        nd.gen += 1
        nd.deadline = None
        nd.pending.clear()
        nd.inbox.clear()
        nd.inbox_bytes = 0
        nd.paused_since = None

    def crash(self, node: int | str) -> None:
        nd = self.nodes[self.idx(node)]
        if nd.status is CRASHED or nd.status is NEW:
            return
        if nd.status is PAUSED:
            nd.last_pause = (nd.paused_since, self.now)
        self._kill(nd)
        nd.status = CRASHED
        nd.crashed_at = self.now
        self._emit(nd.idx, NodeCrashed(nd.name))

    def restart(self, node: int | str, seeds: Iterable[int | str] | None = None) -> None:
        """A fresh core with the same name and address (incarnation from 0)."""
        nd = self.nodes[self.idx(node)]
        if nd.status is not CRASHED:
            self.crash(nd.idx)
        self._kill(nd)
        nd.rng = random.Random(self.rng.getrandbits(64))
        self._make_core(nd)
        nd.status = RUNNING
        nd.restarted_at = self.now
        self._emit(nd.idx, NodeRestarted(nd.name))
        if seeds is None:
            seeds = [j for j in range(self.n) if j != nd.idx and self.nodes[j].status is RUNNING][:3]
        self._join(nd, seeds)

    def pause(self, node: int | str) -> None:
        nd = self.nodes[self.idx(node)]
        if nd.status is not RUNNING:
            return
        nd.status = PAUSED
        nd.paused_since = self.now
        self._emit(nd.idx, NodePaused(nd.name))

    def resume(self, node: int | str) -> None:
        nd = self.nodes[self.idx(node)]
        if nd.status is not PAUSED:
            return
        nd.status = RUNNING
        nd.last_pause = (nd.paused_since, self.now)
        nd.paused_since = None
        self._emit(nd.idx, NodeResumed(nd.name))
        inbox, nd.inbox = nd.inbox, []
        nd.inbox_bytes = 0
        for kind, a, b in inbox:
            if nd.status is not RUNNING:  # a listener may crash it mid-way
                break
            self._deliver(nd, kind, a, b, self.now)
        if nd.status is RUNNING:
            # Timers that came due while stopped fire now (late, like SIGCONT).
            nd.deadline = None
            self._settle(nd)

    def set_clock(self, node: int | str, *, rate: float | None = None, offset_s: float = 0.0) -> None:
        """From now on node's clock runs at `rate` (1 + drift) and jumps by offset_s."""
        nd = self.nodes[self.idx(node)]
        local_now = nd.local(self.now)
        old_rate = nd.clock[2] if nd.clock is not None else 1.0
        new_rate = old_rate if rate is None else rate
        if new_rate <= 0:
            raise ValueError("clock rate must be positive")
        if new_rate == 1.0 and offset_s == 0.0 and local_now == self.now:
            nd.clock = None
        else:
            nd.clock = (self.now, local_now + offset_s, new_rate)
        if nd.status is RUNNING:
            nd.deadline = None
            nd.gen += 1
            self._settle(nd)

    # ---- core control helpers ----------------------------------------------
    def feed(self, node: int | str, inp: Any) -> Any:
        """Feed one input (node.core.inputs) to a running node at its local
        now and route its outputs; returns what the core's feed returned."""
        nd = self.nodes[self.idx(node)]
        if nd.status is not RUNNING:
            raise SimError(f"{nd.name} is {nd.status}")
        result = nd.feed(inp, nd.local(self.now))
        self._settle(nd)
        return result

    def wake(self, node: int | str) -> None:
        """Run a running node's timers now, as if one were due, and route
        its outputs: for a driver that changed its core directly (a formed
        start handing it records) and wants the core to act on it."""
        nd = self.nodes[self.idx(node)]
        if nd.status is not RUNNING:
            raise SimError(f"{nd.name} is {nd.status}")
        nd.core.handle_timers(nd.local(self.now))
        self._settle(nd)

    def broadcast(self, node: int | str, data: bytes) -> None:
        self.feed(node, Broadcast(data))

    def leave(self, node: int | str) -> None:
        self.feed(node, Leave())

    # ---- running -----------------------------------------------------------
    def run_until(self, t_end: float) -> None:
        with fewer_collections():  # node.sim.gc_policy says why
            self._run_until(t_end)

    def _run_until(self, t_end: float) -> None:
        heap = self._heap
        pop = heapq.heappop
        nodes = self.nodes
        deliver = self._deliver
        stats = self.stats
        n_events = 0
        try:
            while heap and heap[0][0] <= t_end:
                t, _, kind, i, a, b = pop(heap)
                self.now = t
                n_events += 1
                if kind == K_ACTION:
                    a(*b)
                    continue
                nd = nodes[i]
                status = nd.status
                if status is RUNNING:
                    if kind == K_TIMER:
                        if a != nd.gen:
                            continue
                        nd.deadline = None
                    deliver(nd, kind, a, b, t)
                elif status is PAUSED:
                    if kind == K_TIMER:
                        if a == nd.gen:
                            nd.deadline = None
                    elif kind != K_DGRAM:
                        nd.inbox.append((kind, a, b))
                    elif nd.inbox_bytes + len(b) <= self.socket_buffer_bytes:
                        nd.inbox_bytes += len(b)
                        nd.inbox.append((kind, a, b))
                    else:
                        stats["inbox_overflow"] += 1
                elif kind == K_DGRAM:
                    stats["datagrams_to_down_node"] += 1
        finally:
            stats["events"] += n_events
        self.now = max(self.now, t_end)

    def run_for(self, dt: float) -> None:
        self.run_until(self.now + dt)

    def run_until_converged(self, predicate: Callable[[World], bool], timeout: float,
                            check_every: float = 0.1) -> float | None:
        """Run until predicate(world) holds, checking every `check_every` virtual
        seconds; returns the virtual time it took, or None on timeout."""
        start = self.now
        deadline = start + timeout
        while True:
            if predicate(self):
                return self.now - start
            if self.now >= deadline:
                return None
            self.run_until(min(deadline, self.now + check_every))

    def bootstrap(self, *, stagger_s: float = 0.0, seeds: str | Iterable[int] = "first") -> None:
        """Start every node: node-0 first, then each other node joins.

        seeds="first": everyone joins node-0; "random": each joins one random
        already-started node; or an explicit list of seed indices.  With
        stagger_s > 0, node i starts at now + i * stagger_s."""
        t0 = self.now
        self.start_node(0, ())
        rng = self.rng
        for i in range(1, self.n):
            if seeds == "first":
                s: list[int] = [0]
            elif seeds == "random":
                s = [rng.randrange(i)]
            else:
                s = list(seeds)  # type: ignore[arg-type]
            if stagger_s > 0:
                self.at(t0 + i * stagger_s, self.start_node, i, s)
            else:
                self.start_node(i, s)

    def start_formed(self) -> None:
        """Start every node as a member of a formed cluster: each holds all
        the others alive at incarnation 1, as a join storm would leave them
        (gossip.swim_sync `_start_formed`), with nothing left to gossip;
        one NodeFormed event each, and no member events.
        What a study of failures, partitions or placement at a size needs,
        without the storm's cost: O(N^2 log N) alive messages, ~30 s of CPU
        at 1,000 nodes and hours at 10,000.  Gossip cores (the default
        core factory, or one that passes `formed` on to Swim)."""
        states = []
        for nd in self.nodes:
            if nd.status is not NEW:
                raise SimError(f"{nd.name} already started")
            meta = nd.core_kwargs.get("meta", self.core_kwargs.get("meta", b""))
            states.append(PushNodeState(nd.name, addr_to_bytes(nd.addr.host), nd.addr.port, meta, 1,
                                        NodeStateCode.ALIVE, VSN))
        for nd in self.nodes:
            self._make_core(nd, formed=states)
            nd.status = RUNNING
            self._emit(nd.idx, NodeFormed(nd.name, gossip_of(nd.core).live_count() - 1))
            self._settle(nd)

    # ---- the step ----------------------------------------------------------
    def _deliver(self, nd: SimNode, kind: int, a: Any, b: Any, t: float) -> None:
        core = nd.core
        c = nd.clock
        now = t if c is None else c[1] + (t - c[0]) * c[2]
        if kind == K_DGRAM:
            self.stats["datagrams_delivered"] += 1
            receive = nd.receive_datagram
            if receive is not None:  # a gossip-only core (node.sim.driver)
                receive(b, self.nodes[a].addr, now)
            else:
                nd.feed(Datagram(b, self.nodes[a].addr), now)
        elif kind == K_TIMER:
            self.stats["timers"] += 1
            core.handle_timers(now)
            if t == nd.spin_t:
                nd.spins += 1
                if nd.spins > self.livelock_spins:
                    raise SimError(
                        f"seed={self.seed}: {nd.name} asked to be woken at t={t} "
                        f"{nd.spins} times without time passing (core livelock)")
            else:
                nd.spin_t = t
                nd.spins = 0
        elif kind == K_STREAM_IN:
            src_epoch, stream_id, data, expect_reply = b
            dec = core.stream_decoder(incoming=True)
            msg = dec.feed(data)
            if msg is None:
                msg = dec.feed_eof()
            src = self.nodes[a]
            reply = nd.feed(StreamIn(msg, src.addr), now)
            if expect_reply and reply is not None and src.epoch == src_epoch:
                d = self.network.reply_delay(nd.idx, a)
                if d is not None:
                    self._push(t + d, K_STREAM_REPLY, a, src_epoch, (stream_id, reply))
        elif kind == K_STREAM_REPLY:
            if a != nd.epoch:
                return
            stream_id, data = b
            if nd.pending.pop(stream_id, None) is None:
                return  # already timed out
            self.stats["streams_ok"] += 1
            dec = core.stream_decoder(incoming=False)
            msg = dec.feed(data)
            if msg is None:
                msg = dec.feed_eof()
            nd.feed(StreamReply(stream_id, msg), now)
        elif kind == K_STREAM_TIMEOUT:
            if a != nd.epoch or nd.pending.pop(b, None) is None:
                return
            self.stats["streams_failed"] += 1
            nd.feed(StreamReply(b, None), now)
        self._settle(nd)

    def _settle(self, nd: SimNode) -> None:
        """Drain nd's core, route its outputs, and reschedule its timer."""
        core = nd.core
        outs = core.drain()
        if outs:
            t = self.now
            for o in outs:
                cls = o.__class__
                if cls is SendDatagram:
                    self._send(nd, o, t)
                elif cls is OpenStream:
                    self._open(nd, o, t)
                else:
                    self._emit(nd.idx, o)
        if nd.status is not RUNNING:
            return
        d = core.next_deadline()
        if d is None:
            if nd.deadline is not None:
                nd.gen += 1
                nd.deadline = None
            return
        c = nd.clock
        if c is not None:
            d = self._to_world(nd, d)
        if d < self.now:  # not max(): this runs once per event
            d = self.now
        if d != nd.deadline:
            nd.gen += 1
            nd.deadline = d
            heapq.heappush(self._heap, (d, next(self._seq), K_TIMER, nd.idx, nd.gen, None))

    def _to_world(self, nd: SimNode, d_local: float) -> float:
        tb, lb, rate = nd.clock  # type: ignore[misc]
        t = tb + (d_local - lb) / rate
        # Round up so that the core, reading its local clock at t, sees the
        # deadline reached (otherwise it would be woken a hair early, forever).
        for _ in range(1000):
            if lb + (t - tb) * rate >= d_local:
                return t
            t = math.nextafter(t, math.inf)
        return t + 1e-9

    def _send(self, nd: SimNode, o: SendDatagram, t: float) -> None:
        stats = self.stats
        stats["datagrams_sent"] += 1
        data = o.data
        stats["datagram_bytes"] += len(data)
        addr = o.addr
        dst = self.by_addr.get((addr.host, addr.port))
        if dst is None:
            stats["unknown_address"] += 1
            return
        net = self.network
        d = net.datagram_delay(nd.idx, dst, len(data))
        if d is None:
            stats["datagrams_lost"] += 1
            return
        heapq.heappush(self._heap, (t + d, next(self._seq), K_DGRAM, dst, nd.idx, data))
        if net._dup and net.duplicate():
            d2 = net.datagram_delay(nd.idx, dst, len(data))
            if d2 is not None:
                stats["datagrams_duplicated"] += 1
                heapq.heappush(self._heap, (t + d2, next(self._seq), K_DGRAM, dst, nd.idx, data))

    def _open(self, nd: SimNode, o: OpenStream, t: float) -> None:
        self.stats["streams_opened"] += 1
        sid = o.stream_id
        nd.pending[sid] = (-1, o.expect_reply)
        self._push(t + o.timeout_s, K_STREAM_TIMEOUT, nd.idx, nd.epoch, sid)
        addr = o.addr
        dst = self.by_addr.get((addr.host, addr.port))
        if dst is None:
            self.stats["unknown_address"] += 1
            return
        d = self.network.stream_delay(nd.idx, dst)
        if d is None:
            return
        if not o.expect_reply:
            # Nothing will be read back: the stream is settled once written.
            nd.pending.pop(sid, None)
        self._push(t + d, K_STREAM_IN, dst, nd.idx, (nd.epoch, sid, o.data, o.expect_reply))

    # ---- trace ---------------------------------------------------------------
    def _emit(self, i: int, ev: Any) -> None:
        cls = ev.__class__
        kind = MEMBER_KIND.get(cls)
        if kind is not None:
            m = ev.member
            entry = (self.now, i, kind, m.name, m.incarnation)
        else:
            subject, num = trace_subject(ev)
            entry = (self.now, i, KIND.get(cls) or cls.__name__, subject, num)
        buf = self._trace_buf
        buf.append(entry)
        if len(buf) >= 4096:
            self._flush_trace()
        if self.keep_trace:
            self.trace.append(entry)
        for fn in self.listeners:
            fn(self.now, i, ev)

    def _flush_trace(self) -> None:
        if self._trace_buf:
            self._hash.update(repr(self._trace_buf).encode())
            self._trace_buf.clear()

    def trace_digest(self) -> str:
        """sha256 over every trace entry so far (same seed -> same digest)."""
        self._flush_trace()
        return self._hash.hexdigest()

    def subscribe(self, fn: Callable[[float, int, Any], None]) -> Callable[[float, int, Any], None]:
        self.listeners.append(fn)
        return fn
