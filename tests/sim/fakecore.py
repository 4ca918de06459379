"""A tiny stand-in core that tests the simulator's own plumbing.

How this works: `EchoCore` has the driver-facing shape of `gossip.swim.Swim`
(inputs with `now`, `drain()`, `next_deadline()`), but its protocol is
trivial, so a test can say exactly what the world must have done: every
`tick_s` of *local* time it sends b"tick:<name>:<k>" to each seed it joined;
every datagram it receives is logged as (local now, source, data); streams
starting with b"ask" are answered with b"re:" + data.  It emits a
`UserMessage` per datagram so the trace has something in it.
"""

from __future__ import annotations

from gossip.events import OpenStream, SendDatagram, UserMessage


class _Decoder:
    def __init__(self) -> None:
        self.buf = b""

    def feed(self, data: bytes):
        self.buf += data
        return None  # whole message only at EOF, to exercise feed_eof()

    def feed_eof(self):
        return self.buf


class EchoCore:
    tick_s = 1.0

    def __init__(self, *, name, addr, config, rng, now, **kwargs) -> None:
        self.name = name
        self.addr = addr
        self.rng = rng
        self.peers = []
        self.out = []
        self.received = []  # (now, src, data)
        self.stream_log = []  # (now, stream_id, reply)
        self.incoming = []  # (now, src, msg)
        self.timer_log = []  # local times at which handle_timers ran
        self.k = 0
        self.next_tick = now + self.tick_s
        self.stream_ids = 0

    # inputs
    def join(self, seeds, now):
        self.peers = list(seeds)

    def receive_datagram(self, data, src, now):
        self.received.append((now, src, data))
        self.out.append(UserMessage(origin=str(src), data=data))

    def stream_decoder(self, incoming):
        return _Decoder()

    def receive_stream(self, msg, src, now):
        self.incoming.append((now, src, msg))
        if msg.startswith(b"ask"):
            return b"re:" + msg
        return None

    def stream_reply(self, stream_id, reply, now):
        self.stream_log.append((now, stream_id, reply))

    def handle_timers(self, now):
        self.timer_log.append(now)
        while self.next_tick <= now:
            self.k += 1
            for p in self.peers:
                self.out.append(SendDatagram(p, f"tick:{self.name}:{self.k}".encode()))
            self.next_tick += self.tick_s

    def next_deadline(self):
        return self.next_tick

    def drain(self):
        out, self.out = self.out, []
        return out

    # controls used by tests
    def open(self, addr, data, expect_reply, timeout_s, now):
        self.stream_ids += 1
        self.out.append(OpenStream(self.stream_ids, addr, data, expect_reply, timeout_s, None))
        return self.stream_ids

    def send(self, addr, data, now):
        self.out.append(SendDatagram(addr, data))

    def members(self):
        return []

    def member(self, name):
        return None
