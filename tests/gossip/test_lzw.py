"""LZW matches Go's compress/lzw (LSB, literal width 8).

How this works: the two LZW streams inside the §13 golden vectors pin the
exact bit layout (leading CLEAR, width growth, EOF, final partial byte).
Round trips over inputs long enough to fill the 4096-code table several
times exercise the writer's CLEAR/reset and the reader's width tracking,
which must agree code for code or the output would be garbage.
"""

from __future__ import annotations

import random

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gossip import lzw
from gossip.errors import DecodeError

# Buf of "compressMsg (LZW) wrapping the compound" (§13): compresses COMPOUND.
COMPOUND = bytes.fromhex(
    "0702004500490085a44e6f6465a66e6f64652d62a55365714e6f01aa536f7572636541646472a40a000001aa536f7572"
    "63654e6f6465a66e6f64652d61aa536f75726365506f7274cd1f0a0486a441646472a40a000001ab496e6361726e6174"
    "696f6e01a44d657461abff81a4726f6c65a3776562a44e6f6465a66e6f64652d61a4506f7274cd1f0aa356736ea60105"
    "02020504"
)
COMPRESSED_COMPOUND = bytes.fromhex(
    "0982a4416c676f00a3427566da008a000f080050044012008548397943a68c29370ccbb410536a4a99380b03a89af2a6"
    "8e9c31658290212387940200003472f4087261c387115b84d9d8f16319286fe4d069f641010143a44492348932c0aa24"
    "6ec68491e3260c9d346fdc0420d5a40c9d30abfe052225e70d9b32a3ee9411a33022cc863249e1d4c953c1282b73dc98"
    "0a5040808002040202"
)

BIG = 10**9


def lzw_buf(wrapper: bytes) -> bytes:
    return msgpack.unpackb(wrapper[1:], raw=True)[b"Buf"]


def read_codes(data: bytes) -> list[int]:
    """Decode the code stream only (Go's width rules), for structural checks."""
    codes, bits, nbits, width, hi, overflow = [], 0, 0, 9, 257, 512
    pos = 0
    while True:
        while nbits < width:
            bits |= data[pos] << nbits
            pos += 1
            nbits += 8
        code = bits & ((1 << width) - 1)
        bits >>= width
        nbits -= width
        codes.append(code)
        if code == 256:
            width, hi, overflow = 9, 257, 512
            continue
        if code == 257:
            return codes
        hi += 1
        if hi >= overflow:
            if width == 12:
                hi -= 1
            else:
                width += 1
                overflow <<= 1


def test_golden_compound():
    buf = lzw_buf(COMPRESSED_COMPOUND)
    assert lzw.decompress(buf, BIG) == COMPOUND
    assert lzw.compress(COMPOUND) == buf


def test_empty_input_is_clear_then_eof():
    # Go >= 1.17 writes CLEAR even for empty input: 256, 257 at 9 bits.
    assert lzw.compress(b"") == bytes.fromhex("000302")
    assert lzw.decompress(lzw.compress(b""), BIG) == b""


def test_stream_starts_with_clear_and_ends_with_eof():
    codes = read_codes(lzw.compress(b"hello hello hello"))
    assert codes[0] == 256 and codes[-1] == 257


@pytest.mark.parametrize(
    "data",
    [
        b"a",
        b"ab",
        b"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",  # KwKwK: code == next free code
        b"abababababababababababab",
        bytes(range(256)) * 4,
        b"\x00" * 100_000,
    ],
)
def test_roundtrip_small(data):
    assert lzw.decompress(lzw.compress(data), BIG) == data


def test_roundtrip_large_with_table_resets():
    rng = random.Random(7)
    words = [bytes(rng.choice(b"abcdefghijklmnop") for _ in range(rng.randint(2, 9))) for _ in range(500)]
    text = b" ".join(rng.choice(words) for _ in range(60_000))
    noise = bytes(rng.getrandbits(8) for _ in range(100_000))
    data = text + noise + text[:50_000]
    assert len(data) > 250_000
    packed = lzw.compress(data)
    codes = read_codes(packed)
    assert codes.count(256) >= 10, "expected several table resets"
    assert lzw.decompress(packed, BIG) == data


@pytest.mark.parametrize("n", [3837, 3838, 3839, 3840, 4094, 4095, 4096, 4097, 8190, 8191])
def test_roundtrip_around_reset_boundaries(n):
    # Random bytes add roughly one code per byte, so these lengths put the
    # writer's final incHi right at / around the out-of-codes reset.
    rng = random.Random(n)
    data = bytes(rng.getrandbits(8) for _ in range(n))
    assert lzw.decompress(lzw.compress(data), BIG) == data


def test_close_can_emit_clear_before_eof():
    # Go's Close() runs incHi after the pending code; when that runs out of
    # codes a CLEAR precedes EOF and EOF is written at 9 bits.  With this
    # seed, a 3937-byte prefix hits exactly that case.
    rng = random.Random(42)
    data = bytes(rng.getrandbits(8) for _ in range(3937))
    packed = lzw.compress(data)
    assert read_codes(packed)[-2:] == [256, 257]
    assert lzw.decompress(packed, BIG) == data


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=3000))
def test_roundtrip_property(data):
    assert lzw.decompress(lzw.compress(data), BIG) == data


@settings(max_examples=100, deadline=None)
@given(st.lists(st.sampled_from([b"a", b"b", b"ab", b"ba", b"xyz"]), max_size=3000))
def test_roundtrip_repetitive(parts):
    data = b"".join(parts)
    assert lzw.decompress(lzw.compress(data), BIG) == data


def test_size_limit():
    packed = lzw.compress(b"\x00" * 1_000_000)
    with pytest.raises(DecodeError) as e:
        lzw.decompress(packed, 999_999)
    assert e.value.reason == "too_large"
    assert len(lzw.decompress(packed, 1_000_000)) == 1_000_000


def test_truncated_stream_is_malformed():
    packed = lzw.compress(b"hello world, hello world")
    for cut in range(len(packed) - 1):
        with pytest.raises(DecodeError) as e:
            lzw.decompress(packed[:cut], BIG)
        assert e.value.reason == "malformed"


def test_invalid_code_is_malformed():
    # CLEAR, then code 300 while the next free code is 258.
    bits = 256 | (300 << 9)
    with pytest.raises(DecodeError) as e:
        lzw.decompress(bits.to_bytes(3, "little"), BIG)
    assert e.value.reason == "malformed"


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=2000))
def test_garbage_only_raises_decode_error(data):
    try:
        lzw.decompress(data, 100_000)
    except DecodeError as e:
        assert e.reason in ("malformed", "too_large")
