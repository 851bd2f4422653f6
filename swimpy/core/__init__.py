"""SWIM + Lifeguard engine: pure, no I/O (see DESIGN.md).

``Engine`` is driven by ``handle(input, now)`` and ``submit(request, now)``; both return
actions. Everything a driver needs is re-exported here.
"""

from __future__ import annotations

from swimpy.core.actions import (
    Action,
    CloseOutbound,
    CloseStream,
    JoinCompleted,
    LeaveCompleted,
    MemberEvent,
    MetaUpdateCompleted,
    OpenStream,
    PingCompleted,
    ReplyStream,
    RequestFailed,
    SendPacket,
    SetTimer,
    UserMessageReceived,
    UserMessageSent,
)
from swimpy.core.codec import Codec, ObjectCodec, WireCodec
from swimpy.core.delegate import Delegate
from swimpy.core.engine import Engine
from swimpy.core.inputs import (
    BroadcastRequested,
    ConnectionClosed,
    ConnId,
    GossipVerifyRequested,
    Input,
    InstallKeyRequested,
    JoinRequested,
    LeaveRequested,
    MetaUpdateRequested,
    PacketReceived,
    RemoveKeyRequested,
    Request,
    StreamFailed,
    StreamId,
    StreamReceived,
    StreamResponse,
    StreamSent,
    TimerFired,
    UseKeyRequested,
    UserMessageRequested,
)
from swimpy.core.member import Address, EventKind, Member, State, decode_serf_tags, encode_serf_tags
from swimpy.core.snapshot import Membership, Statistics
from swimpy.core.table import MemberBase
from swimpy.core.timers import Timer

__all__ = [
    "Action",
    "Address",
    "BroadcastRequested",
    "CloseOutbound",
    "CloseStream",
    "Codec",
    "ConnId",
    "ConnectionClosed",
    "Delegate",
    "Engine",
    "EventKind",
    "GossipVerifyRequested",
    "Input",
    "InstallKeyRequested",
    "JoinCompleted",
    "JoinRequested",
    "LeaveCompleted",
    "LeaveRequested",
    "Member",
    "MemberBase",
    "MemberEvent",
    "Membership",
    "MetaUpdateCompleted",
    "MetaUpdateRequested",
    "ObjectCodec",
    "OpenStream",
    "PacketReceived",
    "PingCompleted",
    "RemoveKeyRequested",
    "ReplyStream",
    "Request",
    "RequestFailed",
    "SendPacket",
    "SetTimer",
    "State",
    "Statistics",
    "StreamFailed",
    "StreamId",
    "StreamReceived",
    "StreamResponse",
    "StreamSent",
    "Timer",
    "TimerFired",
    "UseKeyRequested",
    "UserMessageReceived",
    "UserMessageRequested",
    "UserMessageSent",
    "WireCodec",
    "decode_serf_tags",
    "encode_serf_tags",
]
