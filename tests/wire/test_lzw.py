"""Go ``compress/lzw`` (LSB, litWidth 8) compatibility of swimpy.wire.lzw."""

from __future__ import annotations

import re
import tracemalloc
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from swimpy.wire.errors import WireError
from swimpy.wire.lzw import (
    SMALL_INPUT,
    compress,
    decompress_untrusted,
    min_codes,
    pack9,
    small_codes,
)

_HERE = Path(__file__).resolve()
_SHARED_VECTORS = _HERE.parents[2].parent / "shared" / "vectors"
_LOCAL_VECTORS = _HERE.parent / "vectors"


def _vector_file(name: str) -> Path:
    """The shared vector file when the shared/ tree is present, else the local copy."""
    shared = _SHARED_VECTORS / name
    return shared if shared.is_file() else _LOCAL_VECTORS / name


def _lzw_vectors() -> dict[str, bytes]:
    vectors: dict[str, bytes] = {}
    for line in _vector_file("lzw.txt").read_text().splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[0] == "LZW":
            vectors[parts[1]] = bytes.fromhex(parts[2])
    return vectors


def _memberlist_vectors() -> dict[str, bytes]:
    pattern = re.compile(r"^VECTOR\s+(.*?)\s+len=(\d+)\s+([0-9a-f]*)\s*$")
    vectors: dict[str, bytes] = {}
    for line in _vector_file("memberlist-0.2.2.txt").read_text().splitlines():
        m = pattern.match(line)
        if m:
            raw = bytes.fromhex(m.group(3))
            assert len(raw) == int(m.group(2)), m.group(1)
            vectors[m.group(1)] = raw
    return vectors


def _lcg_bytes(count: int = 20000) -> bytes:
    """WIRE.md §8: uint32 LCG from 12345, advanced before each byte, byte = (x>>16) % 7."""
    x = 12345
    out = bytearray()
    for _ in range(count):
        x = (x * 1103515245 + 12345) & 0xFFFFFFFF
        out.append((x >> 16) % 7)
    return bytes(out)


_LZW_INPUTS: dict[str, bytes] = {
    "empty": b"",
    "tobe": b"TOBEORNOTTOBEORTOBEORNOT",
    "lcg20000-full": _lcg_bytes(),
}


def _compress_buf(wrapper: bytes) -> bytes:
    """The LZW ``Buf`` of a memberlist ``0x09`` compress message."""
    import msgpack

    assert wrapper[0] == 9
    body = msgpack.unpackb(wrapper[1:], raw=True)
    assert body[b"Algo"] == 0
    buf: bytes = body[b"Buf"]
    return buf


