"""Fan-out of member events and user messages to subscribers, each on a bounded buffer.

The owner loop publishes without ever waiting: a subscriber that falls behind loses its
oldest events (counted as ``events_dropped`` in the node's statistics), so a slow
consumer can never stall probing. Trio subscribers iterate a :class:`Subscription`;
the thread host and the asyncio host register a listener that hands events to their
own thread or loop, with the same drop-oldest rule there.
"""

from __future__ import annotations

import threading
import weakref
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeAlias

import trio

from swimpy.core.actions import MemberEvent
from swimpy.core.member import Address

#: events each subscriber may have waiting before the oldest are dropped
DEFAULT_EVENT_BUFFER = 1024


@dataclass(frozen=True, slots=True)
class UserMessage:
    """A user message (``node.send``, reliable or not) or a user broadcast arrived.
    ``source`` is the sender's address for direct messages, None for broadcasts."""

    payload: bytes
    reliable: bool
    source: Address | None


Event: TypeAlias = MemberEvent | UserMessage


class DropCounter:
    """A count of events lost to full buffers, shared by every subscriber of a node
    (incremented from the engine's thread and, for asyncio subscribers, the loop's)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.value = 0

    def add(self, n: int = 1) -> None:
        with self._lock:
            self.value += n


class Subscription:
    """``async for event in node.events()``: events from the moment of subscription on.

    Iteration ends when the node closes. Leaving the loop (or dropping the object)
    unsubscribes."""

    def __init__(self, hub: EventHub, capacity: int) -> None:
        if capacity < 1:
            raise ValueError(f"an event buffer needs room for at least one event, not {capacity}")
        self._hub = hub
        self._buffer: deque[Event] = deque()
        self._capacity = capacity
        self._lot = trio.lowlevel.ParkingLot()
        self._closed = False

    def _push(self, event: Event) -> None:
        if len(self._buffer) >= self._capacity:
            self._buffer.popleft()
            self._hub.dropped.add()
        self._buffer.append(event)
        self._lot.unpark_all()

    def _close(self) -> None:
        self._closed = True
        self._lot.unpark_all()

    def __aiter__(self) -> Subscription:
        return self

    async def __anext__(self) -> Event:
        while not self._buffer:
            if self._closed:
                raise StopAsyncIteration
            await self._lot.park()
        await trio.lowlevel.checkpoint()
        return self._buffer.popleft()

    def close(self) -> None:
        """Stop receiving events."""
        self._hub.unsubscribe(self)
        self._close()

    async def __aenter__(self) -> Subscription:
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.close()


class EventHub:
    """Owner side: publish to every trio subscription and listener."""

    def __init__(self) -> None:
        self._subscriptions: weakref.WeakSet[Subscription] = weakref.WeakSet()
        self._listeners: list[Callable[[Event], None]] = []
        self._on_close: list[Callable[[], None]] = []
        self.dropped = DropCounter()
        self.closed = False

    def subscribe(self, capacity: int = DEFAULT_EVENT_BUFFER) -> Subscription:
        sub = Subscription(self, capacity)
        if self.closed:
            sub._close()
        else:
            self._subscriptions.add(sub)
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        self._subscriptions.discard(sub)

    def add_listener(self, listener: Callable[[Event], None]) -> None:
        """``listener(event)`` runs on the engine's thread and must not block."""
        self._listeners.append(listener)

    def remove_listener(self, listener: Callable[[Event], None]) -> None:
        if listener in self._listeners:
            self._listeners.remove(listener)

    def add_close_callback(self, callback: Callable[[], None]) -> None:
        """``callback()`` runs on the engine's thread when the node closes (at once if
        it is closed already); it must not block."""
        if self.closed:
            callback()
        else:
            self._on_close.append(callback)

    def remove_close_callback(self, callback: Callable[[], None]) -> None:
        if callback in self._on_close:
            self._on_close.remove(callback)

    @property
    def active(self) -> bool:
        return bool(self._listeners) or len(self._subscriptions) > 0

    def publish(self, event: Event) -> None:
        for sub in list(self._subscriptions):
            sub._push(event)
        for listener in self._listeners:
            listener(event)

    def close(self) -> None:
        self.closed = True
        for sub in list(self._subscriptions):
            sub._close()
        self._subscriptions.clear()
        callbacks, self._on_close = self._on_close, []
        for cb in callbacks:
            cb()
