"""The owner loop's timing, in virtual time (trio's MockClock) over loopback sockets."""

from __future__ import annotations

import ipaddress
import math
import os
import random
import socket
from contextlib import AsyncExitStack
from typing import Any

import trio
import trio.testing

from swimpy import open_node, profiles
from swimpy.core.actions import PingCompleted, SendPacket, SetTimer
from swimpy.core.codec import ObjectCodec
from swimpy.core.engine import Engine
from swimpy.core.member import EventKind, State
from swimpy.core.timers import ProbeTick, ProbeTimeout
from swimpy.profiles import Config
from swimpy.runtime import MemberEvent
from swimpy.wire.messages import Ack, Alive, Ping, encode_message
from swimpy.wire.packet import WireOptions, decode_packet_untrusted, encode_packet


def cfg(name: str, **kw: Any) -> Config:
    values: dict[str, Any] = {"name": name, "bind_addr": "127.0.0.1", "bind_port": 0, **kw}
    return profiles.lan(**values)


def test_acks_waiting_in_the_socket_are_read_before_the_probe_timeout_fires() -> None:
    """The test plays a peer that answers every ping, but only after moving the clock
    past the prober's ack deadline (and the next probe tick): the ack is already in the
    socket when the owner wakes, so it must be read before the due timers fire. Firing
    timers first would fail every probe and suspect a healthy peer."""
    clock = trio.testing.MockClock()

    async def main() -> None:
        # a plain non-blocking socket: the test reads it without yielding to the node
        peer = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        peer.bind(("127.0.0.1", 0))
        peer.setblocking(False)
        peer_port = peer.getsockname()[1]
        config = cfg("a", push_pull_interval=0.0, gossip_interval=0.0)
        async with open_node(config) as a:
            events = a.events()
            alive = Alive(1, "p", ipaddress.ip_address("127.0.0.1").packed, peer_port, b"",
                          config.vsn)
            peer.sendto(encode_packet(encode_message(alive), WireOptions(), crc=False,
                                            nonce_source=os.urandom), a.address)
            answered = 0
            while answered < 20:
                ping = await _next_ping(peer, clock)
                ack = encode_packet(encode_message(Ack(ping.seq_no, b"")), WireOptions(),
                                    crc=False, nonce_source=os.urandom)
                peer.sendto(ack, a.address)
                # time moves past the ack deadline before the owner task runs again
                clock.jump(config.probe_interval)
                await trio.testing.wait_all_tasks_blocked()
                answered += 1
            stats = a.statistics().counters
            assert stats["acks"] >= answered
            assert stats.get("probes_failed", 0) == 0
            assert stats.get("suspicions", 0) == 0
            m = a.member("p")
            assert m is not None and m.state is State.ALIVE
            kinds = []
            while events._buffer:
                ev = events._buffer.popleft()
                if isinstance(ev, MemberEvent):
                    kinds.append(ev.kind)
            assert EventKind.SUSPECT not in kinds
        peer.close()

    trio.run(main, clock=clock)


async def _next_ping(sock: socket.socket, clock: trio.testing.MockClock) -> Ping:
    """Move virtual time in small steps until the node pings us."""
    for _ in range(1000):
        while True:
            try:
                data = sock.recv(65536)
            except BlockingIOError:
                break
            for msg in decode_packet_untrusted(data, WireOptions()).messages:
                if isinstance(msg, Ping):
                    return msg
        clock.jump(0.05)
        await trio.testing.wait_all_tasks_blocked()
    raise AssertionError("no ping within 50 virtual seconds")


def test_virtual_time_cluster_steady_state_and_crash_detection() -> None:
    """Five LAN nodes for ten virtual minutes: no suspicion; then one stops without
    leaving and every other declares it dead within the bound the serf tests use."""
    clock = trio.testing.MockClock(autojump_threshold=0)

    async def main() -> None:
        async with AsyncExitStack() as stack:
            nodes = [await stack.enter_async_context(open_node(cfg(f"v{i}")))
                     for i in range(4)]
            subs = [n.events() for n in nodes]
            async with open_node(cfg("victim")) as victim:
                for n in nodes:
                    await n.join([f"127.0.0.1:{victim.address[1]}"])
                names = [n.name for n in nodes] + ["victim"]
                with trio.fail_after(30):
                    while not all(_alive(n, names) for n in nodes):
                        await trio.sleep(0.1)
                for sub in subs:
                    sub._buffer.clear()
                await trio.sleep(600)
                for n, sub in zip(nodes, subs, strict=True):
                    bad = [e for e in sub._buffer if isinstance(e, MemberEvent)
                           and e.kind in (EventKind.SUSPECT, EventKind.DEAD)]
                    assert bad == [], (n.name, bad)
                    assert n.statistics().counters.get("probes_failed", 0) == 0
            crashed_at = trio.current_time()
            bound = 4 * 1.0 + 1.0 + 6 * 4 * max(1.0, math.log10(5)) + 5
            with trio.fail_after(bound):
                while not all((m := n.member("victim")) is not None and m.state is State.DEAD
                              for n in nodes):
                    await trio.sleep(0.1)
            took = trio.current_time() - crashed_at
            assert took < bound

    trio.run(main, clock=clock)


def _alive(node: Any, names: list[str]) -> bool:
    return all((m := node.member(n)) is not None and m.state is State.ALIVE for n in names)


