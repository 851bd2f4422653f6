"""swimpy for asyncio programs: the node runs on its own trio thread (the thread host), and
this module gives it awaitable methods and an async iterator of events on the caller's
asyncio loop.

::

    async with swimpy.aio.open_node(profiles.lan(name="api-1")) as node:
        await node.join(["10.0.0.5:8301"])
        async for event in node.events():
            ...

Because the node does not share the asyncio loop, a coroutine that blocks the loop for
seconds (a slow synchronous call) delays the program's own work but not the node's
probes and acks: the others do not suspect it.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections import deque
from collections.abc import AsyncIterator, Iterable, Mapping
from contextlib import asynccontextmanager
from typing import Any

from swimpy.core.member import Address, Member
from swimpy.core.snapshot import Statistics
from swimpy.profiles import Config
from swimpy.runtime.driver import NodeClosed
from swimpy.runtime.events import DEFAULT_EVENT_BUFFER, DropCounter, Event
from swimpy.runtime.thread import ThreadedNode, start_node


class Node:
    """A node for asyncio code (what :func:`open_node` yields). Queries never block;
    the other methods are awaitables that run on the node's own thread."""

    def __init__(self, threaded: ThreadedNode) -> None:
        self._t = threaded
        self.name: str = threaded.name
        self.address: Address = threaded.address
        self.config: Config = threaded.config
        self.keyring = Keyring(threaded)

    @property
    def threaded(self) -> ThreadedNode:
        """The underlying :class:`swimpy.ThreadedNode` (blocking methods)."""
        return self._t

    def members(self) -> list[Member]:
        return self._t.members()

    def member(self, name: str) -> Member | None:
        return self._t.member(name)

    def all_members(self) -> list[Member]:
        return self._t.all_members()

    def statistics(self) -> Statistics:
        return self._t.statistics()

    @property
    def tags(self) -> Mapping[str, str]:
        return self._t.tags

    async def join(self, addresses: Iterable[str], *, retry_interval: float | None = None,
                   retry_max: int = 0, rejoin_interval: float | None = None) -> int:
        node = self._t._node
        return await asyncio.wrap_future(self._t.submit(
            node.join, list(addresses), retry_interval=retry_interval, retry_max=retry_max,
            rejoin_interval=rejoin_interval))

    async def leave(self, timeout: float = 5.0) -> None:
        await asyncio.wrap_future(self._t.submit(self._t._node.leave, timeout))

    async def update_tags(self, tags: Mapping[str, str], timeout: float = 5.0) -> None:
        await asyncio.wrap_future(self._t.submit(self._t._node.update_tags, dict(tags),
                                                 timeout))

    async def update_meta(self, meta: bytes, timeout: float = 5.0) -> None:
        await asyncio.wrap_future(self._t.submit(self._t._node.update_meta, bytes(meta),
                                                 timeout))

    async def send(self, name: str, payload: bytes, *, reliable: bool = False) -> None:
        await asyncio.wrap_future(self._t.submit(self._t._node.send, name, bytes(payload),
                                                 reliable=reliable))

    def broadcast(self, payload: bytes) -> None:
        """Queue a broadcast (returns at once; the node's thread sends it)."""
        self._t.post(functools.partial(self._t._node.broadcast, bytes(payload)))

    def events(self, *, buffer: int = DEFAULT_EVENT_BUFFER) -> EventStream:
        """Member events and user messages from now on, as an async iterator on this
        loop; the oldest are dropped (and counted) when it falls behind ``buffer``."""
        return EventStream(self._t, asyncio.get_running_loop(), buffer)


class Keyring:
    """``node.keyring`` for asyncio: the same methods, as awaitables."""

    def __init__(self, threaded: ThreadedNode) -> None:
        self._k = threaded.keyring

    async def list(self) -> list[bytes]:
        return await asyncio.to_thread(self._k.list)

    async def install(self, key: bytes) -> None:
        await asyncio.to_thread(self._k.install, bytes(key))

    async def use(self, key: bytes) -> None:
        await asyncio.to_thread(self._k.use, bytes(key))

    async def remove(self, key: bytes) -> None:
        await asyncio.to_thread(self._k.remove, bytes(key))

    async def set_verify(self, *, incoming: bool, outgoing: bool) -> None:
        await asyncio.to_thread(functools.partial(self._k.set_verify, incoming=incoming,
                                                  outgoing=outgoing))


class EventStream:
    """An async iterator of a node's events on one asyncio loop; ``close()`` (or
    ``async with``) unsubscribes."""

    def __init__(self, threaded: ThreadedNode, loop: asyncio.AbstractEventLoop,
                 capacity: int) -> None:
        if capacity < 1:
            raise ValueError(f"an event buffer needs room for at least one event, not {capacity}")
        self._t = threaded
        self._loop = loop
        self._capacity = capacity
        self._buffer: deque[Event] = deque()
        self._ready = asyncio.Event()
        self._closed = False
        hub = threaded._node._driver.hub
        self._dropped: DropCounter = hub.dropped
        threaded.call_sync(hub.add_listener, self._from_node)
        threaded.call_sync(hub.add_close_callback, self._node_closed)

    def _node_closed(self) -> None:
        # on the node's thread: the iteration ends once the buffer is drained
        with contextlib.suppress(RuntimeError):
            self._loop.call_soon_threadsafe(self._end)

    def _end(self) -> None:
        self._closed = True
        self._ready.set()

    def _from_node(self, event: Event) -> None:
        # on the node's thread: hand over to the loop without waiting
        # (RuntimeError: the loop is closed; nobody is listening any more)
        with contextlib.suppress(RuntimeError):
            self._loop.call_soon_threadsafe(self._push, event)

    def _push(self, event: Event) -> None:
        if len(self._buffer) >= self._capacity:
            self._buffer.popleft()
            self._dropped.add()
        self._buffer.append(event)
        self._ready.set()

    def __aiter__(self) -> EventStream:
        return self

    async def __anext__(self) -> Event:
        while not self._buffer:
            if self._closed:
                raise StopAsyncIteration
            self._ready.clear()
            await self._ready.wait()
        return self._buffer.popleft()

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._ready.set()
        hub = self._t._node._driver.hub
        if not self._t.closed:
            def unsubscribe() -> None:
                hub.remove_listener(self._from_node)
                hub.remove_close_callback(self._node_closed)
            with contextlib.suppress(NodeClosed):  # closed meanwhile: nothing to undo
                self._t.post(unsubscribe)

    async def __aenter__(self) -> EventStream:
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.close()


@asynccontextmanager
async def open_node(config: Config, *, tags: Mapping[str, str] | None = None,
                    meta: bytes | None = None, delegate: object | None = None,
                    **options: Any) -> AsyncIterator[Node]:
    """Start a node on its own thread and yield its asyncio handle; on exit the node
    stops without leaving (``await node.leave()`` first for a graceful exit)."""
    threaded = await asyncio.to_thread(
        functools.partial(start_node, config, tags=tags, meta=meta, delegate=delegate,
                          **options))
    try:
        yield Node(threaded)
    finally:
        await asyncio.to_thread(threaded.close)


__all__ = ["EventStream", "Keyring", "Node", "open_node"]
