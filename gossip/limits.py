"""Every bound the gossip layer puts on what the network can make it hold or do.

How this works: each number that limits input from the network, or memory
that input can make us keep, is defined here, once, with the reason for its
value.  The modules that enforce a bound import it from here; input over a
bound is refused (a `DecodeError` at decode, or a counted drop in the core),
never truncated or wrapped.  Two rules hold throughout:

* every integer decoded off the wire is range-checked at decode against the
  Go type memberlist gives it (uint32 incarnations and sequence numbers,
  uint16 ports, Go ints for counts and lengths bounded below), and
  shoal's own numbers (payload versions, broadcast ids) against int64;
* a number we bump past (our incarnation when refuting, our payload's
  version when someone holds a newer one) is only bumped when the result
  stays in range, so nothing we store can become unencodable.

What a sender can still do within these bounds (with the cluster key, or
with encryption off, anyone): accuse us at the top incarnation, which we
cannot refute (memberlist would wrap around and be ignored just the same);
gossip a forged payload for another member at a high version, which then
wins over that member's own until it is reaped; and add made-up members
with alive messages up to MEMBERS_MAX, which then keeps real newcomers out
until the made-up ones fail their probes and are reaped.  None of it
crashes a member or makes its state unencodable.
"""

from __future__ import annotations

# ---- integers on the wire (memberlist's Go types) ---------------------------
U16_MAX = 0xFFFF  # ports
U32_MAX = 0xFFFF_FFFF  # incarnations, sequence numbers
INCARNATION_MAX = U32_MAX
# shoal's payload versions and broadcast ids are ours, not memberlist's: held
# to int64 so any msgpack or JSON stack reads them exactly.
PAYLOAD_VERSION_MAX = (1 << 63) - 1
BROADCAST_ID_MAX = (1 << 63) - 1
# We jump past a payload of ours that someone holds at a higher version (from
# before a restart).  A claimed version that would leave us fewer than this
# many updates is refused instead: one forged datagram must not use up our
# version space (2^32 updates is over a century at one a second).
PAYLOAD_VERSION_HEADROOM = 1 << 32

# ---- sizes memberlist defines -----------------------------------------------
META_MAX_BYTES = 512  # memberlist MetaMaxSize
LABEL_MAX_BYTES = 255  # one length byte in the label header
UDP_PACKET_BUDGET_BYTES = 1400  # memberlist UDPBufferSize (LAN default)
COMPOUND_MAX_PARTS = 255  # one count byte in the compound header
MAX_PUSH_STATE_BYTES = 20 * 1024 * 1024  # memberlist maxPushStateBytes
MAX_PUSH_STATE_NODES = 1_048_576  # memberlist maxPushStateNodes
MAX_USER_MSG_BYTES = 20 * 1024 * 1024  # memberlist: a reliable user message
# A stream's decompressed message: memberlist's maxDecompressedBytes, 2 x the
# largest push/pull state.
MAX_DECOMPRESSED_BYTES = 2 * MAX_PUSH_STATE_BYTES
# Node names: memberlist has no bound; a name must fit an alive message in
# one packet beside its meta, so 512 characters leaves room.
NODE_NAME_MAX_CHARS = 512
# Vsn is 6 bytes from every memberlist and Serf version; more is garbage we
# would otherwise store and pass on in every push/pull.
VSN_MAX_BYTES = 16

# ---- UDP packets ----------------------------------------------------------------
# All decompression in one datagram together.  memberlist compresses a packet
# it built to fit one datagram (UDPBufferSize, at most the 65,507 bytes UDP
# carries), so honest content never exceeds 64 KiB; the stream cap (40 MiB)
# let a 31 KB datagram inflate to 40 MiB.
PACKET_DECOMPRESSED_MAX_BYTES = 64 * 1024
# Compound/compress wrappers may nest; Go does not bound this, we do so a
# crafted packet cannot recurse us into a RecursionError.
MAX_NESTING_DEPTH = 4

