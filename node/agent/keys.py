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
  to every alive member, msgpack `{"op": "key", "action": ..., "key": b64,
  "epoch": N}`.  A receiver applies it only if it has a keyring: the core
  then rejects anything that is not encrypted under an installed key, so the
  message provably comes from a node the cluster already trusts.  An
  unencrypted agent ignores key messages.  (Serf does rotation with internal
  queries, which shoal does not speak; rotate a mixed cluster with `serf
  keys` on the Serf side and `shoal keys` on ours.)

The epoch (rule: a key message is applied only if its epoch is above every
epoch this agent has applied or issued, and at most `MAX_EPOCH_AHEAD_MS`
ahead of its wall clock).  Without it a recorded message could be replayed
later, say `use OLDKEY` after the cluster moved on, or `remove NEWKEY`.  An
epoch is a hybrid clock in milliseconds: `KeyManager.issue` stamps
max(highest epoch seen + 1, wall clock ms), so it grows on every node that
issues, also after a restart, and a node that has seen no rotation yet
still outranks every earlier one (unless its clock lags by more than the
time between the two rotations; two rotations issued in the same
millisecond on two nodes: the one a node hears second is stale there, so
rotate from one place at a time).  Like the Lamport time Serf puts on its
key queries, it orders operations; unlike Serf's query dedupe window, a
replay is refused however old.  The highest epoch is saved next to the
keyring file (`keyring.json.epoch`) so it survives a restart; with no
keyring file it lives in memory.  Messages without an epoch (from a shoal
before epochs) are refused.  Each outcome is counted (KeyManager.outcomes,
`shoal_key_messages_total{outcome}`): applied, unchanged, stale, future,
malformed, refused (the operation itself is invalid here), disabled.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import msgpack

from node.agent.config import KEY_SIZES, AgentConfig, ConfigError, decode_b64_key

if TYPE_CHECKING:
    from node.telemetry.metrics import AgentMetrics

log = logging.getLogger("shoal.keys")

ACTIONS = ("install", "use", "remove")
MAX_KEYS = 64
# Epochs further ahead of our wall clock are refused: one from a far-future
# clock would freeze rotation until the clocks caught up.  The same bound as
# the job store's stamps (node.core.hlc's max skew).
MAX_EPOCH_AHEAD_MS = 60_000
# msgpack's largest unsigned integer; anything above is not an epoch.
MAX_EPOCH = (1 << 64) - 1
LOG_EVERY_S = 10.0


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
    _write_atomic(path, json.dumps([encode_key(k) for k in keys], indent=2) + "\n")


def epoch_path(keyring_path: Path) -> Path:
    """Where the highest key epoch is kept, next to the keyring file."""
    return keyring_path.with_name(keyring_path.name + ".epoch")


def load_epoch(path: Path) -> int:
    """The saved epoch; 0 if there is none yet or it is unreadable (logged)."""
    try:
        text = path.read_text().strip()
    except FileNotFoundError:
        return 0
    except OSError as e:
        log.warning("cannot read key epoch %s: %s; starting from 0", path, e)
        return 0
    if not text.isdigit() or int(text) > MAX_EPOCH:
        log.warning("ignoring key epoch file %s: not a number", path)
        return 0
    return int(text)


