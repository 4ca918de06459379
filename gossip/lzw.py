"""LZW exactly as Go's compress/lzw with LSB order and 8-bit literals.

How this works: memberlist compresses with `lzw.NewWriter(w, lzw.LSB, 8)`
(GIF flavour).  Codes 0..255 are literals, 256 is CLEAR, 257 is EOF, new
strings get codes from 258 up.  Codes are packed LSB-first starting at 9 bits
wide; the width grows by one each time the next free code reaches 512, 1024,
2048 (max 12 bits).  Go's writer always emits CLEAR first, emits CLEAR again
(and starts over at 9 bits with an empty table) when the next free code
would be 4095, finishes with the pending code and EOF, and flushes the last
partial byte.  Matching those rules byte for byte matters because golden
vectors and Go peers compare exact bytes.

The writer keeps the table as a trie: one dict per string in it, mapping a
next byte to the longer string's dict, with the string's own code under the
key 256 (not a byte), the one-byte strings made at their first use; so the
loop run for each input byte is one lookup in a small dict, not a shift, an
or and a lookup in one large dict: a push/pull of 200 members (14 KB) in
1.21-1.27 ms, not 1.70-1.74; of 1,000 (70 KB) in 6.2 ms, not 8.5-8.9
(scripts/bench/lzw_speed.py); a gossip packet of 1.2 KB in 204 us, not 220,
and one of 600 B in 129, not 123 (each new string is a dict made).  The
reader keeps a list of expansions indexed by code and follows Go's reader,
including the KwKwK case (code == next free code) and, once the table is
full at 12 bits, no longer adding entries until a CLEAR arrives.
"""

from __future__ import annotations

from typing import Any

from gossip.errors import DecodeError

_CLEAR = 256
_EOF = 257
_MAX_WIDTH = 12
_MAX_CODE = (1 << _MAX_WIDTH) - 1  # 4095: Go's writer resets when hi reaches it
_CODE = 256  # the key of a trie node's own code (not a byte)


def compress(data: bytes) -> bytes:
    out = bytearray()
    bits = 0  # pending bits, LSB first
    nbits = 0
    width = 9
    hi = _EOF  # last assigned code; the next new string gets hi + 1
    overflow = 512

    # Emit the leading CLEAR (Go: "Encoders should output a Clear code as
    # the first code of each image data stream").
    bits |= _CLEAR << nbits
    nbits += width
    while nbits >= 8:
        out.append(bits & 0xFF)
        bits >>= 8
        nbits -= 8

    if data:
        # The trie (module docstring): roots[b] is the one-byte string b.
        roots: list[dict[int, Any] | None] = [None] * 256
        # This loop runs once per input byte (a push/pull of 200 members is
        # some 14 kB); iterating a memoryview takes some 15 % off the time
        # of indexing.
        first = data[0]
        node = roots[first] = {_CODE: first}
        for x in memoryview(data)[1:]:
            child = node.get(x)
            if child is not None:
                node = child
                continue
            bits |= node[_CODE] << nbits
            nbits += width
            while nbits >= 8:
                out.append(bits & 0xFF)
                bits >>= 8
                nbits -= 8
            # Go's incHi: bump the implied next code, widen, or reset.
            hi += 1
            if hi == overflow:
                width += 1
                overflow <<= 1
            if hi == _MAX_CODE:
                bits |= _CLEAR << nbits
                nbits += width
                while nbits >= 8:
                    out.append(bits & 0xFF)
                    bits >>= 8
                    nbits -= 8
                width = 9
                hi = _EOF
                overflow = 512
                roots = [None] * 256
                node = roots[x] = {_CODE: x}
                continue
            node[x] = {_CODE: hi}
            root = roots[x]
            if root is None:
                root = roots[x] = {_CODE: x}
            node = root
        # Close(): the pending code, then incHi (which may widen or even
        # emit a CLEAR) before EOF is written at the resulting width.
        bits |= node[_CODE] << nbits
        nbits += width
        while nbits >= 8:
            out.append(bits & 0xFF)
            bits >>= 8
            nbits -= 8
        hi += 1
        if hi == overflow:
            width += 1
            overflow <<= 1
        if hi == _MAX_CODE:
            bits |= _CLEAR << nbits
            nbits += width
            while nbits >= 8:
                out.append(bits & 0xFF)
                bits >>= 8
                nbits -= 8
            width = 9

    bits |= _EOF << nbits
    nbits += width
    while nbits >= 8:
        out.append(bits & 0xFF)
        bits >>= 8
        nbits -= 8
    if nbits > 0:
        out.append(bits & 0xFF)
    return bytes(out)


def decompress(data: bytes, max_output_bytes: int) -> bytes:
    """Inverse of `compress` (and of Go's writer).  Raises
    DecodeError("malformed") on invalid codes or a missing EOF code and
    DecodeError("too_large") once the output would exceed max_output_bytes."""
    out = bytearray()
    table: list[bytes] = [bytes((i,)) for i in range(256)] + [b"", b""]
    width = 9
    hi = _EOF
    overflow = 512
    last: bytes | None = None  # expansion of the previous code; None = invalid
    bits = 0
    nbits = 0
    pos = 0
    n = len(data)
    mask = (1 << width) - 1
    while True:
        while nbits < width:
            if pos >= n:
                raise DecodeError("malformed", "lzw: unexpected end of data")
            bits |= data[pos] << nbits
            pos += 1
            nbits += 8
        code = bits & mask
        bits >>= width
        nbits -= width

        if code < _CLEAR:
            entry = table[code]
        elif code == _CLEAR:
            width = 9
            mask = 0x1FF
            hi = _EOF
            overflow = 512
            last = None
            del table[258:]
            continue
        elif code == _EOF:
            return bytes(out)
        elif code < hi:
            entry = table[code]
        elif code == hi:
            if last is not None:
                entry = last + last[:1]  # KwKwK: previous string + its head
            elif code < len(table):
                entry = table[code]  # table full, hi pinned at its last entry
            else:
                raise DecodeError("malformed", "lzw: invalid code")
        else:
            raise DecodeError("malformed", "lzw: invalid code")

        out += entry
        if len(out) > max_output_bytes:
            raise DecodeError("too_large", f"lzw output exceeds {max_output_bytes} bytes")
        if last is not None:
            new = last + entry[:1]
            if hi < len(table):
                table[hi] = new
            else:
                table.append(new)
        last = entry
        hi += 1
        if hi >= overflow:
            if width == _MAX_WIDTH:
                # Table full: stop adding entries (Go undoes the hi++).
                last = None
                hi -= 1
            else:
                width += 1
                mask = (1 << width) - 1
                overflow <<= 1
