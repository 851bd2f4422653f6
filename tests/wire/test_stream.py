"""TCP stream framing of swimpy.wire.stream: push/pull, fallback ping, user messages."""

from __future__ import annotations

import contextlib
import random
import struct
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path

import msgpack
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from swimpy.wire import lzw
from swimpy.wire.constants import MAX_PUSH_STATE_BYTES, MAX_USER_MSG_BYTES
from swimpy.wire.crypto import Keyring
from swimpy.wire.errors import NeedMoreData, WireError
from swimpy.wire.messages import Ack, Err, Ping, PushNodeState, encode_message
from swimpy.wire.packet import WireOptions, compress_payload
from swimpy.wire.stream import (
    MAX_STREAM_BYTES,
    NEED_DATA,
    PushPull,
    StreamMessage,
    StreamReader,
    UserStream,
    encode_push_pull,
    encode_stream_message,
    encode_user_stream,
    frame_stream,
    parse_stream_untrusted,
)
from tests.strategies import wire_options
from tests.wire.test_messages import (
    LOCALHOST,
    SERF_META_WEB,
    VSN_SERF,
    load_vectors,
    names,
    push_node_states,
    u32,
)

V = load_vectors()
VECTOR_DIR = Path(__file__).resolve().parent / "vectors"
KEY16 = bytes(range(16))
NONCE = bytes(range(0xA0, 0xAC))

PLAIN = WireOptions(compression=False)
PING_FULL = Ping(1, "node-b", LOCALHOST, 7946, "node-a")
PING_SHORT = Ping(42, "node-b")
NODE_B = PushNodeState("node-b", bytes((127, 0, 0, 2)), 7946, b"", 1, 0, VSN_SERF)
NODE_A = PushNodeState("node-a", LOCALHOST, 7946, SERF_META_WEB, 1, 0, VSN_SERF)
DEADBEEF = bytes.fromhex("deadbeef")


def fixed_nonce(n: int) -> bytes:
    assert n == len(NONCE)
    return NONCE


def keyed(
    key: bytes = KEY16,
    *,
    compression: bool = False,
    version: int = 1,
    label: bytes = b"",
    verify_incoming: bool = True,
) -> WireOptions:
    return WireOptions(
        keyring=Keyring([key]),
        encryption_version=version,
        compression=compression,
        label=label,
        verify_incoming=verify_incoming,
    )


def serf_capture() -> dict[str, bytes]:
    out: dict[str, bytes] = {}
    for line in (VECTOR_DIR / "serf-0.9.4-pushpull-capture.txt").read_text().splitlines():
        word, _, rest = line.partition(" ")
        if word in ("REQUEST", "RAW_REPLY", "DECOMPRESSED"):
            out[word] = bytes.fromhex(rest.split()[-1])
    return out


# ---------------------------------------------------------------------------- vectors


@pytest.mark.parametrize("join", [True, False])
def test_push_pull_vector_is_byte_exact(join: bool) -> None:
    raw = V[f"TCP pushPull stream join={str(join).lower()} (2 nodes + 4B user state)"]
    body = encode_push_pull(join, [NODE_B, NODE_A], DEADBEEF)
    assert body == raw
    assert frame_stream(body, PLAIN) == raw
    assert parse_stream_untrusted(raw, PLAIN) == PushPull(join, (NODE_B, NODE_A), DEADBEEF)


def test_user_stream_vector_is_byte_exact() -> None:
    raw = V["TCP user stream (SendReliable 'hello')"]
    assert encode_user_stream(b"hello") == raw
    assert encode_stream_message(UserStream(b"hello")) == raw
    assert parse_stream_untrusted(raw, PLAIN) == UserStream(b"hello")


def test_fallback_ping_stream_vector_is_byte_exact() -> None:
    raw = V["TCP fallback ping stream"]
    assert frame_stream(encode_stream_message(PING_FULL), PLAIN) == raw
    assert parse_stream_untrusted(raw, PLAIN) == PING_FULL


def test_encrypted_stream_vector_is_byte_exact() -> None:
    raw = V["TCP encrypted stream (ping omitempty), vsn1"]
    opts = keyed()
    assert frame_stream(encode_message(PING_SHORT), opts, nonce_source=fixed_nonce) == raw
    assert parse_stream_untrusted(raw, opts) == PING_SHORT


def test_encrypted_stream_authenticates_its_frame_header() -> None:
    # Same key, nonce and plaintext as the UDP vsn=1 vector: same ciphertext, other tag.
    stream = V["TCP encrypted stream (ping omitempty), vsn1"]
    udp = V["udp encrypt vsn=1 (AAD empty)"]
    assert stream[:5] == b"\x0a" + struct.pack(">I", 50)
    assert stream[5:-16] == udp[:-16]
    assert stream[-16:] != udp[-16:]


