"""Values the engine takes in and gives out: member records, inputs, actions, events.

Everything here is a frozen, slotted dataclass. Member records are immutable and may be
shared between many nodes' tables (the simulator starts thousands of nodes with one set
of records); a change of state makes a new record.
"""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass, field
from enum import Enum, IntEnum

from swimpy.wire.messages import PacketMessage
from swimpy.wire.sizes import push_node_state_size
from swimpy.wire.stream import StreamMessage

#: (host, port); host is an IP address string ("127.0.0.1", "::1").
Address = tuple[str, int]


class State(IntEnum):
    """memberlist ``NodeStateType``; the values are wire values (pushNodeState.State)."""

    ALIVE = 0
    SUSPECT = 1
    DEAD = 2
    LEFT = 3


@dataclass(frozen=True, slots=True)
class Member:
    """One entry of a member table, as one node sees it."""

    name: str
    addr: str
    port: int
    meta: bytes
    incarnation: int
    state: State
    #: virtual/monotonic time of the last state change, as seen by the table's owner
    state_change: float
    #: [pmin, pmax, pcur, dmin, dmax, dcur]
    vsn: bytes
    #: raw IP bytes for the wire (4 or 16)
    ip: bytes
    #: encoded size of this entry as a pushNodeState (for byte accounting in fast mode)
    wire_size: int = field(default=0, init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(
            self,
            "wire_size",
            push_node_state_size(
                len(self.name.encode("utf-8", "surrogateescape")), len(self.ip), self.port,
                len(self.meta), self.incarnation, int(self.state), len(self.vsn),
            ),
        )

    @property
    def address(self) -> Address:
        return (self.addr, self.port)

    @property
    def pmin(self) -> int:
        return self.vsn[0] if len(self.vsn) > 0 else 0

    @property
    def pmax(self) -> int:
        return self.vsn[1] if len(self.vsn) > 1 else 0

    @property
    def pcur(self) -> int:
        return self.vsn[2] if len(self.vsn) > 2 else 0

    @property
    def dmin(self) -> int:
        return self.vsn[3] if len(self.vsn) > 3 else 0

    @property
    def dmax(self) -> int:
        return self.vsn[4] if len(self.vsn) > 4 else 0

    @property
    def dcur(self) -> int:
        return self.vsn[5] if len(self.vsn) > 5 else 0


@dataclass(frozen=True, slots=True)
class MemberSnapshot:
    """A push/pull in the simulator's fast mode: the sender's (shared, immutable) member
    records instead of encoded ``pushNodeState`` maps. Never on a real network."""

    join: bool
    members: tuple[Member, ...]
    user_state: bytes = b""


#: What a stream carries: a wire message, or a fast-mode snapshot.
StreamPayload = StreamMessage | MemberSnapshot


class EventKind(Enum):
    JOINED = "joined"
    UPDATED = "updated"
    SUSPECT = "suspect"
    REFUTED = "refuted"  # a suspect member proved alive (higher incarnation)
    DEAD = "dead"  # failed
    LEFT = "left"
    REAPED = "reaped"  # forgotten after reconnect_timeout / tombstone_timeout


# --------------------------------------------------------------------------------- inputs


@dataclass(frozen=True, slots=True)
class PacketReceived:
    """A UDP datagram arrived. In the simulator's fast mode ``data`` is None and the
    decoded ``messages`` are passed directly."""

    source: Address
    data: bytes | None
    messages: tuple[PacketMessage, ...] = ()


@dataclass(frozen=True, slots=True)
class StreamReceived:
    """An inbound TCP stream's complete request (see ``Node.stream_needs_more``)."""

    stream_id: int
    source: Address
    data: bytes | None
    message: StreamPayload | None = None


@dataclass(frozen=True, slots=True)
class StreamResponse:
    """The reply on a stream we opened (``OpenStream`` with ``expect_reply``), or, with
    ``data`` and ``message`` both None for a stream without reply, its successful send."""

    stream_id: int
    data: bytes | None
    message: StreamPayload | None = None


@dataclass(frozen=True, slots=True)
class StreamFailed:
    """A stream we opened could not connect, timed out, or closed without a reply."""

    stream_id: int
    reason: str


@dataclass(frozen=True, slots=True)
class TimerFired:
    key: Hashable


@dataclass(frozen=True, slots=True)
class JoinRequested:
    """Push/pull join to each address (``Memberlist.Join``)."""

    addresses: tuple[Address, ...]
    #: opaque token echoed in :class:`JoinCompleted`
    token: int = 0


@dataclass(frozen=True, slots=True)
class LeaveRequested:
    """Broadcast our own leave; :class:`LeaveCompleted` follows once it was sent the
    retransmit limit times, or after ``timeout`` seconds."""

    token: int = 0
    timeout: float = 5.0


@dataclass(frozen=True, slots=True)
class MetaUpdateRequested:
    meta: bytes
    token: int = 0
    timeout: float = 5.0


@dataclass(frozen=True, slots=True)
class BroadcastRequested:
    """Queue a user broadcast (piggybacked as a type 8 message)."""

    payload: bytes


@dataclass(frozen=True, slots=True)
class UserMessageRequested:
    """Send a user message to a member: UDP best effort, or TCP when ``reliable``."""

    to: str
    payload: bytes
    reliable: bool = False


Input = (
    PacketReceived
    | StreamReceived
    | StreamResponse
    | StreamFailed
    | TimerFired
    | JoinRequested
    | LeaveRequested
    | MetaUpdateRequested
    | BroadcastRequested
    | UserMessageRequested
)


# -------------------------------------------------------------------------------- actions


@dataclass(frozen=True, slots=True)
class SendPacket:
    """Send a UDP datagram. ``data`` is the wire bytes; in fast mode it is None and
    ``messages`` carries the parts, with ``size`` their uncompressed encoded size."""

    dest: Address
    data: bytes | None
    messages: tuple[PacketMessage, ...]
    size: int


@dataclass(frozen=True, slots=True)
class OpenStream:
    """Dial ``dest`` over TCP, write the request, and (if ``expect_reply``) read one reply;
    report :class:`StreamResponse` or :class:`StreamFailed` within ``timeout`` seconds."""

    stream_id: int
    dest: Address
    data: bytes | None
    message: StreamPayload
    size: int
    timeout: float
    expect_reply: bool


@dataclass(frozen=True, slots=True)
class ReplyStream:
    """Write the reply on an inbound stream (then close it)."""

    stream_id: int
    data: bytes | None
    message: StreamPayload
    size: int


@dataclass(frozen=True, slots=True)
class CloseStream:
    """Close an inbound stream without a reply."""

    stream_id: int


@dataclass(frozen=True, slots=True)
class SetTimer:
    """Deliver ``TimerFired(key)`` at time ``at``. Timers are never cancelled: a stale one
    is ignored by the engine when it fires."""

    key: Hashable
    at: float


@dataclass(frozen=True, slots=True)
class MemberEvent:
    kind: EventKind
    member: Member


@dataclass(frozen=True, slots=True)
class UserMessageReceived:
    payload: bytes
    reliable: bool
    source: Address | None


@dataclass(frozen=True, slots=True)
class JoinCompleted:
    token: int
    contacted: int
    errors: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class LeaveCompleted:
    token: int


@dataclass(frozen=True, slots=True)
class MetaUpdateCompleted:
    token: int


@dataclass(frozen=True, slots=True)
class PingCompleted:
    """A probe of ``name`` got an ack: round-trip time and the ack payload (Serf's
    coordinates are built from these)."""

    name: str
    rtt: float
    payload: bytes


Action = (
    SendPacket
    | OpenStream
    | ReplyStream
    | CloseStream
    | SetTimer
    | MemberEvent
    | UserMessageReceived
    | JoinCompleted
    | LeaveCompleted
    | MetaUpdateCompleted
    | PingCompleted
)
