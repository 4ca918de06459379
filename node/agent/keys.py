"""The agent's encryption keys: the keyring file and key rotation.

How this works: the gossip core holds a `gossip.security.Keyring` (primary
key first; encrypt with the primary, try every key to decrypt).  This module
owns everything around it that touches disk or spans the cluster:

- `initial_keys(config)` decides the starting keys (see node.agent.config's
  docstring: a keyring file wins over `encrypt`; a missing file is created
  from `encrypt`).
- `KeyManager.apply(action, key)` performs `install` / `use` / `remove` on the
  live keyring (only ever from the pump task, which owns the core) and writes
  the keyring file back atomically: a temp file in the same directory,
  fsync, rename over the old one, fsync of the directory.  Refused: using a
  key that is not installed, removing the primary key, a malformed key.
- Cluster-wide rotation travels as a reliable (TCP) memberlist user message
  to every alive member, msgpack `{"op": "key", "action": ..., "key": b64}`.
  A receiver applies it only if it has a keyring: the core then rejects
  anything that is not encrypted under an installed key, so the message
  provably comes from a node the cluster already trusts.  An unencrypted
  agent ignores key messages.  (Serf does rotation with internal queries,
  which shoal does not speak; rotate a mixed cluster with `serf keys` on the
  Serf side and `shoal keys` on ours.)
"""

from __future__ import annotations

import base64
import json
import logging
import os
import tempfile
from pathlib import Path
from typing import Any

import msgpack

from node.agent.config import AgentConfig, ConfigError, KEY_SIZES, decode_b64_key

log = logging.getLogger("shoal.keys")

ACTIONS = ("install", "use", "remove")
MAX_KEYS = 64


class KeyOpError(ValueError):
    """A refused key operation; str() is the message for the user."""


def encode_key(key: bytes) -> str:
    return base64.b64encode(key).decode("ascii")


def parse_key(b64: Any) -> bytes:
    if not isinstance(b64, str):
        raise KeyOpError("key: expected a base64 string")
    try:
        return decode_b64_key(b64, "key")
    except ConfigError as e:
        raise KeyOpError(str(e)) from None


# ---- the keyring file --------------------------------------------------------


def load_keyring_file(path: Path) -> list[bytes]:
    try:
        raw = json.loads(path.read_text())
    except FileNotFoundError:
        raise
    except (OSError, ValueError) as e:
        raise ConfigError("keyring_file", f"cannot read {path}: {e}") from None
    if not isinstance(raw, list) or not raw or not all(isinstance(k, str) for k in raw):
        raise ConfigError("keyring_file", f"{path} must hold a non-empty JSON list of base64 keys")
    if len(raw) > MAX_KEYS:
        raise ConfigError("keyring_file", f"{path} holds more than {MAX_KEYS} keys")
    keys = [decode_b64_key(k, "keyring_file") for k in raw]
    return list(dict.fromkeys(keys))  # drop duplicates, keep order


def save_keyring_file(path: Path, keys: list[bytes]) -> None:
    """Atomic replace: readers see the old list or the new one, never half."""
    path.parent.mkdir(parents=True, exist_ok=True)
    data = json.dumps([encode_key(k) for k in keys], indent=2) + "\n"
    fd, tmp = tempfile.mkstemp(prefix=".keyring-", dir=str(path.parent))
    try:
        with os.fdopen(fd, "w") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    dir_fd = os.open(str(path.parent), os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def initial_keys(cfg: AgentConfig) -> list[bytes] | None:
    """The keys to start with, primary first; None when gossip is unencrypted."""
    if cfg.keyring_file is not None:
        try:
            keys = load_keyring_file(cfg.keyring_file)
        except FileNotFoundError:
            if cfg.encrypt is None:
                raise ConfigError(
                    "keyring_file", f"{cfg.keyring_file} does not exist and no encrypt key was given to create it"
                ) from None
            save_keyring_file(cfg.keyring_file, [cfg.encrypt])
            log.info("created keyring file %s", cfg.keyring_file)
            return [cfg.encrypt]
        if cfg.encrypt is not None and cfg.encrypt not in keys:
            log.warning("encrypt key ignored: keyring file %s exists and does not hold it", cfg.keyring_file)
        return keys
    if cfg.encrypt is not None:
        return [cfg.encrypt]
    return None


# ---- rotation on the live keyring ----------------------------------------------


def _keys_of(keyring: Any) -> list[bytes]:
    k = keyring.keys
    return list(k() if callable(k) else k)


def _primary_of(keyring: Any) -> bytes:
    p = keyring.primary
    return p() if callable(p) else p


class KeyManager:
    """Key operations on the core's keyring, persisted to the keyring file."""

    def __init__(self, keyring: Any, path: Path | None) -> None:
        self.keyring = keyring
        self.path = path

    @property
    def enabled(self) -> bool:
        return self.keyring is not None

    def listing(self) -> dict[str, Any]:
        if self.keyring is None:
            return {"encrypted": False, "keys": [], "primary": None}
        return {
            "encrypted": True,
            "keys": [encode_key(k) for k in _keys_of(self.keyring)],
            "primary": encode_key(_primary_of(self.keyring)),
        }

    def apply(self, action: str, key: bytes) -> bool:
        """Perform one operation; True if the keyring changed."""
        if self.keyring is None:
            raise KeyOpError("gossip encryption is not enabled on this agent (start it with --encrypt)")
        if action not in ACTIONS:
            raise KeyOpError(f"action: unknown {action!r}; choose one of {', '.join(ACTIONS)}")
        if len(key) not in KEY_SIZES:
            raise KeyOpError(f"key: {len(key)} bytes; AES needs 16, 24 or 32")
        keys = _keys_of(self.keyring)
        changed = False
        if action == "install":
            if key not in keys:
                if len(keys) >= MAX_KEYS:
                    raise KeyOpError(f"keyring already holds {MAX_KEYS} keys")
                self.keyring.install(key)
                changed = True
        elif action == "use":
            if key not in keys:
                raise KeyOpError("key is not installed; install it first")
            if key != _primary_of(self.keyring):
                self.keyring.use(key)
                changed = True
        else:
            if key == _primary_of(self.keyring):
                raise KeyOpError("cannot remove the primary key; use another key first")
            if key in keys:
                self.keyring.remove(key)
                changed = True
        if changed and self.path is not None:
            save_keyring_file(self.path, _keys_of(self.keyring))
        return changed


# ---- cluster-wide messages ------------------------------------------------------


def encode_key_message(action: str, key: bytes) -> bytes:
    return msgpack.packb({"op": "key", "action": action, "key": encode_key(key)}, use_bin_type=False)


def decode_key_message(data: bytes) -> tuple[str, bytes] | None:
    """(action, key) if `data` is a well-formed key message, else None."""
    try:
        obj = msgpack.unpackb(data, raw=False, strict_map_key=True)
    except Exception:
        return None
    if not isinstance(obj, dict) or obj.get("op") != "key":
        return None
    action = obj.get("action")
    if action not in ACTIONS:
        return None
    try:
        return action, parse_key(obj.get("key"))
    except KeyOpError:
        return None
