"""Immutable views of an engine for other threads: the membership and the statistics.

The engine is owned by one thread or task. Anything else (a thread host's caller, an
HTTP handler, a metrics scrape) reads a snapshot the owner made. Member records are
immutable already, so a snapshot is a tuple of them; it is rebuilt only when the table
changed since the last one (``Engine.snapshot`` caches it by the table's version), so a
simulator that never asks pays nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from swimpy.core.member import Member, State

_IN_VIEW = (State.ALIVE, State.SUSPECT)


@dataclass(frozen=True, slots=True)
class Membership:
    """The table at one moment, plus Serf's retained failed and left members."""

    #: the table's version when this snapshot was made
    version: int
    #: every table entry (alive, suspect, dead, left), self included, in name order
    table: tuple[Member, ...]
    #: failed and left members retained after the table forgot them (Serf's view)
    retained: tuple[Member, ...] = ()
    _by_name: Mapping[str, Member] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def build(cls, version: int, table: Mapping[str, Member],
              retained: Mapping[str, Member]) -> Membership:
        rows = tuple(sorted(table.values(), key=lambda m: m.name))
        extra = tuple(sorted((m for n, m in retained.items() if n not in table),
                             key=lambda m: m.name))
        by_name = {m.name: m for m in rows}
        return cls(version, rows, extra, MappingProxyType(by_name))

    def members(self) -> list[Member]:
        """Alive and suspect members (memberlist ``Members()``), self included."""
        return [m for m in self.table if m.state in _IN_VIEW]

    def member(self, name: str) -> Member | None:
        return self._by_name.get(name)

    def all_members(self) -> list[Member]:
        """Serf's view: the table plus failed and left members still retained."""
        return sorted((*self.table, *self.retained), key=lambda m: m.name)


#: statistics that are levels rather than running totals
GAUGES = ("members", "alive", "suspect", "dead", "left", "queue_depth", "health_score",
          "incarnation")


@dataclass(frozen=True, slots=True)
class Statistics:
    """One engine's gauges and counters at one moment (trio's ``statistics()`` style)."""

    #: table entries, self, dead and left included (memberlist ``NumNodes``... of the table)
    members: int
    alive: int
    suspect: int
    dead: int
    left: int
    #: broadcasts waiting in the transmit-limited queue
    queue_depth: int
    #: Lifeguard's local health (0 = healthy)
    health_score: int
    incarnation: int
    #: running totals by name: packets_sent, bytes_received, probes, suspicions, ...;
    #: ``dropped_<reason>`` counts input that was bad or unusable
    counters: Mapping[str, int]

    @property
    def dropped(self) -> int:
        """Everything dropped as bad or unusable, over all reasons."""
        return sum(v for k, v in self.counters.items() if k.startswith("dropped_"))

    def as_dict(self) -> dict[str, int]:
        """Gauges and counters in one flat mapping (what the Prometheus export reads)."""
        out = dict(self.counters)
        for g in GAUGES:
            out[g] = getattr(self, g)
        return out
