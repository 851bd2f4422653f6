"""Engine mechanisms, one at a time, on a single Node fed decoded messages (virtual time)."""

from __future__ import annotations

import random
from collections.abc import Sequence

import pytest

from swimpy.core import (
    Action,
    ConnId,
    Delegate,
    Engine,
    EventKind,
    JoinCompleted,
    JoinRequested,
    LeaveCompleted,
    LeaveRequested,
    Member,
    MemberEvent,
    ObjectCodec,
    OpenStream,
    PacketReceived,
    PingCompleted,
    ReplyStream,
    SendPacket,
    SetTimer,
    State,
    StreamReceived,
    StreamResponse,
    TimerFired,
)
from swimpy.core.queue import BroadcastQueue
from swimpy.core.timers import (
    GossipTick,
    ProbeEnd,
    ProbeTick,
    ProbeTimeout,
    ReapTick,
    ReconnectTick,
    RelayEnd,
    SuspicionTimeout,
    Timer,
)
from swimpy.profiles import lan
from swimpy.testing import assert_table_consistent
from swimpy.wire.messages import (
    Ack,
    Alive,
    Dead,
    IndirectPing,
    Nack,
    PacketMessage,
    Ping,
    PushNodeState,
    Suspect,
)
from swimpy.wire.stream import PushPull

IP = bytes([127, 0, 0, 1])
VSN = bytes([1, 5, 2, 2, 5, 4])
SRC = ("127.0.0.1", 9999)


def mk(name: str = "self", delegate: Delegate | None = None, **cfg: object) -> Engine:
    config = lan(name=name, bind_port=7946).replace(**cfg)
    node = Engine(
        config,
        advertise=("127.0.0.1", 7946),
        rng=random.Random(7),
        nonce_source=random.Random(1).randbytes,
        codec=ObjectCodec(),
        delegate=delegate,
    )
    node.start(0.0)
    return node


def feed(node: Engine, *msgs: PacketMessage, now: float = 1.0) -> list[Action]:
    return node.handle(PacketReceived(SRC, tuple(msgs)), now)


def alive(
    name: str, inc: int = 1, port: int = 8000, meta: bytes = b"", ip: bytes = IP, vsn: bytes = VSN
) -> Alive:
    return Alive(inc, name, ip, port, meta, vsn)


def events(acts: Sequence[Action]) -> list[tuple[EventKind, str]]:
    return [(a.kind, a.member.name) for a in acts if isinstance(a, MemberEvent)]


def sent(acts: Sequence[Action]) -> list[PacketMessage]:
    out: list[PacketMessage] = []
    for a in acts:
        if isinstance(a, SendPacket):
            assert isinstance(a.data, tuple)
            out.extend(a.data)
    return out


def packet_messages(pkt: SendPacket) -> tuple[PacketMessage, ...]:
    assert isinstance(pkt.data, tuple)  # the object codec sends message tuples
    return pkt.data


def clear_queue(node: Engine) -> None:
    """Forget what is queued, to look at what the next input queues."""
    node._gossip.queue = BroadcastQueue(node.config.retransmit_mult)


def queued(node: Engine) -> list[PacketMessage]:
    return [b.message for b in node._gossip.queue._items]


def timer_keys(acts: Sequence[Action]) -> list[Timer]:
    return [a.timer for a in acts if isinstance(a, SetTimer)]


def timer_at(acts: Sequence[Action], key: Timer) -> list[float]:
    return [a.at for a in acts if isinstance(a, SetTimer) and a.timer == key]


def suspicion_timers(acts: Sequence[Action], name: str) -> list[tuple[SuspicionTimeout, float]]:
    return [
        (a.timer, a.at)
        for a in acts
        if isinstance(a, SetTimer) and isinstance(a.timer, SuspicionTimeout)
        and a.timer.name == name
    ]


# ------------------------------------------------------------------------ alive / merge


def test_alive_for_new_node_adds_it_emits_joined_and_regossips() -> None:
    n = mk()
    acts = feed(n, alive("b"))
    assert events(acts) == [(EventKind.JOINED, "b")]
    m = n.member("b")
    assert m is not None and m.state == State.ALIVE and m.address == ("127.0.0.1", 8000)
    assert any(isinstance(x, Alive) and x.node == "b" for x in queued(n))


def test_alive_with_same_incarnation_is_idempotent() -> None:
    n = mk()
    feed(n, alive("b"))
    clear_queue(n)
    acts = feed(n, alive("b"))
    assert events(acts) == []
    assert queued(n) == []


def test_alive_with_higher_incarnation_and_new_meta_emits_updated() -> None:
    n = mk()
    feed(n, alive("b", meta=b"x"))
    acts = feed(n, alive("b", inc=2, meta=b"y"))
    assert events(acts) == [(EventKind.UPDATED, "b")]
    m = n.member("b")
    assert m is not None and m.meta == b"y" and m.incarnation == 2


def test_alive_with_zero_versions_is_never_added() -> None:
    n = mk()
    feed(n, alive("b", vsn=bytes(6)))
    assert n.member("b") is None
    assert n.stats["dropped_bad_version"] == 1


