"""memberlist AES-GCM framing and keyring semantics of swimpy.wire.crypto."""

from __future__ import annotations

import random
import re
import sys
import zlib
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from swimpy.wire import crypto
from swimpy.wire.crypto import (
    Keyring,
    MissingCryptoBackend,
    aes_gcm_decrypt,
    aes_gcm_encrypt,
    decrypt_payload_untrusted,
    encrypt_overhead,
    encrypt_payload,
    encrypt_with_keyring,
    encrypted_length,
)
from swimpy.wire.errors import WireError

_HERE = Path(__file__).resolve()
_SHARED_VECTORS = _HERE.parents[2].parent / "shared" / "vectors"
_LOCAL_VECTORS = _HERE.parent / "vectors"

KEY = bytes(range(16))  # 000102..0f
NONCE = bytes(range(0xA0, 0xAC))  # a0a1..ab


def _vector_file(name: str) -> Path:
    """The shared vector file when the shared/ tree is present, else the local copy."""
    shared = _SHARED_VECTORS / name
    return shared if shared.is_file() else _LOCAL_VECTORS / name


def _vectors() -> dict[str, bytes]:
    pattern = re.compile(r"^VECTOR\s+(.*?)\s+len=(\d+)\s+([0-9a-f]*)\s*$")
    vectors: dict[str, bytes] = {}
    for line in _vector_file("memberlist-0.2.2.txt").read_text().splitlines():
        m = pattern.match(line)
        if m:
            raw = bytes.fromhex(m.group(3))
            assert len(raw) == int(m.group(2)), m.group(1)
            vectors[m.group(1)] = raw
    return vectors


def _vector(prefix: str) -> bytes:
    matches = [v for name, v in _vectors().items() if name.startswith(prefix)]
    assert len(matches) == 1, prefix
    return matches[0]


def _nacl_works() -> bool:
    try:
        crypto.require_backend(bytes(32))
        aes_gcm_encrypt(bytes(32), bytes(12), b"", b"", backend="nacl")
    except MissingCryptoBackend:
        return False
    return True


needs_nacl = pytest.mark.skipif(not _nacl_works(), reason="libsodium AES-256-GCM unavailable")


@pytest.fixture
def fresh_backend_cache() -> Iterator[None]:
    # Keep the real cached functions: a test may monkeypatch the module attributes.
    caches = (crypto._aesgcm_class, crypto._nacl_usable)
    for cached in caches:
        cached.cache_clear()
    yield
    for cached in caches:
        cached.cache_clear()


@pytest.fixture
def without_cryptography(
    monkeypatch: pytest.MonkeyPatch, fresh_backend_cache: None
) -> Iterator[None]:
    # A None entry in sys.modules makes the import raise ImportError.
    monkeypatch.setitem(sys.modules, "cryptography.hazmat.primitives.ciphers.aead", None)
    yield


# --- golden vectors (key 000102..0f, nonce a0a1..ab) ----------------------------------


def test_plaintext_and_key_vectors_match_test_constants() -> None:
    assert _vector("key") == KEY
    assert _vector("nonce") == NONCE


@pytest.mark.parametrize(
    ("version", "name"),
    [(0, "udp encrypt vsn=0 (AAD empty)"), (1, "udp encrypt vsn=1 (AAD empty)")],
)
def test_udp_encryption_vector_reproduced_and_decrypted(version: int, name: str) -> None:
    plaintext = _vector("plaintext(ping omitempty)")
    expected = _vectors()[name]
    assert encrypt_payload(version, KEY, plaintext, b"", NONCE) == expected
    assert len(expected) == encrypted_length(version, len(plaintext))
    assert decrypt_payload_untrusted([KEY], expected, b"") == plaintext


