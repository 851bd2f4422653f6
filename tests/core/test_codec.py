"""The codec seam: the object codec's sizes are the wire codec's bytes, message for
message, so the simulator's traffic figures are what the runtime would send."""

from __future__ import annotations

import random

from hypothesis import given, settings
from hypothesis import strategies as st

from swimpy.core import Member, ObjectCodec, State, WireCodec
from swimpy.wire.messages import Ack, Alive, Dead, PacketMessage, Ping, Suspect, UserMsg
from swimpy.wire.packet import WireOptions
from swimpy.wire.stream import NEED_DATA, PushPull, UserStream

PLAIN = WireOptions(compression=False)
NONCE = random.Random(1).randbytes
VSN = bytes([1, 5, 2, 2, 5, 4])


def member(name: str, inc: int, state: State, meta: bytes, ip: bytes) -> Member:
    return Member(name, "127.0.0.1", 7946, meta, inc, state, 0.0, VSN, ip)


members = st.lists(
    st.builds(
        member,
        st.text(min_size=1, max_size=30),
        st.integers(0, 2**32 - 1),
        st.sampled_from(list(State)),
        st.binary(max_size=100),
        st.sampled_from([bytes(4), bytes(16)]),
    ),
    max_size=20,
)


@settings(max_examples=100, deadline=None)
@given(members, st.binary(max_size=300), st.booleans())
def test_object_push_pull_size_is_the_encoded_size(
    ms: list[Member], user: bytes, join: bool
) -> None:
    data, wire_size = WireCodec().push_pull(join, ms, user, dialer=True, wire=PLAIN, nonce=NONCE)
    assert isinstance(data, bytes) and wire_size == len(data)
    obj, size = ObjectCodec().push_pull(join, ms, user, dialer=True, wire=PLAIN, nonce=NONCE)
    assert size == wire_size
    assert isinstance(obj, PushPull) and [id(x) for x in obj.nodes] == [id(x) for x in ms] and obj.user_state == user


def test_object_packet_size_is_the_encoded_size() -> None:
    msgs: list[PacketMessage] = [
        Ping(7, "b", bytes(4), 7946, "a"),
        Alive(3, "c", bytes(4), 7946, b"meta", VSN),
        Suspect(2, "c", "a"),
        Dead(2, "c", "a"),
        Ack(7, b"coord"),
        UserMsg(b"hello"),
    ]
    for crc in (False, True):
        for k in range(1, len(msgs) + 1):
            wire, obj = WireCodec(), ObjectCodec()
            wparts = [wire.encode_part(m) for m in msgs[:k]]
            oparts = [obj.encode_part(m) for m in msgs[:k]]
            assert [n for _, n in wparts] == [n for _, n in oparts]
            data, n = wire.packet([p for p, _ in wparts], [n for _, n in wparts], crc=crc,
                                  wire=PLAIN, nonce=NONCE)
            assert isinstance(data, bytes) and n == len(data)
            payload, size = obj.packet([p for p, _ in oparts], [n for _, n in oparts], crc=crc,
                                       wire=PLAIN, nonce=NONCE)
            assert size == n and payload == tuple(msgs[:k])
            decoded = wire.decode_packet_untrusted(data, PLAIN).messages
            assert decoded == list(msgs[:k]) == list(obj.decode_packet_untrusted(payload, PLAIN).messages)


def test_object_stream_reader_hands_over_the_message_once() -> None:
    reader = ObjectCodec().stream_reader(PLAIN, expect_label=True)
    assert reader.next_event() is NEED_DATA
    reader.receive_data(UserStream(b"x"))
    assert reader.next_event() == UserStream(b"x")
    assert reader.next_event() is NEED_DATA
