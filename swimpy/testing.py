"""A tiny in-memory driver for engine tests: a few engines, virtual time, fixed latency.

Not the simulator (:mod:`swimpy.sim` models networks at scale); just enough to drive two
to five :class:`~swimpy.core.Engine` objects deterministically, in the spirit of
``trio.testing``: timers on a heap, packets and streams delivered after ``latency``,
an optional drop filter per link, crashes and restarts. Tests of the engine, and of
anything built on it, use it to run a small cluster without sockets or clocks.
"""

from __future__ import annotations

import heapq
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from swimpy.core import (
    Action,
    Address,
    CloseStream,
    Codec,
    ConnId,
    Engine,
    Input,
    MemberEvent,
    ObjectCodec,
    OpenStream,
    PacketReceived,
    ReplyStream,
    Request,
    SendPacket,
    SetTimer,
    State,
    StreamFailed,
    StreamId,
    StreamReceived,
    StreamResponse,
    StreamSent,
    TimerFired,
    WireCodec,
)
from swimpy.profiles import Config, lan

__all__ = ["Connections", "VirtualCluster", "assert_table_consistent"]

T = TypeVar("T")


class Connections(Generic[T]):
    """The inbound TCP connections of an in-memory network, as a driver tracks them.

    Engines answer an inbound connection (``ReplyStream`` / ``CloseStream``) by the
    ``ConnId`` its driver gave it in ``StreamReceived``; the driver must find the dialer's
    stream again to deliver the answer. ``open`` numbers a connection (unique across the
    network) and files what the driver keeps about its dialer; ``close`` takes it back
    once. :class:`VirtualCluster` and the simulator (:mod:`swimpy.sim`) both use it; a
    runtime's own tests can too.
    """

    __slots__ = ("_next", "_open")

    def __init__(self) -> None:
        self._open: dict[ConnId, T] = {}
        self._next = 0

    def open(self, dialer: T) -> ConnId:
        self._next += 1
        conn = ConnId(self._next)
        self._open[conn] = dialer
        return conn

    def close(self, conn: ConnId) -> T | None:
        """What was filed for ``conn``, or None if it is unknown or already closed."""
        return self._open.pop(conn, None)

    def __len__(self) -> int:
        return len(self._open)