# --- stale probe timeouts (Driver._dispatch) ------------------------------------------
#
# The owner loop drops a ProbeTimeout timer instead of waking for it once the probe it
# guards got its direct ack. That is only safe while the engine keeps these properties,
# checked here through its public API on a sans-IO engine.


def _engine() -> Engine:
    config = profiles.lan(name="self", bind_port=7946)
    engine = Engine(config, advertise=("127.0.0.1", 7946), rng=random.Random(7),
                    nonce_source=random.Random(1).randbytes, codec=ObjectCodec())
    engine.start(0.0)
    for i, name in enumerate("bcde"):
        alive = Alive(1, name, bytes([127, 0, 0, 1]), 8000 + i, b"", config.vsn)
        engine.packet_received(("127.0.0.1", 8000), (alive,), 0.5)
    return engine


def _probe(engine: Engine, now: float) -> tuple[Ping, ProbeTimeout]:
    acts = engine.timer_fired(ProbeTick(), now)
    pings = [m for a in acts if isinstance(a, SendPacket) for m in a.data  # type: ignore[attr-defined]
             if isinstance(m, Ping)]
    timeouts = [a.timer for a in acts
                if isinstance(a, SetTimer) and isinstance(a.timer, ProbeTimeout)]
    assert len(pings) == 1 and len(timeouts) == 1
    assert timeouts[0].seq == pings[0].seq_no
    return pings[0], timeouts[0]


def test_engine_ignores_the_probe_timeout_of_a_directly_acked_probe() -> None:
    engine = _engine()
    ping, timeout = _probe(engine, 2.0)
    acts = engine.packet_received(("127.0.0.1", 8000), (Ack(ping.seq_no, b""),), 2.01)
    assert any(isinstance(a, PingCompleted) for a in acts)
    stats, snap = engine.statistics(), engine.snapshot()
    assert engine.timer_fired(timeout, 2.5) == []
    assert engine.statistics() == stats and engine.snapshot() is snap
    # and the next probe's timeout is live again
    _ping2, timeout2 = _probe(engine, 3.0)
    assert engine.timer_fired(timeout2, 3.5) != []


def test_engine_reports_no_ping_completed_for_an_ack_after_the_probe_timeout() -> None:
    engine = _engine()
    ping, timeout = _probe(engine, 2.0)
    assert engine.timer_fired(timeout, 2.5) != []  # indirect probing / fallback begins
    acts = engine.packet_received(("127.0.0.1", 8000), (Ack(ping.seq_no, b""),), 2.6)
    assert not any(isinstance(a, PingCompleted) for a in acts)


def test_engine_starts_a_pending_probe_in_the_acking_call_with_a_live_timeout() -> None:
    # A tick while a probe runs is kept; the ack then starts the next probe at once, and
    # that probe's ProbeTimeout comes in the same action list as the PingCompleted (the
    # driver keeps timeouts set in the acking call).
    engine = _engine()
    ping, _timeout = _probe(engine, 2.0)
    assert [a for a in engine.timer_fired(ProbeTick(), 2.2)
            if isinstance(a, SetTimer) and isinstance(a.timer, ProbeTimeout)] == []
    acts = engine.packet_received(("127.0.0.1", 8000), (Ack(ping.seq_no, b""),), 2.3)
    assert any(isinstance(a, PingCompleted) for a in acts)
    new = [a.timer for a in acts if isinstance(a, SetTimer) and isinstance(a.timer, ProbeTimeout)]
    assert len(new) == 1 and new[0].seq != ping.seq_no
    assert engine.timer_fired(new[0], 2.8) != []


def test_owner_loop_drops_acked_probe_timeouts_and_still_suspects_a_silent_peer() -> None:
    """A fake peer answers ten pings, then none: the acked probes' timeouts never wake
    the loop, and the unanswered probe's timeout still fires and leads to suspicion."""
    clock = trio.testing.MockClock()

    async def main() -> None:
        peer = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        peer.bind(("127.0.0.1", 0))
        peer.setblocking(False)
        peer_port = peer.getsockname()[1]
        config = cfg("a", push_pull_interval=0.0, gossip_interval=0.0)
        async with open_node(config) as a:
            driver = a._driver
            alive = Alive(1, "p", ipaddress.ip_address("127.0.0.1").packed, peer_port, b"",
                          config.vsn)
            peer.sendto(encode_packet(encode_message(alive), WireOptions(), crc=False,
                                      nonce_source=os.urandom), a.address)
            for _ in range(10):
                ping = await _next_ping(peer, clock)
                peer.sendto(encode_packet(encode_message(Ack(ping.seq_no, b"")),
                                          WireOptions(), crc=False, nonce_source=os.urandom),
                            a.address)
                await trio.testing.wait_all_tasks_blocked()
            clock.jump(config.probe_timeout)  # past the last acked probe's timeout
            await trio.testing.wait_all_tasks_blocked()
            assert driver.stale_timers_dropped >= 9
            assert a.statistics().counters.get("probes_failed", 0) == 0
            # now silent: the next probe's timeout must reach the engine
            for _ in range(400):
                m = a.member("p")
                if m is not None and m.state is State.SUSPECT:
                    break
                clock.jump(0.05)
                await trio.testing.wait_all_tasks_blocked()
            m = a.member("p")
            assert m is not None and m.state is State.SUSPECT
            assert a.statistics().counters.get("probes_failed", 0) >= 1
        peer.close()

    trio.run(main, clock=clock)
