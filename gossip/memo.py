"""A decode cache bounded by entry count, entry size and total bytes.

How this works: decoding gossip is a pure function of the bytes and its
result an immutable value, and every member receives the same gossip many
times over, so recent results are remembered by their bytes (the codec and
the UDP dispatcher each keep one).  The network chooses those bytes, so the
cache takes only what an honest peer sends: the caller offers canonical
messages, and `put` refuses any key over `max_entry_bytes`; when the count
or the summed key bytes would pass their caps the cache is emptied (the
next lookups simply decode again).  `get` is the dict's own, for speed.
"""

from __future__ import annotations

from typing import Generic, TypeVar

from .limits import MEMO_ENTRY_MAX_BYTES, MEMO_MAX_BYTES, MEMO_MAX_ENTRIES

V = TypeVar("V")


class Memo(Generic[V]):
    __slots__ = ("_bytes", "_entries", "get", "max_bytes", "max_entries", "max_entry_bytes")

    def __init__(self, max_entries: int = MEMO_MAX_ENTRIES, max_bytes: int = MEMO_MAX_BYTES,
                 max_entry_bytes: int = MEMO_ENTRY_MAX_BYTES) -> None:
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self.max_entry_bytes = max_entry_bytes
        self._entries: dict[bytes, V] = {}
        self._bytes = 0
        self.get = self._entries.get

    def put(self, key: bytes, value: V) -> None:
        n = len(key)
        if n > self.max_entry_bytes:
            return
        entries = self._entries
        if len(entries) >= self.max_entries or self._bytes + n > self.max_bytes:
            entries.clear()
            self._bytes = 0
        if key not in entries:
            self._bytes += n
        entries[key] = value

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def total_bytes(self) -> int:
        """Summed length of the keys held (what the byte cap counts)."""
        return self._bytes

    def clear(self) -> None:
        self._entries.clear()
        self._bytes = 0
