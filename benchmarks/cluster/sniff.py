"""What the members' packets carry, from a capture on the loopback interface.

The nftables counters (:mod:`cluster.nftcount`) give totals; this splits them: a raw
``AF_PACKET`` socket on ``lo`` (root) sees every datagram and TCP segment the members
send during the steady-state window, and each one is decoded with ``swimpy.wire`` (the
memberlist 0.2.2 codec). That shows Serf's own additions separately:

* the **ack payload**: Serf's ping delegate answers every probe with its network
  coordinate (serf ``ping_delegate.go``, ``AckPayload``); memberlist itself sends acks
  with an empty payload;
* memberlist **user messages**: Serf's own gossip (join and leave intents, user events,
  queries), piggybacked on memberlist's gossip;
* the **user state** in push/pull: Serf's delegate ``LocalState`` (Lamport times, members'
  status, left members, event and query buffers; serf ``delegate.go``).

kinship speaks its own protocol, so its packets count as undecoded (their sizes still
count). The capture runs in the benchmark process; the kernel's drop count for the socket
is reported with it.
"""

from __future__ import annotations

import socket
import struct
import threading
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from swimpy.wire import Ack, UserMsg
from swimpy.wire.errors import WireError
from swimpy.wire.packet import WireOptions, decode_packet_untrusted
from swimpy.wire.stream import PushPull, encode_push_pull, parse_stream_untrusted

ETH_P_ALL = 0x0003
SOL_PACKET = 263
PACKET_STATISTICS = 6
ETH_HEADER = 14
_OPTS = WireOptions()  # plaintext, compression accepted, no label: the benchmark's setup


@dataclass
class UdpTally:
    """Decoded UDP datagrams: counts and bytes by message type."""

    datagrams: int = 0
    payload_bytes: int = 0
    undecoded: int = 0
    undecoded_bytes: int = 0
    messages: Counter[str] = field(default_factory=Counter)
    #: the outer layer of each datagram: a message type, "compound", "compress" or "crc"
    outer: Counter[str] = field(default_factory=Counter)
    acks: int = 0
    ack_payload_bytes: int = 0
    #: memberlist user messages: Serf's own gossip (join/leave intents, user events)
    user_msg_bytes: int = 0


_OUTER = {7: "compound", 9: "compress", 12: "crc"}


def tally_datagram(t: UdpTally, payload: bytes) -> None:
    """Decode one member datagram (UDP payload) into ``t``."""
    t.datagrams += 1
    t.payload_bytes += len(payload)
    if payload:
        t.outer[_OUTER.get(payload[0], "message")] += 1
    try:
        decoded = decode_packet_untrusted(payload, _OPTS)
    except (WireError, ValueError):
        t.undecoded += 1
        t.undecoded_bytes += len(payload)
        return
    if not decoded.messages:
        t.undecoded += 1
        t.undecoded_bytes += len(payload)
        return
    for msg in decoded.messages:
        t.messages[type(msg).__name__] += 1
        if isinstance(msg, Ack):
            t.acks += 1
            t.ack_payload_bytes += len(msg.payload)
        elif isinstance(msg, UserMsg):
            t.user_msg_bytes += len(msg.payload)


def tally_streams(streams: Iterable[bytes]) -> dict[str, Any]:
    """Decode the bytes of each TCP direction of each connection as a stream message."""
    push_pulls = 0
    user_state = 0
    decoded = 0  # push/pull messages re-encoded uncompressed (user state included)
    members = 0
    undecoded = 0
    total = 0
    for data in streams:
        total += len(data)
        try:
            # both directions: the dialer's push/pull and the listener's answer (the dialer
            # sends the label, absent here)
            msg = parse_stream_untrusted(data, _OPTS, expect_label=False)
        except (WireError, ValueError):
            undecoded += 1
            continue
        if isinstance(msg, PushPull):
            push_pulls += 1
            user_state += len(msg.user_state)
            decoded += len(encode_push_pull(msg.join, msg.nodes, msg.user_state))
            members += len(msg.nodes)
        else:
            undecoded += 1
    return {"stream_directions": push_pulls + undecoded, "push_pulls": push_pulls,
            "user_state_bytes": user_state, "decoded_bytes": decoded,
            "user_state_share": round(user_state / decoded, 4) if decoded else 0.0,
            "member_states": members,
            "undecoded": undecoded, "payload_bytes": total}


def parse_frame(frame: bytes) -> tuple[str, int, int, int, int, bytes] | None:
    """(proto, src ip as int, sport, dst ip as int, dport, payload) of an Ethernet/IPv4
    UDP or TCP frame from ``lo``; None for anything else."""
    if len(frame) < ETH_HEADER + 20 or frame[12:14] != b"\x08\x00":
        return None
    ip = frame[ETH_HEADER:]
    ihl = (ip[0] & 0x0F) * 4
    total = struct.unpack_from("!H", ip, 2)[0]
    proto = ip[9]
    src, dst = struct.unpack_from("!II", ip, 12)
    l4 = ip[ihl:total]
    if proto == 17 and len(l4) >= 8:
        sport, dport = struct.unpack_from("!HH", l4, 0)
        return "udp", src, sport, dst, dport, bytes(l4[8:])
    if proto == 6 and len(l4) >= 20:
        sport, dport = struct.unpack_from("!HH", l4, 0)
        offset = (l4[12] >> 4) * 4
        return "tcp", src, sport, dst, dport, bytes(l4[offset:])
    return None


class Sniffer:
    """Capture the members' traffic on ``lo`` in a thread between :meth:`start` and
    :meth:`stop` (which returns the tallies)."""

    def __init__(self, ports: Iterable[int]) -> None:
        self.ports = set(ports)
        self.udp = UdpTally()
        self.tcp: dict[tuple[int, int, int, int], bytearray] = {}
        self._stop = threading.Event()
        self._sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
        self._sock.bind(("lo", 0))
        self._sock.settimeout(0.2)
        self._thread = threading.Thread(target=self._run, name="sniff", daemon=True)

    def start(self) -> Sniffer:
        self._sock.getsockopt(SOL_PACKET, PACKET_STATISTICS, 8)  # reset the counters
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                frame, addr = self._sock.recvfrom(65600)
            except TimeoutError:
                continue
            # lo delivers each packet twice: once outgoing, once incoming; keep one
            if addr[2] != socket.PACKET_OUTGOING:
                continue
            parsed = parse_frame(frame)
            if parsed is None:
                continue
            proto, src, sport, dst, dport, payload = parsed
            if proto == "udp" and sport in self.ports:
                tally_datagram(self.udp, payload)
            elif proto == "tcp" and (sport in self.ports or dport in self.ports) and payload:
                self.tcp.setdefault((src, sport, dst, dport), bytearray()).extend(payload)

    def stop(self) -> dict[str, Any]:
        self._stop.set()
        self._thread.join(timeout=5)
        stats = self._sock.getsockopt(SOL_PACKET, PACKET_STATISTICS, 8)
        self._sock.close()
        packets, drops = struct.unpack("II", stats)
        u = self.udp
        return {
            "udp": {"datagrams": u.datagrams, "payload_bytes": u.payload_bytes,
                    "messages": dict(u.messages), "outer": dict(u.outer), "acks": u.acks,
                    "ack_payload_bytes": u.ack_payload_bytes,
                    "user_msg_bytes": u.user_msg_bytes, "undecoded": u.undecoded,
                    "undecoded_bytes": u.undecoded_bytes},
            "tcp": tally_streams(bytes(b) for b in self.tcp.values()),
            "capture": {"frames_seen": packets, "kernel_drops": drops},
        }
