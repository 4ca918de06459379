"""AES-GCM keyring compatible with memberlist / Serf encryption.

How this works: a keyring is an ordered list of AES keys (16, 24 or 32 bytes);
the first is the primary.  We encrypt with the primary and try every key, in
order, to decrypt, which is what lets a cluster rotate keys without a flag
day: install the new key everywhere, `use` it everywhere, then `remove` the
old one.  The envelope is `version | nonce(12) | ciphertext || tag(16)`.
Version 1 (what we write) encrypts the message as is; version 0, written by
peers running protocol 1, PKCS#7-pads the message to 16 bytes *inside* the
GCM plaintext, so we strip the padding after decrypting.  The caller chooses
the additional authenticated data (the label for packets; header + label for
streams).  Nonces come from `nonce_fn` so this module draws no entropy itself
(the driver passes os.urandom, tests pass something fixed).
"""

from __future__ import annotations

import base64
import binascii
from typing import TYPE_CHECKING, Callable

from gossip.errors import DecodeError

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

NONCE_BYTES = 12
TAG_BYTES = 16
VERSION_BYTES = 1
# memberlist: encryptionVersion 0 pads, 1 does not; anything newer is unknown.
MAX_ENCRYPTION_VERSION = 1
ENCRYPT_OVERHEAD_V1_BYTES = VERSION_BYTES + NONCE_BYTES + TAG_BYTES  # 29
ENCRYPT_OVERHEAD_V0_BYTES = ENCRYPT_OVERHEAD_V1_BYTES + 16  # 45: worst-case padding
_BLOCK_BYTES = 16
_KEY_SIZES = (16, 24, 32)


def validate_key(key: bytes) -> bytes:
    if not isinstance(key, (bytes, bytearray)):
        raise ValueError(f"encryption key must be bytes, not {type(key).__name__}")
    if len(key) not in _KEY_SIZES:
        raise ValueError(
            f"encryption key must be 16, 24 or 32 bytes (AES-128/192/256), got {len(key)} bytes"
        )
    return bytes(key)


class Keyring:
    def __init__(self, keys: list[bytes], nonce_fn: Callable[[int], bytes]):
        if not keys:
            raise ValueError("a keyring needs at least one key")
        # cryptography (its own OpenSSL: ~7 MiB resident) is imported only
        # by a node that has keys, not by every importer of this module.
        from cryptography.exceptions import InvalidTag
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM

        self._aesgcm = AESGCM
        self._invalid_tag = InvalidTag
        self._nonce_fn = nonce_fn
        self._keys: list[bytes] = []
        self._ciphers: dict[bytes, AESGCM] = {}
        for k in keys:
            k = validate_key(k)
            if k not in self._ciphers:
                self._keys.append(k)
                self._ciphers[k] = AESGCM(k)

    @property
    def keys(self) -> list[bytes]:
        """All installed keys, primary first."""
        return list(self._keys)

    @property
    def primary(self) -> bytes:
        return self._keys[0]

    def install(self, key: bytes) -> None:
        """Add a key for decryption (no-op if already installed)."""
        key = validate_key(key)
        if key not in self._ciphers:
            self._keys.append(key)
            self._ciphers[key] = self._aesgcm(key)

    def use(self, key: bytes) -> None:
        """Make an installed key the primary (used to encrypt)."""
        key = validate_key(key)
        if key not in self._ciphers:
            raise ValueError("cannot use a key that is not installed")
        self._keys.remove(key)
        self._keys.insert(0, key)

    def remove(self, key: bytes) -> None:
        key = validate_key(key)
        if key not in self._ciphers:
            raise ValueError("cannot remove a key that is not installed")
        if key == self._keys[0]:
            raise ValueError("cannot remove the primary key; use another key first")
        self._keys.remove(key)
        del self._ciphers[key]

    def encrypt(self, plaintext: bytes, aad: bytes, *, version: int = 1) -> bytes:
        """version | nonce | AES-GCM(plaintext) with the primary key.
        version=0 exists for talking to protocol-1 peers and for tests."""
        if version not in (0, 1):
            raise ValueError(f"unknown encryption version {version}")
        nonce = bytes(self._nonce_fn(NONCE_BYTES))
        if len(nonce) != NONCE_BYTES:
            raise ValueError(f"nonce_fn returned {len(nonce)} bytes, want {NONCE_BYTES}")
        if version == 0:
            pad = _BLOCK_BYTES - len(plaintext) % _BLOCK_BYTES  # always 1..16
            plaintext = bytes(plaintext) + bytes((pad,)) * pad
        ct = self._ciphers[self._keys[0]].encrypt(nonce, bytes(plaintext), bytes(aad) or None)
        return bytes((version,)) + nonce + ct

    def decrypt(self, data: bytes, aad: bytes) -> bytes:
        """Plaintext of an envelope, trying every key in order."""
        data = bytes(data)
        if not data:
            raise DecodeError("decrypt", "empty ciphertext")
        version = data[0]
        if version > MAX_ENCRYPTION_VERSION:
            raise DecodeError("decrypt", f"unsupported encryption version {version}")
        min_len = ENCRYPT_OVERHEAD_V1_BYTES + (_BLOCK_BYTES if version == 0 else 0)
        if len(data) < min_len:
            raise DecodeError("decrypt", "payload too small to decrypt")
        nonce = data[1 : 1 + NONCE_BYTES]
        ct = data[1 + NONCE_BYTES :]
        aad_or_none = bytes(aad) or None
        for key in self._keys:
            try:
                plain = self._ciphers[key].decrypt(nonce, ct, aad_or_none)
            except self._invalid_tag:
                continue
            if version == 0:
                return _strip_pkcs7(plain)
            return plain
        raise DecodeError("decrypt", "no installed key decrypts this message")


def _strip_pkcs7(buf: bytes) -> bytes:
    # memberlist trusts the padding byte blindly (it is authenticated); we
    # still check it so a bad sender cannot make us slice nonsense.
    if not buf:
        raise DecodeError("decrypt", "empty v0 plaintext")
    pad = buf[-1]
    if not 1 <= pad <= _BLOCK_BYTES or pad > len(buf):
        raise DecodeError("decrypt", "bad PKCS#7 padding")
    return buf[:-pad]


def decode_key(text: str) -> bytes:
    """Serf/Consul key format (standard base64 of the raw key) -> bytes."""
    try:
        key = base64.b64decode(text.strip(), validate=True)
    except (binascii.Error, ValueError, AttributeError, TypeError):
        raise ValueError("encryption key is not valid base64") from None
    return validate_key(key)


def encode_key(key: bytes) -> str:
    return base64.b64encode(validate_key(key)).decode("ascii")
