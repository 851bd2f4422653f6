"""memberlist's AES-GCM payload encryption and keyring (``security.go``, ``keyring.go``).

Layout of an encrypted payload (WIRE.md §7)::

    version 0:  0x00 | nonce(12) | AES-GCM(plaintext + PKCS#7 padding to 16 bytes, aad)
    version 1:  0x01 | nonce(12) | AES-GCM(plaintext, aad)

where ``AES-GCM(...)`` is ciphertext followed by the 16-byte tag. memberlist sends
version 0 only when its protocol version is 1 and accepts both.

The AAD is empty for v0.2.2 UDP packets, the label for upstream labelled packets, and the
5 frame header bytes ``0a LL LL LL LL`` for TCP streams; callers pass it in.

Nonces are never generated here: :func:`encrypt_payload` takes the nonce, and
:func:`encrypt_with_keyring` takes a :data:`NonceSource` (the runtime passes
``os.urandom``, the simulator and tests a seeded generator).

AES-GCM backends
----------------
* ``"nacl"``: PyNaCl's libsodium AES-256-GCM. 32-byte keys only, and libsodium only
  enables it on CPUs with hardware AES (checked once, lazily, on first use).
* ``"cryptography"``: ``cryptography``'s ``AESGCM``, for 16/24-byte keys (AES-128/192,
  common in Consul clusters) and as the fallback for 32-byte keys. It is an optional
  dependency (``pip install 'swimpy[crypto]'``), imported only when first needed.

By default a 32-byte key uses ``"nacl"`` when it works and ``"cryptography"`` otherwise;
16/24-byte keys use ``"cryptography"``. Every function that encrypts or decrypts takes a
keyword ``backend`` to force one of them (tests use it to compare the two). When no
usable backend exists, :class:`MissingCryptoBackend` is raised: that is a local
installation problem, never a :class:`WireError`.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any, Literal, TypeAlias

from swimpy.wire.constants import ENCRYPTION_VERSION_MAX, NONCE_SIZE, TAG_SIZE, VERSION_SIZE
from swimpy.wire.errors import WireError

__all__ = [
    "BLOCK_SIZE",
    "KEY_SIZES",
    "Backend",
    "Keyring",
    "MissingCryptoBackend",
    "NonceSource",
    "aes_gcm_decrypt",
    "aes_gcm_encrypt",
    "decrypt_payload_untrusted",
    "encrypt_overhead",
    "encrypt_payload",
    "encrypt_with_keyring",
    "encrypted_length",
    "require_backend",
    "validate_key",
]

#: Callable returning ``n`` unpredictable bytes (``os.urandom`` in the runtime).
NonceSource: TypeAlias = Callable[[int], bytes]
#: Name of an AES-GCM implementation; ``None`` means "choose automatically".
Backend: TypeAlias = Literal["nacl", "cryptography"]

#: AES key sizes memberlist accepts (``ValidateKey``): AES-128, AES-192, AES-256.
KEY_SIZES: tuple[int, ...] = (16, 24, 32)
#: AES block size, the PKCS#7 padding unit of encryption version 0.
BLOCK_SIZE = 16

_REASON = "decrypt"
_NACL_KEY_SIZE = 32

_MISSING_CRYPTOGRAPHY = (
    "AES-128/192-GCM (16/24-byte keys) needs the optional 'cryptography' package: "
    "pip install 'swimpy[crypto]'"
)
_MISSING_AES256 = (
    "AES-256-GCM needs hardware AES support in libsodium (PyNaCl) or the optional "
    "'cryptography' package: pip install 'swimpy[crypto]'"
)


class MissingCryptoBackend(RuntimeError):
    """No installed AES-GCM implementation can handle this key size."""


# ---------------------------------------------------------------------------
# Backends
# ---------------------------------------------------------------------------


@functools.cache
def _nacl_usable() -> bool:
    """Whether PyNaCl's AES-256-GCM works on this machine (decided once)."""
    try:
        from nacl.bindings import crypto_aead_aes256gcm_encrypt
    except ImportError:
        return False
    try:
        crypto_aead_aes256gcm_encrypt(b"", None, bytes(NONCE_SIZE), bytes(_NACL_KEY_SIZE))
    except Exception:  # nacl.exceptions.UnavailableError on CPUs without AES-NI
        return False
    return True


