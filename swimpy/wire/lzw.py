"""LZW exactly as Go's ``compress/lzw`` with ``Order = LSB`` and ``litWidth = 8``.

memberlist wraps compressed payloads in a ``compress{Algo: 0, Buf: ...}`` message whose
``Buf`` is such a stream (``util.go compressPayload`` / ``decompressBuffer``, WIRE.md §8).
Default Serf/Consul nodes compress every TCP stream, so both directions must match Go
byte for byte.

Stream format (GIF-style variable-width LZW):

* codes are packed least-significant-bit first; widths run from 9 to 12 bits;
* code 256 is *clear* (reset the table, width back to 9), 257 is *end of stream*,
  258 is the first code assigned to a new table entry;
* the writer starts with a clear code, widens the code as soon as the next code to be
  assigned reaches ``1 << width``, and when that code reaches 4095 it emits a clear code
  and starts over with an empty table;
* closing writes the pending code, the end code, and pads the last byte with zeros.

The reader follows Go's ``Reader``: the end code is mandatory (a stream that just stops
is an error, like Go's ``io.ErrUnexpectedEOF``), a code beyond the next free one is an
error, and a full 12-bit table without a clear code keeps decoding with the table frozen.
Bytes after the end code are ignored.
"""

from __future__ import annotations

from swimpy.wire.constants import MAX_DECOMPRESSED_BYTES
from swimpy.wire.errors import WireError

__all__ = ["SMALL_INPUT", "compress", "decompress_untrusted", "min_codes", "pack9", "small_codes"]

_LIT_WIDTH = 8
_CLEAR = 1 << _LIT_WIDTH  # 256
_EOF = _CLEAR + 1  # 257
_MIN_WIDTH = _LIT_WIDTH + 1  # 9
_MAX_WIDTH = 12
#: Go's maxCode: the writer resets when its next code would reach this value.
_MAX_CODE = (1 << _MAX_WIDTH) - 1  # 4095
_TABLE_SIZE = 1 << _MAX_WIDTH  # 4096

_REASON = "decompress"

#: Longest input whose stream uses only 9-bit codes. Every code written after the clear
#: code, except the end code, is followed by one ``incHi``: at most ``len - 1`` in the
#: loop and one in ``Close()``, so the highest code in use is at most ``257 + len``;
#: Go widens to 10 bits when it reaches 512, so inputs up to 254 bytes never widen (and
#: never fill the table, which would need 4095).
SMALL_INPUT = 254

#: expansions of the literal codes, shared by every decoder call
_LITERALS: tuple[bytes, ...] = tuple(bytes((i,)) for i in range(_CLEAR))


def min_codes(data: bytes | bytearray) -> int:
    """A lower bound on the number of codes in ``compress(data)``'s stream, at C speed
    (for deciding that compressing cannot pay without running the coder).

    Every stream holds the first clear code, one code per phrase, and the end code. A
    phrase of length L >= 2 starting at position s is a table entry, and entries are only
    made from text already read: ``data[s:s+L]`` occurred earlier, wholly before s. So
    each of its L - 1 adjacent byte pairs repeats a pair that starts earlier in
    ``data``. Phrases do not overlap, so the bytes all phrases save (the sum of L - 1)
    are at most the positions whose pair repeats an earlier one, ``(n - 1) - D`` for D
    distinct pairs, and the phrases number at least ``n - ((n - 1) - D) = D + 1``.
    Table resets only add clear codes and remove entries, so the bound holds for any
    length.
    """
    n = len(data)
    if n < 2:
        return 2 + n
    view = memoryview(data)
    # the pairs at even offsets and at odd offsets, as 16-bit values (the byte order
    # does not matter: equal pairs give equal values either way)
    pairs = set(view[: n & ~1].cast("H"))
    pairs.update(view[1 : 1 + ((n - 1) & ~1)].cast("H"))
    return len(pairs) + 3


def small_codes(data: bytes | bytearray) -> list[int]:
    """The codes of ``compress(data)`` for ``0 < len(data) <= SMALL_INPUT``, clear and
    end codes included; all of them are 9 bits wide, so the stream is
    ``ceil(9 * len(codes) / 8)`` bytes long and :func:`pack9` writes it. The same
    coder as :func:`compress` without the width and reset bookkeeping, which cannot
    happen at this size (see ``SMALL_INPUT``)."""
    codes = [_CLEAR]
    append = codes.append
    table: dict[int, int] = {}
    get = table.get
    hi = _EOF
    code = data[0]
    for literal in memoryview(data)[1:]:
        key = (code << 8) | literal
        found = get(key)
        if found is None:
            append(code)
            hi += 1
            table[key] = hi
            code = literal
        else:
            code = found
    append(code)
    append(_EOF)
    return codes


