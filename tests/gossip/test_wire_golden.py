"""Every memberlist golden vector of memberlist-wire.md §13 round-trips byte for byte.

How this works: the vectors were produced by go-msgpack v2.1.5 and Go's
crypto/aes, compress/lzw and hash/crc32 (key 00..0f, nonce a0..ab, label
"prod").  Each test decodes a vector into our message values, checks the
values, and encodes them again: the bytes must be identical, because a Go
peer is the judge of compatibility and these are the bytes it produces.
"""

from __future__ import annotations

import msgpack
import pytest

from gossip import compound, gopack, packet, wire
from gossip.messages import (
    AckResp,
    Alive,
    Dead,
    ErrResp,
    IndirectPingReq,
    NackResp,
    NodeStateCode,
    Ping,
    PushNodeState,
    PushPull,
    Suspect,
    UserMsg,
)
from gossip.security import Keyring

# ping {SeqNo:1, Node:node-b, SourceAddr:10.0.0.1, SourcePort:7946, SourceNode:node-a}  (69 B)
PING = bytes.fromhex(
    "0085a44e6f6465a66e6f64652d62a55365714e6f01aa536f7572636541646472a40a000001aa536f757263654e6f6465"
    "a66e6f64652d61aa536f75726365506f7274cd1f0a"
)
# ping {SeqNo:300, Node:""} (omitempty Source* fields dropped)  (17 B)
PING_EMPTY = bytes.fromhex("0082a44e6f6465a0a55365714e6fcd012c")
# indirectPingReq {SeqNo:2, Target:10.0.0.2, Port:7946, Node:node-b, Nack:true, Source*=node-a}  (95 B)
INDIRECT_PING = bytes.fromhex(
    "0188a44e61636bc3a44e6f6465a66e6f64652d62a4506f7274cd1f0aa55365714e6f02aa536f7572636541646472a40a"
    "000001aa536f757263654e6f6465a66e6f64652d61aa536f75726365506f7274cd1f0aa6546172676574a40a000002"
)
# ackResp {SeqNo:1, Payload:nil}  (18 B)
ACK_NIL = bytes.fromhex("0282a75061796c6f6164c0a55365714e6f01")
# ackResp {SeqNo:1, Payload:010203}  (21 B)
ACK_PAYLOAD = bytes.fromhex("0282a75061796c6f6164a3010203a55365714e6f01")
# suspect {Incarnation:5, Node:node-b, From:node-a}  (39 B)
SUSPECT = bytes.fromhex("0383a446726f6da66e6f64652d61ab496e6361726e6174696f6e05a44e6f6465a66e6f64652d62")
# dead {Incarnation:5, Node:node-b, From:node-a}  (39 B)
DEAD = bytes.fromhex("0583a446726f6da66e6f64652d61ab496e6361726e6174696f6e05a44e6f6465a66e6f64652d62")
# nackResp {SeqNo:2}  (9 B)
NACK = bytes.fromhex("0b81a55365714e6f02")
# errResp {Error:"boom"}  (13 B)
ERR_BOOM = bytes.fromhex("0d81a54572726f72a4626f6f6d")
# Serf tags as Meta: 0xFF + {"role":"web"}  (11 B)
TAGS_META = bytes.fromhex("ff81a4726f6c65a3776562")
# alive {Incarnation:1, Node:node-a, Addr:10.0.0.1, Port:7946, Meta:<tags>, Vsn:[1,5,2,2,5,4]}  (73 B)
ALIVE = bytes.fromhex(
    "0486a441646472a40a000001ab496e6361726e6174696f6e01a44d657461abff81a4726f6c65a3776562a44e6f6465a6"
    "6e6f64652d61a4506f7274cd1f0aa356736ea6010502020504"
)
# alive with 16-byte IPv4-mapped Addr, Meta nil, Vsn [1,5,2,0,0,0]  (69 B)
ALIVE_16 = bytes.fromhex(
    "0486a441646472b000000000000000000000ffff0a000001ab496e6361726e6174696f6e01a44d657461c0a44e6f6465"
    "a16ea4506f7274cd1f0aa356736ea6010502000000"
)
# compound [ping, alive]  (148 B)
COMPOUND = bytes.fromhex(
    "0702004500490085a44e6f6465a66e6f64652d62a55365714e6f01aa536f7572636541646472a40a000001aa536f7572"
    "63654e6f6465a66e6f64652d61aa536f75726365506f7274cd1f0a0486a441646472a40a000001ab496e6361726e6174"
    "696f6e01a44d657461abff81a4726f6c65a3776562a44e6f6465a66e6f64652d61a4506f7274cd1f0aa356736ea60105"
    "02020504"
)
# CRC-wrapped ping  (74 B)
CRC_PING = bytes.fromhex(
    "0ce06122330085a44e6f6465a66e6f64652d62a55365714e6f01aa536f7572636541646472a40a000001aa536f757263"
    "654e6f6465a66e6f64652d61aa536f75726365506f7274cd1f0a"
)
# label "prod" + ping  (75 B)
LABEL_PING = bytes.fromhex(
    "f40470726f640085a44e6f6465a66e6f64652d62a55365714e6f01aa536f7572636541646472a40a000001aa536f7572"
    "63654e6f6465a66e6f64652d61aa536f75726365506f7274cd1f0a"
)
# ping encrypted v1, no label (empty AAD)  (98 B)
ENC_V1 = bytes.fromhex(
    "01a0a1a2a3a4a5a6a7a8a9aaabaa039cf511ed56ace417d1656b701533369f6d6782bd6ec0506212fe03e9ebda3ea945"
    "310e40bf020aac81a1e1b46db51a3a232d56acf747d159fbb88600541283457ecd6162082e1ba1f53f1699092f75285a"
    "d177"
)
# label "prod" + ping encrypted v1 with AAD "prod"  (104 B)
ENC_V1_LABEL = bytes.fromhex(
    "f40470726f6401a0a1a2a3a4a5a6a7a8a9aaabaa039cf511ed56ace417d1656b701533369f6d6782bd6ec0506212fe03"
    "e9ebda3ea945310e40bf020aac81a1e1b46db51a3a232d56acf747d159fbb88600541283457ecd615773b4343c314ca3"
    "a9a553952a85d70a"
)
# ping encrypted v0 (PKCS#7 padding inside GCM plaintext), no label  (109 B)
ENC_V0 = bytes.fromhex(
    "00a0a1a2a3a4a5a6a7a8a9aaabaa039cf511ed56ace417d1656b701533369f6d6782bd6ec0506212fe03e9ebda3ea945"
    "310e40bf020aac81a1e1b46db51a3a232d56acf747d159fbb88600541283457ecd617d9ac9db1884b952224e8b3338ce"
    "5dabf4c9b6cc3fdf7c22d82619"
)
# compressMsg (LZW) wrapping the compound above  (153 B)
COMPRESSED_COMPOUND = bytes.fromhex(
    "0982a4416c676f00a3427566da008a000f080050044012008548397943a68c29370ccbb410536a4a99380b03a89af2a6"
    "8e9c31658290212387940200003472f4087261c387115b84d9d8f16319286fe4d069f641010143a44492348932c0aa24"
    "6ec68491e3260c9d346fdc0420d5a40c9d30abfe052225e70d9b32a3ee9411a33022cc863249e1d4c953c1282b73dc98"
    "0a5040808002040202"
)
# Serf join intent {LTime:7, Node:node-a}  (21 B)
SERF_JOIN = bytes.fromhex("0182a54c54696d6507a44e6f6465a66e6f64652d61")
# ...the same as a memberlist user message (one UDP part)  (22 B)
SERF_JOIN_USER_MSG = bytes.fromhex("080182a54c54696d6507a44e6f6465a66e6f64652d61")
# Serf leave intent {LTime:8, Node:node-a, Prune:false}  (28 B)
SERF_LEAVE = bytes.fromhex("0083a54c54696d6508a44e6f6465a66e6f64652d61a55072756e65c2")
# Serf user event {LTime:3, Name:deploy, Payload:"v1", CC:true}  (36 B)
SERF_USER_EVENT = bytes.fromhex("0384a24343c3a54c54696d6503a44e616d65a66465706c6f79a75061796c6f6164a27631")
# Serf query {LTime:2, ID:99, Addr:10.0.0.1, Port:7946, SourceNode:node-a, Timeout:5s, Name:_serf_ping}  (120 B)
SERF_QUERY = bytes.fromhex(
    "048ba441646472a40a000001a746696c74657273c0a5466c61677300a2494463a54c54696d6502a44e616d65aa5f7365"
    "72665f70696e67a75061796c6f6164c0a4506f7274cd1f0aab52656c6179466163746f7200aa536f757263654e6f6465"
    "a66e6f64652d61a754696d656f7574d3000000012a05f200"
)
# Serf ack payload: 0x01 + Coordinate{Vec:8x0.0, Error:1.5, Adjustment:0, Height:1e-5}  (130 B)
SERF_ACK_PAYLOAD = bytes.fromhex(
    "0184aa41646a7573746d656e74cb0000000000000000a54572726f72cb3ff8000000000000a6486569676874cb3ee4f8"
    "b588e368f1a356656398cb0000000000000000cb0000000000000000cb0000000000000000cb0000000000000000cb00"
    "00000000000000cb0000000000000000cb0000000000000000cb0000000000000000"
)
# Serf push/pull user state (76 B):
# {LTime:9, StatusLTimes:{node-a:7}, LeftMembers:[], EventLTime:1, Events:nil, QueryLTime:1}
SERF_USER_STATE = bytes.fromhex(
    "0286aa4576656e744c54696d6501a64576656e7473c0a54c54696d6509ab4c6566744d656d6265727390aa5175657279"
    "4c54696d6501ac5374617475734c54696d657381a66e6f64652d6107"
)
# TCP push/pull, Join=true, 1 node (node-a with tags), user state = previous vector; no compression/encryption  (184 B)
STREAM_PUSH_PULL = bytes.fromhex(
    "0683a44a6f696ec3a54e6f64657301ac5573657253746174654c656e4c87a441646472a40a000001ab496e6361726e61"
    "74696f6e01a44d657461abff81a4726f6c65a3776562a44e616d65a66e6f64652d61a4506f7274cd1f0aa55374617465"
    "00a356736ea60105020205040286aa4576656e744c54696d6501a64576656e7473c0a54c54696d6509ab4c6566744d65"
    "6d6265727390aa51756572794c54696d6501ac5374617475734c54696d657381a66e6f64652d6107"
)
# same stream compressed (0x09 wrapper)  (191 B)
STREAM_COMPRESSED = bytes.fromhex(
    "0982a4416c676f00a3427566da00b0000d0c22a5e44d1a37c34a397943a6cc9c00acaacc2923670a9d3074ca3029e386"
    "c9215241c89091434a0100000156257133268c1c3718d3bc7113805493321757fd0b444ace1b366546dd292386949330"
    "6dca9872c3b04c8b30a4a0bc9143a7d90705a52c622c03609495396e4c05282040400102020ca92a6287231d2654d224"
    "0d608aaddb39c04ac1955b26c1aa8d66e8dc6c2386e21c48aaa2d4a19867ef5c565ae9d499e3d861a0a54d9f1e0808"
)
# same plain stream encrypted v1, no label (header 0a + u32 length, AAD = those 5 bytes)  (218 B)
STREAM_ENCRYPTED = bytes.fromhex(
    "0a000000d501a0a1a2a3a4a5a6a7a8a9aaabac059cf111e05dc92f36da642361b1cc069d467ad0635cdb405c14f50e0a"
    "2be9fec7379505eaec6cd4978ca7cea967b1c83d23273225db88f657253564c176129d5410a50e14358cb17eea143746"
    "21e561d8fe7e1093ff6c0e118c6bde1978250648286f5fc5dfb90063b571576731ea47fd3afe642504b8b687a8ecba79"
    "a304f12106b4200eb947a51ffff2fe59e620f30df5c20c3ff1e8946e15a137fc4ac9b0ef7c85c2026c01f243eb203e6c"
    "2681462a01da0aaf3f4b292d30b403dbab24fad7873e847e6a28"
)
# same, with label "prod" (label header first; AAD = 5 header bytes + "prod")  (224 B)
STREAM_ENCRYPTED_LABEL = bytes.fromhex(
    "f40470726f640a000000d501a0a1a2a3a4a5a6a7a8a9aaabac059cf111e05dc92f36da642361b1cc069d467ad0635cdb"
    "405c14f50e0a2be9fec7379505eaec6cd4978ca7cea967b1c83d23273225db88f657253564c176129d5410a50e14358c"
    "b17eea14374621e561d8fe7e1093ff6c0e118c6bde1978250648286f5fc5dfb90063b571576731ea47fd3afe642504b8"
    "b687a8ecba79a304f12106b4200eb947a51ffff2fe59e620f30df5c20c3ff1e8946e15a137fc4ac9b0ef7c85c2026c01"
    "f243eb203e6c2681462a01da0aaf3f4b43f6ee5dd9781aa02ac844c8beea13b7"
)
# TCP reliable user message "abc"  (17 B)
STREAM_USER = bytes.fromhex("0881aa557365724d73674c656e03616263")
# pushPullHeader {Nodes:200, UserStateLen:70000, Join:false} (Go int => signed markers d1/d2)  (34 B)
PUSH_PULL_HEADER = bytes.fromhex("83a44a6f696ec2a54e6f646573d100c8ac5573657253746174654c656ed200011170")
# errResp with a 40-byte string (raw16 0xda, never str8)  (50 B)
ERR_RAW16 = bytes.fromhex(
    "81a54572726f72da00283031323334353637383930313233343536373839303132333435363738393031323334353637"
    "3839"
)

