"""What drivers hand to the engine: network input and timers (``Engine.handle``) and the
local caller's requests (``Engine.submit``).

``data`` fields carry whatever the engine's codec speaks: bytes read off the network
with the wire codec (the runtime), message objects with the object codec (the
simulator). The engine never looks inside them itself; its codec does.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NewType

from swimpy.core.frozen import fast_init
from swimpy.core.member import Address
from swimpy.core.timers import Timer

#: An inbound TCP connection, numbered by the driver (unique among its open connections).
ConnId = NewType("ConnId", int)
#: A TCP stream the engine opened (``OpenStream``), numbered by the engine.
StreamId = NewType("StreamId", int)


@dataclass(frozen=True, slots=True)
class Input:
    """Base class of what ``Engine.handle`` takes."""


@fast_init
@dataclass(frozen=True, slots=True)
class PacketReceived(Input):
    """A UDP datagram arrived from ``source``."""

    source: Address
    data: object


@fast_init
@dataclass(frozen=True, slots=True)
class StreamReceived(Input):
    """Bytes read from inbound connection ``conn_id`` (any amount: the engine reads
    incrementally and acts once the request is complete). The engine answers with
    ``ReplyStream`` or ``CloseStream`` for the connection; until then the driver keeps
    reading and handing data over."""

    conn_id: ConnId
    source: Address
    data: object


@dataclass(frozen=True, slots=True)
class ConnectionClosed(Input):
    """Inbound connection ``conn_id`` ended (EOF, error, or the driver's read timeout)
    before the engine answered it; the engine forgets its partial request."""

    conn_id: ConnId
    reason: str


@fast_init
@dataclass(frozen=True, slots=True)
class StreamResponse(Input):
    """Bytes of the reply on stream ``stream_id`` (``OpenStream`` with ``expect_reply``),
    any amount at a time. An end of stream before the reply is complete is a
    :class:`StreamFailed`."""

    stream_id: StreamId
    data: object


@fast_init
@dataclass(frozen=True, slots=True)
class StreamSent(Input):
    """A stream opened without ``expect_reply`` was written completely."""

    stream_id: StreamId


@fast_init
@dataclass(frozen=True, slots=True)
class StreamFailed(Input):
    """A stream we opened could not connect, timed out, or ended without a reply."""

    stream_id: StreamId
    reason: str


@fast_init
@dataclass(frozen=True, slots=True)
class TimerFired(Input):
    """A timer the engine set (``SetTimer``) is due."""

    timer: Timer


# ------------------------------------------------------------------------------ requests


@dataclass(frozen=True, slots=True)
class Request:
    """Base class of what the local caller asks for (``Engine.submit``)."""


@dataclass(frozen=True, slots=True)
class JoinRequested(Request):
    """Push/pull join with each resolved address (``Memberlist.Join``); answered by a
    ``JoinCompleted``. Seed strings and DNS are the driver's: resolve them first."""

    addresses: tuple[Address, ...]


@dataclass(frozen=True, slots=True)
class LeaveRequested(Request):
    """Broadcast our own leave; ``LeaveCompleted`` follows once it was sent the
    retransmit limit times, or after ``timeout`` seconds."""

    timeout: float = 5.0


@dataclass(frozen=True, slots=True)
class MetaUpdateRequested(Request):
    """New metadata for us, broadcast with a higher incarnation (``UpdateNode``)."""

    meta: bytes
    timeout: float = 5.0


@dataclass(frozen=True, slots=True)
class BroadcastRequested(Request):
    """Queue a user broadcast (piggybacked as a type 8 message)."""

    payload: bytes


@dataclass(frozen=True, slots=True)
class UserMessageRequested(Request):
    """Send a user message to a member: UDP best effort, or TCP when ``reliable``;
    ``UserMessageSent`` reports the outcome."""

    to: str
    payload: bytes
    reliable: bool = False


@dataclass(frozen=True, slots=True)
class InstallKeyRequested(Request):
    """Add ``key`` to the keyring (memberlist ``Keyring.AddKey``); with no keyring yet,
    it becomes the first, primary key."""

    key: bytes


@dataclass(frozen=True, slots=True)
class UseKeyRequested(Request):
    """Make an installed key the primary (encrypting) key (``Keyring.UseKey``)."""

    key: bytes


@dataclass(frozen=True, slots=True)
class RemoveKeyRequested(Request):
    """Remove a key that is not the primary (``Keyring.RemoveKey``)."""

    key: bytes


@dataclass(frozen=True, slots=True)
class GossipVerifyRequested(Request):
    """Switch ``gossip_verify_incoming`` / ``gossip_verify_outgoing`` on a running node,
    for turning encryption on (or off) in a live cluster without downtime."""

    verify_incoming: bool
    verify_outgoing: bool