def pack9(codes: list[int]) -> bytes:
    """9-bit codes packed least-significant-bit first, the last byte padded with zeros."""
    acc = 0
    for code in reversed(codes):
        acc = (acc << _MIN_WIDTH) | code
    return acc.to_bytes((_MIN_WIDTH * len(codes) + 7) // 8, "little")


def compress(data: bytes | bytearray | memoryview) -> bytes:
    """Compress ``data`` exactly like Go's ``lzw.NewWriter(w, lzw.LSB, 8)``, one
    ``Write(data)`` followed by ``Close()``.

    ``compress(b"")`` is ``b"\\x00\\x03\\x02"`` (clear code, end code).
    """
    out = bytearray()
    # Pending bits, LSB first. The stream always starts with a clear code at width 9.
    bits = _CLEAR
    nbits = _MIN_WIDTH
    width = _MIN_WIDTH
    hi = _EOF  # last code in use; the next entry gets hi + 1
    overflow = 1 << _MIN_WIDTH

    if data:
        view = data if isinstance(data, bytes) else bytes(data)
        table: dict[int, int] = {}
        code = view[0]
        for literal in view[1:]:
            key = (code << 8) | literal
            found = table.get(key)
            if found is not None:
                code = found
                continue
            # Emit the longest match found so far.
            bits |= code << nbits
            nbits += width
            if nbits >= 32:
                out += (bits & 0xFFFFFFFF).to_bytes(4, "little")
                bits >>= 32
                nbits -= 32
            code = literal
            # Go's incHi: the implied next code, widening and resetting as needed.
            hi += 1
            if hi == overflow:
                width += 1
                overflow <<= 1
            if hi == _MAX_CODE:
                bits |= _CLEAR << nbits
                nbits += width
                if nbits >= 32:
                    out += (bits & 0xFFFFFFFF).to_bytes(4, "little")
                    bits >>= 32
                    nbits -= 32
                width = _MIN_WIDTH
                hi = _EOF
                overflow = 1 << _MIN_WIDTH
                table.clear()
                continue
            table[key] = hi

        # Close(): the pending code, then incHi (which may itself emit a clear code).
        bits |= code << nbits
        nbits += width
        hi += 1
        if hi == overflow:
            width += 1
            overflow <<= 1
        if hi == _MAX_CODE:
            bits |= _CLEAR << nbits
            nbits += width
            width = _MIN_WIDTH

    # End-of-stream code, then the remaining bits padded to a whole byte.
    bits |= _EOF << nbits
    nbits += width
    out += bits.to_bytes((nbits + 7) // 8, "little")
    return bytes(out)


def decompress_untrusted(
    data: bytes | bytearray | memoryview,
    max_output: int = MAX_DECOMPRESSED_BYTES,
    *,
    allow_empty: bool = False,
) -> bytes:
    """Decompress a Go ``compress/lzw`` (LSB, litWidth 8) stream from a peer.

    Raises only :class:`WireError` (``reason="decompress"``) when the stream has an
    invalid code, ends without the end code, would expand beyond ``max_output`` bytes
    (checked before each code's output is appended, so memory stays bounded by the cap),
    or decodes to nothing (upstream memberlist rejects an empty decompressed payload;
    pass ``allow_empty=True`` to accept it). Bytes after the end code are ignored.
    """
    buf = bytes(data)
    n = len(buf)
    out = bytearray()
    # table[code] is the full expansion of code; entries >= 258 are (re)filled as
    # codes are assigned. Only codes <= hi are ever read, and all of 258..hi-1 belong
    # to the current table generation, so stale entries are never observed.
    table: list[bytes] = [*_LITERALS, b"", b""]
    table.extend(b"" for _ in range(_TABLE_SIZE - len(table)))

    pos = 0
    bits = 0
    nbits = 0
    width = _MIN_WIDTH
    mask = (1 << width) - 1
    hi = _EOF
    overflow = 1 << width
    last = -1  # previous code, -1 right after a clear (Go's decoderInvalidCode)
    out_len = 0

    while True:
        while nbits < width:
            if pos >= n:
                raise WireError("lzw: stream ends without an end code", reason=_REASON)
            bits |= buf[pos] << nbits
            pos += 1
            nbits += 8
        code = bits & mask
        bits >>= width
        nbits -= width

        if code < _CLEAR:
            entry = table[code]
            if last >= 0:
                table[hi] = table[last] + entry
        elif code == _CLEAR:
            width = _MIN_WIDTH
            mask = (1 << width) - 1
            hi = _EOF
            overflow = 1 << width
            last = -1
            continue
        elif code == _EOF:
            break
        elif code <= hi:
            if code == hi and last >= 0:
                # The code being defined right now: previous expansion plus its head.
                prev = table[last]
                entry = prev + prev[:1]
            else:
                entry = table[code]
            if last >= 0:
                table[hi] = table[last] + entry[:1]
        else:
            raise WireError(f"lzw: invalid code {code} (next free code {hi})", reason=_REASON)

        out_len += len(entry)
        if out_len > max_output:
            raise WireError(f"lzw: decompressed payload exceeds {max_output} bytes", reason=_REASON)
        out += entry

        last = code
        hi += 1
        if hi >= overflow:
            if width == _MAX_WIDTH:
                # Table full and no clear code yet: keep decoding with a frozen table.
                last = -1
                hi -= 1
            else:
                width += 1
                mask = (1 << width) - 1
                overflow <<= 1

    if not out and not allow_empty:
        raise WireError("lzw: decompressed payload is empty", reason=_REASON)
    return bytes(out)