def test_compressed_push_pull_vector_decodes_and_is_reproduced() -> None:
    raw = V["TCP pushPull stream join=false, compressed"]
    want = PushPull(False, (NODE_B, NODE_A), DEADBEEF)
    assert parse_stream_untrusted(raw, PLAIN) == want
    assert frame_stream(encode_stream_message(want), WireOptions(compression=True)) == raw


def test_serf_push_pull_reply_decodes() -> None:
    cap = serf_capture()
    reply = parse_stream_untrusted(cap["RAW_REPLY"], PLAIN)
    assert isinstance(reply, PushPull)
    assert reply.join is False
    serf_vsn = bytes((1, 5, 2, 2, 5, 5))
    assert reply.nodes == (
        PushNodeState("a", LOCALHOST, 7946, b"\xff\x81\xa4role\xa2ra", 1, 0, serf_vsn),
        PushNodeState("c", LOCALHOST, 7948, b"\xff\x81\xa4role\xa2rc", 7, 3, serf_vsn),
        PushNodeState("b", LOCALHOST, 7947, b"\xff\x81\xa4role\xa2rb", 1, 0, serf_vsn),
    )
    assert len(reply.user_state) == 648
    assert reply.user_state[0] == 0x02
    serf = msgpack.unpackb(reply.user_state[1:], raw=True)
    assert serf[b"LTime"] == 27 and serf[b"LeftMembers"] == [b"c"]
    # the reply is the capture's DECOMPRESSED payload, LZW-wrapped
    buf = msgpack.unpackb(cap["RAW_REPLY"][1:], raw=True)[b"Buf"]
    assert lzw.decompress_untrusted(buf) == cap["DECOMPRESSED"]
    assert encode_stream_message(reply) == cap["DECOMPRESSED"]


def test_serf_read_only_push_pull_request_decodes() -> None:
    request = serf_capture()["REQUEST"]
    assert parse_stream_untrusted(request, PLAIN) == PushPull(False, (), b"")
    assert encode_push_pull(False, []) == request


def test_err_and_ack_replies_round_trip() -> None:
    for msg in (Err("remote failure"), Ack(7), Ack(8, b"\x01coord")):
        assert parse_stream_untrusted(frame_stream(encode_stream_message(msg), PLAIN), PLAIN) == msg


# ----------------------------------------------------------------------- incremental


def _assert_prefixes_need_more(raw: bytes, opts: WireOptions, *, expect_label: bool = True) -> None:
    for n in range(len(raw)):
        with pytest.raises(NeedMoreData):
            parse_stream_untrusted(raw[:n], opts, expect_label=expect_label)


@pytest.mark.parametrize(
    "name",
    [
        "TCP pushPull stream join=true (2 nodes + 4B user state)",
        "TCP user stream (SendReliable 'hello')",
        "TCP fallback ping stream",
        "TCP pushPull stream join=false, compressed",
    ],
)
def test_every_strict_prefix_of_a_plain_stream_needs_more_data(name: str) -> None:
    raw = V[name]
    _assert_prefixes_need_more(raw, PLAIN)
    assert parse_stream_untrusted(raw, PLAIN) is not None


def test_every_strict_prefix_of_serf_reply_needs_more_data() -> None:
    raw = serf_capture()["RAW_REPLY"]
    _assert_prefixes_need_more(raw, PLAIN)
    assert isinstance(parse_stream_untrusted(raw, PLAIN), PushPull)


def test_every_strict_prefix_of_an_encrypted_stream_needs_more_data() -> None:
    raw = V["TCP encrypted stream (ping omitempty), vsn1"]
    _assert_prefixes_need_more(raw, keyed())
    assert parse_stream_untrusted(raw, keyed()) == PING_SHORT


def test_every_strict_prefix_of_a_labelled_encrypted_compressed_stream_needs_more_data() -> None:
    opts = keyed(compression=True, label=b"lbl")
    body = encode_push_pull(True, [NODE_B, NODE_A], DEADBEEF)
    raw = frame_stream(body, opts, nonce_source=fixed_nonce)
    assert raw.startswith(b"\xf4\x03lbl\x0a")
    _assert_prefixes_need_more(raw, opts)
    assert parse_stream_untrusted(raw, opts) == PushPull(True, (NODE_B, NODE_A), DEADBEEF)


def test_need_more_data_is_a_wire_error() -> None:
    assert issubclass(NeedMoreData, WireError)
    assert NeedMoreData().reason == "incomplete"


