"""Packet (UDP) and stream (TCP) pipelines around the message codec.

How this works: memberlist wraps a message in layers, and the order matters
because each layer authenticates or frames what is inside it.

UDP packet, outermost first (memberlist net.go rawSendMsgPacket/ingestPacket):
    [0xf4 | n | label]  [version | nonce | AES-GCM(...), AAD = label]
        [0x0c | crc32(rest) u32be]  [0x09 compress{Algo, Buf}]  message
Compression is used only when it makes the packet smaller; the CRC covers the
(possibly compressed) message and sits inside the encryption.

TCP stream (one framed message per direction):
    [0xf4 | n | label] (dialer only, once)
        [0x0a | L u32be | version | nonce | AES-GCM(...), AAD = 5 header bytes + label]
            [0x09 compress{Algo, Buf}]  message
A plain stream has no outer length, so `StreamDecoder` parses msgpack
incrementally: the push/pull header says how many node states and how many
raw user-state bytes follow, and the TCP user-message header gives its length.

Every failure on the receive side is a `DecodeError` whose `reason` the
driver counts; nothing here raises anything else on bad input.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Collection
from typing import Any

from gossip.compound import decode_messages, decode_parts
from gossip.errors import DecodeError
from gossip.gopack import BufferFull, OutOfData, new_unpacker
from gossip.limits import (
    LABEL_MAX_BYTES,
    MAX_PUSH_STATE_BYTES,
    MAX_PUSH_STATE_NODES,
    MAX_USER_MSG_BYTES,
)
from gossip.messages import Message, MessageType, PushNodeState, PushPull, UserMsg
from gossip.security import Keyring
from gossip.wire import (
    compress_message,
    decompress_body,
    parse_body,
    parse_node_state_bytes,
    parse_push_pull_header,
    parse_user_msg_header,
    remembered_node_state,
)

LABEL_HEADER = 0xF4
# Plain ints for the per-packet paths (an Enum attribute lookup costs more
# than the comparison it feeds).
_HAS_CRC = int(MessageType.HAS_CRC)
_CRC_HEADER = struct.Struct(">BI")
CRC_HEADER_BYTES = 5  # type byte + crc32
STREAM_ENCRYPT_HEADER_BYTES = 5  # 0x0a + u32 length


def label_header(label: bytes) -> bytes:
    """0xf4 | len | label, or nothing for the empty label (memberlist sends
    no header then, so unlabelled peers still understand us)."""
    if not label:
        return b""
    if len(label) > LABEL_MAX_BYTES:
        raise ValueError(f"label is {len(label)} bytes; at most {LABEL_MAX_BYTES}")
    return bytes((LABEL_HEADER, len(label))) + label


def _split_label(data: bytes) -> tuple[bytes, bytes]:
    """(label, rest) of a labelled or unlabelled packet."""
    if not data or data[0] != LABEL_HEADER:
        return b"", data
    if len(data) < 2:
        raise DecodeError("label", "truncated label header")
    n = data[1]
    if n == 0:
        raise DecodeError("label", "empty label in label header")
    if len(data) < 2 + n:
        raise DecodeError("label", "truncated label")
    return data[2 : 2 + n], data[2 + n :]


# ---------------------------------------------------------------------------
# UDP packets
# ---------------------------------------------------------------------------


def seal_packet(
    msg: bytes,
    *,
    label: bytes,
    keyring: Keyring | None,
    crc: bool,
    compress: bool,
    compress_min_bytes: int = 512,
) -> bytes:
    """Wrap one encoded message (possibly a compound) for sending.  `crc`
    should be set when the destination's PMax >= 5, as memberlist does."""
    buf = bytes(msg)
    if compress and len(buf) >= compress_min_bytes:
        compressed = compress_message(buf)
        if len(compressed) < len(buf):  # memberlist keeps it only if smaller
            buf = compressed
    if crc:
        buf = _CRC_HEADER.pack(_HAS_CRC, zlib.crc32(buf)) + buf
    if keyring is not None:
        buf = keyring.encrypt(buf, label)
    return label_header(label) + buf if label else buf


def open_packet(
    data: bytes,
    *,
    label: bytes,
    keyring: Keyring | None,
    skip_inbound_label_check: bool = False,
) -> list[Message]:
    """Every message in a received datagram."""
    return decode_messages(_unwrap(data, label, keyring, skip_inbound_label_check))


