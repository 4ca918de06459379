"""The one error type for bytes from the network that the gossip layer refuses.

How this works: every decoder (message codec, LZW, packet framing, keyring)
raises `DecodeError` with a short `reason` token that the driver counts as a
metric, never a msgpack, struct or Unicode exception.  It lives in its own
module so the decoders can share it without importing each other.
"""

from __future__ import annotations


class DecodeError(ValueError):
    """Bytes from the network that we refuse.  `reason` is a short token for
    metrics ("malformed", "label", "decrypt", "crc", "too_large",
    "unencrypted", "unknown_type"); `detail` is for logs."""

    def __init__(self, reason: str, detail: str = ""):
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail
