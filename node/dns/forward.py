"""Queries for other zones, passed to the resolvers the operator configured.

How this works: `Forwarder.forward(query, limit, tcp)` asks each resolver of
`dns_forward` in turn (dnspython's async query on trio), each with
`forward_timeout_s`, and returns the first answer rendered for the client:
its id restored and cut to the client's limit with TC set if it does not fit.
The query goes out under a fresh random id from a fresh socket (a fresh
source port), so an off-path forger has to guess both.  A client that came
over TCP gets the resolver's answer over TCP when the UDP one was truncated.
At most `forward_max_pending` forwards are in flight; a query beyond that,
or one no resolver answered, gets SERVFAIL at once: never a made-up answer,
never an unbounded queue.
"""

from __future__ import annotations

import logging
import secrets

import dns.asyncbackend
import dns.asyncquery
import dns.message
import dns.rcode
from node.dns.answer import render
from node.dns.settings import DnsSettings

log = logging.getLogger("shoal.dns")


class Forwarder:
    def __init__(self, settings: DnsSettings) -> None:
        self.settings = settings
        self.pending = 0
        self._backend = dns.asyncbackend.get_backend("trio")

    def try_acquire(self) -> bool:
        """Reserve a forward slot (release with `release`); False when full."""
        if self.pending >= self.settings.forward_max_pending:
            return False
        self.pending += 1
        return True

    async def forward(self, query: dns.message.Message, limit: int, tcp: bool) -> tuple[bytes, str]:
        """The reply for the client and the outcome counted ("forwarded" or
        "servfail")."""
        client_id = query.id
        query.id = secrets.randbits(16)
        try:
            for host, port in self.settings.forward:
                try:
                    if tcp:
                        response, _ = await dns.asyncquery.udp_with_fallback(
                            query, host, timeout=self.settings.forward_timeout_s, port=port,
                            ignore_unexpected=True, backend=self._backend)
                    else:
                        response = await dns.asyncquery.udp(
                            query, host, timeout=self.settings.forward_timeout_s, port=port,
                            ignore_unexpected=True, backend=self._backend)
                except Exception as e:  # timeout, refused, malformed answer: try the next one
                    log.debug("dns forward to %s:%d failed: %r", host, port, e)
                    continue
                response.id = client_id
                try:
                    wire, _ = render(response, limit)
                except Exception as e:  # an answer dnspython parsed but cannot write back
                    log.debug("dns forward answer from %s:%d not renderable: %r", host, port, e)
                    continue
                return wire, "forwarded"
            query.id = client_id
            return servfail(query, self.settings, limit), "servfail"
        finally:
            query.id = client_id

    def release(self) -> None:
        self.pending -= 1


def servfail(query: dns.message.Message, settings: DnsSettings, limit: int) -> bytes:
    response = dns.message.make_response(query, our_payload=settings.udp_payload_max_bytes, pad=0)
    response.set_rcode(dns.rcode.SERVFAIL)
    wire, _ = render(response, limit)
    return wire