def open_packet_parts(
    data: bytes,
    *,
    label: bytes,
    keyring: Keyring | None,
    skip_inbound_label_check: bool = False,
    skip: Collection[bytes] = (),
) -> list[tuple[Message, bytes | None]]:
    """Like `open_packet`, each message paired with its encoded bytes when
    it can be rebroadcast verbatim (`gossip.compound.decode_parts`, which
    also says what `skip` leaves out)."""
    return decode_parts(_unwrap(data, label, keyring, skip_inbound_label_check), skip)


def _unwrap(data: bytes, label: bytes, keyring: Keyring | None, skip_inbound_label_check: bool) -> bytes:
    """The message inside a datagram's label, encryption and CRC layers."""
    data = bytes(data)
    got_label, buf = _split_label(data)
    if skip_inbound_label_check:
        # Accept unlabelled traffic as ours; a label then is an error
        # (memberlist: "unexpected double packet label header").
        if got_label:
            raise DecodeError("label", "labelled packet while skipping the label check")
        got_label = label
    if got_label != label:
        raise DecodeError("label", f"label {got_label!r} is not ours")
    if keyring is not None:
        if not buf:
            raise DecodeError("malformed", "empty packet")
        if buf[0] > 1:
            # Not an encryption version byte: a plaintext message.
            raise DecodeError("unencrypted", "plaintext packet while encryption is on")
        buf = keyring.decrypt(buf, label)
    if len(buf) >= 1 and buf[0] == _HAS_CRC:
        if len(buf) < CRC_HEADER_BYTES:
            raise DecodeError("crc", "truncated CRC header")
        want = int.from_bytes(buf[1:5], "big")
        buf = buf[5:]
        if zlib.crc32(buf) != want:
            raise DecodeError("crc", "checksum mismatch")
    return buf


# ---------------------------------------------------------------------------
# TCP streams
# ---------------------------------------------------------------------------


def seal_stream(
    payload: bytes,
    *,
    label: bytes,
    keyring: Keyring | None,
    compress: bool,
    write_label: bool,
    compress_min_bytes: int = 0,
) -> bytes:
    """Frame one encoded stream message (encode(PushPull), encode(Ping),
    encode_stream_user(...), encode(ErrResp), ...) for writing.
    `write_label` is for the dialer, which sends the label header once.
    With `compress`, a message of at least `compress_min_bytes` is
    compressed (GossipConfig.push_pull_compress_min_bytes says why)."""
    buf = bytes(payload)
    if compress and len(buf) >= compress_min_bytes:
        buf = compress_message(buf)
    if keyring is not None:
        # L = version + nonce + ciphertext + tag, known before encrypting
        # because it is part of the AAD.
        length = 1 + 12 + len(buf) + 16
        header = bytes((MessageType.ENCRYPT,)) + length.to_bytes(4, "big")
        sealed = keyring.encrypt(buf, header + label)
        buf = header + sealed
    return (label_header(label) if write_label else b"") + buf


# Types a stream may carry after the envelopes: what memberlist's handleConn
# accepts plus the replies a dialer reads (ack for TCP ping, errResp).
_STREAM_SIMPLE = frozenset((MessageType.PING, MessageType.ACK, MessageType.ERR))


