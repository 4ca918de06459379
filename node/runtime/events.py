"""The engine's events, fed to the reconcile loop: container events for this
node (`EventPump`), and image events (`ImageWatch`: an image pulled, loaded,
tagged or removed on this engine, by us or by hand, makes the runtime list
its images again at once, so its periodic image listing can be rare).

How this works: `docker events` (filtered to our node label) blocks, so it
runs in its own thread that reconnects with backoff (0.5 s doubling to 5 s)
and asks for a full pass after every (re)connect, since events may have been
missed meanwhile.  Events cross into trio through a bounded channel; when it
is full the event is dropped and a full pass is asked for instead.  On
shutdown, trio closes the thread's HTTP stream, which ends it.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

import trio

from node.runtime.containers import node_filter
from node.runtime.engine import Engine, close_quietly, explain

log = logging.getLogger("shoal.runtime")

EVENT_QUEUE_DEPTH = 256
RECONNECT_FIRST_S = 0.5
RECONNECT_MAX_S = 5.0


class EventPump:
    def __init__(self, engine: Engine, node: str, kick: Callable[[], None],
                 filters: dict[str, Any] | None = None) -> None:
        self.engine, self.node, self.kick = engine, node, kick
        self.filters = filters if filters is not None else {"type": "container", **node_filter(node)}
        self.send, self.recv = trio.open_memory_channel(EVENT_QUEUE_DEPTH)
        self.dropped = 0
        self._stream: Any = None
        self._thread: threading.Thread | None = None
        self._closing = threading.Event()

    def start(self, token: trio.lowlevel.TrioToken) -> None:
        def deliver(ev):
            try:
                self.send.send_nowait(ev)
            except trio.WouldBlock:
                self.dropped += 1
                self.kick()
            except (trio.ClosedResourceError, trio.BrokenResourceError):
                pass

        def pump():
            backoff = RECONNECT_FIRST_S
            filters = self.filters
            while not self._closing.is_set():
                try:
                    stream = self.engine.stream_api.events(decode=True, filters=filters)
                    self._stream = stream
                    if self._closing.is_set():
                        stream.close()
                        return
                    backoff = RECONNECT_FIRST_S
                    token.run_sync_soon(self.kick)  # we may have missed events
                    for ev in stream:
                        token.run_sync_soon(deliver, ev)
                except trio.RunFinishedError:
                    return
                except Exception as e:  # noqa: BLE001 -- reconnect
                    if self._closing.is_set():
                        return
                    log.debug("docker events stream broke: %s", explain(e))
                finally:
                    self._stream = None
                if self._closing.wait(backoff):
                    return
                backoff = min(backoff * 2, RECONNECT_MAX_S)

        t = threading.Thread(target=pump, name=f"shoal-docker-events-{self.node}", daemon=True)
        self._thread = t
        t.start()

    def close(self) -> None:
        self._closing.set()
        stream = self._stream
        if stream is not None:
            close_quietly(stream)


class ImageWatch:
    """Calls `stale` after every image event (and after every reconnect, as
    events may have been missed).  Image events carry no node label: the
    engine is this node's own."""

    def __init__(self, engine: Engine, node: str, stale: Callable[[], None]) -> None:
        self.stale = stale
        self.pump = EventPump(engine, f"{node}-images", stale, filters={"type": "image"})

    async def run(self) -> None:
        self.pump.start(trio.lowlevel.current_trio_token())
        try:
            async for _ in self.pump.recv:
                self.stale()
        finally:
            self.pump.close()
