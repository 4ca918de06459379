"""Resource amounts (CPU, memory, disk) and the units people write them in.

How this works: every amount inside shoal is an integer in the smallest unit
we care about — CPU in millicores (`cpu_millis`, 1000 = one core), memory and
disk in bytes — so sums and comparisons are exact and the same on every node.
`Resources` is a frozen value with `+`, `-` and `*` (by a replica count);
subtraction may go negative (a deficit), which `is_nonnegative()` detects;
`a.fits_in(b)` is true when every component of `a` is at most that of `b`.

Parsing (job specs, `--cpus`, `--memory`):

- `parse_cpu`: cores as a number (`1.5`, `2`) or a string (`"1.5"`), or
  millicores with an `m` suffix (`"500m"`).  Anything finer than one
  millicore is rejected rather than rounded.
- `parse_memory`: an integer byte count or a string `<number><unit>`, with an
  optional space, case-insensitive:

      B                  1
      KB  MB  GB  TB     powers of 1000 (SI: 1 MB = 1,000,000 bytes)
      KiB MiB GiB TiB    powers of 1024
      K   M   G   T      powers of 1024, as in `docker run -m 256m`

  The single letters follow Docker (and not Kubernetes, where `M` is 10^6),
  because that is what people paste from `docker run`.  A fractional amount
  (`"1.5GiB"`) is exact; a fraction of a byte left over is dropped.

The arithmetic is on integers (a decimal amount is a numerator over a power
of ten), exact as `fractions.Fraction` would be: that module (and decimal,
which it imports) is not imported at every agent start for one `--cpus`.

Formatting is for people, not for parsing back: `format_cpu(1500)` is
`"1.5 cpu"`, `format_memory(3 << 29)` is `"1.5 GiB"`.  `canonical_memory` is
the exact string form used in canonical job specs (`"64MiB"`).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import ClassVar

MILLIS_PER_CORE = 1000
KiB = 1 << 10
MiB = 1 << 20
GiB = 1 << 30
TiB = 1 << 40

# Floats beyond this many cores are rejected before multiplying (no overflow).
MAX_PARSED_CORES = 1e12
# Longest unit string we try to parse: no legitimate amount needs more, and it
# keeps the arithmetic on hostile input small.
MAX_UNIT_TEXT_CHARS = 64

MEMORY_UNITS: dict[str, int] = {
    "": 1, "b": 1,
    "k": KiB, "m": MiB, "g": GiB, "t": TiB,
    "kib": KiB, "mib": MiB, "gib": GiB, "tib": TiB,
    "kb": 10**3, "mb": 10**6, "gb": 10**9, "tb": 10**12,
}

_AMOUNT_RE = re.compile(r"(\d+(?:\.\d*)?|\.\d+) ?([A-Za-z]*)", re.ASCII)


class UnitError(ValueError):
    """A CPU or memory amount that cannot be parsed; the message says why."""


@dataclass(frozen=True, slots=True)
class Resources:
    cpu_millis: int
    memory_bytes: int
    disk_bytes: int = 0

    ZERO: ClassVar[Resources]

    def __post_init__(self) -> None:
        for name in ("cpu_millis", "memory_bytes", "disk_bytes"):
            if type(getattr(self, name)) is not int:
                raise TypeError(f"Resources.{name} must be an int, got {getattr(self, name)!r}")

    def __add__(self, other: Resources) -> Resources:
        return Resources(self.cpu_millis + other.cpu_millis,
                         self.memory_bytes + other.memory_bytes,
                         self.disk_bytes + other.disk_bytes)

    def __sub__(self, other: Resources) -> Resources:
        return Resources(self.cpu_millis - other.cpu_millis,
                         self.memory_bytes - other.memory_bytes,
                         self.disk_bytes - other.disk_bytes)

    def __mul__(self, count: int) -> Resources:
        if type(count) is not int:
            return NotImplemented
        return Resources(self.cpu_millis * count, self.memory_bytes * count, self.disk_bytes * count)

    __rmul__ = __mul__

    def fits_in(self, other: Resources) -> bool:
        """True if every component is at most `other`'s (a demand fits in free space)."""
        return (self.cpu_millis <= other.cpu_millis
                and self.memory_bytes <= other.memory_bytes
                and self.disk_bytes <= other.disk_bytes)

    def is_nonnegative(self) -> bool:
        return self.cpu_millis >= 0 and self.memory_bytes >= 0 and self.disk_bytes >= 0

    def __str__(self) -> str:
        text = f"{format_cpu(self.cpu_millis)}, {format_memory(self.memory_bytes)}"
        if self.disk_bytes:
            text += f", {format_memory(self.disk_bytes)} disk"
        return text


ZERO = Resources(0, 0, 0)
Resources.ZERO = ZERO


def total_of(amounts: Iterable[Resources]) -> Resources:
    """The sum of `amounts`, made once: a node's ledger sums every claim and
    reservation it holds on each bid and placement pass, and `+` made (and
    type-checked) a Resources per term (966,149 of them in one 64-node,
    500-replica simulated scene)."""
    cpu_millis = memory_bytes = disk_bytes = 0
    for a in amounts:
        cpu_millis += a.cpu_millis
        memory_bytes += a.memory_bytes
        disk_bytes += a.disk_bytes
    return Resources(cpu_millis, memory_bytes, disk_bytes)


