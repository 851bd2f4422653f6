"""memberlist's transmit-limited broadcast queue (queue.go): order, packing, limits.

``BroadcastQueue`` keeps memberlist's btree order incrementally (tiers of size buckets). The
engine's traces depend on exactly which broadcasts it returns and in what order, so besides
pinning the behaviour by example, a Hypothesis test drives it and ``ReferenceQueue`` (the
earlier sort-everything-and-scan implementation, kept verbatim below as the model) through
the same random operations and requires identical picks, finish tokens and lengths.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from itertools import count

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from swimpy.core.lifeguard import retransmit_limit
from swimpy.core.queue import Broadcast, BroadcastQueue
from swimpy.wire.messages import UserMsg


def test_broadcast_queue_orders_fresh_then_large_then_newest_and_invalidates_by_name() -> None:
    q = BroadcastQueue(retransmit_mult=1)

    def b(name: str | None, size: int) -> Broadcast:
        m = UserMsg(b"x" * (size - 1))
        return Broadcast(name, m, b"\x08" + m.payload, size)

    q.queue(b("a", 10))
    q.queue(b("b", 30))
    q.queue(b(None, 10))
    q.queue(b("a", 20))  # replaces the first "a"
    assert len(q) == 3
    got = q.get_broadcasts(2, 1000, num_nodes=5, max_parts=10)
    assert [x.size for x in got] == [30, 20, 10]
    # retransmit limit 1 * ceil(log10(6)) = 1: all finished
    assert len(q) == 0


def test_broadcast_queue_packs_into_budget_and_respects_retransmit_limit() -> None:
    q = BroadcastQueue(retransmit_mult=4)
    for i in range(5):
        m = UserMsg(bytes([i]) * 99)
        q.queue(Broadcast(None, m, b"\x08" + m.payload, 1 + len(m.payload)))
    got = q.get_broadcasts(2, 250, num_nodes=3, max_parts=10)  # 2 * (100 + 2) fit
    assert len(got) == 2
    sends = 1
    while len(q):
        q.get_broadcasts(2, 10000, num_nodes=3, max_parts=10)
        sends += 1
    # limit 4 * ceil(log10(3 + 1)) = 4 sends each; the three left out of the first
    # packet need four more calls after it
    assert sends == 5


def test_queue_prune_keeps_least_transmitted() -> None:
    q = BroadcastQueue(retransmit_mult=4, max_depth=3)
    for i in range(5):
        m = UserMsg(bytes([i]))
        q.queue(Broadcast(None, m, b"\x08" + m.payload, 1 + len(m.payload)))
    assert len(q) == 3


# ----------------------------------------------------------------------------- helpers

_MSG = UserMsg(b"")


def bc(size: int, name: str | None = None, notify: int | None = None) -> Broadcast:
    """A broadcast of ``size`` bytes; the message itself never matters to the queue."""
    return Broadcast(name, _MSG, b"", size, notify)


def key(b: Broadcast) -> tuple[int, int, int]:
    """memberlist's ``limitedBroadcast.Less`` as a sort key."""
    return (b.transmits, -b.size, -b.id)


# ------------------------------------------------------------------------------- order


def test_queue_order_is_transmits_then_largest_then_newest() -> None:
    q = BroadcastQueue(retransmit_mult=10)
    small_old, big, small_new, mid = bc(10), bc(50), bc(10), bc(30)
    for b in (small_old, big, small_new, mid):
        q.queue(b)
    assert q._items == [big, mid, small_new, small_old]
    # One packet with room for the 50-byte one only: it moves to tier 1, behind the rest.
    assert q.get_broadcasts(0, 50, num_nodes=9, max_parts=10) == [big]
    assert q._items == [mid, small_new, small_old, big]
    assert [b.transmits for b in q._items] == [0, 0, 0, 1]


def test_broadcast_moving_up_a_tier_sorts_behind_newer_ones_of_its_size() -> None:
    q = BroadcastQueue(retransmit_mult=10)
    old = bc(40)
    q.queue(old)
    assert q.get_broadcasts(0, 40, num_nodes=9, max_parts=10) == [old]  # old -> tier 1
    a, b = bc(40), bc(40)
    q.queue(a)
    q.queue(b)
    assert q.get_broadcasts(0, 40, num_nodes=9, max_parts=10) == [b]  # b -> tier 1
    # tier 1 holds b (newer) and old: newest first, whatever order they arrived in
    assert q._items == [a, b, old]
    assert q.get_broadcasts(0, 1000, num_nodes=9, max_parts=10) == [a, b, old]


