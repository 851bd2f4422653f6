"""swimpy.wire.stream.StreamReader: the incremental TCP stream reader.

The reader must give the same message as a one-shot parse however the bytes are split,
say NEED_DATA until the last byte of the message, read each byte once (linear time), and
answer hostile input only with WireError, without allocating from declared lengths.
"""

from __future__ import annotations

import contextlib
import random
import struct
from collections.abc import Iterable, Iterator
from typing import Any

import msgpack
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from swimpy.wire import NEED_DATA, StreamReader, lzw
from swimpy.wire.constants import MAX_PUSH_STATE_BYTES, MAX_USER_MSG_BYTES
from swimpy.wire.crypto import decrypt_payload_untrusted
from swimpy.wire.errors import WireError
from swimpy.wire.messages import Ack, Err, PushNodeState
from swimpy.wire.packet import WireOptions
from swimpy.wire.stream import (
    MAX_STREAM_BYTES,
    PushPull,
    StreamMessage,
    UserStream,
    encode_push_pull,
    encode_stream_message,
    frame_stream,
    parse_stream_untrusted,
)
from tests.wire.test_stream import (
    DEADBEEF,
    NODE_A,
    NODE_B,
    PING_FULL,
    PING_SHORT,
    PLAIN,
    V,
    _compress_header,
    _header,
    _peak_while,
    fixed_nonce,
    keyed,
    mutated_streams,
    serf_capture,
    valid_streams,
)

LABEL = b"lbl"
PUSH_PULL = PushPull(False, (NODE_B, NODE_A), DEADBEEF)
StreamCase = tuple[bytes, WireOptions, bool, StreamMessage]


def read_pieces(
    raw: bytes, opts: WireOptions, pieces: Iterable[int], *, expect_label: bool
) -> StreamMessage:
    """Feed ``raw`` cut into pieces of the given sizes (the last piece takes the rest);
    assert NEED_DATA after every piece but the last, then return the message."""
    reader = StreamReader(opts, expect_label=expect_label)
    at = 0
    for size in pieces:
        if size <= 0 or at + size >= len(raw):
            continue
        reader.receive_data(raw[at : at + size])
        at += size
        assert reader.next_event() is NEED_DATA, f"complete after {at} of {len(raw)} bytes"
    reader.receive_data(raw[at:])
    event = reader.next_event()
    assert event is not NEED_DATA
    with pytest.raises(RuntimeError):
        reader.next_event()
    return event


def reader_error(
    data: bytes, opts: WireOptions = PLAIN, *, expect_label: bool = False
) -> WireError:
    """The WireError next_event raises after ``data`` (in one piece)."""
    reader = StreamReader(opts, expect_label=expect_label)
    reader.receive_data(data)
    with pytest.raises(WireError) as info:
        reader.next_event()
    return info.value


def byte_by_byte(raw: bytes, opts: WireOptions, *, expect_label: bool) -> StreamMessage:
    return read_pieces(raw, opts, [1] * len(raw), expect_label=expect_label)


def read_to_eof(raw: bytes, opts: WireOptions, pieces: Iterable[int], *, expect_label: bool) -> Any:
    """Feed the pieces, then EOF; return the first event that is not NEED_DATA."""
    reader = StreamReader(opts, expect_label=expect_label)
    at = 0
    for size in [*pieces, len(raw)]:
        chunk = raw[at : at + max(size, 1)]
        at += len(chunk)
        reader.receive_data(chunk)  # b"" once raw is used up: EOF
        event = reader.next_event()
        if event is not NEED_DATA:
            return event
        if not chunk:
            break
    reader.receive_data(b"")
    return reader.next_event()


# ------------------------------------------------------------- labels (the regression)

LABELLED = [
    WireOptions(compression=False, label=LABEL),
    WireOptions(compression=True, label=LABEL),
    keyed(label=LABEL),
    keyed(compression=True, label=LABEL),
]
LABELLED_IDS = ["plain", "lzw", "aes", "aes+lzw"]


