"""memberlist v0.2.2 message bodies as typed, frozen values.

Encoding follows go-msgpack 0.5.5 with ``MsgpackHandle{}`` defaults exactly (WIRE.md §3):
structs are maps keyed by the Go field name in sorted byte order, strings and byte slices
use the legacy raw family (fixstr/str16/str32, never str8 or bin), an empty byte slice is
nil, ``omitempty`` fields are left out when zero.

Decoding accepts what any Go peer may send (WIRE.md §14): bin or str families for every
field, ``Vsn`` as a raw string or an array of ints, structs as arrays (positional, struct
order), unknown keys (ignored), missing keys (zero values), signed positive integers.
Everything decoded from peers goes through ``*_untrusted`` functions, which raise only
:class:`~swimpy.wire.errors.WireError`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar, Final, cast

import msgpack

from swimpy.wire.constants import MessageType
from swimpy.wire.errors import WireError

# Field kinds for the schema-driven codec.
_U8: Final = "u8"
_U16: Final = "u16"
_U32: Final = "u32"
_INT: Final = "int"  # Go int: non-negative in practice (Nodes, UserStateLen, State, ...)
_STR: Final = "str"
_BYTES: Final = "bytes"  # empty -> nil
_BOOL: Final = "bool"

_LIMITS = {_U8: 0xFF, _U16: 0xFFFF, _U32: 0xFFFFFFFF, _INT: 0x7FFFFFFFFFFFFFFF}


def _s(value: str) -> bytes:
    """A Go string is arbitrary bytes; surrogateescape keeps non-UTF-8 names round-tripping."""
    return value.encode("utf-8", "surrogateescape")


def decode_str(raw: bytes) -> str:
    """Bytes of a Go string field to ``str`` (lossless for invalid UTF-8)."""
    return raw.decode("utf-8", "surrogateescape")


@dataclass(frozen=True, slots=True)
class _Field:
    go: str  # Go field name (map key)
    attr: str  # Python attribute name
    kind: str
    omitempty: bool = False
    key: bytes = b""  # the Go name as bytes, filled in by __post_init__

    def __post_init__(self) -> None:
        object.__setattr__(self, "key", self.go.encode())


class Message:
    """Base of every message body. ``TYPE`` is its memberlist message type byte."""

    __slots__ = ()
    TYPE: ClassVar[MessageType]
    #: fields in Go struct order (used for positional decoding)
    _FIELDS: ClassVar[tuple[_Field, ...]]


@dataclass(frozen=True, slots=True)
class Ping(Message):
    """``ping`` (type 0): a direct or TCP fallback probe. ``node`` is the intended recipient."""

    TYPE: ClassVar[MessageType] = MessageType.PING
    seq_no: int
    node: str
    source_addr: bytes = b""
    source_port: int = 0
    source_node: str = ""


@dataclass(frozen=True, slots=True)
class IndirectPing(Message):
    """``indirectPingReq`` (type 1): ask an intermediary to probe ``node`` at target:port."""

    TYPE: ClassVar[MessageType] = MessageType.INDIRECT_PING
    seq_no: int
    target: bytes
    port: int
    node: str
    nack: bool = False
    source_addr: bytes = b""
    source_port: int = 0
    source_node: str = ""


@dataclass(frozen=True, slots=True)
class Ack(Message):
    """``ackResp`` (type 2); ``payload`` is the ping delegate's data (Serf: coordinates)."""

    TYPE: ClassVar[MessageType] = MessageType.ACK
    seq_no: int
    payload: bytes = b""


@dataclass(frozen=True, slots=True)
class Nack(Message):
    """``nackResp`` (type 11): the intermediary could not reach the target in time."""

    TYPE: ClassVar[MessageType] = MessageType.NACK
    seq_no: int


@dataclass(frozen=True, slots=True)
class Err(Message):
    """``errResp`` (type 13): TCP-only error reply."""

    TYPE: ClassVar[MessageType] = MessageType.ERR
    error: str


@dataclass(frozen=True, slots=True)
class Suspect(Message):
    """``suspect`` (type 3): ``from_node`` suspects ``node`` at ``incarnation``."""

    TYPE: ClassVar[MessageType] = MessageType.SUSPECT
    incarnation: int
    node: str
    from_node: str


@dataclass(frozen=True, slots=True)
class Alive(Message):
    """``alive`` (type 4). ``vsn`` = [pmin, pmax, pcur, dmin, dmax, dcur]."""

    TYPE: ClassVar[MessageType] = MessageType.ALIVE
    incarnation: int
    node: str
    addr: bytes
    port: int
    meta: bytes = b""
    vsn: bytes = b""


