"""A tiny in-memory cluster for engine tests: delivers actions with virtual time.

Not the simulator (swimpy.sim); just enough to drive two or three ``Node``s
deterministically: fixed latency, optional per-link drop filter, streams delivered
instantly-with-latency, timers on a heap.
"""

from __future__ import annotations

import heapq
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from swimpy.core.node import Delegate, Node
from swimpy.core.types import (
    Action,
    Address,
    CloseStream,
    Input,
    MemberEvent,
    OpenStream,
    PacketReceived,
    ReplyStream,
    SendPacket,
    SetTimer,
    StreamFailed,
    StreamReceived,
    StreamResponse,
    TimerFired,
)
from swimpy.profiles import Config, lan


@dataclass
class Harness:
    latency: float = 0.001
    seed: int = 1
    encode: bool = True
    #: drop(src_name, dst_name) -> True to drop a packet / fail a stream
    drop: Callable[[str, str], bool] = lambda a, b: False
    now: float = 0.0
    nodes: dict[str, Node] = field(default_factory=dict)
    by_addr: dict[Address, str] = field(default_factory=dict)
    crashed: set[str] = field(default_factory=set)
    events: list[tuple[float, str, MemberEvent]] = field(default_factory=list)
    actions: list[tuple[float, str, Action]] = field(default_factory=list)
    _heap: list[tuple[float, int, str, int, Input]] = field(default_factory=list)
    #: bumped on every (re)start: events addressed to an earlier run are dropped
    _epoch: dict[str, int] = field(default_factory=dict)
    _seq: int = 0
    #: (receiver name, stream id) -> (dialer name, dialer stream id)
    _inbound: dict[tuple[str, int], tuple[str, int]] = field(default_factory=dict)
    _next_inbound: int = 1000

    def add(
        self,
        name: str,
        config: Config | None = None,
        delegate: Delegate | None = None,
        meta: bytes = b"",
        **overrides: Any,
    ) -> Node:
        # a restart keeps its name and address
        port = self.nodes[name].advertise[1] if name in self.nodes else 7000 + len(self.by_addr) + 1
        cfg = (config or lan()).replace(name=name, bind_port=port, **overrides)
        rng = random.Random(f"{self.seed}-{name}-{len(self.by_addr)}")
        nrng = random.Random(f"nonce-{self.seed}-{name}")
        node = Node(
            cfg,
            advertise=("127.0.0.1", port),
            rng=rng,
            now=self.now,
            meta=meta,
            delegate=delegate,
            nonce_source=nrng.randbytes,
            encode=self.encode,
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

    def do(self, name: str, inp: Input) -> list[Action]:
        acts = self.nodes[name].handle(inp, self.now)
        self._apply(name, acts)
        return acts

    def _apply(self, name: str, acts: list[Action]) -> None:
        node = self.nodes[name]
        for a in acts:
            self.actions.append((self.now, name, a))
            if isinstance(a, SetTimer):
                self.push(a.at, name, TimerFired(a.key))
            elif isinstance(a, MemberEvent):
                self.events.append((self.now, name, a))
            elif isinstance(a, SendPacket):
                dst = self.by_addr.get(a.dest)
                if dst is None or self.drop(name, dst):
                    continue
                self.push(
                    self.now + self.latency, dst, PacketReceived(node.advertise, a.data, a.messages)
                )
            elif isinstance(a, OpenStream):
                dst = self.by_addr.get(a.dest)
                if dst is None or dst in self.crashed or self.drop(name, dst):
                    self.push(
                        self.now + min(a.timeout, 0.01),
                        name,
                        StreamFailed(a.stream_id, "connection refused"),
                    )
                    continue
                self._next_inbound += 1
                sid = self._next_inbound
                self._inbound[(dst, sid)] = (name, a.stream_id) if a.expect_reply else ("", 0)
                self.push(
                    self.now + self.latency,
                    dst,
                    StreamReceived(sid, node.advertise, a.data, None if a.data else a.message),
                )
                if not a.expect_reply:
                    self.push(
                        self.now + self.latency, name, StreamResponse(a.stream_id, None, None)
                    )
            elif isinstance(a, ReplyStream):
                dialer, dsid = self._inbound.pop((name, a.stream_id), ("", 0))
                if dialer:
                    self.push(
                        self.now + self.latency,
                        dialer,
                        StreamResponse(dsid, a.data, None if a.data else a.message),
                    )
            elif isinstance(a, CloseStream):
                dialer, dsid = self._inbound.pop((name, a.stream_id), ("", 0))
                if dialer:
                    self.push(
                        self.now + self.latency, dialer, StreamFailed(dsid, "closed without reply")
                    )

    def run_until(self, t: float) -> None:
        while self._heap and self._heap[0][0] <= t:
            at, _, name, epoch, inp = heapq.heappop(self._heap)
            self.now = at
            if name in self.crashed or epoch != self._epoch[name]:
                continue
            self._apply(name, self.nodes[name].handle(inp, at))
        self.now = t

    def view(self, observer: str) -> dict[str, str]:
        return {m.name: m.state.name.lower() for m in self.nodes[observer].table().values()}
