"""TCP stream framing: push/pull, TCP fallback ping, reliable user messages, err replies.

Each memberlist TCP connection carries one request and at most one reply (WIRE.md §6).
Send: body -> LZW (always, when compression is on) -> ``0x0a | len32 | AES-GCM`` with the
five header bytes (+ label) as AAD -> label header once at connection start (dialer only).

The reader is incremental: :func:`parse_stream_untrusted` takes everything read so far and
either returns the message or raises :class:`NeedMoreData`. A plain stream has no length
prefix, so completeness is found by parsing; nothing is allocated from declared lengths
before the bytes are there.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Any

import msgpack

from swimpy.wire.constants import (
    MAX_DECOMPRESSED_BYTES,
    MAX_PUSH_STATE_BYTES,
    MAX_PUSH_STATE_NODES,
    MAX_USER_MSG_BYTES,
    MessageType,
)
from swimpy.wire.crypto import decrypt_payload_untrusted, encrypt_payload, encrypted_length
from swimpy.wire.errors import NeedMoreData, WireError
from swimpy.wire.messages import (
    Ack,
    Compress,
    Err,
    Message,
    Ping,
    PushNodeState,
    PushPullHeader,
    UserMsgHeader,
    body_from_object_untrusted,
    encode_body,
    encode_message,
)
from swimpy.wire.packet import (
    NonceSource,
    WireOptions,
    add_label_header,
    check_label_untrusted,
    compress_payload,
    decompress_body_untrusted,
)

_LEN32 = struct.Struct(">I")
#: A plain (unframed) stream longer than this without completing is refused.
MAX_STREAM_BYTES = MAX_PUSH_STATE_BYTES + 1024
#: Most entries in one msgpack array or map of a stream message (allocated up front by
#: msgpack, so bounded independently of the declared length).
MAX_STREAM_CONTAINER_LEN = 4096


@dataclass(frozen=True, slots=True)
class PushPull:
    """A decoded push/pull: the peer's member table and its user (delegate) state."""

    join: bool
    nodes: tuple[PushNodeState, ...]
    user_state: bytes = b""


@dataclass(frozen=True, slots=True)
class UserStream:
    """A reliable user message (``SendReliable``)."""

    payload: bytes


StreamMessage = PushPull | Ping | Ack | Err | UserStream


# ------------------------------------------------------------------------------- encode


def encode_push_pull(
    join: bool, nodes: list[PushNodeState] | tuple[PushNodeState, ...], user_state: bytes = b""
) -> bytes:
    """``0x06 | header | node states | user state`` (state.go sendLocalState)."""
    parts = [
        bytes((MessageType.PUSH_PULL,)),
        encode_body(PushPullHeader(len(nodes), len(user_state), join)),
    ]
    parts.extend(encode_body(n) for n in nodes)
    parts.append(user_state)
    return b"".join(parts)


def encode_user_stream(payload: bytes) -> bytes:
    """``0x08 | userMsgHeader | payload`` (net.go sendUserMsg)."""
    return bytes((MessageType.USER,)) + encode_body(UserMsgHeader(len(payload))) + bytes(payload)


def encode_stream_message(msg: StreamMessage) -> bytes:
    if isinstance(msg, PushPull):
        return encode_push_pull(msg.join, msg.nodes, msg.user_state)
    if isinstance(msg, UserStream):
        return encode_user_stream(msg.payload)
    return encode_message(msg)


def frame_stream(
    body: bytes,
    opts: WireOptions,
    *,
    nonce_source: NonceSource | None = None,
    dialer: bool = True,
) -> bytes:
    """Wrap a stream body as ``rawSendMsgStream`` does (compress, encrypt, label).

    ``dialer``: the connection's initiator writes the label header; a responder does not.
    """
    if opts.compression:
        body = compress_payload(body)
    if opts.encrypts:
        assert opts.keyring is not None
        if nonce_source is None:
            raise ValueError("encryption needs a nonce source (os.urandom in production)")
        length = encrypted_length(opts.encryption_version, len(body))
        header = bytes((MessageType.ENCRYPT,)) + _LEN32.pack(length)
        enc = encrypt_payload(
            opts.encryption_version,
            opts.keyring.primary_key,
            body,
            header + opts.label,
            nonce_source(12),
        )
        body = header + enc
    if dialer:
        body = add_label_header(body, opts.label)
    return body


# ------------------------------------------------------------------------------- decode


def parse_stream_untrusted(
    buf: bytes, opts: WireOptions, *, expect_label: bool = True
) -> StreamMessage:
    """Decode one stream message from the bytes read so far.

    Raises :class:`NeedMoreData` if the message is incomplete, :class:`WireError` if it is
    bad. ``expect_label``: True on the accepting side (the dialer sends the label).
    """
    if len(buf) > MAX_STREAM_BYTES + 512:
        raise WireError(f"stream exceeds {MAX_STREAM_BYTES} bytes", reason="oversized")
    pos = 0
    if expect_label and (opts.label or (buf and buf[0] == MessageType.HAS_LABEL)):
        if not buf:
            raise NeedMoreData()
        label = b""
        if buf[0] == MessageType.HAS_LABEL:
            if len(buf) < 2:
                raise NeedMoreData()
            n = buf[1]
            if n == 0:
                raise WireError("label: zero-length label header", reason="bad_label")
            if len(buf) < 2 + n:
                raise NeedMoreData()
            label = bytes(buf[2 : 2 + n])
            pos = 2 + n
        check_label_untrusted(label, opts)
    if len(buf) <= pos:
        raise NeedMoreData()
    t = buf[pos]
    if t == MessageType.ENCRYPT:
        if len(buf) < pos + 5:
            raise NeedMoreData()
        header = bytes(buf[pos : pos + 5])
        (length,) = _LEN32.unpack_from(header, 1)
        if length > MAX_PUSH_STATE_BYTES:
            raise WireError(
                f"encrypted stream of {length} bytes exceeds {MAX_PUSH_STATE_BYTES}",
                reason="oversized",
            )
        end = pos + 5 + length
        if len(buf) < end:
            raise NeedMoreData()
        if opts.keyring is None:
            raise WireError(
                "remote state is encrypted and encryption is not configured", reason="decrypt"
            )
        plain = decrypt_payload_untrusted(
            opts.keyring.keys, bytes(buf[pos + 5 : end]), header + opts.label
        )
        return _parse_body(plain, complete=True)
    if opts.keyring is not None and opts.verify_incoming:
        raise WireError(
            "Encryption is configured but remote state is not encrypted", reason="decrypt"
        )
    return _parse_body(bytes(buf[pos:]), complete=False)