def _amount(text: str) -> tuple[int, int, str]:
    """Split "1.5GiB" into (15, 10, "gib"): the number is numerator/denominator
    (a power of ten, not reduced); raise UnitError if malformed."""
    if len(text) > MAX_UNIT_TEXT_CHARS:
        raise UnitError(f"{text[:MAX_UNIT_TEXT_CHARS]!r}... is too long")
    m = _AMOUNT_RE.fullmatch(text.strip())
    if m is None:
        raise UnitError(f"{text!r} is not a number with an optional unit")
    whole, _, decimals = m.group(1).partition(".")
    return int(whole + decimals or "0"), 10 ** len(decimals), m.group(2).lower()


def parse_memory(value: int | str) -> int:
    """Bytes from an int byte count or a string like "512MiB", "1G", "256m", "1.5 GB"."""
    if type(value) is int:
        if value < 0:
            raise UnitError(f"{value} is negative")
        return value
    if not isinstance(value, str):
        raise UnitError("must be a string with a unit (\"512MiB\") or an integer "
                        f"number of bytes, got {json_kind(value)}")
    numerator, denominator, unit = _amount(value)
    if unit not in MEMORY_UNITS:
        raise UnitError(f"{value!r} has an unknown unit {unit!r} "
                        "(use B, KiB, MiB, GiB, TiB, KB, MB, GB, TB or k, m, g, t)")
    return numerator * MEMORY_UNITS[unit] // denominator  # floor: both are non-negative


def parse_cpu(value: float | str) -> int:
    """Millicores from cores (1.5, 2, "1.5") or millicores as a string ("500m")."""
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise UnitError("must be a number of cores (0.5) or a string (\"0.5\", \"500m\"), "
                        f"got {json_kind(value)}")
    if isinstance(value, float):
        if not math.isfinite(value):
            raise UnitError(f"{value} is not a finite number")
        if abs(value) > MAX_PARSED_CORES:
            raise UnitError(f"{value} is far too large")
        rounded = round(value * MILLIS_PER_CORE)
        # 0.1 * 1000 is 100.00000000000001: accept float noise, not real fractions.
        if abs(value * MILLIS_PER_CORE - rounded) > 1e-6 * max(1.0, abs(rounded)):
            raise UnitError(f"{value} is finer than one millicore (0.001)")
        millis, denominator = rounded, 1  # millicores: numerator/denominator
    elif isinstance(value, int):
        millis, denominator = value * MILLIS_PER_CORE, 1
    else:
        millis, denominator, unit = _amount(value)
        if unit == "":
            millis *= MILLIS_PER_CORE
        elif unit != "m":
            raise UnitError(f"{value!r} has an unknown unit {unit!r} (write cores, or 'm' for millicores)")
    if millis < 0:
        raise UnitError(f"{value!r} is negative")
    if millis % denominator:
        raise UnitError(f"{value!r} is finer than one millicore (0.001)")
    return millis // denominator


def json_kind(value: object) -> str:
    """The JSON/TOML name of a value's type, for error messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, (list, tuple)):
        return "an array"
    if isinstance(value, dict):
        return "a table"
    return type(value).__name__


def _round(numerator: int, denominator: int) -> int:
    """numerator/denominator (both non-negative) rounded half to even, as round() does."""
    quotient, remainder = divmod(numerator, denominator)
    if 2 * remainder > denominator or 2 * remainder == denominator and quotient % 2:
        quotient += 1
    return quotient


def _decimal(numerator: int, denominator: int, max_places: int) -> str:
    """numerator/denominator rounded to max_places, trailing zeros dropped but one kept."""
    sign = "-" if numerator < 0 else ""
    scaled = _round(abs(numerator) * 10**max_places, denominator)
    whole, frac = divmod(scaled, 10**max_places)
    digits = str(frac).rjust(max_places, "0").rstrip("0") or "0"
    return f"{sign}{whole}.{digits}"


def format_cpu(cpu_millis: int) -> str:
    """1500 -> "1.5 cpu", 2000 -> "2.0 cpu", 250 -> "0.25 cpu"."""
    return f"{_decimal(cpu_millis, MILLIS_PER_CORE, 3)} cpu"


_HUMAN_UNITS = (("TiB", TiB), ("GiB", GiB), ("MiB", MiB), ("KiB", KiB))


def format_memory(memory_bytes: int) -> str:
    """3 << 29 -> "1.5 GiB", 64 MiB -> "64.0 MiB", 512 -> "512 B" (at most 2 decimals)."""
    size = abs(memory_bytes)
    for i, (name, unit) in enumerate(_HUMAN_UNITS):
        if size >= unit:
            # 1023.999 MiB would round to "1024.0 MiB": say "1.0 GiB" instead.
            if i > 0 and _round(size * 100, unit) >= 1024 * 100:
                name, unit = _HUMAN_UNITS[i - 1]
            return f"{_decimal(memory_bytes, unit, 2)} {name}"
    return f"{memory_bytes} B"


def canonical_memory(memory_bytes: int) -> str:
    """The exact form used in canonical specs: the largest binary unit that divides it."""
    if memory_bytes < 0:
        raise ValueError(f"memory {memory_bytes} is negative")
    for name, unit in _HUMAN_UNITS:
        if memory_bytes and memory_bytes % unit == 0:
            return f"{memory_bytes // unit}{name}"
    return f"{memory_bytes}B"
