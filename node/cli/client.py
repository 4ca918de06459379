"""What every client command shares: the HTTP client of an agent's API, the
--address/--token options, failing with a message, and plain-text tables.

How this works: `Client.request` sends one JSON request to the agent found by
`--address` (or SHOAL_ADDR) with the bearer token of `--token` (or
SHOAL_TOKEN); it returns the decoded answer, and on an unreachable agent or an
error answer prints the reason (with the agent's per-field problems) and exits
1 through `fail`.  An https:// agent is verified against the cluster CA of
`--ca FILE` (or SHOAL_CA; `shoal tls ca`), else against the system's CAs; a
certificate that does not verify is refused, saying so.  Every request says
who sends it (`X-Shoal-Client`: SHOAL_CLIENT, else user@host), which job
history records as who wrote a version.  httpx is imported
when a request is made, so `shoal --help` stays fast.
"""

from __future__ import annotations

import ssl
import sys
from collections.abc import Sequence
from typing import Any

import click

# The agent's default API address (node.agent.config.DEFAULT_API), spelled out
# so that the client commands do not import the agent's configuration, which
# pulls in the core (tests/node/test_config.py checks the two agree).
DEFAULT_ADDRESS = "http://127.0.0.1:7980"
CLIENT_TIMEOUT_S = 30.0


CA_META = "shoal.ca"  # where --ca leaves its value in click's context
# Who wrote a job version, as job history shows it (node.core.history):
# SHOAL_CLIENT, else user@host.  Informational; the API token authenticates.
CLIENT_HEADER = "X-Shoal-Client"


def who_am_i() -> str:
    import getpass
    import os
    import socket

    if os.environ.get("SHOAL_CLIENT"):
        return os.environ["SHOAL_CLIENT"]
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "?"
    return f"{user}@{socket.gethostname()}"


class Client:
    def __init__(self, address: str, token: str | None, ca: str | None = None) -> None:
        self.address = address.rstrip("/")
        self.headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.headers[CLIENT_HEADER] = who_am_i()
        ctx = click.get_current_context(silent=True)
        self.ca = ca if ca is not None else ctx.meta.get(CA_META) if ctx is not None else None
        # What httpx verifies the agent's certificate with (`verify=`).
        self.verify: ssl.SSLContext | bool = True
        if self.ca is not None:
            try:
                self.verify = ssl.create_default_context(cafile=self.ca)
            except (OSError, ssl.SSLError) as e:
                fail(f"--ca {self.ca}: cannot load it as a PEM CA certificate: {e}")

    def unreachable(self, e: Exception) -> str:
        """Why the agent could not be reached, for `fail`."""
        cause: BaseException | None = e
        while cause is not None and not isinstance(cause, ssl.SSLCertVerificationError):
            cause = cause.__cause__ or cause.__context__
        if isinstance(cause, ssl.SSLCertVerificationError):
            against = f"the CA in {self.ca}" if self.ca else "the system's CAs (give the cluster CA with --ca)"
            return (f"refusing to talk to the agent at {self.address}: its certificate does not verify "
                    f"against {against}: {cause.verify_message or cause.reason}")
        return f"cannot reach shoal agent at {self.address}: {e or type(e).__name__}"

    def try_request(self, method: str, path: str, body: Any = None) -> Any:
        """As `request`, but None instead of failing (for extras an older agent may lack)."""
        import httpx

        try:
            resp = httpx.request(method, self.address + path, json=body, headers=self.headers,
                                 timeout=CLIENT_TIMEOUT_S, verify=self.verify)
            return resp.json() if resp.status_code < 400 else None
        except (httpx.HTTPError, ValueError):
            return None

    def request(self, method: str, path: str, body: Any = None, timeout_s: float = CLIENT_TIMEOUT_S) -> Any:
        import httpx

        url = self.address + path
        try:
            resp = httpx.request(method, url, json=body, headers=self.headers, timeout=timeout_s,
                                 verify=self.verify)
        except httpx.HTTPError as e:
            fail(self.unreachable(e))
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


def placed_slots(client: Client, job: str) -> list[tuple[int, str]]:
    """(index, node) of the job's placed slots (`shoal logs`, `shoal exec --node`)."""
    from urllib.parse import quote

    status = client.request("GET", f"/v1/jobs/{quote(job, safe='')}")
    return sorted((s["index"], s["node"]) for s in status.get("slots") or ()
                  if s.get("state") == "placed" and isinstance(s.get("index"), int) and s.get("node"))


def format_problem(p: dict[str, Any]) -> str:
    path, message = p.get("path") or "", p.get("message", "")
    return f"{path}: {message}" if path else str(message)


def fail(message: str) -> None:
    click.echo(f"error: {message}", err=True)
    sys.exit(1)


def _remember_ca(ctx: click.Context, _param: click.Parameter, value: str | None) -> None:
    if value:
        ctx.meta[CA_META] = value


def client_options(f):
    f = click.option(
        "--ca", envvar="SHOAL_CA", expose_value=False, callback=_remember_ca,
        type=click.Path(dir_okay=False),
        help="Cluster CA (PEM) to verify an https:// agent with (env SHOAL_CA).",
    )(f)
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
