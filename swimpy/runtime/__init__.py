"""The trio runtime: the engine on real UDP and TCP sockets (:func:`open_node`), and the
thread host for programs that are not trio (:func:`start_node`; asyncio: :mod:`swimpy.aio`).
"""

from swimpy.core.actions import MemberEvent
from swimpy.runtime.driver import NodeClosed
from swimpy.runtime.events import Subscription, UserMessage
from swimpy.runtime.keyring import Keyring
from swimpy.runtime.node import JoinError, Node, open_node

__all__ = [
    "JoinError",
    "Keyring",
    "MemberEvent",
    "Node",
    "NodeClosed",
    "Subscription",
    "UserMessage",
    "open_node",
]
