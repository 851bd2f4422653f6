"""Message bodies of swimpy.wire.messages against memberlist v0.2.2 / serf 0.9.4 bytes."""

from __future__ import annotations

import contextlib
import re
import struct
from pathlib import Path
from typing import Any

import msgpack
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from swimpy.wire import lzw, messages
from swimpy.wire.errors import WireError
from swimpy.wire.messages import (
    Ack,
    Alive,
    Compress,
    Dead,
    Err,
    IndirectPing,
    Message,
    Nack,
    PacketMessage,
    Ping,
    PushNodeState,
    PushPullHeader,
    Suspect,
    UserMsg,
    UserMsgHeader,
    body_from_object_untrusted,
    decode_body_untrusted,
    decode_message_untrusted,
    encode_body,
    encode_message,
)
from swimpy.wire.packet import WireOptions, decode_packet_untrusted

VECTOR_DIR = Path(__file__).resolve().parent / "vectors"

_VECTOR_LINE = re.compile(r"^VECTOR\s+(.*?)\s+len=(\d+)\s+([0-9a-f]*)\s*$")
_SECTION_LINE = re.compile(r"^=== (\d+)\.")


def load_vectors(section: int | None = None) -> dict[str, bytes]:
    """``VECTOR`` lines of memberlist-0.2.2.txt (optionally of one ``=== N.`` section)."""
    out: dict[str, bytes] = {}
    current = 0
    for line in (VECTOR_DIR / "memberlist-0.2.2.txt").read_text().splitlines():
        sec = _SECTION_LINE.match(line)
        if sec:
            current = int(sec.group(1))
            continue
        m = _VECTOR_LINE.match(line)
        if m and (section is None or section == current):
            raw = bytes.fromhex(m.group(3))
            assert len(raw) == int(m.group(2)), m.group(1)
            out[m.group(1)] = raw
    return out


VECTORS = load_vectors()

LOCALHOST = bytes((127, 0, 0, 1))
SERF_META_WEB = b"\xff\x81\xa4role\xa3web"
VSN_SERF = bytes((1, 5, 2, 2, 5, 4))
NAME40 = "n" * 40

#: The typed value behind every message vector of section 1.
SECTION1_VALUES: dict[str, Message] = {
    "ping(full)": Ping(1, "node-b", LOCALHOST, 7946, "node-a"),
    "ping(omitempty source fields)": Ping(42, "node-b"),
    "indirectPing": IndirectPing(
        7, bytes((127, 0, 0, 2)), 7946, "node-c", True, LOCALHOST, 7946, "node-a"
    ),
    "ackResp(nil payload)": Ack(1),
    "ackResp(payload 010203)": Ack(300, b"\x01\x02\x03"),
    "nackResp": Nack(7),
    "errResp": Err("boom"),
    "suspect": Suspect(3, "node-c", "node-a"),
    "alive(no meta, no delegate vsn)": Alive(
        1, "node-a", LOCALHOST, 7946, b"", bytes((1, 5, 2, 0, 0, 0))
    ),
    "alive(serf meta, vsn 1,5,2,2,5,4)": Alive(
        2, "node-a", LOCALHOST, 7946, SERF_META_WEB, VSN_SERF
    ),
    "alive(16-byte v4-mapped Addr)": Alive(
        1, "node-a", bytes(10) + b"\xff\xff" + LOCALHOST, 7946, b"", VSN_SERF
    ),
    "dead(failed)": Dead(3, "node-c", "node-a"),
    "dead(left: From==Node)": Dead(3, "node-a", "node-a"),
    "user packet (type 8 + raw bytes)": UserMsg(b"hello"),
    "suspect(40-char node name: str16, no str8)": Suspect(70000, NAME40, "x"),
}
#: Section 1 also holds the Serf tags blob that the alive vector carries as Meta.
SERF_TAGS_VECTOR = "serf tags meta {role:web}"


# ----------------------------------------------------------------------- hand-built msgpack


def fixstr(b: bytes) -> bytes:
    assert len(b) < 32
    return bytes((0xA0 | len(b),)) + b


def str8(b: bytes) -> bytes:
    return b"\xd9" + bytes((len(b),)) + b


def bin8(b: bytes) -> bytes:
    return b"\xc4" + bytes((len(b),)) + b