IP_A = bytes([10, 0, 0, 1])
IP_B = bytes([10, 0, 0, 2])
SERF_VSN = (1, 5, 2, 2, 5, 4)

PING_MSG = Ping(seq_no=1, node="node-b", source_addr=IP_A, source_port=7946, source_node="node-a")
ALIVE_MSG = Alive(incarnation=1, node="node-a", addr=IP_A, port=7946, meta=TAGS_META, vsn=SERF_VSN)
PUSH_PULL_MSG = PushPull(
    join=True,
    nodes=(
        PushNodeState(
            name="node-a",
            addr=IP_A,
            port=7946,
            meta=TAGS_META,
            incarnation=1,
            state=NodeStateCode.ALIVE,
            vsn=SERF_VSN,
        ),
    ),
    user_state=SERF_USER_STATE,
)

KEY = bytes(range(16))
NONCE = bytes(range(0xA0, 0xAC))
LABEL = b"prod"


def fixed_keyring() -> Keyring:
    return Keyring([KEY], lambda n: NONCE[:n])


def roundtrip_one(vector: bytes, expected):
    (msg,) = compound.decode_messages(vector)
    assert msg == expected
    assert wire.encode(msg) == vector


def test_ping():
    roundtrip_one(PING, PING_MSG)


def test_ping_omitempty():
    roundtrip_one(PING_EMPTY, Ping(seq_no=300, node=""))


