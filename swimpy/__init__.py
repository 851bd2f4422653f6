"""swimpy: SWIM + Lifeguard cluster membership, wire-compatible with HashiCorp memberlist."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from swimpy import profiles
from swimpy.core import Delegate, Engine, EventKind, Member, State
from swimpy.profiles import Config, ConfigError
from swimpy.runtime import (
    JoinError,
    MemberEvent,
    Node,
    NodeClosed,
    UserMessage,
    open_node,
)
from swimpy.runtime.thread import ThreadedNode, start_node
from swimpy.wire.errors import WireError

if TYPE_CHECKING:
    from swimpy import aio

__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    # swimpy.aio imports asyncio (about 1.5 MiB of RSS) and only asyncio programs use
    # it: import it on first use (PEP 562), not in every member process
    if name == "aio":
        import swimpy.aio

        return swimpy.aio
    raise AttributeError(f"module 'swimpy' has no attribute {name!r}")

__all__ = [
    "Config",
    "ConfigError",
    "Delegate",
    "Engine",
    "EventKind",
    "JoinError",
    "Member",
    "MemberEvent",
    "Node",
    "NodeClosed",
    "State",
    "ThreadedNode",
    "UserMessage",
    "WireError",
    "__version__",
    "aio",
    "open_node",
    "profiles",
    "start_node",
]