def test_alive_with_same_incarnation_does_not_revive_a_dead_node() -> None:
    n = mk()
    feed(n, alive("b", inc=3))
    feed(n, Dead(3, "b", "c"))
    feed(n, alive("b", inc=3))
    m = n.member("b")
    assert m is not None and m.state == State.DEAD
    acts = feed(n, alive("b", inc=4))
    assert events(acts) == [(EventKind.JOINED, "b")]


def test_suspect_cleared_only_by_strictly_higher_incarnation() -> None:
    n = mk()
    feed(n, alive("b"), alive("c"), alive("d"))
    feed(n, Suspect(1, "b", "c"))
    feed(n, alive("b", inc=1))
    assert n.member("b").state == State.SUSPECT  # type: ignore[union-attr]
    acts = feed(n, alive("b", inc=2))
    assert (EventKind.REFUTED, "b") in events(acts)
    assert n.member("b").state == State.ALIVE  # type: ignore[union-attr]
    assert "b" not in n._members.suspicions


# Merge rules as a table: (starting state of b at incarnation 5, incoming message) ->
# (state after, incarnation after).
MERGE_TABLE = [
    (State.ALIVE, alive("b", inc=4), State.ALIVE, 5),
    (State.ALIVE, alive("b", inc=5), State.ALIVE, 5),
    (State.ALIVE, alive("b", inc=6), State.ALIVE, 6),
    (State.ALIVE, Suspect(4, "b", "x"), State.ALIVE, 5),
    (State.ALIVE, Suspect(5, "b", "x"), State.SUSPECT, 5),
    (State.ALIVE, Suspect(7, "b", "x"), State.SUSPECT, 7),
    (State.ALIVE, Dead(4, "b", "x"), State.ALIVE, 5),
    (State.ALIVE, Dead(5, "b", "x"), State.DEAD, 5),
    (State.ALIVE, Dead(6, "b", "b"), State.LEFT, 6),
    (State.SUSPECT, alive("b", inc=5), State.SUSPECT, 5),
    (State.SUSPECT, alive("b", inc=6), State.ALIVE, 6),
    (State.SUSPECT, Suspect(6, "b", "y"), State.SUSPECT, 5),  # confirmation only
    (State.SUSPECT, Dead(5, "b", "x"), State.DEAD, 5),
    (State.SUSPECT, Dead(4, "b", "x"), State.SUSPECT, 5),
    (State.DEAD, alive("b", inc=5), State.DEAD, 5),
    (State.DEAD, alive("b", inc=6), State.ALIVE, 6),
    (State.DEAD, Suspect(9, "b", "x"), State.DEAD, 5),
    (State.DEAD, Dead(9, "b", "x"), State.DEAD, 5),
    (State.LEFT, alive("b", inc=6), State.ALIVE, 6),
    (State.LEFT, Dead(9, "b", "x"), State.LEFT, 5),
]


@pytest.mark.parametrize(("start", "msg", "state", "inc"), MERGE_TABLE)
def test_merge_rules_table(start: State, msg: PacketMessage, state: State, inc: int) -> None:
    n = mk()
    feed(n, alive("b", inc=5), alive("c"), alive("d"), alive("e"))
    if start == State.SUSPECT:
        feed(n, Suspect(5, "b", "x"))
    elif start == State.DEAD:
        feed(n, Dead(5, "b", "x"))
    elif start == State.LEFT:
        feed(n, Dead(5, "b", "b"))
    assert n.member("b").state == start  # type: ignore[union-attr]
    feed(n, msg, now=2.0)
    m = n.member("b")
    assert m is not None
    assert (m.state, m.incarnation) == (state, inc)


def test_merge_state_trusts_remote_alive_and_left_but_only_suspects_remote_dead() -> None:
    n = mk()
    feed(n, alive("b"), alive("c"), alive("d"))
    remote = (
        PushNodeState("b", IP, 8000, b"", 1, int(State.DEAD), VSN),
        PushNodeState("c", IP, 8000, b"", 2, int(State.LEFT), VSN),
        PushNodeState("e", IP, 8001, b"", 1, int(State.ALIVE), VSN),
    )
    n._members.merge_state(remote, 2.0)
    assert n.member("b").state == State.SUSPECT  # type: ignore[union-attr]
    assert n.member("c").state == State.LEFT  # type: ignore[union-attr]
    assert n.member("e").state == State.ALIVE  # type: ignore[union-attr]