def _pack_codes(codes: list[int]) -> bytes:
    """Pack LZW codes LSB-first, tracking the code width the way a Go reader does."""
    acc = 0
    nbits = 0
    width, hi, overflow = 9, 257, 512
    for code in codes:
        acc |= code << nbits
        nbits += width
        if code == 256:
            width, hi, overflow = 9, 257, 512
            continue
        if code == 257:
            continue
        hi += 1
        if hi >= overflow:
            if width == 12:
                hi -= 1
            else:
                width += 1
                overflow <<= 1
    return acc.to_bytes((nbits + 7) // 8, "little")


def _zero_bomb(repeats: int, *, with_eof: bool = True) -> bytes:
    """A stream of zeros that fills the table (code k expands to k-256 zeros), then
    repeats the longest code (3839 zeros per 12-bit code) with the table full."""
    codes = [256, 0, *range(258, 4096), *([4095] * repeats)]
    if with_eof:
        codes.append(257)
    return _pack_codes(codes)


# --- golden vectors ----------------------------------------------------------------


def test_vector_files_copied_into_tests_match_shared() -> None:
    for name in ("lzw.txt", "memberlist-0.2.2.txt"):
        shared = _SHARED_VECTORS / name
        if not shared.is_file():
            pytest.skip("shared/vectors not present")
        assert (_LOCAL_VECTORS / name).read_bytes() == shared.read_bytes()


def test_lcg_vector_prefix_and_length_match_full_vector() -> None:
    text = _vector_file("lzw.txt").read_text()
    m = re.search(r"LZW lcg20000 len=(\d+) sha-less-prefix=([0-9a-f]+)", text)
    assert m is not None
    full = _lzw_vectors()["lcg20000-full"]
    assert len(full) == int(m.group(1))
    assert full.hex().startswith(m.group(2))


@pytest.mark.parametrize("name", sorted(_LZW_INPUTS))
def test_compress_reproduces_go_vector_byte_for_byte(name: str) -> None:
    assert compress(_LZW_INPUTS[name]) == _lzw_vectors()[name]


@pytest.mark.parametrize("name", sorted(_LZW_INPUTS))
def test_decompress_recovers_go_vector_input(name: str) -> None:
    data = _LZW_INPUTS[name]
    assert decompress_untrusted(_lzw_vectors()[name], allow_empty=True) == data


def test_lcg_input_forces_twelve_bit_codes_and_a_table_reset() -> None:
    # ~5700 codes: more than the 4096 - 258 a single table holds, so a reset happens.
    assert len(_lzw_vectors()["lcg20000-full"]) * 8 // 12 > 4096


def test_empty_decompressed_stream_is_rejected_unless_allowed() -> None:
    with pytest.raises(WireError) as exc:
        decompress_untrusted(bytes.fromhex("000302"))
    assert exc.value.reason == "decompress"
    assert decompress_untrusted(bytes.fromhex("000302"), allow_empty=True) == b""


def test_memberlist_compress_message_vector_reproduced() -> None:
    vectors = _memberlist_vectors()
    wrapper = vectors["compress(alive(serf meta))"]
    plain = vectors["..decompressed"]
    assert plain == vectors["alive(serf meta, vsn 1,5,2,2,5,4)"]
    buf = _compress_buf(wrapper)
    assert compress(plain) == buf
    assert decompress_untrusted(buf) == plain


def test_memberlist_compressed_push_pull_stream_vector_reproduced() -> None:
    vectors = _memberlist_vectors()
    buf = _compress_buf(vectors["TCP pushPull stream join=false, compressed"])
    plain = vectors["TCP pushPull stream join=false (2 nodes + 4B user state)"]
    assert decompress_untrusted(buf) == plain
    assert compress(plain) == buf


# --- reader behaviour ----------------------------------------------------------------


def test_missing_end_code_is_an_error() -> None:
    stream = compress(b"hello world, hello world")
    # Drop the final byte(s) holding the end code.
    with pytest.raises(WireError) as exc:
        decompress_untrusted(stream[:-2])
    assert exc.value.reason == "decompress"
    with pytest.raises(WireError):
        decompress_untrusted(b"")


def test_code_beyond_next_free_code_is_invalid() -> None:
    # clear, literal 'a' (hi becomes 258), then 300 > 258.
    with pytest.raises(WireError, match="invalid code"):
        decompress_untrusted(_pack_codes([256, 97, 300, 257]))


def test_first_code_after_clear_must_not_be_a_table_code() -> None:
    with pytest.raises(WireError, match="invalid code"):
        decompress_untrusted(_pack_codes([256, 258, 257]))


def test_stream_without_leading_clear_code_is_accepted() -> None:
    assert decompress_untrusted(_pack_codes([104, 105, 257])) == b"hi"


def test_bytes_after_end_code_are_ignored() -> None:
    stream = compress(b"payload")
    assert decompress_untrusted(stream + b"\xff\x00garbage") == b"payload"


def test_full_table_without_clear_keeps_decoding_with_frozen_table() -> None:
    out = decompress_untrusted(_zero_bomb(3))
    table_fill = sum(range(1, 3840))  # code k (258..4095) expands to k-256 zeros, plus 1
    assert out == bytes(table_fill + 3 * 3839)


def test_output_limit_is_inclusive() -> None:
    data = b"abcabcabcabc" * 10
    stream = compress(data)
    assert decompress_untrusted(stream, max_output=len(data)) == data
    with pytest.raises(WireError, match="exceeds"):
        decompress_untrusted(stream, max_output=len(data) - 1)


def test_decompression_bomb_is_refused_without_allocating_the_output() -> None:
    # 13_100 repeats of a 3839-byte code: ~50 MB of output from ~20 KB of input.
    bomb = _zero_bomb(13_100)
    assert len(bomb) < 30_000
    limit = 64 * 1024
    tracemalloc.start()
    try:
        with pytest.raises(WireError, match="exceeds") as exc:
            decompress_untrusted(bomb, max_output=limit)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert exc.value.reason == "decompress"
    assert peak < 1024 * 1024


def test_repetitive_input_from_our_own_compressor_is_capped() -> None:
    stream = compress(b"a" * 200_000)
    assert len(stream) < 2_000
    with pytest.raises(WireError, match="exceeds"):
        decompress_untrusted(stream, max_output=10_000)


def test_compress_accepts_bytearray_and_memoryview() -> None:
    data = b"TOBEORNOTTOBEORTOBEORNOT"
    expected = compress(data)
    assert compress(bytearray(data)) == expected
    assert compress(memoryview(data)) == expected
    assert decompress_untrusted(memoryview(expected)) == data


# --- properties ------------------------------------------------------------------------

_PAYLOADS = st.one_of(
    st.binary(max_size=5000),
    # low-entropy inputs compress well and exercise long codes and table resets
    st.binary(max_size=5000).map(lambda b: bytes(x % 3 for x in b)),
    st.integers(min_value=0, max_value=5000).map(lambda n: b"\x00" * n),
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_PAYLOADS)
def test_round_trip_of_arbitrary_bytes(data: bytes) -> None:
    assert decompress_untrusted(compress(data), allow_empty=True) == data


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.binary(min_size=1, max_size=600), draw=st.data())
def test_mutated_streams_raise_only_wire_error(data: bytes, draw: st.DataObject) -> None:
    stream = bytearray(compress(data))
    kind = draw.draw(st.sampled_from(["flip", "truncate", "extend", "splice"]))
    if kind == "flip":
        i = draw.draw(st.integers(0, len(stream) - 1))
        stream[i] ^= draw.draw(st.integers(1, 255))
    elif kind == "truncate":
        del stream[draw.draw(st.integers(0, len(stream) - 1)) :]
    elif kind == "extend":
        stream += draw.draw(st.binary(min_size=1, max_size=64))
    else:
        i = draw.draw(st.integers(0, len(stream)))
        j = draw.draw(st.integers(i, len(stream)))
        stream[i:j] = draw.draw(st.binary(max_size=64))
    try:
        out = decompress_untrusted(bytes(stream), max_output=100_000)
    except WireError as exc:
        assert exc.reason == "decompress"
    else:
        assert len(out) <= 100_000