# ---- TCP streams ----------------------------------------------------------------
# An encrypted stream is one AES-GCM frame, authenticated only once all of
# it is read (a plain one never is), so what an accepted connection may send
# is bounded by what a member of our cluster can honestly send us: the
# largest reliable user message shoal's node layer sends, or a push/pull
# state, which is about as big as ours.  The node layer's store-sync batches
# are 1 MiB by an estimate of 128 bytes per entry plus its job spec (at most
# 64 KiB); INBOUND_STREAM_MIN_BYTES leaves room for entries four times as big
# as estimated (a claim with long names is ~300 bytes).  MEMBER_SYNC_MAX_BYTES
# per member we know is an upper bound on
# one member's share of a push/pull (its node state, at most ~2.7 KB with a
# 512-character name and 512 bytes of meta, plus its payload entry, at most
# ~1.1 KB), so a peer knowing up to ~3x as many typical members as we do
# still gets through.  Decompressed output may be twice that, as memberlist
# allows.  It was 20 MiB buffered before authentication and 40 MiB
# decompressed, per connection.  Streams we dial read the reply with
# memberlist's caps: we chose that peer, and a joiner's seed knows far more
# members than the joiner.
INBOUND_STREAM_MIN_BYTES = 4 * 1024 * 1024
MEMBER_SYNC_MAX_BYTES = 4096

# ---- the core's own state ------------------------------------------------------
# Members we keep (tombstones included, until reaped).  Made-up names in
# alive messages or a push/pull grew the table without bound (memberlist's
# too), and with it our push/pull state, which peers refuse past 20 MiB:
# 16,384 honest node states (~150 bytes with shoal's tags) plus PAYLOADS_MAX
# payloads stay well under it.  A new name beyond it is refused until
# tombstones are reaped.
MEMBERS_MAX = 16_384
PAYLOAD_MAX_BYTES = 1024  # one per-node payload must fit a single packet
USER_BROADCAST_MAX_BYTES = 1024
# Payloads are kept only for members (tombstones included, reaped with
# them), and for at most this many: 8,192 full payloads make ~9 MiB of
# push/pull state, leaving the rest of MAX_PUSH_STATE_BYTES to the node
# states; 25,000 fake names made a 25.4 MB state that no peer accepts.
PAYLOADS_MAX = 8192
# Gossip may bring a member's payload a moment before its alive; that many
# payloads of names we do not know yet are kept, for that long.  A member's
# alive follows within a few gossip rounds, and a push/pull (every 30 s on
# LAN) carries both anyway.
STRANGER_PAYLOADS_MAX = 256
STRANGER_PAYLOAD_KEEP_S = 60.0
# Alives sent in one answer to a peer that names members it lacks
# (Swim.tell_members): a few datagrams at most.
TELL_MEMBERS_MAX = 64
# Members a push/pull named as dead that we did not know: remembered (their
# address) so that a later suspicion of a newer incarnation can add them
# (gossip.swim_membership, _learn_suspect).  A live member's alive or a
# push/pull follows within seconds; the memory is only a shortcut.
HEARD_DEAD_MAX = 256
HEARD_DEAD_KEEP_S = 60.0
# De-duplication memories (oldest forgotten first).
SEEN_BROADCASTS_MAX = 16_384
RECENT_USER_MAX = 4096
# A gossiped user message (a payload or a broadcast) carries at most 1 KiB
# of data, a node name (at most 2 KiB as UTF-8) and a few bytes of framing.
# Bigger ones are refused before they are remembered by their bytes (4,096
# of them; a reliable user message may be 20 MiB).
USER_GOSSIP_MAX_BYTES = 4096
# Probe and relay bookkeeping that a flood of messages could grow.
ACK_HANDLERS_MAX = 65_536
# Alive messages known to be old news, remembered by their bytes: 65,536
# honest ones of ~120 bytes are 8 MiB; a canonical alive can reach ~3 KB.
OLD_ALIVE_MAX = 65_536
OLD_ALIVE_MAX_BYTES = 8 * 1024 * 1024
# Answers to stale accusations remembered, by (sender, subject).
CORRECTIONS_MAX = 4096
# Health-score charges for silent indirect-probe helpers, remembered by
# helper until it is found alive or suspected (gossip.awareness).
SILENCE_CHARGES_MAX = 1024
# Failed members we pushed/pulled with lately because they answered
# (gossip.swim_heal), remembered by name: past this, the oldest are forgotten
# and a flood of pings naming failed members starts no more syncs.
HEAL_SYNCS_MAX = 1024

# ---- decode caches (gossip.memo) ------------------------------------------------
# Recent decodings remembered by their bytes.  Only canonical messages (the
# Go struct's fields, nothing else) no bigger than an honest one: an alive
# or node state is at most ~2.7 KB; 60 KB alives with unknown fields filled
# 2,000 entries with 115 MiB before.  The byte cap counts the keys; the
# decoded values hold at most as much again.
MEMO_ENTRY_MAX_BYTES = 3 * 1024
MEMO_MAX_ENTRIES = 16_384
MEMO_MAX_BYTES = 8 * 1024 * 1024