def key(name: str) -> bytes:
    return fixstr(name.encode())


def mp_map(*pairs: tuple[str, bytes]) -> bytes:
    assert len(pairs) < 16
    return bytes((0x80 | len(pairs),)) + b"".join(key(k) + v for k, v in pairs)


def uint16(v: int) -> bytes:
    return b"\xcd" + struct.pack(">H", v)


def alive_body(
    *,
    addr: bytes | None = None,
    meta: bytes | None = None,
    node: bytes | None = None,
    port: bytes | None = None,
    vsn: bytes | None = None,
) -> bytes:
    """Tolerance fixture: alive{1, node-a, 127.0.0.1:7946, no meta, vsn 1,5,2,2,5,4} with
    any field's encoding overridden."""
    return b"\x04" + mp_map(
        ("Addr", addr if addr is not None else fixstr(LOCALHOST)),
        ("Incarnation", b"\x01"),
        ("Meta", meta if meta is not None else b"\xc0"),
        ("Node", node if node is not None else fixstr(b"node-a")),
        ("Port", port if port is not None else uint16(7946)),
        ("Vsn", vsn if vsn is not None else fixstr(VSN_SERF)),
    )


TOLERANCE_ALIVE = Alive(1, "node-a", LOCALHOST, 7946, b"", VSN_SERF)


# --------------------------------------------------------------------------- strategies

u8 = st.integers(0, 0xFF)
u16 = st.integers(0, 0xFFFF)
u32 = st.integers(0, 0xFFFFFFFF)
go_int = st.integers(0, 2**31)
names = st.text(max_size=40)
small_bytes = st.binary(max_size=64)
ips = st.sampled_from([b"", LOCALHOST, bytes(10) + b"\xff\xff" + LOCALHOST, bytes(range(16))])
vsns = st.one_of(st.just(b""), st.binary(min_size=6, max_size=6))

packet_messages: st.SearchStrategy[PacketMessage] = st.one_of(
    st.builds(Ping, u32, names, ips, u16, names),
    st.builds(IndirectPing, u32, ips, u16, names, st.booleans(), ips, u16, names),
    st.builds(Ack, u32, st.binary(max_size=200)),
    st.builds(Nack, u32),
    st.builds(Err, st.text(max_size=80)),
    st.builds(Suspect, u32, names, names),
    st.builds(Alive, u32, names, ips, u16, st.binary(max_size=512), vsns),
    st.builds(Dead, u32, names, names),
    st.builds(UserMsg, st.binary(max_size=200)),
)
push_node_states = st.builds(
    PushNodeState, names, ips, u16, st.binary(max_size=64), u32, st.integers(0, 3), vsns
)
body_messages: st.SearchStrategy[Message] = st.one_of(
    packet_messages.filter(lambda m: not isinstance(m, UserMsg)),
    push_node_states,
    st.builds(PushPullHeader, go_int, go_int, st.booleans()),
    st.builds(UserMsgHeader, go_int),
    st.builds(Compress, u8, small_bytes),
)


# --------------------------------------------------------------------------- golden bytes


def test_section1_vectors_all_have_a_typed_value() -> None:
    assert set(load_vectors(1)) == {*SECTION1_VALUES, SERF_TAGS_VECTOR}


@pytest.mark.parametrize("name", sorted(SECTION1_VALUES))
def test_section1_vector_is_encoded_byte_exact(name: str) -> None:
    assert encode_message(SECTION1_VALUES[name]) == VECTORS[name]


@pytest.mark.parametrize("name", sorted(SECTION1_VALUES))
def test_section1_vector_decodes_to_its_typed_value(name: str) -> None:
    assert decode_message_untrusted(VECTORS[name]) == SECTION1_VALUES[name]


def test_serf_tags_vector_is_the_meta_of_the_serf_alive_vector() -> None:
    tags = VECTORS[SERF_TAGS_VECTOR]
    assert tags == b"\xff" + msgpack.packb({b"role": b"web"}, use_bin_type=False)
    alive = decode_message_untrusted(VECTORS["alive(serf meta, vsn 1,5,2,2,5,4)"])
    assert isinstance(alive, Alive)
    assert alive.meta == tags


def test_forty_char_name_uses_str16_not_str8() -> None:
    raw = VECTORS["suspect(40-char node name: str16, no str8)"]
    assert b"\xda\x00\x28" + NAME40.encode() in raw
    assert b"\xd9" not in raw