# ----------------------------------------------------------------------------- packing


def test_packing_takes_largest_that_fits_then_skips_to_smaller_ones() -> None:
    q = BroadcastQueue(retransmit_mult=10)
    b100, b90, b50, b40a, b40b, b3 = bc(100), bc(90), bc(50), bc(40), bc(40), bc(3)
    for b in (b100, b90, b50, b40a, b40b, b3):
        q.queue(b)
    # free: 148 -> take 100 -> 46: 90 and 50 are skipped, the newer 40 fits -> 4: the
    # other 40 no longer fits, 3 does -> -1: stop
    assert q.get_broadcasts(2, 150, num_nodes=9, max_parts=10) == [b100, b40b, b3]
    assert q._items == [b90, b50, b40a, b100, b40b, b3]


def test_packing_continues_into_higher_tiers_when_a_tier_has_nothing_that_fits() -> None:
    q = BroadcastQueue(retransmit_mult=10)
    small, big = bc(20), bc(200)
    q.queue(small)
    q.get_broadcasts(0, 20, num_nodes=9, max_parts=10)  # small -> tier 1
    q.queue(big)
    # tier 0 only has the 200-byte one, which does not fit; tier 1's small one does
    assert q.get_broadcasts(0, 100, num_nodes=9, max_parts=10) == [small]
    assert (small.transmits, big.transmits) == (2, 0)


def test_packing_stops_at_max_parts_and_when_no_space_is_left() -> None:
    q = BroadcastQueue(retransmit_mult=10)
    bs = [bc(10) for _ in range(5)]
    for b in bs:
        q.queue(b)
    assert q.get_broadcasts(1, 1000, num_nodes=9, max_parts=2) == [bs[4], bs[3]]
    assert q.get_broadcasts(1, 1000, num_nodes=9, max_parts=0) == []
    # exactly two parts of 1 + 10 bytes fill 22; then free = 22 - 22 - 1 < 0
    assert q.get_broadcasts(1, 22, num_nodes=9, max_parts=10) == [bs[2], bs[1]]
    # free = limit - overhead must be > 0 even for an empty packet
    assert q.get_broadcasts(5, 5, num_nodes=9, max_parts=10) == []
    assert [b.transmits for b in bs] == [0, 1, 1, 1, 1]
    assert len(q) == 5


def test_empty_queue_returns_nothing_and_finishes_nothing() -> None:
    q = BroadcastQueue(retransmit_mult=1)
    assert q.get_broadcasts(2, 1400, num_nodes=0, max_parts=10) == []
    assert len(q) == 0 and q.take_finished() == []


# --------------------------------------------------------------------- retransmit limit


def test_broadcast_is_sent_retransmit_limit_times_then_finished() -> None:
    q = BroadcastQueue(retransmit_mult=2)
    b = bc(10, "a", notify=7)
    q.queue(b)
    limit = retransmit_limit(2, 20)  # 2 * ceil(log10(21)) = 4
    assert limit == 4
    for _ in range(limit - 1):
        assert q.get_broadcasts(0, 100, num_nodes=20, max_parts=10) == [b]
        assert q.take_finished() == []
    assert q.get_broadcasts(0, 100, num_nodes=20, max_parts=10) == [b]
    assert b.transmits == 4
    assert len(q) == 0 and q.take_finished() == [7]
    # its name is free again: a new "a" does not finish anything
    q.queue(bc(10, "a", notify=8))
    assert q.take_finished() == [] and len(q) == 1


def test_reaching_the_limit_finishes_every_broadcast_at_or_over_it_in_queue_order() -> None:
    # Broadcasts sent while the cluster was large stay queued when it shrinks; the first
    # pick that reaches the (now lower) limit takes out every one at or over it.
    q = BroadcastQueue(retransmit_mult=1)
    old = [bc(10 + i, f"n{i}", notify=i) for i in range(3)]
    for b in old:
        q.queue(b)
    q.get_broadcasts(0, 100, num_nodes=10_000, max_parts=10)  # limit 5: all -> tier 1
    assert [b.transmits for b in old] == [1, 1, 1]
    fresh = bc(5, "f", notify=10)
    big = bc(500, None, notify=11)
    q.queue(fresh)
    q.queue(big)
    assert q.take_finished() == []
    # limit 1 * ceil(log10(10)) = 1. Only fresh fits the 6 bytes; sent once, it reaches
    # the limit, so it and every broadcast with transmits >= 1 finish, in queue order:
    # fresh (picked from tier 0), then tier 1 by size descending. big, unsent, stays.
    assert q.get_broadcasts(0, 6, num_nodes=9, max_parts=10) == [fresh]
    assert q.take_finished() == [10, 2, 1, 0]
    assert q._items == [big]
    q.queue(bc(10, "n0", notify=20))  # "n0" lost its name mapping when it finished
    assert q.take_finished() == []


