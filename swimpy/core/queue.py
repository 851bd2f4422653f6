"""memberlist's transmit-limited broadcast queue (queue.go, LIFEGUARD.md §9.1).

Items are ordered by (transmits ascending, size descending, newest first). A broadcast
named after a node invalidates any queued broadcast with the same name, so at most one
alive/suspect/dead message per member waits. Each item is sent at most
``retransmit_limit(mult, n)`` times, with ``n`` evaluated when packets are built.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from swimpy.core.lifeguard import retransmit_limit
from swimpy.wire.messages import PacketMessage


@dataclass(slots=True)
class Broadcast:
    #: node name for memberlist's own messages (invalidation key); None = never invalidated
    name: str | None
    message: PacketMessage
    #: what the engine's codec made of ``message`` for packing into packets: the encoded
    #: bytes (type byte included) with the wire codec, the message itself with the
    #: simulator's object codec
    part: object
    #: encoded size in bytes, type byte included (what counts against the UDP budget)
    size: int
    #: token reported back when the broadcast is finished (sent limit times or replaced)
    notify: int | None = None
    transmits: int = 0
    id: int = 0


@dataclass(slots=True)
class BroadcastQueue:
    retransmit_mult: int
    #: most unnamed (user) broadcasts kept; the most-transmitted are pruned first (Serf's
    #: MaxQueueDepth). Named broadcasts (one per member) are never pruned, as in memberlist.
    max_depth: int = 4096
    _items: list[Broadcast] = field(default_factory=list)
    _by_name: dict[str, Broadcast] = field(default_factory=dict)
    _next_id: int = 0
    _sorted: bool = True
    #: notify tokens of broadcasts finished since the last ``take_finished``
    _finished: list[int] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self._items)

    def queue(self, b: Broadcast) -> None:
        self._next_id += 1
        b.id = self._next_id
        b.transmits = 0
        if b.name is not None:
            old = self._by_name.pop(b.name, None)
            if old is not None:
                self._items.remove(old)
                self._finish(old)
            self._by_name[b.name] = b
        self._items.append(b)
        self._sorted = False
        if len(self._items) - len(self._by_name) > self.max_depth:
            self.prune(self.max_depth)

    def _finish(self, b: Broadcast) -> None:
        if b.notify is not None:
            self._finished.append(b.notify)

    def take_finished(self) -> list[int]:
        out, self._finished = self._finished, []
        return out

    def _sort(self) -> None:
        if not self._sorted:
            self._items.sort(key=lambda b: (b.transmits, -b.size, -b.id))
            self._sorted = True

    def get_broadcasts(
        self, overhead: int, limit: int, num_nodes: int, max_parts: int
    ) -> list[Broadcast]:
        """Pick broadcasts fitting ``limit`` bytes, each costing ``overhead`` more."""
        if not self._items:
            return []
        self._sort()
        tlimit = retransmit_limit(self.retransmit_mult, num_nodes)
        used = 0
        out: list[Broadcast] = []
        for b in self._items:
            free = limit - used - overhead
            if free <= 0 or len(out) >= max_parts:
                break
            if b.size <= free:
                used += overhead + b.size
                out.append(b)
        if not out:
            return out
        done = False
        for b in out:
            b.transmits += 1
            if b.transmits >= tlimit:
                done = True
        if done:
            keep = []
            for b in self._items:
                if b.transmits >= tlimit:
                    if b.name is not None and self._by_name.get(b.name) is b:
                        del self._by_name[b.name]
                    self._finish(b)
                else:
                    keep.append(b)
            self._items = keep
        self._sorted = False
        return out

    def prune(self, max_retain: int) -> None:
        """Keep at most ``max_retain`` unnamed broadcasts, dropping the most-transmitted
        (then oldest) first. Named (membership) broadcasts are kept."""
        unnamed = [b for b in self._items if b.name is None]
        if len(unnamed) <= max_retain:
            return
        self._sort()
        unnamed = [b for b in self._items if b.name is None]
        drop = {id(b) for b in unnamed[max_retain:]}
        keep = []
        for b in self._items:
            if id(b) in drop:
                self._finish(b)
            else:
                keep.append(b)
        self._items = keep

    def reset(self) -> None:
        for b in self._items:
            self._finish(b)
        self._items.clear()
        self._by_name.clear()
