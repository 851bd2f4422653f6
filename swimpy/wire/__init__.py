"""memberlist v0.2.2 wire format: messages, packet layers, TCP stream framing. Pure, no I/O."""

from __future__ import annotations

from swimpy.wire.constants import MessageType
from swimpy.wire.errors import NeedMoreData, WireError
from swimpy.wire.messages import (
    Ack,
    Alive,
    Compress,
    Dead,
    Err,
    IndirectPing,
    Message,
    Nack,
    PacketMessage,
    Ping,
    PushNodeState,
    PushPullHeader,
    Suspect,
    UserMsg,
    UserMsgHeader,
    decode_message_untrusted,
    encode_message,
)
from swimpy.wire.stream import (
    NEED_DATA,
    NeedData,
    PushPull,
    StreamMessage,
    StreamReader,
    UserStream,
    parse_stream_untrusted,
)

__all__ = [
    "NEED_DATA",
    "Ack",
    "Alive",
    "Compress",
    "Dead",
    "Err",
    "IndirectPing",
    "Message",
    "MessageType",
    "Nack",
    "NeedData",
    "NeedMoreData",
    "PacketMessage",
    "Ping",
    "PushNodeState",
    "PushPull",
    "PushPullHeader",
    "StreamMessage",
    "StreamReader",
    "Suspect",
    "UserMsg",
    "UserMsgHeader",
    "UserStream",
    "WireError",
    "decode_message_untrusted",
    "encode_message",
    "parse_stream_untrusted",
]
