"""memberlist's transmit-limited broadcast queue (queue.go): order, packing, limits."""

from __future__ import annotations

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
