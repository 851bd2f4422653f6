"""UDP packet layers of swimpy.wire.packet: compound, CRC, LZW, AES-GCM, labels."""

from __future__ import annotations

import itertools
import random
import struct
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from swimpy.wire.constants import COMPOUND_MAX_PARTS
from swimpy.wire.crypto import Keyring
from swimpy.wire.errors import WireError
from swimpy.wire.lzw import min_codes
from swimpy.wire.messages import (
    Ack,
    Alive,
    Compress,
    Nack,
    PacketMessage,
    Ping,
    Suspect,
    UserMsg,
    encode_message,
)
from swimpy.wire.packet import (
    MAX_MESSAGES_PER_PACKET,
    MAX_NESTING,
    MAX_PACKET_DECOMPRESSED,
    DecodedPacket,
    WireOptions,
    add_crc,
    add_label_header,
    compound_size,
    compress_if_smaller,
    compress_payload,
    compressed_frame_len,
    decode_packet_untrusted,
    encode_packet,
    make_compound,
    remove_label_header_untrusted,
    split_compound_untrusted,
)
from tests.strategies import wire_options
from tests.wire.test_messages import (
    LOCALHOST,
    SERF_META_WEB,
    VSN_SERF,
    load_vectors,
    packet_messages,
)

V = load_vectors()
KEY16 = bytes(range(16))  # 000102..0f, the vectors' key
NONCE = bytes(range(0xA0, 0xAC))  # a0..ab, the vectors' nonce

PING_FULL = Ping(1, "node-b", LOCALHOST, 7946, "node-a")
PING_SHORT = Ping(42, "node-b")
SELF_ALIVE = Alive(1, "node-a", LOCALHOST, 7946, SERF_META_WEB, VSN_SERF)

PLAIN = WireOptions(compression=False)


def fixed_nonce(n: int) -> bytes:
    assert n == len(NONCE)
    return NONCE


def keyed(
    key: bytes = KEY16,
    *,
    version: int = 1,
    label: bytes = b"",
    verify_incoming: bool = True,
    verify_outgoing: bool = True,
    skip_inbound_label_check: bool = False,
) -> WireOptions:
    return WireOptions(
        keyring=Keyring([key]),
        encryption_version=version,
        compression=False,
        label=label,
        verify_incoming=verify_incoming,
        verify_outgoing=verify_outgoing,
        skip_inbound_label_check=skip_inbound_label_check,
    )


def only_messages(packet: DecodedPacket) -> list[PacketMessage]:
    assert packet.errors == []
    assert packet.truncated_parts == 0
    return packet.messages


# ---------------------------------------------------------------------------- vectors


def test_compound_of_ping_and_suspect_is_byte_exact() -> None:
    parts = [encode_message(PING_FULL), encode_message(Suspect(3, "node-b", "node-a"))]
    raw = V["compound(ping, suspect)"]
    assert make_compound(parts) == raw
    assert encode_packet(make_compound(parts), PLAIN, crc=False) == raw
    assert only_messages(decode_packet_untrusted(raw, PLAIN)) == [
        PING_FULL,
        Suspect(3, "node-b", "node-a"),
    ]


def test_compound_size_counts_header_and_length_fields() -> None:
    raw = V["compound(ping, suspect)"]
    assert compound_size([69, 39]) == len(raw)


def test_has_crc_ping_is_byte_exact() -> None:
    raw = V["hasCrc(ping(full))"]
    assert add_crc(encode_message(PING_FULL)) == raw
    assert encode_packet(encode_message(PING_FULL), PLAIN, crc=True) == raw
    assert only_messages(decode_packet_untrusted(raw, PLAIN)) == [PING_FULL]


def test_compressed_alive_vector_decodes_and_is_reproduced() -> None:
    raw = V["compress(alive(serf meta))"]
    alive = Alive(2, "node-a", LOCALHOST, 7946, SERF_META_WEB, VSN_SERF)
    assert only_messages(decode_packet_untrusted(raw, PLAIN)) == [alive]
    assert compress_payload(encode_message(alive)) == raw


