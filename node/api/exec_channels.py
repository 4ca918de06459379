"""The messages of an interactive exec's WebSocket (`shoal exec -i/-t`).

How this works: every message is binary, its first byte the channel, the
rest its payload: Kubernetes' channel numbering for exec, so it reads
familiar.  The client sends stdin (0), a terminal size (4: JSON
{"cols", "rows"}) and the end of stdin (255, no payload); the server sends
stdout (1), stderr (2, only without a TTY: with one the terminal has a
single stream) and, last, the status (3: JSON {"exit_code"} or {"error"}),
then closes.  A payload is at most MAX_PAYLOAD_BYTES; a longer message
closes the connection (the client splits its stdin).  Light on purpose:
the CLI imports it without the agent's HTTP stack.
"""

from __future__ import annotations

import json
from typing import Any

STDIN, STDOUT, STDERR, STATUS, RESIZE, CLOSE_STDIN = 0, 1, 2, 3, 4, 255
MAX_PAYLOAD_BYTES = 32 * 1024
MAX_MESSAGE_BYTES = MAX_PAYLOAD_BYTES + 1
MAX_TERMINAL_SIDE = 10_000      # columns or rows


def message(channel: int, payload: bytes = b"") -> bytes:
    return bytes((channel,)) + payload


def json_message(channel: int, value: dict[str, Any]) -> bytes:
    return message(channel, json.dumps(value).encode())


def terminal_size(payload: bytes) -> tuple[int, int] | None:
    """(cols, rows) of a resize message, None if it is not one."""
    try:
        value = json.loads(payload)
        cols, rows = value["cols"], value["rows"]
    except (ValueError, TypeError, KeyError):
        return None
    ok = all(isinstance(v, int) and 0 < v <= MAX_TERMINAL_SIDE for v in (cols, rows))
    return (cols, rows) if ok else None