@settings(max_examples=100, deadline=None)
@given(st.binary(max_size=2000))
def test_random_bytes_raise_only_wire_error(junk: bytes) -> None:
    try:
        decompress_untrusted(junk, max_output=50_000)
    except WireError as exc:
        assert exc.reason == "decompress"


# --- the small-input coder and the code-count bound (compress_if_smaller) ------------

# Inputs that exercise the phrase structure: few symbols (long phrases, many table
# hits), all distinct pairs (no hits), and anything.
_SMALL = st.one_of(
    st.binary(min_size=1, max_size=SMALL_INPUT),
    st.lists(st.integers(0, 3), min_size=1, max_size=SMALL_INPUT).map(bytes),
    st.lists(st.sampled_from(b"SourceNodeAddrPort\x00\xa4"), min_size=1,
             max_size=SMALL_INPUT).map(bytes),
)


def _all_distinct_pairs(n: int) -> bytes:
    """``n`` bytes in which no adjacent pair repeats (a path through distinct pairs), so
    LZW finds no table entry and writes one code per byte."""
    out = bytearray()
    seen: set[tuple[int, int]] = set()
    b = 0
    while len(out) < n:
        out.append(b)
        nxt = next(c for c in range(256) if (b, c) not in seen)
        seen.add((b, nxt))
        b = nxt
    return bytes(out)


def _codes_in_stream(stream: bytes) -> int:
    """How many codes a 9-bit-only stream holds: decode it code by code to the end."""
    value = int.from_bytes(stream, "little")
    count = 0
    while True:
        code = (value >> (9 * count)) & 0x1FF
        count += 1
        if code == 257:
            return count


@settings(max_examples=300, deadline=None)
@given(_SMALL)
def test_small_coder_matches_compress_byte_for_byte(data: bytes) -> None:
    codes = small_codes(data)
    assert pack9(codes) == compress(data)
    assert len(compress(data)) == (9 * len(codes) + 7) // 8


@settings(max_examples=300, deadline=None)
@given(st.one_of(_SMALL, st.binary(max_size=3000)))
def test_min_codes_never_exceeds_the_codes_written(data: bytes) -> None:
    bound = min_codes(data)
    if data and len(data) <= SMALL_INPUT:
        assert bound <= len(small_codes(data))
    # for any length: at least that many codes of at least 9 bits each
    assert len(compress(data)) >= (9 * bound + 7) // 8


def test_min_codes_is_exact_when_no_pair_repeats() -> None:
    # the bound's tight case: every phrase a single byte, n + 2 codes
    for n in (1, 2, 3, 20, 77, SMALL_INPUT):
        data = _all_distinct_pairs(n)
        assert min_codes(data) == len(small_codes(data)) == n + 2


def test_small_input_is_the_longest_that_stays_at_nine_bits() -> None:
    # With no table hits the highest code reaches 257 + n. At 255 bytes that is 512 in
    # Close(), so the end code is written 10 bits wide (its top bit is zero, so only
    # the byte count can differ); at 256 the last data code is too, and every bit after
    # it moves. The width-tracking packer above agrees with compress on all three.
    for n in (SMALL_INPUT, SMALL_INPUT + 1, SMALL_INPUT + 2):
        data = _all_distinct_pairs(n)
        assert compress(data) == _pack_codes([256, *data, 257])
    at_limit = _all_distinct_pairs(SMALL_INPUT)
    assert compress(at_limit) == pack9(small_codes(at_limit))
    assert _codes_in_stream(compress(at_limit)) == SMALL_INPUT + 2
    beyond = _all_distinct_pairs(SMALL_INPUT + 2)
    assert compress(beyond) != pack9([256, *beyond, 257])
