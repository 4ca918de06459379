"""Prometheus counters and gauges of one agent.

How this works: each `AgentMetrics` owns its own `CollectorRegistry` (not the
process-global one), so several agents can live in one test process.  Counters
are bumped by the pump and the transport as things happen; the member gauges
and the health score are set from a snapshot of the core just before each
scrape (`observe_members`).  `render()` returns the Prometheus text format
served at `GET /v1/metrics`.

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

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from gossip.events import MemberState
from node.core.admission import REFUSAL_REASONS

CONTENT_TYPE = CONTENT_TYPE_LATEST
# The kinds of input the pump counts failures of (node/agent/pump.py, dispatch.py).
INPUT_FAILURE_KINDS = ("datagram", "stream", "stream_reply", "request", "posted", "timers", "dispatch")

# The *_created timestamp series only add noise to a scrape of one agent.
disable_created_metrics()


class AgentMetrics:
    def __init__(self) -> None:
        r = self.registry = CollectorRegistry(auto_describe=True)
        self.packets_in = Counter("shoal_packets_in", "UDP datagrams received", registry=r)
        self.packets_out = Counter("shoal_packets_out", "UDP datagrams sent", registry=r)
        self.bytes_in = Counter("shoal_bytes_in", "Bytes received (UDP and TCP)", registry=r)
        self.bytes_out = Counter("shoal_bytes_out", "Bytes sent (UDP and TCP)", registry=r)
        self.dropped = Counter(
            "shoal_packets_dropped", "Datagrams and streams dropped, by reason", ["reason"], registry=r
        )
        self.streams_in = Counter("shoal_streams_in", "Inbound TCP streams, by outcome", ["outcome"], registry=r)
        self.streams_out = Counter("shoal_streams_out", "Dialed TCP streams, by outcome", ["outcome"], registry=r)
        self.streams_refused = Counter(
            "shoal_streams_refused", "Inbound TCP streams closed by a bound, by reason", ["reason"], registry=r
        )
        self.inbound_streams_open = Gauge(
            "shoal_inbound_streams", "Inbound TCP streams open: pending (no message type yet) or active",
            ["phase"], registry=r,
        )
        self.key_messages = Counter(
            "shoal_key_messages", "Cluster key-rotation messages received, by outcome", ["outcome"], registry=r
        )
        self.member_events = Counter(
            "shoal_member_events", "Membership events seen, by kind", ["event"], registry=r
        )
        self.input_failures = Counter(
            "shoal_input_failures", "Inputs dropped because handling them raised, by kind", ["kind"], registry=r
        )
        self.state_refused = Counter(
            "shoal_state_refused", "Replicated state refused instead of merged, by reason", ["reason"], registry=r
        )
        # Every labelled series of the trust boundary shows from the first scrape, at 0.
        for kind in INPUT_FAILURE_KINDS:
            self.input_failures.labels(kind=kind)
        for reason in REFUSAL_REASONS:
            self.state_refused.labels(reason=reason)
        self.dns_queries = Counter(
            "shoal_dns_queries", "DNS queries, by transport and outcome", ["transport", "outcome"], registry=r
        )
        self.dns_bad_input = Counter(
            "shoal_dns_bad_input", "DNS queries dropped or refused as bad input or over a bound, by reason",
            ["reason"], registry=r,
        )
        self.members = Gauge("shoal_members", "Known members, by state", ["state"], registry=r)
        self.health = Gauge("shoal_health_score", "Lifeguard local health score (0 is healthy)", registry=r)
        # A plain mirror of the drop counter, for logs and the API without parsing text.
        self.drop_counts: _Counter[str] = _Counter()

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
        return generate_latest(self.registry)