def test_merge_state_of_a_list_is_merging_its_entries_one_by_one() -> None:
    # merge_state looks every name up at once; entries naming a member twice, or after
    # an entry that changed the table, must see the table as it is by then
    remote = (
        PushNodeState("b", IP, 8000, b"", 3, int(State.ALIVE), VSN),
        PushNodeState("b", IP, 8000, b"", 3, int(State.SUSPECT), VSN),
        PushNodeState("b", IP, 8000, b"", 3, int(State.ALIVE), VSN),
        PushNodeState("c", IP, 8000, b"", 1, int(State.ALIVE), VSN),
        PushNodeState("e", IP, 8001, b"", 1, int(State.ALIVE), VSN),
        PushNodeState("e", IP, 8001, b"", 2, int(State.ALIVE), VSN),
        PushNodeState("e", IP, 8001, b"", 2, int(State.ALIVE), VSN),
        PushNodeState("c", IP, 8000, b"", 4, int(State.LEFT), VSN),
        PushNodeState("self", IP, 7946, b"", 1, int(State.ALIVE), VSN),
    )
    together, apart = mk(), mk()
    for n in (together, apart):
        feed(n, alive("b"), alive("c"), alive("d"))
    acts_together = together.handle(PacketReceived(SRC, ()), 2.0)
    together._members.merge_state(remote, 2.0)
    acts_together += together._out.take()
    acts_apart = apart.handle(PacketReceived(SRC, ()), 2.0)
    for r in remote:
        apart._members.merge_state((r,), 2.0)
    acts_apart += apart._out.take()
    assert acts_together == acts_apart
    assert together.table() == apart.table()
    assert together.statistics().counters == apart.statistics().counters
    assert sorted((m.name, m.state, m.incarnation) for m in together.table().values()) == [
        ("b", State.SUSPECT, 3), ("c", State.LEFT, 4), ("d", State.ALIVE, 1),
        ("e", State.ALIVE, 2), ("self", State.ALIVE, 1)]


# --------------------------------------------------------------------------- refutation


def test_suspect_about_self_is_refuted_with_higher_incarnation() -> None:
    n = mk()
    before = n.health_score
    feed(n, Suspect(1, "self", "b"))
    me = n.member("self")
    assert me is not None and me.state == State.ALIVE and me.incarnation == 2
    assert n.health_score == before + 1
    assert any(isinstance(m, Alive) and m.node == "self" and m.incarnation == 2 for m in queued(n))


def test_dead_about_self_is_refuted_past_the_accused_incarnation() -> None:
    n = mk()
    feed(n, Dead(7, "self", "b"))
    me = n.member("self")
    assert me is not None and me.state == State.ALIVE and me.incarnation == 8


def test_alive_about_self_with_other_meta_is_refuted() -> None:
    n = mk()
    feed(n, Alive(1, "self", IP, 7946, b"other", VSN))
    me = n.member("self")
    assert me is not None and me.incarnation == 2 and me.meta == b""


def test_alive_about_self_with_same_incarnation_and_meta_is_ignored() -> None:
    n = mk()
    clear_queue(n)
    feed(n, Alive(1, "self", IP, 7946, b"", n.config.vsn))
    assert n.incarnation == 1 and queued(n) == []


# ------------------------------------------------------------------------ name conflicts


class Recorder(Delegate):
    def __init__(self) -> None:
        self.conflicts: list[tuple[Member, Member]] = []
        self.merges: list[int] = []
        self.veto = False
        self.refuse_alive: set[str] = set()

    def notify_conflict(self, existing: Member, other: Member) -> None:
        self.conflicts.append((existing, other))

    def notify_merge(self, peers: Sequence[Member]) -> bool:
        self.merges.append(len(peers))
        return not self.veto

    def notify_alive(self, peer: Member) -> bool:
        return peer.name not in self.refuse_alive

    def ack_payload(self) -> bytes:
        return b"coord"


def test_same_name_from_other_address_is_a_conflict_and_ignored() -> None:
    d = Recorder()
    n = mk(delegate=d)
    feed(n, alive("b", port=8000))
    feed(n, alive("b", inc=9, port=8001))
    assert n.member("b").port == 8000  # type: ignore[union-attr]
    assert len(d.conflicts) == 1 and d.conflicts[0][1].port == 8001
    assert n.stats["name_conflicts"] == 1


def test_dead_name_is_reclaimed_by_new_address_after_reclaim_time() -> None:
    n = mk(dead_node_reclaim_time=30.0)
    feed(n, alive("b", port=8000))
    feed(n, Dead(1, "b", "x"), now=1.0)
    feed(n, alive("b", inc=1, port=8001), now=10.0)
    assert n.member("b").port == 8000  # type: ignore[union-attr]
    feed(n, alive("b", inc=1, port=8001), now=40.0)
    m = n.member("b")
    assert m is not None and m.port == 8001 and m.state == State.ALIVE


def test_left_name_is_reclaimed_by_new_address_at_once() -> None:
    n = mk()
    feed(n, alive("b", port=8000))
    feed(n, Dead(1, "b", "b"))
    feed(n, alive("b", inc=1, port=8001))
    assert n.member("b").port == 8001  # type: ignore[union-attr]


def test_alive_filter_delegate_can_refuse_members() -> None:
    d = Recorder()
    d.refuse_alive.add("evil")
    n = mk(delegate=d)
    feed(n, alive("evil"), alive("good"))
    assert n.member("evil") is None and n.member("good") is not None


