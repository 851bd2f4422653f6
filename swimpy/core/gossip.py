"""Dissemination: the transmit-limited broadcast queue, piggybacking on every message we
send (``encodeAndSendMsg``), and the gossip ticker (``gossip``). memberlist state.go /
net.go; LIFEGUARD.md §9."""

from __future__ import annotations

import math
from operator import attrgetter

from swimpy.core.delegate import Hooks
from swimpy.core.member import Address, Member, State
from swimpy.core.members import Members
from swimpy.core.net import Net
from swimpy.core.outbox import Outbox
from swimpy.core.queue import Broadcast, BroadcastQueue
from swimpy.core.timers import GOSSIP_TICK
from swimpy.profiles import Config
from swimpy.wire.constants import (
    COMPOUND_HEADER_OVERHEAD,
    COMPOUND_MAX_PARTS,
    COMPOUND_PART_OVERHEAD,
    USER_MSG_OVERHEAD,
)
from swimpy.wire.messages import PacketMessage, UserMsg

#: memberlist's ProtocolVersion from which a peer understands CRC-checked packets.
CRC_MIN_PROTOCOL = 5

_PART = attrgetter("part")
_SIZE = attrgetter("size")


class Gossip:
    """Owns the broadcast queue. ``members`` is attached by the engine after both exist
    (the merge rules queue broadcasts here; gossip picks its targets from the table)."""

    members: Members

    def __init__(self, config: Config, outbox: Outbox, net: Net, hooks: Hooks) -> None:
        self.config = config
        self._out = outbox
        self._net = net
        self._codec = net.codec
        self._hooks = hooks
        self.queue = BroadcastQueue(config.retransmit_mult)
        #: the engine's clock at the input being handled (set by the engine)
        self.now = 0.0
        self._idle = False
        self._idle_next = 0.0

    # ------------------------------------------------------------------ queueing

    def broadcast(self, name: str | None, msg: PacketMessage, notify: int | None = None) -> None:
        part, size = self._net.codec.encode_part(msg)
        self.queue.queue(Broadcast(name, msg, part, size, notify))
        if self._idle:
            self._wake()

    def _wake(self) -> None:
        """Resume the idle gossip ticker at its next tick at or after now."""
        self._idle = False
        interval = self.config.gossip_interval
        at = self._idle_next
        if self.now > at:
            at += math.ceil((self.now - at) / interval) * interval
        self._out.timer(GOSSIP_TICK, at)

    def piggyback(self, overhead: int, limit: int, max_parts: int) -> list[Broadcast]:
        """memberlist ``getBroadcasts``: queued broadcasts, then the delegate's."""
        out = self.queue.get_broadcasts(overhead, limit, self.members.num_nodes, max_parts)
        if self._hooks.get_broadcasts is None:
            return out
        used = sum(overhead + b.size for b in out)
        remaining = limit - used
        if remaining > overhead + USER_MSG_OVERHEAD and len(out) < max_parts:
            extra: list[bytes] = self._hooks.call("get_broadcasts", [], overhead + USER_MSG_OVERHEAD,
                                     remaining)
            for payload in extra:
                if len(out) >= max_parts:
                    break
                m = UserMsg(bytes(payload))
                part, size = self._net.codec.encode_part(m)
                out.append(Broadcast(None, m, part, size))
        return out

    # ------------------------------------------------------------------ sending

    def send_msg(self, dest: Address, msg: PacketMessage) -> None:
        """``encodeAndSendMsg``: one message with as many broadcasts piggybacked as fit.
        v0.2.2's sendMsg passes no node, so no CRC on pings, acks, nacks (WIRE.md §5.1)."""
        part, n = self._codec.encode_part(msg)
        if not len(self.queue) and self._hooks.get_broadcasts is None:
            # nothing to piggyback (most pings and acks of a quiet cluster)
            self._net.send_part(dest, part, n)
            return
        avail = self.config.udp_buffer_size - n - COMPOUND_HEADER_OVERHEAD
        avail -= self._net.wire.packet_overhead()
        bcasts = self.piggyback(COMPOUND_PART_OVERHEAD, avail, COMPOUND_MAX_PARTS - 1)
        parts = [part]
        sizes = [n]
        for b in bcasts:
            parts.append(b.part)
            sizes.append(b.size)
        self._net.send(dest, parts, sizes, crc=False)

    # ------------------------------------------------------------------ the ticker

    def start(self, now: float, stagger: float) -> None:
        c = self.config
        if c.gossip_interval > 0 and c.gossip_nodes > 0:
            self._out.timer(GOSSIP_TICK, now + stagger + c.gossip_interval)

    def tick(self, now: float) -> None:
        c = self.config
        if not len(self.queue) and self._hooks.get_broadcasts is None:
            # Nothing to gossip: stop ticking until something is queued, then resume on
            # the same tick grid (saves a timer event per interval when idle).
            self._idle_next = now + c.gossip_interval
            self._idle = True
            return
        self._out.timer(GOSSIP_TICK, now + c.gossip_interval)
        self._gossip(now)

    def _gossip(self, now: float) -> None:
        gttd = self.config.gossip_to_the_dead_time
        me = self.config.name

        def ok(m: Member) -> bool:
            if m.name == me or m.state == State.LEFT:
                return False
            return not (m.state == State.DEAD and now - m.state_change > gttd)

        targets = self.members.k_random(self.config.gossip_nodes, ok)
        avail = self.config.udp_buffer_size - COMPOUND_HEADER_OVERHEAD
        avail -= self._net.wire.packet_overhead()
        stats = self._out.stats
        for t in targets:
            bcasts = self.piggyback(COMPOUND_PART_OVERHEAD, avail, COMPOUND_MAX_PARTS)
            if not bcasts:
                return
            stats["gossip_packets"] += 1
            # (map with attrgetter: no comprehension function called per packet)
            self._net.send(
                t.address,
                list(map(_PART, bcasts)),
                list(map(_SIZE, bcasts)),
                crc=t.pmax >= CRC_MIN_PROTOCOL,
            )
