"""UDP packet layers: compound, CRC, compression, encryption and the upstream label.

Send order (memberlist ``rawSendMsgPacket``, WIRE.md §5.1): message or compound ->
LZW compression (only if smaller) -> CRC (peer PMax >= 5) -> AES-GCM -> label prefix.
Receive undoes it in reverse and then walks compound and compressed parts recursively
(``handleCommand``). A bad part of a compound is reported and skipped; the others are kept.
"""

from __future__ import annotations

import binascii
import functools
import struct
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from swimpy.wire import lzw
from swimpy.wire.constants import (
    COMPOUND_HEADER_OVERHEAD,
    COMPOUND_MAX_PARTS,
    LABEL_MAX_SIZE,
    LZW_ALGO,
    NONCE_SIZE,
    MessageType,
)
from swimpy.wire.crypto import (
    Keyring,
    decrypt_payload_untrusted,
    encrypt_overhead,
    encrypt_payload,
)
from swimpy.wire.errors import WireError
from swimpy.wire.messages import (
    Compress,
    PacketMessage,
    decode_body_untrusted,
    decode_message_untrusted,
    encode_message,
)

#: A source of nonce bytes: ``os.urandom`` in the runtime, a seeded generator in tests.
NonceSource = Callable[[int], bytes]

#: Most decompressed bytes one datagram may produce, all its compress parts together.
#: Honest packets are at most UDPBufferSize (1400) bytes before compression; 1 MiB bounds
#: the memory and time a 64 KiB bomb can claim.
MAX_PACKET_DECOMPRESSED = 1024 * 1024
#: Compound / compress nesting we follow (memberlist recurses without bound).
MAX_NESTING = 4
#: Most messages (decoded or failed) one datagram may yield; the rest is ignored.
MAX_MESSAGES_PER_PACKET = 1024

_LEN = struct.Struct(">H")
_CRC = struct.Struct(">I")


@dataclass(slots=True)
class WireOptions:
    """Framing and security settings shared by the packet and stream layers."""

    keyring: Keyring | None = None
    #: 0 when our protocol version (PCur) is 1, otherwise 1 (security.go encryptionVersion).
    encryption_version: int = 1
    verify_incoming: bool = True
    verify_outgoing: bool = True
    compression: bool = True
    #: upstream label (empty = none, as in v0.2.2)
    label: bytes = b""
    skip_inbound_label_check: bool = False

    @property
    def encrypts(self) -> bool:
        return self.keyring is not None and self.verify_outgoing

    def packet_overhead(self) -> int:
        """Bytes that encryption and the label add to every packet we send."""
        n = encrypt_overhead(self.encryption_version) if self.encrypts else 0
        if self.label:
            n += 2 + len(self.label)
        return n


@dataclass(slots=True)
class DecodedPacket:
    """Messages found in one datagram, plus the parts that failed to decode."""

    messages: list[PacketMessage] = field(default_factory=list)
    errors: list[WireError] = field(default_factory=list)
    #: compound parts cut off by a short packet (still counted, never processed)
    truncated_parts: int = 0
    #: bytes the datagram took on the network (0 where the codec does not count them)
    size: int = 0


# ------------------------------------------------------------------------------ compound


def make_compound(parts: Sequence[bytes]) -> bytes:
    """``0x07 | N | len16 * N | parts`` (util.go makeCompoundMessage).

    At most :data:`COMPOUND_MAX_PARTS` parts, so v0.2.2 peers (whose decoder overflows at
    128) read it; callers split larger sets.
    """
    if not 0 < len(parts) <= COMPOUND_MAX_PARTS:
        raise ValueError(f"a compound holds 1..{COMPOUND_MAX_PARTS} parts, got {len(parts)}")
    out = bytearray((MessageType.COMPOUND, len(parts)))
    for p in parts:
        if len(p) > 0xFFFF:
            raise ValueError(f"a compound part is at most 65535 bytes, got {len(p)}")
        out += _LEN.pack(len(p))
    for p in parts:
        out += p
    return bytes(out)


def compound_size(part_lengths: Sequence[int]) -> int:
    return COMPOUND_HEADER_OVERHEAD + sum(n + 2 for n in part_lengths)


