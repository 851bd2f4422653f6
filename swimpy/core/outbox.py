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


#: at most one warning per kind in this many seconds; the rest are logged at debug level
#: and counted into the next warning, so a flood of bad packets cannot flood the log
WARN_INTERVAL = 10.0


class Outbox:
    __slots__ = ("_warned", "actions", "name", "now", "stats")

    def __init__(self, name: str) -> None:
        self.name = name
        self.actions: list[Action] = []
        #: running totals (see ``Statistics``); ``dropped_*`` means something was wrong
        self.stats: Counter[str] = Counter()
        #: the time of the input being handled (the engine sets it)
        self.now = 0.0
        #: kind -> (time of the last warning, warnings suppressed since)
        self._warned: dict[str, tuple[float, int]] = {}

    def warn(self, kind: str, fmt: str, *args: object) -> None:
        """A warning about bad input, rate-limited per ``kind`` (see WARN_INTERVAL)."""
        last, suppressed = self._warned.get(kind, (-WARN_INTERVAL, 0))
        if self.now - last < WARN_INTERVAL:
            self._warned[kind] = (last, suppressed + 1)
            log.debug(fmt, *args)
            return
        self._warned[kind] = (self.now, 0)
        if suppressed:
            fmt += " (and %d more like it in the last %gs, logged at debug level)"
            args = (*args, suppressed, WARN_INTERVAL)
        log.warning(fmt, *args)

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