def test_compression_is_used_only_when_smaller() -> None:
    msg = encode_message(PING_SHORT)
    assert len(compress_payload(msg)) > len(msg)
    assert encode_packet(msg, WireOptions(compression=True), crc=False) == msg
    big = encode_message(UserMsg(b"a" * 500))
    out = encode_packet(big, WireOptions(compression=True), crc=False)
    assert out[0] == 9 and len(out) < len(big)
    assert only_messages(decode_packet_untrusted(out, PLAIN)) == [UserMsg(b"a" * 500)]


def _kept_by_memberlist(msg: bytes) -> bytes | None:
    """What rawSendMsgPacket does: compress, keep it only if shorter."""
    c = compress_payload(msg)
    return c if len(c) < len(msg) else None


def test_compressed_frame_len_matches_the_encoder_and_never_decreases() -> None:
    lengths = [compressed_frame_len(k) for k in range(70_000)]
    for k in (0, 1, 31, 32, 255, 256, 290, 65_535, 65_536, 69_999):
        assert lengths[k] == len(encode_message(Compress(0, bytes(k))))
    assert all(a <= b for a, b in itertools.pairwise(lengths))


_SIZED = st.one_of(
    st.binary(max_size=400),
    st.lists(st.integers(0, 5), max_size=400).map(bytes),
    st.lists(st.sampled_from(b"\x00\x01NodeSeqNoSourceAddr"), max_size=300).map(bytes),
)


@settings(max_examples=400, deadline=None)
@given(_SIZED)
def test_compress_if_smaller_keeps_exactly_what_memberlist_keeps(msg: bytes) -> None:
    assert compress_if_smaller(msg) == _kept_by_memberlist(msg)