def test_tcp_stream_vector_authenticates_the_frame_header() -> None:
    plaintext = _vector("plaintext(ping omitempty)")
    frame = _vector("TCP encrypted stream (ping omitempty), vsn1")
    header, payload = frame[:5], frame[5:]
    assert header == bytes.fromhex("0a00000032")
    assert int.from_bytes(header[1:], "big") == len(payload)
    assert encrypt_payload(1, KEY, plaintext, header, NONCE) == payload
    assert decrypt_payload_untrusted([KEY], payload, header) == plaintext
    # Same ciphertext as the UDP vector, different tag: the AAD matters.
    udp = _vector("udp encrypt vsn=1 (AAD empty)")
    assert payload[:-16] == udp[:-16]
    assert payload[-16:] != udp[-16:]
    with pytest.raises(WireError, match="No installed keys"):
        decrypt_payload_untrusted([KEY], payload, b"")


def test_upstream_label_vector_uses_label_as_aad() -> None:
    plaintext = _vector("plaintext(ping omitempty)")
    packet = _vector("UPSTREAM-ONLY label 'lbl'")
    assert packet[:5] == b"\xf4\x03lbl"
    payload = packet[5:]
    assert encrypt_payload(1, KEY, plaintext, b"lbl", NONCE) == payload
    assert decrypt_payload_untrusted([KEY], payload, b"lbl") == plaintext
    with pytest.raises(WireError):
        decrypt_payload_untrusted([KEY], payload, b"")


def test_captured_encrypted_packet_holds_crc_framed_ping() -> None:
    packet = _vector("captured UDP encrypted (crc inside), vsn1")
    plain = decrypt_payload_untrusted([KEY], packet, b"")
    assert plain[0] == 12
    assert int.from_bytes(plain[1:5], "big") == zlib.crc32(plain[5:])
    assert plain[5:] == _vector("plaintext(ping omitempty)")


# --- framing ------------------------------------------------------------------------------


def test_overhead_and_lengths_follow_memberlist() -> None:
    assert encrypt_overhead(0) == 45
    assert encrypt_overhead(1) == 29
    assert encrypted_length(1, 0) == 29
    assert encrypted_length(0, 0) == 45
    assert encrypted_length(0, 15) == 45
    assert encrypted_length(0, 16) == 61
    assert encrypted_length(1, 100) == 129
    for bad in (-1, 2):
        with pytest.raises(ValueError):
            encrypt_overhead(bad)
        with pytest.raises(ValueError):
            encrypted_length(bad, 0)


@pytest.mark.parametrize("length", range(0, 33))
def test_version_zero_pads_one_to_sixteen_bytes(length: int) -> None:
    msg = bytes(range(length))
    packet = encrypt_payload(0, KEY, msg, b"", NONCE)
    assert len(packet) == encrypted_length(0, length)
    assert len(packet) - encrypt_overhead(0) in range(length - 16, length + 1)
    # Opening the GCM layer by hand shows the PKCS#7 padding.
    padded = aes_gcm_decrypt(KEY, NONCE, packet[13:], b"")
    assert padded is not None
    pad = 16 - length % 16
    assert padded == msg + bytes([pad]) * pad
    assert decrypt_payload_untrusted([KEY], packet, b"") == msg


def test_empty_plaintext_round_trips_at_minimum_length() -> None:
    for version in (0, 1):
        packet = encrypt_payload(version, KEY, b"", b"", NONCE)
        assert len(packet) == encrypted_length(version, 0)
        assert decrypt_payload_untrusted([KEY], packet, b"") == b""


def test_too_short_payloads_are_rejected_before_trying_keys() -> None:
    with pytest.raises(WireError, match="too small") as exc:
        decrypt_payload_untrusted([KEY], b"\x01" + bytes(27), b"")
    assert exc.value.reason == "decrypt"
    with pytest.raises(WireError, match="too small"):
        decrypt_payload_untrusted([KEY], b"\x00" + bytes(43), b"")
    with pytest.raises(WireError, match="empty"):
        decrypt_payload_untrusted([KEY], b"", b"")