class _Reader:
    """msgpack objects one after another from a buffer, with the offset kept."""

    def __init__(self, data: bytes, offset: int, complete: bool) -> None:
        self.data = data
        self.complete = complete
        # Limits must not depend on how much of the stream has arrived, or a valid stream
        # cut at an unlucky point would be refused instead of waiting for more bytes.
        # Strings are only built once all their bytes are there, so their cap is the
        # largest buffer we ever parse; arrays and maps are allocated from their header,
        # so they get a small fixed cap (honest stream structs hold a handful of fields).
        self.unpacker = msgpack.Unpacker(
            raw=True,
            strict_map_key=False,
            use_list=True,
            max_buffer_size=max(len(data), 1),
            max_str_len=MAX_DECOMPRESSED_BYTES,
            max_bin_len=MAX_DECOMPRESSED_BYTES,
            max_ext_len=MAX_DECOMPRESSED_BYTES,
            max_array_len=MAX_STREAM_CONTAINER_LEN,
            max_map_len=MAX_STREAM_CONTAINER_LEN,
        )
        self.unpacker.feed(data[offset:])
        self.offset = offset

    def next(self, what: str) -> Any:
        try:
            obj = self.unpacker.unpack()
        except msgpack.OutOfData:
            if self.complete:
                raise WireError(f"{what}: truncated", reason="truncated") from None
            raise NeedMoreData() from None
        except (ValueError, TypeError, msgpack.UnpackException, RecursionError) as exc:
            raise WireError(f"{what}: invalid msgpack ({exc})") from None
        return obj

    def tell(self) -> int:
        return self.offset + int(self.unpacker.tell())


def _body(cls: type[Message], obj: Any) -> Any:
    return body_from_object_untrusted(cls, obj)


def _parse_body(data: bytes, *, complete: bool, decompressed: bool = False) -> StreamMessage:
    if not data:
        if complete:
            raise WireError("empty stream message", reason="empty")
        raise NeedMoreData()
    t = data[0]
    r = _Reader(data, 1, complete)
    if t == MessageType.COMPRESS:
        if decompressed:
            raise WireError("stream is compressed twice", reason="malformed")
        c = _body(Compress, r.next("compress"))
        plain = decompress_body_untrusted(c, MAX_DECOMPRESSED_BYTES)
        return _parse_body(plain, complete=True, decompressed=True)
    if t == MessageType.PUSH_PULL:
        h: PushPullHeader = _body(PushPullHeader, r.next("push/pull header"))
        if h.nodes > MAX_PUSH_STATE_NODES:
            raise WireError(
                f"push/pull claims {h.nodes} nodes (limit {MAX_PUSH_STATE_NODES})",
                reason="oversized",
            )
        if h.user_state_len > MAX_PUSH_STATE_BYTES:
            raise WireError(
                f"push/pull claims {h.user_state_len} bytes of user state "
                f"(limit {MAX_PUSH_STATE_BYTES})",
                reason="oversized",
            )
        # every node state is a msgpack map of at least one byte: a header claiming more
        # nodes than bytes left can only be satisfied by more data, never by allocation.
        if complete and h.nodes > len(data) - r.tell():
            raise WireError(
                f"push/pull claims {h.nodes} nodes in {len(data) - r.tell()} bytes",
                reason="truncated",
            )
        nodes = tuple(_body(PushNodeState, r.next("push/pull node")) for _ in range(h.nodes))
        start = r.tell()
        end = start + h.user_state_len
        if len(data) < end:
            if complete:
                raise WireError("push/pull user state truncated", reason="truncated")
            raise NeedMoreData()
        return PushPull(h.join, nodes, bytes(data[start:end]))
    if t == MessageType.PING:
        ping: Ping = _body(Ping, r.next("ping"))
        return ping
    if t == MessageType.ACK:
        ack: Ack = _body(Ack, r.next("ack"))
        return ack
    if t == MessageType.ERR:
        err: Err = _body(Err, r.next("err"))
        return err
    if t == MessageType.USER:
        uh: UserMsgHeader = _body(UserMsgHeader, r.next("user message header"))
        if uh.user_msg_len > MAX_USER_MSG_BYTES:
            raise WireError(
                f"user message of {uh.user_msg_len} bytes exceeds {MAX_USER_MSG_BYTES}",
                reason="oversized",
            )
        start = r.tell()
        end = start + uh.user_msg_len
        if len(data) < end:
            if complete:
                raise WireError("user message truncated", reason="truncated")
            raise NeedMoreData()
        return UserStream(bytes(data[start:end]))
    raise WireError(f"invalid stream message type ({t})", reason="unknown_type")