def test_compress_if_smaller_on_real_messages_and_every_length_around_the_cutoffs() -> None:
    msgs = [encode_message(m) for m in (PING_SHORT, SELF_ALIVE, UserMsg(b"a" * 500))]
    msgs += [raw for raw in V.values() if raw and raw[0] != 0x09]
    pattern = b"SourceNode\xa9swimpy-03\x00" * 20
    msgs += [pattern[:n] for n in range(1, 400)]  # repetitive: compression wins past ~30 bytes
    kept = 0
    for msg in msgs:
        want = _kept_by_memberlist(msg)
        assert compress_if_smaller(msg) == want, msg
        kept += want is not None
    assert 0 < kept < len(msgs)
    # an ack (20 bytes) is decided by the bound alone; it can never shrink
    ack = encode_message(Ack(12345, b""))
    assert compressed_frame_len((9 * min_codes(ack) + 7) // 8) >= len(ack)


@pytest.mark.parametrize("compression", [False, True])
def test_captured_ping_with_piggybacked_self_alive_is_byte_exact(compression: bool) -> None:
    raw = V["captured UDP: ping+piggybacked self-alive (unknown peer => no CRC)"]
    compound = make_compound([encode_message(PING_FULL), encode_message(SELF_ALIVE)])
    # LZW does not shrink this compound, so memberlist's default (compression on) sent it raw.
    assert encode_packet(compound, WireOptions(compression=compression), crc=False) == raw
    assert only_messages(decode_packet_untrusted(raw, PLAIN)) == [PING_FULL, SELF_ALIVE]


def test_captured_ping_to_crc_capable_peer_is_byte_exact() -> None:
    raw = V["captured UDP: ping to PMax>=5 peer (CRC added)"]
    assert encode_packet(encode_message(PING_SHORT), WireOptions(), crc=True) == raw
    assert only_messages(decode_packet_untrusted(raw, PLAIN)) == [PING_SHORT]


def test_captured_encrypted_packet_with_crc_inside_decrypts() -> None:
    raw = V["captured UDP encrypted (crc inside), vsn1"]
    opts = keyed()
    assert only_messages(decode_packet_untrusted(raw, opts)) == [PING_SHORT]
    again = encode_packet(encode_message(PING_SHORT), opts, crc=True, nonce_source=fixed_nonce)
    assert again == raw


@pytest.mark.parametrize("version", [0, 1])
def test_udp_encryption_vectors_are_byte_exact(version: int) -> None:
    raw = V[f"udp encrypt vsn={version} (AAD empty)"]
    opts = keyed(version=version)
    assert encode_packet(encode_message(PING_SHORT), opts, crc=False, nonce_source=fixed_nonce) == (
        raw
    )
    assert only_messages(decode_packet_untrusted(raw, opts)) == [PING_SHORT]


def test_upstream_labelled_encrypted_packet_is_byte_exact() -> None:
    raw = V["UPSTREAM-ONLY label 'lbl' + encrypt vsn1 AAD='lbl'"]
    opts = keyed(label=b"lbl")
    assert encode_packet(encode_message(PING_SHORT), opts, crc=False, nonce_source=fixed_nonce) == (
        raw
    )
    assert only_messages(decode_packet_untrusted(raw, opts)) == [PING_SHORT]


def test_encrypting_without_a_nonce_source_is_a_local_error() -> None:
    with pytest.raises(ValueError, match="nonce source"):
        encode_packet(encode_message(PING_SHORT), keyed(), crc=False)


def test_packet_overhead_counts_encryption_and_label() -> None:
    assert WireOptions().packet_overhead() == 0
    assert keyed().packet_overhead() == 29
    assert keyed(version=0).packet_overhead() == 45
    assert keyed(label=b"abc").packet_overhead() == 29 + 5
    assert keyed(verify_outgoing=False).packet_overhead() == 0


# --------------------------------------------------------------------------- compound


def test_truncated_compound_keeps_complete_parts_and_counts_the_rest() -> None:
    raw = V["compound(ping, suspect)"]
    packet = decode_packet_untrusted(raw[:-1], PLAIN)
    assert packet.messages == [PING_FULL]
    assert packet.truncated_parts == 1
    assert packet.errors == []
    header_only = decode_packet_untrusted(raw[:6], PLAIN)
    assert header_only.messages == [] and header_only.truncated_parts == 2


def test_compound_shorter_than_its_length_table_is_an_error_part() -> None:
    packet = decode_packet_untrusted(b"\x07\x03\x00\x01", PLAIN)
    assert packet.messages == []
    assert [e.reason for e in packet.errors] == ["truncated"]


@pytest.mark.parametrize("n", [0, COMPOUND_MAX_PARTS + 1, 255, 300])
def test_make_compound_refuses_counts_v022_cannot_read(n: int) -> None:
    with pytest.raises(ValueError, match=r"1\.\.127 parts"):
        make_compound([b"\x08"] * n)


def test_make_compound_refuses_parts_over_64k() -> None:
    with pytest.raises(ValueError, match="65535"):
        make_compound([b"\x08" * 65536])


def test_make_compound_accepts_127_parts() -> None:
    raw = make_compound([encode_message(Nack(i)) for i in range(127)])
    assert only_messages(decode_packet_untrusted(raw, PLAIN)) == [Nack(i) for i in range(127)]


def _raw_compound(parts: list[bytes]) -> bytes:
    """A compound as upstream's fixed encoder writes it (up to 255 parts)."""
    assert len(parts) <= 255
    lengths = b"".join(struct.pack(">H", len(p)) for p in parts)
    return bytes((7, len(parts))) + lengths + b"".join(parts)


@pytest.mark.parametrize("n", [128, 129, 200, 255])
def test_compound_of_128_to_255_parts_decodes(n: int) -> None:
    parts = [encode_message(Nack(i)) for i in range(n)]
    assert only_messages(decode_packet_untrusted(_raw_compound(parts), PLAIN)) == [
        Nack(i) for i in range(n)
    ]


def test_bad_part_in_compound_is_reported_and_others_kept() -> None:
    raw = _raw_compound([encode_message(Nack(1)), b"\x63junk", encode_message(Nack(2))])
    packet = decode_packet_untrusted(raw, PLAIN)
    assert packet.messages == [Nack(1), Nack(2)]
    assert [e.reason for e in packet.errors] == ["unknown_type"]


def test_crc_inside_a_compound_part_is_not_unwrapped() -> None:
    # memberlist only looks for the CRC header at the outer level.
    raw = _raw_compound([add_crc(encode_message(Nack(1)))])
    packet = decode_packet_untrusted(raw, PLAIN)
    assert packet.messages == []
    assert [e.reason for e in packet.errors] == ["unknown_type"]


def test_split_compound_reports_zero_parts() -> None:
    with pytest.raises(WireError):
        split_compound_untrusted(b"\x07\x00")


# ------------------------------------------------------------------------------- CRC


def test_bad_crc_rejects_the_whole_packet() -> None:
    raw = bytearray(V["hasCrc(ping(full))"])
    raw[2] ^= 0x01
    with pytest.raises(WireError) as info:
        decode_packet_untrusted(bytes(raw), PLAIN)
    assert info.value.reason == "bad_crc"


def test_crc_over_a_modified_body_is_rejected() -> None:
    raw = bytearray(V["hasCrc(ping(full))"])
    raw[-1] ^= 0x01
    with pytest.raises(WireError) as info:
        decode_packet_untrusted(bytes(raw), PLAIN)
    assert info.value.reason == "bad_crc"


def test_crc_header_shorter_than_five_bytes_is_not_a_crc() -> None:
    packet = decode_packet_untrusted(b"\x0c\x00\x00", PLAIN)
    assert [e.reason for e in packet.errors] == ["unknown_type"]


def test_empty_packet_is_rejected() -> None:
    with pytest.raises(WireError) as info:
        decode_packet_untrusted(b"", PLAIN)
    assert info.value.reason == "empty"


# ------------------------------------------------------------------------------ labels


def test_label_header_is_added_and_removed() -> None:
    assert add_label_header(b"\x0b\x81", b"") == b"\x0b\x81"
    assert add_label_header(b"\x0b\x81", b"ab") == b"\xf4\x02ab\x0b\x81"
    assert remove_label_header_untrusted(b"\xf4\x02ab\x0b\x81") == (b"ab", b"\x0b\x81")
    assert remove_label_header_untrusted(b"\x0b\x81") == (b"", b"\x0b\x81")


def test_label_longer_than_255_bytes_is_a_local_error() -> None:
    with pytest.raises(ValueError, match="255"):
        add_label_header(b"\x00", b"x" * 256)


@pytest.mark.parametrize("raw", [b"\xf4", b"\xf4\x00\x0b", b"\xf4\x05ab"], ids=repr)
def test_malformed_label_header_is_rejected(raw: bytes) -> None:
    with pytest.raises(WireError) as info:
        decode_packet_untrusted(raw, PLAIN)
    assert info.value.reason == "bad_label"


def test_labelled_packet_is_accepted_by_a_receiver_with_the_same_label() -> None:
    opts = WireOptions(compression=False, label=b"x")
    raw = encode_packet(encode_message(Nack(5)), opts, crc=True)
    assert raw.startswith(b"\xf4\x01x\x0c")
    assert only_messages(decode_packet_untrusted(raw, opts)) == [Nack(5)]


@pytest.mark.parametrize(
    ("sent", "want"), [(b"x", b""), (b"x", b"y"), (b"", b"y")], ids=["unlabelled", "other", "none"]
)
def test_label_mismatch_drops_the_packet(sent: bytes, want: bytes) -> None:
    raw = encode_packet(encode_message(Nack(5)), WireOptions(label=sent), crc=False)
    with pytest.raises(WireError) as info:
        decode_packet_untrusted(raw, WireOptions(label=want))
    assert info.value.reason == "bad_label"


def test_skip_inbound_label_check_accepts_unlabelled_packets() -> None:
    raw = encode_message(Nack(5))
    opts = WireOptions(label=b"x", skip_inbound_label_check=True)
    assert only_messages(decode_packet_untrusted(raw, opts)) == [Nack(5)]
    with pytest.raises(WireError, match="label"):
        decode_packet_untrusted(add_label_header(raw, b"y"), opts)


def test_skip_inbound_label_check_uses_own_label_as_aad_for_unlabelled_packets() -> None:
    sender = keyed(label=b"x")
    raw = encode_packet(encode_message(Nack(5)), sender, crc=False, nonce_source=fixed_nonce)
    _, unlabelled = remove_label_header_untrusted(raw)
    receiver = keyed(label=b"x", skip_inbound_label_check=True)
    assert only_messages(decode_packet_untrusted(unlabelled, receiver)) == [Nack(5)]


# -------------------------------------------------------------------------- encryption


def test_plaintext_is_rejected_by_a_keyed_receiver() -> None:
    with pytest.raises(WireError) as info:
        decode_packet_untrusted(V["hasCrc(ping(full))"], keyed())
    assert info.value.reason == "decrypt"


def test_gossip_verify_incoming_false_accepts_plaintext_when_keyed() -> None:
    opts = keyed(verify_incoming=False)
    assert only_messages(decode_packet_untrusted(V["hasCrc(ping(full))"], opts)) == [PING_FULL]
    # ... and still decrypts encrypted packets
    raw = V["captured UDP encrypted (crc inside), vsn1"]
    assert only_messages(decode_packet_untrusted(raw, opts)) == [PING_SHORT]


def test_gossip_verify_outgoing_false_sends_plaintext_while_keyed() -> None:
    opts = keyed(verify_outgoing=False)
    raw = encode_packet(encode_message(PING_FULL), opts, crc=True)
    assert raw == V["hasCrc(ping(full))"]


def test_encrypted_packet_with_wrong_key_is_rejected() -> None:
    raw = V["captured UDP encrypted (crc inside), vsn1"]
    with pytest.raises(WireError) as info:
        decode_packet_untrusted(raw, keyed(bytes(16)))
    assert info.value.reason == "decrypt"


def test_encrypted_packet_is_rejected_without_a_keyring() -> None:
    packet = decode_packet_untrusted(V["captured UDP encrypted (crc inside), vsn1"], PLAIN)
    assert packet.messages == []
    assert packet.errors


def test_any_installed_key_decrypts() -> None:
    raw = V["captured UDP encrypted (crc inside), vsn1"]
    opts = WireOptions(keyring=Keyring([bytes(32), KEY16]))
    assert only_messages(decode_packet_untrusted(raw, opts)) == [PING_SHORT]


# ---------------------------------------------------------------------------- nesting


def test_compressed_part_inside_a_compound_decodes() -> None:
    alive = compress_payload(encode_message(SELF_ALIVE))
    raw = make_compound([encode_message(Nack(1)), alive])
    assert only_messages(decode_packet_untrusted(raw, PLAIN)) == [Nack(1), SELF_ALIVE]


def test_compound_inside_compression_decodes() -> None:
    raw = compress_payload(V["compound(ping, suspect)"])
    assert only_messages(decode_packet_untrusted(raw, PLAIN)) == [
        PING_FULL,
        Suspect(3, "node-b", "node-a"),
    ]


def _nest(msg: bytes, levels: int) -> bytes:
    for i in range(levels):
        msg = compress_payload(msg) if i % 2 else make_compound([msg])
    return msg


def test_nesting_up_to_the_limit_decodes() -> None:
    raw = _nest(encode_message(Nack(9)), MAX_NESTING)
    assert only_messages(decode_packet_untrusted(raw, PLAIN)) == [Nack(9)]


def test_nesting_beyond_the_limit_is_an_error() -> None:
    packet = decode_packet_untrusted(_nest(encode_message(Nack(9)), MAX_NESTING + 1), PLAIN)
    assert packet.messages == []
    assert [e.reason for e in packet.errors] == ["malformed"]


def test_a_packet_yields_at_most_the_message_budget() -> None:
    # 255 compounds of 255 empty parts: 65,025 parts from a 130 KiB buffer.
    inner = _raw_compound([b""] * 255)
    raw = _raw_compound([inner] * 255)
    started = time.perf_counter()
    packet = decode_packet_untrusted(raw, PLAIN)
    assert len(packet.messages) + len(packet.errors) == MAX_MESSAGES_PER_PACKET + 1
    assert packet.errors[-1].reason == "oversized"
    assert time.perf_counter() - started < 5  # a budget, not a benchmark


def test_decompression_budget_is_shared_by_all_parts_of_a_packet() -> None:
    big = encode_message(UserMsg(b"\x00" * (MAX_PACKET_DECOMPRESSED * 2 // 3)))
    bomb = compress_payload(big)
    assert len(bomb) < 4096
    packet = decode_packet_untrusted(make_compound([bomb, bomb, bomb]), PLAIN)
    assert len(packet.messages) == 1
    assert [e.reason for e in packet.errors] == ["decompress", "decompress"]


# ------------------------------------------------------------------------- properties

_PROPS = settings(
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@st.composite
def valid_packets(draw: st.DrawFn) -> tuple[bytes, WireOptions, list[PacketMessage]]:
    msgs = draw(st.lists(packet_messages, min_size=1, max_size=6))
    opts, crc, seed = draw(wire_options())
    encoded = [encode_message(m) for m in msgs]
    body = encoded[0] if len(encoded) == 1 else make_compound(encoded)
    raw = encode_packet(body, opts, crc=crc, nonce_source=random.Random(seed).randbytes)
    return raw, opts, msgs


@_PROPS
@given(valid_packets())
def test_every_message_round_trips_through_every_layer_combination(
    case: tuple[bytes, WireOptions, list[PacketMessage]],
) -> None:
    raw, opts, msgs = case
    assert only_messages(decode_packet_untrusted(raw, opts)) == msgs


@_PROPS
@given(packet_messages, wire_options())
def test_single_message_round_trips_through_every_layer_combination(
    msg: PacketMessage, layer: tuple[WireOptions, bool, int]
) -> None:
    opts, crc, seed = layer
    raw = encode_packet(
        encode_message(msg), opts, crc=crc, nonce_source=random.Random(seed).randbytes
    )
    assert only_messages(decode_packet_untrusted(raw, opts)) == [msg]


def _decode_or_wire_error(raw: bytes, opts: WireOptions) -> None:
    try:
        packet = decode_packet_untrusted(raw, opts)
    except WireError:
        return
    assert all(isinstance(e, WireError) for e in packet.errors)


@_PROPS
@given(valid_packets(), st.data())
def test_mutated_packets_raise_only_wire_error(
    case: tuple[bytes, WireOptions, list[PacketMessage]], data: st.DataObject
) -> None:
    raw, opts, _ = case
    buf = bytearray(raw)
    how = data.draw(st.sampled_from(["flip", "truncate", "extend", "splice", "plain"]))
    if how == "flip":
        for _ in range(data.draw(st.integers(1, 4))):
            i = data.draw(st.integers(0, len(buf) - 1))
            buf[i] ^= 1 << data.draw(st.integers(0, 7))
    elif how == "truncate":
        del buf[data.draw(st.integers(0, len(buf) - 1)) :]
    elif how == "extend":
        buf += data.draw(st.binary(min_size=1, max_size=40))
    elif how == "splice":
        other, _, _ = data.draw(valid_packets())
        cut_a = data.draw(st.integers(0, len(buf)))
        cut_b = data.draw(st.integers(0, len(other)))
        buf = buf[:cut_a] + other[cut_b:]
    # "plain": the same bytes decoded by a receiver without keys / label
    receiver = WireOptions() if how == "plain" else opts
    _decode_or_wire_error(bytes(buf), receiver)


@_PROPS
@given(st.binary(max_size=400), st.sampled_from([PLAIN, WireOptions(label=b"x")]))
def test_random_bytes_raise_only_wire_error(raw: bytes, opts: WireOptions) -> None:
    _decode_or_wire_error(raw, opts)


@_PROPS
@given(st.lists(st.binary(max_size=30), min_size=1, max_size=20))
def test_compounds_of_random_parts_raise_only_wire_error(parts: list[bytes]) -> None:
    _decode_or_wire_error(_raw_compound(parts), PLAIN)
    _decode_or_wire_error(compress_payload(_raw_compound(parts)), PLAIN)