def test_indirect_ping():
    roundtrip_one(
        INDIRECT_PING,
        IndirectPingReq(
            seq_no=2,
            target=IP_B,
            port=7946,
            node="node-b",
            nack=True,
            source_addr=IP_A,
            source_port=7946,
            source_node="node-a",
        ),
    )


def test_acks():
    roundtrip_one(ACK_NIL, AckResp(seq_no=1))
    roundtrip_one(ACK_PAYLOAD, AckResp(seq_no=1, payload=b"\x01\x02\x03"))
    roundtrip_one(NACK, NackResp(seq_no=2))


def test_suspect_dead():
    roundtrip_one(SUSPECT, Suspect(incarnation=5, node="node-b", from_node="node-a"))
    roundtrip_one(DEAD, Dead(incarnation=5, node="node-b", from_node="node-a"))


def test_alive():
    roundtrip_one(ALIVE, ALIVE_MSG)
    roundtrip_one(
        ALIVE_16,
        Alive(
            incarnation=1,
            node="n",
            addr=bytes(10) + b"\xff\xff" + IP_A,
            port=7946,
            meta=b"",
            vsn=(1, 5, 2, 0, 0, 0),
        ),
    )


def test_tags_meta_is_legacy_msgpack():
    assert TAGS_META == b"\xff" + msgpack.packb({"role": "web"}, use_bin_type=False)
    assert TAGS_META == b"\xff" + gopack.pack_go({"role": "web"})


