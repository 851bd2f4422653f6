"""The owner loop: the one task that calls the engine, over real UDP and TCP sockets.

Each turn it waits for a datagram, a handed-over input or the earliest due timer; then it
drains every datagram already waiting, then the inputs TCP tasks handed over, and only
then fires the timers that are due. The order matters: a node that read its acks after
its own probe-timeout timer would suspect healthy peers, and trio wakes the tasks of one
tick in random order, so separate receive and timer tasks would race. There is no task
per datagram or per timer and no lock: every engine call happens on this trio thread, and
other threads read the immutable snapshots published here.

TCP connections run in their own tasks (:mod:`swimpy.runtime.streams`) and hand what they
read to the owner through a bounded queue (``config.handoff_queue_depth``): when it is
full the data is dropped and counted and the connection fails, since a stream with a hole
in it is useless. Their end-of-stream reports bypass the bound: there is at most one per
connection, and the engine must hear it to forget the stream.
"""

from __future__ import annotations

import errno
import heapq
import itertools
import logging
import math
import threading
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import replace

import trio

from swimpy.core.actions import (
    Action,
    CloseOutbound,
    CloseStream,
    JoinCompleted,
    LeaveCompleted,
    MemberEvent,
    MetaUpdateCompleted,
    OpenStream,
    PingCompleted,
    ReplyStream,
    RequestFailed,
    SendPacket,
    SetTimer,
    UserMessageReceived,
    UserMessageSent,
)
from swimpy.core.engine import Engine
from swimpy.core.inputs import Input, PacketReceived, Request, StreamReceived, TimerFired
from swimpy.core.snapshot import Membership, Statistics
from swimpy.core.timers import Timer
from swimpy.runtime.events import EventHub, UserMessage
from swimpy.runtime.sockets import Sockets, to_peer, to_socket
from swimpy.runtime.streams import Streams

log = logging.getLogger("swimpy.runtime")

#: most datagrams read in one turn before due timers fire (only a flood reaches it; it
#: keeps timers from starving while one never ends)
MAX_DRAIN = 4096
#: biggest datagram we accept (memberlist reads into a 65,536-byte buffer)
MAX_DATAGRAM = 65536
#: how often other threads' snapshots are refreshed while the loop is busy (seconds)
PUBLISH_INTERVAL = 0.05

_COMPLETIONS = (JoinCompleted, LeaveCompleted, MetaUpdateCompleted, UserMessageSent,
                RequestFailed)


class NodeClosed(RuntimeError):
    """The node was closed while a call was waiting on it, or before the call."""


class _Waiter:
    __slots__ = ("event", "result")

    def __init__(self) -> None:
        self.event = trio.Event()
        self.result: Action | None = None