def test_unknown_encryption_version_is_rejected() -> None:
    packet = bytearray(encrypt_payload(1, KEY, b"hello", b"", NONCE))
    packet[0] = 2
    with pytest.raises(WireError, match="Unsupported encryption version 2") as exc:
        decrypt_payload_untrusted([KEY], bytes(packet), b"")
    assert exc.value.reason == "decrypt"


def test_version_zero_unpadding_trusts_last_byte_like_memberlist() -> None:
    # The version byte is not authenticated, so a v1 packet relabelled v0 still opens;
    # its last plaintext byte is then taken as the pad length.
    msg = bytes(27) + b"\x05\x05\x05\x05\x05"
    packet = b"\x00" + encrypt_payload(1, KEY, msg, b"", NONCE)[1:]
    assert decrypt_payload_untrusted([KEY], packet, b"") == msg[:-5]
    msg = bytes(31) + b"\x00"
    packet = b"\x00" + encrypt_payload(1, KEY, msg, b"", NONCE)[1:]
    assert decrypt_payload_untrusted([KEY], packet, b"") == msg


def test_version_zero_pad_byte_longer_than_plaintext_is_wire_error() -> None:
    msg = bytes(15) + b"\xff"
    packet = b"\x00" + encrypt_payload(1, KEY, msg, b"", NONCE)[1:]
    with pytest.raises(WireError, match="padding") as exc:
        decrypt_payload_untrusted([KEY], packet, b"")
    assert exc.value.reason == "decrypt"


def test_wrong_nonce_or_key_size_is_a_local_error() -> None:
    with pytest.raises(ValueError):
        encrypt_payload(1, KEY, b"x", b"", bytes(11))
    with pytest.raises(ValueError):
        encrypt_payload(1, bytes(20), b"x", b"", NONCE)
    with pytest.raises(ValueError):
        encrypt_payload(2, KEY, b"x", b"", NONCE)


# --- keyring --------------------------------------------------------------------------

K1, K2, K3 = bytes([1]) * 16, bytes([2]) * 24, bytes([3]) * 32


def test_keyring_puts_primary_first() -> None:
    ring = Keyring([K1, K2, K3], primary=K3)
    assert ring.keys == (K3, K1, K2)
    assert ring.primary_key == K3


def test_keyring_primary_defaults_to_first_key_and_may_be_extra() -> None:
    assert Keyring([K2, K1]).primary_key == K2
    ring = Keyring([K1], primary=K2)
    assert ring.keys == (K2, K1)


def test_keyring_drops_duplicate_keys() -> None:
    ring = Keyring([K1, K2, K1], primary=K2)
    assert ring.keys == (K2, K1)
    ring.add_key(K1)
    assert ring.keys == (K2, K1)


def test_keyring_add_use_remove() -> None:
    ring = Keyring([K1])
    ring.add_key(K2)
    ring.add_key(K3)
    assert list(ring.keys) == [K1, K2, K3]
    ring.use_key(K3)
    assert list(ring.keys) == [K3, K1, K2]
    ring.remove_key(K1)
    assert list(ring.keys) == [K3, K2]
    ring.remove_key(K1)  # not installed: no-op, as in memberlist
    assert list(ring.keys) == [K3, K2]
    assert len(ring) == 2


def test_keyring_refuses_to_remove_primary() -> None:
    ring = Keyring([K1, K2])
    with pytest.raises(ValueError, match="primary"):
        ring.remove_key(K1)
    assert ring.keys == (K1, K2)


def test_keyring_use_key_requires_installed_key() -> None:
    ring = Keyring([K1])
    with pytest.raises(ValueError, match="not in the keyring"):
        ring.use_key(K2)


@pytest.mark.parametrize("size", [0, 1, 15, 17, 23, 31, 33, 64])
def test_keyring_rejects_bad_key_sizes_naming_index_and_length(size: int) -> None:
    with pytest.raises(ValueError, match=rf"key 1 is {size} bytes"):
        Keyring([K1, bytes(size)])
    with pytest.raises(ValueError, match=rf"primary key is {size} bytes"):
        Keyring([K1], primary=bytes(size))
    ring = Keyring([K1])
    with pytest.raises(ValueError, match=rf"{size} bytes"):
        ring.add_key(bytes(size))