@functools.cache
def _aesgcm_class() -> Any | None:
    """``cryptography``'s ``AESGCM`` class, or ``None`` if the package is missing."""
    try:
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM
    except ImportError:
        return None
    return AESGCM


def _new_aesgcm(key: bytes) -> Any:
    cls = _aesgcm_class()
    if cls is None:
        raise MissingCryptoBackend(_MISSING_CRYPTOGRAPHY)
    return cls(key)


def _choose_backend(key_len: int, backend: Backend | None) -> Backend:
    if key_len not in KEY_SIZES:
        raise ValueError(f"AES key must be 16, 24 or 32 bytes, got {key_len}")
    if backend is None:
        if key_len == _NACL_KEY_SIZE and _nacl_usable():
            return "nacl"
        if _aesgcm_class() is None:
            raise MissingCryptoBackend(
                _MISSING_AES256 if key_len == _NACL_KEY_SIZE else _MISSING_CRYPTOGRAPHY
            )
        return "cryptography"
    if backend == "nacl":
        if key_len != _NACL_KEY_SIZE:
            raise ValueError(f"the 'nacl' backend only does AES-256 (32-byte keys), got {key_len}")
        if not _nacl_usable():
            raise MissingCryptoBackend(
                "PyNaCl's AES-256-GCM is not available on this CPU (libsodium needs hardware AES)"
            )
        return "nacl"
    if backend == "cryptography":
        if _aesgcm_class() is None:
            raise MissingCryptoBackend(_MISSING_CRYPTOGRAPHY)
        return "cryptography"
    raise ValueError(f"unknown AES-GCM backend {backend!r}")


def require_backend(key: bytes) -> Backend:
    """Check that ``key`` is a valid AES key and some backend can use it.

    Returns the backend that will be chosen by default; raises :class:`ValueError` for a
    bad key size and :class:`MissingCryptoBackend` when no implementation is installed.
    """
    return _choose_backend(len(key), None)


def aes_gcm_encrypt(
    key: bytes, nonce: bytes, plaintext: bytes, aad: bytes, *, backend: Backend | None = None
) -> bytes:
    """AES-GCM seal: ciphertext followed by the 16-byte tag.

    ``backend`` forces ``"nacl"`` (32-byte keys only) or ``"cryptography"``; ``None``
    picks as described in the module docstring.
    """
    key = bytes(key)
    if len(nonce) != NONCE_SIZE:
        raise ValueError(f"nonce must be {NONCE_SIZE} bytes, got {len(nonce)}")
    chosen = _choose_backend(len(key), backend)
    if chosen == "nacl":
        from nacl.bindings import crypto_aead_aes256gcm_encrypt

        result: bytes = crypto_aead_aes256gcm_encrypt(
            bytes(plaintext), bytes(aad), bytes(nonce), key
        )
        return result
    aesgcm = _new_aesgcm(key)
    sealed: bytes = aesgcm.encrypt(bytes(nonce), bytes(plaintext), bytes(aad))
    return sealed


def aes_gcm_decrypt(
    key: bytes, nonce: bytes, sealed: bytes, aad: bytes, *, backend: Backend | None = None
) -> bytes | None:
    """AES-GCM open of ``ciphertext || tag``; ``None`` when authentication fails.

    ``backend`` as for :func:`aes_gcm_encrypt`. A bad key or nonce size is a local
    error (:class:`ValueError`).
    """
    key = bytes(key)
    if len(nonce) != NONCE_SIZE:
        raise ValueError(f"nonce must be {NONCE_SIZE} bytes, got {len(nonce)}")
    chosen = _choose_backend(len(key), backend)
    if len(sealed) < TAG_SIZE:
        return None
    if chosen == "nacl":
        from nacl.bindings import crypto_aead_aes256gcm_decrypt
        from nacl.exceptions import CryptoError

        try:
            plain: bytes = crypto_aead_aes256gcm_decrypt(
                bytes(sealed), bytes(aad), bytes(nonce), key
            )
        except CryptoError:
            return None
        return plain
    from cryptography.exceptions import InvalidTag

    aesgcm = _new_aesgcm(key)
    try:
        opened: bytes = aesgcm.decrypt(bytes(nonce), bytes(sealed), bytes(aad))
    except InvalidTag:
        return None
    return opened


