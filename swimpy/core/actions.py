"""What the engine asks its driver to do, and what it reports.

``data`` fields are what the engine's codec produced: wire bytes (the runtime) or message
objects (the simulator); ``size`` is their size in bytes on the wire either way.
"""

from __future__ import annotations

from dataclasses import dataclass

from swimpy.core.frozen import fast_init
from swimpy.core.inputs import ConnId, StreamId
from swimpy.core.member import Address, EventKind, Member
from swimpy.core.timers import Timer


@dataclass(frozen=True, slots=True)
class Action:
    """Base class of everything ``Engine.handle`` and ``Engine.submit`` return."""


@fast_init
@dataclass(frozen=True, slots=True)
class SendPacket(Action):
    """Send one UDP datagram."""

    dest: Address
    data: object
    size: int


@fast_init
@dataclass(frozen=True, slots=True)
class OpenStream(Action):
    """Dial ``dest`` over TCP and write ``data``. With ``expect_reply``, hand what is read
    back as ``StreamResponse`` until the engine has the whole reply; otherwise report
    ``StreamSent``. Report ``StreamFailed`` if it cannot connect, or on no reply within
    ``timeout`` seconds."""

    stream_id: StreamId
    dest: Address
    data: object
    size: int
    timeout: float
    expect_reply: bool


@fast_init
@dataclass(frozen=True, slots=True)
class ReplyStream(Action):
    """Write the reply on inbound connection ``conn_id``, then close it. ``push_pull``
    marks a push/pull reply (the state exchange), which drivers bound: memberlist serves
    at most 128 push/pulls at once (``maxPushPullRequests``)."""

    conn_id: ConnId
    data: object
    size: int
    push_pull: bool = False


@fast_init
@dataclass(frozen=True, slots=True)
class CloseStream(Action):
    """Close inbound connection ``conn_id`` without a reply."""

    conn_id: ConnId


@dataclass(frozen=True, slots=True)
class CloseOutbound(Action):
    """The engine has the whole reply on stream ``stream_id`` (or gave up on it): close
    the connection and hand nothing more for it."""

    stream_id: StreamId


@fast_init
@dataclass(frozen=True, slots=True)
class SetTimer(Action):
    """Hand ``TimerFired(timer)`` back at or after ``at`` (see :mod:`swimpy.core.timers`)."""

    timer: Timer
    at: float


@fast_init
@dataclass(frozen=True, slots=True)
class MemberEvent(Action):
    kind: EventKind
    member: Member


@dataclass(frozen=True, slots=True)
class UserMessageReceived(Action):
    """A user message (UDP or TCP) or a user broadcast arrived."""

    payload: bytes
    reliable: bool
    source: Address | None


@fast_init
@dataclass(frozen=True, slots=True)
class PingCompleted(Action):
    """A probe of ``name`` got a direct ack: round-trip time and the ack payload (Serf's
    coordinates are built from these)."""

    name: str
    rtt: float
    payload: bytes


@dataclass(frozen=True, slots=True)
class JoinCompleted(Action):
    """Join request ``request_id`` finished: ``contacted`` addresses answered; one error
    text per address that did not."""

    request_id: int
    contacted: int
    errors: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class LeaveCompleted(Action):
    request_id: int


@dataclass(frozen=True, slots=True)
class MetaUpdateCompleted(Action):
    request_id: int


@dataclass(frozen=True, slots=True)
class UserMessageSent(Action):
    """User message request ``request_id`` was sent (``error`` None) or could not be."""

    request_id: int
    error: str | None


@dataclass(frozen=True, slots=True)
class RequestFailed(Action):
    """Request ``request_id`` could not be carried out: the state it needed changed
    between ``Engine.check`` and ``Engine.submit`` (a thread host checks in the caller's
    thread and submits on the owner's)."""

    request_id: int
    reason: str
