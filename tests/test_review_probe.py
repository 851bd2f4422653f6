"""Review findings: probe-loop and alive-merge divergences from memberlist v0.2.2.

Each test states what memberlist does (function named) and fails on the current engine.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

from swimpy.core.node import Node
from swimpy.core.types import (
    Action,
    EventKind,
    MemberEvent,
    PacketReceived,
    PingCompleted,
    SendPacket,
    State,
    TimerFired,
)
from swimpy.profiles import lan
from swimpy.wire.messages import Ack, Alive, PacketMessage, Ping

IP = bytes([127, 0, 0, 1])
VSN = bytes([1, 5, 2, 2, 5, 4])
SRC = ("127.0.0.1", 9999)


def _node() -> Node:
    node = Node(
        lan(name="self", bind_port=7946),
        advertise=("127.0.0.1", 7946),
        rng=random.Random(7),
        now=0.0,
        nonce_source=random.Random(1).randbytes,
        encode=False,
    )
    node.start(0.0)
    return node


def _feed(node: Node, *msgs: PacketMessage, now: float = 1.0) -> list[Action]:
    return node.handle(PacketReceived(SRC, None, tuple(msgs)), now)


def _alive(name: str, port: int, inc: int = 1, vsn: bytes = VSN) -> Alive:
    return Alive(inc, name, IP, port, b"", vsn)


def _pings(acts: Sequence[Action]) -> list[Ping]:
    return [m for a in acts if isinstance(a, SendPacket) for m in a.messages if isinstance(m, Ping)]


def _two_peers_probe_b(node: Node, now: float = 2.0) -> Ping:
    """Members b and c; the next probe goes to b. Returns the ping to b."""
    _feed(node, _alive("b", 8001), _alive("c", 8002))
    node._order = ["b", "c", "self"]
    node._probe_index = 0
    pings = _pings(node.handle(TimerFired(("probe",)), now))
    assert [p.node for p in pings] == ["b"]
    return pings[0]


def test_tick_missed_during_a_probe_starts_the_next_probe_when_it_ends() -> None:
    # memberlist probe() runs from triggerFunc on a time.Ticker whose channel holds one
    # tick: a tick that falls due while probeNode is still waiting (here: exactly at the
    # failed probe's deadline) is consumed as soon as probeNode returns, so the next
    # member is probed at once. swimpy drops that tick ("probe_ticks_skipped") and waits
    # a whole extra probe_interval after every failed probe.
    n = _node()
    ping = _two_peers_probe_b(n)
    n.handle(TimerFired(("probe_timeout", ping.seq_no)), 2.5)
    n.handle(TimerFired(("probe",)), 3.0)  # due while the probe of b is in flight
    acts = n.handle(TimerFired(("probe_end", ping.seq_no)), 3.0)
    assert [p.node for p in _pings(acts)] == ["c"]


def test_ack_after_probe_timeout_saves_the_target_but_reports_no_rtt() -> None:
    # memberlist probeNode calls PingDelegate.NotifyPingComplete only for an ack taken in
    # the first select (within ProbeTimeout). After that, acks (late direct ones, or
    # indirect ones relayed with a nil payload) only end the probe successfully. Serf
    # feeds NotifyPingComplete into Vivaldi, so a late RTT must not be reported.
    n = _node()
    n._awareness.apply_delta(1)
    ping = _two_peers_probe_b(n)
    n.handle(TimerFired(("probe_timeout", ping.seq_no)), 2.5)
    acts = _feed(n, Ack(ping.seq_no, b"coord"), now=2.7)
    assert [a for a in acts if isinstance(a, PingCompleted)] == []
    assert n.health_score == 0  # still a successful probe (awarenessDelta -1)
    acts = n.handle(TimerFired(("probe_end", ping.seq_no)), 4.0)
    assert [a for a in acts if isinstance(a, MemberEvent)] == []


def test_failed_probe_does_not_suspect_a_member_that_refuted_meanwhile() -> None:
    # memberlist probeNode works on a copy of the nodeState taken when the probe started
    # and suspects suspect{Incarnation: node.Incarnation}. If an alive with a higher
    # incarnation arrived during the probe, suspectNode drops the stale suspicion
    # (s.Incarnation < state.Incarnation). swimpy re-reads the member at the deadline and
    # suspects the fresh incarnation, forcing another refutation round.
    n = _node()
    ping = _two_peers_probe_b(n)
    n.handle(TimerFired(("probe_timeout", ping.seq_no)), 2.5)
    _feed(n, _alive("b", 8001, inc=2), now=2.6)
    acts = n.handle(TimerFired(("probe_end", ping.seq_no)), 3.0)
    assert (EventKind.SUSPECT, "b") not in [
        (a.kind, a.member.name) for a in acts if isinstance(a, MemberEvent)
    ]
    m = n.member("b")
    assert m is not None and m.state == State.ALIVE and m.incarnation == 2


def test_alive_keeps_its_port_when_the_sender_speaks_protocol_1() -> None:
    # memberlist handleAlive / readRemoteState replace the port by the local BindPort only
    # if *our own* ProtocolVersion() < 2 or the port is 0. swimpy looks at the sender's
    # PCur (vsn[2]) instead and rewrites a protocol-1 peer's real port to ours.
    n = _node()  # protocol_version 2, bind_port 7946
    _feed(n, _alive("b", 8001, vsn=bytes([1, 5, 1, 2, 5, 4])))
    m = n.member("b")
    assert m is not None and m.port == 8001
