#!/usr/bin/env python3
"""CPU per record of an agent's event stream (`GET /v1/events`).

    python scripts/bench/events_stream.py [--records 1000] [--runs 7]

One agent (in this process: fake runtime, `local` profile, ports of ours on
127.0.0.1) publishes `--records` records into its event log, the way its
pump publishes member events, and an HTTP client on the same trio loop reads
them back over the API: (a) as the stream's history (a client connecting
after a burst, as `shoal events` and the benchmarks' watchers do), and (b)
live, a burst published in one go while the stream is open (what a push/pull
that taught us many members does).  Printed: the process's CPU
(time.process_time: agent and client together) per record, the median of
`--runs` runs.  Run it from each checkout to compare two trees.

How this works: the agent is node.agent.agent.Agent run in a nursery, as the
in-process tests run it; the records are small member_joined-like dicts; the
client is httpx (the project's test dependency), reading ndjson lines.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import httpx  # noqa: E402
import trio  # noqa: E402

from node.agent.agent import Agent  # noqa: E402
from node.agent.config import load_config  # noqa: E402
from node.telemetry.eventlog import DEFAULT_CAPACITY as LOG_RECORDS  # noqa: E402


def publish(agent: Agent, count: int, start: int) -> None:
    for i in range(start, start + count):
        agent.events.publish("member_joined", member={"name": f"node-{i}", "addr": "10.0.0.1:7946",
                                                      "status": "alive", "incarnation": 1})


async def read_lines(response: httpx.Response, want: int) -> int:
    got = 0
    async for line in response.aiter_lines():
        if line:
            got += 1
            if got >= want:
                break
    return got


async def measure(records: int, runs: int, state_dir: Path) -> dict[str, float]:
    history: list[float] = []
    live: list[float] = []
    async with trio.open_nursery() as nursery:
        cfg = load_config(None, {"name": "bench", "bind": "127.0.0.1:0", "api": "127.0.0.1:0",
                                 "profile": "local", "state_dir": str(state_dir)})
        agent = Agent(cfg)
        await nursery.start(lambda task_status: agent.run(handle_signals=False, task_status=task_status))
        async with httpx.AsyncClient(base_url=agent.api_url, timeout=30.0) as client:
            for run in range(runs):
                publish(agent, records, run * 2 * records)
                c0 = time.process_time()
                async with client.stream("GET", "/v1/events?history=1") as r:
                    # The log keeps its last LOG_RECORDS records.
                    got = await read_lines(r, min(LOG_RECORDS, run * 2 * records + records))
                    history.append((time.process_time() - c0) / got * 1e6)
                async with client.stream("GET", "/v1/events?history=0") as r:
                    c0 = time.process_time()
                    publish(agent, records, run * 2 * records + records)
                    got = await read_lines(r, records)
                    live.append((time.process_time() - c0) / got * 1e6)
        nursery.cancel_scope.cancel()
    return {"history_us": statistics.median(history), "live_us": statistics.median(live)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--records", type=int, default=1000, help="records per burst (the log keeps 1,024)")
    ap.add_argument("--runs", type=int, default=7)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="shoal-events-") as tmp:
        res = trio.run(measure, args.records, args.runs, Path(tmp))
    print(f"events_stream: {args.records} records per burst, medians of {args.runs} runs; "
          f"CPU of agent and client together, per record:")
    print(f"  history (connecting after the burst): {res['history_us']:.1f} us")
    print(f"  live (a burst while connected):       {res['live_us']:.1f} us")
    return 0


if __name__ == "__main__":
    sys.exit(main())