def test_keyring_must_not_be_empty() -> None:
    with pytest.raises(ValueError, match="at least one key"):
        Keyring([])


def test_keyring_rejects_a_bare_key_instead_of_a_list() -> None:
    with pytest.raises(TypeError):
        Keyring(K1)  # type: ignore[arg-type]


def test_keyring_repr_does_not_leak_key_material() -> None:
    assert K1.hex() not in repr(Keyring([K1]))


def test_decryption_tries_every_installed_key_in_order() -> None:
    ring = Keyring([K1, K2, K3])
    for key in (K1, K2, K3):
        packet = encrypt_payload(1, key, b"msg", b"", NONCE)
        assert decrypt_payload_untrusted(ring.keys, packet, b"") == b"msg"


def test_decryption_with_no_matching_key_fails() -> None:
    packet = encrypt_payload(1, K3, b"msg", b"", NONCE)
    with pytest.raises(WireError, match="No installed keys could decrypt the message") as exc:
        decrypt_payload_untrusted([K1, K2], packet, b"")
    assert exc.value.reason == "decrypt"
    with pytest.raises(WireError):
        decrypt_payload_untrusted([], packet, b"")


def test_encrypt_with_keyring_uses_primary_and_injected_nonce() -> None:
    ring = Keyring([K1, K2], primary=K2)
    rng = random.Random(7)
    packet = encrypt_with_keyring(ring, 1, b"hello", b"", rng.randbytes)
    assert packet[1:13] == random.Random(7).randbytes(12)
    assert decrypt_payload_untrusted([K2], packet, b"") == b"hello"
    with pytest.raises(ValueError):
        encrypt_with_keyring(ring, 1, b"hello", b"", lambda n: bytes(n - 1))


# --- backends ---------------------------------------------------------------------------


@needs_nacl
@settings(max_examples=40, deadline=None)
@given(
    key=st.binary(min_size=32, max_size=32),
    nonce=st.binary(min_size=12, max_size=12),
    msg=st.binary(max_size=300),
    aad=st.binary(max_size=40),
    version=st.sampled_from([0, 1]),
)
def test_nacl_and_cryptography_backends_give_identical_bytes(
    key: bytes, nonce: bytes, msg: bytes, aad: bytes, version: int
) -> None:
    a = encrypt_payload(version, key, msg, aad, nonce, backend="nacl")
    b = encrypt_payload(version, key, msg, aad, nonce, backend="cryptography")
    assert a == b
    assert decrypt_payload_untrusted([key], a, aad, backend="nacl") == msg
    assert decrypt_payload_untrusted([key], a, aad, backend="cryptography") == msg


def test_nacl_backend_only_takes_32_byte_keys() -> None:
    with pytest.raises(ValueError, match="32-byte"):
        aes_gcm_encrypt(KEY, NONCE, b"x", b"", backend="nacl")


def test_unknown_backend_name_is_rejected() -> None:
    with pytest.raises(ValueError, match="unknown"):
        aes_gcm_encrypt(KEY, NONCE, b"x", b"", backend="openssl")  # type: ignore[arg-type]


def test_short_keys_without_cryptography_raise_missing_backend(
    without_cryptography: None,
) -> None:
    for key in (bytes(16), bytes(24)):
        with pytest.raises(MissingCryptoBackend, match=re.escape("pip install 'swimpy[crypto]'")):
            encrypt_payload(1, key, b"x", b"", NONCE)
        with pytest.raises(MissingCryptoBackend, match="AES-128/192-GCM"):
            Keyring([key])
    with pytest.raises(MissingCryptoBackend):
        decrypt_payload_untrusted([bytes(16)], b"\x01" + bytes(39), b"")


@needs_nacl
def test_32_byte_keys_work_without_cryptography_when_nacl_works(
    without_cryptography: None,
) -> None:
    key = bytes(range(32))
    assert crypto.require_backend(key) == "nacl"
    packet = encrypt_payload(1, key, b"hello", b"", NONCE)
    assert decrypt_payload_untrusted(Keyring([key]).keys, packet, b"") == b"hello"


