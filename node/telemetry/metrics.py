"""Prometheus counters and gauges of one agent.

How this works: counters are bumped by the pump and the transport as things
happen; the member gauges and the health score are set from a snapshot of the
core just before each scrape (`observe_members`).  `render()` returns the
Prometheus text format served at `GET /v1/metrics`.  The series are plain
`Series` objects (a float per label set, with prometheus_client's `inc`,
`set` and `labels`); prometheus_client itself, about 18 ms of CPU and 2.6 MiB
at import, is loaded only at the first scrape: `registry` is then a
`CollectorRegistry` of this agent's own (not the process-global one, so
several agents can live in one test process) whose collector reads the
series.

Names: shoal_packets_{in,out}_total, shoal_bytes_{in,out}_total,
shoal_packets_dropped_total{reason}, shoal_streams_{in,out}_total{outcome},
shoal_streams_refused_total{reason} (inbound streams closed by a bound:
source_cap, global_cap, first_byte_timeout, evicted; see
node/agent/transport.py), shoal_inbound_streams{phase} (pending | active),
shoal_key_messages_total{outcome} (cluster key-rotation messages: applied,
unchanged, stale, future, refused; see node/agent/keys.py),
shoal_member_events_total{event}, shoal_members{state}, shoal_health_score,
shoal_input_failures_total{kind} (an input whose handling raised: dropped,
logged with its traceback, and the pump went on; kind: datagram, stream,
stream_reply, request, posted, timers, dispatch; see node/agent/pump.py),
shoal_state_refused_total{reason} (replicated state the core refused to
merge: not_a_member, stamp_ahead, counter_absurd, ballot_jump,
ballot_overflow, status_malformed, status_name_mismatch; see
node/core/admission.py), shoal_dns_queries_total{transport,outcome} (DNS
queries by transport, udp | tcp, and what was sent back: answer, nodata,
nxdomain, refused, forwarded, servfail, formerr, notimp, badvers, dropped;
`truncated` counts the answers cut with TC set) and
shoal_dns_bad_input_total{reason} (DNS queries dropped or refused as bad
input or over a bound; reasons in node/dns/answer.py and node/dns/server.py).
"""

from __future__ import annotations

from collections import Counter as _Counter
from collections.abc import Iterator
from typing import Any

from gossip.events import MemberState
from node.core.admission import REFUSAL_REASONS

# The kinds of input the pump counts failures of (node/agent/pump.py, dispatch.py).
INPUT_FAILURE_KINDS = ("datagram", "stream", "stream_reply", "request", "posted", "timers", "dispatch")


def __getattr__(name: str) -> Any:
    # CONTENT_TYPE, prometheus_client's, without importing it before it is needed.
    if name == "CONTENT_TYPE":
        from prometheus_client.exposition import CONTENT_TYPE_LATEST

        return CONTENT_TYPE_LATEST
    raise AttributeError(name)


class _Value:
    """One series' number (read as `._value.get()`, like prometheus_client's)."""

    __slots__ = ("value",)

    def __init__(self) -> None:
        self.value = 0.0

    def get(self) -> float:
        return self.value


class Series:
    """A counter or gauge: `inc`, `set` and `labels(**values)` as in
    prometheus_client, rendered by it at scrape time (`_Collector`)."""

    def __init__(self, kind: str, name: str, documentation: str, labelnames: tuple[str, ...] = ()) -> None:
        self.kind = kind
        self.name = name
        self.documentation = documentation
        self.labelnames = labelnames
        self.children: dict[tuple[str, ...], Series] = {}
        self._value = _Value()

    def labels(self, **values: object) -> Series:
        if set(values) != set(self.labelnames):
            raise ValueError(f"{self.name}: labels {sorted(values)}, expected {list(self.labelnames)}")
        key = tuple(str(values[n]) for n in self.labelnames)
        child = self.children.get(key)
        if child is None:
            child = self.children[key] = Series(self.kind, self.name, self.documentation)
        return child

    def inc(self, amount: float = 1.0) -> None:
        if self.kind == "counter" and amount < 0:
            raise ValueError("counters can only be incremented by non-negative amounts")
        self._value.value += amount

    def set(self, value: float) -> None:
        if self.kind != "gauge":
            raise AttributeError(f"{self.name} is a counter: it has no set()")
        self._value.value = float(value)

    def samples(self) -> Iterator[tuple[list[str], float]]:
        if self.labelnames:
            for key, child in self.children.items():
                yield list(key), child._value.value
        else:
            yield [], self._value.value


class _Collector:
    """prometheus_client's side: the families of an agent's series, at scrape time."""

    def __init__(self, series: list[Series]) -> None:
        self.series = series

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        for s in self.series:
            cls = CounterMetricFamily if s.kind == "counter" else GaugeMetricFamily
            family = cls(s.name, s.documentation, labels=list(s.labelnames))
            for labels, value in s.samples():
                family.add_metric(labels, value)
            yield family