def test_empty_bytes_and_nil_are_both_encoded_as_nil() -> None:
    # memberlist sends nil slices; a Python b"" is the same value on the wire.
    assert encode_message(Ack(1, b"")) == VECTORS["ackResp(nil payload)"]
    ack = decode_message_untrusted(b"\x02" + mp_map(("Payload", fixstr(b"")), ("SeqNo", b"\x01")))
    assert ack == Ack(1)


def test_keys_are_emitted_in_sorted_byte_order() -> None:
    body = msgpack.unpackb(encode_body(SECTION1_VALUES["indirectPing"]), raw=True)
    assert list(body) == sorted(body)


def test_omitempty_source_fields_are_left_out_individually() -> None:
    body = msgpack.unpackb(encode_body(Ping(1, "b", b"", 7946, "")), raw=True)
    assert set(body) == {b"Node", b"SeqNo", b"SourcePort"}


# ------------------------------------------------------------------- live serf 0.9.4 bytes

SERF_GOSSIP_CRC = bytes.fromhex(
    "0c8e42e7af0486a441646472a47f000001ab496e6361726e6174696f6e01a44d657461b6ff82a4726f6c65"
    "a6707974686f6ea46c616e67a27079a44e6f6465a6707964756d70a4506f7274cd1f0fa356736ea6010502020505"
)
SERF_PING = bytes.fromhex(
    "0085a44e6f6465a6707964756d70a55365714e6fcd0102aa536f7572636541646472a47f000001aa536f7572"
    "63654e6f6465a161aa536f75726365506f7274cd1f0a"
)
SERF_ACK = bytes.fromhex(
    "0282a75061796c6f6164da00820184aa41646a7573746d656e74cbbf20907b2717a3c2a54572726f72cb3fda"
    "014e21e1f358a6486569676874cb3ee8d28ae55bc412a356656398cbbf326b8356a0d274cb3f317aa682216d"
    "7bcb3f2982508bab26f2cb3f42dbeb19425e3ecb3f107fb3b3310a1ecb3f3303d1d795363dcb3f2102cd7a0e"
    "77cfcb3f3ad8ea02e406d0a55365714e6f01"
)


def test_serf_gossip_alive_with_crc_decodes() -> None:
    packet = decode_packet_untrusted(SERF_GOSSIP_CRC, WireOptions())
    assert packet.errors == []
    (alive,) = packet.messages
    assert isinstance(alive, Alive)
    assert (alive.node, alive.incarnation, alive.addr, alive.port) == ("pydump", 1, LOCALHOST, 7951)
    assert alive.vsn == bytes((1, 5, 2, 2, 5, 5))
    tags = msgpack.unpackb(alive.meta[1:], raw=True)
    assert alive.meta[0] == 0xFF and tags == {b"role": b"python", b"lang": b"py"}
    assert encode_message(alive) == SERF_GOSSIP_CRC[5:]


def test_serf_probe_ping_decodes() -> None:
    ping = decode_message_untrusted(SERF_PING)
    assert ping == Ping(258, "pydump", LOCALHOST, 7946, "a")
    assert encode_message(ping) == SERF_PING


def test_serf_ack_with_coordinate_payload_decodes() -> None:
    ack = decode_message_untrusted(SERF_ACK)
    assert isinstance(ack, Ack)
    assert ack.seq_no == 1
    assert len(ack.payload) == 130 and ack.payload[0] == 0x01
    coord = msgpack.unpackb(ack.payload[1:], raw=True)
    assert sorted(coord) == [b"Adjustment", b"Error", b"Height", b"Vec"]
    assert len(coord[b"Vec"]) == 8
    assert encode_message(ack) == SERF_ACK


# ------------------------------------------------------------- tolerance of what peers send


def test_tolerance_a_go_encoding_decodes() -> None:
    body = alive_body()
    assert decode_message_untrusted(body) == TOLERANCE_ALIVE
    assert encode_message(TOLERANCE_ALIVE) == body


def test_tolerance_b_bin8_for_byte_fields_decodes() -> None:
    raw = alive_body(addr=bin8(LOCALHOST), meta=bin8(b""), vsn=bin8(VSN_SERF))
    assert decode_message_untrusted(raw) == TOLERANCE_ALIVE


