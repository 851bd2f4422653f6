"""TCP streams: inbound connections (push/pull, TCP fallback pings, reliable user messages)
and the streams the engine opens, each in its own task.

Inbound: a connection is read in chunks handed to the owner loop until the engine answers
(``ReplyStream``) or closes it; ``tcp_timeout`` bounds the whole exchange and
``MAX_INBOUND_BYTES`` what a peer may send. At most ``MAX_INBOUND_CONNECTIONS`` are open at
once and at most 128 push/pull replies are being written (memberlist's
``maxPushPullRequests``); beyond either, connections are closed and counted.

Outbound (``OpenStream``): dial, write, and (with ``expect_reply``) hand the reply over in
chunks until the engine says it has it all (``CloseOutbound``), within the action's
timeout. Every failure becomes a ``StreamFailed`` for the engine; none escapes the task.
"""

from __future__ import annotations

import itertools
import logging
from collections import Counter
from typing import TYPE_CHECKING

import trio

from swimpy.core.actions import OpenStream, ReplyStream
from swimpy.core.inputs import (
    ConnectionClosed,
    ConnId,
    StreamFailed,
    StreamId,
    StreamReceived,
    StreamResponse,
    StreamSent,
)
from swimpy.runtime.sockets import to_peer
from swimpy.wire.constants import MAX_PUSH_PULL_REQUESTS
from swimpy.wire.stream import MAX_STREAM_BYTES

if TYPE_CHECKING:
    from swimpy.runtime.driver import Driver

log = logging.getLogger("swimpy.runtime")

#: bytes read from the socket at a time
CHUNK = 65536
#: inbound connections open at once (the engine reads at most 256 requests at once too)
MAX_INBOUND_CONNECTIONS = 256
#: the most a peer may send on one connection: the largest request the engine accepts
#: plus an encryption and label header
MAX_INBOUND_BYTES = MAX_STREAM_BYTES + 4096


class _Inbound:
    __slots__ = ("answered", "push_pull", "read_scope", "reply")

    def __init__(self) -> None:
        self.answered = trio.Event()
        self.read_scope: trio.CancelScope | None = None
        self.reply: bytes | None = None
        self.push_pull = False


