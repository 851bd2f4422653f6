"""The codec seam between the engine and what travels between members.

The engine never builds bytes itself: it hands messages to a codec and gets back what to
put in ``SendPacket`` / ``OpenStream`` / ``ReplyStream`` with its size, and hands what
arrives to the codec to get messages back (foca's ``Foca<T, Codec, RNG>`` is the anchor).

* :class:`WireCodec` speaks memberlist v0.2.2's bytes: compound packets, CRC, LZW,
  AES-GCM, labels, stream framing (:mod:`swimpy.wire`). The runtime uses it.
* :class:`ObjectCodec` passes the message objects themselves and computes the exact
  encoded size of what the wire codec would send before compression and encryption.
  The simulator uses it for large clusters. Push/pull carries the sender's immutable
  member records instead of encoded entries.

The engine decides the same with either codec (``tests/sim`` checks the traces match).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, cast

from swimpy.core.member import Member
from swimpy.wire.errors import WireError
from swimpy.wire.messages import Ack, Err, PacketMessage, Ping, PushNodeState, encode_message
from swimpy.wire.packet import (
    DecodedPacket,
    NonceSource,
    WireOptions,
    compound_size,
    decode_packet_untrusted,
    encode_packet,
    make_compound,
)
from swimpy.wire.sizes import message_size, push_node_state_size, push_pull_header_size
from swimpy.wire.stream import (
    NEED_DATA,
    NeedData,
    PushPull,
    StreamMessage,
    StreamReader,
    UserStream,
    encode_stream_message,
    frame_stream,
)

#: CRC header: type byte + CRC32 (net.go hasCrcMsg).
CRC_HEADER_SIZE = 5


class StreamInput(Protocol):
    """Incremental reader of one stream (h11's ``receive_data`` / ``next_event``)."""

    def receive_data(self, data: object) -> None: ...

    def next_event(self) -> StreamMessage | NeedData: ...


class Codec(Protocol):
    """What the engine needs from a codec. Every ``*_untrusted`` method raises only
    :class:`~swimpy.wire.errors.WireError` on bad input."""

    def encode_part(self, msg: PacketMessage) -> tuple[object, int]:
        """One message made ready for packing, and its encoded size (type byte included)."""
        ...

    def packet(
        self, parts: Sequence[object], sizes: Sequence[int], *, crc: bool, wire: WireOptions,
        nonce: NonceSource,
    ) -> tuple[object, int]:
        """A datagram of one part or a compound of several, and its size."""
        ...

    def packet_one(
        self, part: object, size: int, crc: bool, wire: WireOptions, nonce: NonceSource
    ) -> tuple[object, int]:
        """``packet([part], [size], ...)``: a datagram of one message (most pings and
        acks), without the lists."""
        ...

    def decode_packet_untrusted(self, data: object, wire: WireOptions) -> DecodedPacket: ...

    def received_size(self, data: object) -> int:
        """Bytes that ``data`` (a datagram or a piece of a stream) took on the network."""
        ...

    def stream(
        self, msg: StreamMessage, *, dialer: bool, wire: WireOptions, nonce: NonceSource
    ) -> tuple[object, int]:
        """A stream message framed for writing, and its size."""
        ...

    def push_pull(
        self, join: bool, members: Sequence[Member], user_state: bytes, *, dialer: bool,
        wire: WireOptions, nonce: NonceSource,
    ) -> tuple[object, int]:
        """Our push/pull (the member table and the delegate's state), framed."""
        ...

    def stream_reader(self, wire: WireOptions, *, expect_label: bool) -> StreamInput:
        """A reader for one connection: ``expect_label`` on connections peers dialed."""
        ...


class WireCodec:
    """memberlist's bytes. ``received_size`` is the datagram's length."""

    def encode_part(self, msg: PacketMessage) -> tuple[object, int]:
        raw = encode_message(msg)
        return raw, len(raw)

    def packet(
        self, parts: Sequence[object], sizes: Sequence[int], *, crc: bool, wire: WireOptions,
        nonce: NonceSource,
    ) -> tuple[object, int]:
        raws = cast(Sequence[bytes], parts)
        payload = raws[0] if len(raws) == 1 else make_compound(raws)
        data = encode_packet(payload, wire, crc=crc, nonce_source=nonce)
        return data, len(data)

    def packet_one(
        self, part: object, size: int, crc: bool, wire: WireOptions, nonce: NonceSource
    ) -> tuple[object, int]:
        data = encode_packet(cast(bytes, part), wire, crc=crc, nonce_source=nonce)
        return data, len(data)

    def decode_packet_untrusted(self, data: object, wire: WireOptions) -> DecodedPacket:
        if not isinstance(data, bytes | bytearray | memoryview):
            raise WireError(f"a packet must be bytes, not {type(data).__name__}", reason="type")
        return decode_packet_untrusted(bytes(data), wire)

    def received_size(self, data: object) -> int:
        return len(data) if isinstance(data, bytes | bytearray | memoryview) else 0

    def stream(
        self, msg: StreamMessage, *, dialer: bool, wire: WireOptions, nonce: NonceSource
    ) -> tuple[object, int]:
        data = frame_stream(encode_stream_message(msg), wire, nonce_source=nonce, dialer=dialer)
        return data, len(data)

    def push_pull(
        self, join: bool, members: Sequence[Member], user_state: bytes, *, dialer: bool,
        wire: WireOptions, nonce: NonceSource,
    ) -> tuple[object, int]:
        nodes = tuple(
            PushNodeState(m.name, m.ip_bytes, m.port, m.meta, m.incarnation, int(m.state), m.vsn)
            for m in members
        )
        return self.stream(PushPull(join, nodes, user_state), dialer=dialer, wire=wire,
                           nonce=nonce)

    def stream_reader(self, wire: WireOptions, *, expect_label: bool) -> StreamInput:
        return _WireReader(StreamReader(wire, expect_label=expect_label))


class _WireReader:
    __slots__ = ("_reader",)

    def __init__(self, reader: StreamReader) -> None:
        self._reader = reader

    def receive_data(self, data: object) -> None:
        if not isinstance(data, bytes | bytearray | memoryview):
            raise WireError(f"stream data must be bytes, not {type(data).__name__}",
                            reason="type")
        self._reader.receive_data(bytes(data))

    def next_event(self) -> StreamMessage | NeedData:
        return self._reader.next_event()


class ObjectCodec:
    """Message objects instead of bytes, with exact (uncompressed, unencrypted) sizes.

    A packet is the tuple of its messages; a stream is its message; a push/pull is a
    :class:`~swimpy.wire.stream.PushPull` whose ``nodes`` are the sender's own immutable
    :class:`Member` records (they have every attribute the engine reads from a
    ``PushNodeState``), so no entries are built or copied.

    One instance may serve many engines (the simulator shares one), but from one thread
    at a time: it reuses its decode result (see :meth:`decode_packet_untrusted`).
    """

    #: Push/pull entry sizes by record identity; records are shared between engines, so
    #: one cache serves a whole simulation. Cleared when it grows past this many entries.
    CACHE_MAX = 1 << 20

    def __init__(self) -> None:
        #: id(record) -> encoded pushNodeState size. ``_sized`` holds every record in the
        #: cache, so no id is reused while its entry exists.
        self._entry_size: dict[int, int] = {}
        self._sized: list[Member] = []
        self._decoded = DecodedPacket([], [], 0)

    def encode_part(self, msg: PacketMessage) -> tuple[object, int]:
        return msg, message_size(msg)

    def packet(
        self, parts: Sequence[object], sizes: Sequence[int], *, crc: bool, wire: WireOptions,
        nonce: NonceSource,
    ) -> tuple[object, int]:
        size = sizes[0] if len(sizes) == 1 else compound_size(sizes)
        if crc:
            size += CRC_HEADER_SIZE
        return tuple(parts), size

    def packet_one(
        self, part: object, size: int, crc: bool, wire: WireOptions, nonce: NonceSource
    ) -> tuple[object, int]:
        return (part,), size + CRC_HEADER_SIZE if crc else size

    def decode_packet_untrusted(self, data: object, wire: WireOptions) -> DecodedPacket:
        if type(data) is not tuple:
            raise WireError(f"an object packet is a tuple, not {type(data).__name__}",
                            reason="type")
        # The tuple itself serves as the message list (the engine only iterates it), in
        # one result object reused for every packet: an object packet has no errors and
        # no size to report, and the engine reads the result before it decodes the next
        # packet (this codec is shared by a whole simulation, which is single-threaded).
        decoded = self._decoded
        decoded.messages = data  # type: ignore[assignment]
        return decoded

    def received_size(self, data: object) -> int:
        return 0  # sizes are counted where the packet is sent

    def stream(
        self, msg: StreamMessage, *, dialer: bool, wire: WireOptions, nonce: NonceSource
    ) -> tuple[object, int]:
        return msg, len(encode_stream_message(msg))

    def push_pull(
        self, join: bool, members: Sequence[Member], user_state: bytes, *, dialer: bool,
        wire: WireOptions, nonce: NonceSource,
    ) -> tuple[object, int]:
        cache = self._entry_size
        if len(cache) > self.CACHE_MAX:
            cache.clear()
            self._sized.clear()
        # A push/pull carries the whole table (10,000 entries in a large simulation) and
        # happens often: look the sizes up in C (map over dict.get), size only misses.
        sizes = list(map(cache.get, map(id, members)))
        if None in sizes:
            for i, m in enumerate(members):
                if sizes[i] is None:
                    size = push_node_state_size(
                        len(m.name.encode("utf-8", "surrogateescape")), len(m.ip_bytes),
                        m.port, len(m.meta), m.incarnation, int(m.state), len(m.vsn),
                    )
                    cache[id(m)] = sizes[i] = size
                    self._sized.append(m)
        total = push_pull_header_size(len(members), len(user_state)) + len(user_state)
        total += sum(sizes)  # type: ignore[arg-type]
        nodes = cast(tuple[PushNodeState, ...], tuple(members))
        return PushPull(join, nodes, user_state), total

    def stream_reader(self, wire: WireOptions, *, expect_label: bool) -> StreamInput:
        return _ObjectReader()


class _ObjectReader:
    """A stream in the object codec arrives whole, as one message object."""

    __slots__ = ("_msg",)

    def __init__(self) -> None:
        self._msg: StreamMessage | None = None

    def receive_data(self, data: object) -> None:
        if not isinstance(data, PushPull | Ping | Ack | Err | UserStream):
            raise WireError(f"not a stream message: {type(data).__name__}", reason="type")
        self._msg = data

    def next_event(self) -> StreamMessage | NeedData:
        msg, self._msg = self._msg, None
        return NEED_DATA if msg is None else msg