def test_cidrs_allowed_filters_packets_and_advertised_addresses() -> None:
    n = mk(cidrs_allowed=("127.0.0.0/8",))
    feed(n, alive("far", ip=bytes([10, 0, 0, 1])))
    assert n.member("far") is None
    acts = n.handle(PacketReceived(("10.1.1.1", 1), (alive("x"),)), 1.0)
    assert acts == [] and n.member("x") is None
    assert n.stats["dropped_cidr"] == 2


# ------------------------------------------------------------------------------ probing


def _probe_start(n: Engine, now: float = 2.0) -> tuple[Ping, list[Action]]:
    acts = n.handle(TimerFired(ProbeTick()), now)
    pings = [m for m in sent(acts) if isinstance(m, Ping)]
    assert len(pings) == 1
    return pings[0], acts


def test_direct_ack_completes_probe_with_rtt_and_payload_and_lowers_health() -> None:
    n = mk()
    feed(n, alive("b"))
    n._awareness.apply_delta(3)
    ping, _ = _probe_start(n, 2.0)
    assert ping.node == "b" and ping.source_node == "self"
    acts = feed(n, Ack(ping.seq_no, b"pl"), now=2.01)
    done = [a for a in acts if isinstance(a, PingCompleted)]
    assert len(done) == 1 and done[0].name == "b" and done[0].payload == b"pl"
    assert done[0].rtt == pytest.approx(0.01)
    assert n.health_score == 2


def test_failed_probe_sends_indirect_probes_and_tcp_fallback_then_suspects() -> None:
    n = mk()
    feed(
        n,
        alive("b", port=8001),
        alive("c", port=8002),
        alive("d", port=8003),
        alive("e", port=8004),
    )
    n._members.order.set_round(["b", "self", "c", "d", "e"])
    ping, _ = _probe_start(n, 2.0)
    assert ping.node == "b"
    acts = n.handle(TimerFired(ProbeTimeout(ping.seq_no)), 2.5)
    ind = [m for m in sent(acts) if isinstance(m, IndirectPing)]
    assert len(ind) == 3 and all(i.node == "b" and i.port == 8001 and i.nack for i in ind)
    dests = sorted(a.dest[1] for a in acts if isinstance(a, SendPacket))
    assert dests == [8002, 8003, 8004]  # the helpers, never the target itself
    streams = [a for a in acts if isinstance(a, OpenStream)]
    assert len(streams) == 1 and isinstance(streams[0].data, Ping)
    assert streams[0].timeout == pytest.approx(0.5)
    feed(n, Nack(ping.seq_no), now=2.9)
    acts = n.handle(TimerFired(ProbeEnd(ping.seq_no)), 3.0)
    assert events(acts) == [(EventKind.SUSPECT, "b")]
    # 3 nacks expected, 1 received: health score += 2
    assert n.health_score == 2


def test_failed_probe_with_all_nacks_received_keeps_health() -> None:
    n = mk()
    feed(n, alive("b"), alive("c"))
    n._members.order.set_round(["b", "c", "self"])
    ping, _ = _probe_start(n)
    n.handle(TimerFired(ProbeTimeout(ping.seq_no)), 2.5)
    feed(n, Nack(ping.seq_no), now=2.8)
    n.handle(TimerFired(ProbeEnd(ping.seq_no)), 3.0)
    assert n.health_score == 0
    assert n.member("b").state == State.SUSPECT  # type: ignore[union-attr]


def test_failed_probe_without_nack_capable_helpers_adds_one() -> None:
    n = mk()
    feed(n, alive("b"), alive("c", vsn=bytes([1, 3, 2, 2, 5, 4])))
    n._members.order.set_round(["b", "c", "self"])
    ping, _ = _probe_start(n)
    acts = n.handle(TimerFired(ProbeTimeout(ping.seq_no)), 2.5)
    ind = [m for m in sent(acts) if isinstance(m, IndirectPing)]
    assert len(ind) == 1 and not ind[0].nack
    n.handle(TimerFired(ProbeEnd(ping.seq_no)), 3.0)
    assert n.health_score == 1


def test_tcp_fallback_success_prevents_suspicion() -> None:
    n = mk()
    feed(n, alive("b"))
    ping, _ = _probe_start(n)
    acts = n.handle(TimerFired(ProbeTimeout(ping.seq_no)), 2.5)
    stream = next(a for a in acts if isinstance(a, OpenStream))
    n.handle(StreamResponse(stream.stream_id, Ack(ping.seq_no)), 2.6)
    acts = n.handle(TimerFired(ProbeEnd(ping.seq_no)), 3.0)
    assert events(acts) == []
    assert n.member("b").state == State.ALIVE  # type: ignore[union-attr]
    assert n.stats["tcp_fallback_successes"] == 1


def test_no_tcp_fallback_when_disabled_or_peer_too_old() -> None:
    n = mk(disable_tcp_pings=True)
    feed(n, alive("b"))
    ping, _ = _probe_start(n)
    acts = n.handle(TimerFired(ProbeTimeout(ping.seq_no)), 2.5)
    assert not [a for a in acts if isinstance(a, OpenStream)]
    n2 = mk()
    feed(n2, alive("b", vsn=bytes([1, 2, 2, 0, 0, 0])))
    ping, _ = _probe_start(n2)
    acts = n2.handle(TimerFired(ProbeTimeout(ping.seq_no)), 2.5)
    assert not [a for a in acts if isinstance(a, OpenStream)]