def test_stragglers_over_the_limit_stay_until_a_pick_reaches_it() -> None:
    q = BroadcastQueue(retransmit_mult=1)
    s = bc(10, notify=1)
    q.queue(s)
    q.get_broadcasts(0, 100, num_nodes=10_000, max_parts=10)  # limit 5
    q.get_broadcasts(0, 100, num_nodes=10_000, max_parts=10)
    assert s.transmits == 2
    big = bc(100, notify=2)
    q.queue(big)
    # limit 1 * ceil(log10(51)) = 2: s is at it, but nothing fits 5 bytes, so nothing
    # is picked and nothing is purged
    assert q.get_broadcasts(0, 5, num_nodes=50, max_parts=10) == []
    assert len(q) == 2 and q.take_finished() == []
    # limit 1: big does not fit, s (tier 2) does; picked, it finishes and big stays
    assert q.get_broadcasts(0, 50, num_nodes=2, max_parts=10) == [s]
    assert s.transmits == 3
    assert q.take_finished() == [1] and q._items == [big]


def test_when_everything_fits_every_tier_moves_up_and_those_at_the_limit_finish() -> None:
    q = BroadcastQueue(retransmit_mult=1)
    b2, b1, b0a, b0b = bc(10, notify=2), bc(30, notify=1), bc(5, notify=0), bc(50, notify=3)
    q.queue(b2)
    q.get_broadcasts(0, 10, num_nodes=500, max_parts=10)  # limit 3
    q.queue(b1)
    q.get_broadcasts(0, 40, num_nodes=500, max_parts=10)  # b1, b2
    q.queue(b0a)
    q.queue(b0b)
    assert [b.transmits for b in q._items] == [0, 0, 1, 2]
    # 95 bytes fit 95: all picked in queue order, each one tier up
    assert q.get_broadcasts(0, 95, num_nodes=500, max_parts=4) == [b0b, b0a, b1, b2]
    assert q.take_finished() == [2]  # b2 reached 3
    assert q._items == [b0b, b0a, b1] and [b.transmits for b in q._items] == [1, 1, 2]
    # limit 2 (num_nodes 50): b1 reaches 3 and the others 2, all finished in queue order
    assert q.get_broadcasts(0, 1000, num_nodes=50, max_parts=3) == [b0b, b0a, b1]
    assert q.take_finished() == [3, 0, 1] and len(q) == 0


def test_zero_nodes_means_limit_zero_and_any_pick_empties_the_queue() -> None:
    q = BroadcastQueue(retransmit_mult=4)
    bs = [bc(10, notify=i) for i in range(3)]
    for b in bs:
        q.queue(b)
    assert q.get_broadcasts(0, 10, num_nodes=0, max_parts=10) == [bs[2]]
    assert len(q) == 0 and q.take_finished() == [2, 1, 0]


def test_a_purge_over_several_tiers_reports_them_lowest_tier_first() -> None:
    q = BroadcastQueue(retransmit_mult=4)
    twice, once, never = bc(10, notify=1), bc(20, notify=2), bc(30, notify=3)
    q.queue(twice)
    q.get_broadcasts(0, 10, num_nodes=9, max_parts=10)
    q.queue(once)
    q.get_broadcasts(0, 30, num_nodes=9, max_parts=10)  # once (20), then twice (10)
    q.queue(never)
    assert [b.transmits for b in q._items] == [0, 1, 2]
    # no cluster: limit 0, so the pick (never) finishes the whole queue, tier by tier
    assert q.get_broadcasts(0, 30, num_nodes=0, max_parts=10) == [never]
    assert q.take_finished() == [3, 2, 1] and len(q) == 0


