"""Member records: who is in the pool, at which address, in which state.

Records are frozen and may be shared between many engines' tables (the simulator starts
thousands of engines with one set of records); a change of state makes a new record with
:func:`dataclasses.replace`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum, IntEnum
from types import MappingProxyType

import msgpack

#: (host, port); host is an IP address string ("127.0.0.1", "::1").
Address = tuple[str, int]

#: Serf marks metadata that holds tags with this first byte, then a msgpack map of
#: strings (serf/serf.go encodeTags; WIRE.md §11.1).
SERF_TAGS_MAGIC = 0xFF

_NO_TAGS: Mapping[str, str] = MappingProxyType({})


class State(IntEnum):
    """memberlist ``NodeStateType``; the values are wire values (pushNodeState.State)."""

    ALIVE = 0
    SUSPECT = 1
    DEAD = 2
    LEFT = 3


class EventKind(Enum):
    JOINED = "joined"
    UPDATED = "updated"
    SUSPECT = "suspect"
    REFUTED = "refuted"  # a suspect member proved alive (higher incarnation)
    DEAD = "dead"  # failed
    LEFT = "left"
    REAPED = "reaped"  # forgotten after reconnect_timeout / tombstone_timeout


def decode_serf_tags(meta: bytes) -> Mapping[str, str]:
    """Serf's tags from node metadata, or an empty mapping when ``meta`` is not
    Serf-encoded (or is malformed: metadata comes from peers and is untrusted)."""
    if not meta or meta[0] != SERF_TAGS_MAGIC:
        return _NO_TAGS
    try:
        obj = msgpack.unpackb(meta[1:], raw=True, strict_map_key=False, max_map_len=4096)
    except Exception:
        return _NO_TAGS
    if not isinstance(obj, dict):
        return _NO_TAGS
    out: dict[str, str] = {}
    for k, v in obj.items():
        if isinstance(k, bytes) and isinstance(v, bytes):
            out[k.decode("utf-8", "replace")] = v.decode("utf-8", "replace")
        elif isinstance(k, str) and isinstance(v, str):
            out[k] = v
        else:
            return _NO_TAGS
    return MappingProxyType(out)


def encode_serf_tags(tags: Mapping[str, str]) -> bytes:
    """Metadata carrying ``tags`` exactly as Serf encodes them (``0xff`` + msgpack map)."""
    body: bytes = msgpack.packb(dict(tags), use_bin_type=False)
    return bytes((SERF_TAGS_MAGIC,)) + body


@dataclass(frozen=True, slots=True)
class Member:
    """One entry of a member table, as one engine sees it."""

    name: str
    #: IP address text, without brackets or port ("10.0.0.5", "::1")
    addr: str
    port: int
    meta: bytes
    incarnation: int
    state: State
    #: time of the last state change, on the clock of the table's owner
    state_change: float
    #: [pmin, pmax, pcur, dmin, dmax, dcur]
    vsn: bytes
    #: the address as raw IP bytes for the wire (4 or 16)
    ip_bytes: bytes

    @property
    def address(self) -> Address:
        return (self.addr, self.port)

    @property
    def tags(self) -> Mapping[str, str]:
        """Serf tags decoded from :attr:`meta`; empty when the metadata is not Serf's."""
        return decode_serf_tags(self.meta)

    @property
    def pmax(self) -> int:
        """The highest memberlist protocol the member speaks (what decides TCP pings,
        nacks and CRCs towards it)."""
        return self.vsn[1] if len(self.vsn) > 1 else 0
