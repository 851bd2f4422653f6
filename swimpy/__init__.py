"""swimpy: SWIM + Lifeguard cluster membership, wire-compatible with HashiCorp memberlist."""

from __future__ import annotations

from swimpy import (
    aio,
    profiles,
)
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

__version__ = "0.1.0"

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