# --------------------------------------------------------------------------- limits


def _header(nodes: int, user_state_len: int) -> bytes:
    body: bytes = msgpack.packb(
        {b"Join": False, b"Nodes": nodes, b"UserStateLen": user_state_len}, use_bin_type=False
    )
    return b"\x06" + body


def _peak_while(fn: Callable[[], object]) -> tuple[WireError | None, int, float]:
    """Run ``fn``; return the WireError it raised, the tracemalloc peak and the time."""
    tracemalloc.start()
    started = time.perf_counter()
    caught: WireError | None = None
    try:
        fn()
    except WireError as exc:
        caught = exc
    elapsed = time.perf_counter() - started
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return caught, peak, elapsed


def _feed_byte_by_byte(raw: bytes) -> None:
    reader = StreamReader(PLAIN, expect_label=True)
    for i in range(len(raw)):
        reader.receive_data(raw[i : i + 1])
        assert reader.next_event() is NEED_DATA


@pytest.mark.parametrize("byte_by_byte", [False, True], ids=["whole", "byte-by-byte"])
@pytest.mark.parametrize(
    ("nodes", "user_state_len"),
    [(10**9, 0), (2**31, 0), (0, 2**40), (3, MAX_PUSH_STATE_BYTES + 1)],
    ids=["billion-nodes", "2^31-nodes", "2^40-user-bytes", "just-over-state-cap"],
)
def test_absurd_push_pull_header_is_rejected_before_allocating(
    nodes: int, user_state_len: int, byte_by_byte: bool
) -> None:
    raw = _header(nodes, user_state_len)
    err, peak, elapsed = _peak_while(
        (lambda: _feed_byte_by_byte(raw))
        if byte_by_byte
        else (lambda: parse_stream_untrusted(raw, PLAIN))
    )
    assert isinstance(err, WireError) and not isinstance(err, NeedMoreData)
    assert err.reason == "oversized"
    assert peak < 256 * 1024
    assert elapsed < 1


def test_header_claiming_many_nodes_in_a_short_plain_stream_just_waits() -> None:
    raw = _header(1_000_000, 0) + b"\x80"
    err, peak, _ = _peak_while(lambda: parse_stream_untrusted(raw, PLAIN))
    assert isinstance(err, NeedMoreData)
    assert peak < 256 * 1024


def test_header_claiming_more_nodes_than_a_complete_frame_holds_is_rejected() -> None:
    opts = keyed()
    raw = frame_stream(_header(1_000_000, 0) + b"\x80", opts, nonce_source=fixed_nonce)
    err, peak, _ = _peak_while(lambda: parse_stream_untrusted(raw, opts))
    assert isinstance(err, WireError) and not isinstance(err, NeedMoreData)
    assert err.reason == "truncated"
    assert peak < 256 * 1024


def test_complete_frame_with_short_user_state_is_truncated() -> None:
    opts = keyed()
    raw = frame_stream(
        encode_push_pull(False, [NODE_A], DEADBEEF)[:-1], opts, nonce_source=fixed_nonce
    )
    with pytest.raises(WireError) as info:
        parse_stream_untrusted(raw, opts)
    assert info.value.reason == "truncated"


def test_two_byte_prefix_with_a_map_header_waits_for_more_data() -> None:
    # msgpack's default limits scale with the buffer; a short prefix must not trip them.
    with pytest.raises(NeedMoreData):
        parse_stream_untrusted(b"\x06\x83", PLAIN)
    with pytest.raises(NeedMoreData):
        parse_stream_untrusted(b"\x00\x85\xa4No", PLAIN)


@pytest.mark.parametrize(
    "raw",
    [b"\x06\xdf\xff\xff\xff\xff", b"\x06\x81\xa3Vsn\xdd\xff\xff\xff\xff", b"\x00\xde\xff\xff"],
    ids=["map32", "array32", "map16"],
)
def test_huge_msgpack_container_header_is_rejected_without_allocating(raw: bytes) -> None:
    err, peak, _ = _peak_while(lambda: parse_stream_untrusted(raw, PLAIN))
    assert isinstance(err, WireError) and not isinstance(err, NeedMoreData)
    assert peak < 256 * 1024


def test_oversized_encrypted_frame_is_rejected_from_its_header_alone() -> None:
    header = b"\x0a" + struct.pack(">I", MAX_PUSH_STATE_BYTES + 1)
    with pytest.raises(WireError) as info:
        parse_stream_untrusted(header, keyed())
    assert info.value.reason == "oversized"
    at_limit = b"\x0a" + struct.pack(">I", MAX_PUSH_STATE_BYTES)
    with pytest.raises(NeedMoreData):
        parse_stream_untrusted(at_limit, keyed())


