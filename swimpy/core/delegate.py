"""Hooks a daemon plugs into the engine, each optional on its own.

memberlist splits its hooks over separate interfaces (``Delegate``, ``AliveDelegate``,
``MergeDelegate``, ``ConflictDelegate``, ``PingDelegate``), and having one changes
behaviour: with an ``AliveDelegate`` set, memberlist refuses alive messages without a
full version vector. Here a hook counts as present when the delegate object defines it
(a :class:`Delegate` subclass that overrides it, or any object with that method); a
hook left at :class:`Delegate`'s default is absent, as if that interface were not set.

Hooks run synchronously on the engine's owner thread (the runtime's trio task, or the
simulator's loop), inside ``Engine.handle``. They must not block: a slow hook delays
probes and acks, and healthy peers start to look dead. An exception from a hook is
logged and treated as the hook's most conservative answer.

User messages are not a hook: they arrive as ``UserMessageReceived`` actions.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from swimpy.core.member import Member

log = logging.getLogger("swimpy.core")

T = TypeVar("T")


class Delegate:
    """Base class for hooks; override the ones you need."""

    def local_state(self, join: bool) -> bytes:
        """User state to ship in a push/pull (Serf: its ``messagePushPull``)."""
        return b""

    def merge_remote_state(self, buf: bytes, join: bool) -> None:
        """A peer's user state from a push/pull."""

    def get_broadcasts(self, overhead: int, limit: int) -> list[bytes]:
        """Extra user broadcasts to piggyback (each sent as a type-8 message)."""
        return []

    def notify_merge(self, peers: Sequence[Member]) -> bool:
        """Merge delegate: return False to refuse merging a joining cluster's members."""
        return True

    def notify_alive(self, peer: Member) -> bool:
        """Alive delegate: return False to ignore an alive message about ``peer``."""
        return True

    def notify_conflict(self, existing: Member, other: Member) -> None:
        """Another address claims the name of a live member (memberlist's Conflict)."""

    def ack_payload(self) -> bytes:
        """Payload to put in acks to probes of us (Serf: a Vivaldi coordinate)."""
        return b""


_HOOKS = (
    "local_state",
    "merge_remote_state",
    "get_broadcasts",
    "notify_merge",
    "notify_alive",
    "notify_conflict",
    "ack_payload",
)


def _resolve(delegate: object, name: str) -> Callable[..., Any] | None:
    fn = getattr(delegate, name, None)
    if fn is None or not callable(fn):
        return None
    default = getattr(Delegate, name)
    if getattr(fn, "__func__", None) is default:
        return None  # left at the base class's default: the hook is absent
    return fn  # type: ignore[no-any-return]


class Hooks:
    """The hooks a delegate provides, resolved once, each called through :meth:`call`."""

    __slots__ = ("_name", *_HOOKS)

    def __init__(self, delegate: object | None, owner: str) -> None:
        self._name = owner
        for hook in _HOOKS:
            setattr(self, hook, None if delegate is None else _resolve(delegate, hook))

    local_state: Callable[[bool], bytes] | None
    merge_remote_state: Callable[[bytes, bool], None] | None
    get_broadcasts: Callable[[int, int], list[bytes]] | None
    notify_merge: Callable[[Sequence[Member]], bool] | None
    notify_alive: Callable[[Member], bool] | None
    notify_conflict: Callable[[Member, Member], None] | None
    ack_payload: Callable[[], bytes] | None

    def call(self, hook: str, default: T, *args: Any) -> T:
        """``hook(*args)``, or ``default`` when the hook is absent or raises."""
        fn = getattr(self, hook)
        if fn is None:
            return default
        try:
            return fn(*args)  # type: ignore[no-any-return]
        except Exception:
            log.exception("%s: delegate %s failed", self._name, hook)
            return default