# ---------------------------------------------------------------------------
# memberlist framing (security.go)
# ---------------------------------------------------------------------------


def _check_version(version: int) -> None:
    if version not in (0, 1):
        raise ValueError(f"unsupported encryption version {version} (0 or 1)")


def encrypt_overhead(version: int) -> int:
    """Largest number of bytes encryption adds: 45 for version 0 (version byte, nonce,
    up to 16 bytes of padding, tag), 29 for version 1."""
    _check_version(version)
    padding = BLOCK_SIZE if version == 0 else 0
    return VERSION_SIZE + NONCE_SIZE + padding + TAG_SIZE


def encrypted_length(version: int, plaintext_len: int) -> int:
    """Exact size of an encrypted payload for ``plaintext_len`` bytes of plaintext.

    ``encrypted_length(v, 0)`` is also the smallest payload a receiver will try to
    decrypt (45 for version 0, 29 for version 1).
    """
    _check_version(version)
    if plaintext_len < 0:
        raise ValueError("plaintext length must be >= 0")
    padding = BLOCK_SIZE - plaintext_len % BLOCK_SIZE if version == 0 else 0
    return VERSION_SIZE + NONCE_SIZE + plaintext_len + padding + TAG_SIZE


def encrypt_payload(
    version: int,
    key: bytes,
    msg: bytes,
    aad: bytes,
    nonce: bytes,
    *,
    backend: Backend | None = None,
) -> bytes:
    """Encrypt ``msg`` as memberlist's ``encryptPayload`` does.

    Version 0: ``0x00 | nonce | GCM(msg + PKCS#7 padding)`` (1..16 pad bytes, each equal
    to the pad length); version 1: ``0x01 | nonce | GCM(msg)``. ``nonce`` must be 12
    fresh unpredictable bytes. ``backend``: see :func:`aes_gcm_encrypt`.
    """
    _check_version(version)
    plaintext = bytes(msg)
    if version == 0:
        pad = BLOCK_SIZE - len(plaintext) % BLOCK_SIZE
        plaintext += bytes((pad,)) * pad
    sealed = aes_gcm_encrypt(key, nonce, plaintext, aad, backend=backend)
    return bytes((version,)) + bytes(nonce) + sealed


def encrypt_with_keyring(
    keyring: Keyring,
    version: int,
    msg: bytes,
    aad: bytes,
    nonce_source: NonceSource,
    *,
    backend: Backend | None = None,
) -> bytes:
    """Encrypt ``msg`` with the keyring's primary key and a nonce drawn from
    ``nonce_source(12)``."""
    nonce = nonce_source(NONCE_SIZE)
    if len(nonce) != NONCE_SIZE:
        raise ValueError(f"nonce source returned {len(nonce)} bytes, wanted {NONCE_SIZE}")
    return encrypt_payload(version, keyring.primary_key, msg, aad, nonce, backend=backend)


def decrypt_payload_untrusted(
    keys: Sequence[bytes],
    buf: bytes,
    aad: bytes,
    *,
    backend: Backend | None = None,
) -> bytes:
    """Decrypt a peer's payload as memberlist's ``decryptPayload`` does.

    Every key is tried in order and the first that authenticates wins (so pass the
    keyring's keys, primary first). Version 0 padding is removed by trusting the last
    plaintext byte, like memberlist.

    Raises :class:`WireError` (``reason="decrypt"``) for an empty payload, an unknown
    version byte (> 1), a payload shorter than ``encrypted_length(version, 0)``, no key
    authenticating it, or (version 0) a pad byte larger than the plaintext. Local
    problems (bad key sizes, no backend installed) raise ``ValueError`` /
    :class:`MissingCryptoBackend` instead.
    """
    data = bytes(buf)
    if not data:
        raise WireError("Cannot decrypt empty payload", reason=_REASON)
    version = data[0]
    if version > ENCRYPTION_VERSION_MAX:
        raise WireError(f"Unsupported encryption version {version}", reason=_REASON)
    if len(data) < encrypted_length(version, 0):
        raise WireError(f"Payload is too small to decrypt: {len(data)}", reason=_REASON)
    nonce = data[VERSION_SIZE : VERSION_SIZE + NONCE_SIZE]
    sealed = data[VERSION_SIZE + NONCE_SIZE :]
    aad_bytes = bytes(aad)
    for key in keys:
        plain = aes_gcm_decrypt(key, nonce, sealed, aad_bytes, backend=backend)
        if plain is None:
            continue
        if version == 0:
            pad = plain[-1] if plain else 0
            if pad > len(plain):
                raise WireError(
                    f"bad PKCS#7 padding byte {pad} for {len(plain)} bytes", reason=_REASON
                )
            return plain[: len(plain) - pad]
        return plain
    raise WireError("No installed keys could decrypt the message", reason=_REASON)


