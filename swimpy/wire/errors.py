"""The one error type the wire codec raises for bad peer input."""

from __future__ import annotations


class WireError(ValueError):
    """Peer bytes that cannot be decoded: truncated, oversized, wrong types, bad CRC,
    failed authentication, unknown message type, absurd declared lengths.

    Every ``*_untrusted`` function raises only this (never KeyError, IndexError,
    msgpack's exceptions, ...). The message says what was wrong.
    """

    def __init__(self, message: str, *, reason: str = "malformed") -> None:
        super().__init__(message)
        #: short machine-readable reason, used as a counter key ("bad_crc", "decrypt", ...)
        self.reason = reason


class NeedMoreData(WireError):
    """A stream frame is not complete yet: read more bytes and try again."""

    def __init__(self, message: str = "stream frame incomplete") -> None:
        super().__init__(message, reason="incomplete")