@dataclass(frozen=True, slots=True)
class Dead(Message):
    """``dead`` (type 5). ``from_node == node`` means a graceful leave."""

    TYPE: ClassVar[MessageType] = MessageType.DEAD
    incarnation: int
    node: str
    from_node: str


@dataclass(frozen=True, slots=True)
class PushPullHeader(Message):
    """``pushPullHeader``: first map of a push/pull stream."""

    TYPE: ClassVar[MessageType] = MessageType.PUSH_PULL
    nodes: int
    user_state_len: int
    join: bool


@dataclass(frozen=True, slots=True)
class PushNodeState(Message):
    """``pushNodeState``: one member in a push/pull. ``state``: 0 alive, 1 suspect, 2 dead, 3 left."""

    TYPE: ClassVar[MessageType] = MessageType.PUSH_PULL
    name: str
    addr: bytes
    port: int
    meta: bytes
    incarnation: int
    state: int
    vsn: bytes

    @property
    def ip_bytes(self) -> bytes:
        """The raw IP address (the name member records use for it)."""
        return self.addr


@dataclass(frozen=True, slots=True)
class UserMsgHeader(Message):
    """``userMsgHeader``: precedes a reliable (TCP) user message."""

    TYPE: ClassVar[MessageType] = MessageType.USER
    user_msg_len: int


@dataclass(frozen=True, slots=True)
class Compress(Message):
    """``compress`` (type 9): ``buf`` is an LZW stream of a complete message."""

    TYPE: ClassVar[MessageType] = MessageType.COMPRESS
    algo: int
    buf: bytes


@dataclass(frozen=True, slots=True)
class UserMsg(Message):
    """A best-effort user message over UDP (type 8): raw application bytes, no msgpack."""

    TYPE: ClassVar[MessageType] = MessageType.USER
    payload: bytes


def _fields(*spec: tuple[str, str, str] | tuple[str, str, str, bool]) -> tuple[_Field, ...]:
    return tuple(_Field(*s) for s in spec)


Ping._FIELDS = _fields(
    ("SeqNo", "seq_no", _U32),
    ("Node", "node", _STR),
    ("SourceAddr", "source_addr", _BYTES, True),
    ("SourcePort", "source_port", _U16, True),
    ("SourceNode", "source_node", _STR, True),
)
IndirectPing._FIELDS = _fields(
    ("SeqNo", "seq_no", _U32),
    ("Target", "target", _BYTES),
    ("Port", "port", _U16),
    ("Node", "node", _STR),
    ("Nack", "nack", _BOOL),
    ("SourceAddr", "source_addr", _BYTES, True),
    ("SourcePort", "source_port", _U16, True),
    ("SourceNode", "source_node", _STR, True),
)
Ack._FIELDS = _fields(("SeqNo", "seq_no", _U32), ("Payload", "payload", _BYTES))
Nack._FIELDS = _fields(("SeqNo", "seq_no", _U32))
Err._FIELDS = _fields(("Error", "error", _STR))
Suspect._FIELDS = _fields(
    ("Incarnation", "incarnation", _U32), ("Node", "node", _STR), ("From", "from_node", _STR)
)
Alive._FIELDS = _fields(
    ("Incarnation", "incarnation", _U32),
    ("Node", "node", _STR),
    ("Addr", "addr", _BYTES),
    ("Port", "port", _U16),
    ("Meta", "meta", _BYTES),
    ("Vsn", "vsn", _BYTES),
)
Dead._FIELDS = Suspect._FIELDS
PushPullHeader._FIELDS = _fields(
    ("Nodes", "nodes", _INT), ("UserStateLen", "user_state_len", _INT), ("Join", "join", _BOOL)
)
PushNodeState._FIELDS = _fields(
    ("Name", "name", _STR),
    ("Addr", "addr", _BYTES),
    ("Port", "port", _U16),
    ("Meta", "meta", _BYTES),
    ("Incarnation", "incarnation", _U32),
    ("State", "state", _INT),
    ("Vsn", "vsn", _BYTES),
)
UserMsgHeader._FIELDS = _fields(("UserMsgLen", "user_msg_len", _INT))
Compress._FIELDS = _fields(("Algo", "algo", _U8), ("Buf", "buf", _BYTES))
UserMsg._FIELDS = ()

