"""TCP stream framing: push/pull, TCP fallback ping, reliable user messages, err replies.

Each memberlist TCP connection carries one request and at most one reply (WIRE.md §6).
Send: body -> LZW (always, when compression is on) -> ``0x0a | len32 | AES-GCM`` with the
five header bytes (+ label) as AAD -> label header once at connection start (dialer only).

Receive: :class:`StreamReader`, one per connection and direction, takes bytes as they
are read (h11's ``receive_data`` / ``next_event`` / ``NEED_DATA``) and parses each byte
once, so a 20 MiB push/pull costs linear time however it is split. A plain stream has no
length prefix, so completeness is found by parsing; nothing is allocated from declared
lengths before the bytes are there. :func:`parse_stream_untrusted` is the same reader for
a buffer at hand.
"""

from __future__ import annotations

import enum
import struct
from collections import deque
from dataclasses import dataclass
from typing import Any, Final, TypeVar, cast

import msgpack

from swimpy.wire.constants import (
    LABEL_MAX_SIZE,
    MAX_DECOMPRESSED_BYTES,
    MAX_PUSH_STATE_BYTES,
    MAX_PUSH_STATE_NODES,
    MAX_USER_MSG_BYTES,
    NONCE_SIZE,
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
            nonce_source(NONCE_SIZE),
        )
        body = header + enc
    if dialer:
        body = add_label_header(body, opts.label)
    return body


# ------------------------------------------------------------------------------- decode
#
# memberlist reads a stream with a blocking decoder on the connection (net.go readStream,
# then handleConn / readRemoteState on the responder, sendAndReceiveState on the dialer).
# We get bytes in arbitrary pieces instead, so the decoder below is a state machine that
# keeps its position: every byte of the connection is looked at once (msgpack's Unpacker
# resumes a half-read object where it stopped), whatever the size of the pieces.


class NeedData(enum.Enum):
    """Type of :data:`NEED_DATA`: h11's ``NEED_DATA`` sentinel, as an enum so that
    ``event is NEED_DATA`` narrows the type for mypy."""

    NEED_DATA = "NEED_DATA"


#: :meth:`StreamReader.next_event`: the message is not complete; receive more data.
NEED_DATA: Final = NeedData.NEED_DATA

#: Plaintext is handed to msgpack at most this many bytes at a time, so a push/pull's raw
#: user-state tail is never copied into the unpacker's buffer beyond one piece, and the
#: unpacker's buffer stays small when a whole decrypted or decompressed body is parsed.
_PIECE = 64 * 1024
#: Most bytes one message can occupy on a connection: a label header and then a plain
#: body of MAX_STREAM_BYTES or an encrypted frame (header and at most
#: MAX_PUSH_STATE_BYTES). Every message is complete or refused within this many bytes, so
#: a reader never keeps more than this, however much the peer sends.
_MAX_MESSAGE_BYTES = 2 + LABEL_MAX_SIZE + max(MAX_STREAM_BYTES, 5 + MAX_PUSH_STATE_BYTES)

_M = TypeVar("_M", bound=Message)
_OUT_OF_DATA: Final = object()
#: What msgpack raises for bad input (WireError is a ValueError too: catch it first).
_MSGPACK_ERRORS: Final = (ValueError, TypeError, msgpack.UnpackException, RecursionError)
#: The first msgpack object of each message type a stream body may start with.
_FIRST_OBJECT: Final[dict[int, str]] = {
    MessageType.COMPRESS: "compress",
    MessageType.PUSH_PULL: "push/pull header",
    MessageType.PING: "ping",
    MessageType.ACK: "ack",
    MessageType.ERR: "err",
    MessageType.USER: "user message header",
}


def _body(cls: type[_M], obj: Any) -> _M:
    return cast(_M, body_from_object_untrusted(cls, obj))


def _fill(buf: bytearray, size: int, data: memoryview) -> memoryview:
    """Move bytes from ``data`` into ``buf`` until it holds ``size``; return the rest.

    The byte counter for fixed-size parts (label header, encrypted frame): ``buf`` grows
    only by bytes that arrived, never to a declared size in advance.
    """
    take = max(size - len(buf), 0)
    buf += data[:take]
    return data[take:]


