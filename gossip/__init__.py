"""shoal's membership layer: memberlist-compatible SWIM + Lifeguard, sans-I/O.

Public API of the core (`gossip.swim.Swim`; all inputs take `now`, seconds on
the driver's monotonic clock; nothing here does I/O or reads a clock):

    swim = Swim(name=..., addr=Address(host, port), config=preset("lan"),
                rng=random.Random(seed), now=now, meta=b"", keyring=None, label=b"",
                formed=())   # formed: PushNodeStates to hold from the start, as after a
                             # join storm (simulations; gossip.swim_sync._start_formed)
    # inputs
    swim.receive_datagram(data: bytes, src: Address, now)
    swim.stream_decoder(incoming: bool) -> gossip.packet.StreamDecoder
        # incoming=True for an accepted TCP connection (may start with a label header),
        # incoming=False for reading the reply on a connection we dialed.
        # Its feed()/feed_eof() raise DecodeError for bytes we refuse (on an
        # accepted connection, a message or encrypted frame over
        # swim.inbound_stream_max_bytes() among them); the driver counts it
        # by its `reason` and closes.
    swim.receive_stream(msg: Message, src: Address, now) -> bytes | None   # reply to write, if any
    swim.stream_reply(stream_id: int, reply: Message | None, now)           # outcome of an OpenStream
    swim.handle_timers(now); swim.next_deadline() -> float | None
    # controls
    swim.join(seeds: list[Address], now); swim.leave(now)
    swim.set_meta(meta: bytes, now); swim.set_payload(data: bytes, now)
    swim.broadcast(data: bytes, now)
    swim.send_user_message(node: str, data: bytes, reliable: bool, now)
    swim.set_user_state(data: bytes)
    # reads
    swim.members() -> list[MemberInfo]; swim.member(name) -> MemberInfo | None
    swim.payloads() -> dict[str, tuple[int, bytes]]; swim.health_score() -> int
    swim.stats() -> dict[str, int]
    # outputs, in order, since the last drain
    swim.drain() -> list[Output]   # gossip.events: SendDatagram, OpenStream, Member*, ...

Nothing from the network makes an input raise: what the core refuses is
counted in stats() as dropped_<reason> and reported as a PacketDropped
output.  The controls raise ValueError only for local misuse (meta, payload,
broadcast or user message over its size limit).  Every bound the network
meets, with its reason, is in gossip.limits.
"""
