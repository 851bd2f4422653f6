"""Member events as log lines and as Serf-style event handler scripts.

A handler runs as ``serf agent -event-handler`` runs one: through the shell, with
``SERF_EVENT`` (member-join, member-leave, member-failed, member-update, member-reap),
``SERF_SELF_NAME``, ``SERF_SELF_ROLE`` and ``SERF_TAG_<NAME>`` for each of our tags in its
environment, and one line per member on stdin: name, address, role and ``k=v,k=v`` tags,
tab-separated (serf's ``invoke.go``; tabs and newlines in values are escaped). Scripts run
one at a time, in event order, each for at most ``SCRIPT_TIMEOUT`` seconds; events wait in a
bounded queue (the oldest dropped and counted when scripts fall behind).
"""

from __future__ import annotations

import logging
import os
import re
from collections import deque
from collections.abc import Callable, Mapping, Sequence

import trio

from swimpy.agent.settings import EventHandler
from swimpy.core.actions import MemberEvent
from swimpy.core.member import EventKind

log = logging.getLogger("swimpy.agent")

SERF_EVENTS = {
    EventKind.JOINED: "member-join",
    EventKind.LEFT: "member-leave",
    EventKind.DEAD: "member-failed",
    EventKind.UPDATED: "member-update",
    EventKind.REAPED: "member-reap",
}
SCRIPT_TIMEOUT = 60.0
QUEUE_DEPTH = 1024

_LOG_TEXT = {
    EventKind.JOINED: "member joined",
    EventKind.UPDATED: "member updated",
    EventKind.SUSPECT: "member suspected",
    EventKind.REFUTED: "member refuted a suspicion (alive)",
    EventKind.DEAD: "member failed",
    EventKind.LEFT: "member left",
    EventKind.REAPED: "member reaped",
}


def log_event(pool: str, ev: MemberEvent) -> None:
    m = ev.member
    level = logging.WARNING if ev.kind in (EventKind.DEAD, EventKind.SUSPECT) else logging.INFO
    log.log(level, "%s: %s: %s %s:%d (incarnation %d)", pool, _LOG_TEXT[ev.kind], m.name,
            m.addr, m.port, m.incarnation)


def _clean(text: str) -> str:
    return text.replace("\t", "\\t").replace("\n", "\\n")


def member_line(ev: MemberEvent) -> str:
    m = ev.member
    tags = ",".join(f"{k}={v}" for k, v in m.tags.items())
    return f"{_clean(m.name)}\t{m.addr}\t{_clean(m.tags.get('role', ''))}\t{_clean(tags)}\n"


def script_env(event: str, self_name: str, tags: Mapping[str, str]) -> dict[str, str]:
    env = dict(os.environ)
    env["SERF_EVENT"] = event
    env["SERF_SELF_NAME"] = self_name
    env["SERF_SELF_ROLE"] = tags.get("role", "")
    for k, v in tags.items():
        # as serf's invoke.go: anything outside [A-Z0-9_] becomes "_", so the shell keeps it
        env["SERF_TAG_" + _NOT_ENV.sub("_", k.upper())] = v
    return env


_NOT_ENV = re.compile(r"[^A-Z0-9_]")


class EventHandlers:
    """``tags`` returns our current tags (they change with ``swimpy tags``)."""

    def __init__(self, handlers: Sequence[EventHandler], self_name: str,
                 tags: Callable[[], Mapping[str, str]]) -> None:
        self._handlers = list(handlers)
        self._self_name = self_name
        self._tags = tags
        self._queue: deque[MemberEvent] = deque()
        self._lot = trio.lowlevel.ParkingLot()
        self.dropped = 0

    def submit(self, ev: MemberEvent) -> None:
        if not self._handlers or ev.kind not in SERF_EVENTS:
            return
        if len(self._queue) >= QUEUE_DEPTH:
            self._queue.popleft()
            self.dropped += 1
            log.warning("agent: event handlers fall behind; dropped the oldest event")
        self._queue.append(ev)
        self._lot.unpark_all()

    async def run(self) -> None:
        while True:
            while not self._queue:
                await self._lot.park()
            ev = self._queue.popleft()
            event = SERF_EVENTS[ev.kind]
            for h in self._handlers:
                if h.wants(event):
                    await self._invoke(h, event, ev)

    async def _invoke(self, h: EventHandler, event: str, ev: MemberEvent) -> None:
        env = script_env(event, self._self_name, self._tags())
        with trio.move_on_after(SCRIPT_TIMEOUT) as timeout:
            try:
                result = await trio.run_process(
                    h.script, shell=True, stdin=member_line(ev).encode(), env=env,
                    capture_stdout=True, capture_stderr=True, check=False)
            except OSError as exc:
                log.error("agent: event handler %r could not run: %s", h.script, exc)
                return
        if timeout.cancelled_caught:
            log.error("agent: event handler %r ran longer than %gs; stopped", h.script,
                      SCRIPT_TIMEOUT)
            return
        out = (result.stdout + result.stderr).decode(errors="replace").strip()
        if result.returncode != 0:
            log.error("agent: event handler %r for %s exited %d: %s", h.script, event,
                      result.returncode, out)
        elif out:
            log.debug("agent: event handler %r output: %s", h.script, out)
