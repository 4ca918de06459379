"""Rate-limited logs for dropped packets, failed inputs and refused state.

How this works: every drop is counted by reason in /v1/metrics elsewhere;
`DropLog.report` additionally logs the reasons that mean a configuration
problem (wrong key, missing encryption, wrong label) at WARNING, at most once
per `DROP_LOG_INTERVAL_S` per (packet or stream, reason, host), with the count
of the ones suppressed in between.  Other reasons go to DEBUG.

`DropLog.failure` logs an input whose handling raised (counted by the pump)
at ERROR *with its traceback*, at most once per interval per kind of input:
a bug of ours must show, but a peer that triggers it in a loop must not
flood the log.  `DropLog.refused` logs state the core refused to merge
(node.core.admission) at WARNING, once per interval per (kind, reason).
"""

from __future__ import annotations

import logging
import math
import time

from gossip.events import Address

log = logging.getLogger("shoal.agent")

DROP_LOG_INTERVAL_S = 10.0
DROP_LOG_KEYS_MAX = 1024

_DROP_EXPLAINED = {
    "decrypt": "no installed key decrypts it (different encryption key?)",
    "unencrypted": "it is not encrypted and this agent requires encryption",
    "label": "its cluster label does not match ours",
}


class DropLog:
    def __init__(self, interval_s: float = DROP_LOG_INTERVAL_S) -> None:
        self.interval_s = interval_s
        self._last: dict[tuple[str, str, str], tuple[float, int]] = {}

    def _due(self, key: tuple[str, str, str]) -> int | None:
        """None if a report for key was logged within the interval (this one
        is suppressed and counted); else how many were suppressed since."""
        now = time.monotonic()
        last, suppressed = self._last.get(key, (-math.inf, 0))
        if now - last < self.interval_s:
            self._last[key] = (last, suppressed + 1)
            return None
        if len(self._last) >= DROP_LOG_KEYS_MAX:
            self._last.clear()
        self._last[key] = (now, 0)
        return suppressed

    def failure(self, kind: str, what: str) -> None:
        """Call inside `except`: the input being handled raised."""
        suppressed = self._due(("failure", kind, ""))
        if suppressed is None:
            return
        more = f" ({suppressed} more since last report)" if suppressed else ""
        log.error("handling %s failed; dropped it and went on%s", what, more, exc_info=True)

    def refused(self, kind: str, name: str, origin: str, reason: str) -> None:
        suppressed = self._due(("refused", kind, reason))
        if suppressed is None:
            return
        more = f" ({suppressed} more since last report)" if suppressed else ""
        log.warning("refused %s %r from %s: %s%s", kind, name, origin or "the state dir", reason, more)

    def report(self, reason: str, src: Address | None, what: str = "packet") -> None:
        why = _DROP_EXPLAINED.get(reason)
        host = src.host if src is not None else "?"
        if why is None:
            log.debug("%s from %s dropped: %s", what, src or "?", reason)
            return
        suppressed = self._due((what, reason, host))
        if suppressed is None:
            return
        more = f" ({suppressed} more since last report)" if suppressed else ""
        log.warning("%s from %s dropped: %s%s", what, src or "?", why, more)