def test_tolerance_c_str8_for_string_field_decodes() -> None:
    assert decode_message_untrusted(alive_body(node=str8(b"node-a"))) == TOLERANCE_ALIVE


def test_tolerance_d_bin8_for_string_field_decodes_like_upstream() -> None:
    # go-msgpack 0.5.5 refuses this; upstream's v2 decoder (and we) accept it.
    assert decode_message_untrusted(alive_body(node=bin8(b"node-a"))) == TOLERANCE_ALIVE


def test_tolerance_str8_and_bin8_for_byte_fields_decode() -> None:
    raw = alive_body(addr=str8(LOCALHOST), meta=str8(b"m"), vsn=bin8(VSN_SERF))
    assert decode_message_untrusted(raw) == Alive(1, "node-a", LOCALHOST, 7946, b"m", VSN_SERF)


def test_tolerance_e_vsn_as_array_of_ints_decodes() -> None:
    assert decode_message_untrusted(alive_body(vsn=b"\x96\x01\x05\x02\x02\x05\x04")) == (
        TOLERANCE_ALIVE
    )


def test_vsn_array_with_a_value_over_255_is_refused() -> None:
    with pytest.raises(WireError, match="Vsn"):
        decode_message_untrusted(alive_body(vsn=b"\x96\x01\x05\x02\x02\x05\xcd\x01\x00"))


@pytest.mark.parametrize(
    "port",
    [
        b"\xce" + struct.pack(">I", 7946),  # F: uint32
        b"\xd1" + struct.pack(">h", 7946),  # G: int16
        b"\xd3" + struct.pack(">q", 7946),  # int64, as go-msgpack v2 writes signed ints
        b"\xcf" + struct.pack(">Q", 7946),  # uint64
    ],
    ids=["uint32", "int16", "int64", "uint64"],
)
def test_tolerance_port_in_any_integer_width_decodes(port: bytes) -> None:
    assert decode_message_untrusted(alive_body(port=port)) == TOLERANCE_ALIVE


def test_tolerance_h_unknown_key_ignored_and_missing_keys_are_zero() -> None:
    raw = b"\x00" + mp_map(("Bogus", b"\x01"), ("Node", fixstr(b"x")), ("SeqNo", b"\x05"))
    assert decode_message_untrusted(raw) == Ping(5, "x")


def test_tolerance_i_struct_encoded_as_array_decodes_positionally() -> None:
    assert decode_message_untrusted(b"\x00\x92\x05" + fixstr(b"x")) == Ping(5, "x")


def test_tolerance_j_lowercase_key_is_ignored_and_field_stays_zero() -> None:
    assert decode_message_untrusted(b"\x00" + mp_map(("seqno", b"\x05"))) == Ping(0, "")


def test_nil_values_decode_as_zero_values() -> None:
    raw = b"\x04" + mp_map(
        ("Addr", b"\xc0"),
        ("Incarnation", b"\xc0"),
        ("Meta", b"\xc0"),
        ("Node", b"\xc0"),
        ("Port", b"\xc0"),
        ("Vsn", b"\xc0"),
    )
    assert decode_message_untrusted(raw) == Alive(0, "", b"", 0, b"", b"")


def test_non_utf8_name_round_trips() -> None:
    raw = b"\x03" + mp_map(
        ("From", fixstr(b"\xff\xfe")), ("Incarnation", b"\x01"), ("Node", fixstr(b"a\x80"))
    )
    msg = decode_message_untrusted(raw)
    assert isinstance(msg, Suspect)
    assert encode_message(msg) == raw


# --------------------------------------------------------------------------- rejections


@pytest.mark.parametrize(
    ("raw", "what"),
    [
        (b"\x00" + mp_map(("SeqNo", b"\xff")), "negative fixint"),
        (b"\x00" + mp_map(("SeqNo", b"\xd0\x80")), "negative int8"),
        (b"\x00" + mp_map(("SeqNo", b"\xcf" + struct.pack(">Q", 2**32))), "above uint32"),
        (alive_body(port=b"\xce" + struct.pack(">I", 65536)), "above uint16"),
        (b"\x09" + mp_map(("Algo", uint16(256)), ("Buf", fixstr(b""))), "above uint8"),
    ],
    ids=lambda v: v if isinstance(v, str) else "",
)
def test_out_of_range_integer_is_refused(raw: bytes, what: str) -> None:
    with pytest.raises(WireError, match="out of range"):
        if raw[0] == 0x09:
            decode_body_untrusted(Compress, raw[1:])
        else:
            decode_message_untrusted(raw)


