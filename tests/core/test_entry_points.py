"""The engine's fast entry points (``timer_fired``, ``packet_received``), the codecs'
``packet_one`` and :func:`swimpy.core.frozen.fast_init`: each must do exactly what the
general form it shortcuts does."""

from __future__ import annotations

import dataclasses
import heapq
import inspect
import random

import pytest

from swimpy.core import (
    Action,
    Engine,
    ObjectCodec,
    PacketReceived,
    SendPacket,
    SetTimer,
    TimerFired,
    WireCodec,
)
from swimpy.core.actions import MemberEvent, PingCompleted, ReplyStream
from swimpy.core.codec import Codec
from swimpy.core.frozen import fast_init
from swimpy.core.timers import PROBE_TICK, ProbeTimeout, SuspicionTimeout
from swimpy.profiles import lan
from swimpy.wire.messages import Ack, Alive, Ping
from swimpy.wire.packet import WireOptions

PEERS = [(f"peer-{i}", f"10.0.0.{i + 2}") for i in range(6)]
VSN = bytes([1, 5, 2, 2, 5, 4])


def _engine(codec: Codec) -> Engine:
    node = Engine(
        lan(name="self", bind_port=7946),
        advertise=("10.0.0.1", 7946),
        rng=random.Random(11),
        nonce_source=random.Random(3).randbytes,
        codec=codec,
    )
    return node


def _datagram(codec: Codec, *msgs: object) -> object:
    parts, sizes = zip(*(codec.encode_part(m) for m in msgs), strict=True)  # type: ignore[arg-type]
    data, _ = codec.packet(list(parts), list(sizes), crc=False, wire=WireOptions(),
                           nonce=random.Random(0).randbytes)
    return data


def _decode(codec: Codec, data: object) -> list[object]:
    return list(codec.decode_packet_untrusted(data, WireOptions()).messages)


def _drive(codec_type: type[ObjectCodec] | type[WireCodec], fast: bool) -> list[list[Action]]:
    """Run one engine against six scripted peers for 30 s: the peers answer most pings
    (not those to peer-5, which gets suspected and declared dead), and every timer is
    delivered when due. Returns the actions of every input, in order."""
    codec = codec_type()
    node = _engine(codec)
    out: list[list[Action]] = [node.start(0.0)]
    hello = [Alive(1, name, bytes(int(x) for x in ip.split(".")), 7946, b"", VSN)
             for name, ip in PEERS]
    # events: (time, seq, kind, payload); kind 0 = timer, 1 = datagram (source, data)
    events: list[tuple[float, int, int, object]] = []
    seq = 0

    def carry_out(acts: list[Action], now: float) -> None:
        nonlocal seq
        for a in acts:
            if isinstance(a, SetTimer):
                seq += 1
                heapq.heappush(events, (a.at, seq, 0, a.timer))
            elif isinstance(a, SendPacket):
                for msg in _decode(codec, a.data):
                    if isinstance(msg, Ping) and msg.node != "peer-5":
                        seq += 1
                        reply = (a.dest, _datagram(codec, Ack(msg.seq_no)))
                        heapq.heappush(events, (now + 0.002, seq, 1, reply))

    def deliver(kind: int, payload: object, now: float) -> list[Action]:
        if kind == 0:
            if fast:
                return node.timer_fired(payload, now)  # type: ignore[arg-type]
            return node.handle(TimerFired(payload), now)  # type: ignore[arg-type]
        assert isinstance(payload, tuple)
        source: tuple[str, int] = payload[0]
        data: object = payload[1]
        if fast:
            return node.packet_received(source, data, now)
        return node.handle(PacketReceived(source, data), now)

    carry_out(out[0], 0.0)
    acts = deliver(1, (("10.0.0.2", 7946), _datagram(codec, *hello)), 0.001)
    out.append(acts)
    carry_out(acts, 0.001)
    while events and events[0][0] <= 30.0:
        now, _, kind, payload = heapq.heappop(events)
        acts = deliver(kind, payload, now)
        out.append(acts)
        carry_out(acts, now)
    return out