# Sorted (by Go name, byte order) field lists used for encoding.
_SORTED: dict[type[Message], tuple[_Field, ...]] = {}
for _cls in (
    Ping,
    IndirectPing,
    Ack,
    Nack,
    Err,
    Suspect,
    Alive,
    Dead,
    PushPullHeader,
    PushNodeState,
    UserMsgHeader,
    Compress,
):
    _SORTED[_cls] = tuple(sorted(_cls._FIELDS, key=lambda f: f.key))

_packb: Callable[..., bytes] = msgpack.packb


def _encode_value(f: _Field, value: Any) -> Any:
    kind = f.kind
    if kind == _STR:
        return _s(value)
    if kind == _BYTES:
        return bytes(value) if value else None
    if kind == _BOOL:
        return bool(value)
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= _LIMITS[kind]:
        raise ValueError(f"{f.attr}={value!r} does not fit Go type {kind}")
    return value


def encode_body(msg: Message) -> bytes:
    """The msgpack body of ``msg`` (no type byte), byte-identical to go-msgpack 0.5.5."""
    if isinstance(msg, UserMsg):
        return bytes(msg.payload)
    out: dict[bytes, Any] = {}
    for f in _SORTED[type(msg)]:
        value = getattr(msg, f.attr)
        if f.omitempty and not value:
            continue
        kind = f.kind
        if kind == _STR:
            out[f.key] = value.encode("utf-8", "surrogateescape")
        elif kind == _BYTES:
            out[f.key] = bytes(value) if value else None
        else:
            out[f.key] = _encode_value(f, value)
    return _packb(out, use_bin_type=False)


def encode_message(msg: Message) -> bytes:
    """Type byte + body: what memberlist's ``encode(msgType, msg)`` produces."""
    return bytes((msg.TYPE,)) + encode_body(msg)


# ----------------------------------------------------------------------------- decoding

_FIELD_BY_KEY: dict[type[Message], dict[bytes, _Field]] = {
    cls: {f.key: f for f in cls._FIELDS} for cls in _SORTED
}
_DEFAULTS = {_U8: 0, _U16: 0, _U32: 0, _INT: 0, _STR: "", _BYTES: b"", _BOOL: False}


def _convert(cls: type[Message], f: _Field, value: Any) -> Any:
    kind = f.kind
    if kind == _STR:
        if isinstance(value, bytes):
            return decode_str(value)
        if isinstance(value, str):
            return value
        if value is None:
            return ""
    elif kind == _BYTES:
        if isinstance(value, bytes):
            return value
        if value is None:
            return b""
        if isinstance(value, str):
            return _s(value)
        if isinstance(value, list | tuple) and f.attr == "vsn":
            if len(value) > 255 or not all(
                isinstance(v, int) and not isinstance(v, bool) and 0 <= v <= 255 for v in value
            ):
                raise WireError(f"{cls.__name__}.{f.go}: version array must hold bytes 0..255")
            return bytes(value)
    elif kind == _BOOL:
        if isinstance(value, bool):
            return value
        if value is None:
            return False
    else:
        if isinstance(value, int) and not isinstance(value, bool):
            if 0 <= value <= _LIMITS[kind]:
                return value
            raise WireError(f"{cls.__name__}.{f.go}: {value} is out of range for Go {kind}")
        if value is None:
            return 0
    raise WireError(f"{cls.__name__}.{f.go}: expected {kind}, got {type(value).__name__}")


_MISSING: Final = object()
# Fast-path field kinds (small ints compare faster than the kind strings).
_F_INT, _F_STR, _F_BYTES, _F_BOOL = range(4)
_FAST_KIND = {_STR: _F_STR, _BYTES: _F_BYTES, _BOOL: _F_BOOL}
#: per class, in struct order: (map key, fast kind, upper limit for ints, zero value)
_FAST_SPEC: dict[type[Message], tuple[tuple[bytes, int, int, Any], ...]] = {
    cls: tuple(
        (f.go.encode(), _FAST_KIND.get(f.kind, _F_INT), _LIMITS.get(f.kind, 0), _DEFAULTS[f.kind])
        for f in cls._FIELDS
    )
    for cls in _SORTED
}
for _spec_cls in _FAST_SPEC:  # the fast path builds messages positionally
    _init_order = [f.name for f in dataclasses.fields(cast(Any, _spec_cls))]
    if [f.attr for f in _spec_cls._FIELDS] != _init_order:
        raise RuntimeError(f"{_spec_cls.__name__}._FIELDS is not in dataclass field order")