@pytest.mark.parametrize(
    "value",
    [
        b"\x81" + key("a") + b"\x01",  # map
        b"\x91\x01",  # array
        fixstr(b"1"),  # string
        b"\xcb" + struct.pack(">d", 1.0),  # float64
        b"\xc3",  # bool
        b"\xd4\x01\x00",  # ext
    ],
    ids=["map", "array", "string", "float", "bool", "ext"],
)
def test_wrong_type_for_integer_field_is_refused(value: bytes) -> None:
    with pytest.raises(WireError, match=r"Ping\.SeqNo"):
        decode_message_untrusted(b"\x00" + mp_map(("SeqNo", value)))


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("Node", b"\x05"),
        ("Node", b"\x91\xa1x"),
        ("SourceAddr", b"\x05"),
        ("SourceAddr", b"\x91\x01"),  # only Vsn may be an array
    ],
)
def test_wrong_type_for_string_or_bytes_field_is_refused(field: str, value: bytes) -> None:
    with pytest.raises(WireError, match=field):
        decode_message_untrusted(b"\x00" + mp_map((field, value)))


def test_wrong_type_for_bool_field_is_refused() -> None:
    with pytest.raises(WireError, match="Nack"):
        decode_message_untrusted(b"\x01" + mp_map(("Nack", b"\x01")))


@pytest.mark.parametrize(
    "body", [b"\x05", fixstr(b"abc"), b"\xc0", b"\xc3", b"\xcb" + bytes(8)], ids=repr
)
def test_body_that_is_not_a_map_or_array_is_refused(body: bytes) -> None:
    with pytest.raises(WireError, match="expected a msgpack map"):
        decode_message_untrusted(b"\x00" + body)


def test_trailing_bytes_after_body_are_refused() -> None:
    with pytest.raises(WireError, match="trailing"):
        decode_message_untrusted(VECTORS["nackResp"] + b"\x00")


@pytest.mark.parametrize("t", [6, 7, 9, 10, 12, 14, 100, 244, 255])
def test_unknown_or_wrapper_type_byte_is_refused(t: int) -> None:
    with pytest.raises(WireError) as info:
        decode_message_untrusted(bytes((t,)) + VECTORS["nackResp"][1:])
    assert info.value.reason == "unknown_type"


def test_empty_buffer_is_refused() -> None:
    with pytest.raises(WireError) as info:
        decode_message_untrusted(b"")
    assert info.value.reason == "empty"


@pytest.mark.parametrize("raw", [b"\x00", b"\x00\xc1", b"\x02\x82\xa5SeqNo"], ids=repr)
def test_missing_or_invalid_msgpack_body_is_refused(raw: bytes) -> None:
    with pytest.raises(WireError):
        decode_message_untrusted(raw)


def test_unhashable_map_key_is_refused() -> None:
    with pytest.raises(WireError):
        decode_message_untrusted(b"\x00\x81\x91\x01\x01")


@pytest.mark.parametrize(
    "msg",
    [Ping(-1, "x"), Ping(2**32, "x"), Alive(1, "a", LOCALHOST, 65536), Nack(True)],
    ids=repr,
)
def test_encoding_a_value_outside_its_go_type_raises_value_error(msg: Message) -> None:
    with pytest.raises(ValueError, match="does not fit"):
        encode_message(msg)


# ---------------------------------------------------------------- raw family, never str8/bin

RAW_LENGTHS = [0, 1, 31, 32, 33, 255, 256, 257, 65535, 65536, 70000]


def _expected_raw_header(n: int) -> bytes:
    if n < 32:
        return bytes((0xA0 | n,))
    if n < 65536:
        return b"\xda" + struct.pack(">H", n)
    return b"\xdb" + struct.pack(">I", n)


@pytest.mark.parametrize("n", RAW_LENGTHS)
def test_strings_use_the_raw_family_at_every_length(n: int) -> None:
    raw = encode_message(Err("e" * n))
    assert raw == b"\x0d\x81" + key("Error") + _expected_raw_header(n) + b"e" * n


