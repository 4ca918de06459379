"""How often Python's cyclic GC runs while a simulated world runs.

How this works: CPython collects its young generation every 700 container
allocations, and each collection also walks what survived the last ones.  A
simulation allocates millions of small objects (messages, member records,
events) that mostly live on, so at 600 gossip nodes those collections took
about 15 % of the run's CPU.  `fewer_collections()` raises the young
generation's threshold to YOUNG_ALLOCATIONS for the duration of a `with`
block (the world's `run_until`) and puts the previous thresholds back after.
Nothing in the simulation depends on when garbage goes away, so traces are
the same; cyclic garbage is still collected, only in larger batches.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager

YOUNG_ALLOCATIONS = 100_000


@contextmanager
def fewer_collections() -> Iterator[None]:
    thresholds = gc.get_threshold()
    if thresholds[0] < YOUNG_ALLOCATIONS:
        gc.set_threshold(YOUNG_ALLOCATIONS, *thresholds[1:])
    try:
        yield
    finally:
        gc.set_threshold(*thresholds)
