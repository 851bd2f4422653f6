"""The thread host: a node on its own ``trio.run`` in a background thread, for programs that
are not trio (plain blocking code here, asyncio in :mod:`swimpy.aio`).

The node's loop owns its thread, so a host program that blocks its own event loop or
holds its own threads busy for seconds does not make the node miss its probes, which is
what gets members of peers sharing the host's loop declared dead. trio's guest mode would
run on the host's loop and inherit its stalls, so it is not used.

Calls from other threads are forwarded to the node's trio thread; queries read the
snapshots the owner loop publishes and never wait. Event callbacks run on a dispatcher
thread of their own, never the engine's, with a bounded buffer (the oldest events are
dropped and counted when callbacks fall behind).
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import logging
import threading
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any, ParamSpec, TypeVar

import trio

from swimpy.core.member import Address, Member
from swimpy.core.snapshot import Statistics
from swimpy.profiles import Config
from swimpy.runtime.driver import NodeClosed
from swimpy.runtime.events import DEFAULT_EVENT_BUFFER, DropCounter, Event
from swimpy.runtime.node import Node, open_node

log = logging.getLogger("swimpy.runtime")

P = ParamSpec("P")
T = TypeVar("T")

#: how long :func:`start_node` waits for the node's thread to bind and start
START_TIMEOUT = 30.0


class ThreadedNode:
    """A node running in its own thread (:func:`start_node`). The same methods as
    :class:`swimpy.Node`, as blocking calls; safe to call from any thread but the node's
    own (a delegate hook or event callback must not wait on the node)."""

    def __init__(self, node: Node, token: trio.lowlevel.TrioToken, calls: trio.Nursery,
                 stop: Callable[[], None], thread: threading.Thread) -> None:
        self._node = node
        self._token = token
        self._calls = calls
        self._stop = stop
        self._thread = thread
        self._closed = False
        self._dispatcher: _Dispatcher | None = None
        self._dispatcher_lock = threading.Lock()
        self.name: str = node.name
        self.address: Address = node.address
        self.config: Config = node.config
        self.keyring = ThreadedKeyring(self)

    # ------------------------------------------------------------------ queries

    def members(self) -> list[Member]:
        return self._node.members()

    def member(self, name: str) -> Member | None:
        return self._node.member(name)

    def all_members(self) -> list[Member]:
        return self._node.all_members()

    def statistics(self) -> Statistics:
        return self._node.statistics()

    @property
    def tags(self) -> Mapping[str, str]:
        return self._node.tags

    @property
    def closed(self) -> bool:
        return self._closed

    # ------------------------------------------------------------------ forwarding

    def submit(self, fn: Callable[P, Awaitable[T]], *args: P.args,
               **kwargs: P.kwargs) -> concurrent.futures.Future[T]:
        """Run ``await fn(*args, **kwargs)`` on the node's trio thread; a future of its
        result (the asyncio host awaits it with ``asyncio.wrap_future``)."""
        fut: concurrent.futures.Future[T] = concurrent.futures.Future()

        async def runner() -> None:
            if not fut.set_running_or_notify_cancel():
                return
            try:
                result = await fn(*args, **kwargs)
            except trio.Cancelled:
                fut.set_exception(NodeClosed("the node was closed during the call"))
                raise
            except Exception as exc:
                fut.set_exception(exc)
            else:
                fut.set_result(result)

        self._check_thread()
        try:
            self._token.run_sync_soon(self._calls.start_soon, runner)
        except trio.RunFinishedError:
            raise NodeClosed("the node is closed") from None
        return fut

    def call_sync(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """Run the plain function ``fn`` on the node's trio thread and return its result."""
        self._check_thread()
        try:
            return trio.from_thread.run_sync(lambda: fn(*args, **kwargs),
                                             trio_token=self._token)
        except trio.RunFinishedError:
            raise NodeClosed("the node is closed") from None

    def post(self, fn: Callable[[], object]) -> None:
        """Run ``fn()`` on the node's trio thread soon, without waiting."""
        try:
            self._token.run_sync_soon(fn)
        except trio.RunFinishedError:
            raise NodeClosed("the node is closed") from None

    def _check_thread(self) -> None:
        if threading.current_thread() is self._thread:
            raise RuntimeError("a ThreadedNode's blocking methods cannot be called from the "
                               "node's own thread (a delegate hook): it would wait on itself")
        if self._closed:
            raise NodeClosed("the node is closed")

    # ------------------------------------------------------------------ requests

    def join(self, addresses: Iterable[str], *, retry_interval: float | None = None,
             retry_max: int = 0, rejoin_interval: float | None = None) -> int:
        """As :meth:`swimpy.Node.join`, blocking until done."""
        return self.submit(self._node.join, list(addresses), retry_interval=retry_interval,
                           retry_max=retry_max, rejoin_interval=rejoin_interval).result()

    def leave(self, timeout: float = 5.0) -> None:
        self.submit(self._node.leave, timeout).result()

    def update_tags(self, tags: Mapping[str, str], timeout: float = 5.0) -> None:
        self.submit(self._node.update_tags, dict(tags), timeout).result()

    def update_meta(self, meta: bytes, timeout: float = 5.0) -> None:
        self.submit(self._node.update_meta, bytes(meta), timeout).result()

    def send(self, name: str, payload: bytes, *, reliable: bool = False) -> None:
        self.submit(self._node.send, name, bytes(payload), reliable=reliable).result()

    def broadcast(self, payload: bytes) -> None:
        self.call_sync(self._node.broadcast, bytes(payload))

    # ------------------------------------------------------------------ events

    def on_event(self, callback: Callable[[Event], object], *,
                 buffer: int = DEFAULT_EVENT_BUFFER) -> None:
        """Call ``callback(event)`` for every member event and user message from now on,
        on a dispatcher thread (one for the node; callbacks run in order). Exceptions
        are logged, never raised into the node. ``buffer`` applies to the first callback."""
        with self._dispatcher_lock:
            if self._dispatcher is None:
                self._dispatcher = _Dispatcher(self.name, buffer, self._node._driver.hub.dropped)
                self.call_sync(self._node._driver.hub.add_listener, self._dispatcher.push)
            self._dispatcher.add(callback)

    def remove_callback(self, callback: Callable[[Event], object]) -> None:
        if self._dispatcher is not None:
            self._dispatcher.remove(callback)

    # ------------------------------------------------------------------ closing

    def close(self, timeout: float = 10.0) -> None:
        """Stop the node (without leaving: call :meth:`leave` first for that) and its
        thread; idempotent."""
        if self._closed:
            return
        self._closed = True
        with contextlib.suppress(trio.RunFinishedError):
            self._token.run_sync_soon(self._stop)
        if threading.current_thread() is not self._thread:
            self._thread.join(timeout)
        if self._dispatcher is not None:
            self._dispatcher.stop()

    def __enter__(self) -> ThreadedNode:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class ThreadedKeyring:
    """``node.keyring`` of a :class:`ThreadedNode`: the same methods, forwarded."""

    def __init__(self, tnode: ThreadedNode) -> None:
        self._t = tnode

    def list(self) -> list[bytes]:
        return self._t.call_sync(self._t._node.keyring.list)

    def install(self, key: bytes) -> None:
        self._t.call_sync(self._t._node.keyring.install, bytes(key))

    def use(self, key: bytes) -> None:
        self._t.call_sync(self._t._node.keyring.use, bytes(key))

    def remove(self, key: bytes) -> None:
        self._t.call_sync(self._t._node.keyring.remove, bytes(key))

    def set_verify(self, *, incoming: bool, outgoing: bool) -> None:
        keyring = self._t._node.keyring
        self._t.call_sync(lambda: keyring.set_verify(incoming=incoming, outgoing=outgoing))