class _Body:
    """One stream message, ``type | msgpack object(s) | raw tail``, parsed as bytes arrive.

    readStream's decoder in one place for all three ways a body reaches us: a plain stream
    piece by piece, and a decrypted frame or a decompressed ``compress`` buffer whole
    (:func:`_parse_complete`). Bytes after the message are never looked at, as memberlist
    never reads past it.
    """

    __slots__ = (
        "_decompressed",
        "_join",
        "_nodes",
        "_nodes_left",
        "_tail",
        "_tail_len",
        "_type",
        "_unpacker",
        "_what",
    )

    def __init__(self, *, decompressed: bool) -> None:
        self._decompressed = decompressed
        self._type = -1
        self._what = "stream message"
        self._unpacker: Any = None
        self._join = False
        #: push/pull: node states still to read (-1 until the header is read)
        self._nodes_left = -1
        self._nodes: list[Message] = []  # PushNodeState each
        #: declared length of the raw tail (user state / user message); -1 until known
        self._tail_len = -1
        self._tail = bytearray()

    def feed(self, data: memoryview) -> StreamMessage | None:
        """Take the next bytes of the body; the message once it is complete, else None.

        Not called again after it returned a message.
        """
        if self._type < 0:
            if not data:
                return None
            self._start(data[0])
            data = data[1:]
        for start in range(0, len(data), _PIECE):
            if self._unpacker is None:  # in the raw tail: count bytes, don't parse
                return self._take_tail(data[start:])
            msg = self._unpack(data[start : start + _PIECE])
            if msg is not None:
                return msg
        return None

    def truncated(self) -> WireError:
        """The error for a body that ended here (EOF, or the end of a complete frame)."""
        if self._type < 0:
            return WireError("empty stream message", reason="empty")
        return WireError(f"{self._what}: truncated", reason="truncated")

    def _start(self, t: int) -> None:
        if t == MessageType.COMPRESS and self._decompressed:
            # readStream decompresses once; a second compress type is "invalid msgType"
            raise WireError("stream is compressed twice", reason="malformed")
        what = _FIRST_OBJECT.get(t)
        if what is None:
            raise WireError(f"invalid stream message type ({t})", reason="unknown_type")
        self._type = t
        self._what = what
        # Limits must not depend on how much of the stream has arrived, or a valid stream
        # cut at an unlucky point would be refused instead of waiting for more bytes.
        # msgpack builds a str/bin only once all its bytes are buffered, so their cap is
        # the largest body we parse; arrays are allocated from their header, so arrays and
        # maps get a small fixed cap (honest stream structs hold a handful of fields). The
        # buffer holds one unfinished object plus the rest of one piece; it starts at
        # read_size and grows only with data (msgpack's default read_size would malloc 1 MiB
        # up front).
        self._unpacker = msgpack.Unpacker(
            raw=True,
            strict_map_key=False,
            use_list=True,
            read_size=4096,
            max_buffer_size=MAX_DECOMPRESSED_BYTES + _PIECE,
            max_str_len=MAX_DECOMPRESSED_BYTES,
            max_bin_len=MAX_DECOMPRESSED_BYTES,
            max_ext_len=MAX_DECOMPRESSED_BYTES,
            max_array_len=MAX_STREAM_CONTAINER_LEN,
            max_map_len=MAX_STREAM_CONTAINER_LEN,
        )

    def _unpack(self, piece: memoryview) -> StreamMessage | None:
        """Feed one piece to the unpacker and act on every object it completes."""
        try:
            self._unpacker.feed(piece)
        except (ValueError, msgpack.UnpackException) as exc:  # BufferFull
            raise WireError(f"{self._what}: {exc.__class__.__name__}", reason="oversized") from None
        while self._unpacker is not None:
            if self._nodes_left > 0:
                if not self._read_nodes():
                    return None
                msg = self._start_tail("push/pull user state")
            else:
                obj = self._next_object()
                if obj is _OUT_OF_DATA:
                    return None
                msg = self._on_object(obj)
            if msg is not None:
                return msg
        return None  # now in the raw tail; the caller passes the rest of the data there

    def _next_object(self) -> Any:
        try:
            return self._unpacker.unpack()
        except msgpack.OutOfData:
            return _OUT_OF_DATA
        except _MSGPACK_ERRORS as exc:
            raise WireError(f"{self._what}: invalid msgpack ({exc})") from None

    def _read_nodes(self) -> bool:
        """Push/pull node states (readRemoteState's loop), the bulk of a push/pull, in a
        tight loop; True once all are read. Nodes are appended one by one: nothing is
        sized from the declared count. unpack() reads one object, never further, so the
        user state after the last node is left in the unpacker's buffer."""
        unpack = self._unpacker.unpack
        append = self._nodes.append
        left = self._nodes_left
        try:
            while left:
                append(body_from_object_untrusted(PushNodeState, unpack()))
                left -= 1
        except msgpack.OutOfData:
            return False
        except WireError:
            raise
        except _MSGPACK_ERRORS as exc:
            raise WireError(f"{self._what}: invalid msgpack ({exc})") from None
        finally:
            self._nodes_left = left
        return True

    def _on_object(self, obj: Any) -> StreamMessage | None:
        t = self._type
        if t == MessageType.PUSH_PULL:  # state.go readRemoteState: the header
            h = _body(PushPullHeader, obj)
            # upstream (v0.6) rejects these before reading further; v0.2.2 trusts them
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
            self._join = h.join
            self._nodes_left = h.nodes  # read by _read_nodes
            self._tail_len = h.user_state_len
            self._what = "push/pull node"
            if h.nodes == 0:
                return self._start_tail("push/pull user state")
            return None
        if t == MessageType.USER:  # net.go handleConn: userMsgHeader, then UserMsgLen bytes
            uh = _body(UserMsgHeader, obj)
            if uh.user_msg_len > MAX_USER_MSG_BYTES:
                raise WireError(
                    f"user message of {uh.user_msg_len} bytes exceeds {MAX_USER_MSG_BYTES}",
                    reason="oversized",
                )
            self._tail_len = uh.user_msg_len
            return self._start_tail("user message")
        if t == MessageType.COMPRESS:  # readStream: decode compress{}, decompress, go on
            plain = decompress_body_untrusted(_body(Compress, obj), MAX_DECOMPRESSED_BYTES)
            self._unpacker = None
            return _parse_complete(plain, decompressed=True)
        if t == MessageType.PING:
            return _body(Ping, obj)
        if t == MessageType.ACK:
            return _body(Ack, obj)
        return _body(Err, obj)  # the last type _FIRST_OBJECT lets through

    def _start_tail(self, what: str) -> StreamMessage | None:
        """Leave msgpack for a raw tail of ``_tail_len`` bytes (io.ReadAtLeast upstream).

        Whatever the unpacker already buffered past the last object is the tail's start;
        later bytes go straight to the tail.
        """
        self._what = what
        self._tail += self._unpacker.read_bytes(self._tail_len)
        self._unpacker = None
        return self._take_tail(memoryview(b""))

    def _take_tail(self, data: memoryview) -> StreamMessage | None:
        _fill(self._tail, self._tail_len, data)
        if len(self._tail) < self._tail_len:
            return None
        if self._type == MessageType.USER:
            return UserStream(bytes(self._tail))
        nodes = cast(tuple[PushNodeState, ...], tuple(self._nodes))
        return PushPull(self._join, nodes, bytes(self._tail))


