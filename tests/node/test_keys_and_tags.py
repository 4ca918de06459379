"""Keyring file handling, key operations, key messages, and Serf-style tags."""

from __future__ import annotations

import json
import os

import pytest

from gossip.security import Keyring
from node.agent.config import AgentConfig, ConfigError
from node.agent.keys import (
    MAX_EPOCH_AHEAD_MS,
    KeyManager,
    KeyMessage,
    KeyOpError,
    decode_key_message,
    encode_key,
    encode_key_message,
    epoch_path,
    initial_keys,
    load_keyring_file,
    read_key_message,
    save_keyring_file,
)
from node.telemetry.metrics import AgentMetrics
from node.agent.tags import TagsTooLarge, decode_tags, encode_tags

K1, K2, K3 = bytes(16), bytes(range(32)), bytes(range(1, 25))


def test_tags_match_serf_golden_vector():
    # memberlist-wire.md §13: Serf tags as Meta: 0xFF + {"role":"web"}
    assert encode_tags({"role": "web"}).hex() == "ff81a4726f6c65a3776562"
    assert decode_tags(bytes.fromhex("ff81a4726f6c65a3776562")) == {"role": "web"}


def test_tags_legacy_and_garbage():
    assert decode_tags(b"") == {}
    assert decode_tags(b"web") == {"role": "web"}  # Serf's legacy form
    assert decode_tags(b"\xff\xc1") == {}  # never raises
    assert decode_tags(b"\xff\x93\x01\x02\x03") == {}
    with pytest.raises(TagsTooLarge):
        encode_tags({"x": "y" * 600})


def test_keyring_file_round_trip_and_atomic_write(tmp_path):
    path = tmp_path / "sub" / "keyring.json"
    save_keyring_file(path, [K2, K1])
    assert json.loads(path.read_text()) == [encode_key(K2), encode_key(K1)]
    assert load_keyring_file(path) == [K2, K1]
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    assert [p.name for p in path.parent.iterdir()] == ["keyring.json"]  # no temp files left


@pytest.mark.parametrize("text", ["", "{}", "[]", '["!!"]', "[1]", json.dumps([encode_key(b"short")])])
def test_bad_keyring_file_names_the_field(tmp_path, text):
    path = tmp_path / "keyring.json"
    path.write_text(text)
    with pytest.raises(ConfigError) as e:
        load_keyring_file(path)
    assert e.value.field == "keyring_file"


def test_initial_keys(tmp_path):
    assert initial_keys(AgentConfig()) is None
    assert initial_keys(AgentConfig(encrypt=K1)) == [K1]
    path = tmp_path / "keyring.json"
    with pytest.raises(ConfigError) as e:
        initial_keys(AgentConfig(keyring_file=path))
    assert e.value.field == "keyring_file"
    # created from --encrypt when missing ...
    assert initial_keys(AgentConfig(keyring_file=path, encrypt=K1)) == [K1]
    assert load_keyring_file(path) == [K1]
    # ... and the file wins once it exists
    save_keyring_file(path, [K2, K1])
    assert initial_keys(AgentConfig(keyring_file=path, encrypt=K3)) == [K2, K1]


def test_key_manager_rotation_persists(tmp_path):
    path = tmp_path / "keyring.json"
    kr = Keyring([K1], os.urandom)
    km = KeyManager(kr, path)
    assert km.apply("install", K2) is True
    assert km.apply("install", K2) is False  # idempotent
    assert load_keyring_file(path) == [K1, K2]
    with pytest.raises(KeyOpError):
        km.apply("use", K3)  # not installed
    assert km.apply("use", K2) is True
    assert kr.primary == K2
    with pytest.raises(KeyOpError, match="primary"):
        km.apply("remove", K2)
    assert km.apply("remove", K1) is True
    assert load_keyring_file(path) == [K2]
    assert km.listing() == {"encrypted": True, "keys": [encode_key(K2)], "primary": encode_key(K2)}
    with pytest.raises(KeyOpError, match="action"):
        km.apply("burn", K2)


def test_key_manager_without_encryption():
    km = KeyManager(None, None)
    assert km.listing()["encrypted"] is False
    with pytest.raises(KeyOpError, match="not enabled"):
        km.apply("install", K1)


def test_key_message_round_trip():
    assert decode_key_message(encode_key_message("use", K2)) == ("use", K2)
    assert decode_key_message(b"") is None
    assert decode_key_message(b"\x81\xa2op\xa3key") is None  # no action/key
    assert decode_key_message(encode_key_message("use", K2).replace(b"use", b"xyz")) is None


# ---- epochs: a replayed or stale rotation is ignored, and counted ------------------

NOW_MS = 1_800_000_000_000


class Clock:
    def __init__(self, ms: int = NOW_MS) -> None:
        self.ms = ms

    def __call__(self) -> int:
        return self.ms


def manager(tmp_path, name: str, keys: list[bytes], clock: Clock, metrics=None) -> KeyManager:
    path = tmp_path / name / "keyring.json"
    save_keyring_file(path, keys)
    return KeyManager(Keyring(load_keyring_file(path), os.urandom), path, metrics=metrics, wall_ms=clock)


