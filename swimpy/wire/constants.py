"""Wire constants of memberlist v0.2.2, each with its source."""

from __future__ import annotations

from enum import IntEnum


class MessageType(IntEnum):
    """First byte of every memberlist message (net.go ``messageType``; append-only)."""

    PING = 0
    INDIRECT_PING = 1
    ACK = 2
    SUSPECT = 3
    ALIVE = 4
    DEAD = 5
    PUSH_PULL = 6
    COMPOUND = 7
    USER = 8
    COMPRESS = 9
    ENCRYPT = 10
    NACK = 11
    HAS_CRC = 12
    ERR = 13
    HAS_LABEL = 244  # upstream >= v0.3.0 only (label.go)


#: memberlist ProtocolVersionMin / ProtocolVersionMax (memberlist.go)
PROTOCOL_VERSION_MIN = 1
PROTOCOL_VERSION_MAX = 5
#: ProtocolVersion2Compatible, the default PCur.
PROTOCOL_VERSION_DEFAULT = 2

#: net.go MetaMaxSize
META_MAX_SIZE = 512
#: net.go compoundHeaderOverhead / compoundOverhead (per part)
COMPOUND_HEADER_OVERHEAD = 2
COMPOUND_PART_OVERHEAD = 2
#: Maximum parts per compound we send: v0.2.2's decoder computes numParts*2 in uint8.
COMPOUND_MAX_PARTS = 127
#: net.go userMsgOverhead
USER_MSG_OVERHEAD = 1
#: net.go maxPushStateBytes: cap for an encrypted stream frame and a push-pull state.
MAX_PUSH_STATE_BYTES = 20 * 1024 * 1024
#: upstream maxPushStateNodes (v0.6.0)
MAX_PUSH_STATE_NODES = 1024 * 1024
#: upstream maxUserMsgBytes
MAX_USER_MSG_BYTES = 20 * 1024 * 1024
#: upstream maxDecompressedBytes
MAX_DECOMPRESSED_BYTES = 40 * 1024 * 1024
#: net_transport.go udpPacketBufSize: largest UDP datagram we read.
UDP_PACKET_BUF_SIZE = 65536
#: label.go LabelMaxSize
LABEL_MAX_SIZE = 255
#: net.go maxPushPullRequests: concurrent inbound push/pulls.
MAX_PUSH_PULL_REQUESTS = 128
#: compressionAlgo lzwAlgo
LZW_ALGO = 0
#: security.go encryption versions
ENCRYPTION_VERSION_MAX = 1
#: security.go nonceSize / GCM tag size / version byte
NONCE_SIZE = 12
TAG_SIZE = 16
VERSION_SIZE = 1