@dataclass
class VirtualCluster:
    """Engines named by their member name, on 127.0.0.1 ports 7001, 7002, ...

    ``encode`` True runs every packet and stream through the wire codec (real bytes);
    False passes message objects (the simulator's object codec).
    """

    latency: float = 0.001
    seed: int = 1
    encode: bool = True
    #: drop(src_name, dst_name) -> True to drop a packet / fail a stream
    drop: Callable[[str, str], bool] = lambda a, b: False
    now: float = 0.0
    nodes: dict[str, Engine] = field(default_factory=dict)
    by_addr: dict[Address, str] = field(default_factory=dict)
    crashed: set[str] = field(default_factory=set)
    events: list[tuple[float, str, MemberEvent]] = field(default_factory=list)
    actions: list[tuple[float, str, Action]] = field(default_factory=list)
    _heap: list[tuple[float, int, str, int, Input]] = field(default_factory=list)
    #: bumped on every (re)start: events addressed to an earlier run are dropped
    _epoch: dict[str, int] = field(default_factory=dict)
    _seq: int = 0
    #: open inbound connections -> (dialer name, dialer stream id, reply expected)
    _conns: Connections[tuple[str, StreamId, bool]] = field(default_factory=Connections)
    _codec: Codec = field(default_factory=ObjectCodec)

    def add(
        self,
        name: str,
        config: Config | None = None,
        delegate: object | None = None,
        meta: bytes = b"",
        **overrides: Any,
    ) -> Engine:
        """Start (or restart, keeping name and address) the engine ``name``."""
        port = self.nodes[name].advertise[1] if name in self.nodes else 7000 + len(self.by_addr) + 1
        cfg = (config or lan()).replace(name=name, bind_port=port, **overrides)
        rng = random.Random(f"{self.seed}-{name}-{len(self.by_addr)}")
        nrng = random.Random(f"nonce-{self.seed}-{name}")
        node = Engine(
            cfg,
            advertise=("127.0.0.1", port),
            rng=rng,
            nonce_source=nrng.randbytes,
            codec=WireCodec() if self.encode else self._codec,
            meta=meta,
            delegate=delegate,
        )
        self.nodes[name] = node
        self._epoch[name] = self._epoch.get(name, 0) + 1
        self.by_addr[("127.0.0.1", port)] = name
        self.crashed.discard(name)
        self._apply(name, node.start(self.now))
        return node

    def addr(self, name: str) -> Address:
        return self.nodes[name].advertise

    def crash(self, name: str) -> None:
        self.crashed.add(name)

    def push(self, at: float, name: str, inp: Input) -> None:
        self._seq += 1
        heapq.heappush(self._heap, (at, self._seq, name, self._epoch.get(name, 0), inp))

    def do(self, name: str, req: Request) -> int:
        """Submit a request to ``name`` now; returns its request id."""
        rid, acts = self.nodes[name].submit(req, self.now)
        self._apply(name, acts)
        return rid

    def handle(self, name: str, inp: Input) -> list[Action]:
        """Hand an input to ``name`` now and carry out its actions."""
        acts = self.nodes[name].handle(inp, self.now)
        self._apply(name, acts)
        return acts

    def _apply(self, name: str, acts: list[Action]) -> None:
        node = self.nodes[name]
        for a in acts:
            self.actions.append((self.now, name, a))
            if isinstance(a, SetTimer):
                self.push(a.at, name, TimerFired(a.timer))
            elif isinstance(a, MemberEvent):
                self.events.append((self.now, name, a))
            elif isinstance(a, SendPacket):
                dst = self.by_addr.get(a.dest)
                if dst is None or self.drop(name, dst):
                    continue
                self.push(self.now + self.latency, dst, PacketReceived(node.advertise, a.data))
            elif isinstance(a, OpenStream):
                self._open(name, node, a)
            elif isinstance(a, ReplyStream):
                conn = self._conns.close(a.conn_id)
                if conn is not None and conn[2]:
                    self.push(self.now + self.latency, conn[0], StreamResponse(conn[1], a.data))
            elif isinstance(a, CloseStream):
                conn = self._conns.close(a.conn_id)
                if conn is not None and conn[2]:
                    self.push(self.now + self.latency, conn[0],
                              StreamFailed(conn[1], "closed without reply"))

    def _open(self, name: str, node: Engine, a: OpenStream) -> None:
        dst = self.by_addr.get(a.dest)
        if dst is None or dst in self.crashed or self.drop(name, dst):
            self.push(self.now + min(a.timeout, 0.01), name,
                      StreamFailed(a.stream_id, "connection refused"))
            return
        conn = self._conns.open((name, a.stream_id, a.expect_reply))
        self.push(self.now + self.latency, dst, StreamReceived(conn, node.advertise, a.data))
        if not a.expect_reply:
            self.push(self.now + self.latency, name, StreamSent(a.stream_id))

    def run_until(self, t: float) -> None:
        """Deliver everything due at or before ``t``; then the clock reads ``t``."""
        while self._heap and self._heap[0][0] <= t:
            at, _, name, epoch, inp = heapq.heappop(self._heap)
            self.now = at
            if name in self.crashed or epoch != self._epoch[name]:
                continue
            self._apply(name, self.nodes[name].handle(inp, at))
        self.now = t

    def view(self, observer: str) -> dict[str, str]:
        return {m.name: m.state.name.lower() for m in self.nodes[observer].table().values()}


def assert_table_consistent(engine: Engine) -> None:
    """Raise AssertionError unless the engine's member table is whole: every member has
    one slot, the probe order's round is a valid partial shuffle of the slots, and every
    open suspicion is of a suspect member. (Reads engine internals; for tests.)"""
    members = engine._members
    order, table = members.order, members.table
    slots = [table.at(i) for i in range(table.slot_count)]
    names = [m.name for m in slots if m is not None]
    assert len(names) == len(set(names)), f"duplicate names in {engine.name}'s slots"
    assert set(names) == set(table), f"{engine.name}: slots and table disagree"
    assert len(names) == len(table) == engine.num_nodes == len(list(table.values()))
    assert all(table[n].name == n for n in names), f"{engine.name}: a record under another name"
    swaps = order.pending_swaps()
    assert 0 <= order.drawn <= order.length <= table.slot_count
    assert all(order.drawn <= p < order.length for p in swaps), f"{engine.name}: stale swap"
    moved = list(swaps.values())
    assert len(moved) == len(set(moved)) and all(0 <= v < order.length for v in moved)
    for name in members.suspicions:
        state = table[name].state
        assert state == State.SUSPECT, f"{engine.name}: suspicion of {name}, which is {state}"