class _MessageParser:
    """Incremental parser for one plain stream message (type byte + body,
    optionally behind a compress wrapper)."""

    def __init__(self, *, max_total_bytes: int, max_field_bytes: int, allow_compress: bool):
        self._max_total = max_total_bytes
        self._max_field = max_field_bytes
        self._allow_compress = allow_compress
        self._unpacker = new_unpacker(max_total_bytes)
        self._total = 0
        self._type: int | None = None
        # push/pull progress
        self._join = False
        self._nodes_left = 0
        self._nodes: list[PushNodeState] = []
        self._raw_left = -1  # bytes of user state / user message still to read
        self._raw = bytearray()
        # A push/pull's body as fed to the unpacker, so each node state can
        # be cut out as bytes (see the "nodes" stage), and where the node
        # state being read starts in it.  bytes while it came in one piece
        # (the usual case: slices of it are bytes, with no extra copy), a
        # bytearray once a second piece is appended.
        self._body: bytes | bytearray = b""
        self._node_start = -1
        self._stage = "type"

    def feed(self, data: bytes) -> Message | None:
        if data:
            self._total += len(data)
            if self._total > self._max_total:
                raise DecodeError("too_large", f"stream message over {self._max_total} bytes")
            if self._type is None:
                self._type = data[0]
                data = data[1:]
                self._start()
            try:
                self._unpacker.feed(data)
            except BufferFull:
                raise DecodeError("too_large", "stream buffer full") from None
            if self._type == MessageType.PUSH_PULL:
                if not self._body:
                    self._body = bytes(data)  # (a copy only if the caller's buffer is mutable)
                else:
                    if type(self._body) is bytes:
                        self._body = bytearray(self._body)
                    self._body += data
        elif self._type is None:
            return None
        return self._advance()

    def _start(self) -> None:
        t = self._type
        if (t in _STREAM_SIMPLE or t in (MessageType.PUSH_PULL, MessageType.USER)
                or (t == MessageType.COMPRESS and self._allow_compress)):
            self._stage = "header"
        else:
            raise DecodeError("unknown_type", f"type {t} on a stream")

    def _next_object(self) -> object:
        try:
            return self._unpacker.unpack()
        except OutOfData:
            return _NEED_MORE
        except Exception as e:  # FormatError, StackError, ValueError, ...
            raise DecodeError("malformed", f"msgpack: {type(e).__name__}") from None

    def _advance(self) -> Message | None:
        t = self._type
        if self._stage == "header":
            obj = self._next_object()
            if obj is _NEED_MORE:
                return None
            if t in _STREAM_SIMPLE:
                return parse_body(t, obj)
            if t == MessageType.COMPRESS:
                # memberlist caps decompressed output at 2 x maxPushStateBytes.
                limit = 2 * self._max_field
                plain = decompress_body(obj, limit)
                inner = _MessageParser(
                    max_total_bytes=limit,
                    max_field_bytes=self._max_field,
                    allow_compress=False,
                )
                msg = inner.feed(plain)
                if msg is None:
                    raise DecodeError("malformed", "truncated message inside compression")
                return msg
            if t == MessageType.USER:
                self._raw_left = parse_user_msg_header(obj, min(self._max_field, MAX_USER_MSG_BYTES))
                self._stage = "raw"
            else:  # push/pull
                self._join, self._nodes_left, self._raw_left = parse_push_pull_header(
                    obj, MAX_PUSH_STATE_NODES, self._max_field
                )
                self._stage = "nodes"
        if self._stage == "nodes":
            # Each node state is skipped over (no objects built) and cut out
            # as bytes: members mostly send the same encodings again and
            # again (they cache them), so parse_node_state_bytes finds most
            # of them already decoded.
            # (Locals, one tell() per state, and one copy per state: this
            # loop runs for every member of every push/pull.)
            unpacker = self._unpacker
            tell = unpacker.tell
            skip = unpacker.skip
            append = self._nodes.append
            memo_get = remembered_node_state
            left = self._nodes_left
            start = self._node_start
            whole = self._body
            # A bytearray is read through a memoryview (released below: it
            # grows on the next feed), whose slices are copied out as bytes.
            # (Any: bytes, or a memoryview whose slices become bytes below.)
            body: Any = whole if type(whole) is bytes else memoryview(whole)
            view = type(body) is memoryview
            if start < 0:
                start = tell()
            try:
                while left:
                    try:
                        skip()
                    except OutOfData:
                        return None
                    except Exception as e:  # FormatError, StackError, ...
                        raise DecodeError("malformed", f"msgpack: {type(e).__name__}") from None
                    end = tell()  # where this state ends and the next begins
                    raw: bytes = body[start:end]
                    if view:
                        raw = bytes(raw)
                    start = end
                    st = memo_get(raw)
                    append(st if st is not None else parse_node_state_bytes(raw))
                    left -= 1
            finally:
                if isinstance(body, memoryview):
                    body.release()
                self._nodes_left = left
                self._node_start = start
            self._stage = "raw"
        if self._stage == "raw":
            while self._raw_left:
                chunk = self._unpacker.read_bytes(self._raw_left)
                if not chunk:
                    return None
                self._raw += chunk
                self._raw_left -= len(chunk)
            self._stage = "done"
            if t == MessageType.USER:
                return UserMsg(payload=bytes(self._raw))
            return PushPull(join=self._join, nodes=tuple(self._nodes), user_state=bytes(self._raw))
        return None


