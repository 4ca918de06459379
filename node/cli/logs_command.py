"""`shoal logs JOB [SLOT]`: a job's output, from whichever nodes run it.

How this works: the agent asked forwards each request to the agent of the
node holding the slot (node.api.routes_jobs).  With SLOT, that replica's
output is written as it comes, byte for byte.  Without it, every placed
replica's is, each line prefixed with its slot and node (`web/1@node-2 | `,
as `docker service logs` does; with --timestamps the engine's time follows): one after another, or with --follow all at
once, a thread per replica (at most MAX_FOLLOWED) writing whole lines under
one lock, so lines of different replicas never mix.  A replica that cannot
be read (no container yet, its node unreachable) is a warning; the command
fails only if none could be.  --since (`10m`, `1h30m`, or a time such as
`2026-12-07T22:00:00Z`) is sent as seconds before now, so the holder's
engine counts back on its own clock.
"""

from __future__ import annotations

import re
import sys
import threading
import time
from datetime import datetime, timezone
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

import click

from node.cli.client import CLIENT_TIMEOUT_S, Client, client_options, fail, placed_slots

MAX_FOLLOWED = 64
MAX_PARTIAL_LINE_BYTES = 64 * 1024      # a longer line is written in pieces


_SPAN_RE = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)", re.ASCII)
_SPAN_S = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


class ReadError(Exception):
    pass


def since_seconds(text: str, now: float | None = None) -> float:
    """Seconds before now from `--since`: a span (`90s`, `10m`, `1h30m`, `2d`)
    or a time (`2026-12-07T22:00:00Z`, `2026-12-07 22:00`; no zone: local).
    ValueError saying what is expected."""
    text = text.strip()
    if text and _SPAN_RE.sub("", text) == "":
        return sum(float(n) * _SPAN_S[u] for n, u in _SPAN_RE.findall(text))
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"--since: {text[:40]!r} is neither a span like 10m or 1h30m nor a time like "
                         "2026-12-07T22:00:00Z") from None
    if when.tzinfo is None:
        when = when.astimezone()            # the local zone, as `docker logs --since` reads it
    now = time.time() if now is None else now
    return max(0.0, now - when.astimezone(timezone.utc).timestamp())


def stream_slot(client: Client, job: str, slot: int, follow: bool, query: dict[str, str],
                write: Callable[[bytes], None]) -> None:
    """Write slot's output as it comes; ReadError saying why it cannot be read.
    `query`: tail, since_s, timestamps (the API's parameters)."""
    import httpx

    url = f"{client.address}/v1/jobs/{quote(job, safe='')}/logs"
    params = {"slot": str(slot), "follow": "1" if follow else "0", **query}
    timeout = httpx.Timeout(CLIENT_TIMEOUT_S, read=None if follow else CLIENT_TIMEOUT_S)
    try:
        with httpx.stream("GET", url, params=params, headers=client.headers, timeout=timeout,
                          verify=client.verify) as resp:
            if resp.status_code >= 400:
                resp.read()
                try:
                    msg = resp.json().get("error")
                except (ValueError, AttributeError):
                    msg = None
                raise ReadError(f"{msg or resp.reason_phrase} (HTTP {resp.status_code})")
            for chunk in resp.iter_raw():
                write(chunk)
    except httpx.HTTPError as e:
        raise ReadError(client.unreachable(e)) from None


class Prefixed:
    """Whole lines of one replica, prefixed, written under a shared lock."""

    def __init__(self, prefix: str, out: Any, lock: threading.Lock) -> None:
        self.prefix = prefix.encode()
        self.out = out
        self.lock = lock
        self.partial = b""

    def write(self, chunk: bytes) -> None:
        *lines, self.partial = (self.partial + chunk).split(b"\n")
        if len(self.partial) > MAX_PARTIAL_LINE_BYTES:
            lines.append(self.partial)
            self.partial = b""
        if lines:
            with self.lock:
                self.out.write(b"".join(self.prefix + line + b"\n" for line in lines))
                self.out.flush()

    def close(self) -> None:
        if self.partial:
            self.write(b"\n")


def all_slots(client: Client, job: str, follow: bool, query: dict[str, str], node: str | None = None) -> None:
    slots = [(i, n) for i, n in placed_slots(client, job) if node is None or n == node]
    if not slots:
        where = f" on {node}" if node else ""
        fail(f"no replica of {job} is placed{where} (see `shoal job status {job}`)")
    if len(slots) > MAX_FOLLOWED:
        click.echo(f"warning: {job} has {len(slots)} placed replicas; showing the first {MAX_FOLLOWED} "
                   "(name a SLOT for another)", err=True)
        slots = slots[:MAX_FOLLOWED]
    width = max(len(f"{job}/{i}@{node}") for i, node in slots)
    lock, out, failed = threading.Lock(), sys.stdout.buffer, []

    def one(index: int, node: str) -> None:
        lines = Prefixed(f"{f'{job}/{index}@{node}':<{width}} | ", out, lock)
        try:
            stream_slot(client, job, index, follow, query, lines.write)
            lines.close()
        except ReadError as e:
            failed.append(index)
            with lock:
                click.echo(f"warning: {job}/{index}: {e}", err=True)
        except BrokenPipeError:     # `shoal logs web -f | head`: the reader went
            return

    if not follow:
        for index, node in slots:
            one(index, node)
    else:
        threads = [threading.Thread(target=one, args=slot, daemon=True) for slot in slots]
        for t in threads:
            t.start()
        for t in threads:
            while t.is_alive():
                t.join(0.5)     # (in steps: Ctrl-C reaches the main thread)
    if len(failed) == len(slots):
        sys.exit(1)


@click.command()
@click.argument("job_name", metavar="JOB")
@click.argument("slot", type=click.IntRange(min=0), required=False)
@click.option("-f", "--follow", is_flag=True, help="Keep streaming new output.")
@click.option("--tail", default="all", show_default=True, help="Only the last N lines ('all' for everything).")
@click.option("--since", help="Only output since then: a span back from now (10m, 1h30m, 2d) or a time "
              "(2026-12-07T22:00:00Z).")
@click.option("-t", "--timestamps", is_flag=True, help="Prefix each line with the time the engine received it.")
@click.option("--node", help="Only the replicas on this node (a global job's copy there, say).")
@client_options
def logs(job_name: str, slot: int | None, follow: bool, tail: str, since: str | None, timestamps: bool,
         node: str | None, address: str, token: str | None) -> None:
    """Print the output of JOB's replicas, from whichever nodes run them:
    every placed replica's (or, with --node, those on that node), each line
    prefixed with SLOT@NODE; or, given SLOT (an index), that replica's
    alone, as written."""
    client = Client(address, token)
    query = {"tail": tail}
    if since is not None:
        try:
            query["since_s"] = f"{since_seconds(since):.3f}"
        except ValueError as e:
            fail(str(e))
    if timestamps:
        query["timestamps"] = "1"
    try:
        if slot is None:
            all_slots(client, job_name, follow, query, node)
            return
        if node is not None:
            fail("give SLOT or --node, not both")
        out = sys.stdout.buffer

        def write(chunk: bytes) -> None:
            out.write(chunk)
            out.flush()

        try:
            stream_slot(client, job_name, slot, follow, query, write)
        except ReadError as e:
            fail(str(e))
    except KeyboardInterrupt:
        sys.exit(130)
    except BrokenPipeError:  # `shoal logs web | head`
        sys.stderr.close()
        sys.exit(0)
