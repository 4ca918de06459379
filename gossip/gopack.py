"""msgpack as memberlist's go-msgpack writes it, and bounded reads.

How this works: two packers.  `fast_pack` is msgpack-python's C packer with
use_bin_type=False: legacy "raw" strings for text and bytes (never
str8/bin) and unsigned markers for every non-negative int, which is what
go-msgpack writes for structs whose fields are all uint/string/[]byte/bool.
`pack_go` is our own small packer for the few structs with Go `int` fields
that can exceed 127: go-msgpack writes those with the *signed* markers
(d0..d3), which `GoInt` asks for.  Dict keys go out in insertion order, so
callers build them sorted, as Go encodes struct fields.

Reads (`unpack_one`, `new_unpacker`) use raw=True and small container
limits, so a forged length prefix cannot make the C unpacker preallocate a
huge list or map, and any failure becomes `DecodeError("malformed")`.

This is the only module of the codec that touches msgpack, which ships no
type hints: what it decodes is returned as `object`, for the parsers to
check field by field.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from typing import Protocol

import msgpack  # type: ignore[import-untyped, unused-ignore]  # msgpack ships no type hints

from gossip.errors import DecodeError

# Container limits handed to msgpack so a forged length prefix cannot make
# the C unpacker preallocate a huge list/dict before the bytes exist.
_MAX_ARRAY_LEN = 256
_MAX_MAP_LEN = 256
_MAX_EXT_LEN = 64


class GoInt(int):
    """An int that go-msgpack would write from a Go `int`/`int64` field:
    signed markers (d0..d3) above 127 instead of the unsigned cc..cf."""

    __slots__ = ()


def _pack_raw(b: bytes, out: bytearray) -> None:
    n = len(b)
    if n < 32:
        out.append(0xA0 | n)
    elif n < 0x10000:
        out += b"\xda" + n.to_bytes(2, "big")
    elif n < 0x100000000:
        out += b"\xdb" + n.to_bytes(4, "big")
    else:
        raise ValueError("string too long for msgpack")
    out += b


def _pack_int(v: int, signed: bool, out: bytearray) -> None:
    if 0 <= v < 128:
        out.append(v)
    elif -32 <= v < 0:
        out.append(v & 0xFF)
    elif signed or v < 0:
        if -0x80 <= v < 0x80:
            out += b"\xd0" + struct.pack(">b", v)
        elif -0x8000 <= v < 0x8000:
            out += b"\xd1" + struct.pack(">h", v)
        elif -0x80000000 <= v < 0x80000000:
            out += b"\xd2" + struct.pack(">i", v)
        elif -(1 << 63) <= v < (1 << 63):
            out += b"\xd3" + struct.pack(">q", v)
        else:
            raise ValueError(f"integer {v} out of int64 range")
    elif v < 0x100:
        out += b"\xcc" + bytes((v,))
    elif v < 0x10000:
        out += b"\xcd" + v.to_bytes(2, "big")
    elif v < 0x100000000:
        out += b"\xce" + v.to_bytes(4, "big")
    elif v < 0x10000000000000000:
        out += b"\xcf" + v.to_bytes(8, "big")
    else:
        raise ValueError(f"integer {v} out of uint64 range")


def pack_go_into(obj: object, out: bytearray) -> None:
    """`pack_go`, appending to `out` (for a header followed by raw bytes)."""
    if obj is None:
        out.append(0xC0)
    elif obj is True:
        out.append(0xC3)
    elif obj is False:
        out.append(0xC2)
    elif isinstance(obj, int):
        _pack_int(int(obj), isinstance(obj, GoInt), out)
    elif isinstance(obj, (bytes, bytearray, memoryview)):
        _pack_raw(bytes(obj), out)
    elif isinstance(obj, str):
        _pack_raw(obj.encode("utf-8"), out)
    elif isinstance(obj, float):
        out += b"\xcb" + struct.pack(">d", obj)
    elif isinstance(obj, dict):
        n = len(obj)
        if n < 16:
            out.append(0x80 | n)
        elif n < 0x10000:
            out += b"\xde" + n.to_bytes(2, "big")
        else:
            out += b"\xdf" + n.to_bytes(4, "big")
        for k, v in obj.items():
            pack_go_into(k, out)
            pack_go_into(v, out)
    elif isinstance(obj, (list, tuple)):
        n = len(obj)
        if n < 16:
            out.append(0x90 | n)
        elif n < 0x10000:
            out += b"\xdc" + n.to_bytes(2, "big")
        else:
            out += b"\xdd" + n.to_bytes(4, "big")
        for v in obj:
            pack_go_into(v, out)
    else:
        raise TypeError(f"cannot pack {type(obj).__name__}")


def pack_go(obj: object) -> bytes:
    """msgpack exactly as go-msgpack's zero MsgpackHandle writes it.  Dict
    keys are written in insertion order: pass them sorted to match Go's
    struct encoding.  Use `GoInt` for Go `int` fields."""
    out = bytearray()
    pack_go_into(obj, out)
    return bytes(out)


# The C packer, for the messages whose Go fields are all unsigned, string,
# []byte or bool: with use_bin_type=False it writes exactly what go-msgpack
# writes for them (see the module docstring), at a tenth of pack_go's cost.
# One shared instance: creating a Packer per call costs more than packing a
# small map.  The cores run on one thread, and pack() of builtin types runs
# entirely in C under the GIL, so sharing it is safe.
fast_pack: Callable[[object], bytes] = msgpack.Packer(use_bin_type=False, autoreset=True).pack


class Unpacker(Protocol):
    """The part of msgpack.Unpacker that the stream decoder uses."""

    def feed(self, data: bytes, /) -> None: ...

    def unpack(self) -> object: ...

    def skip(self) -> None: ...

    def tell(self) -> int: ...

    def read_bytes(self, n: int, /) -> bytes: ...


# Raised by an Unpacker: fed past its buffer size / asked for an object not
# yet complete.
BufferFull: type[Exception] = msgpack.BufferFull
OutOfData: type[Exception] = msgpack.OutOfData


def new_unpacker(max_buffer_bytes: int) -> Unpacker:
    """A raw=True Unpacker with container limits small enough that forged
    headers cannot force big preallocations (streams read incrementally)."""
    unpacker: Unpacker = msgpack.Unpacker(
        raw=True,
        strict_map_key=False,
        max_buffer_size=max(1, max_buffer_bytes),
        max_str_len=max(1, max_buffer_bytes),
        max_bin_len=max(1, max_buffer_bytes),
        max_array_len=_MAX_ARRAY_LEN,
        max_map_len=_MAX_MAP_LEN,
        max_ext_len=_MAX_EXT_LEN,
    )
    return unpacker


def unpack_one(body: bytes) -> object:
    """The first msgpack object of `body` (Go's decoder ignores trailing
    bytes, so do we).  Anything wrong -> DecodeError("malformed").

    One `msgpack.unpackb` call rather than a streaming Unpacker: building an
    Unpacker (and its read buffer) per UDP message cost more than decoding
    the message.  unpackb bounds strings by len(body) itself; the container
    limits are the same as `new_unpacker`'s."""
    if not body:
        raise DecodeError("malformed", "empty body")
    try:
        return _unpackb(body, raw=True, strict_map_key=False, max_array_len=_MAX_ARRAY_LEN,
                        max_map_len=_MAX_MAP_LEN, max_ext_len=_MAX_EXT_LEN)
    except msgpack.ExtraData as e:
        return e.unpacked  # trailing bytes after the first object: ignored
    except Exception as e:  # ValueError (incl. truncated input)/FormatError/StackError/...
        raise DecodeError("malformed", f"msgpack: {type(e).__name__}") from None


_unpackb: Callable[..., object] = msgpack.unpackb