class Streams:
    def __init__(self, driver: Driver) -> None:
        self._driver = driver
        self._inbound: dict[ConnId, _Inbound] = {}
        self._outbound: dict[StreamId, trio.CancelScope] = {}
        self._conn_ids = itertools.count(1)
        self._push_pulls = 0
        self.counters: Counter[str] = Counter()

    # ------------------------------------------------------------------ inbound

    async def accept_loop(self, listener: trio.socket.SocketType) -> None:
        driver = self._driver
        while True:
            try:
                sock, addr = await listener.accept()
            except OSError as exc:
                # out of file descriptors and the like: keep serving, slowly
                self.counters["tcp_accept_errors"] += 1
                log.warning("%s: accepting a TCP connection failed: %s", driver.engine.name, exc)
                await trio.sleep(0.1)
                continue
            if len(self._inbound) >= MAX_INBOUND_CONNECTIONS:
                self.counters["inbound_refused"] += 1
                log.debug("%s: refused a connection from %s: %d open already",
                          driver.engine.name, addr, len(self._inbound))
                sock.close()
                continue
            conn_id = ConnId(next(self._conn_ids))
            conn = _Inbound()
            self._inbound[conn_id] = conn
            driver.nursery.start_soon(self._serve, conn_id, conn, sock, addr)

    async def _serve(self, conn_id: ConnId, conn: _Inbound, sock: trio.socket.SocketType,
                     addr: tuple[object, ...]) -> None:
        driver = self._driver
        source = to_peer(sock.family, addr)
        stream = trio.SocketStream(sock)
        failure: str | None = None
        try:
            with trio.move_on_after(driver.config.tcp_timeout) as deadline:
                failure = await self._read(conn_id, conn, stream, source)
                if failure is None:
                    await conn.answered.wait()
                    if conn.reply is not None:
                        await stream.send_all(conn.reply)
            if deadline.cancelled_caught:
                failure = f"no complete exchange within tcp_timeout={driver.config.tcp_timeout}s"
                self.counters["inbound_timeouts"] += 1
        except (OSError, trio.BrokenResourceError, trio.ClosedResourceError) as exc:
            failure = f"connection error: {exc}"
        finally:
            if conn.push_pull:
                self._push_pulls -= 1
            del self._inbound[conn_id]
            if failure is not None and not conn.answered.is_set():
                driver.handoff_end(ConnectionClosed(conn_id, failure))
            await trio.aclose_forcefully(stream)

    async def _read(self, conn_id: ConnId, conn: _Inbound, stream: trio.SocketStream,
                    source: tuple[str, int]) -> str | None:
        """Hand what the peer sends to the owner until the engine answers; a reason if
        the connection failed first."""
        driver = self._driver
        total = 0
        with trio.CancelScope() as scope:
            conn.read_scope = scope
            if conn.answered.is_set():
                return None
            while True:
                data = await stream.receive_some(CHUNK)
                total += len(data)
                if total > MAX_INBOUND_BYTES:
                    self.counters["inbound_too_large"] += 1
                    return f"more than {MAX_INBOUND_BYTES} bytes"
                if not driver.handoff(StreamReceived(conn_id, source, bytes(data))):
                    return "handoff queue full"
                if not data:
                    break  # EOF: the engine answers (an error) or closes
        return None

    def reading(self, conn_id: ConnId) -> bool:
        """Whether the engine still waits for bytes of inbound connection ``conn_id``."""
        conn = self._inbound.get(conn_id)
        return conn is not None and not conn.answered.is_set()

    def answer(self, conn_id: ConnId, reply: ReplyStream | None) -> None:
        """The engine's reply (or None: close without one) for an inbound connection."""
        conn = self._inbound.get(conn_id)
        if conn is None or conn.answered.is_set():
            return
        if reply is not None:
            if reply.push_pull:
                if self._push_pulls >= MAX_PUSH_PULL_REQUESTS:
                    self.counters["push_pull_refused"] += 1
                    reply = None
                else:
                    self._push_pulls += 1
                    conn.push_pull = True
            if reply is not None:
                conn.reply = reply.data  # type: ignore[assignment]
        conn.answered.set()
        if conn.read_scope is not None:
            conn.read_scope.cancel()

    # ------------------------------------------------------------------ outbound

    def open(self, a: OpenStream) -> None:
        scope = trio.CancelScope()
        self._outbound[a.stream_id] = scope
        self._driver.nursery.start_soon(self._dial, a, scope)

    def close_outbound(self, stream_id: StreamId) -> None:
        scope = self._outbound.pop(stream_id, None)
        if scope is not None:
            scope.cancel()

    async def _dial(self, a: OpenStream, scope: trio.CancelScope) -> None:
        driver = self._driver
        sid = a.stream_id
        failure: str | None = None
        try:
            with scope, trio.move_on_after(a.timeout) as deadline:
                failure = await self._exchange(a)
            if deadline.cancelled_caught:
                failure = f"no reply within {a.timeout:g}s"
        except (OSError, trio.BrokenResourceError, trio.ClosedResourceError) as exc:
            failure = str(exc) or type(exc).__name__
        finally:
            # still ours: the engine has not closed it, so it must hear how it ended
            if self._outbound.pop(sid, None) is not None:
                if failure is None:
                    failure = "stream ended"
                driver.handoff_end(StreamFailed(sid, failure))

    async def _exchange(self, a: OpenStream) -> str | None:
        driver = self._driver
        stream = await trio.open_tcp_stream(a.dest[0], a.dest[1])
        async with stream:
            await stream.send_all(a.data)  # type: ignore[arg-type]
            if not a.expect_reply:
                if self._outbound.pop(a.stream_id, None) is not None:
                    driver.handoff_end(StreamSent(a.stream_id))
                return None
            while True:
                data = await stream.receive_some(CHUNK)
                if not data:
                    return "connection closed before the reply was complete"
                if not driver.handoff(StreamResponse(a.stream_id, bytes(data))):
                    return "handoff queue full"