@pytest.mark.parametrize("opts", LABELLED, ids=LABELLED_IDS)
def test_labelled_push_pull_reply_needs_data_until_its_last_byte(opts: WireOptions) -> None:
    # memberlist's responder writes its reply without a label header (only the dialer
    # writes one, AddLabelHeaderToStream); the dialer reads it with expect_label=False.
    # The old engine parsed it as a request (expect_label=True): WireError, which its
    # stream_needs_more took for "complete", and half a reply was handed on.
    reply = frame_stream(
        encode_stream_message(PUSH_PULL), opts, nonce_source=fixed_nonce, dialer=False
    )
    assert reply[0] != 0xF4
    assert byte_by_byte(reply, opts, expect_label=False) == PUSH_PULL
    for cut in range(1, len(reply)):
        assert read_pieces(reply, opts, [cut], expect_label=False) == PUSH_PULL
    # read as a request, the same bytes are refused at once, never "complete"
    assert reader_error(reply[:1], opts, expect_label=True).reason == "bad_label"


@pytest.mark.parametrize("opts", LABELLED, ids=LABELLED_IDS)
def test_labelled_push_pull_request_needs_data_until_its_last_byte(opts: WireOptions) -> None:
    request = frame_stream(
        encode_stream_message(PUSH_PULL), opts, nonce_source=fixed_nonce, dialer=True
    )
    assert request.startswith(b"\xf4\x03lbl")
    assert byte_by_byte(request, opts, expect_label=True) == PUSH_PULL
    for cut in range(1, len(request)):
        assert read_pieces(request, opts, [cut], expect_label=True) == PUSH_PULL


def test_label_header_split_anywhere_is_checked_once_complete() -> None:
    raw = frame_stream(encode_stream_message(PING_FULL), WireOptions(compression=False, label=b"x"))
    for cut in range(1, 4):
        reader = StreamReader(WireOptions(label=b"y"), expect_label=True)
        reader.receive_data(raw[:cut])
        if cut < 3:
            assert reader.next_event() is NEED_DATA
        reader.receive_data(raw[cut:])
        with pytest.raises(WireError) as info:
            reader.next_event()
        assert info.value.reason == "bad_label"


def test_skip_inbound_label_check_accepts_an_unlabelled_stream_byte_by_byte() -> None:
    opts = WireOptions(label=b"x", skip_inbound_label_check=True)
    assert byte_by_byte(V["TCP fallback ping stream"], opts, expect_label=True) == PING_FULL


# ------------------------------------------------------------ vectors, any splitting


def _vector_cases() -> Iterator[tuple[str, bytes, WireOptions, StreamMessage]]:
    yield (
        "push/pull",
        V["TCP pushPull stream join=true (2 nodes + 4B user state)"],
        PLAIN,
        (PushPull(True, (NODE_B, NODE_A), DEADBEEF)),
    )
    yield "user", V["TCP user stream (SendReliable 'hello')"], PLAIN, UserStream(b"hello")
    yield "ping", V["TCP fallback ping stream"], PLAIN, PING_FULL
    yield "lzw", V["TCP pushPull stream join=false, compressed"], PLAIN, PUSH_PULL
    yield "aes", V["TCP encrypted stream (ping omitempty), vsn1"], keyed(), PING_SHORT
    cap = serf_capture()
    reply = parse_stream_untrusted(cap["RAW_REPLY"], PLAIN)
    yield "serf-reply", cap["RAW_REPLY"], PLAIN, reply
    yield "serf-request", cap["REQUEST"], PLAIN, PushPull(False, (), b"")
    opts = keyed(compression=True, label=b"lbl")
    raw = frame_stream(
        encode_push_pull(True, [NODE_B, NODE_A], DEADBEEF), opts, nonce_source=fixed_nonce
    )
    yield "label+aes+lzw", raw, opts, PushPull(True, (NODE_B, NODE_A), DEADBEEF)
    for msg in (Err("remote failure"), Ack(7), Ack(8, b"\x01coord")):
        yield type(msg).__name__, frame_stream(encode_stream_message(msg), PLAIN), PLAIN, msg


