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
from typing import Any

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
    StreamFailed,
    StreamId,
    StreamReceived,
    StreamResponse,
    StreamSent,
    TimerFired,
    WireCodec,
)
from swimpy.profiles import Config, lan

__all__ = ["VirtualCluster"]


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
    #: (receiver name, conn id) -> (dialer name, dialer stream id)
    _inbound: dict[tuple[str, int], tuple[str, StreamId]] = field(default_factory=dict)
    _next_inbound: int = 1000
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
                dialer, dsid = self._inbound.pop((name, a.conn_id), ("", StreamId(0)))
                if dialer:
                    self.push(self.now + self.latency, dialer, StreamResponse(dsid, a.data))
            elif isinstance(a, CloseStream):
                dialer, dsid = self._inbound.pop((name, a.conn_id), ("", StreamId(0)))
                if dialer:
                    self.push(self.now + self.latency, dialer,
                              StreamFailed(dsid, "closed without reply"))

    def _open(self, name: str, node: Engine, a: OpenStream) -> None:
        dst = self.by_addr.get(a.dest)
        if dst is None or dst in self.crashed or self.drop(name, dst):
            self.push(self.now + min(a.timeout, 0.01), name,
                      StreamFailed(a.stream_id, "connection refused"))
            return
        self._next_inbound += 1
        conn = ConnId(self._next_inbound)
        if a.expect_reply:
            self._inbound[(dst, conn)] = (name, a.stream_id)
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