def _parse_complete(plain: bytes, *, decompressed: bool) -> StreamMessage:
    """The message filling a decrypted frame or a decompressed buffer (memberlist goes on
    reading from ``bytes.NewReader(plain[1:])``): all bytes are there, so a short body
    is truncated, not incomplete."""
    body = _Body(decompressed=decompressed)
    msg = body.feed(memoryview(plain))
    if msg is None:
        raise body.truncated()
    return msg


class _Phase(enum.Enum):
    LABEL = "label header"
    TYPE = "message type"
    FRAME_HEADER = "encrypted frame header"
    FRAME = "encrypted frame"
    PLAIN = "plain message"
    DONE = "done"
    FAILED = "failed"


class StreamReader:
    """Reads the one message a peer sends on a memberlist TCP connection, incrementally.

    The shape of h11's connection: :meth:`receive_data` hands over bytes as they are read
    (``b""`` for EOF), :meth:`next_event` returns :data:`NEED_DATA` until the message is
    complete, then the message, once. Use one reader per connection and direction::

        reader = StreamReader(opts, expect_label=True)
        while (event := reader.next_event()) is NEED_DATA:
            reader.receive_data(await stream.receive_some())

    Each byte is processed once, so reading a message costs time linear in its size
    however it is split: the label header and the encrypted frame (``0x0a | len32 |
    ciphertext``) are counted into buffers of their declared size, a plain body goes
    through one resumable msgpack ``Unpacker``, and a raw tail (push/pull user state, a
    reliable user message) is counted, not parsed. A compressed body is decompressed once
    its ``compress`` object is complete.

    ``expect_label``: the upstream label header (``0xf4 | len | label``) is written once
    at connection start by the dialer only (``AddLabelHeaderToStream``); the responder
    strips and checks it (``RemoveLabelHeaderFromStream`` in handleConn) and never
    echoes it. So True for a connection we accepted, False for the reply on a connection
    we dialed (there a leading 0xf4 is an unknown message type, as in memberlist).

    Peer input raises only :class:`WireError` (with its ``reason``), from
    :meth:`next_event`; once raised, every later call raises it again. Nothing is
    allocated from a declared length before the bytes arrive, and the limits are those of
    :func:`parse_stream_untrusted`: an encrypted frame of at most MAX_PUSH_STATE_BYTES, a
    plain body complete within MAX_STREAM_BYTES, the push/pull node, user-state and user
    message caps, MAX_STREAM_CONTAINER_LEN entries per msgpack container and
    MAX_DECOMPRESSED_BYTES out of LZW. EOF before the message is complete raises
    ``WireError(reason="truncated")`` (``"empty"`` if nothing at all arrived).

    Bytes after the message are ignored: memberlist reads one message per connection and
    each direction (readStream then readRemoteState / the user message bytes), so it
    never looks at anything after it, and neither do we; they are dropped, not kept.

    After the message was returned, :meth:`next_event` raises ``RuntimeError``: there is
    no second message to wait for (h11 says ``PAUSED`` and waits for a next cycle;
    memberlist has none), so a further call is a caller bug, and NEED_DATA would make the
    caller read a connection forever. ``receive_data`` goes on accepting (and dropping)
    bytes, so a late read from the socket is harmless.
    """

    __slots__ = (
        "_body",
        "_body_bytes",
        "_eof",
        "_error",
        "_frame",
        "_frame_len",
        "_head",
        "_kept",
        "_opts",
        "_pending",
        "_phase",
    )

    def __init__(self, opts: WireOptions, *, expect_label: bool) -> None:
        self._opts = opts
        self._phase = _Phase.LABEL if expect_label else _Phase.TYPE
        #: received and not yet processed (processing happens in next_event, as in h11)
        self._pending: deque[memoryview] = deque()
        #: bytes ever put in _pending, at most _MAX_MESSAGE_BYTES
        self._kept = 0
        self._eof = False
        self._error: WireError | None = None
        #: the label header, then the 5-byte encrypted frame header (type + len32)
        self._head = bytearray()
        self._frame = bytearray()
        self._frame_len = 0
        self._body: _Body | None = None
        #: plain body bytes handed to _body so far, against MAX_STREAM_BYTES
        self._body_bytes = 0

    def receive_data(self, data: bytes | bytearray | memoryview) -> None:
        """Add bytes read from the connection; ``b""`` means the peer closed it (EOF).

        Only buffers; the work (and any :class:`WireError`) happens in :meth:`next_event`.
        Bytes beyond what one message can occupy are dropped here already, so a peer
        cannot make the reader hold more than about MAX_STREAM_BYTES. Raises
        RuntimeError for data after EOF (a caller bug, not peer input).
        """
        if not data:
            self._eof = True
            return
        if self._eof:
            raise RuntimeError("StreamReader.receive_data: data after EOF")
        room = _MAX_MESSAGE_BYTES - self._kept
        if room <= 0 or self._phase in (_Phase.DONE, _Phase.FAILED):
            return
        # keep our own immutable copy only if the caller's buffer could change under us
        view = memoryview(data if type(data) is bytes else bytes(data))[:room]
        self._kept += len(view)
        self._pending.append(view)

    def next_event(self) -> StreamMessage | NeedData:
        """:data:`NEED_DATA` until the message is complete, then the message.

        Raises :class:`WireError` if the bytes so far cannot be the start of a valid
        message, or EOF came before its end (the same error again on every later call),
        and RuntimeError if the message was returned already.
        """
        if self._error is not None:
            raise self._error
        if self._phase is _Phase.DONE:
            raise RuntimeError("StreamReader.next_event: the stream's message was returned")
        try:
            while self._pending:
                msg = self._consume(self._pending.popleft())
                if msg is not None:
                    self._finish(_Phase.DONE)
                    return msg
            if self._eof:
                raise self._ended_early()
        except WireError as exc:
            self._error = exc
            self._finish(_Phase.FAILED)
            raise
        return NEED_DATA

    def _finish(self, phase: _Phase) -> None:
        self._phase = phase
        self._pending.clear()
        self._body = None
        self._frame = bytearray()

    def _ended_early(self) -> WireError:
        if self._kept == 0:
            return WireError("stream closed before a message", reason="empty")
        if self._phase is _Phase.PLAIN:
            assert self._body is not None
            return self._body.truncated()
        return WireError(f"{self._phase.value}: truncated", reason="truncated")

    def _consume(self, data: memoryview) -> StreamMessage | None:
        """Run ``data`` through the phases; the message if it completes here."""
        while True:
            phase = self._phase
            if phase is _Phase.PLAIN:
                return self._feed_plain(data)
            if phase is _Phase.FRAME:
                return self._feed_frame(data)
            if not data:
                return None
            if phase is _Phase.LABEL:
                data = self._read_label(data)
            elif phase is _Phase.TYPE:
                self._read_type(data[0])
            else:
                data = self._read_frame_header(data)

    def _read_label(self, data: memoryview) -> memoryview:
        """Upstream label.go RemoveLabelHeaderFromStream: peek one byte; if it is 0xf4,
        read ``len`` (1..255) and the label; then check it against ours."""
        head = self._head
        if not head and data[0] != MessageType.HAS_LABEL:
            label = b""
        else:
            data = _fill(head, 2, data)
            if len(head) < 2:
                return data
            if head[1] == 0:
                raise WireError("label: zero-length label header", reason="bad_label")
            data = _fill(head, 2 + head[1], data)
            if len(head) < 2 + head[1]:
                return data
            label = bytes(head[2:])
            head.clear()
        check_label_untrusted(label, self._opts)  # honours skip_inbound_label_check
        self._phase = _Phase.TYPE
        return data

    def _read_type(self, t: int) -> None:
        """net.go readStream: the first byte decides between an encrypted frame and a
        plain message; nothing is consumed here (the type byte belongs to the frame
        header's AAD or to the body)."""
        keyring = self._opts.keyring
        if t == MessageType.ENCRYPT:
            if keyring is None:  # checked before the frame is read, as in readStream
                raise WireError(
                    "remote state is encrypted and encryption is not configured",
                    reason="decrypt",
                )
            self._phase = _Phase.FRAME_HEADER
            return
        if keyring is not None and self._opts.verify_incoming:
            raise WireError(
                "Encryption is configured but remote state is not encrypted", reason="decrypt"
            )
        self._body = _Body(decompressed=False)
        self._phase = _Phase.PLAIN

    def _read_frame_header(self, data: memoryview) -> memoryview:
        """``0x0a | len32``; security.go decryptRemoteState refuses a length over
        maxPushStateBytes before reading the ciphertext."""
        data = _fill(self._head, 5, data)
        if len(self._head) == 5:
            (length,) = _LEN32.unpack_from(self._head, 1)
            if length > MAX_PUSH_STATE_BYTES:
                raise WireError(
                    f"encrypted stream of {length} bytes exceeds {MAX_PUSH_STATE_BYTES}",
                    reason="oversized",
                )
            self._frame_len = length
            self._phase = _Phase.FRAME
        return data

    def _feed_frame(self, data: memoryview) -> StreamMessage | None:
        _fill(self._frame, self._frame_len, data)
        if len(self._frame) < self._frame_len:
            return None
        keyring = self._opts.keyring
        assert keyring is not None  # checked in _read_type
        # the AAD is the 5 header bytes plus our label (upstream), sent or not
        plain = decrypt_payload_untrusted(
            keyring.keys, bytes(self._frame), bytes(self._head) + self._opts.label
        )
        self._frame = bytearray()
        return _parse_complete(plain, decompressed=False)

    def _feed_plain(self, data: memoryview) -> StreamMessage | None:
        assert self._body is not None
        part = data[: MAX_STREAM_BYTES - self._body_bytes]
        self._body_bytes += len(part)
        msg = self._body.feed(part)
        if msg is None and self._body_bytes >= MAX_STREAM_BYTES:
            raise WireError(
                f"plain stream message longer than {MAX_STREAM_BYTES} bytes", reason="oversized"
            )
        return msg


def parse_stream_untrusted(
    buf: bytes, opts: WireOptions, *, expect_label: bool = True
) -> StreamMessage:
    """Decode one stream message from all the bytes read so far (a one-shot
    :class:`StreamReader`, without EOF).

    Raises :class:`NeedMoreData` if the message is incomplete, :class:`WireError` if it is
    bad. ``expect_label``: True on the accepting side (the dialer sends the label). Bytes
    after the message are ignored. Calling this again on a growing buffer re-reads it
    from the start each time (quadratic): keep a :class:`StreamReader` per connection.
    """
    reader = StreamReader(opts, expect_label=expect_label)
    if buf:  # b"" would mean EOF to the reader; here it is just nothing yet
        reader.receive_data(buf)
    event = reader.next_event()
    if event is NEED_DATA:
        raise NeedMoreData()
    return event
