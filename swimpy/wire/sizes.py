"""Exact encoded sizes computed arithmetically (no encoding), for byte accounting.

The simulator's fast mode passes message objects instead of bytes but still reports the
bytes a real node would send; these functions give the msgpack sizes go-msgpack 0.5.5
(and :func:`swimpy.wire.messages.encode_body`) produce.
"""

from __future__ import annotations

from swimpy.wire.messages import (
    Ack,
    Alive,
    Dead,
    IndirectPing,
    Message,
    Nack,
    Ping,
    Suspect,
    UserMsg,
    encode_message,
)

#: keys of a pushNodeState map: Addr, Incarnation, Meta, Name, Port, State, Vsn (as fixstr)
_PUSH_NODE_KEYS = sum(
    1 + len(k) for k in ("Addr", "Incarnation", "Meta", "Name", "Port", "State", "Vsn")
)
#: keys of an alive map: Addr, Incarnation, Meta, Node, Port, Vsn
_ALIVE_KEYS = sum(1 + len(k) for k in ("Addr", "Incarnation", "Meta", "Node", "Port", "Vsn"))
#: keys of a suspect / dead map: From, Incarnation, Node
_SUSPECT_KEYS = sum(1 + len(k) for k in ("From", "Incarnation", "Node"))
#: keys of a pushPullHeader map: Join, Nodes, UserStateLen
_PUSH_HEADER_KEYS = sum(1 + len(k) for k in ("Join", "Nodes", "UserStateLen"))


def raw_size(n: int) -> int:
    """A raw-family string or byte slice of ``n`` bytes (fixstr / str16 / str32)."""
    if n < 32:
        return 1 + n
    if n < 0x10000:
        return 3 + n
    return 5 + n


def bytes_size(n: int) -> int:
    """A ``[]byte`` field: nil when empty, else raw."""
    return 1 if n == 0 else raw_size(n)


def uint_size(v: int) -> int:
    if v <= 0x7F:
        return 1
    if v <= 0xFF:
        return 2
    if v <= 0xFFFF:
        return 3
    if v <= 0xFFFFFFFF:
        return 5
    return 9


def push_node_state_size(
    name_len: int,
    addr_len: int,
    port: int,
    meta_len: int,
    incarnation: int,
    state: int,
    vsn_len: int,
) -> int:
    """Size of one encoded ``pushNodeState`` map (``name_len`` in UTF-8 bytes)."""
    return (
        1
        + _PUSH_NODE_KEYS
        + bytes_size(addr_len)
        + uint_size(incarnation)
        + bytes_size(meta_len)
        + raw_size(name_len)
        + uint_size(port)
        + uint_size(state)
        + bytes_size(vsn_len)
    )


def push_pull_header_size(nodes: int, user_state_len: int) -> int:
    """Type byte + ``pushPullHeader`` map."""
    return 1 + 1 + _PUSH_HEADER_KEYS + 1 + uint_size(nodes) + uint_size(user_state_len)


def _name_len(s: str) -> int:
    return len(s) if s.isascii() else len(s.encode("utf-8", "surrogateescape"))


def _source_size(msg: Ping | IndirectPing) -> int:
    """The omitempty SourceAddr / SourceNode / SourcePort entries (key 11 bytes each)."""
    n = 0
    if msg.source_addr:
        n += 11 + bytes_size(len(msg.source_addr))
    if msg.source_node:
        n += 11 + raw_size(_name_len(msg.source_node))
    if msg.source_port:
        n += 11 + uint_size(msg.source_port)
    return n


def message_size(msg: Message) -> int:
    """Size of ``encode_message(msg)`` (type byte included), computed without encoding
    for the probe and membership messages that dominate traffic; other types are encoded."""
    t = type(msg)
    if t is Ping:
        # every probe sends one: the helpers inlined for the common case (short ASCII
        # names, a sequence number below 2**32, every source field set)
        assert isinstance(msg, Ping)
        node, src, seq = msg.node, msg.source_node, msg.seq_no
        if (node.isascii() and src.isascii() and len(node) < 32 and 0 < len(src) < 32
                and msg.source_port and 0 < len(msg.source_addr) < 32
                and seq <= 0xFFFFFFFF):
            # 2 + 5 + (1 + len(node)) + 6 + uint(seq) + the three source entries
            return (14 + len(node) + (1 if seq <= 0x7F else 2 if seq <= 0xFF else
                                      3 if seq <= 0xFFFF else 5)
                    + 12 + len(msg.source_addr) + 12 + len(src) + 11
                    + uint_size(msg.source_port))
        n = 2 + 5 + raw_size(_name_len(node)) + 6 + uint_size(seq)
        return n + _source_size(msg)
    if t is Ack:
        assert isinstance(msg, Ack)
        seq = msg.seq_no
        if not msg.payload and seq <= 0xFFFFFFFF:
            return 17 + (1 if seq <= 0x7F else 2 if seq <= 0xFF else 3 if seq <= 0xFFFF else 5)
        return 2 + 8 + bytes_size(len(msg.payload)) + 6 + uint_size(seq)
    if t is Nack:
        assert isinstance(msg, Nack)
        return 2 + 6 + uint_size(msg.seq_no)
    if t is IndirectPing:
        assert isinstance(msg, IndirectPing)
        n = 2 + 5 + 1 + 5 + raw_size(_name_len(msg.node)) + 5 + uint_size(msg.port)
        n += 6 + uint_size(msg.seq_no) + 7 + bytes_size(len(msg.target))
        return n + _source_size(msg)
    if t is Alive:
        assert isinstance(msg, Alive)
        return (
            2 + _ALIVE_KEYS + bytes_size(len(msg.addr)) + uint_size(msg.incarnation)
            + bytes_size(len(msg.meta)) + raw_size(_name_len(msg.node)) + uint_size(msg.port)
            + bytes_size(len(msg.vsn))
        )
    if t is Suspect or t is Dead:
        assert isinstance(msg, Suspect | Dead)
        return (
            2 + _SUSPECT_KEYS + raw_size(_name_len(msg.from_node)) + uint_size(msg.incarnation)
            + raw_size(_name_len(msg.node))
        )
    if t is UserMsg:
        assert isinstance(msg, UserMsg)
        return 1 + len(msg.payload)
    return len(encode_message(msg))