def test_compound():
    assert compound.decode_messages(COMPOUND) == [PING_MSG, ALIVE_MSG]
    assert compound.make_compound([wire.encode(PING_MSG), wire.encode(ALIVE_MSG)]) == COMPOUND


def test_compressed_compound():
    assert compound.decode_messages(COMPRESSED_COMPOUND) == [PING_MSG, ALIVE_MSG]
    assert wire.compress_message(COMPOUND) == COMPRESSED_COMPOUND


def test_err_resp():
    assert wire.encode(ErrResp("boom")) == ERR_BOOM
    assert wire.encode(ErrResp("0123456789" * 4)) == b"\x0d" + ERR_RAW16


def test_user_msg_udp_form():
    roundtrip_one(SERF_JOIN_USER_MSG, UserMsg(payload=SERF_JOIN))


def test_user_msg_stream_form():
    assert wire.encode_stream_user(UserMsg(b"abc")) == STREAM_USER


def test_push_pull_stream_form():
    assert wire.encode(PUSH_PULL_MSG) == STREAM_PUSH_PULL


def test_push_pull_header_uses_signed_markers_for_go_ints():
    # 200 nodes and a 70000-byte user state: the header must carry d1/d2.
    node = PUSH_PULL_MSG.nodes[0]
    msg = PushPull(join=False, nodes=(node,) * 200, user_state=b"x" * 70000)
    data = wire.encode(msg)
    assert data[0] == 6
    assert data[1 : 1 + len(PUSH_PULL_HEADER)] == PUSH_PULL_HEADER