def test_probe_deadline_is_scaled_by_health_score() -> None:
    n = mk()
    feed(n, alive("b"))
    n._awareness.apply_delta(2)
    ping, acts = _probe_start(n, 2.0)
    timeouts = timer_at(acts, ProbeTimeout(ping.seq_no))
    assert timeouts == [pytest.approx(2.5)]  # ProbeTimeout is not scaled
    # ProbeEnd is set only once the direct window passed without an ack
    assert timer_at(acts, ProbeEnd(ping.seq_no)) == []
    acts = n.handle(TimerFired(ProbeTimeout(ping.seq_no)), 2.5)
    assert timer_at(acts, ProbeEnd(ping.seq_no)) == [pytest.approx(5.0)]  # 1 s * (2 + 1)


def test_acked_probe_leaves_no_probe_end_timer() -> None:
    n = mk()
    feed(n, alive("b"))
    ping, acts = _probe_start(n, 2.0)
    acts = feed(n, Ack(ping.seq_no), now=2.01)
    assert timer_at(acts, ProbeEnd(ping.seq_no)) == []
    # the stale ProbeTimeout is ignored
    assert n.handle(TimerFired(ProbeTimeout(ping.seq_no)), 2.5) == []


def test_probing_a_suspect_piggybacks_the_suspicion_buddy_system() -> None:
    n = mk()
    feed(n, alive("b"), alive("c"), alive("d"), alive("e"))
    feed(n, Suspect(1, "b", "c"))
    n._members.order.set_round(["b", "self", "c", "d", "e"])
    acts = n.handle(TimerFired(ProbeTick()), 2.0)
    pkt = next(a for a in acts if isinstance(a, SendPacket))
    kinds = [type(m).__name__ for m in packet_messages(pkt)]
    assert kinds == ["Ping", "Suspect"]
    assert pkt.size > 0


def test_ping_is_acked_with_delegate_payload_to_source_address() -> None:
    n = mk(delegate=Recorder())
    acts = feed(n, Ping(42, "self", bytes([127, 0, 0, 2]), 8100, "b"))
    pkt = next(a for a in acts if isinstance(a, SendPacket))
    assert pkt.dest == ("127.0.0.2", 8100)
    ack = packet_messages(pkt)[0]
    assert isinstance(ack, Ack) and ack.seq_no == 42 and ack.payload == b"coord"


def test_ping_for_another_node_name_is_ignored() -> None:
    n = mk()
    acts = feed(n, Ping(42, "someone-else"))
    assert sent(acts) == [] and n.stats["dropped_wrong_node"] == 1


def test_indirect_ping_is_relayed_and_ack_forwarded_with_requester_seq() -> None:
    n = mk()
    acts = feed(
        n,
        IndirectPing(
            77, bytes([127, 0, 0, 3]), 8200, "t", True, bytes([127, 0, 0, 2]), 8100, "req"
        ),
    )
    pkt = next(a for a in acts if isinstance(a, SendPacket))
    fwd = packet_messages(pkt)[0]
    assert pkt.dest == ("127.0.0.3", 8200) and isinstance(fwd, Ping) and fwd.node == "t"
    acts = feed(n, Ack(fwd.seq_no), now=1.1)
    pkt = next(a for a in acts if isinstance(a, SendPacket))
    assert pkt.dest == ("127.0.0.2", 8100)
    relayed = packet_messages(pkt)[0]
    assert isinstance(relayed, Ack) and relayed.seq_no == 77


def test_indirect_ping_without_answer_sends_nack_after_probe_timeout() -> None:
    n = mk()
    acts = feed(
        n,
        IndirectPing(
            77, bytes([127, 0, 0, 3]), 8200, "t", True, bytes([127, 0, 0, 2]), 8100, "req"
        ),
    )
    key = next(k for k in timer_keys(acts) if isinstance(k, RelayEnd))
    acts = n.handle(TimerFired(key), 1.5)
    nack = sent(acts)[0]
    assert isinstance(nack, Nack) and nack.seq_no == 77


def test_ack_and_nack_for_unknown_sequence_are_counted_and_ignored() -> None:
    n = mk()
    feed(n, Ack(12345), Nack(999))
    # routine (memberlist ignores them silently): counted, but not as drops
    assert n.stats["acks_late_or_unknown"] == 1 and n.stats["nacks_late_or_unknown"] == 1
    assert not any(k.startswith("dropped_") for k in n.stats)


# ---------------------------------------------------------------------------- suspicion


def test_suspicion_with_few_nodes_uses_minimum_timeout() -> None:
    n = mk()
    feed(n, alive("b"), alive("c"))  # n = 3 -> k = 0 -> 4 s flat
    acts = feed(n, Suspect(1, "b", "c"), now=10.0)
    ((timer, at),) = suspicion_timers(acts, "b")
    assert at == pytest.approx(14.0)
    acts = n.handle(TimerFired(timer), 14.0)
    assert events(acts) == [(EventKind.DEAD, "b")]


