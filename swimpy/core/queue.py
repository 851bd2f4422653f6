"""memberlist's transmit-limited broadcast queue (queue.go, LIFEGUARD.md §9.1).

Items are ordered by (transmits ascending, size descending, newest first). A broadcast
named after a node invalidates any queued broadcast with the same name, so at most one
alive/suspect/dead message per member waits. Each item is sent at most
``retransmit_limit(mult, n)`` times, with ``n`` evaluated when packets are built.

memberlist keeps ``TransmitLimitedQueue`` in a btree keyed by that order and, per transmit
tier, seeks the first broadcast that fits the space left in the packet (``AscendRange``
from ``(transmits, free, MaxInt64)``) instead of scanning the queue. We do the same with
the standard library: one *tier* per transmit count, each a list kept sorted by an integer
key encoding (size descending, id descending), with a parallel list of the broadcasts.
"The largest, then newest, broadcast of this tier that fits ``free`` bytes" is one
``bisect``; keeping the order costs a ``bisect`` and a list insert per queued or re-tiered
broadcast instead of a full sort with a Python key function on every gossip tick.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterator
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


#: ids are below 2**63 (memberlist's idGen is an int64); in a tier key they sit below the size
_ID_BITS = 64
_ID_MAX = (1 << _ID_BITS) - 1


def _tier_key(size: int, id_: int) -> int:
    """Position in a tier: ascending keys are memberlist's ``limitedBroadcast.Less`` order
    within one transmit count (size descending, then id descending)."""
    return -((size << _ID_BITS) | id_)


def _fit_key(free: int) -> int:
    """The least tier key of a broadcast of at most ``free`` bytes: every key at or after
    it is such a broadcast (``greaterOrEqual`` in memberlist's GetBroadcasts)."""
    return -((free << _ID_BITS) | _ID_MAX)


@dataclass(slots=True)
class _Tier:
    """The broadcasts sent ``transmits`` times so far: memberlist's btree range
    ``[(transmits, +inf, +inf), (transmits + 1, +inf, +inf))``."""

    #: ``_tier_key`` of each broadcast, ascending
    keys: list[int] = field(default_factory=list)
    #: the broadcasts, in the same order: queue order within the tier
    items: list[Broadcast] = field(default_factory=list)


@dataclass(slots=True)
class BroadcastQueue:
    retransmit_mult: int
    #: most unnamed (user) broadcasts kept; the most-transmitted are pruned first (Serf's
    #: MaxQueueDepth). Named broadcasts (one per member) are never pruned, as in memberlist.
    max_depth: int = 4096
    #: transmit count -> its tier; only non-empty tiers are kept
    _tiers: dict[int, _Tier] = field(default_factory=dict)
    #: keys of ``_tiers``, ascending (few: up to the retransmit limit, plus stragglers
    #: left over a limit that has since dropped)
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
        out: list[Broadcast] = []
        for t in self._levels:
            out.extend(self._tiers[t].items)
        return out

    # ------------------------------------------------------------------ bookkeeping

    def _insert(self, b: Broadcast) -> None:
        """File ``b`` under its (transmits, size, id); memberlist's ``addItem``."""
        tier = self._tiers.get(b.transmits)
        if tier is None:
            tier = self._tiers[b.transmits] = _Tier()
            self._levels.insert(bisect_left(self._levels, b.transmits), b.transmits)
        key = _tier_key(b.size, b.id)
        i = bisect_left(tier.keys, key)
        tier.keys.insert(i, key)
        tier.items.insert(i, b)
        self._count += 1

    def _find(self, b: Broadcast) -> tuple[_Tier, int] | None:
        """Where ``b`` is filed under its current key, or None if it is not queued."""
        tier = self._tiers.get(b.transmits)
        if tier is None:
            return None
        i = bisect_left(tier.keys, _tier_key(b.size, b.id))
        if i == len(tier.items) or tier.items[i] is not b:
            return None
        return tier, i

    def _remove(self, b: Broadcast) -> None:
        """Unfile ``b`` (which must be queued); memberlist's ``deleteItem`` without the
        name map, which callers handle."""
        found = self._find(b)
        if found is None:
            raise AssertionError(f"broadcast {b.id} is not queued")
        tier, i = found
        del tier.keys[i]
        del tier.items[i]
        if not tier.items:
            self._drop_tier(b.transmits)
        self._count -= 1

    def _drop_tier(self, t: int) -> None:
        del self._tiers[t]
        del self._levels[bisect_left(self._levels, t)]

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
        is still queued replaces it, as before; an unnamed one is refused).
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
        ``<= 0`` or ``max_parts`` were taken. Within a tier (size desc, id desc) a
        broadcast skipped for its size stays too big (the free space only shrinks), so
        the next one taken is always the first of the tier, from the last pick on, that
        fits: the one right after the last pick if it fits, else found by ``bisect``
        (memberlist's ``AscendRange`` per tier).
        """
        if not self._count:
            return []
        tlimit = retransmit_limit(self.retransmit_mult, num_nodes)
        used = 0
        out: list[Broadcast] = []
        #: (tier, indices picked from it, ascending), in tier order
        picked: list[tuple[int, list[int]]] = []
        free = limit - overhead
        for t in self._levels:
            if free <= 0 or len(out) >= max_parts:
                break
            tier = self._tiers[t]
            keys, items = tier.keys, tier.items
            n = len(items)
            i = bisect_left(keys, _fit_key(free))
            if i == n:
                continue
            idx: list[int] = []
            picked.append((t, idx))
            while True:
                b = items[i]
                out.append(b)
                idx.append(i)
                used += overhead + b.size
                free = limit - used - overhead
                if free <= 0 or len(out) >= max_parts:
                    break
                i += 1
                if i == n:
                    break
                if items[i].size > free:
                    i = bisect_left(keys, _fit_key(free), i)
                    if i == n:
                        break
        if not out:
            return out

        # ``out`` is in queue order, so its last item has the most transmits.
        if out[-1].transmits + 1 < tlimit:
            self._retier(picked)
            return out

        # Some pick reached the limit: every queued broadcast with transmits >= tlimit
        # afterwards is finished, reported in queue order as it was before the picks
        # were counted. That is the picks from tier tlimit - 1, then all of the tiers
        # >= tlimit (picked or not), tier by tier.
        for b in out:
            if b.transmits + 1 == tlimit:
                self._finish(b)
        for t in self._levels[bisect_left(self._levels, tlimit) :]:
            for b in self._tiers.pop(t).items:
                self._unname(b)
                self._finish(b)
                self._count -= 1
        del self._levels[bisect_left(self._levels, tlimit) :]
        for b in out:
            if b.transmits >= tlimit:  # gone with its tier
                b.transmits += 1
        self._retier([(t, idx) for t, idx in picked if t < tlimit], tlimit)
        return out

    def _retier(self, picked: list[tuple[int, list[int]]], tlimit: int | None = None) -> None:
        """Count one more transmit for each picked broadcast and refile it one tier up,
        or drop it (already reported as finished) if that reaches ``tlimit``.

        All picks are unfiled before any is refiled, so that one moved into the next
        tier is not mistaken for a pick of that tier (memberlist delays its reinserts
        for the same reason).
        """
        moved: list[Broadcast] = []
        for t, idx in picked:
            tier = self._tiers[t]
            keys, items = tier.keys, tier.items
            first, last = idx[0], idx[-1]
            if last - first + 1 == len(idx):  # one run (typical: the tier's head)
                moved.extend(items[first : last + 1])
                del keys[first : last + 1]
                del items[first : last + 1]
            else:
                moved.extend(items[i] for i in idx)
                for i in reversed(idx):
                    del keys[i]
                    del items[i]
            if not items:
                self._drop_tier(t)
        self._count -= len(moved)
        for b in moved:
            b.transmits += 1
            if tlimit is not None and b.transmits >= tlimit:
                self._unname(b)
            else:
                self._insert(b)

    def _walk_backwards(self) -> Iterator[Broadcast]:
        """Queue order reversed: most transmits, smallest, oldest first."""
        for t in reversed(self._levels):
            yield from reversed(self._tiers[t].items)

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
        for b in self._items:
            self._finish(b)
        self._tiers.clear()
        self._levels.clear()
        self._by_name.clear()
        self._count = 0
