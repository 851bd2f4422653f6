"""The thread host (``swimpy.start_node``) and the asyncio host (``swimpy.aio``)."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest

import swimpy
from swimpy import MemberEvent, NodeClosed, UserMessage, profiles, start_node
from swimpy.core.member import EventKind, State
from swimpy.profiles import Config
from swimpy.runtime.events import Event


def cfg(name: str, profile: str = "local", **kw: Any) -> Config:
    values: dict[str, Any] = {"name": name, "bind_addr": "127.0.0.1", "bind_port": 0, **kw}
    return profiles.PROFILES[profile](**values)


def addr(node: swimpy.ThreadedNode | swimpy.aio.Node) -> str:
    return f"{node.address[0]}:{node.address[1]}"


def wait_until(pred: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.02)


def test_threaded_node_blocking_calls_and_callbacks() -> None:
    with start_node(cfg("a"), tags={"role": "db"}) as a, start_node(cfg("b")) as b:
        got: list[Event] = []
        threads: set[str] = set()

        def on_event(ev: Event) -> None:
            threads.add(threading.current_thread().name)
            got.append(ev)

        a.on_event(on_event)
        assert b.join([addr(a)]) == 1
        # join returns once merged: the blocking caller sees the result at once
        assert {m.name for m in b.members()} == {"a", "b"}
        wait_until(lambda: any(isinstance(e, MemberEvent) and e.member.name == "b"
                               and e.kind is EventKind.JOINED for e in got), 5, "join event")
        b.send("a", b"ping", reliable=True)
        wait_until(lambda: any(isinstance(e, UserMessage) and e.payload == b"ping"
                               for e in got), 5, "user message")
        assert threads == {"swimpy-events-a"}
        b.update_tags({"x": "1"})
        wait_until(lambda: (m := a.member("b")) is not None and m.tags == {"x": "1"}, 5, "tags")
        assert b.member("a") is not None and b.member("a").tags == {"role": "db"}  # type: ignore[union-attr]
        assert a.statistics().alive == 2
        b.leave(timeout=2)
        wait_until(lambda: (m := a.member("b")) is not None and m.state is State.LEFT, 5, "left")
        a.keyring.install(bytes(32))
        assert a.keyring.list() == [bytes(32)]
        with pytest.raises(ValueError, match="primary"):
            a.keyring.remove(bytes(32))
    assert a.closed and b.closed
    with pytest.raises(NodeClosed):
        a.join(["127.0.0.1:1"])


def test_start_node_raises_bind_errors_in_the_caller() -> None:
    with start_node(cfg("a")) as a, pytest.raises(OSError, match="cannot bind"):
        start_node(cfg("b", bind_port=a.address[1]))


def test_callbacks_may_call_back_into_the_node_but_hooks_may_not_block() -> None:
    with start_node(cfg("a")) as a, start_node(cfg("b")) as b:
        seen: list[int] = []
        # a callback runs on the dispatcher thread, so blocking calls are allowed there
        a.on_event(lambda ev: seen.append(len(a.members())))
        b.join([addr(a)])
        wait_until(lambda: bool(seen), 5, "a callback")


def test_asyncio_node_events_and_calls() -> None:
    async def main() -> None:
        async with swimpy.aio.open_node(cfg("a")) as a, swimpy.aio.open_node(cfg("b")) as b:
            events = a.events()
            assert await b.join([addr(a)]) == 1
            await b.send("a", b"hi")
            b.broadcast(b"all")
            payloads: set[bytes] = set()
            joined = False
            async with asyncio.timeout(5):
                async for ev in events:
                    if isinstance(ev, MemberEvent) and ev.member.name == "b":
                        joined = True
                    if isinstance(ev, UserMessage):
                        payloads.add(ev.payload)
                    if joined and payloads == {b"hi", b"all"}:
                        break
            events.close()
            await a.keyring.install(bytes(16))
            assert await a.keyring.list() == [bytes(16)]
            await b.update_meta(b"raw")
            await b.leave(timeout=2)
    asyncio.run(main())


def test_asyncio_program_that_blocks_its_loop_is_not_suspected() -> None:
    """Real time on purpose: the host's loop is blocked for 10 s by ``time.sleep``; the
    node answers probes from its own thread, so no peer suspects it."""
    async def main() -> None:
        async with swimpy.aio.open_node(cfg("host", "lan")) as node:
            with start_node(cfg("p1", "lan")) as p1, start_node(cfg("p2", "lan")) as p2:
                seen: list[Event] = []
                p1.on_event(seen.append)
                p2.on_event(seen.append)
                await asyncio.to_thread(p1.join, [addr(node)])
                await asyncio.to_thread(p2.join, [addr(node)])
                names = {"host", "p1", "p2"}
                for p in (p1, p2):
                    await asyncio.to_thread(wait_until, lambda p=p: {  # type: ignore[misc]
                        m.name for m in p.members() if m.state is State.ALIVE} == names,
                        10, "all alive")
                time.sleep(10)  # the program blocks its own loop
                suspects = [e for e in seen if isinstance(e, MemberEvent)
                            and e.kind in (EventKind.SUSPECT, EventKind.DEAD)]
                assert suspects == []
                for p in (p1, p2):
                    assert p.statistics().counters.get("suspicions", 0) == 0
                    m = p.member("host")
                    assert m is not None and m.state is State.ALIVE
                    assert p.statistics().counters["acks"] >= 5
    asyncio.run(main())


def test_asyncio_events_end_when_the_node_closes() -> None:
    async def main() -> None:
        async with swimpy.aio.open_node(cfg("a")) as a:
            events = a.events()
        got = [ev async for ev in events]
        assert got == []
    asyncio.run(main())
