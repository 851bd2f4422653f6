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
broadcast instead of a full sort with a Python key function on every gossip tick. When the
whole queue fits in the packet (small clusters), the tiers simply move up by one.

The picks, their order and the finished tokens are exactly those of the sort-and-scan
queue this replaced; ``tests/core/test_queue.py`` checks that against a copy of it.
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


#: Ids count ``queue`` calls from 1, so they stay far below 2**64 (memberlist's idGen is an
#: int64); a tier key puts the size above them.
_ID_BITS = 64
_ID_MAX = (1 << _ID_BITS) - 1


def _tier_key(size: int, id_: int) -> int:
    """Position in a tier: ascending keys are memberlist's ``limitedBroadcast.Less`` order
    within one transmit count (size descending, then id descending)."""
    return -((size << _ID_BITS) | id_)


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
    #: ``_tiers[t]``: the broadcasts sent ``t`` times. Empty tiers below the top one are
    #: kept (there are few: transmits stay below the highest retransmit limit seen), so
    #: broadcasts move between tiers without creating and dropping them.
    _tiers: list[_Tier] = field(default_factory=list)
    _count: int = 0
    #: total ``size`` of the queued broadcasts
    _bytes: int = 0
    #: name -> the queued broadcast with that name (memberlist's ``tm``)
    _by_name: dict[str, Broadcast] = field(default_factory=dict)
    _next_id: int = 0
    #: ``(num_nodes, retransmit_limit(retransmit_mult, num_nodes))`` of the last
    #: ``get_broadcasts`` (the cluster size rarely changes between two packets)
    _limit_for: tuple[int, int] = (-1, 0)
    #: a few empty tiers to reuse (``_take_all`` needs a new tier 0 every time)
    _free: list[_Tier] = field(default_factory=list)
    #: notify tokens of broadcasts finished since the last ``take_finished`` (callers
    #: only read it; it stays the same list object, so an owner may keep a reference and
    #: test it after every input without a call)
    finished: list[int] = field(default_factory=list)

    def __len__(self) -> int:
        return self._count

    @property
    def _items(self) -> list[Broadcast]:
        """Every queued broadcast in queue order (a snapshot, for tests and debugging)."""
        out: list[Broadcast] = []
        for tier in self._tiers:
            out.extend(tier.items)
        return out

    # ------------------------------------------------------------------ bookkeeping

    def _trim(self) -> None:
        """Drop empty tiers at the top, so walks stop at the last broadcast."""
        tiers = self._tiers
        while tiers and not tiers[-1].items:
            tier = tiers.pop()
            if len(self._free) < 4:
                self._free.append(tier)  # empty: its keys go with its items

    def _find(self, b: Broadcast) -> tuple[_Tier, int] | None:
        """Where ``b`` is filed under its current key, or None if it is not queued."""
        if not 0 <= b.transmits < len(self._tiers):
            return None
        tier = self._tiers[b.transmits]
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
        del tier.keys[i], tier.items[i]
        self._count -= 1
        self._bytes -= b.size
        self._trim()

    def _finish(self, b: Broadcast) -> None:
        if b.notify is not None:
            self.finished.append(b.notify)

    def _unname(self, b: Broadcast) -> None:
        if b.name is not None and self._by_name.get(b.name) is b:
            del self._by_name[b.name]

    # ------------------------------------------------------------------ public API

    def queue(self, b: Broadcast) -> None:
        """Queue ``b`` fresh (0 transmits, newest id); memberlist's ``queueBroadcast``.

        A named broadcast finishes and replaces the queued one with the same name. ``b``
        must be a new object or one no longer queued (re-queueing a named broadcast that
        is still queued replaces it, as before; an unnamed one is refused). Its size must
        be positive: every message has at least its type byte.
        """
        if b.size <= 0:
            raise ValueError(f"broadcast size must be positive, not {b.size}")
        tiers = self._tiers
        name = b.name
        if name is not None:
            old = self._by_name.pop(name, None)
            if old is not None:
                # Unfile it (memberlist's ``deleteItem``) under its current key, before
                # ``b`` (possibly the same object) gets a new id and transmit count.
                t = old.transmits
                tier = tiers[t]
                i = bisect_left(tier.keys, _tier_key(old.size, old.id))
                if tier.items[i] is not old:
                    raise AssertionError(f"broadcast {old.id} is not queued")
                del tier.keys[i], tier.items[i]
                self._count -= 1
                self._bytes -= old.size
                if t == len(tiers) - 1:
                    self._trim()
                if old.notify is not None:
                    self.finished.append(old.notify)
            self._by_name[name] = b
        elif self._find(b) is not None:
            raise ValueError(f"broadcast {b.id} is already queued")
        self._next_id = bid = self._next_id + 1
        b.id = bid
        b.transmits = 0
        # file it in tier 0 (memberlist's ``addItem``)
        if not tiers:
            tiers.append(_Tier())
        tier = tiers[0]
        key = _tier_key(b.size, bid)
        i = bisect_left(tier.keys, key)
        tier.keys.insert(i, key)
        tier.items.insert(i, b)
        self._count += 1
        self._bytes += b.size
        if self._count - len(self._by_name) > self.max_depth:
            self.prune(self.max_depth)

    @property
    def has_finished(self) -> bool:
        """Whether ``take_finished`` would return anything (checked after every input)."""
        return bool(self.finished)

    def take_finished(self) -> list[int]:
        out = self.finished[:]
        self.finished.clear()
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
        n, tlimit = self._limit_for
        if n != num_nodes:
            tlimit = retransmit_limit(self.retransmit_mult, num_nodes)
            self._limit_for = (num_nodes, tlimit)
        if (
            self._count <= max_parts
            and overhead >= 0
            and self._bytes + self._count * overhead <= limit
        ):
            # Everything fits: with sizes > 0 (``queue`` refuses others) and overhead
            # >= 0, the bytes used before a broadcast plus its own stay within the total,
            # so the walk finds room (and ``free > 0``) for each in turn.
            return self._take_all(tlimit)
        out: list[Broadcast] = []
        take = out.append
        #: (tier, [(start, stop) index ranges picked from it, ascending]), in tier order
        picked: list[tuple[int, list[tuple[int, int]]]] = []
        free = limit - overhead  # ``limit - used - overhead``
        parts = max_parts  # parts left
        for t, tier in enumerate(self._tiers):
            if free <= 0 or parts <= 0:
                break
            keys = tier.keys
            n = len(keys)
            i = bisect_left(keys, -((free << _ID_BITS) | _ID_MAX))  # first that fits
            if i == n:
                continue
            items = tier.items
            runs: list[tuple[int, int]] = []
            start = i
            while True:
                b = items[i]
                take(b)
                free -= overhead + b.size
                parts -= 1
                i += 1
                if free <= 0 or parts <= 0 or i == n:
                    break
                if items[i].size > free:  # skip to the next one that fits, if any
                    j = bisect_left(keys, -((free << _ID_BITS) | _ID_MAX), i)
                    if j == n:
                        break
                    runs.append((start, i))
                    start = i = j
            runs.append((start, i))
            picked.append((t, runs))
        if not out:
            return out

        # ``out`` is in queue order, so its last item has the most transmits.
        if out[-1].transmits + 1 < tlimit:
            self._retier(picked, None)
            return out

        # Some pick reached the limit: every queued broadcast with transmits >= tlimit
        # afterwards is finished, reported in queue order as it was before the picks
        # were counted. That is the picks from tier tlimit - 1, then all of the tiers
        # >= tlimit (picked or not), tier by tier. (memberlist finishes only the picks
        # that reach the limit; the two differ only for broadcasts left over a limit
        # that has dropped since, and swimpy's traces depend on this behaviour.)
        for b in out:
            if b.transmits + 1 == tlimit:
                self._finish(b)
        top = max(tlimit, 0)
        for tier in self._tiers[top:]:
            self._drop_all(tier.items)
        del self._tiers[top:]
        for b in out:
            if b.transmits >= tlimit:  # gone with its tier
                b.transmits += 1
        self._retier([p for p in picked if p[0] < tlimit], tlimit)
        return out

    def _take_all(self, tlimit: int) -> list[Broadcast]:
        """``get_broadcasts`` when the whole queue fits (the common case in small
        clusters): every broadcast is picked, in queue order, so every tier moves up by
        one as it is. Then all in tiers >= ``tlimit`` are finished, in queue order,
        exactly as the general path would."""
        tiers = self._tiers
        # Collect from the top tier down (it is never empty) until every broadcast is
        # found: the tiers below the lowest one in use are empty, and with the few
        # broadcasts of a gossiping cluster most of the retransmit limit's tiers are.
        found: list[list[Broadcast]] = []
        left = self._count
        for tier in reversed(tiers):
            items = tier.items
            if items:
                found.append(items)
                left -= len(items)
                if left <= 0:
                    break
        if len(found) == 1:
            out = found[0][:]
        else:
            out = []
            for items in reversed(found):
                out += items
        for b in out:
            b.transmits += 1
        # Tier t becomes tier t + 1; those that reach ``tlimit`` are finished, lowest
        # first (queue order), and one of them is emptied to serve as the new tier 0.
        top = max(tlimit, 0)
        if top == 0:
            for tier in tiers:
                self._drop_all(tier.items)
            tiers.clear()
            return out
        if len(tiers) < top:
            # nothing reaches the limit (the usual case): a new empty tier 0 (one that
            # ``_trim`` took off the top earlier, if any), the top tier is not empty
            free = self._free
            tiers.insert(0, free.pop() if free else _Tier())
            self._trim()
            return out
        gone = tiers[top - 1 :]
        for tier in gone:
            self._drop_all(tier.items)
        del tiers[top - 1 :]
        if gone:
            bottom = gone[0]
            bottom.keys.clear()
            bottom.items.clear()
        else:
            bottom = _Tier()
        tiers.insert(0, bottom)
        self._trim()
        return out

    def _drop_all(self, items: list[Broadcast]) -> None:
        """Finish ``items``, which the caller unfiles, in their order."""
        for b in items:
            self._unname(b)
            self._finish(b)
            self._bytes -= b.size
        self._count -= len(items)

    def _retier(self, picked: list[tuple[int, list[tuple[int, int]]]], tlimit: int | None) -> None:
        """Count one more transmit for each picked broadcast and refile it one tier up,
        or drop it (already reported as finished) if that reaches ``tlimit``.

        Tiers are handled from the highest down, so a tier's picks have left it (by
        their indices from the pick) before the tier below moves its picks in:
        memberlist delays its reinserts for the same reason. A broadcast keeps its tier
        key (size and id) when it moves up.
        """
        tiers = self._tiers
        for t, runs in reversed(picked):
            tier = tiers[t]
            keys, items = tier.keys, tier.items
            if len(runs) == 1:  # typical: the head of the tier
                first, stop = runs[0]
                mkeys, mitems = keys[first:stop], items[first:stop]
                del keys[first:stop], items[first:stop]
            else:
                mkeys, mitems = [], []
                for first, stop in runs:
                    mkeys += keys[first:stop]
                    mitems += items[first:stop]
                for first, stop in reversed(runs):
                    del keys[first:stop], items[first:stop]
            for b in mitems:
                b.transmits += 1
            if tlimit is not None and t + 1 >= tlimit:
                self._count -= len(mitems)
                for b in mitems:
                    self._unname(b)
                    self._bytes -= b.size
                continue
            if t + 1 == len(tiers):
                tiers.append(_Tier(mkeys, mitems))
                continue
            up = tiers[t + 1]
            ukeys, uitems = up.keys, up.items
            if not ukeys:
                up.keys, up.items = mkeys, mitems
            elif ukeys[-1] < mkeys[0]:
                ukeys += mkeys
                uitems += mitems
            elif mkeys[-1] < ukeys[0]:
                ukeys[:0] = mkeys
                uitems[:0] = mitems
            else:
                for k, b in zip(mkeys, mitems, strict=True):
                    i = bisect_left(ukeys, k)
                    ukeys.insert(i, k)
                    uitems.insert(i, b)
        self._trim()

    def _walk_backwards(self) -> Iterator[Broadcast]:
        """Queue order reversed: most transmits, smallest, oldest first."""
        for tier in reversed(self._tiers):
            yield from reversed(tier.items)

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

