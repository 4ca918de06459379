"""What every client command shares: the HTTP client of an agent's API, the
--address/--token options, failing with a message, and plain-text tables.

How this works: `Client.request` sends one JSON request to the agent found by
`--address` (or SHOAL_ADDR) with the bearer token of `--token` (or
SHOAL_TOKEN); it returns the decoded answer, and on an unreachable agent or an
error answer prints the reason (with the agent's per-field problems) and exits
1 through `fail`.  httpx is imported when a request is made, so `shoal --help`
stays fast.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any

import click

# The agent's default API address (node.agent.config.DEFAULT_API), spelled out
# so that the client commands do not import the agent's configuration, which
# pulls in the core (tests/node/test_config.py checks the two agree).
DEFAULT_ADDRESS = "http://127.0.0.1:7980"
CLIENT_TIMEOUT_S = 30.0


class Client:
    def __init__(self, address: str, token: str | None) -> None:
        self.address = address.rstrip("/")
        self.headers = {"Authorization": f"Bearer {token}"} if token else {}

    def request(self, method: str, path: str, body: Any = None) -> Any:
        import httpx

        url = self.address + path
        try:
            resp = httpx.request(method, url, json=body, headers=self.headers, timeout=CLIENT_TIMEOUT_S)
        except httpx.HTTPError as e:
            fail(f"cannot reach shoal agent at {self.address}: {e or type(e).__name__}")
        try:
            data = resp.json()
        except ValueError:
            data = None
        if resp.status_code >= 400:
            msg = data.get("error") if isinstance(data, dict) else None
            extra = ""
            if isinstance(data, dict) and data.get("errors"):
                extra = "".join(f"\n  {k}: {v}" for k, v in data["errors"].items())
            if isinstance(data, dict) and isinstance(data.get("problems"), list):
                extra += "".join(f"\n  {format_problem(p)}" for p in data["problems"] if isinstance(p, dict))
            fail(f"{msg or resp.reason_phrase} (HTTP {resp.status_code}){extra}")
        return data


def format_problem(p: dict[str, Any]) -> str:
    path, message = p.get("path") or "", p.get("message", "")
    return f"{path}: {message}" if path else str(message)


def fail(message: str) -> None:
    click.echo(f"error: {message}", err=True)
    sys.exit(1)


def client_options(f):
    f = click.option(
        "--token", envvar="SHOAL_TOKEN", help="API token (env SHOAL_TOKEN)."
    )(f)
    f = click.option(
        "--address",
        envvar="SHOAL_ADDR",
        default=DEFAULT_ADDRESS,
        show_default=True,
        help="URL of the agent's HTTP API (env SHOAL_ADDR).",
    )(f)
    return f


def table(rows: Sequence[tuple[str, ...]]) -> str:
    """Left-aligned columns, two spaces apart; the last column is not padded."""
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
    lines = ["  ".join([*(c.ljust(w) for c, w in zip(r, widths)), r[-1]]).rstrip() for r in rows]
    return "\n".join(lines) + "\n"
