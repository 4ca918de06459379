"""A row's body as msgpack with a keyed blake2b checksum: the row shape the
claim store (claims.db) and the version store (versions.db) share.

How this works: a store keeps an object's wire form (its `to_wire()`) as
msgpack in a BLOB, beside a 16-byte blake2b checksum of that BLOB keyed
by the store's own `person` string (so a row copied from one file into the
other never checks out).  Reading a row checks size, then checksum, then
that it decodes; each failure is a `BadRow` saying which, for
node.state.sqlitefile to delete the row and report it.  SQLite has no page
checksums: the checksum is what turns a flipped bit into a reported row
instead of a wrong claim or version.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import msgpack

from node.state.sqlitefile import BadRow

CHECKSUM_BYTES = 16
T = TypeVar("T")


@dataclass(frozen=True)
class RowBody:
    person: bytes          # blake2b personalisation, at most 16 bytes: one per store
    max_body_bytes: int
    noun: str              # what a body holds, for BadRow messages ("claim", "version")

    def checksum(self, body: bytes) -> bytes:
        return hashlib.blake2b(body, digest_size=CHECKSUM_BYTES, person=self.person).digest()

    def encode(self, wire: Any) -> tuple[bytes, bytes]:
        """The body of an object's wire form, and its checksum."""
        body: bytes = msgpack.packb(wire, use_bin_type=True)
        return body, self.checksum(body)

    def decode(self, body: object, checksum: object, from_wire: Callable[[Any], T]) -> T:
        """The object a stored body holds, or BadRow saying what is wrong."""
        if not isinstance(body, bytes) or not 0 < len(body) <= self.max_body_bytes:
            raise BadRow("body missing or too large")
        if not isinstance(checksum, bytes) or self.checksum(body) != checksum:
            raise BadRow("checksum mismatch")
        try:
            return from_wire(msgpack.unpackb(body, raw=False))
        except Exception as exc:  # msgpack raises several types; from_wire ValueError
            raise BadRow(f"undecodable {self.noun} ({exc})") from None
