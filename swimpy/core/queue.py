"""memberlist's transmit-limited broadcast queue (queue.go, LIFEGUARD.md §9.1).

Items are ordered by (transmits ascending, size descending, newest first). A broadcast
named after a node invalidates any queued broadcast with the same name, so at most one
alive/suspect/dead message per member waits. Each item is sent at most
``retransmit_limit(mult, n)`` times, with ``n`` evaluated when packets are built.

memberlist keeps ``TransmitLimitedQueue`` in a btree keyed by that order and, per transmit
tier, seeks the first broadcast that fits the space left in the packet instead of scanning
the queue. We do the same with the standard library: the queue is a set of *tiers* (one
per transmit count) and each tier maps a size to the broadcasts of that size, oldest
first, next to a sorted list of the distinct sizes present (sizes are below the UDP
budget, so a tier has at most a few hundred of them). Finding "the largest, then newest,
broadcast of this tier that fits ``free`` bytes" is one ``bisect`` and a look at the end of
a list; keeping the order costs ``O(log n)`` per queued or re-tiered broadcast instead of
a full sort per gossip tick.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right, insort
from collections.abc import Iterator
from dataclasses import dataclass, field
from operator import attrgetter

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


#: sort key of a size bucket (ids are unique within a queue and grow with each ``queue``)
_by_id = attrgetter("id")


@dataclass(slots=True)
class _Tier:
    """The broadcasts sent ``transmits`` times so far: memberlist's btree range
    ``[(transmits, +inf, +inf), (transmits + 1, +inf, +inf))``."""

    #: distinct sizes present, ascending (every one has a non-empty bucket)
    sizes: list[int] = field(default_factory=list)
    #: size -> broadcasts of that size, ascending id: the newest is last
    buckets: dict[int, list[Broadcast]] = field(default_factory=dict)


@dataclass(slots=True)
class BroadcastQueue:
    retransmit_mult: int
    #: most unnamed (user) broadcasts kept; the most-transmitted are pruned first (Serf's
    #: MaxQueueDepth). Named broadcasts (one per member) are never pruned, as in memberlist.
    max_depth: int = 4096
    #: transmit count -> its tier; only non-empty tiers are kept
    _tiers: dict[int, _Tier] = field(default_factory=dict)
    #: keys of ``_tiers``, ascending (few: at most the retransmit limit plus stragglers)
    _levels: list[int] = field(default_factory=list)
    _count: int = 0
    #: name -> the queued broadcast with that name (memberlist's ``tm``)
    _by_name: dict[str, Broadcast] = field(default_factory=dict)
    _next_id: int = 0
    #: notify tokens of broadcasts finished since the last ``take_finished``
    _finished: list[int] = field(default_factory=list)

    def __len__(self) -> int:
        return self._count

    @property
    def _items(self) -> list[Broadcast]:
        """Every queued broadcast in queue order (a snapshot, for tests and debugging)."""
        return list(self._walk())

    # ------------------------------------------------------------------ bookkeeping

    def _walk(self) -> list[Broadcast]:
        """Queue order: transmits ascending, size descending, id descending."""
        out: list[Broadcast] = []
        for t in self._levels:
            out.extend(self._walk_tier(t))
        return out

    def _walk_tier(self, t: int) -> list[Broadcast]:
        tier = self._tiers[t]
        out: list[Broadcast] = []
        for size in reversed(tier.sizes):
            out.extend(reversed(tier.buckets[size]))
        return out

    def _walk_backwards(self) -> Iterator[Broadcast]:
        """Queue order reversed: most transmits, smallest, oldest first."""
        for t in reversed(self._levels):
            tier = self._tiers[t]
            for size in tier.sizes:
                yield from tier.buckets[size]

    def _insert(self, b: Broadcast) -> None:
        """File ``b`` under its (transmits, size, id); memberlist's ``addItem``."""
        tier = self._tiers.get(b.transmits)
        if tier is None:
            tier = self._tiers[b.transmits] = _Tier()
            insort(self._levels, b.transmits)
        bucket = tier.buckets.get(b.size)
        if bucket is None:
            tier.buckets[b.size] = [b]
            insort(tier.sizes, b.size)
        elif bucket[-1].id < b.id:
            bucket.append(b)  # always the case for a fresh broadcast (newest id)
        else:
            # a broadcast moving up a tier can be older than ones already there
            insort(bucket, b, key=_by_id)
        self._count += 1

    def _find(self, b: Broadcast) -> tuple[_Tier, list[Broadcast], int] | None:
        """Where ``b`` is filed under its current key, or None if it is not queued."""
        tier = self._tiers.get(b.transmits)
        if tier is None:
            return None
        bucket = tier.buckets.get(b.size)
        if bucket is None:
            return None
        i = bisect_left(bucket, b.id, key=_by_id)
        if i == len(bucket) or bucket[i] is not b:
            return None
        return tier, bucket, i

    def _remove(self, b: Broadcast) -> None:
        """Unfile ``b`` (which must be queued); memberlist's ``deleteItem`` without the
        name map, which callers handle."""
        found = self._find(b)
        if found is None:
            raise AssertionError(f"broadcast {b.id} is not queued")
        tier, bucket, i = found
        del bucket[i]
        if not bucket:
            self._drop_size(b.transmits, tier, b.size)
        self._count -= 1

    def _drop_size(self, transmits: int, tier: _Tier, size: int) -> None:
        """Forget an emptied bucket, and its tier if that was the last bucket."""
        del tier.buckets[size]
        del tier.sizes[bisect_left(tier.sizes, size)]
        if not tier.sizes:
            del self._tiers[transmits]
            del self._levels[bisect_left(self._levels, transmits)]

    def _finish(self, b: Broadcast) -> None:
        if b.notify is not None:
            self._finished.append(b.notify)

    def _unname(self, b: Broadcast) -> None:
        if b.name is not None and self._by_name.get(b.name) is b:
            del self._by_name[b.name]

    # ------------------------------------------------------------------ public API

    def queue(self, b: Broadcast) -> None:
        """Queue ``b`` fresh (0 transmits, newest id); memberlist's ``queueBroadcast``.

        A named broadcast finishes and replaces the queued one with the same name. ``b``
        must be a new object or one no longer queued (re-queueing a named broadcast that
        is still queued replaces it, as before).
        """
        if b.name is not None:
            # Unfile the old one under its current key before ``b`` (possibly the same
            # object) gets a new id and transmit count.
            old = self._by_name.pop(b.name, None)
            if old is not None:
                self._remove(old)
                self._finish(old)
            self._by_name[b.name] = b
        elif self._find(b) is not None:
            raise ValueError(f"broadcast {b.id} is already queued")
        self._next_id += 1
        b.id = self._next_id
        b.transmits = 0
        self._insert(b)
        if self._count - len(self._by_name) > self.max_depth:
            self.prune(self.max_depth)

    def take_finished(self) -> list[int]:
        out, self._finished = self._finished, []
        return out

    def get_broadcasts(
        self, overhead: int, limit: int, num_nodes: int, max_parts: int
    ) -> list[Broadcast]:
        """Pick broadcasts fitting ``limit`` bytes, each costing ``overhead`` more.

        The result is what a walk over the whole queue in order gives when it takes
        every broadcast whose size fits ``limit - used - overhead`` and stops once that is
        ``<= 0`` or ``max_parts`` were taken. Walking a tier in (size desc, id desc) order,
        a broadcast skipped for its size stays too big (the free space only shrinks), so
        the next one taken is always the largest-then-newest of the tier that fits:
        memberlist's ``AscendRange`` from ``(transmits, free, MaxInt64)``, here a
        ``bisect`` over the tier's sizes. The picked broadcasts of one size are the newest
        of their bucket, i.e. its tail.
        """
        if not self._count:
            return []
        tlimit = retransmit_limit(self.retransmit_mult, num_nodes)
        used = 0
        out: list[Broadcast] = []
        stop = False
        for t in self._levels:
            free = limit - used - overhead
            if free <= 0 or len(out) >= max_parts:
                break
            tier = self._tiers[t]
            sizes = tier.sizes
            hi = bisect_right(sizes, free)  # sizes[:hi] fit
            while hi:
                hi -= 1
                size = sizes[hi]
                bucket = tier.buckets[size]
                j = len(bucket)
                while j and free > 0 and size <= free and len(out) < max_parts:
                    j -= 1
                    out.append(bucket[j])
                    used += overhead + size
                    free = limit - used - overhead
                if free <= 0 or len(out) >= max_parts:
                    stop = True
                    break
                hi = bisect_right(sizes, free, 0, hi)  # smaller sizes that still fit
            if stop:
                break
        if not out:
            return out

        # ``out`` is in queue order, so its last item has the most transmits.
        if out[-1].transmits + 1 < tlimit:
            self._retier(out)
            return out

        # Some pick reached the limit: every queued broadcast with transmits >= tlimit
        # afterwards is finished, reported in queue order as it was before the picks
        # were counted. That is the picks from tier tlimit - 1, then all of the tiers
        # >= tlimit (picked or not), tier by tier.
        below = [b for b in out if b.transmits < tlimit]
        for b in below:
            if b.transmits + 1 >= tlimit:
                self._finish(b)
        for t in [t for t in self._levels if t >= tlimit]:
            for b in self._walk_tier(t):
                self._unname(b)
                self._finish(b)
                self._count -= 1
            del self._tiers[t]
        del self._levels[bisect_left(self._levels, tlimit) :]
        for b in out:
            if b.transmits >= tlimit:  # left with its tier above
                b.transmits += 1
        self._retier(below, tlimit)
        return out

    def _retier(self, picked: list[Broadcast], tlimit: int | None = None) -> None:
        """Count one more transmit for each picked broadcast and refile it one tier up,
        or drop it (already reported as finished) if that reaches ``tlimit``.

        All picks are unfiled before any is refiled, so that one moved into the next
        tier is not mistaken for a pick of that tier (memberlist's delayed reinsert).
        """
        for b in picked:
            # picks of one size come newest first, i.e. from the end of their bucket
            tier = self._tiers[b.transmits]
            bucket = tier.buckets[b.size]
            popped = bucket.pop()
            assert popped is b
            if not bucket:
                self._drop_size(b.transmits, tier, b.size)
            self._count -= 1
        for b in picked:
            b.transmits += 1
            if tlimit is not None and b.transmits >= tlimit:
                self._unname(b)
            else:
                self._insert(b)

    def prune(self, max_retain: int) -> None:
        """Keep at most ``max_retain`` unnamed broadcasts: the first ones in queue order,
        so the most-transmitted, then smallest, then oldest go first (finished in queue
        order). Named (membership) broadcasts are kept."""
        unnamed = self._count - len(self._by_name)
        if unnamed <= max_retain:
            return
        # The number kept is ``len(unnamed_in_order[:max_retain])``: a negative
        # ``max_retain`` counts from the end, as the list slice it replaces did.
        keep = max_retain if max_retain >= 0 else max(unnamed + max_retain, 0)
        n_drop = unnamed - keep
        # Walk the queue backwards, as memberlist's Prune takes ``tq.Max()`` repeatedly;
        # named broadcasts on the way are skipped (at most one per member).
        drop: list[Broadcast] = []
        for b in self._walk_backwards():
            if b.name is None:
                drop.append(b)
                if len(drop) >= n_drop:
                    break
        drop.reverse()
        for b in drop:
            self._remove(b)
            self._finish(b)

    def reset(self) -> None:
        """Finish every queued broadcast in queue order and empty the queue (memberlist's
        ``Reset``, for tests)."""
        for b in self._walk():
            self._finish(b)
        self._tiers.clear()
        self._levels.clear()
        self._by_name.clear()
        self._count = 0