def test_a_full_packet_takes_nothing_more() -> None:
    # the walk stops as soon as ``limit - used - overhead <= 0``
    q = BroadcastQueue(retransmit_mult=4)
    one_old, one_new, ten = bc(1), bc(1), bc(10)
    for b in (one_old, one_new, ten):
        q.queue(b)
    assert q.get_broadcasts(0, 10, num_nodes=9, max_parts=10) == [ten]
    # free 3 - 1 = 2: one 1-byte part (2 with its overhead), then free is 0
    assert q.get_broadcasts(1, 3, num_nodes=9, max_parts=10) == [one_new]


@pytest.mark.parametrize("size", [0, -1])
def test_a_broadcast_without_bytes_is_refused(size: int) -> None:
    # every message has at least its type byte; the fast paths rely on sizes > 0
    with pytest.raises(ValueError, match="positive"):
        BroadcastQueue(retransmit_mult=4).queue(bc(size))


# ------------------------------------------------------------------------ invalidation


def test_named_broadcast_invalidates_the_queued_one_and_reports_its_token() -> None:
    q = BroadcastQueue(retransmit_mult=4)
    a1, b1, a2 = bc(10, "a", notify=1), bc(10, "b", notify=2), bc(12, "a", notify=3)
    q.queue(a1)
    q.queue(b1)
    q.get_broadcasts(0, 10, num_nodes=5, max_parts=10)  # b1 -> tier 1
    q.queue(a2)
    assert q.take_finished() == [1]
    assert q._items == [a2, b1] and len(q) == 2
    q.queue(bc(10, "b"))  # no token for the new one; b1's is reported
    assert q.take_finished() == [2]
    # unnamed broadcasts are never invalidated
    q.queue(bc(10, notify=4))
    q.queue(bc(10, notify=5))
    assert q.take_finished() == [] and len(q) == 4


def test_requeueing_a_queued_named_broadcast_refreshes_it() -> None:
    q = BroadcastQueue(retransmit_mult=4)
    a = bc(10, "a", notify=1)
    q.queue(a)
    q.get_broadcasts(0, 10, num_nodes=5, max_parts=10)
    q.queue(a)
    assert q.take_finished() == [1]
    assert q._items == [a] and a.transmits == 0 and a.id == 2


def test_requeueing_a_queued_unnamed_broadcast_is_refused() -> None:
    q = BroadcastQueue(retransmit_mult=4)
    u = bc(10)
    q.queue(u)
    with pytest.raises(ValueError, match="already queued"):
        q.queue(u)
    assert len(q) == 1


# ------------------------------------------------------------------------------- prune


def test_prune_drops_most_transmitted_then_smallest_then_oldest_in_queue_order() -> None:
    q = BroadcastQueue(retransmit_mult=10)
    sent = bc(100, notify=1)
    q.queue(sent)
    q.get_broadcasts(0, 100, num_nodes=9, max_parts=10)  # tier 1
    small_old, small_new, big = bc(5, notify=2), bc(5, notify=3), bc(50, notify=4)
    named = bc(1, "n", notify=5)
    for b in (small_old, small_new, big, named):
        q.queue(b)
    q.prune(2)
    # kept: the first two unnamed in queue order (big, small_new); dropped ones are
    # reported in queue order; the named one (smallest of all) is never pruned
    assert q.take_finished() == [2, 1]
    assert q._items == [big, small_new, named]
    q.prune(0)
    assert q.take_finished() == [4, 3] and q._items == [named]


def test_prune_with_a_negative_count_drops_that_many_from_the_end() -> None:
    # the list-slice semantics of the original implementation: unnamed[-1:] is dropped
    q = BroadcastQueue(retransmit_mult=10)
    bs = [bc(10 + i, notify=i) for i in range(4)]
    for b in bs:
        q.queue(b)
    q.prune(-1)
    assert q.take_finished() == [0]
    q.prune(-10)
    assert q.take_finished() == [3, 2, 1] and len(q) == 0


def test_queue_prunes_unnamed_beyond_max_depth_possibly_the_new_one() -> None:
    q = BroadcastQueue(retransmit_mult=10, max_depth=2)
    q.queue(bc(50, notify=1))
    q.queue(bc(40, notify=2))
    q.queue(bc(10, "named", notify=3))  # named ones do not count
    assert q.take_finished() == []
    q.queue(bc(5, notify=4))  # the smallest in tier 0: dropped at once
    assert q.take_finished() == [4]
    q.queue(bc(60, notify=5))  # now the 40-byte one is last
    assert q.take_finished() == [2]
    assert [b.size for b in q._items] == [60, 50, 10] and len(q) == 3


