"""Keyring rotation, wrong keys, labels and refusing plaintext.

How this works: two keyrings stand in for two nodes; packets and streams
sealed by one are opened by the other under the configurations a cluster
goes through while rotating keys or partitioning by label.
"""

from __future__ import annotations

import itertools

import pytest

from gossip import compound, packet, wire
from gossip.errors import DecodeError
from gossip.messages import Alive, Ping, PushPull
from gossip.security import Keyring, decode_key, encode_key

K1 = bytes(range(16))
K2 = bytes(range(16, 48))  # 32 bytes: AES-256
K3 = bytes(range(100, 124))  # 24 bytes: AES-192
PING = wire.encode(Ping(seq_no=7, node="b", source_addr=b"\x7f\x00\x00\x01", source_port=1, source_node="a"))


def counter_nonces():
    counter = itertools.count()
    return lambda n: next(counter).to_bytes(n, "big")


def ring(*keys: bytes) -> Keyring:
    return Keyring(list(keys), counter_nonces())


def seal(msg: bytes, kr: Keyring | None, label: bytes = b"") -> bytes:
    return packet.seal_packet(msg, label=label, keyring=kr, crc=True, compress=False)


def test_key_validation():
    for bad in (b"", b"x" * 15, b"x" * 17, b"x" * 33):
        with pytest.raises(ValueError, match="16, 24 or 32 bytes"):
            Keyring([bad], counter_nonces())
    with pytest.raises(ValueError):
        Keyring([], counter_nonces())
    kr = ring(K1)
    with pytest.raises(ValueError):
        kr.install(b"short")


def test_key_text_format():
    assert decode_key(encode_key(K2)) == K2
    # A Serf `keygen` style key.
    assert len(decode_key("cg8StVXbQJ0gPvMd9o7yrg==")) == 16
    for bad in ("not base64!!", "AAAA", ""):
        with pytest.raises(ValueError):
            decode_key(bad)


def test_rotation_install_use_remove():
    a, b = ring(K1), ring(K1)
    # Step 1: install K2 everywhere; still encrypting with K1.
    a.install(K2)
    b.install(K2)
    assert a.keys == [K1, K2] and a.primary == K1
    # Step 2: a switches first; b can read it because K2 is installed.
    a.use(K2)
    assert a.primary == K2 and a.keys == [K2, K1]
    assert packet.open_packet(seal(PING, a), label=b"", keyring=b) == compound.decode_messages(PING)
    # And a still reads b's K1 traffic.
    assert packet.open_packet(seal(PING, b), label=b"", keyring=a) == compound.decode_messages(PING)
    b.use(K2)
    # Step 3: remove K1.
    a.remove(K1)
    b.remove(K1)
    assert a.keys == [K2]
    old = ring(K1)
    with pytest.raises(DecodeError) as e:
        packet.open_packet(seal(PING, old), label=b"", keyring=a)
    assert e.value.reason == "decrypt"


def test_remove_rules():
    kr = ring(K1, K2)
    with pytest.raises(ValueError, match="primary"):
        kr.remove(K1)
    with pytest.raises(ValueError, match="not installed"):
        kr.remove(K3)
    with pytest.raises(ValueError, match="not installed"):
        kr.use(K3)
    kr.install(K2)  # idempotent
    assert kr.keys == [K1, K2]


def test_wrong_key_is_decrypt_error():
    data = seal(PING, ring(K1))
    with pytest.raises(DecodeError) as e:
        packet.open_packet(data, label=b"", keyring=ring(K3))
    assert e.value.reason == "decrypt"
    stream = packet.seal_stream(
        wire.encode(PushPull(join=True, nodes=())), label=b"", keyring=ring(K1), compress=True, write_label=False
    )
    with pytest.raises(DecodeError) as e:
        packet.StreamDecoder(label=b"", keyring=ring(K2), expect_label_header=False).feed(stream)
    assert e.value.reason == "decrypt"


def test_tampered_ciphertext_is_refused():
    data = bytearray(seal(PING, ring(K1)))
    data[20] ^= 1
    with pytest.raises(DecodeError) as e:
        packet.open_packet(bytes(data), label=b"", keyring=ring(K1))
    assert e.value.reason == "decrypt"