def test_oversized_user_message_header_is_rejected() -> None:
    raw = b"\x08" + msgpack.packb({b"UserMsgLen": MAX_USER_MSG_BYTES + 1})
    with pytest.raises(WireError) as info:
        parse_stream_untrusted(raw, PLAIN)
    assert info.value.reason == "oversized"


def _compress_header(buf_len: int) -> bytes:
    """``0x09`` and a compress map whose Buf (bin32) declares ``buf_len`` bytes."""
    return b"\x09\x82\xa4Algo\x00\xa3Buf\xc6" + struct.pack(">I", buf_len)


def test_plain_stream_longer_than_the_stream_cap_is_rejected() -> None:
    # a 30 MiB Buf is within msgpack's string cap but cannot end within MAX_STREAM_BYTES
    raw = _compress_header(30 * 1024 * 1024) + bytes(MAX_STREAM_BYTES)
    with pytest.raises(WireError) as info:
        parse_stream_untrusted(raw, PLAIN)
    assert info.value.reason == "oversized"


def test_bytes_after_a_complete_message_are_ignored_even_past_the_stream_cap() -> None:
    # memberlist reads one message per connection and never looks past it
    raw = _header(0, 16) + bytes(MAX_STREAM_BYTES + 1024)
    assert parse_stream_untrusted(raw, PLAIN) == PushPull(False, (), bytes(16))


def test_stream_compressed_twice_is_rejected() -> None:
    raw = compress_payload(compress_payload(V["TCP fallback ping stream"]))
    with pytest.raises(WireError, match="compressed twice"):
        parse_stream_untrusted(raw, PLAIN)


@pytest.mark.parametrize("t", [1, 3, 4, 5, 7, 11, 12, 99])
def test_message_types_not_used_on_streams_are_rejected(t: int) -> None:
    with pytest.raises(WireError) as info:
        parse_stream_untrusted(bytes((t,)) + V["nackResp"][1:], PLAIN)
    assert info.value.reason == "unknown_type"


# ------------------------------------------------------------------------ encryption


def test_keyed_receiver_refuses_a_plaintext_stream() -> None:
    with pytest.raises(
        WireError, match="Encryption is configured but remote state is not encrypted"
    ):
        parse_stream_untrusted(V["TCP fallback ping stream"], keyed())


def test_keyed_receiver_accepts_plaintext_when_not_verifying_incoming() -> None:
    opts = keyed(verify_incoming=False)
    assert parse_stream_untrusted(V["TCP fallback ping stream"], opts) == PING_FULL


def test_encrypted_stream_without_a_keyring_is_rejected() -> None:
    with pytest.raises(WireError) as info:
        parse_stream_untrusted(V["TCP encrypted stream (ping omitempty), vsn1"], PLAIN)
    assert info.value.reason == "decrypt"


def test_encrypted_stream_with_wrong_key_is_rejected() -> None:
    with pytest.raises(WireError) as info:
        parse_stream_untrusted(V["TCP encrypted stream (ping omitempty), vsn1"], keyed(bytes(16)))
    assert info.value.reason == "decrypt"


def test_encrypted_stream_with_tampered_length_is_rejected() -> None:
    raw = bytearray(V["TCP encrypted stream (ping omitempty), vsn1"])
    raw[4] -= 1  # declared length one short: the frame no longer authenticates
    with pytest.raises(WireError) as info:
        parse_stream_untrusted(bytes(raw), keyed())
    assert info.value.reason == "decrypt"


# ----------------------------------------------------------------------------- labels


def test_label_is_written_once_by_the_dialer_only() -> None:
    opts = WireOptions(compression=False, label=b"x")
    body = encode_message(PING_FULL)
    dialed = frame_stream(body, opts, dialer=True)
    reply = frame_stream(body, opts, dialer=False)
    assert dialed == b"\xf4\x01x" + body
    assert reply == body
    assert parse_stream_untrusted(dialed, opts) == PING_FULL
    assert parse_stream_untrusted(reply, opts, expect_label=False) == PING_FULL


def test_encrypted_reply_without_label_header_still_authenticates_the_label() -> None:
    opts = keyed(label=b"x")
    body = encode_message(PING_SHORT)
    reply = frame_stream(body, opts, nonce_source=fixed_nonce, dialer=False)
    assert reply[0] == 0x0A
    assert parse_stream_untrusted(reply, opts, expect_label=False) == PING_SHORT
    with pytest.raises(WireError) as info:
        parse_stream_untrusted(reply, keyed(label=b"y"), expect_label=False)
    assert info.value.reason == "decrypt"


