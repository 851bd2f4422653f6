"""What every mechanism writes to: actions for the driver, timers, member events and
counters. Mechanisms never return actions themselves; the engine drains the outbox once
per input, so data flows one way: input -> engine -> mechanism -> outbox -> driver."""

from __future__ import annotations

import logging
from collections import Counter

from swimpy.core.actions import Action, MemberEvent, SetTimer
from swimpy.core.member import EventKind, Member
from swimpy.core.timers import Timer

log = logging.getLogger("swimpy.core")


class Outbox:
    __slots__ = ("actions", "name", "stats")

    def __init__(self, name: str) -> None:
        self.name = name
        self.actions: list[Action] = []
        #: running totals (see ``Statistics``); ``dropped_*`` means something was wrong
        self.stats: Counter[str] = Counter()

    def timer(self, timer: Timer, at: float) -> None:
        self.actions.append(SetTimer(timer, at))

    def emit(self, kind: EventKind, member: Member) -> None:
        self.actions.append(MemberEvent(kind, member))

    def drop(self, reason: str, detail: str) -> None:
        """Bad or unusable input from the network: counted as ``dropped_<reason>``."""
        self.stats["dropped_" + reason] += 1
        log.debug("%s: dropped (%s): %s", self.name, reason, detail)

    def ignore(self, what: str) -> None:
        """Routine input memberlist ignores silently (a late ack, news about a member
        we never knew): counted under its own name, never as a drop."""
        self.stats[what] += 1

    def take(self) -> list[Action]:
        out, self.actions = self.actions, []
        return out