@pytest.mark.parametrize("codec_type", [ObjectCodec, WireCodec])
def test_fast_entry_points_return_what_handle_returns(
    codec_type: type[ObjectCodec] | type[WireCodec],
) -> None:
    slow = _drive(codec_type, fast=False)
    fast = _drive(codec_type, fast=True)
    assert fast == slow
    flat = [a for acts in fast for a in acts]
    # the script did exercise probes, acks, suspicion and death
    assert any(isinstance(a, PingCompleted) for a in flat)
    assert any(isinstance(a, SetTimer) and isinstance(a.timer, ProbeTimeout) for a in flat)
    assert any(isinstance(a, SetTimer) and isinstance(a.timer, SuspicionTimeout) for a in flat)
    kinds = [(a.kind.value, a.member.name) for a in flat if isinstance(a, MemberEvent)]
    assert ("suspect", "peer-5") in kinds
    assert ("dead", "peer-5") in kinds


def test_fast_entry_points_refuse_an_unstarted_engine_and_ignore_after_shutdown() -> None:
    node = _engine(ObjectCodec())
    with pytest.raises(RuntimeError, match="start"):
        node.timer_fired(PROBE_TICK, 0.0)
    with pytest.raises(RuntimeError, match="start"):
        node.packet_received(("10.0.0.2", 7946), (Ack(1),), 0.0)
    node.start(0.0)
    node.shutdown()
    assert node.timer_fired(PROBE_TICK, 1.0) == []
    assert node.packet_received(("10.0.0.2", 7946), (Ack(1),), 1.0) == []
    assert node.handle(TimerFired(PROBE_TICK), 1.0) == []


@pytest.mark.parametrize("crc", [False, True])
@pytest.mark.parametrize("codec_type", [ObjectCodec, WireCodec])
def test_packet_one_is_packet_of_one_part(
    codec_type: type[ObjectCodec] | type[WireCodec], crc: bool
) -> None:
    codec = codec_type()
    wire = WireOptions()
    part, size = codec.encode_part(Ping(7, "peer-1", b"\n\0\0\1", 7946, "self"))
    one = codec.packet_one(part, size, crc, wire, random.Random(0).randbytes)
    general = codec.packet([part], [size], crc=crc, wire=wire, nonce=random.Random(0).randbytes)
    assert one == general


# ---------------------------------------------------------------------------- fast_init


@fast_init
@dataclasses.dataclass(frozen=True, slots=True)
class _Fast:
    a: int
    b: str = "x"


@dataclasses.dataclass(frozen=True, slots=True)
class _Plain:
    a: int
    b: str = "x"


def test_fast_init_builds_the_same_frozen_values() -> None:
    for args, kwargs in [((1,), {}), ((1, "y"), {}), ((), {"a": 2, "b": "z"}), ((3,), {"b": "w"})]:
        f, p = _Fast(*args, **kwargs), _Plain(*args, **kwargs)  # type: ignore[arg-type]
        assert (f.a, f.b) == (p.a, p.b)
        assert f == _Fast(*args, **kwargs)  # type: ignore[arg-type]
        assert hash(f) == hash(_Fast(f.a, f.b))
        assert repr(f).split("(", 1)[1] == repr(p).split("(", 1)[1]
    with pytest.raises(dataclasses.FrozenInstanceError):
        _Fast(1).a = 2  # type: ignore[misc]
    with pytest.raises(TypeError):
        _Fast()  # type: ignore[call-arg]
    with pytest.raises(TypeError):
        _Fast(1, "y", 3)  # type: ignore[call-arg]
    assert str(inspect.signature(_Fast)) == str(inspect.signature(_Plain))
    match _Fast(5, "q"):
        case _Fast(a, b):
            assert (a, b) == (5, "q")


def test_the_engines_hot_values_use_fast_init_and_keep_their_defaults() -> None:
    assert SetTimer.__init__.__qualname__ == "SetTimer.__init__"
    assert "_set_" in SetTimer.__init__.__code__.co_names[0]
    assert ReplyStream(1, b"", 0) == ReplyStream(1, b"", 0, False)  # type: ignore[arg-type]


def test_fast_init_refuses_what_it_does_not_support() -> None:
    @dataclasses.dataclass(frozen=True, slots=True)
    class WithFactory:
        xs: list[int] = dataclasses.field(default_factory=list)

    @dataclasses.dataclass(frozen=True, slots=True)
    class WithPostInit:
        a: int

        def __post_init__(self) -> None:
            pass

    @dataclasses.dataclass(slots=True)
    class NotFrozen:
        a: int

    @dataclasses.dataclass(frozen=True)
    class NotSlotted:
        a: int = 1

    for cls in (WithFactory, WithPostInit, NotFrozen, NotSlotted):
        with pytest.raises(TypeError):
            fast_init(cls)