# ---------------------------------------------------------------------------
# Keyring (keyring.go)
# ---------------------------------------------------------------------------


def validate_key(key: bytes, name: str = "key") -> bytes:
    """Return ``key`` as ``bytes`` if it is 16, 24 or 32 bytes long, else raise
    :class:`ValueError` whose message starts with ``name`` (e.g. ``"key 2"``)."""
    raw = bytes(key)
    if len(raw) not in KEY_SIZES:
        raise ValueError(f"{name} is {len(raw)} bytes; AES keys must be 16, 24 or 32 bytes")
    return raw


class Keyring:
    """Installed encryption keys; ``keys[0]`` is the primary key.

    The primary key encrypts everything we send; every key is tried, in order, to
    decrypt what we receive (so during a rotation peers using either key are understood).
    Mirrors memberlist's ``Keyring``: ``primary`` (default: the first of ``keys``) is put
    first, duplicates are dropped, the primary cannot be removed, an empty keyring is not
    allowed (no keyring means no encryption). Each key must be 16, 24 or 32 bytes and
    usable by an installed AES-GCM backend (:func:`require_backend`), so a missing
    optional dependency is reported when the key is installed, not on the first packet.

    Not thread-safe; it belongs to the node's owner task.
    """

    __slots__ = ("_keys",)

    def __init__(self, keys: Sequence[bytes], primary: bytes | None = None) -> None:
        if isinstance(keys, bytes | bytearray | memoryview):
            raise TypeError("keys must be a sequence of keys, not a single key")
        checked = [validate_key(k, f"key {i}") for i, k in enumerate(keys)]
        if primary is not None:
            primary_key = validate_key(primary, "primary key")
        elif checked:
            primary_key = checked[0]
        else:
            raise ValueError("a keyring needs at least one key")
        ordered: list[bytes] = [primary_key]
        for k in checked:
            if k not in ordered:
                ordered.append(k)
        for k in ordered:
            require_backend(k)
        self._keys: tuple[bytes, ...] = tuple(ordered)

    @property
    def keys(self) -> tuple[bytes, ...]:
        """All installed keys, primary first: the order decryption tries them in."""
        return self._keys

    @property
    def primary_key(self) -> bytes:
        """The key used to encrypt outgoing messages."""
        return self._keys[0]

    def add_key(self, key: bytes) -> None:
        """Install ``key`` for decryption (appended after the others). Installing a key
        that is already present does nothing."""
        raw = validate_key(key)
        if raw in self._keys:
            return
        require_backend(raw)
        self._keys = (*self._keys, raw)

    def use_key(self, key: bytes) -> None:
        """Make an installed key the primary; the others keep their relative order.
        Raises :class:`ValueError` if ``key`` is not installed."""
        raw = bytes(key)
        if raw not in self._keys:
            raise ValueError("requested key is not in the keyring")
        self._keys = (raw, *(k for k in self._keys if k != raw))

    def remove_key(self, key: bytes) -> None:
        """Uninstall ``key``. Removing the primary key raises :class:`ValueError`;
        removing a key that is not installed does nothing (as in memberlist)."""
        raw = bytes(key)
        if raw == self._keys[0]:
            raise ValueError("removing the primary key is not allowed")
        self._keys = tuple(k for k in self._keys if k != raw)

    def __len__(self) -> int:
        return len(self._keys)

    def __repr__(self) -> str:
        sizes = ", ".join(str(len(k)) for k in self._keys)
        return f"Keyring({len(self._keys)} keys, sizes [{sizes}])"