# ------------------------------------------------- differential test against the model


@dataclass(slots=True)
class ReferenceQueue:
    """The sort-and-scan queue this module replaced (swimpy before the tiered rewrite),
    minus ``reset``. It sorts everything on every pick and scans every broadcast."""

    retransmit_mult: int
    max_depth: int = 4096
    _items: list[Broadcast] = field(default_factory=list)
    _by_name: dict[str, Broadcast] = field(default_factory=dict)
    _next_id: int = 0
    _sorted: bool = True
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


@dataclass(frozen=True)
class QueueOp:
    name: str | None
    size: int
    notify: bool


@dataclass(frozen=True)
class GetOp:
    overhead: int
    limit: int
    num_nodes: int
    max_parts: int


@dataclass(frozen=True)
class PruneOp:
    max_retain: int


Op = QueueOp | GetOp | PruneOp

#: sizes that collide often (so ids break ties) mixed with arbitrary ones
_sizes = st.one_of(
    st.sampled_from([1, 2, 3, 60, 61, 75, 90, 700, 1398, 1400]), st.integers(1, 1400)
)
_queue_op = st.builds(
    QueueOp, st.sampled_from([None, None, None, "a", "b", "c", "d"]), _sizes, st.booleans()
)
_get_op = st.builds(
    GetOp,
    overhead=st.integers(0, 4),
    limit=st.one_of(st.integers(0, 200), st.integers(0, 1500), st.integers(0, 3000)),
    # small clusters reach (and lower) the retransmit limit, large ones let tiers build up
    num_nodes=st.one_of(st.integers(0, 3), st.integers(0, 30), st.integers(100, 5000)),
    max_parts=st.integers(0, 20),
)
# Long sequences, mostly queueing and picking: the interesting states (several tiers,
# broadcasts moving into non-empty tiers, purges over several tiers, prunes of a full
# queue) need a few dozen operations to build up.
_ops = st.lists(
    st.one_of(
        _queue_op, _queue_op, _queue_op, _get_op, _get_op, st.builds(PruneOp, st.integers(-3, 12))
    ),
    min_size=20,
    max_size=150,
)


@settings(max_examples=300, deadline=None)
@given(mult=st.integers(1, 3), max_depth=st.integers(0, 30), ops=_ops)
def test_queue_matches_the_reference_sort_and_scan_model(
    mult: int, max_depth: int, ops: list[Op]
) -> None:
    q = BroadcastQueue(retransmit_mult=mult, max_depth=max_depth)
    ref = ReferenceQueue(retransmit_mult=mult, max_depth=max_depth)
    twin: dict[int, Broadcast] = {}  # id() of ours -> the model's copy
    ours_all: list[Broadcast] = []  # keeps those ids unique
    tokens = count()
    for op in ops:
        if isinstance(op, QueueOp):
            token = next(tokens) if op.notify else None
            ours, theirs = bc(op.size, op.name, token), bc(op.size, op.name, token)
            twin[id(ours)] = theirs
            ours_all.append(ours)
            q.queue(ours)
            ref.queue(theirs)
        elif isinstance(op, GetOp):
            got = q.get_broadcasts(op.overhead, op.limit, op.num_nodes, op.max_parts)
            want = ref.get_broadcasts(op.overhead, op.limit, op.num_nodes, op.max_parts)
            # the same broadcasts (identity), in the same order
            assert len(got) == len(want)
            assert all(twin[id(b)] is w for b, w in zip(got, want, strict=True))
            # and left in the same state (finished ones too: the engine holds them)
            assert [(b.id, b.transmits) for b in got] == [(w.id, w.transmits) for w in want]
        else:
            q.prune(op.max_retain)
            ref.prune(op.max_retain)
        assert q.take_finished() == ref.take_finished()
        assert len(q) == len(ref)
        ordered = sorted(ref._items, key=key)
        mine = q._items
        assert len(mine) == len(ordered)
        assert all(twin[id(b)] is w for b, w in zip(mine, ordered, strict=True))
        assert all(key(b) == key(w) for b, w in zip(mine, ordered, strict=True))
        assert q._by_name.keys() == ref._by_name.keys()
        assert q._bytes == sum(b.size for b in ref._items)