def test_label_mismatch_dropped():
    data = seal(PING, None, label=b"blue")
    for ours in (b"green", b""):
        with pytest.raises(DecodeError) as e:
            packet.open_packet(data, label=ours, keyring=None)
        assert e.value.reason == "label"
    # Unlabelled packet at a labelled node.
    with pytest.raises(DecodeError) as e:
        packet.open_packet(seal(PING, None), label=b"blue", keyring=None)
    assert e.value.reason == "label"


def test_label_is_authenticated_when_encrypted():
    kr = ring(K1)
    data = seal(PING, kr, label=b"blue")
    # Rewrite the cleartext label header: GCM's AAD no longer matches.
    forged = b"\xf4\x04pink" + data[6:]
    with pytest.raises(DecodeError) as e:
        packet.open_packet(forged, label=b"pink", keyring=ring(K1))
    assert e.value.reason == "decrypt"
    # Stream label is authenticated too.
    stream = packet.seal_stream(wire.encode(PushPull(join=False, nodes=())), label=b"blue",
                                keyring=kr, compress=False, write_label=False)
    with pytest.raises(DecodeError):
        packet.StreamDecoder(label=b"pink", keyring=ring(K1), expect_label_header=False).feed(stream)


def test_skip_inbound_label_check():
    unlabelled = seal(PING, None)
    got = packet.open_packet(unlabelled, label=b"blue", keyring=None, skip_inbound_label_check=True)
    assert got == compound.decode_messages(PING)
    with pytest.raises(DecodeError) as e:
        packet.open_packet(seal(PING, None, b"blue"), label=b"blue", keyring=None, skip_inbound_label_check=True)
    assert e.value.reason == "label"


def test_stream_label_header_checked():
    payload = wire.encode(PushPull(join=True, nodes=()))
    data = packet.seal_stream(payload, label=b"blue", keyring=None, compress=False, write_label=True)
    assert packet.StreamDecoder(label=b"blue", keyring=None, expect_label_header=True).feed(data) is not None
    with pytest.raises(DecodeError) as e:
        packet.StreamDecoder(label=b"green", keyring=None, expect_label_header=True).feed(data)
    assert e.value.reason == "label"
    no_label = packet.seal_stream(payload, label=b"", keyring=None, compress=False, write_label=True)
    with pytest.raises(DecodeError) as e:
        packet.StreamDecoder(label=b"blue", keyring=None, expect_label_header=True).feed(no_label)
    assert e.value.reason == "label"


def test_unencrypted_refused_when_keyring_set():
    alive = wire.encode(Alive(incarnation=1, node="x", addr=b"\x01\x02\x03\x04", port=1, meta=b"",
                              vsn=(1, 5, 2, 0, 0, 0)))
    for plain in (seal(alive, None), seal(PING, None), PING, alive):
        with pytest.raises(DecodeError) as e:
            packet.open_packet(plain, label=b"", keyring=ring(K1))
        assert e.value.reason in ("unencrypted", "decrypt")
    stream = packet.seal_stream(wire.encode(PushPull(join=True, nodes=())), label=b"", keyring=None,
                                compress=False, write_label=False)
    with pytest.raises(DecodeError) as e:
        packet.StreamDecoder(label=b"", keyring=ring(K1), expect_label_header=False).feed(stream)
    assert e.value.reason == "unencrypted"


def test_encrypted_stream_without_keyring_refused():
    stream = packet.seal_stream(wire.encode(PushPull(join=True, nodes=())), label=b"", keyring=ring(K1),
                                compress=False, write_label=False)
    with pytest.raises(DecodeError) as e:
        packet.StreamDecoder(label=b"", keyring=None, expect_label_header=False).feed(stream)
    assert e.value.reason == "decrypt"


def test_v0_envelopes_from_old_peers_accepted():
    kr = ring(K1, K2)
    old_peer = ring(K2)
    for msg in (b"", b"x", b"y" * 15, b"z" * 16, PING):
        assert kr.decrypt(old_peer.encrypt(msg, b"aad", version=0), b"aad") == msg
        assert kr.decrypt(old_peer.encrypt(msg, b"aad", version=1), b"aad") == msg
    with pytest.raises(DecodeError):
        kr.decrypt(b"\x02" + bytes(40), b"")
    with pytest.raises(DecodeError):
        kr.decrypt(b"\x01" + bytes(10), b"")