VECTOR_CASES = list(_vector_cases())
VECTOR_IDS = [c[0] for c in VECTOR_CASES]


@pytest.mark.parametrize(("name", "raw", "opts", "want"), VECTOR_CASES, ids=VECTOR_IDS)
def test_vector_is_read_whole_and_byte_by_byte(
    name: str, raw: bytes, opts: WireOptions, want: StreamMessage
) -> None:
    assert read_pieces(raw, opts, [], expect_label=True) == want
    assert byte_by_byte(raw, opts, expect_label=True) == want
    assert parse_stream_untrusted(raw, opts) == want
    rng = random.Random(name)
    for _ in range(20):
        sizes = [rng.randint(1, 40) for _ in range(len(raw))]
        assert read_pieces(raw, opts, sizes, expect_label=True) == want


@pytest.mark.parametrize(("name", "raw", "opts", "want"), VECTOR_CASES, ids=VECTOR_IDS)
def test_every_prefix_then_eof_is_truncated(
    name: str, raw: bytes, opts: WireOptions, want: StreamMessage
) -> None:
    for n in range(len(raw)):
        reader = StreamReader(opts, expect_label=True)
        if n:
            reader.receive_data(raw[:n])
            assert reader.next_event() is NEED_DATA
        reader.receive_data(b"")
        with pytest.raises(WireError) as info:
            reader.next_event()
        assert info.value.reason == ("truncated" if n else "empty"), (n, info.value)


@pytest.mark.parametrize(("name", "raw", "opts", "want"), VECTOR_CASES, ids=VECTOR_IDS)
def test_bytes_after_the_message_are_ignored(
    name: str, raw: bytes, opts: WireOptions, want: StreamMessage
) -> None:
    # memberlist reads one message per connection; whatever follows is never looked at
    reader = StreamReader(opts, expect_label=True)
    reader.receive_data(raw + b"\xff garbage")
    assert reader.next_event() == want
    reader.receive_data(b"more garbage")
    reader.receive_data(b"")
    with pytest.raises(RuntimeError):
        reader.next_event()