def test_key_messages_carry_an_epoch():
    data = encode_key_message("use", K2, 7)
    assert read_key_message(data) == KeyMessage("use", K2, 7)
    assert decode_key_message(data) == ("use", K2)  # the epoch-blind reader still reads it
    assert read_key_message(b"") is None and read_key_message(b"\x81\xa2op\xa3job") is None  # not ours
    for bad in (encode_key_message("use", K2),  # no epoch: a shoal from before epochs
                encode_key_message("use", K2, 0), encode_key_message("use", K2, -3),
                encode_key_message("use", K2, True), encode_key_message("burn", K2, 7)):
        with pytest.raises(KeyOpError):
            read_key_message(bad)


def test_a_replayed_or_stale_key_message_is_ignored_and_counted(tmp_path):
    clock = Clock()
    a = manager(tmp_path, "a", [K1], clock)
    metrics = AgentMetrics()
    b = manager(tmp_path, "b", [K1], clock, metrics)
    install = a.issue("install", K2)
    use = a.issue("use", K2)
    clock.ms += 1000
    remove = a.issue("remove", K1)
    epochs = [read_key_message(m).epoch for m in (install, use, remove)]
    assert epochs == sorted(set(epochs)) and epochs[0] == NOW_MS  # strictly increasing, from the wall clock
    assert [b.receive(m, "a") for m in (install, use, remove)] == ["applied"] * 3
    assert b.listing() == a.listing() and b.keyring.primary == K2

    # The operator puts K1 back; a recording of the old `remove K1` and
    # `use K2` replayed later changes nothing.
    clock.ms += 1000
    assert b.receive(a.issue("install", K1), "a") == "applied"
    assert b.receive(a.issue("use", K1), "a") == "applied"
    assert [b.receive(m, "x") for m in (remove, use, install)] == ["stale"] * 3
    assert b.keyring.primary == K1 and set(b.keyring.keys) == {K1, K2}
    # the same message twice: the second is a replay
    m = a.issue("remove", K2)
    assert [b.receive(m, "a"), b.receive(m, "a")] == ["applied", "stale"]

    # a far-future epoch would freeze rotation: refused
    assert b.receive(encode_key_message("install", K3, clock.ms + MAX_EPOCH_AHEAD_MS + 1), "x") == "future"
    assert K3 not in b.keyring.keys
    # not a key message at all: left to the caller
    assert b.receive(b"\x81\xa2op\xa3job", "a") is None
    assert b.outcomes == {"applied": 6, "stale": 4, "future": 1}
    assert metrics.key_messages.labels(outcome="stale")._value.get() == 4
    assert metrics.key_messages.labels(outcome="future")._value.get() == 1


def test_a_node_that_saw_no_rotation_still_issues_a_newer_epoch(tmp_path):
    clock = Clock()
    a, b, c = (manager(tmp_path, n, [K1], clock) for n in "abc")
    assert c.receive(a.issue("install", K2), "a") == "applied"
    # b missed it (it was down); a rotation issued there later still wins at c
    clock.ms += 5
    assert c.receive(b.issue("install", K3), "b") == "applied"
    # and b catches up: issuing after receiving stays ahead of what it received,
    # even when its clock lags
    clock.ms += 5
    assert b.receive(a.issue("install", K2), "a") == "applied"
    clock.ms -= 1000
    assert read_key_message(b.issue("use", K3)).epoch == a.epoch + 1


def test_the_epoch_survives_a_restart(tmp_path):
    clock = Clock()
    a = manager(tmp_path, "a", [K1], clock)
    b = manager(tmp_path, "b", [K1], clock)
    old = a.issue("install", K2)
    assert b.receive(old, "a") == "applied"
    assert epoch_path(b.path).read_text().strip() == str(NOW_MS)
    b2 = KeyManager(Keyring(load_keyring_file(b.path), os.urandom), b.path, wall_ms=clock)
    assert b2.epoch == NOW_MS and b2.receive(old, "x") == "stale"
    # an unreadable epoch file starts from 0 rather than stopping the agent
    epoch_path(b.path).write_text("garbage\n")
    assert KeyManager(Keyring([K1], os.urandom), b.path, wall_ms=clock).epoch == 0


def test_refused_and_disabled_key_messages_are_counted(tmp_path):
    clock = Clock()
    a = manager(tmp_path, "a", [K1], clock)
    b = manager(tmp_path, "b", [K1], clock)
    # `use` of a key b does not hold: refused, and its epoch does not count as seen
    assert b.receive(encode_key_message("use", K3, NOW_MS), "a") == "refused"
    assert b.epoch == 0
    assert b.receive(a.issue("install", K3), "a") == "applied"
    off = KeyManager(None, None)
    assert off.receive(a.issue("install", K2), "a") == "disabled"
    assert off.receive(encode_key_message("install", K2), "a") == "malformed"
    assert b.outcomes == {"refused": 1, "applied": 1} and off.outcomes == {"disabled": 1, "malformed": 1}