def test_independent_confirmations_shorten_suspicion_lan_table() -> None:
    n = mk()
    feed(n, alive("b"), alive("c"), alive("d"))  # n = 4 -> k = 2, 4 s .. 24 s
    acts = feed(n, Suspect(1, "b", "c"), now=0.0)
    ((first, at),) = suspicion_timers(acts, "b")
    assert at == pytest.approx(24.0)
    acts = feed(n, Suspect(1, "b", "c"), now=1.0)  # same suspector: ignored
    assert not suspicion_timers(acts, "b")
    acts = feed(n, Suspect(1, "b", "d"), now=1.0)
    ((second, at),) = suspicion_timers(acts, "b")
    assert at == pytest.approx(11.381)
    # the re-armed 11.381 s timer kills; the stale 24 s one is ignored
    assert events(n.handle(TimerFired(second), 11.381)) == [(EventKind.DEAD, "b")]
    assert events(n.handle(TimerFired(first), 24.0)) == []


def test_stale_suspicion_timer_after_refutation_does_nothing() -> None:
    n = mk()
    feed(n, alive("b"), alive("c"))
    ((timer, _),) = suspicion_timers(feed(n, Suspect(1, "b", "c"), now=0.0), "b")
    feed(n, alive("b", inc=2), now=1.0)
    assert events(n.handle(TimerFired(timer), 4.0)) == []
    assert n.member("b").state == State.ALIVE  # type: ignore[union-attr]


def test_suspect_for_unknown_or_stale_is_ignored() -> None:
    n = mk()
    feed(n, Suspect(1, "ghost", "c"))
    assert n.stats["suspect_unknown_member"] == 1
    assert not any(k.startswith("dropped_") for k in n.stats)
    feed(n, alive("b", inc=5))
    feed(n, Suspect(4, "b", "c"))
    assert n.member("b").state == State.ALIVE  # type: ignore[union-attr]


# ---------------------------------------------------------------------- leave / reaping


def test_leave_broadcasts_dead_from_self_and_completes_after_retransmits() -> None:
    n = mk()
    feed(n, alive("b"))
    rid, acts = n.submit(LeaveRequested(), 2.0)
    assert not [a for a in acts if isinstance(a, LeaveCompleted)]
    me = n.member("self")
    assert me is not None and me.state == State.LEFT
    assert any(isinstance(m, Dead) and m.node == m.from_node == "self" for m in queued(n))
    done: list[tuple[int, LeaveCompleted]] = []
    t = 2.0
    for tick in range(1, 11):
        t += 0.2
        done += [
            (tick, a) for a in n.handle(TimerFired(GossipTick()), t) if isinstance(a, LeaveCompleted)
        ]
    # one peer, so one transmission per gossip tick; the limit is 4 * ceil(log10(2 + 1)) = 4:
    # the leave completes with the 4th transmission, not before
    assert [(tick, d.request_id) for tick, d in done] == [(4, rid)]
    # a dead message about ourselves is not refuted while leaving
    feed(n, Dead(1, "self", "b"), now=t)
    assert n.member("self").state == State.LEFT  # type: ignore[union-attr]


def test_leave_alone_completes_immediately() -> None:
    n = mk()
    rid, acts = n.submit(LeaveRequested(), 1.0)
    assert [a.request_id for a in acts if isinstance(a, LeaveCompleted)] == [rid]


def test_dead_and_left_members_are_reaped_after_gossip_to_the_dead_time() -> None:
    n = mk()
    feed(n, alive("b"), alive("c"), alive("d"))
    feed(n, Dead(1, "b", "x"), now=1.0)
    feed(n, Dead(1, "c", "c"), now=1.0)
    n._members.order.set_round([])  # the round is over
    n._prober._probe_next(20.0)
    assert n.member("b") is not None
    n._members.order.set_round([])  # the round is over
    n._prober._probe_next(40.0)
    assert n.member("b") is None and n.member("c") is None
    assert n.num_nodes == 2
    # Serf-style retention keeps them for reconnect / as tombstones
    assert "b" in n.failed and "c" in n.left
    assert {m.name for m in n.all_members()} == {"self", "b", "c", "d"}


def test_failed_members_are_reaped_after_reconnect_timeout() -> None:
    n = mk(reconnect_timeout=100.0, tombstone_timeout=50.0)
    feed(n, alive("b"), alive("c"))
    feed(n, Dead(1, "b", "x"), Dead(1, "c", "c"), now=1.0)
    assert events(n.handle(TimerFired(ReapTick()), 60.0)) == [(EventKind.REAPED, "c")]
    assert events(n.handle(TimerFired(ReapTick()), 120.0)) == [(EventKind.REAPED, "b")]


