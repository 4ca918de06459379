"""Streamed responses (events, logs, image exports), run in a trio nursery.

How this works: a streamed response sends its body in one task while
another waits for the client to go away, and the first to finish ends the
other (a watcher that disconnects frees its place at once, even while no
record flows: node.telemetry.eventlog bounds them).  starlette's
StreamingResponse does that, under hypercorn (ASGI spec 2.1), with anyio's
task group, and the first one an agent serves imports anyio's trio backend:
about 23 ms of CPU, once per agent (and 60 agents started at once on 2
cores, each watched through /v1/events, paid it while the cores were
saturated).  The agent is a trio program, so a trio nursery does the same
here; what is streamed, headers and background tasks are starlette's.  An
exception from either task comes out as itself, as starlette makes it (not
in an exception group).
"""

from __future__ import annotations

import trio
from starlette.responses import StreamingResponse
from starlette.types import Receive, Scope, Send


class TrioStreamingResponse(StreamingResponse):
    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        spec_version = tuple(map(int, scope.get("asgi", {}).get("spec_version", "2.0").split(".")))
        if scope["type"] != "http" or spec_version >= (2, 4):
            # (No task pair there: starlette's own path, without anyio.)
            await super().__call__(scope, receive, send)
            return
        try:
            async with trio.open_nursery() as nursery:

                async def body() -> None:
                    await self.stream_response(send)
                    nursery.cancel_scope.cancel()

                nursery.start_soon(body)
                await self.listen_for_disconnect(receive)
                nursery.cancel_scope.cancel()
        except BaseExceptionGroup as group:
            if len(group.exceptions) != 1:
                raise
            exc = group.exceptions[0]
            raise exc from exc.__cause__ or (None if exc.__suppress_context__ else exc.__context__)
        if self.background is not None:
            await self.background()