@pytest.mark.parametrize("n", RAW_LENGTHS)
def test_byte_slices_use_the_raw_family_at_every_length(n: int) -> None:
    raw = encode_message(Ack(1, b"\xc4" * n))
    header = b"\xc0" if n == 0 else _expected_raw_header(n)
    assert raw == b"\x02\x82" + key("Payload") + header + b"\xc4" * n + key("SeqNo") + b"\x01"


def test_no_string_length_up_to_70000_produces_str8_or_bin() -> None:
    for n in [*range(300), 65534, 65535, 65536, 65537, 70000]:
        raw = encode_message(Err("e" * n))
        header = raw[2 + len(key("Error")) :][:5]
        assert header[0] not in (0xC4, 0xC5, 0xC6, 0xD9), n
        assert header.startswith(_expected_raw_header(n)), n


# ----------------------------------------------------------------------------- properties

_PROPS = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@_PROPS
@given(packet_messages)
def test_packet_message_round_trips(msg: PacketMessage) -> None:
    assert decode_message_untrusted(encode_message(msg)) == msg


@_PROPS
@given(body_messages)
def test_body_round_trips_for_every_struct(msg: Message) -> None:
    assert decode_body_untrusted(type(msg), encode_body(msg)) == msg


@_PROPS
@given(st.binary(max_size=300))
def test_arbitrary_bytes_raise_only_wire_error(data: bytes) -> None:
    with contextlib.suppress(WireError):
        decode_message_untrusted(data)


@_PROPS
@given(st.sampled_from(sorted(SECTION1_VALUES)), st.data())
def test_mutated_vectors_raise_only_wire_error(name: str, data: st.DataObject) -> None:
    raw = bytearray(VECTORS[name])
    i = data.draw(st.integers(0, len(raw) - 1))
    raw[i] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(1, len(raw)))
    with contextlib.suppress(WireError):
        decode_message_untrusted(bytes(raw[:cut]))


def _any_msgpack() -> st.SearchStrategy[Any]:
    leaves = st.one_of(
        st.none(),
        st.booleans(),
        st.integers(-(2**63), 2**64 - 1),
        st.floats(allow_nan=False),
        st.binary(max_size=20),
        st.text(max_size=10),
    )
    return st.recursive(
        leaves,
        lambda inner: st.one_of(
            st.lists(inner, max_size=6),
            st.dictionaries(st.sampled_from([b"SeqNo", b"Node", b"Vsn", b"Addr", b"x"]), inner),
        ),
        max_leaves=12,
    )


@_PROPS
@given(st.sampled_from([0, 1, 2, 3, 4, 5, 11, 13]), _any_msgpack())
def test_any_msgpack_value_in_a_body_raises_only_wire_error(t: int, value: Any) -> None:
    with contextlib.suppress(WireError):
        decode_message_untrusted(bytes((t,)) + msgpack.packb(value, use_bin_type=True))


def test_compress_body_of_vector_decodes_to_an_lzw_stream_of_the_alive() -> None:
    c = decode_body_untrusted(Compress, VECTORS["compress(alive(serf meta))"][1:])
    assert isinstance(c, Compress)
    assert c.algo == 0
    assert lzw.decompress_untrusted(c.buf) == VECTORS["..decompressed"]


_FIELD_VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-5, 2**33),
    st.binary(max_size=8),
    st.lists(st.integers(-1, 300), max_size=7),
    st.floats(allow_nan=False),
)
_STRUCTS = [Ping, IndirectPing, Ack, Nack, Err, Suspect, Alive, Dead, PushNodeState, Compress]


@_PROPS
@given(st.sampled_from(_STRUCTS), st.data())
def test_fast_map_path_matches_the_general_path(cls: type[Message], data: st.DataObject) -> None:
    keys = [f.go.encode() for f in cls._FIELDS] + [b"Bogus"]
    obj = data.draw(st.dictionaries(st.sampled_from(keys), _FIELD_VALUES))
    try:
        want: Message | str = messages._from_object_general(cls, obj)
    except WireError as exc:
        want = str(exc)
    try:
        got: Message | str = body_from_object_untrusted(cls, obj)
    except WireError as exc:
        got = str(exc)
    assert got == want
