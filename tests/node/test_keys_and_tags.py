"""Keyring file handling, key operations, key messages, and Serf-style tags."""

from __future__ import annotations

import json
import os

import pytest

from gossip.security import Keyring
from node.agent.config import AgentConfig, ConfigError
from node.agent.keys import (
    KeyManager,
    KeyOpError,
    decode_key_message,
    encode_key,
    encode_key_message,
    initial_keys,
    load_keyring_file,
    save_keyring_file,
)
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
