"""The owner loop: the one task that calls the engine, over real UDP and TCP sockets.

Each turn it waits for a datagram, a handed-over input or the earliest due timer; then it
drains every datagram already waiting, then the inputs TCP tasks handed over, and only
then fires the timers that are due (probe timeouts made stale by their ack are dropped
instead of waking the loop: see ``_dispatch``). The order matters: a node that read its
acks after its own probe-timeout timer would suspect healthy peers, and trio wakes the
tasks of one tick in random order, so separate receive and timer tasks would race. There is no task
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
import select
import socket
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
from swimpy.core.inputs import Input, Request, StreamReceived
from swimpy.core.snapshot import Membership, Statistics
from swimpy.core.timers import ProbeTimeout, Timer
from swimpy.runtime import timerfd
from swimpy.runtime.events import EventHub, UserMessage
from swimpy.runtime.sockets import Sockets, to_peer, to_socket
from swimpy.runtime.streams import Streams

log = logging.getLogger("swimpy.runtime")

#: most datagrams read in one turn before due timers fire (only a flood reaches it; it
#: keeps timers from starving while one never ends)
MAX_DRAIN = 4096
#: biggest datagram we accept (memberlist reads into a 65,536-byte buffer)
MAX_DATAGRAM = 65536
#: how often the membership snapshot other threads read is refreshed (seconds; the
#: loop checks at the end of each turn, so an idle node refreshes it when it next wakes)
PUBLISH_INTERVAL = 0.05
#: how often the statistics other threads read are refreshed (seconds; see ``_refresh``)
STATS_INTERVAL = 1.0

_COMPLETIONS = (JoinCompleted, LeaveCompleted, MetaUpdateCompleted, UserMessageSent,
                RequestFailed)


def _real_time_clock() -> bool:
    """Whether the trio run uses its system clock (seconds of real time, as a timerfd
    counts them); a ``MockClock`` (virtual time) or another custom clock does not."""
    clock = trio.lowlevel.current_clock()
    return type(clock).__name__ == "SystemClock" and type(clock).__module__.startswith("trio.")


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
        #: ProbeTimeout timers (their heap ids) set by earlier engine calls, not yet fired
        self._probe_timeouts: set[int] = set()
        #: heap ids of timers the engine would ignore, skipped when due (see _dispatch)
        self._stale: set[int] = set()
        #: stale timers dropped before they could wake the loop
        self.stale_timers_dropped = 0
        self._handoff: deque[Input] = deque()
        self._handoff_cap = self.config.handoff_queue_depth
        self._wait_scope: trio.CancelScope | None = None
        #: the timerfd the owner waits on (None: it waits with a cancel scope), whether
        #: it is waiting now, and the trio time the timerfd is armed for
        self._timerfd: timerfd.TimerFd | None = None
        self._waiting = False
        self._armed = math.inf
        self._ipv4 = sockets.family == socket.AF_INET
        self._waiters: dict[int, _Waiter] = {}
        #: the runtime's own counters, merged into ``statistics()``
        self.counters: Counter[str] = Counter()
        #: called with the round-trip time of every directly acked probe (owner thread)
        self.rtt_observer: Callable[[float], None] | None = None
        self.streams = Streams(self)
        self.owner_thread = threading.get_ident()
        self.closed = False
        self._last_publish = -math.inf
        self._last_stats = -math.inf
        #: tells the owner loop whether a datagram waits, without a failed recvfrom
        self._poller = select.poll()
        self._poller.register(self._udp, select.POLLIN)
        self.membership: Membership = engine.snapshot()
        self.stats: Statistics = self._statistics()

    # ------------------------------------------------------------------ the loop

    def start(self) -> None:
        self._dispatch(self.engine.start(trio.current_time()))
        self.publish()

    async def run(self) -> None:
        """The owner loop; runs until cancelled.

        A steady member wakes a few times a second (its probe tick, the ack, a peer's
        ping) and does little each time, so the fixed cost of a wake is most of its CPU
        (benchmarks/README.md, issue 10). The loop keeps that cost low without changing
        what is done or in which order:

        * it waits on one epoll fd holding the UDP socket and a timerfd armed for the
          earliest timer (:mod:`swimpy.runtime.timerfd`), so a due timer wakes it the
          way a datagram does. Waking at a cancel scope's deadline instead costs about
          1.6 times as much (a ``Cancelled`` raised through the wait, a new scope). Trio
          clocks other than the system clock (``MockClock`` in tests) and platforms
          without timerfd use the cancel scope, kept across datagram wakes.
        * ``poll(0)`` tells whether a datagram is waiting, so an empty socket costs no
          ``BlockingIOError`` per turn.
        * the engine's ``packet_received`` / ``timer_fired`` entry points, which do what
          ``handle(PacketReceived(...))`` / ``handle(TimerFired(...))`` do without the
          input objects.
        * probe timeouts made stale by their ack are dropped (see :meth:`_dispatch`),
          statistics for other threads rebuilt every ``STATS_INTERVAL`` (:meth:`_refresh`).
        """
        tfd = timerfd.create() if _real_time_clock() else None
        if tfd is None:
            await self._run_scoped()
            return
        ep = select.epoll()
        try:
            ep.register(self._udp.fileno(), select.EPOLLIN)
            ep.register(tfd.fileno(), select.EPOLLIN)
            self._timerfd = tfd
            await self._run_timerfd(tfd, ep.fileno())
        finally:
            self._timerfd = None
            ep.close()
            tfd.close()

    async def _run_timerfd(self, tfd: timerfd.TimerFd, epfd: int) -> None:
        handoff = self._handoff
        timers = self._timers
        turn = self._turn
        arm = tfd.arm
        wait_readable = trio.lowlevel.wait_readable
        current_time = trio.current_time
        while True:
            turn(False)
            if handoff:
                await trio.lowlevel.checkpoint()
                continue
            # re-armed every turn: that also forgets an expiry that woke this turn
            deadline = timers[0][0] if timers else math.inf
            arm(deadline - current_time())
            self._armed = deadline
            self._waiting = True
            try:
                await wait_readable(epfd)
            finally:
                self._waiting = False

    async def _run_scoped(self) -> None:
        handoff = self._handoff
        timers = self._timers
        turn = self._turn
        udp = self._udp
        wait_readable = trio.lowlevel.wait_readable
        readable = False  # the last wait ended because the socket is readable
        while True:
            # One cancel scope serves every wait until it is cancelled: a datagram wakes
            # the task without cancelling anything, so the scope carries on to the next
            # wait with only its deadline moved. A due timer or wake() cancels it.
            with trio.CancelScope() as scope:
                while True:
                    turn(readable)
                    readable = False
                    if handoff:
                        await trio.lowlevel.checkpoint()
                        continue
                    deadline = timers[0][0] if timers else math.inf
                    if scope.deadline != deadline:
                        scope.deadline = deadline
                    self._wait_scope = scope
                    try:
                        await wait_readable(udp)
                    finally:
                        self._wait_scope = None
                    readable = True

    def _turn(self, readable: bool) -> None:
        """One turn: the datagrams waiting, what TCP tasks handed over, the due timers.
        ``readable``: the wait just ended on the UDP socket, so a datagram is there (only
        this task reads the socket) and is read without asking."""
        engine = self.engine
        dispatch = self._dispatch
        now = trio.current_time()
        # 1. every datagram already waiting
        recv = self._udp.recvfrom
        waiting = self._poller.poll
        ipv4 = self._ipv4
        for _ in range(MAX_DRAIN):
            if readable:
                readable = False
            elif not waiting(0):
                break
            try:
                data, addr = recv(MAX_DATAGRAM)
            except BlockingIOError:
                break
            except OSError as exc:
                # ICMP errors reported on the socket (port unreachable and the like):
                # counted, never fatal
                self.counters["udp_receive_errors"] += 1
                log.debug("%s: UDP receive error: %s", engine.name, exc)
                continue
            # an IPv4 socket's address already is the engine's (ip, port)
            source = addr if ipv4 else to_peer(self._family, addr)
            dispatch(engine.packet_received(source, data, now))
        # 2. what TCP tasks handed over
        handoff = self._handoff
        while handoff:
            inp = handoff.popleft()
            # bytes a connection read after the engine already answered it (the peer's
            # EOF after a reliable user message) are no new request
            if type(inp) is StreamReceived and not self.streams.reading(inp.conn_id):
                continue
            dispatch(engine.handle(inp, now))
        # 3. due timers, with the time they fire at
        now = trio.current_time()
        timers = self._timers
        stale = self._stale
        while timers and timers[0][0] <= now:
            _at, tid, timer = heapq.heappop(timers)
            if tid in stale:
                stale.discard(tid)
                continue
            self._probe_timeouts.discard(tid)
            dispatch(engine.timer_fired(timer, now))
        # a probe timeout made stale by its ack need not wake us (see _dispatch): drop
        # it once it is the earliest timer
        while timers and timers[0][1] in stale:
            stale.discard(heapq.heappop(timers)[1])
            self.stale_timers_dropped += 1
        if now - self._last_publish >= PUBLISH_INTERVAL:
            self._refresh(now)

    def wake(self) -> None:
        """Make the owner's wait end now (a TCP task handed something over)."""
        if self._waiting:
            assert self._timerfd is not None
            self._timerfd.arm(0.0)
            self._armed = -math.inf
        scope = self._wait_scope
        if scope is not None:
            scope.cancel()

    def _wake_at(self, at: float) -> None:
        """A timer set while the owner waits (a request from another task): end the wait
        by ``at`` (moving the deadline is cheaper than cancelling; within the owner's
        turn the next wait is armed from the heap anyway)."""
        if self._waiting:
            if at < self._armed:
                assert self._timerfd is not None
                self._timerfd.arm(at - trio.current_time())
                self._armed = at
            return
        scope = self._wait_scope
        if scope is not None and at < scope.deadline:
            scope.deadline = at

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
        earlier = self._probe_timeouts
        fresh: list[int] = []
        for a in actions:
            if isinstance(a, SetTimer):
                tid = next(self._timer_seq)
                heapq.heappush(self._timers, (a.at, tid, a.timer))
                if type(a.timer) is ProbeTimeout:
                    # not yet in ``earlier``: it belongs to a probe this call started
                    fresh.append(tid)
                if self._waiting or self._wait_scope is not None:
                    self._wake_at(a.at)
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
                # Our probe got its direct ack, so the ProbeTimeout timers set by earlier
                # engine calls and not yet fired are stale: the engine would ignore them
                # (Prober.timeout returns at once for a probe that is done or is not the
                # current one, and the call has no other effect). PingCompleted is only
                # reported for an ack before the probe's ProbeTimeout fired, one probe
                # runs at a time, and an older probe has ended (acked, or ended after its
                # ProbeTimeout fired). A ProbeTimeout set in this same call belongs to
                # the next probe (started at once when a tick was pending) and is kept.
                # Not waking for them saves one wake of the four a steady member has per
                # probe interval (issue 10). tests/runtime/test_owner_loop.py checks
                # these engine properties through its public API.
                self._stale.update(earlier)
                earlier.clear()
                # round-trip times: metrics now, Serf's coordinates in a later layer
                if self.rtt_observer is not None:
                    self.rtt_observer(a.rtt)
            else:  # pragma: no cover - an action this driver does not know
                log.error("%s: unknown action %r", self.engine.name, a)
        if fresh:
            earlier.update(fresh)

    def _send(self, a: SendPacket) -> None:
        dest: tuple[str, int] | None = a.dest
        # IPv4 to an IPv4 peer, nearly every packet: the address is the socket's form
        if self._family != socket.AF_INET or ":" in a.dest[0]:
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
        """Refresh the snapshots other threads read, both of them, now."""
        self._last_publish = self._last_stats = trio.current_time()
        self.membership = self.engine.snapshot()
        self.stats = self._statistics()

    def _refresh(self, now: float) -> None:
        """The owner loop's periodic refresh, every ``PUBLISH_INTERVAL``. The membership
        snapshot costs a version check when nothing changed. The statistics are built
        anew each time (the engine counts states over the whole table, the counters are
        merged into fresh dicts): about 50 us at 16 members when a wake finds the caches
        cold, more than the rest of an idle turn. So they are rebuilt with every new
        membership snapshot (their gauges never disagree with it) and otherwise every
        ``STATS_INTERVAL``: other threads may see counters that much old. Owner-thread
        callers (``Node.statistics``) always get fresh ones through :meth:`publish`."""
        self._last_publish = now
        snap = self.engine.snapshot()
        if snap is not self.membership or now - self._last_stats >= STATS_INTERVAL:
            self.membership = snap
            self._last_stats = now
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
