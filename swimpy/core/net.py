"""Packets and streams in and out, through the codec seam; the keyring and the
encryption switches (memberlist's ``WireOptions`` live here and may change at run time).

Nothing above this file sees bytes. Packets in are decoded to messages; streams in are
read incrementally, one reader per connection, and handed up once complete.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum

from swimpy.core.actions import CloseOutbound, CloseStream, OpenStream, ReplyStream, SendPacket
from swimpy.core.addresses import AddressFilter
from swimpy.core.codec import Codec, StreamInput
from swimpy.core.inputs import (
    ConnectionClosed,
    ConnId,
    StreamFailed,
    StreamId,
    StreamReceived,
    StreamResponse,
    StreamSent,
)
from swimpy.core.member import Address, Member
from swimpy.core.outbox import Outbox
from swimpy.profiles import Config
from swimpy.wire.crypto import Keyring
from swimpy.wire.errors import WireError
from swimpy.wire.messages import Err, PacketMessage
from swimpy.wire.packet import NonceSource, WireOptions
from swimpy.wire.stream import NEED_DATA, StreamMessage

log = logging.getLogger("swimpy.core")

#: Most inbound connections with a request still being read; more are closed at once
#: (memberlist bounds concurrent push/pulls with maxPushPullRequests = 128 too).
MAX_OPEN_INBOUND = 256
#: Most outbound streams waiting for their reply or send report.
MAX_OPEN_STREAMS = 4096


class Purpose(Enum):
    """What a stream we opened is for."""

    PUSH_PULL = "push_pull"
    JOIN = "join"
    FALLBACK = "fallback"
    USER = "user"


@dataclass(slots=True)
class _Outbound:
    purpose: Purpose
    #: the request id (join, user message) or probe sequence number (fallback)
    ref: int
    reader: StreamInput | None


@dataclass(slots=True)
class Completed:
    """A stream we opened finished: its reply, or why it failed (``error``)."""

    purpose: Purpose
    ref: int
    stream_id: StreamId
    message: StreamMessage | None
    error: str | None


class Net:
    def __init__(
        self, config: Config, outbox: Outbox, codec: Codec, nonce: NonceSource,
        addresses: AddressFilter,
    ) -> None:
        self._out = outbox
        self.codec = codec
        self._nonce = nonce
        self._addresses = addresses
        #: cidrs_allowed is set (without it every source is allowed: skip the call)
        self._filtering = bool(config.cidrs_allowed)
        keyring = Keyring(list(config.secret_keys)) if config.secret_keys else None
        self.wire = WireOptions(
            keyring=keyring,
            encryption_version=0 if config.protocol_version == 1 else 1,
            verify_incoming=config.gossip_verify_incoming,
            verify_outgoing=config.gossip_verify_outgoing,
            compression=config.enable_compression,
            label=config.label.encode(),
            skip_inbound_label_check=config.skip_inbound_label_check,
        )
        self._stream_seq = 0
        self._outbound: dict[StreamId, _Outbound] = {}
        self._inbound: dict[ConnId, StreamInput] = {}

    # ------------------------------------------------------------------ keys

    def install_key(self, key: bytes) -> None:
        if self.wire.keyring is None:
            self.wire.keyring = Keyring([key])
        else:
            self.wire.keyring.add_key(key)

    def use_key(self, key: bytes) -> None:
        if self.wire.keyring is None:
            raise ValueError("no keyring: install a key first")
        self.wire.keyring.use_key(key)

    def remove_key(self, key: bytes) -> None:
        if self.wire.keyring is None:
            raise ValueError("no keyring: install a key first")
        self.wire.keyring.remove_key(key)

    def set_verify(self, incoming: bool, outgoing: bool) -> None:
        self.wire.verify_incoming = incoming
        self.wire.verify_outgoing = outgoing

    def installed_keys(self) -> tuple[bytes, ...]:
        return () if self.wire.keyring is None else self.wire.keyring.keys

    # ------------------------------------------------------------------ packets

    def send(self, dest: Address, parts: list[object], sizes: list[int], crc: bool) -> None:
        data, size = self.codec.packet(parts, sizes, crc=crc, wire=self.wire, nonce=self._nonce)
        stats = self._out.stats
        stats["packets_sent"] += 1
        stats["bytes_sent"] += size
        self._out.actions.append(SendPacket(dest, data, size))

    def send_part(self, dest: Address, part: object, size: int) -> None:
        """``send(dest, [part], [size], crc=False)``: one encoded message, no CRC (most
        pings and acks go out alone)."""
        data, size = self.codec.packet_one(part, size, False, self.wire, self._nonce)
        stats = self._out.stats
        stats["packets_sent"] += 1
        stats["bytes_sent"] += size
        self._out.actions.append(SendPacket(dest, data, size))

    def send_one(self, dest: Address, msg: PacketMessage, crc: bool) -> None:
        part, size = self.codec.encode_part(msg)
        self.send(dest, [part], [size], crc)

    def packet_in(self, source: Address, data: object) -> Sequence[PacketMessage] | None:
        """The messages of datagram ``data`` from ``source``, or None if it was dropped."""
        stats = self._out.stats
        stats["packets_received"] += 1
        if self._filtering and not self._addresses.allows(source[0]):
            self._out.drop("cidr", f"packet from {source[0]} outside cidrs_allowed")
            return None
        codec = self.codec
        try:
            decoded = codec.decode_packet_untrusted(data, self.wire)
        except WireError as exc:
            stats["bytes_received"] += codec.received_size(data)
            self._out.drop(exc.reason, f"packet from {source}: {exc}")
            self._out.warn("packet", "%s: dropped packet from %s: %s", self._out.name,
                           source, exc)
            return None
        if decoded.size:
            stats["bytes_received"] += decoded.size
        if decoded.errors:
            for err in decoded.errors:
                self._out.drop(err.reason, f"part of a packet from {source}: {err}")
        if decoded.truncated_parts:
            stats["dropped_truncated_parts"] += decoded.truncated_parts
        return decoded.messages

    # ------------------------------------------------------------------ streams out

    def open_stream(
        self, purpose: Purpose, ref: int, dest: Address, data: object, size: int,
        timeout: float, expect_reply: bool,
    ) -> StreamId | None:
        if len(self._outbound) >= MAX_OPEN_STREAMS:
            self._out.drop("overload", f"too many open streams for a {purpose.value} stream")
            return None
        self._stream_seq += 1
        sid = StreamId(self._stream_seq)
        reader = self.codec.stream_reader(self.wire, expect_label=False) if expect_reply else None
        self._outbound[sid] = _Outbound(purpose, ref, reader)
        self._out.stats["streams_opened"] += 1
        self._out.stats["bytes_sent"] += size
        self._out.actions.append(OpenStream(sid, dest, data, size, timeout, expect_reply))
        return sid

    def stream(self, msg: StreamMessage, *, dialer: bool) -> tuple[object, int]:
        return self.codec.stream(msg, dialer=dialer, wire=self.wire, nonce=self._nonce)

    def push_pull(self, join: bool, members: list[Member], user: bytes,
                  *, dialer: bool) -> tuple[object, int]:
        return self.codec.push_pull(join, members, user, dialer=dialer, wire=self.wire,
                                    nonce=self._nonce)

    def reply_in(self, r: StreamResponse) -> Completed | None:
        """Bytes of a reply: the completed stream once the reply is whole."""
        entry = self._outbound.get(r.stream_id)
        if entry is None or entry.reader is None:
            self._out.ignore("stream_data_after_close")
            return None
        size = self.codec.received_size(r.data)
        if size:
            self._out.stats["bytes_received"] += size
        try:
            entry.reader.receive_data(r.data)
            msg = entry.reader.next_event()
        except WireError as exc:
            self._out.drop(exc.reason, f"stream reply: {exc}")
            return self._finish(r.stream_id, entry, None, str(exc))
        if msg is NEED_DATA:
            return None
        if isinstance(msg, Err):
            return self._finish(r.stream_id, entry, None, f"remote error: {msg.error}")
        return self._finish(r.stream_id, entry, msg, None)

    def sent(self, s: StreamSent) -> Completed | None:
        entry = self._outbound.pop(s.stream_id, None)
        if entry is None:
            return None
        return Completed(entry.purpose, entry.ref, s.stream_id, None, None)

    def failed(self, f: StreamFailed) -> Completed | None:
        entry = self._outbound.pop(f.stream_id, None)
        if entry is None:
            return None
        self.stream_error(entry.purpose, f.reason)
        return Completed(entry.purpose, entry.ref, f.stream_id, None, f.reason)

    def stream_error(self, purpose: Purpose, reason: str) -> None:
        """Count and log a stream of ours that failed (``stream_errors_<purpose>``)."""
        self._out.stats[f"stream_errors_{purpose.value}"] += 1
        log.debug("%s: %s stream failed: %s", self._out.name, purpose.value, reason)

    def _finish(self, sid: StreamId, entry: _Outbound, msg: StreamMessage | None,
                error: str | None) -> Completed:
        del self._outbound[sid]
        self._out.actions.append(CloseOutbound(sid))
        if error is not None:
            self.stream_error(entry.purpose, error)
        return Completed(entry.purpose, entry.ref, sid, msg, error)

    # ------------------------------------------------------------------ streams in

    def inbound(self, s: StreamReceived) -> StreamMessage | None:
        """Bytes of an inbound connection: its request once whole (None before, or when
        the connection was refused or answered with an error)."""
        stats = self._out.stats
        reader = self._inbound.get(s.conn_id)
        if reader is None:
            stats["streams_received"] += 1
            if not self._addresses.allows(s.source[0]):
                self._out.drop("cidr", f"stream from {s.source[0]} outside cidrs_allowed")
                self._out.actions.append(CloseStream(s.conn_id))
                return None
            if len(self._inbound) >= MAX_OPEN_INBOUND:
                self._out.drop("overload", "too many inbound streams being read")
                self._out.actions.append(CloseStream(s.conn_id))
                return None
            reader = self.codec.stream_reader(self.wire, expect_label=True)
            self._inbound[s.conn_id] = reader
        size = self.codec.received_size(s.data)
        if size:
            stats["bytes_received"] += size
        try:
            reader.receive_data(s.data)
            msg = reader.next_event()
        except WireError as exc:
            del self._inbound[s.conn_id]
            self._out.drop(exc.reason, f"stream from {s.source}: {exc}")
            self._out.warn("stream", "%s: failed to receive stream from %s: %s",
                           self._out.name, s.source, exc)
            self.reply(s.conn_id, Err(str(exc)))
            return None
        if msg is NEED_DATA:
            return None
        del self._inbound[s.conn_id]
        return msg

    def inbound_closed(self, c: ConnectionClosed) -> None:
        if self._inbound.pop(c.conn_id, None) is not None:
            self._out.drop("stream_incomplete", f"inbound stream closed early: {c.reason}")

    def reply(self, conn: ConnId, msg: StreamMessage) -> None:
        self._reply(conn, *self.stream(msg, dialer=False))

    def reply_push_pull(self, conn: ConnId, join: bool, members: list[Member],
                        user: bytes) -> None:
        self._reply(conn, *self.push_pull(join, members, user, dialer=False), push_pull=True)

    def _reply(self, conn: ConnId, data: object, size: int, push_pull: bool = False) -> None:
        self._out.stats["bytes_sent"] += size
        self._out.actions.append(ReplyStream(conn, data, size, push_pull))

    def close(self, conn: ConnId) -> None:
        self._out.actions.append(CloseStream(conn))