def _from_map_fast(cls: type[Message], obj: dict[Any, Any]) -> Message | None:
    """The common case of :func:`body_from_object_untrusted`, or ``None`` to fall back.

    Handles a map whose keys are all known field names and whose values have exactly
    the types Go sends (or nil); anything else (unknown keys, other integer or string
    families already converted by msgpack, arrays for Vsn, out-of-range values) returns
    ``None`` so the general path decides, with identical results and errors.
    """
    values: list[Any] = []
    append = values.append
    found = 0
    for key, kind, limit, zero in _FAST_SPEC[cls]:
        v = obj.get(key, _MISSING)
        if v is _MISSING:
            append(zero)
            continue
        found += 1
        t = type(v)
        if kind == _F_INT:
            if t is not int or not 0 <= v <= limit:
                return None
            append(v)
        elif kind == _F_STR:
            if t is bytes:
                append(v.decode("utf-8", "surrogateescape"))
            elif v is None:
                append("")
            else:
                return None
        elif kind == _F_BYTES:
            if t is bytes:
                append(v)
            elif v is None:
                append(b"")
            else:
                return None
        elif t is bool:
            append(v)
        else:
            return None
    if found != len(obj):
        return None  # unknown keys: let the general path skip them
    return cls(*values)


def body_from_object_untrusted(cls: type[Message], obj: Any) -> Message:
    """Build ``cls`` from an already-unpacked msgpack object (map or positional array)."""
    if type(obj) is dict:
        fast = _from_map_fast(cls, obj)
        if fast is not None:
            return fast
    return _from_object_general(cls, obj)


def _from_object_general(cls: type[Message], obj: Any) -> Message:
    """Every shape and type :func:`body_from_object_untrusted` accepts, field by field."""
    kwargs: dict[str, Any] = {}
    if isinstance(obj, dict):
        by_key = _FIELD_BY_KEY[cls]
        for key, value in obj.items():
            if isinstance(key, str):
                key = _s(key)
            elif not isinstance(key, bytes):
                continue  # Go ignores keys it cannot match
            f = by_key.get(key)
            if f is not None:
                kwargs[f.attr] = _convert(cls, f, value)
    elif isinstance(obj, list | tuple):
        fields = cls._FIELDS
        for f, value in zip(fields, obj, strict=False):
            kwargs[f.attr] = _convert(cls, f, value)
    else:
        raise WireError(f"{cls.__name__}: expected a msgpack map, got {type(obj).__name__}")
    for f in cls._FIELDS:
        if f.attr not in kwargs:
            kwargs[f.attr] = _DEFAULTS[f.kind]
    return cls(**kwargs)


def unpack_untrusted(data: bytes, what: str) -> Any:
    """One msgpack object filling all of ``data`` (raw=True); WireError on anything wrong."""
    try:
        return msgpack.unpackb(data, raw=True, strict_map_key=False, use_list=True)
    except msgpack.ExtraData as exc:
        raise WireError(f"{what}: {len(exc.extra)} trailing bytes after the msgpack body") from None
    except (ValueError, TypeError, msgpack.UnpackException, RecursionError) as exc:
        raise WireError(f"{what}: invalid msgpack ({exc.__class__.__name__}: {exc})") from None


_BY_TYPE: dict[int, type[Message]] = {
    MessageType.PING: Ping,
    MessageType.INDIRECT_PING: IndirectPing,
    MessageType.ACK: Ack,
    MessageType.NACK: Nack,
    MessageType.ERR: Err,
    MessageType.SUSPECT: Suspect,
    MessageType.ALIVE: Alive,
    MessageType.DEAD: Dead,
}

#: Union of messages a packet's single part can decode to.
PacketMessage = Ping | IndirectPing | Ack | Nack | Err | Suspect | Alive | Dead | UserMsg


def decode_body_untrusted(cls: type[Message], body: bytes) -> Message:
    """Decode one msgpack body (without type byte) as ``cls``."""
    return body_from_object_untrusted(cls, unpack_untrusted(body, cls.__name__))


def decode_message_untrusted(buf: bytes) -> PacketMessage:
    """Decode one single (non-wrapper) message: type byte + body.

    Compound, compressed, CRC and encrypted wrappers are unwrapped by
    :mod:`swimpy.wire.packet`; here they are errors.
    """
    if not buf:
        raise WireError("empty message", reason="empty")
    t = buf[0]
    if t == MessageType.USER:
        return UserMsg(bytes(buf[1:]))
    cls = _BY_TYPE.get(t)
    if cls is None:
        raise WireError(f"message type ({t}) not supported", reason="unknown_type")
    msg = decode_body_untrusted(cls, bytes(buf[1:]))
    return msg  # type: ignore[return-value]
