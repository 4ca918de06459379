"""Recent membership events for humans and scripts: a ring buffer plus subscribers.

How this works: the pump calls `publish(record)` for every event the core
emits (a record is a small JSON-able dict with a sequence number and a wall
clock timestamp).  The last `capacity` records are kept in a deque.  Each
subscriber (one per `GET /v1/events` stream) gets the receive end of a
bounded trio memory channel; `publish` never blocks: a subscriber whose
channel is full is disconnected (its stream ends) rather than slowing the pump
down.  A subscriber leaves by closing its receive channel.
"""

from __future__ import annotations

import itertools
import time
from collections import deque
from typing import Any

import trio

DEFAULT_CAPACITY = 1024
SUBSCRIBER_BUFFER = 256
MAX_SUBSCRIBERS = 64


class TooManySubscribers(Exception):
    pass


class EventLog:
    def __init__(self, capacity: int = DEFAULT_CAPACITY) -> None:
        self._ring: deque[dict[str, Any]] = deque(maxlen=capacity)
        self._seq = itertools.count(1)
        self._subscribers: set[trio.MemorySendChannel] = set()

    def publish(self, kind: str, **fields: Any) -> dict[str, Any]:
        record = {"seq": next(self._seq), "time": time.time(), "event": kind, **fields}
        self._ring.append(record)
        for ch in list(self._subscribers):
            try:
                ch.send_nowait(record)
            except (trio.WouldBlock, trio.BrokenResourceError, trio.ClosedResourceError):
                self._subscribers.discard(ch)
                ch.close()
        return record

    def recent(self) -> list[dict[str, Any]]:
        return list(self._ring)

    def subscribe(self, history: bool = True) -> trio.MemoryReceiveChannel:
        """A receive channel of records; with `history`, the buffered ones first.
        Close it to unsubscribe."""
        self._prune()
        if len(self._subscribers) >= MAX_SUBSCRIBERS:
            raise TooManySubscribers(f"more than {MAX_SUBSCRIBERS} event subscribers")
        backlog = self.recent() if history else []
        send, recv = trio.open_memory_channel(SUBSCRIBER_BUFFER + len(backlog))
        for rec in backlog:
            send.send_nowait(rec)
        self._subscribers.add(send)
        return recv

    def _prune(self) -> None:
        for ch in list(self._subscribers):
            if ch.statistics().open_receive_channels == 0:
                self._subscribers.discard(ch)
                ch.close()

    @property
    def subscriber_count(self) -> int:
        self._prune()
        return len(self._subscribers)