def test_go_int_packing():
    assert gopack.pack_go(gopack.GoInt(200)) == bytes.fromhex("d100c8")
    assert gopack.pack_go(gopack.GoInt(70000)) == bytes.fromhex("d200011170")
    assert gopack.pack_go(gopack.GoInt(5_000_000_000)) == bytes.fromhex("d3000000012a05f200")
    assert gopack.pack_go(200) == bytes.fromhex("ccc8")
    assert gopack.pack_go("x" * 40)[:3] == bytes.fromhex("da0028")


# ---- Serf payloads: opaque to memberlist, checked at the msgpack level ----


def test_serf_payloads_repack_identically():
    join = msgpack.unpackb(SERF_JOIN[1:], raw=True)
    assert join == {b"LTime": 7, b"Node": b"node-a"}
    assert SERF_JOIN[:1] + gopack.pack_go(join) == SERF_JOIN
    leave = msgpack.unpackb(SERF_LEAVE[1:], raw=True)
    assert leave == {b"LTime": 8, b"Node": b"node-a", b"Prune": False}
    assert SERF_LEAVE[:1] + gopack.pack_go(leave) == SERF_LEAVE
    event = msgpack.unpackb(SERF_USER_EVENT[1:], raw=True)
    assert event[b"Name"] == b"deploy" and event[b"CC"] is True
    assert SERF_USER_EVENT[:1] + gopack.pack_go(event) == SERF_USER_EVENT
    query = msgpack.unpackb(SERF_QUERY[1:], raw=True)
    assert query[b"Timeout"] == 5_000_000_000 and query[b"Name"] == b"_serf_ping"
    query[b"Timeout"] = gopack.GoInt(query[b"Timeout"])  # Go time.Duration is int64
    assert SERF_QUERY[:1] + gopack.pack_go(query) == SERF_QUERY
    coord = msgpack.unpackb(SERF_ACK_PAYLOAD[1:], raw=True)
    assert coord[b"Error"] == 1.5 and coord[b"Height"] == 1e-5 and coord[b"Vec"] == [0.0] * 8
    assert SERF_ACK_PAYLOAD[:1] + gopack.pack_go(coord) == SERF_ACK_PAYLOAD
    state = msgpack.unpackb(SERF_USER_STATE[1:], raw=True)
    assert state[b"StatusLTimes"] == {b"node-a": 7} and state[b"Events"] is None
    assert SERF_USER_STATE[:1] + gopack.pack_go(state) == SERF_USER_STATE


# ---- packet envelopes: CRC, label, encryption ----------------------------


def test_crc_wrapped_ping():
    assert packet.open_packet(CRC_PING, label=b"", keyring=None) == [PING_MSG]
    assert packet.seal_packet(PING, label=b"", keyring=None, crc=True, compress=False) == CRC_PING


def test_labelled_ping():
    assert packet.open_packet(LABEL_PING, label=LABEL, keyring=None) == [PING_MSG]
    assert packet.seal_packet(PING, label=LABEL, keyring=None, crc=False, compress=False) == LABEL_PING


def test_encrypted_ping_v1():
    kr = fixed_keyring()
    assert packet.open_packet(ENC_V1, label=b"", keyring=kr) == [PING_MSG]
    assert packet.seal_packet(PING, label=b"", keyring=kr, crc=False, compress=False) == ENC_V1