class _Dispatcher:
    """The thread that runs event callbacks, fed by the owner loop without waiting."""

    def __init__(self, name: str, capacity: int, dropped: DropCounter) -> None:
        if capacity < 1:
            raise ValueError(f"an event buffer needs room for at least one event, not {capacity}")
        self._capacity = capacity
        self._dropped = dropped
        self._events: deque[Event | None] = deque()
        self._cond = threading.Condition()
        self._callbacks: list[Callable[[Event], object]] = []
        self._thread = threading.Thread(target=self._run, name=f"swimpy-events-{name}",
                                        daemon=True)
        self._thread.start()

    def add(self, cb: Callable[[Event], object]) -> None:
        with self._cond:
            self._callbacks.append(cb)

    def remove(self, cb: Callable[[Event], object]) -> None:
        with self._cond:
            if cb in self._callbacks:
                self._callbacks.remove(cb)

    def push(self, event: Event) -> None:
        with self._cond:
            if len(self._events) >= self._capacity:
                self._events.popleft()
                self._dropped.add()
            self._events.append(event)
            self._cond.notify()

    def stop(self) -> None:
        with self._cond:
            self._events.append(None)
            self._cond.notify()
        if threading.current_thread() is not self._thread:
            self._thread.join(5.0)

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._events:
                    self._cond.wait()
                event = self._events.popleft()
                callbacks = list(self._callbacks)
            if event is None:
                return
            for cb in callbacks:
                try:
                    cb(event)
                except Exception:
                    log.exception("event callback %r failed", cb)


def start_node(config: Config, *, tags: Mapping[str, str] | None = None,
               meta: bytes | None = None, delegate: object | None = None,
               **options: Any) -> ThreadedNode:
    """Start a node on its own ``trio.run`` in a background thread and return it once its
    sockets are bound (errors binding or in the configuration are raised here)."""
    ready = threading.Event()
    box: dict[str, Any] = {}

    async def host() -> None:
        stop = trio.Event()
        async with open_node(config, tags=tags, meta=meta, delegate=delegate,
                             **options) as node, trio.open_nursery() as calls:
            box["started"] = (node, trio.lowlevel.current_trio_token(), calls, stop.set)
            ready.set()
            await stop.wait()
            calls.cancel_scope.cancel()

    def run() -> None:
        try:
            trio.run(host)
        except BaseException as exc:  # surfaced to start_node's caller or logged
            if ready.is_set():
                log.exception("%s: the node's thread failed", config.name)
            else:
                box["error"] = exc
                ready.set()

    thread = threading.Thread(target=run, name=f"swimpy-{config.name or 'node'}", daemon=True)
    thread.start()
    if not ready.wait(START_TIMEOUT):
        raise TimeoutError(f"the node's thread did not start within {START_TIMEOUT}s")
    if "error" in box:
        error: BaseException = box["error"]
        raise error
    node, token, calls, stop = box["started"]
    return ThreadedNode(node, token, calls, stop, thread)