def test_reconnect_attempts_push_pull_join_to_a_failed_member() -> None:
    n = mk()
    feed(n, alive("b"))
    feed(n, Dead(1, "b", "x"), now=1.0)
    acts = n.handle(TimerFired(ReconnectTick()), 31.0)  # 1 failed / 1 alive -> always
    streams = [a for a in acts if isinstance(a, OpenStream)]
    assert len(streams) == 1 and streams[0].dest == ("127.0.0.1", 8000)
    msg = streams[0].data
    # the object codec ships the table's own (shared) records
    assert isinstance(msg, PushPull) and msg.join and all(isinstance(x, Member) for x in msg.nodes)


# ---------------------------------------------------------------------------- push/pull


def test_inbound_push_pull_is_answered_before_merging() -> None:
    n = mk()
    remote = PushPull(False, (PushNodeState("b", IP, 8000, b"", 1, 0, VSN),))
    acts = n.handle(StreamReceived(ConnId(1), SRC, remote), 1.0)
    reply = next(a for a in acts if isinstance(a, ReplyStream))
    assert isinstance(reply.data, PushPull)
    assert [x.name for x in reply.data.nodes] == ["self"]
    assert n.member("b") is not None


def test_join_with_incompatible_delegate_version_fails() -> None:
    n = mk()
    _, acts = n.submit(JoinRequested((("127.0.0.1", 8000),)), 1.0)
    stream = next(a for a in acts if isinstance(a, OpenStream))
    bad = PushPull(True, (PushNodeState("b", IP, 8000, b"", 1, 0, bytes([1, 5, 2, 0, 0, 0])),))
    acts = n.handle(StreamResponse(stream.stream_id, bad), 1.1)
    done = [a for a in acts if isinstance(a, JoinCompleted)]
    assert done and done[0].contacted == 0 and "delegate protocol version" in done[0].errors[0]
    assert n.member("b") is None


def test_merge_delegate_can_veto_a_join() -> None:
    d = Recorder()
    d.veto = True
    n = mk(delegate=d)
    _, acts = n.submit(JoinRequested((("127.0.0.1", 8000),)), 1.0)
    stream = next(a for a in acts if isinstance(a, OpenStream))
    remote = PushPull(True, (PushNodeState("b", IP, 8000, b"", 1, 0, VSN),))
    acts = n.handle(StreamResponse(stream.stream_id, remote), 1.1)
    done = next(a for a in acts if isinstance(a, JoinCompleted))
    assert done.contacted == 0 and d.merges == [1] and n.member("b") is None


def test_rejoin_after_being_declared_dead_refutes_after_merging_peers() -> None:
    n = mk()
    _, acts = n.submit(JoinRequested((("127.0.0.1", 8000),)), 1.0)
    stream = next(a for a in acts if isinstance(a, OpenStream))
    remote = PushPull(
        True,
        (
            PushNodeState("self", IP, 7946, b"", 6, int(State.DEAD), VSN),
            PushNodeState("b", IP, 8000, b"", 1, 0, VSN),
        ),
    )
    acts = n.handle(StreamResponse(stream.stream_id, remote), 1.1)
    assert next(a for a in acts if isinstance(a, JoinCompleted)).contacted == 1
    assert n.incarnation == 7
    assert any(isinstance(m, Alive) and m.node == "self" and m.incarnation == 7 for m in queued(n))
    assert n.member("b") is not None


# --------------------------------------------------------------------------- the queue


# ------------------------------------------------------------------------- bad input


def test_garbage_packets_are_counted_and_never_raise() -> None:
    n = mk()
    n2 = Engine(
        lan(name="enc"),
        advertise=("127.0.0.1", 7000),
        rng=random.Random(1),
        nonce_source=random.Random(2).randbytes,
    )
    n2.start(0)
    for data in (
        b"",
        b"\x00",
        b"\xff" * 40,
        b"\x07\x05",
        b"\x0c\x00\x00\x00\x00\x04",
        b"\x09\x82",
        b"\x04\x93\x01",
    ):
        assert [
            a for a in n2.handle(PacketReceived(SRC, data), 1.0) if not isinstance(a, MemberEvent)
        ] == []
    assert sum(v for k, v in n2.stats.items() if k.startswith("dropped_")) >= 6
    del n


def test_meta_update_bumps_incarnation_and_is_broadcast() -> None:
    from swimpy.core import MetaUpdateCompleted, MetaUpdateRequested

    n = mk()
    rid, acts = n.submit(MetaUpdateRequested(b"role=db"), 1.0)
    assert [a.request_id for a in acts if isinstance(a, MetaUpdateCompleted)] == [rid]
    me = n.member("self")
    assert me is not None and me.meta == b"role=db" and me.incarnation == 2
    assert any(isinstance(m, Alive) and m.meta == b"role=db" for m in queued(n))
    with pytest.raises(ValueError, match="meta_max_size"):
        n.submit(MetaUpdateRequested(b"x" * 600), 1.0)


# ------------------------------------------------------------- hostile input (hypothesis)

from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from swimpy.wire.messages import encode_message  # noqa: E402
from swimpy.wire.packet import WireOptions, encode_packet, make_compound  # noqa: E402


