"""Resource arithmetic and the unit tables for CPU and memory.

How this works: table-driven tests pin every accepted spelling (SI units are
powers of 1000, IEC and Docker's single letters powers of 1024) and every
rejected one; Hypothesis checks that the arithmetic is that of integer
vectors and that parse(canonical(x)) == x.
"""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from auction.resources import (
    GiB, KiB, MiB, TiB, ZERO, Resources, UnitError, canonical_memory, format_cpu,
    format_memory, parse_cpu, parse_memory,
)

# ---- Resources -----------------------------------------------------------------

def test_arithmetic():
    a = Resources(1500, 2 * GiB, 10)
    b = Resources(500, GiB)
    assert a + b == Resources(2000, 3 * GiB, 10)
    assert a - b == Resources(1000, GiB, 10)
    assert b * 3 == 3 * b == Resources(1500, 3 * GiB)
    assert a + ZERO == a and Resources.ZERO is ZERO
    assert ZERO == Resources(0, 0, 0)


def test_fits_in_is_componentwise():
    free = Resources(1000, GiB, 0)
    assert Resources(1000, GiB).fits_in(free)
    assert ZERO.fits_in(free)
    assert not Resources(1001, GiB).fits_in(free)
    assert not Resources(1000, GiB + 1).fits_in(free)
    assert not Resources(1, 1, 1).fits_in(free)


def test_subtraction_can_go_negative_and_is_detected():
    deficit = Resources(500, MiB) - Resources(1000, MiB)
    assert deficit == Resources(-500, 0)
    assert not deficit.is_nonnegative()
    assert ZERO.is_nonnegative()


def test_frozen_and_integer_only():
    r = Resources(1, 2)
    with pytest.raises(AttributeError):
        r.cpu_millis = 5  # type: ignore[misc]
    with pytest.raises(TypeError):
        Resources(1.5, 2)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        Resources(True, 2)  # type: ignore[arg-type]
    assert hash(r) == hash(Resources(1, 2))


def test_str_is_human():
    assert str(Resources(2000, 3 * (GiB // 2))) == "2.0 cpu, 1.5 GiB"
    assert str(Resources(250, 64 * MiB, GiB)) == "0.25 cpu, 64.0 MiB, 1.0 GiB disk"


vectors = st.builds(Resources, st.integers(-10**12, 10**12), st.integers(-2**60, 2**60),
                    st.integers(-2**50, 2**50))


@given(vectors, vectors, vectors)
def test_arithmetic_laws(a, b, c):
    assert (a + b) + c == a + (b + c)
    assert a + b == b + a
    assert (a + b) - b == a
    assert a - a == ZERO
    assert a.fits_in(a)
    # fits_in is "the difference is non-negative"
    assert a.fits_in(b) == (b - a).is_nonnegative()


# ---- memory --------------------------------------------------------------------

@pytest.mark.parametrize("text, expected", [
    (0, 0),
    (4096, 4096),
    ("4096", 4096),
    ("100B", 100),
    ("100b", 100),
    # IEC: powers of 1024
    ("1KiB", KiB), ("512MiB", 512 * MiB), ("2GiB", 2 * GiB), ("1TiB", TiB),
    ("512mib", 512 * MiB), ("512MIB", 512 * MiB),
    # Docker's single letters: powers of 1024
    ("1k", KiB), ("1K", KiB), ("256m", 256 * MiB), ("256M", 256 * MiB), ("1G", GiB),
    ("1g", GiB), ("2t", 2 * TiB),
    # SI: powers of 1000
    ("1KB", 1000), ("1kb", 1000), ("1MB", 10**6), ("1GB", 10**9), ("1TB", 10**12),
    # fractions and spacing
    ("1.5GiB", 3 * GiB // 2), ("1.5 GiB", 3 * GiB // 2), (" 64MiB ", 64 * MiB),
    (".5k", 512), ("2.", 2), ("1.5GB", 1_500_000_000),
    ("0.1K", 102),  # 102.4 bytes: the fraction of a byte is dropped
])
def test_parse_memory_table(text, expected):
    assert parse_memory(text) == expected


@pytest.mark.parametrize("bad", [
    "", "MiB", "-1MiB", "1 2MiB", "1MiBs", "1 xb", "1e9", "1,5GiB", "0x10", "1  MiB",
    "1PiB", "١MiB", "x" * 200, -1, 1.5, True, None, [], {},
])
def test_parse_memory_rejects(bad):
    with pytest.raises(UnitError):
        parse_memory(bad)


def test_parse_memory_messages_name_the_unit_choices():
    with pytest.raises(UnitError, match="unknown unit 'xb'.*MiB"):
        parse_memory("12XB")
    with pytest.raises(UnitError, match="got a number"):
        parse_memory(1.5)


@pytest.mark.parametrize("n, text", [
    (0, "0 B"), (512, "512 B"), (1023, "1023 B"), (KiB, "1.0 KiB"), (1536, "1.5 KiB"),
    (64 * MiB, "64.0 MiB"), (3 * GiB // 2, "1.5 GiB"), (GiB - 1, "1.0 GiB"),
    (5 * GiB // 4, "1.25 GiB"), (GiB + GiB // 3, "1.33 GiB"), (2 * TiB, "2.0 TiB"),
    (-3 * MiB, "-3.0 MiB"),
])
def test_format_memory(n, text):
    assert format_memory(n) == text


@pytest.mark.parametrize("n, text", [
    (0, "0B"), (1000, "1000B"), (KiB, "1KiB"), (64 * MiB, "64MiB"), (1536 * MiB, "1536MiB"),
    (2 * GiB, "2GiB"), (TiB, "1TiB"), (MiB + 1, f"{MiB + 1}B"),
])
def test_canonical_memory(n, text):
    assert canonical_memory(n) == text


@given(st.integers(0, 2**50))
def test_canonical_memory_round_trips(n):
    assert parse_memory(canonical_memory(n)) == n


# ---- cpu -----------------------------------------------------------------------

@pytest.mark.parametrize("value, millis", [
    (1, 1000), (2, 2000), (0, 0), (1.5, 1500), (0.1, 100), (0.25, 250), (0.001, 1),
    (0.3, 300), (1024, 1_024_000),
    ("1", 1000), ("1.5", 1500), (".5", 500), ("0.001", 1), (" 2 ", 2000),
    ("500m", 500), ("1m", 1), ("1500m", 1500), ("1500M", 1500), ("0m", 0),
])
def test_parse_cpu_table(value, millis):
    assert parse_cpu(value) == millis


@pytest.mark.parametrize("bad", [
    "", "m", "-1", -1, -0.5, "1.5m", "0.0001", 0.0001, "2 cores", "2x", "1e3",
    math.nan, math.inf, 1e308, True, False, None, [1], {"cores": 1},
])
def test_parse_cpu_rejects(bad):
    with pytest.raises(UnitError):
        parse_cpu(bad)


def test_parse_cpu_refuses_to_round():
    with pytest.raises(UnitError, match="finer than one millicore"):
        parse_cpu("0.0005")


@pytest.mark.parametrize("millis, text", [
    (2000, "2.0 cpu"), (1500, "1.5 cpu"), (250, "0.25 cpu"), (1, "0.001 cpu"),
    (0, "0.0 cpu"), (1_024_000, "1024.0 cpu"), (-500, "-0.5 cpu"),
])
def test_format_cpu(millis, text):
    assert format_cpu(millis) == text


@given(st.integers(0, 10**9))
def test_cpu_cores_as_float_round_trip(millis):
    assert parse_cpu(millis / 1000) == millis
    assert parse_cpu(f"{millis}m") == millis