def test_encrypted_labelled_ping_v1():
    kr = fixed_keyring()
    assert packet.open_packet(ENC_V1_LABEL, label=LABEL, keyring=kr) == [PING_MSG]
    assert packet.seal_packet(PING, label=LABEL, keyring=kr, crc=False, compress=False) == ENC_V1_LABEL


def test_encrypted_ping_v0():
    kr = fixed_keyring()
    assert packet.open_packet(ENC_V0, label=b"", keyring=kr) == [PING_MSG]
    assert kr.decrypt(ENC_V0, b"") == PING
    assert kr.encrypt(PING, b"", version=0) == ENC_V0


def test_compressed_packet_opens():
    assert packet.open_packet(COMPRESSED_COMPOUND, label=b"", keyring=None) == [PING_MSG, ALIVE_MSG]


# ---- streams -------------------------------------------------------------


def feed_bytewise(dec: packet.StreamDecoder, data: bytes):
    """Feed one byte at a time: the message must appear exactly at the end."""
    for i in range(len(data)):
        got = dec.feed(data[i : i + 1])
        if got is not None:
            assert i == len(data) - 1, f"message complete after {i + 1} of {len(data)} bytes"
            return got
    return dec.feed_eof()


def stream_decoder(keyring=None, label=b"", expect_label_header=False):
    return packet.StreamDecoder(label=label, keyring=keyring, expect_label_header=expect_label_header)


@pytest.mark.parametrize("bytewise", [False, True])
def test_plain_push_pull_stream(bytewise):
    dec = stream_decoder()
    got = feed_bytewise(dec, STREAM_PUSH_PULL) if bytewise else dec.feed(STREAM_PUSH_PULL)
    assert got == PUSH_PULL_MSG
    assert packet.seal_stream(
        wire.encode(got), label=b"", keyring=None, compress=False, write_label=False
    ) == STREAM_PUSH_PULL


def test_compressed_push_pull_stream():
    assert feed_bytewise(stream_decoder(), STREAM_COMPRESSED) == PUSH_PULL_MSG
    sealed = packet.seal_stream(
        wire.encode(PUSH_PULL_MSG), label=b"", keyring=None, compress=True, write_label=False
    )
    assert sealed == STREAM_COMPRESSED


def test_encrypted_push_pull_stream():
    kr = fixed_keyring()
    assert feed_bytewise(stream_decoder(kr), STREAM_ENCRYPTED) == PUSH_PULL_MSG
    sealed = packet.seal_stream(
        wire.encode(PUSH_PULL_MSG), label=b"", keyring=kr, compress=False, write_label=False
    )
    assert sealed == STREAM_ENCRYPTED


def test_encrypted_labelled_push_pull_stream():
    kr = fixed_keyring()
    dec = stream_decoder(kr, LABEL, expect_label_header=True)
    assert feed_bytewise(dec, STREAM_ENCRYPTED_LABEL) == PUSH_PULL_MSG
    sealed = packet.seal_stream(
        wire.encode(PUSH_PULL_MSG), label=LABEL, keyring=kr, compress=False, write_label=True
    )
    assert sealed == STREAM_ENCRYPTED_LABEL
    # The reply direction carries no label header but the label is still AAD.
    reply = packet.seal_stream(
        wire.encode(PUSH_PULL_MSG), label=LABEL, keyring=kr, compress=False, write_label=False
    )
    assert reply == STREAM_ENCRYPTED_LABEL[2 + len(LABEL) :]
    assert stream_decoder(kr, LABEL).feed(reply) == PUSH_PULL_MSG


def test_user_and_err_streams():
    assert feed_bytewise(stream_decoder(), STREAM_USER) == UserMsg(b"abc")
    assert feed_bytewise(stream_decoder(), ERR_BOOM) == ErrResp("boom")
    assert stream_decoder().feed(b"\x0d" + ERR_RAW16) == ErrResp("0123456789" * 4)


def test_tcp_ping_and_ack_streams():
    assert feed_bytewise(stream_decoder(), PING) == PING_MSG
    assert feed_bytewise(stream_decoder(), ACK_PAYLOAD) == AckResp(seq_no=1, payload=b"\x01\x02\x03")
