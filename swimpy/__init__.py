"""swimpy: SWIM + Lifeguard cluster membership, wire-compatible with HashiCorp memberlist."""

from __future__ import annotations

from swimpy import profiles
from swimpy.core import Delegate, Engine, EventKind, Member, State
from swimpy.profiles import Config, ConfigError
from swimpy.wire.errors import WireError

__version__ = "0.1.0"

__all__ = [
    "Config",
    "ConfigError",
    "Delegate",
    "Engine",
    "EventKind",
    "Member",
    "State",
    "WireError",
    "__version__",
    "profiles",
]