class AgentMetrics:
    def __init__(self) -> None:
        self.series: list[Series] = []
        self._registry: Any = None
        self.packets_in = self.counter("shoal_packets_in", "UDP datagrams received")
        self.packets_out = self.counter("shoal_packets_out", "UDP datagrams sent")
        self.bytes_in = self.counter("shoal_bytes_in", "Bytes received (UDP and TCP)")
        self.bytes_out = self.counter("shoal_bytes_out", "Bytes sent (UDP and TCP)")
        self.dropped = self.counter("shoal_packets_dropped", "Datagrams and streams dropped, by reason", "reason")
        self.streams_in = self.counter("shoal_streams_in", "Inbound TCP streams, by outcome", "outcome")
        self.streams_out = self.counter("shoal_streams_out", "Dialed TCP streams, by outcome", "outcome")
        self.streams_refused = self.counter(
            "shoal_streams_refused", "Inbound TCP streams closed by a bound, by reason", "reason"
        )
        self.inbound_streams_open = self.gauge(
            "shoal_inbound_streams", "Inbound TCP streams open: pending (no message type yet) or active", "phase"
        )
        self.key_messages = self.counter(
            "shoal_key_messages", "Cluster key-rotation messages received, by outcome", "outcome"
        )
        self.member_events = self.counter("shoal_member_events", "Membership events seen, by kind", "event")
        self.input_failures = self.counter(
            "shoal_input_failures", "Inputs dropped because handling them raised, by kind", "kind"
        )
        self.state_refused = self.counter(
            "shoal_state_refused", "Replicated state refused instead of merged, by reason", "reason"
        )
        # Every labelled series of the trust boundary shows from the first scrape, at 0.
        for kind in INPUT_FAILURE_KINDS:
            self.input_failures.labels(kind=kind)
        for reason in REFUSAL_REASONS:
            self.state_refused.labels(reason=reason)
        self.dns_queries = self.counter(
            "shoal_dns_queries", "DNS queries, by transport and outcome", "transport", "outcome"
        )
        self.dns_bad_input = self.counter(
            "shoal_dns_bad_input", "DNS queries dropped or refused as bad input or over a bound, by reason",
            "reason",
        )
        self.members = self.gauge("shoal_members", "Known members, by state", "state")
        self.health = self.gauge("shoal_health_score", "Lifeguard local health score (0 is healthy)")
        # A plain mirror of the drop counter, for logs and the API without parsing text.
        self.drop_counts: _Counter[str] = _Counter()

    def counter(self, name: str, documentation: str, *labelnames: str) -> Series:
        """A new counter of this agent (exposed as NAME_total)."""
        return self._add(Series("counter", name, documentation, labelnames))

    def gauge(self, name: str, documentation: str, *labelnames: str) -> Series:
        return self._add(Series("gauge", name, documentation, labelnames))

    def _add(self, series: Series) -> Series:
        if any(s.name == series.name for s in self.series):
            raise ValueError(f"duplicate metric {series.name}")
        self.series.append(series)
        return series

    @property
    def registry(self) -> Any:
        """This agent's prometheus_client CollectorRegistry (built at the first scrape)."""
        if self._registry is None:
            # (It imports ssl, for TLS helpers a scrape never calls: an agent
            # that is scraped maps OpenSSL from its first scrape on.  Stand-ins
            # for ssl during this import raced the DNS server's first import of
            # dnspython in a worker thread, which then took them and crashed.)
            from prometheus_client import CollectorRegistry

            self._registry = CollectorRegistry(auto_describe=True)
            self._registry.register(_Collector(self.series))
        return self._registry

    def drop(self, reason: str) -> None:
        self.dropped.labels(reason=reason).inc()
        self.drop_counts[reason] += 1

    def input_failed(self, kind: str) -> None:
        self.input_failures.labels(kind=kind).inc()

    def refuse_state(self, reason: str) -> None:
        self.state_refused.labels(reason=reason).inc()

    def refuse_stream(self, reason: str) -> None:
        """An inbound stream closed by a bound; also counted as a drop."""
        self.streams_refused.labels(reason=reason).inc()
        self.drop(f"stream_{reason}")

    def dns_query(self, transport: str, outcome: str) -> None:
        self.dns_queries.labels(transport=transport, outcome=outcome).inc()

    def dns_bad(self, reason: str) -> None:
        self.dns_bad_input.labels(reason=reason).inc()

    def observe_members(self, states: list[MemberState], health_score: int) -> None:
        counts = _Counter(s.value for s in states)
        for st in MemberState:
            self.members.labels(state=st.value).set(counts.get(st.value, 0))
        self.health.set(health_score)

    def render(self) -> bytes:
        from prometheus_client import generate_latest

        return generate_latest(self.registry)
