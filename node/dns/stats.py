"""What the DNS server counts: queries by transport and outcome, bad input
and drops by reason.  Plain counters (for tests and the benchmark) that also
call the agent's metrics (node.telemetry.metrics: shoal_dns_queries_total,
shoal_dns_bad_input_total) when given."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable


class DnsStats:
    def __init__(self, on_query: Callable[[str, str], None] | None = None,
                 on_bad: Callable[[str], None] | None = None) -> None:
        self.queries: Counter[tuple[str, str]] = Counter()   # (transport, outcome)
        self.bad: Counter[str] = Counter()                   # reason
        self._on_query = on_query
        self._on_bad = on_bad

    def query(self, transport: str, outcome: str) -> None:
        self.queries[(transport, outcome)] += 1
        if self._on_query is not None:
            self._on_query(transport, outcome)

    def bad_input(self, reason: str) -> None:
        self.bad[reason] += 1
        if self._on_bad is not None:
            self._on_bad(reason)
