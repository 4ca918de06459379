"""What the agent needs from a container runtime (`Runtime`).

node/runtime/fake.py's docstring describes the contract in words (which
members are required, which optional, who calls them); this is its typed form.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any, Protocol

import trio

from auction.claims import Claim
from auction.spec import JobSpec


class Runtime(Protocol):
    """What the agent needs from a container runtime.

    `start` / `stop` are non-blocking: they record what should run and return.
    `run()` does the work; the agent starts it in its nursery
    (`await nursery.start(runtime.run)`).
    """

    def start(self, claim: Claim, spec: JobSpec, replaces: tuple[str, ...] = (),
              adopt_only: bool = False) -> None: ...

    def stop(self, slot: str, reason: str) -> None: ...

    def health(self) -> tuple[bool, str]: ...

    def image_present(self, image: str) -> bool: ...

    def images(self) -> frozenset[str] | None: ...

    def slot_states(self) -> dict[str, tuple[str, str]]: ...

    async def ps(self) -> list[dict[str, Any]]: ...

    def logs(self, slot: str, follow: bool = False, tail: int | str = "all") -> AsyncIterator[bytes]: ...

    async def open_logs(self, slot: str, follow: bool = False, tail: int | str = "all", *,
                        since_s: float | None = None, timestamps: bool = False) -> AsyncIterator[bytes]: ...

    async def run(self, *, task_status=trio.TASK_STATUS_IGNORED) -> None: ...