def _write_atomic(path: Path, data: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
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


@dataclass(frozen=True, slots=True)
class KeyMessage:
    action: str
    key: bytes
    epoch: int


class KeyManager:
    """Key operations on the core's keyring, persisted to the keyring file,
    and the cluster-wide messages with their epochs (see the module doc)."""

    def __init__(
        self,
        keyring: Any,
        path: Path | None,
        *,
        metrics: AgentMetrics | None = None,
        wall_ms: Callable[[], int] = lambda: time.time_ns() // 1_000_000,
    ) -> None:
        self.keyring = keyring
        self.path = path
        self.metrics = metrics
        self.wall_ms = wall_ms
        self.epoch = load_epoch(epoch_path(path)) if path is not None and keyring is not None else 0
        self.outcomes: Counter[str] = Counter()
        self._logged: dict[str, float] = {}

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

    # ---- cluster-wide messages ----

    def issue(self, action: str, key: bytes) -> bytes:
        """Apply an operation here and return the key message that carries it
        to the other members, under a new epoch.  Raises KeyOpError."""
        self.apply(action, key)
        self._advance(max(self.epoch + 1, self.wall_ms()))
        return encode_key_message(action, key, self.epoch)

    def receive(self, data: bytes, origin: str = "?") -> str | None:
        """Handle a user message: None if it is not a key message, else the
        outcome (counted; see the module doc).  Never raises."""
        try:
            msg = read_key_message(data)
        except KeyOpError as e:
            return self._count("malformed", f"key message from {origin} refused: {e}")
        if msg is None:
            return None
        what = f"key {msg.action} from {origin} (epoch {msg.epoch})"
        if self.keyring is None:
            return self._count("disabled", f"{what} ignored: this agent does not use encryption")
        if msg.epoch <= self.epoch:
            return self._count("stale", f"{what} ignored: not after epoch {self.epoch} (a replay or stale)")
        if msg.epoch > self.wall_ms() + MAX_EPOCH_AHEAD_MS:
            return self._count("future", f"{what} ignored: more than {MAX_EPOCH_AHEAD_MS} ms ahead of our clock")
        try:
            changed = self.apply(msg.action, msg.key)
        except (KeyOpError, OSError) as e:
            return self._count("refused", f"{what} refused: {e}")
        self._advance(msg.epoch)
        return self._count("applied" if changed else "unchanged", f"{what}: {'applied' if changed else 'already so'}",
                           level=logging.INFO)

    def _advance(self, epoch: int) -> None:
        self.epoch = epoch
        if self.path is not None:
            try:
                _write_atomic(epoch_path(self.path), f"{epoch}\n")
            except OSError as e:  # the operation stands; only replay protection across a restart is lost
                log.warning("cannot save key epoch %d to %s: %s", epoch, epoch_path(self.path), e)

    def _count(self, outcome: str, text: str, level: int = logging.WARNING) -> str:
        self.outcomes[outcome] += 1
        if self.metrics is not None:
            self.metrics.key_messages.labels(outcome=outcome).inc()
        # A flood of replays must not flood the log: one warning per outcome
        # per LOG_EVERY_S, the rest at DEBUG.
        if level >= logging.WARNING:
            now = time.monotonic()
            if now - self._logged.get(outcome, -LOG_EVERY_S) >= LOG_EVERY_S:
                self._logged[outcome] = now
            else:
                level = logging.DEBUG
        log.log(level, "%s", text)
        return outcome


# ---- the message format ------------------------------------------------------------


def encode_key_message(action: str, key: bytes, epoch: int | None = None) -> bytes:
    obj: dict[str, Any] = {"op": "key", "action": action, "key": encode_key(key)}
    if epoch is not None:
        obj["epoch"] = epoch
    return msgpack.packb(obj, use_bin_type=False)


def _key_message_map(data: bytes) -> dict[str, Any] | None:
    try:
        obj = msgpack.unpackb(data, raw=False, strict_map_key=True)
    except Exception:
        return None
    if not isinstance(obj, dict) or obj.get("op") != "key":
        return None
    return obj


def decode_key_message(data: bytes) -> tuple[str, bytes] | None:
    """(action, key) if `data` is a well-formed key message, else None; the
    epoch is not looked at.  Only for callers that have not moved to
    `KeyManager.issue` / `KeyManager.receive`, which check it."""
    obj = _key_message_map(data)
    if obj is None or obj.get("action") not in ACTIONS:
        return None
    try:
        return obj["action"], parse_key(obj.get("key"))
    except KeyOpError:
        return None


def read_key_message(data: bytes) -> KeyMessage | None:
    """The key message in `data`; None if `data` is not a key message at all
    (another user message); KeyOpError if it is one but malformed, a missing
    or out-of-range epoch included."""
    obj = _key_message_map(data)
    if obj is None:
        return None
    action = obj.get("action")
    if action not in ACTIONS:
        raise KeyOpError(f"action: expected one of {', '.join(ACTIONS)}")
    epoch = obj.get("epoch")
    if epoch is None:
        raise KeyOpError("no epoch (sent by a shoal from before key epochs?)")
    if isinstance(epoch, bool) or not isinstance(epoch, int) or not 0 < epoch <= MAX_EPOCH:
        raise KeyOpError("epoch: expected a positive integer")
    return KeyMessage(action, parse_key(obj.get("key")), epoch)