def split_compound_untrusted(buf: bytes) -> tuple[list[bytes], int]:
    """Parts of a compound (``buf`` starts with 0x07) and the number of truncated parts.

    Like upstream's fixed decoder, the part count is read as an unsigned byte and lengths
    as big-endian uint16; parts that do not fit the buffer are dropped ("truncated").
    """
    if len(buf) < 2:
        raise WireError("compound: missing part count", reason="truncated")
    n = buf[1]
    if n == 0:
        raise WireError("compound: zero parts", reason="malformed")
    hdr_end = 2 + 2 * n
    if len(buf) < hdr_end:
        raise WireError(
            f"compound: {n} parts declared but only {len(buf)} bytes", reason="truncated"
        )
    parts: list[bytes] = []
    off = hdr_end
    for i in range(n):
        (length,) = _LEN.unpack_from(buf, 2 + 2 * i)
        if off + length > len(buf):
            return parts, n - i
        parts.append(bytes(buf[off : off + length]))
        off += length
    return parts, 0


# ----------------------------------------------------------------------------------- CRC


def add_crc(msg: bytes) -> bytes:
    """``0x0c | crc32-IEEE(msg) BE | msg``."""
    return bytes((MessageType.HAS_CRC,)) + _CRC.pack(binascii.crc32(msg) & 0xFFFFFFFF) + msg


def strip_crc_untrusted(buf: bytes) -> bytes:
    if len(buf) < 5:
        raise WireError("crc: packet shorter than the 5-byte CRC header", reason="truncated")
    (want,) = _CRC.unpack_from(buf, 1)
    body = buf[5:]
    got = binascii.crc32(body) & 0xFFFFFFFF
    if got != want:
        raise WireError(f"crc: checksum mismatch ({got:08x} != {want:08x})", reason="bad_crc")
    return bytes(body)


# --------------------------------------------------------------------------- compression


def compress_payload(msg: bytes) -> bytes:
    """``0x09 | msgpack compress{Algo: 0, Buf: lzw(msg)}`` (util.go compressPayload)."""
    return encode_message(Compress(LZW_ALGO, lzw.compress(msg)))


@functools.cache
def compressed_frame_len(lzw_len: int) -> int:
    """Bytes of :func:`compress_payload`'s output around an LZW stream of ``lzw_len``
    bytes (the msgpack header of ``Buf`` grows with it, so this never decreases)."""
    return len(encode_message(Compress(LZW_ALGO, bytes(lzw_len))))


