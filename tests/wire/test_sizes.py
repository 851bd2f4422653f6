from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from swimpy.wire.messages import PushNodeState, PushPullHeader, encode_body
from swimpy.wire.sizes import push_node_state_size, push_pull_header_size


@settings(max_examples=300, deadline=None)
@given(
    name=st.text(max_size=70),
    addr=st.sampled_from([b"", bytes(4), bytes(16)]),
    port=st.integers(0, 0xFFFF),
    meta=st.binary(max_size=600),
    inc=st.integers(0, 0xFFFFFFFF),
    state=st.integers(0, 3),
    vsn=st.sampled_from([b"", bytes(6), b"\x01\x05\x02\x02\x05\x04"]),
)
def test_push_node_state_size_matches_encoding(
    name: str, addr: bytes, port: int, meta: bytes, inc: int, state: int, vsn: bytes
) -> None:
    body = encode_body(PushNodeState(name, addr, port, meta, inc, state, vsn))
    name_len = len(name.encode("utf-8", "surrogateescape"))
    assert push_node_state_size(name_len, len(addr), port, len(meta), inc, state, len(vsn)) == len(
        body
    )


@given(st.integers(0, 2**31), st.integers(0, 2**31), st.booleans())
def test_push_pull_header_size_matches_encoding(n: int, u: int, join: bool) -> None:
    assert push_pull_header_size(n, u) == 1 + len(encode_body(PushPullHeader(n, u, join)))


_names = st.text(max_size=40)
_addrs = st.sampled_from([b"", bytes(4), bytes(16)])
_u32 = st.integers(0, 0xFFFFFFFF)
_u16 = st.integers(0, 0xFFFF)


@settings(max_examples=300, deadline=None)
@given(
    st.one_of(
        st.builds(__import__("swimpy.wire.messages", fromlist=["Ping"]).Ping, _u32, _names,
                  _addrs, _u16, _names),
        st.builds(__import__("swimpy.wire.messages", fromlist=["Ack"]).Ack, _u32,
                  st.binary(max_size=300)),
        st.builds(__import__("swimpy.wire.messages", fromlist=["Nack"]).Nack, _u32),
        st.builds(__import__("swimpy.wire.messages", fromlist=["IndirectPing"]).IndirectPing,
                  _u32, _addrs, _u16, _names, st.booleans(), _addrs, _u16, _names),
        st.builds(__import__("swimpy.wire.messages", fromlist=["UserMsg"]).UserMsg,
                  st.binary(max_size=100)),
        st.builds(__import__("swimpy.wire.messages", fromlist=["Alive"]).Alive, _u32, _names,
                  _addrs, _u16, st.binary(max_size=600), st.binary(max_size=8)),
        st.builds(__import__("swimpy.wire.messages", fromlist=["Suspect"]).Suspect, _u32,
                  _names, _names),
        st.builds(__import__("swimpy.wire.messages", fromlist=["Dead"]).Dead, _u32, _names,
                  _names),
    )
)
def test_message_size_matches_encoding(msg: object) -> None:
    from swimpy.wire.messages import Message, encode_message
    from swimpy.wire.sizes import message_size

    assert isinstance(msg, Message)
    assert message_size(msg) == len(encode_message(msg))
