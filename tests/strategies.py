"""Hypothesis strategies shared by the wire tests."""

from __future__ import annotations

from hypothesis import strategies as st

from swimpy.wire.crypto import Keyring
from swimpy.wire.packet import WireOptions

#: (encryption version, key size) or None for plaintext
ENCRYPTIONS: list[tuple[int, int] | None] = [None, (0, 16), (0, 32), (1, 16), (1, 32), (1, 24)]


@st.composite
def wire_options(draw: st.DrawFn) -> tuple[WireOptions, bool, int]:
    """Framing options over every layer combination, a boolean (CRC for packets, dialer
    for streams) and a seed for the nonce source."""
    enc = draw(st.sampled_from(ENCRYPTIONS))
    keyring = None
    version = 1
    if enc is not None:
        version, size = enc
        keyring = Keyring([draw(st.binary(min_size=size, max_size=size))])
    opts = WireOptions(
        keyring=keyring,
        encryption_version=version,
        compression=draw(st.booleans()),
        label=draw(st.sampled_from([b"", b"x"])),
    )
    return opts, draw(st.booleans()), draw(st.integers(0, 2**32))