def compress_if_smaller(msg: bytes) -> bytes | None:
    """``compress_payload(msg)`` when it is shorter than ``msg``, else None: what
    memberlist's ``rawSendMsgPacket`` keeps with compression on (it compresses every
    packet and sends the compressed form only if ``buf.Len() < len(msg)``).

    Most packets are pings and acks of a few dozen bytes that LZW cannot shrink, and
    compressing them was a third of the engine's time per ping in the runtime. The
    answer is the same, found cheaper:

    * a lower bound first (:func:`lzw.min_codes`, at C speed): each code is at least 9
      bits, so if even that many codes, framed, are not shorter than ``msg``, the
      compressed form cannot be (an ack of 20 bytes needs 38).
    * up to ``lzw.SMALL_INPUT`` bytes every code is exactly 9 bits, so the exact length
      is known from the code count before anything is packed or framed, and the bytes
      are built only when they will be sent.
    * longer messages (gossip compounds) take the general path and compare.

    tests/wire/test_lzw.py and test_packet.py check the bound and this function against
    ``compress_payload`` on generated inputs and the golden vectors.
    """
    n = len(msg)
    if compressed_frame_len((9 * lzw.min_codes(msg) + 7) // 8) >= n:
        return None
    if n <= lzw.SMALL_INPUT:
        codes = lzw.small_codes(msg)
        if compressed_frame_len((9 * len(codes) + 7) // 8) >= n:
            return None
        return encode_message(Compress(LZW_ALGO, lzw.pack9(codes)))
    c = compress_payload(msg)
    return c if len(c) < n else None


def decompress_payload_untrusted(buf: bytes, max_output: int) -> bytes:
    """Inverse of :func:`compress_payload`; ``buf`` starts with the 0x09 type byte."""
    c = decode_body_untrusted(Compress, buf[1:])
    assert isinstance(c, Compress)
    return decompress_body_untrusted(c, max_output)


def decompress_body_untrusted(c: Compress, max_output: int) -> bytes:
    if c.algo != LZW_ALGO:
        raise WireError(f"compress: unknown algorithm {c.algo}", reason="malformed")
    return lzw.decompress_untrusted(c.buf, max_output=max_output)


# --------------------------------------------------------------------------------- label


def add_label_header(buf: bytes, label: bytes) -> bytes:
    """``0xf4 | len | label | buf`` (upstream label.go); no-op for an empty label."""
    if not label:
        return buf
    if len(label) > LABEL_MAX_SIZE:
        raise ValueError(f"label is at most {LABEL_MAX_SIZE} bytes, got {len(label)}")
    return bytes((MessageType.HAS_LABEL, len(label))) + label + buf


def remove_label_header_untrusted(buf: bytes) -> tuple[bytes, bytes]:
    """``(label, rest)``; an unlabelled buffer gives ``(b"", buf)``."""
    if not buf or buf[0] != MessageType.HAS_LABEL:
        return b"", buf
    if len(buf) < 2:
        raise WireError("label: missing label length", reason="bad_label")
    n = buf[1]
    if n == 0:
        raise WireError("label: zero-length label header", reason="bad_label")
    if len(buf) < 2 + n:
        raise WireError("label: truncated label", reason="bad_label")
    return bytes(buf[2 : 2 + n]), bytes(buf[2 + n :])


def check_label_untrusted(got: bytes, opts: WireOptions) -> None:
    if got == opts.label:
        return
    if not got and opts.skip_inbound_label_check:
        return
    raise WireError(
        f"discarding packet with unacceptable label {got!r} (want {opts.label!r})",
        reason="bad_label",
    )


# ------------------------------------------------------------------------------ packets


def encode_packet(
    msg: bytes,
    opts: WireOptions,
    *,
    crc: bool,
    nonce_source: NonceSource | None = None,
) -> bytes:
    """Wrap one message or compound for UDP, exactly as ``rawSendMsgPacket`` does."""
    if opts.compression:
        c = compress_if_smaller(msg)
        if c is not None:
            msg = c
    if crc:
        msg = add_crc(msg)
    if opts.encrypts:
        assert opts.keyring is not None
        if nonce_source is None:
            raise ValueError("encryption needs a nonce source (os.urandom in production)")
        msg = encrypt_payload(
            opts.encryption_version,
            opts.keyring.primary_key,
            msg,
            opts.label,
            nonce_source(NONCE_SIZE),
        )
    return add_label_header(msg, opts.label)


def decode_packet_untrusted(data: bytes, opts: WireOptions) -> DecodedPacket:
    """Undo every layer of one datagram and decode the messages in it.

    Raises WireError when the whole packet is unusable (label, decryption, CRC); errors in
    single compound parts are collected in ``errors`` and the other parts still returned.
    """
    if not data:
        raise WireError("empty packet", reason="empty")
    label, buf = remove_label_header_untrusted(data)
    check_label_untrusted(label, opts)
    if opts.keyring is not None:
        try:
            buf = decrypt_payload_untrusted(opts.keyring.keys, buf, opts.label)
        except WireError:
            if opts.verify_incoming:
                raise
            # migration mode (GossipVerifyIncoming=false): process as plaintext
    if len(buf) >= 5 and buf[0] == MessageType.HAS_CRC:
        buf = strip_crc_untrusted(buf)
    walk = _Walk()
    walk.run(buf, 0)
    walk.out.size = len(data)
    return walk.out


class _Walk:
    """One datagram's compound/compress tree, walked with per-packet budgets.

    The budgets are for the whole datagram, not per part: a few kilobytes of nested
    compounds and LZW could otherwise unfold into hundreds of thousands of parts or
    many megabytes of decompression from one packet.
    """

    __slots__ = ("decompress_budget", "out", "stopped")

    def __init__(self) -> None:
        self.out = DecodedPacket()
        #: decompressed bytes this packet may still produce (all compress parts together)
        self.decompress_budget = MAX_PACKET_DECOMPRESSED
        self.stopped = False

    def run(self, buf: bytes, depth: int) -> None:
        out = self.out
        if self.stopped:
            return
        if len(out.messages) + len(out.errors) >= MAX_MESSAGES_PER_PACKET:
            out.errors.append(
                WireError(
                    f"more than {MAX_MESSAGES_PER_PACKET} messages in one packet; "
                    "the rest is ignored",
                    reason="oversized",
                )
            )
            self.stopped = True
            return
        if not buf:
            out.errors.append(WireError("empty message", reason="empty"))
            return
        t = buf[0]
        if t == MessageType.COMPOUND or t == MessageType.COMPRESS:
            if depth >= MAX_NESTING:
                out.errors.append(WireError("packet nests too deeply", reason="malformed"))
                return
            try:
                if t == MessageType.COMPOUND:
                    parts, truncated = split_compound_untrusted(buf)
                    out.truncated_parts += truncated
                else:
                    plain = decompress_payload_untrusted(buf, self.decompress_budget)
                    self.decompress_budget -= len(plain)
                    parts = [plain]
            except WireError as exc:
                out.errors.append(exc)
                return
            for p in parts:
                self.run(p, depth + 1)
            return
        try:
            out.messages.append(decode_message_untrusted(buf))
        except WireError as exc:
            out.errors.append(exc)
