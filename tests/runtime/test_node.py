"""The trio runtime on loopback sockets: joining, events, messages, tags, leave, crash,
keys, addresses and errors. Real time, every wait bounded by a deadline."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

import pytest
import trio

import swimpy
from swimpy import JoinError, MemberEvent, Node, UserMessage, open_node, profiles
from swimpy.core.member import EventKind, State
from swimpy.profiles import Config, ConfigError
from swimpy.runtime import sockets
from swimpy.runtime.seeds import parse_seed

KEY16 = bytes(range(16))
KEY32 = bytes(range(32))


def cfg(name: str, **kw: Any) -> Config:
    base: dict[str, Any] = {"name": name, "bind_addr": "127.0.0.1", "bind_port": 0}
    base.update(kw)
    return profiles.local(**base)


def addr(node: Node | swimpy.ThreadedNode) -> str:
    host, port = node.address
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


async def until(pred: Callable[[], bool], timeout: float, what: str) -> None:
    try:
        with trio.fail_after(timeout):
            while not pred():
                await trio.sleep(0.02)
    except trio.TooSlowError:
        raise AssertionError(f"timed out after {timeout}s waiting for {what}") from None


def alive(node: Node, *names: str) -> bool:
    return all((m := node.member(n)) is not None and m.state is State.ALIVE for n in names)


@asynccontextmanager
async def cluster(n: int, **kw: Any) -> AsyncIterator[list[Node]]:
    async with AsyncExitStack() as stack:
        nodes = [await stack.enter_async_context(open_node(cfg(f"n{i}", **kw)))
                 for i in range(n)]
        for node in nodes[1:]:
            assert await node.join([addr(nodes[0])]) == 1
        names = [x.name for x in nodes]
        await until(lambda: all(alive(x, *names) for x in nodes), 10, "everyone alive")
        yield nodes


def run(fn: Callable[[], Any]) -> None:
    trio.run(fn)


def test_join_members_tags_and_address() -> None:
    async def main() -> None:
        async with open_node(cfg("a"), tags={"role": "web"}) as a, open_node(cfg("b")) as b:
            assert a.address[0] == "127.0.0.1" and a.address[1] > 0
            assert a.name == "a" and [m.name for m in a.members()] == ["a"]
            assert await b.join([addr(a)]) == 1
            await until(lambda: alive(a, "a", "b") and alive(b, "a", "b"), 5, "a and b alive")
            seen = b.member("a")
            assert seen is not None and dict(seen.tags) == {"role": "web"}
            assert seen.port == a.address[1]
            assert {m.name for m in b.all_members()} == {"a", "b"}
            stats = a.statistics()
            assert stats.alive == 2 and stats.counters["streams_received"] >= 1
            assert stats.dropped == 0
    run(main)


def test_events_user_messages_and_broadcasts() -> None:
    async def main() -> None:
        async with open_node(cfg("a")) as a, open_node(cfg("b")) as b:
            events = a.events()
            await b.join([addr(a)])
            got: list[object] = []

            async def collect(want: Callable[[], bool]) -> None:
                with trio.fail_after(5):
                    async for ev in events:
                        got.append(ev)
                        if want():
                            return

            await collect(lambda: any(isinstance(e, MemberEvent) and e.member.name == "b"
                                      and e.kind is EventKind.JOINED for e in got))
            await until(lambda: alive(b, "a"), 5, "b sees a")
            await b.send("a", b"udp hello")
            await b.send("a", b"tcp hello", reliable=True)
            b.broadcast(b"to all")

            def payloads() -> set[bytes]:
                return {e.payload for e in got if isinstance(e, UserMessage)}
            await collect(lambda: {b"udp hello", b"tcp hello", b"to all"} <= payloads())
            tcp = [e for e in got if isinstance(e, UserMessage) and e.payload == b"tcp hello"]
            assert tcp[0].reliable and tcp[0].source is not None
            with pytest.raises(KeyError):
                await b.send("nobody", b"x")
    run(main)


def test_update_tags_leave_and_crash() -> None:
    async def main() -> None:
        async with cluster(2) as (a, b):
            async with open_node(cfg("c")) as c:
                await c.join([addr(a)])
                await until(lambda: alive(a, "c") and alive(b, "c"), 5, "c alive")
            # leaving the block stopped c without a leave: a crash as the others see it
            await b.update_tags({"v": "2"})
            await until(lambda: (m := a.member("b")) is not None and m.tags.get("v") == "2",
                        5, "a to see b's new tags")
            assert b.tags == {"v": "2"}
            await until(lambda: (m := a.member("c")) is not None and m.state is State.DEAD,
                        15, "a to declare c dead")
            await b.leave(timeout=2)
            await until(lambda: (m := a.member("b")) is not None and m.state is State.LEFT,
                        5, "a to see b left")
            assert "b" not in {m.name for m in a.members()}
            assert {"b", "c"} <= {m.name for m in a.all_members()}


def test_join_errors_list_every_address() -> None:
    async def main() -> None:
        closed = _closed_port()
        async with open_node(cfg("a")) as a:
            with pytest.raises(JoinError) as info:
                await a.join([f"127.0.0.1:{closed}", "no-such-host.invalid:7946"])
            text = str(info.value)
            assert f"127.0.0.1:{closed}" in text and "no-such-host.invalid" in text
            assert len(info.value.errors) == 2
            with pytest.raises(JoinError) as info:
                await a.join([f"127.0.0.1:{closed}"], retry_interval=0.05, retry_max=3)
            assert info.value.attempts == 3
            with pytest.raises(ValueError, match="not a port"):
                await a.join(["127.0.0.1:99999"])
            with pytest.raises(ValueError, match="at least one"):
                await a.join([])
    run(main)


def test_retry_join_waits_for_a_seed_that_comes_later() -> None:
    async def main() -> None:
        port = _closed_port()
        async with open_node(cfg("a")) as a, trio.open_nursery() as nursery:
            result: list[int] = []

            async def joiner() -> None:
                result.append(await a.join([f"localhost:{port}"], retry_interval=0.1))
            nursery.start_soon(joiner)
            await trio.sleep(0.3)  # let a few attempts fail first
            async with open_node(cfg("b", bind_port=port)) as b:
                await until(lambda: bool(result), 5, "the retry-join to succeed")
                assert result == [1]
                await until(lambda: alive(b, "a"), 5, "b sees a")
    run(main)


def test_rejoin_interval_heals_after_the_seed_forgot_us() -> None:
    async def main() -> None:
        async with open_node(cfg("a", reconnect_interval=1000.0)) as a:
            port = a.address[1]
            async with open_node(cfg("b")) as b:
                await a.join([addr(b)], rejoin_interval=0.2)
                await until(lambda: alive(b, "a"), 5, "b sees a")
            # a new b on the same port knows nothing of a; a's rejoin tells it
            async with open_node(cfg("b2", bind_port=_port_of(b))) as b2:
                await until(lambda: alive(b2, "a"), 5, "the new seed to learn a")
            assert port == a.address[1]
    run(main)


def test_ipv6_and_names() -> None:
    if not socket.has_ipv6 or not _can_bind("::1"):
        pytest.skip("no IPv6 loopback here")

    async def main() -> None:
        async with open_node(cfg("a6", bind_addr="::1")) as a, \
                open_node(cfg("b6", bind_addr="::1")) as b:
            assert a.address[0] == "::1"
            assert await b.join([f"[::1]:{a.address[1]}"]) == 1
            await until(lambda: alive(a, "b6"), 5, "a6 sees b6")
            assert a.member("b6") is not None and a.member("b6").addr == "::1"  # type: ignore[union-attr]
        # a dual-stack node takes IPv4 peers
        async with open_node(cfg("d", bind_addr="::", advertise_addr="127.0.0.1")) as d, \
                open_node(cfg("e")) as e:
            assert await e.join([f"127.0.0.1:{d.address[1]}"]) == 1
            await until(lambda: alive(d, "e") and alive(e, "d"), 5, "d and e alive")
    run(main)


def test_seed_parsing() -> None:
    assert parse_seed("10.0.0.1", 8301).port == 8301
    assert (parse_seed("[fe80::1]:7", 1).host, parse_seed("[fe80::1]:7", 1).port) == ("fe80::1", 7)
    assert parse_seed("::1", 9).host == "::1"
    assert parse_seed("name.example:80", 1).host == "name.example"
    for bad in ("", "[::1", "[::1]x", "a:b:c", "host:0", ":80"):
        with pytest.raises(ValueError):
            parse_seed(bad, 1)


def test_bind_and_config_errors() -> None:
    async def main() -> None:
        async with open_node(cfg("a")) as a:
            with pytest.raises(OSError, match=rf"127\.0\.0\.1:{a.address[1]}"):
                async with open_node(cfg("b", bind_port=a.address[1])):
                    pass  # pragma: no cover
        with pytest.raises(ValueError, match="tags or meta"):
            async with open_node(cfg("c"), tags={"a": "b"}, meta=b"x"):
                pass  # pragma: no cover
        with pytest.raises(ConfigError, match="name"):
            async with open_node(profiles.local(bind_addr="127.0.0.1", bind_port=0)):
                pass  # pragma: no cover
        with pytest.raises(OSError, match=r"192\.0\.2\.1"):
            async with open_node(cfg("d", bind_addr="192.0.2.1")):
                pass  # pragma: no cover
    run(main)


def test_wildcard_bind_advertises_a_private_address_or_says_what_to_set() -> None:
    config = cfg("w", bind_addr="0.0.0.0")
    ip = sockets.private_ip(4)
    if ip is None:
        with pytest.raises(ConfigError, match="advertise_addr"):
            sockets.advertise_address(config, 7946)
    else:
        assert sockets.advertise_address(config, 7946) == (ip, 7946)
    assert sockets.advertise_address(cfg("w", advertise_addr="10.1.2.3", advertise_port=99),
                                     7946) == ("10.1.2.3", 99)
    assert sockets.advertise_address(cfg("w"), 7000) == ("127.0.0.1", 7000)


def test_keyring_at_run_time() -> None:
    async def main() -> None:
        async with open_node(cfg("k", secret_keys=(KEY16,))) as k:
            assert k.keyring.list() == [KEY16]
            k.keyring.install(KEY32)
            assert k.keyring.list() == [KEY16, KEY32]
            with pytest.raises(ValueError):
                k.keyring.install(b"short")
            with pytest.raises(ValueError, match="primary"):
                k.keyring.remove(KEY16)
            with pytest.raises(ValueError, match="not installed"):
                k.keyring.use(bytes(24))
            k.keyring.use(KEY32)
            k.keyring.remove(KEY16)
            assert k.keyring.list() == [KEY32]
    run(main)


def test_encrypted_cluster_and_wrong_key_stays_out(caplog: pytest.LogCaptureFixture) -> None:
    async def main() -> None:
        async with open_node(cfg("a", secret_keys=(KEY32,))) as a, \
                open_node(cfg("b", secret_keys=(KEY32,))) as b, \
                open_node(cfg("x", secret_keys=(KEY16,))) as x:
            await b.join([addr(a)])
            await until(lambda: alive(a, "b"), 5, "encrypted pair")
            with pytest.raises(JoinError):
                await x.join([addr(a)])
            assert a.member("x") is None
            assert a.statistics().dropped > 0
    with caplog.at_level("WARNING"):
        run(main)
    assert any("decrypt" in r.getMessage() or "key" in r.getMessage() for r in caplog.records)


def test_turning_encryption_on_in_a_live_cluster() -> None:
    """The rolling procedure of docs/embedding.md: no member is ever suspected."""
    async def main() -> None:
        async with cluster(3) as nodes:
            events = [n.events() for n in nodes]
            for n in nodes:  # 1. install the key, still sending and accepting plain text
                n.keyring.set_verify(incoming=False, outgoing=False)
                n.keyring.install(KEY32)
            await trio.sleep(1.5)
            for n in nodes:  # 2. encrypt what we send (everyone accepts both)
                n.keyring.set_verify(incoming=False, outgoing=True)
            await trio.sleep(1.5)
            for n in nodes:  # 3. refuse plain text
                n.keyring.set_verify(incoming=True, outgoing=True)
            await trio.sleep(1.5)
            names = [n.name for n in nodes]
            assert all(alive(n, *names) for n in nodes)
            for sub in events:
                while sub._buffer:
                    ev = sub._buffer.popleft()
                    assert not (isinstance(ev, MemberEvent) and ev.kind is not EventKind.UPDATED), ev
            async with open_node(cfg("plain")) as plain:
                with pytest.raises(JoinError):
                    await plain.join([addr(nodes[0])])
    run(main)


def test_slow_subscriber_loses_oldest_events_and_they_are_counted() -> None:
    async def main() -> None:
        async with open_node(cfg("a")) as a:
            slow = a.events(buffer=2)
            async with open_node(cfg("b")) as b:
                await b.join([addr(a)])
                for i in range(5):
                    await b.send("a", b"%d" % i)
                await until(lambda: a.statistics().counters.get("events_dropped", 0) >= 3, 5,
                            "drops to be counted")
                got = [await slow.__anext__(), await slow.__anext__()]
                assert [e.payload for e in got if isinstance(e, UserMessage)] == [b"3", b"4"]
    run(main)


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _port_of(node: Node) -> int:
    return node.address[1]


def _can_bind(host: str) -> bool:
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as s:
            s.bind((host, 0))
        return True
    except OSError:
        return False


def test_lan_and_wan_pools_in_one_process() -> None:
    def server(name: str) -> tuple[Config, Config]:
        loopback = {"bind_addr": "127.0.0.1", "bind_port": 0}
        return profiles.lan_and_wan(name, "dc1", lan_overrides=loopback,
                                    wan_overrides=loopback)

    async def main() -> None:
        (lan1, wan1), (lan2, wan2) = server("s1"), server("s2")
        assert (wan1.name, wan1.profile, wan1.probe_interval) == ("s1.dc1", "wan", 5.0)
        async with open_node(lan1) as l1, open_node(wan1) as w1, \
                open_node(lan2) as l2, open_node(wan2) as w2:
            assert l1.address[1] != w1.address[1]
            await l2.join([addr(l1)])
            await w2.join([addr(w1)])
            await until(lambda: alive(l1, "s1", "s2") and alive(w1, "s1.dc1", "s2.dc1"), 5,
                        "both pools formed")
            assert {m.name for m in l1.members()} == {"s1", "s2"}
            assert {m.name for m in w1.members()} == {"s1.dc1", "s2.dc1"}
    run(main)


def test_lan_and_wan_defaults_and_errors() -> None:
    lan, wan = profiles.lan_and_wan("web", "east")
    assert (lan.bind_port, wan.bind_port) == (8301, 8302)
    assert (lan.name, wan.name) == ("web", "web.east")
    with pytest.raises(ConfigError, match="datacenter"):
        profiles.lan_and_wan("web", "a.b")
    with pytest.raises(ConfigError, match="name"):
        profiles.lan_and_wan("", "dc1")
