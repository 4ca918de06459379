"""Running a command in a replica's container: `shoal exec` on the node that runs it.

How this works: the engine makes an exec instance in the running container
(stdout and stderr, no TTY, no stdin: one command, its output, its exit
code, as `docker exec` without `-it`); a thread of the engine's stream lane
(the one log streams use, so a long command holds no worker the runtime's
own calls need, and does not look like a stalled engine) reads its output
into memory, at most `max_output_bytes` (the rest is not kept: `truncated`),
until the command ends or `timeout_s` passes.  Then the engine is asked for
its exit code.  A command still running at the timeout is left running in
the container (Docker cannot stop an exec): `timed_out` says so, and its
exit code is None.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

import trio

from node.runtime.engine import Engine, RuntimeProblem, close_quietly, explain

MAX_EXEC_OUTPUT_BYTES = 1024 * 1024


@dataclass(frozen=True, slots=True)
class ExecResult:
    exit_code: int | None       # None: still running at the timeout
    output: bytes               # stdout and stderr (two pipes: lines of one may pass lines of the other)
    truncated: bool             # more output than max_output_bytes came
    timed_out: bool

    def to_json(self) -> dict[str, Any]:
        return {"exit_code": self.exit_code, "output": self.output.decode("utf-8", "replace"),
                "truncated": self.truncated, "timed_out": self.timed_out}


async def run_in_container(engine: Engine, container_id: str, slot: str, command: list[str],
                           timeout_s: float, max_output_bytes: int = MAX_EXEC_OUTPUT_BYTES) -> ExecResult:
    made = await engine.call("exec_create", engine.api.exec_create, container_id, command,
                             stdout=True, stderr=True, stdin=False, tty=False)
    exec_id = made["Id"]
    limiter = engine.stream_limiter
    borrower = object()
    with trio.fail_after(engine.cfg.call_timeout_s):
        await limiter.acquire_on_behalf_of(borrower)
    box: dict[str, Any] = {"out": bytearray(), "truncated": False}
    stop = threading.Event()
    done = trio.Event()
    token = trio.lowlevel.current_trio_token()

    def pump() -> None:
        try:
            stream = engine.stream_api.exec_start(exec_id, stream=True)
            box["s"] = stream
            for chunk in stream:
                if stop.is_set():
                    break
                room = max_output_bytes - len(box["out"])
                box["out"] += chunk[:room]
                if len(chunk) > room:
                    box["truncated"] = True     # read on (and drop) until it ends: its exit code comes then
        except Exception as e:  # noqa: BLE001 -- reported below, from the trio side
            box["error"] = e
        finally:
            try:
                token.run_sync_soon(done.set)
                token.run_sync_soon(limiter.release_on_behalf_of, borrower)
            except trio.RunFinishedError:
                pass

    threading.Thread(target=pump, name=f"shoal-exec-{slot}", daemon=True).start()
    timed_out = False
    with trio.move_on_after(timeout_s) as scope:
        await done.wait()
    if scope.cancelled_caught:
        timed_out = True
        stop.set()
        if (s := box.get("s")) is not None:
            close_quietly(s)
    elif "error" in box:
        raise RuntimeProblem(f"exec in {slot}: {explain(box['error'])}")
    state = await engine.call("exec_inspect", engine.api.exec_inspect, exec_id)
    running = bool(state.get("Running"))
    return ExecResult(None if running else state.get("ExitCode"), bytes(box["out"]), box["truncated"],
                      timed_out and running)