def _valid_packets() -> list[bytes]:
    msgs: list[PacketMessage] = [
        alive("b"),
        Suspect(1, "b", "c"),
        Dead(1, "b", "c"),
        Ping(3, "self"),
        Ack(3, b"x"),
        Nack(3),
        IndirectPing(4, IP, 8000, "b", True),
        alive("self", inc=9),
    ]
    raw = [encode_message(m) for m in msgs]
    opts = WireOptions()
    return [*raw, make_compound(raw), encode_packet(make_compound(raw), opts, crc=True)]


VALID = _valid_packets()


@st.composite
def hostile(draw: st.DrawFn) -> bytes:
    base = bytearray(draw(st.sampled_from(VALID)))
    for _ in range(draw(st.integers(0, 4))):
        op = draw(st.sampled_from(["flip", "cut", "extend", "splice"]))
        if op == "flip" and base:
            i = draw(st.integers(0, len(base) - 1))
            base[i] ^= 1 << draw(st.integers(0, 7))
        elif op == "cut" and base:
            base = base[: draw(st.integers(0, len(base) - 1))]
        elif op == "extend":
            base += draw(st.binary(max_size=40))
        else:
            other = draw(st.sampled_from(VALID))
            i = draw(st.integers(0, len(base)))
            base = base[:i] + other[draw(st.integers(0, len(other))) :]
    return bytes(base)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(hostile(), st.binary(max_size=200)), max_size=6))
def test_hostile_packets_never_raise_or_corrupt_the_table(packets: list[bytes]) -> None:
    n = Engine(
        lan(name="self", bind_port=7946),
        advertise=("127.0.0.1", 7946),
        rng=random.Random(1),
        nonce_source=random.Random(2).randbytes,
    )
    n.start(0.0)
    t = 1.0
    for p in packets:
        n.handle(PacketReceived(SRC, p), t)
        n.handle(StreamReceived(ConnId(1), SRC, p), t)
        t += 0.3
    assert_table_consistent(n)
    me = n.member("self")
    assert me is not None and me.state == State.ALIVE


# ----------------------------------------------- probe details checked against memberlist


def _probe_b_of_two(node: Engine, now: float = 2.0) -> Ping:
    """Members b and c; the next probe goes to b. Returns the ping to b."""
    feed(node, alive("b", port=8001), alive("c", port=8002))
    node._members.order.set_round(["b", "c", "self"])
    pings = [m for m in sent(node.handle(TimerFired(ProbeTick()), now)) if isinstance(m, Ping)]
    assert [p.node for p in pings] == ["b"]
    return pings[0]


def test_tick_missed_during_a_probe_starts_the_next_probe_when_it_ends() -> None:
    # memberlist's probe loop is a time.Ticker whose channel holds one tick: a tick that
    # falls due while probeNode still waits is taken as soon as it returns.
    n = mk()
    ping = _probe_b_of_two(n)
    n.handle(TimerFired(ProbeTimeout(ping.seq_no)), 2.5)
    n.handle(TimerFired(ProbeTick()), 3.0)  # due while the probe of b is in flight
    acts = n.handle(TimerFired(ProbeEnd(ping.seq_no)), 3.0)
    assert [m.node for m in sent(acts) if isinstance(m, Ping)] == ["c"]


def test_ack_after_probe_timeout_saves_the_target_but_reports_no_rtt() -> None:
    # probeNode calls NotifyPingComplete only for an ack within ProbeTimeout; later acks
    # (late direct or relayed) only end the probe. Serf feeds RTTs into its coordinates.
    n = mk()
    n._awareness.apply_delta(1)
    ping = _probe_b_of_two(n)
    n.handle(TimerFired(ProbeTimeout(ping.seq_no)), 2.5)
    acts = feed(n, Ack(ping.seq_no, b"coord"), now=2.7)
    assert [a for a in acts if isinstance(a, PingCompleted)] == []
    assert n.health_score == 0  # still a successful probe
    assert events(n.handle(TimerFired(ProbeEnd(ping.seq_no)), 4.0)) == []


def test_failed_probe_does_not_suspect_a_member_that_refuted_meanwhile() -> None:
    # probeNode suspects the incarnation of its copy taken at probe start; an alive with
    # a higher incarnation that arrived during the probe makes that suspicion stale.
    n = mk()
    ping = _probe_b_of_two(n)
    n.handle(TimerFired(ProbeTimeout(ping.seq_no)), 2.5)
    feed(n, alive("b", inc=2, port=8001), now=2.6)
    acts = n.handle(TimerFired(ProbeEnd(ping.seq_no)), 3.0)
    assert (EventKind.SUSPECT, "b") not in events(acts)
    m = n.member("b")
    assert m is not None and m.state == State.ALIVE and m.incarnation == 2


def test_alive_keeps_its_port_when_the_sender_speaks_protocol_1() -> None:
    # handleAlive substitutes BindPort only when *our* protocol version < 2 or port 0.
    n = mk()  # protocol_version 2
    feed(n, alive("b", port=8001, vsn=bytes([1, 5, 1, 2, 5, 4])))
    m = n.member("b")
    assert m is not None and m.port == 8001