def test_32_byte_keys_fall_back_to_cryptography_when_nacl_unusable(
    monkeypatch: pytest.MonkeyPatch, fresh_backend_cache: None
) -> None:
    key = bytes(range(32))
    expected = encrypt_payload(1, key, b"hello", b"aad", NONCE, backend="cryptography")
    monkeypatch.setattr(crypto, "_nacl_usable", lambda: False)
    assert crypto.require_backend(key) == "cryptography"
    assert encrypt_payload(1, key, b"hello", b"aad", NONCE) == expected
    with pytest.raises(MissingCryptoBackend, match="not available on this CPU"):
        encrypt_payload(1, key, b"hello", b"aad", NONCE, backend="nacl")


def test_no_backend_at_all_for_32_byte_keys_raises_missing_backend(
    monkeypatch: pytest.MonkeyPatch, without_cryptography: None
) -> None:
    monkeypatch.setattr(crypto, "_nacl_usable", lambda: False)
    with pytest.raises(MissingCryptoBackend, match="AES-256-GCM"):
        Keyring([bytes(32)])


# --- properties ---------------------------------------------------------------------------

_KEYS = st.sampled_from([16, 24, 32]).flatmap(lambda n: st.binary(min_size=n, max_size=n))


@settings(max_examples=60, deadline=None)
@given(
    key=_KEYS,
    nonce=st.binary(min_size=12, max_size=12),
    msg=st.binary(max_size=400),
    aad=st.binary(max_size=32),
    version=st.sampled_from([0, 1]),
)
def test_encryption_round_trip(
    key: bytes, nonce: bytes, msg: bytes, aad: bytes, version: int
) -> None:
    packet = encrypt_payload(version, key, msg, aad, nonce)
    assert packet[0] == version
    assert packet[1:13] == nonce
    assert len(packet) == encrypted_length(version, len(msg))
    assert len(packet) <= len(msg) + encrypt_overhead(version)
    assert decrypt_payload_untrusted([key], packet, aad) == msg


@settings(max_examples=150, deadline=None)
@given(
    key=_KEYS,
    msg=st.binary(max_size=200),
    version=st.sampled_from([0, 1]),
    draw=st.data(),
)
def test_mutated_packets_raise_only_wire_error(
    key: bytes, msg: bytes, version: int, draw: st.DataObject
) -> None:
    original = encrypt_payload(version, key, msg, b"", NONCE)
    packet = bytearray(original)
    kind = draw.draw(st.sampled_from(["flip", "truncate", "extend", "splice"]))
    if kind == "flip":
        i = draw.draw(st.integers(0, len(packet) - 1))
        packet[i] ^= draw.draw(st.integers(1, 255))
    elif kind == "truncate":
        del packet[draw.draw(st.integers(0, len(packet) - 1)) :]
    elif kind == "extend":
        packet += draw.draw(st.binary(min_size=1, max_size=32))
    else:
        i = draw.draw(st.integers(0, len(packet)))
        j = draw.draw(st.integers(i, len(packet)))
        packet[i:j] = draw.draw(st.binary(max_size=32))
    try:
        out = decrypt_payload_untrusted([key, bytes(16)], bytes(packet), b"")
    except WireError as exc:
        assert exc.reason == "decrypt"
    else:
        # Only the unauthenticated version byte can change without failing: 1 -> 0 or
        # 0 -> 1 changes how padding is read, nothing else.
        assert bytes(packet[1:]) == original[1:]
        assert msg.startswith(out) or out.startswith(msg)


@settings(max_examples=100, deadline=None)
@given(junk=st.binary(max_size=200))
def test_random_bytes_raise_only_wire_error(junk: bytes) -> None:
    try:
        decrypt_payload_untrusted([KEY], junk, b"")
    except WireError as exc:
        assert exc.reason == "decrypt"