_PROPS = settings(
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@_PROPS
@given(valid_streams(), st.lists(st.integers(1, 64), max_size=40))
def test_any_split_gives_the_same_message(case: StreamCase, pieces: list[int]) -> None:
    raw, opts, dialer, msg = case
    assert read_pieces(raw, opts, pieces, expect_label=dialer) == msg
    assert byte_by_byte(raw, opts, expect_label=dialer) == msg
    assert read_to_eof(raw, opts, pieces, expect_label=dialer) == msg


# -------------------------------------------------------------------------- linearity


class _CountingUnpacker:
    """msgpack.Unpacker that counts the bytes it is fed (a stand-in for "work done")."""

    fed = 0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._real = _REAL_UNPACKER(*args, **kwargs)

    def feed(self, data: Any) -> None:
        _CountingUnpacker.fed += len(data)
        self._real.feed(data)

    def unpack(self) -> Any:
        return self._real.unpack()

    def read_bytes(self, n: int) -> bytes:
        data: bytes = self._real.read_bytes(n)
        return data


_REAL_UNPACKER = msgpack.Unpacker


@pytest.fixture
def counting(monkeypatch: pytest.MonkeyPatch) -> type[_CountingUnpacker]:
    monkeypatch.setattr(msgpack, "Unpacker", _CountingUnpacker)
    _CountingUnpacker.fed = 0
    return _CountingUnpacker


def big_push_pull(nodes: int, user_state: int = 4096) -> tuple[bytes, PushPull]:
    states = tuple(
        PushNodeState(
            f"node-{i:05d}.dc1",
            bytes((10, 0, i // 256 % 256, i % 256)),
            7946,
            bytes(120),
            3,
            0,
            bytes((1, 5, 2, 2, 5, 5)),
        )
        for i in range(nodes)
    )
    want = PushPull(True, states, bytes(range(256)) * (user_state // 256))
    return encode_stream_message(want), want


def chunks(raw: bytes, size: int) -> Iterator[bytes]:
    return (raw[i : i + size] for i in range(0, len(raw), size))


def test_reading_a_2_mib_push_pull_in_1_kib_chunks_is_linear(
    counting: type[_CountingUnpacker],
) -> None:
    raw, want = big_push_pull(10_000)
    assert len(raw) > 1_900_000
    reader = StreamReader(PLAIN, expect_label=False)
    events = []
    for chunk in chunks(raw, 1024):
        reader.receive_data(chunk)
        events.append(reader.next_event())
    assert events[-1] == want
    assert all(e is NEED_DATA for e in events[:-1])
    assert counting.fed <= len(raw) < 3 * len(raw)


def test_the_counter_sees_the_old_quadratic_reading(counting: type[_CountingUnpacker]) -> None:
    # the old engine called parse_stream_untrusted on the whole buffer after every read
    raw, want = big_push_pull(600)  # ~128 KiB, 1 KiB reads: ~64x the stream
    buf = b""
    got: StreamMessage | None = None
    for chunk in chunks(raw, 1024):
        buf += chunk
        with contextlib.suppress(WireError):
            got = parse_stream_untrusted(buf, PLAIN)
    assert got == want
    assert counting.fed > 30 * len(raw)


def test_user_state_tail_is_counted_not_parsed(counting: type[_CountingUnpacker]) -> None:
    raw, want = big_push_pull(2, user_state=1024 * 1024)
    assert read_pieces(raw, PLAIN, [1024] * (len(raw) // 1024), expect_label=False) == want
    assert counting.fed < 2048  # header, two nodes and the rest of their 1 KiB read


def test_encrypted_frame_is_counted_and_decrypted_once(
    counting: type[_CountingUnpacker], monkeypatch: pytest.MonkeyPatch
) -> None:
    opts = keyed(compression=True)
    body, want = big_push_pull(2_000)
    raw = frame_stream(body, opts, nonce_source=fixed_nonce, dialer=False)
    calls: list[int] = []
    real_lzw = lzw.decompress_untrusted

    def decrypt(keys: Any, buf: bytes, aad: bytes) -> bytes:
        calls.append(len(buf))
        return decrypt_payload_untrusted(keys, buf, aad)

    def decompress(data: Any, max_output: int = 0) -> bytes:
        calls.append(-1)
        return real_lzw(data, max_output)

    monkeypatch.setattr("swimpy.wire.stream.decrypt_payload_untrusted", decrypt)
    monkeypatch.setattr(lzw, "decompress_untrusted", decompress)
    assert read_pieces(raw, opts, [1024] * (len(raw) // 1024), expect_label=False) == want
    assert calls == [len(raw) - 5, -1]
    # msgpack saw the compress object once and the decompressed body once
    assert counting.fed < len(raw) + len(body)


# ----------------------------------------------------------------------- hostile input


def _read_or_wire_error(raw: bytes, opts: WireOptions, pieces: list[int], dialer: bool) -> None:
    with contextlib.suppress(WireError):
        read_to_eof(raw, opts, pieces, expect_label=dialer)


@_PROPS
@given(mutated_streams(), st.lists(st.integers(1, 64), max_size=20))
def test_mutated_streams_in_any_split_raise_only_wire_error(
    case: tuple[bytes, WireOptions, bool], pieces: list[int]
) -> None:
    raw, opts, dialer = case
    _read_or_wire_error(raw, opts, pieces, dialer)
    _read_or_wire_error(raw, PLAIN, pieces, True)


@_PROPS
@given(st.binary(max_size=400), st.lists(st.integers(1, 64), max_size=10))
def test_random_bytes_in_any_split_raise_only_wire_error(raw: bytes, pieces: list[int]) -> None:
    for prefix in (b"", b"\x06", b"\x08", b"\x09", b"\x0a\x00\x00\x01\x00", b"\xf4\x01x"):
        _read_or_wire_error(prefix + raw, PLAIN, pieces, True)
        _read_or_wire_error(prefix + raw, keyed(), pieces, True)


@pytest.mark.parametrize(
    "raw",
    [
        _header(1_000_000, 0) + b"\x80\x80",  # many nodes promised, two empty maps sent
        b"\x08" + msgpack.packb({b"UserMsgLen": MAX_USER_MSG_BYTES}) + b"abc",
        b"\x0a" + struct.pack(">I", MAX_PUSH_STATE_BYTES) + b"\x01" + bytes(40),
        _compress_header(MAX_STREAM_BYTES - 32) + bytes(64),
        b"\x06\x81\xa3Vsn\xdd\x00\x00\x10\x00",  # array of 4096 (the cap) still to come
    ],
    ids=["nodes", "user-msg", "encrypted-frame", "compress-buf", "array"],
)
def test_declared_lengths_are_not_allocated_before_the_bytes_arrive(raw: bytes) -> None:
    opts = keyed() if raw[0] == 0x0A else PLAIN

    def read() -> object:
        reader = StreamReader(opts, expect_label=False)
        for chunk in chunks(raw, 7):
            reader.receive_data(chunk)
            assert reader.next_event() is NEED_DATA
        reader.receive_data(b"")
        return reader.next_event()

    err, peak, _ = _peak_while(read)
    assert err is not None and err.reason == "truncated"
    assert peak < 256 * 1024


def test_plain_stream_that_cannot_end_within_the_cap_is_refused_at_the_cap() -> None:
    reader = StreamReader(PLAIN, expect_label=False)
    reader.receive_data(_compress_header(30 * 1024 * 1024))
    fed = len(_compress_header(0))
    mib = bytes(1024 * 1024)
    with pytest.raises(WireError) as info:
        while True:
            assert reader.next_event() is NEED_DATA
            reader.receive_data(mib)
            fed += len(mib)
    assert info.value.reason == "oversized"
    assert MAX_STREAM_BYTES <= fed < MAX_STREAM_BYTES + len(mib)


def test_errors_are_sticky_and_later_data_is_dropped() -> None:
    reader = StreamReader(PLAIN, expect_label=False)
    reader.receive_data(b"\x63")
    with pytest.raises(WireError) as first:
        reader.next_event()
    assert first.value.reason == "unknown_type"
    reader.receive_data(V["TCP fallback ping stream"])
    for _ in range(2):
        with pytest.raises(WireError) as again:
            reader.next_event()
        assert again.value is first.value


def test_data_after_eof_is_a_caller_error() -> None:
    reader = StreamReader(PLAIN, expect_label=False)
    reader.receive_data(b"")
    with pytest.raises(RuntimeError):
        reader.receive_data(b"\x00")
    with pytest.raises(WireError) as info:
        reader.next_event()
    assert info.value.reason == "empty"


def test_message_is_returned_once_then_asking_again_is_a_caller_error() -> None:
    # one message per connection and direction: there is nothing to wait for after it
    raw = V["TCP fallback ping stream"]
    reader = StreamReader(PLAIN, expect_label=False)
    reader.receive_data(raw)
    assert reader.next_event() == PING_FULL
    reader.receive_data(raw)  # a late read is harmless: dropped
    for _ in range(2):
        with pytest.raises(RuntimeError):
            reader.next_event()


def test_a_caller_buffer_reused_after_receive_data_does_not_change_the_message() -> None:
    raw = V["TCP user stream (SendReliable 'hello')"]
    buf = bytearray(raw[:-2])
    reader = StreamReader(PLAIN, expect_label=False)
    reader.receive_data(buf)
    buf[-5:] = b"XXXXX"
    reader.receive_data(raw[-2:])
    assert reader.next_event() == UserStream(b"hello")


def test_encrypted_stream_without_keyring_is_refused_at_its_type_byte() -> None:
    # net.go readStream checks EncryptionEnabled before reading the frame
    assert reader_error(b"\x0a").reason == "decrypt"
