"""A container's output as an async stream of chunks.

How this works: the SDK's log stream blocks, so each reader gets its own
thread (at most `stream_concurrency` of them, through the engine's stream
limiter) that pushes chunks into a bounded trio channel.  The thread gives
its limiter token back when it ends, which may be after the reader stopped
iterating: closing the HTTP stream is what ends it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import AsyncIterator
from typing import Any

import trio

from node.runtime.engine import Engine, RuntimeProblem, close_quietly, explain

LOG_QUEUE_DEPTH = 64


async def stream_logs(engine: Engine, container_id: str, slot: str, follow: bool,
                      tail: int | str, since_s: float | None = None,
                      timestamps: bool = False) -> AsyncIterator[bytes]:
    """Chunks of stdout and stderr of `container_id`; with `follow`, until the
    container stops or the caller stops iterating.  `since_s`: only what came
    in the last that many seconds; `timestamps`: each line prefixed with the
    time the engine received it (RFC 3339)."""
    since = None if since_s is None else max(0.0, time.time() - since_s)
    send, recv = trio.open_memory_channel(LOG_QUEUE_DEPTH)
    token = trio.lowlevel.current_trio_token()
    limiter = engine.stream_limiter
    borrower = object()
    with trio.fail_after(engine.cfg.call_timeout_s):
        await limiter.acquire_on_behalf_of(borrower)
    stream_box: dict[str, Any] = {}
    stop = threading.Event()

    def pump():
        try:
            stream = engine.stream_api.logs(container_id, stream=True, follow=follow, stdout=True,
                                            stderr=True, tail=tail, since=since, timestamps=timestamps)
            stream_box["s"] = stream
            if stop.is_set():
                close_quietly(stream)
                return
            for chunk in stream:
                if stop.is_set():
                    break
                trio.from_thread.run(send.send, chunk, trio_token=token)
        except (trio.RunFinishedError, trio.BrokenResourceError, trio.ClosedResourceError,
                trio.Cancelled):
            pass
        except Exception as e:  # noqa: BLE001
            stream_box["error"] = e
        finally:
            try:
                token.run_sync_soon(send.close)
                token.run_sync_soon(limiter.release_on_behalf_of, borrower)
            except trio.RunFinishedError:
                pass

    t = threading.Thread(target=pump, name=f"shoal-logs-{slot}", daemon=True)
    t.start()
    try:
        async with recv:
            async for chunk in recv:
                yield chunk
        if "error" in stream_box and not follow:
            raise RuntimeProblem(f"docker logs {slot}: {explain(stream_box['error'])}")
    finally:
        stop.set()
        s = stream_box.get("s")
        if s is not None:
            close_quietly(s)