class Driver:
    """Drives one engine; created and run by :func:`swimpy.open_node`."""

    def __init__(self, engine: Engine, sockets: Sockets, hub: EventHub,
                 nursery: trio.Nursery) -> None:
        self.engine = engine
        self.config = engine.config
        self.sockets = sockets
        self.hub = hub
        self.nursery = nursery
        self._udp = sockets.udp
        self._family = sockets.family
        self._timers: list[tuple[float, int, Timer]] = []
        self._timer_seq = itertools.count()
        self._handoff: deque[Input] = deque()
        self._handoff_cap = self.config.handoff_queue_depth
        self._wait_scope: trio.CancelScope | None = None
        self._waiters: dict[int, _Waiter] = {}
        #: the runtime's own counters, merged into ``statistics()``
        self.counters: Counter[str] = Counter()
        #: called with the round-trip time of every directly acked probe (owner thread)
        self.rtt_observer: Callable[[float], None] | None = None
        self.streams = Streams(self)
        self.owner_thread = threading.get_ident()
        self.closed = False
        self._last_publish = -math.inf
        self.membership: Membership = engine.snapshot()
        self.stats: Statistics = self._statistics()

    # ------------------------------------------------------------------ the loop

    def start(self) -> None:
        self._dispatch(self.engine.start(trio.current_time()))
        self.publish()

    async def run(self) -> None:
        """The owner loop; runs until cancelled."""
        engine = self.engine
        udp = self._udp
        handoff = self._handoff
        timers = self._timers
        family = self._family
        dispatch = self._dispatch
        recv = udp.recvfrom
        reading = self.streams.reading
        while True:
            now = trio.current_time()
            # 1. every datagram already waiting
            for _ in range(MAX_DRAIN):
                try:
                    data, addr = recv(MAX_DATAGRAM)
                except BlockingIOError:
                    break
                except OSError as exc:
                    # ICMP errors reported on the socket (port unreachable and the
                    # like): counted, never fatal
                    self.counters["udp_receive_errors"] += 1
                    log.debug("%s: UDP receive error: %s", engine.name, exc)
                    continue
                dispatch(engine.handle(PacketReceived(to_peer(family, addr), data), now))
            # 2. what TCP tasks handed over
            while handoff:
                inp = handoff.popleft()
                # bytes a connection read after the engine already answered it (the
                # peer's EOF after a reliable user message) are no new request
                if type(inp) is StreamReceived and not reading(inp.conn_id):
                    continue
                dispatch(engine.handle(inp, now))
            # 3. due timers, with the time they fire at
            now = trio.current_time()
            while timers and timers[0][0] <= now:
                timer = heapq.heappop(timers)[2]
                dispatch(engine.handle(TimerFired(timer), now))
            if now - self._last_publish >= PUBLISH_INTERVAL:
                self.publish()
            # 4. wait for the next datagram, handover or timer
            if handoff:
                await trio.lowlevel.checkpoint()
                continue
            deadline = timers[0][0] if timers else math.inf
            with trio.CancelScope(deadline=deadline) as scope:
                self._wait_scope = scope
                try:
                    await trio.lowlevel.wait_readable(udp)
                finally:
                    self._wait_scope = None
            if scope.cancelled_caught and not handoff:
                # idle until a timer: a good moment to refresh other threads' views
                self.publish()

    def wake(self) -> None:
        scope = self._wait_scope
        if scope is not None:
            scope.cancel()

    def handoff(self, inp: Input) -> bool:
        """Queue data read by a TCP task; False (dropped, counted) when the queue is full."""
        if len(self._handoff) >= self._handoff_cap:
            self.counters["handoff_dropped"] += 1
            return False
        self._handoff.append(inp)
        self.wake()
        return True

    def handoff_end(self, inp: Input) -> None:
        """Queue a stream's end report (never dropped: at most one per connection)."""
        self._handoff.append(inp)
        self.wake()

    # ------------------------------------------------------------------ actions

    def _dispatch(self, actions: list[Action]) -> None:
        for a in actions:
            if isinstance(a, SetTimer):
                heapq.heappush(self._timers, (a.at, next(self._timer_seq), a.timer))
                if self._wait_scope is not None and a.at < self._wait_scope.deadline:
                    self.wake()
            elif isinstance(a, SendPacket):
                self._send(a)
            elif isinstance(a, MemberEvent):
                self.hub.publish(a)
            elif isinstance(a, UserMessageReceived):
                self.hub.publish(UserMessage(a.payload, a.reliable, a.source))
            elif isinstance(a, OpenStream):
                self.streams.open(a)
            elif isinstance(a, ReplyStream):
                self.streams.answer(a.conn_id, a)
            elif isinstance(a, CloseStream):
                self.streams.answer(a.conn_id, None)
            elif isinstance(a, CloseOutbound):
                self.streams.close_outbound(a.stream_id)
            elif isinstance(a, _COMPLETIONS):
                waiter = self._waiters.pop(a.request_id, None)
                if waiter is not None:
                    waiter.result = a
                    waiter.event.set()
            elif isinstance(a, PingCompleted):
                # round-trip times: metrics now, Serf's coordinates in a later layer
                if self.rtt_observer is not None:
                    self.rtt_observer(a.rtt)
            else:  # pragma: no cover - an action this driver does not know
                log.error("%s: unknown action %r", self.engine.name, a)

    def _send(self, a: SendPacket) -> None:
        dest = to_socket(self._family, a.dest)
        if dest is None:
            self.counters["udp_send_errors"] += 1
            log.debug("%s: cannot send to %s from an IPv4 socket", self.engine.name, a.dest)
            return
        try:
            self._udp.sendto(a.data, dest)  # type: ignore[call-overload]
        except BlockingIOError:
            self.counters["udp_send_dropped"] += 1
        except OSError as exc:
            self.counters["udp_send_errors"] += 1
            level = logging.WARNING if exc.errno == errno.EMSGSIZE else logging.DEBUG
            log.log(level, "%s: UDP send to %s failed: %s", self.engine.name, a.dest, exc)

    # ------------------------------------------------------------------ requests

    def submit(self, req: Request) -> _Waiter:
        """Check and submit a request on the owner's thread; the waiter gets its
        completion action (if the request has one)."""
        if self.closed:
            raise NodeClosed("the node is closed")
        rid, actions = self.engine.submit(req, trio.current_time())
        waiter = _Waiter()
        self._waiters[rid] = waiter
        self._dispatch(actions)
        return waiter

    async def call(self, req: Request) -> Action:
        waiter = self.submit(req)
        await waiter.event.wait()
        if waiter.result is None:
            raise NodeClosed("the node was closed before the request completed")
        return waiter.result

    def submit_nowait(self, req: Request) -> None:
        """A request with no completion to wait for (broadcasts, keyring changes)."""
        if self.closed:
            raise NodeClosed("the node is closed")
        _rid, actions = self.engine.submit(req, trio.current_time())
        self._dispatch(actions)

    # ------------------------------------------------------------------ views

    def publish(self) -> None:
        """Refresh the snapshots other threads read (cheap when nothing changed)."""
        self._last_publish = trio.current_time()
        self.membership = self.engine.snapshot()
        self.stats = self._statistics()

    def _statistics(self) -> Statistics:
        s = self.engine.statistics()
        counters = dict(s.counters)
        counters.update(self.counters)
        counters.update(self.streams.counters)
        if self.hub.dropped.value:
            counters["events_dropped"] = self.hub.dropped.value
        return replace(s, counters=counters)

    def on_owner_thread(self) -> bool:
        return threading.get_ident() == self.owner_thread

    def close(self) -> None:
        """Stop: the engine ignores everything after this, waiting calls fail."""
        if self.closed:
            return
        self.publish()
        self.closed = True
        self.engine.shutdown()
        for waiter in self._waiters.values():
            waiter.event.set()
        self._waiters.clear()
        self.hub.close()


__all__ = ["Driver", "NodeClosed"]
