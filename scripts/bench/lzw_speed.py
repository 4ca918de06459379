#!/usr/bin/env python3
"""CPU of LZW (gossip/lzw.py) on push/pulls of 60, 200 and 1,000 members.

    python scripts/bench/lzw_speed.py [--members 60 200 1000] [--runs 7]

memberlist compresses every push/pull with LZW (Go's compress/lzw, LSB,
8-bit literals) when compression is on, as it is by default: a node
compresses the state it sends and decompresses the one it receives, at
every join, post-join sync and periodic exchange, so a cluster started
all at once spends a part of its CPU here (docs/benchmarks.md).  For each
size, a simulated cluster of that many nodes (node.sim.World, `lan`)
forms for 10 virtual s; node 0's push/pull body, as it would send it, is
then compressed and decompressed `--runs` times.  Printed: the body's
size, the compressed size, and the median time of each per call and per
KB (time.process_time).  Run it from each checkout to compare two trees.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from gossip import lzw  # noqa: E402
from gossip.config import preset  # noqa: E402
from node.sim import World  # noqa: E402

FORM_S = 10.0


def push_pull_body(members: int) -> bytes:
    world = World(1, members, preset("lan").replace(enable_compression=False), keep_trace=False)
    world.bootstrap(stagger_s=0.0)
    world.run_until(FORM_S)
    # The body Swim seals into each push/pull it sends (before compression).
    body: bytes = world.nodes[0].core._local_push_pull(join=False)
    return body


def median_s(fn: Callable[..., bytes], arg: tuple[object, ...], runs: int) -> float:
    start = time.process_time()
    fn(*arg)  # (warm-up, and a first estimate)
    # Calls per run: about 0.1 s of them, well above the clock's noise.
    calls = max(5, int(0.1 / max(time.process_time() - start, 1e-6)))
    times = []
    for _ in range(runs):
        start = time.process_time()
        for _ in range(calls):
            fn(*arg)
        times.append((time.process_time() - start) / calls)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--members", type=int, nargs="+", default=[60, 200, 1000])
    ap.add_argument("--runs", type=int, default=7)
    args = ap.parse_args()
    print(f"LZW on push/pull bodies, medians of {args.runs} runs (CPU)")
    for members in args.members:
        body = push_pull_body(members)
        packed = lzw.compress(body)
        assert lzw.decompress(packed, len(body)) == body
        c = median_s(lzw.compress, (body,), args.runs)
        d = median_s(lzw.decompress, (packed, len(body)), args.runs)
        kb = len(body) / 1024
        print(f"  {members:5d} members: {len(body):7d} B -> {len(packed):7d} B; "
              f"compress {c * 1e3:7.2f} ms ({c * 1e6 / kb:5.1f} us/KB), "
              f"decompress {d * 1e3:7.2f} ms ({d * 1e6 / kb:5.1f} us/KB)")


if __name__ == "__main__":
    main()