_NEED_MORE = object()


class StreamDecoder:
    """Reads one framed message from a TCP stream, fed in arbitrary chunks.

    expect_label_header: True on an accepted connection (the dialer may have
    written a label header first); False when reading the reply on a
    connection we dialed.  The label still authenticates encrypted data in
    both directions.

    max_bytes bounds the message and also an encrypted frame, which is
    buffered whole before AES-GCM can authenticate it: a frame declaring
    more is refused from its 5-byte header, before any of it is buffered.
    Decompressed output is bounded at twice max_bytes, as memberlist does."""

    def __init__(
        self,
        *,
        label: bytes,
        keyring: Keyring | None,
        expect_label_header: bool,
        max_bytes: int = MAX_PUSH_STATE_BYTES,
    ):
        self._label = bytes(label)
        self._keyring = keyring
        self._max_bytes = max_bytes
        self._stage = "label" if expect_label_header else "type"
        self._pending = bytearray()
        self._parser: _MessageParser | None = None
        self._result: Message | None = None
        self._error: DecodeError | None = None

    def feed(self, data: bytes) -> Message | None:
        if self._result is not None:
            return self._result  # one message per stream; ignore the rest
        if self._error is not None:
            raise self._error
        try:
            self._result = self._feed(bytes(data))
        except DecodeError as e:
            self._error = e
            raise
        return self._result

    def feed_eof(self) -> Message:
        if self._result is not None:
            return self._result
        if self._error is not None:
            raise self._error
        self._error = DecodeError("malformed", "truncated")
        raise self._error

    def _feed(self, data: bytes) -> Message | None:
        if self._parser is not None:
            return self._parser.feed(data)
        self._pending += data
        if self._stage == "label":
            buf = self._pending
            if not buf:
                return None
            if buf[0] == LABEL_HEADER:
                if len(buf) < 2:
                    return None
                n = buf[1]
                if n == 0:
                    raise DecodeError("label", "empty label in label header")
                if len(buf) < 2 + n:
                    return None
                got = bytes(buf[2 : 2 + n])
                del buf[: 2 + n]
            else:
                got = b""
            if got != self._label:
                raise DecodeError("label", f"stream label {got!r} is not ours")
            self._stage = "type"
        if self._stage == "type":
            if not self._pending:
                return None
            t = self._pending[0]
            if t == MessageType.ENCRYPT:
                if self._keyring is None:
                    raise DecodeError("decrypt", "encrypted stream but no keyring configured")
                self._stage = "encrypted"
            else:
                if self._keyring is not None:
                    raise DecodeError("unencrypted", "plaintext stream while encryption is on")
                self._parser = _MessageParser(
                    max_total_bytes=self._max_bytes,
                    max_field_bytes=self._max_bytes,
                    allow_compress=True,
                )
                pending, self._pending = bytes(self._pending), bytearray()
                return self._parser.feed(pending)
        if self._stage == "encrypted":
            buf = self._pending
            if len(buf) < STREAM_ENCRYPT_HEADER_BYTES:
                return None
            length = int.from_bytes(buf[1:5], "big")
            if length > self._max_bytes:
                raise DecodeError("too_large", f"encrypted stream of {length} bytes")
            if len(buf) < STREAM_ENCRYPT_HEADER_BYTES + length:
                return None
            header = bytes(buf[:STREAM_ENCRYPT_HEADER_BYTES])
            sealed = bytes(buf[STREAM_ENCRYPT_HEADER_BYTES : STREAM_ENCRYPT_HEADER_BYTES + length])
            self._pending = bytearray()
            assert self._keyring is not None
            plain = self._keyring.decrypt(sealed, header + self._label)
            parser = _MessageParser(
                max_total_bytes=self._max_bytes,
                max_field_bytes=self._max_bytes,
                allow_compress=True,
            )
            msg = parser.feed(plain)
            if msg is None:
                raise DecodeError("malformed", "truncated message inside encryption")
            return msg
        return None
