"""Rate-limited WARNINGs for dropped packets that point at misconfiguration.

How this works: every drop is counted by reason in /v1/metrics elsewhere;
`DropLog.report` additionally logs the reasons that mean a configuration
problem (wrong key, missing encryption, wrong label) at WARNING, at most once
per `DROP_LOG_INTERVAL_S` per (packet or stream, reason, host), with the count
of the ones suppressed in between.  Other reasons go to DEBUG.
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

    def report(self, reason: str, src: Address | None, what: str = "packet") -> None:
        why = _DROP_EXPLAINED.get(reason)
        host = src.host if src is not None else "?"
        if why is None:
            log.debug("%s from %s dropped: %s", what, src or "?", reason)
            return
        key = (what, reason, host)
        now = time.monotonic()
        last, suppressed = self._last.get(key, (-math.inf, 0))
        if now - last < self.interval_s:
            self._last[key] = (last, suppressed + 1)
            return
        if len(self._last) >= DROP_LOG_KEYS_MAX:
            self._last.clear()
        self._last[key] = (now, 0)
        more = f" ({suppressed} more since last report)" if suppressed else ""
        log.warning("%s from %s dropped: %s%s", what, src or "?", why, more)