@pytest.mark.parametrize(
    ("sent", "want"), [(b"x", b""), (b"x", b"y"), (b"", b"y")], ids=["unlabelled", "other", "none"]
)
def test_stream_label_mismatch_is_rejected(sent: bytes, want: bytes) -> None:
    raw = frame_stream(encode_message(PING_FULL), WireOptions(compression=False, label=sent))
    with pytest.raises(WireError) as info:
        parse_stream_untrusted(raw, WireOptions(label=want))
    assert info.value.reason == "bad_label"


def test_zero_length_stream_label_is_rejected() -> None:
    with pytest.raises(WireError) as info:
        parse_stream_untrusted(b"\xf4\x00\x00", PLAIN)
    assert info.value.reason == "bad_label"


def test_skip_inbound_label_check_accepts_an_unlabelled_stream() -> None:
    opts = WireOptions(label=b"x", skip_inbound_label_check=True)
    assert parse_stream_untrusted(V["TCP fallback ping stream"], opts) == PING_FULL


# ------------------------------------------------------------------------- properties

_PROPS = settings(
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

stream_messages: st.SearchStrategy[StreamMessage] = st.one_of(
    st.builds(
        PushPull,
        st.booleans(),
        st.lists(push_node_states, max_size=5).map(tuple),
        st.binary(max_size=300),
    ),
    st.builds(Ping, u32, names, st.sampled_from([b"", LOCALHOST]), st.integers(0, 0xFFFF), names),
    st.builds(Ack, u32, st.binary(max_size=130)),
    st.builds(Err, st.text(max_size=60)),
    st.builds(UserStream, st.binary(max_size=300)),
)


@st.composite
def valid_streams(draw: st.DrawFn) -> tuple[bytes, WireOptions, bool, StreamMessage]:
    msg = draw(stream_messages)
    opts, dialer, seed = draw(wire_options())
    raw = frame_stream(
        encode_stream_message(msg), opts, nonce_source=random.Random(seed).randbytes, dialer=dialer
    )
    return raw, opts, dialer, msg


@_PROPS
@given(valid_streams())
def test_stream_messages_round_trip_through_every_option_combination(
    case: tuple[bytes, WireOptions, bool, StreamMessage],
) -> None:
    raw, opts, dialer, msg = case
    assert parse_stream_untrusted(raw, opts, expect_label=dialer) == msg


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(valid_streams(), st.integers(0, 2**16))
def test_strict_prefixes_of_valid_streams_need_more_data(
    case: tuple[bytes, WireOptions, bool, StreamMessage], at: int
) -> None:
    raw, opts, dialer, _ = case
    with pytest.raises(NeedMoreData):
        parse_stream_untrusted(raw[: at % len(raw)], opts, expect_label=dialer)


def _parse_or_wire_error(raw: bytes, opts: WireOptions, expect_label: bool) -> None:
    with contextlib.suppress(WireError):
        parse_stream_untrusted(raw, opts, expect_label=expect_label)


@st.composite
def mutated_streams(draw: st.DrawFn) -> tuple[bytes, WireOptions, bool]:
    """A valid stream with bits flipped, cut short, extended or spliced with another."""
    raw, opts, dialer, _ = draw(valid_streams())
    buf = bytearray(raw)
    how = draw(st.sampled_from(["flip", "truncate", "extend", "splice"]))
    if how == "flip":
        for _ in range(draw(st.integers(1, 4))):
            i = draw(st.integers(0, len(buf) - 1))
            buf[i] ^= 1 << draw(st.integers(0, 7))
    elif how == "truncate":
        del buf[draw(st.integers(0, len(buf) - 1)) :]
    elif how == "extend":
        buf += draw(st.binary(min_size=1, max_size=40))
    else:
        other = draw(valid_streams())[0]
        buf = buf[: draw(st.integers(0, len(buf)))] + other[draw(st.integers(0, len(other))) :]
    return bytes(buf), opts, dialer


@_PROPS
@given(mutated_streams())
def test_mutated_streams_raise_only_wire_error(case: tuple[bytes, WireOptions, bool]) -> None:
    raw, opts, dialer = case
    _parse_or_wire_error(raw, opts, dialer)
    _parse_or_wire_error(raw, PLAIN, True)


@_PROPS
@given(st.binary(max_size=400))
def test_random_bytes_on_a_stream_raise_only_wire_error(raw: bytes) -> None:
    _parse_or_wire_error(raw, PLAIN, True)
    _parse_or_wire_error(b"\x06" + raw, PLAIN, True)
    _parse_or_wire_error(b"\x08" + raw, PLAIN, True)
