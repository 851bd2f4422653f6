"""Membership events read from the output lines of the three systems' processes.

Every process's stdout and stderr go to one pipe that a reader thread in the benchmark
drains; each line is stamped with ``time.monotonic()`` when it arrives (the same clock
for all three systems) and parsed here into an :class:`Event`, or ``None`` when the line
says nothing about membership.

* ``swimpy agent`` logs each member event (``swimpy/agent/events.py``)::

      2026-11-28 11:28:46,044 [WARNING] swimpy.agent: lan: member suspected: c 127.0.0.1:17103 (incarnation 1)

* ``serf agent`` (``-log-level=info``): memberlist logs the prober's suspicion
  (memberlist ``state.go``, ``probeNode``), Serf logs its member events
  (serf ``serf/serf.go``, ``handleNodeJoin``/``handleNodeLeaveIntent``..., through
  ``agent/event_handler``)::

      2026/11/28 13:17:11 [INFO] memberlist: Suspect c has failed, no acks received
      2026/11/28 13:17:15 [INFO] serf: EventMemberFailed: c 127.0.0.1
      2026/11/28 13:17:20 [INFO] serf: EventMemberJoin: c 127.0.0.1

  Serf has no event for a suspicion heard from others or for a refuted one; only the
  member whose probe failed logs it.

* the kinship driver (``benchmarks/cluster/kinship_member.py``) prints
  ``KIN <monotonic> <EventClass> <name> <state>``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

#: kinds of :class:`Event`
JOINED = "joined"
SUSPECT = "suspect"
ALIVE = "alive"  # a suspicion refuted
DEAD = "dead"
LEFT = "left"
KINDS = (JOINED, SUSPECT, ALIVE, DEAD, LEFT)


@dataclass(frozen=True, slots=True)
class Event:
    """``observer`` saw ``subject`` become ``kind`` at monotonic time ``t``; ``own_t`` is
    the time the process itself printed (kinship's driver), when it gives one."""

    t: float
    observer: str
    kind: str
    subject: str
    own_t: float | None = None


_SWIMPY = re.compile(
    r"swimpy\.agent: lan: member (joined|suspected|refuted a suspicion \(alive\)|failed|left): "
    r"(\S+) ")
_SWIMPY_KIND = {"joined": JOINED, "suspected": SUSPECT, "refuted a suspicion (alive)": ALIVE,
                "failed": DEAD, "left": LEFT}

_SERF_SUSPECT = re.compile(r"memberlist: Suspect (\S+) has failed, no acks received")
_SERF_EVENT = re.compile(r"serf: EventMember(Join|Failed|Leave|Reap): (\S+)")
_SERF_KIND = {"Join": JOINED, "Failed": DEAD, "Leave": LEFT}

_KINSHIP = re.compile(r"^KIN (\d+(?:\.\d+)?) (\w+) (\S+)")
_KINSHIP_KIND = {"MemberJoined": JOINED, "MemberSuspect": SUSPECT, "MemberRecovered": ALIVE,
                 "MemberDead": DEAD, "MemberLeft": LEFT}


def parse_swimpy(line: str, t: float, observer: str) -> Event | None:
    m = _SWIMPY.search(line)
    if m is None:
        return None
    return Event(t, observer, _SWIMPY_KIND[m.group(1)], m.group(2))


def parse_serf(line: str, t: float, observer: str) -> Event | None:
    m = _SERF_SUSPECT.search(line)
    if m is not None:
        return Event(t, observer, SUSPECT, m.group(1))
    m = _SERF_EVENT.search(line)
    if m is None or m.group(1) not in _SERF_KIND:  # a reap says nothing new about liveness
        return None
    return Event(t, observer, _SERF_KIND[m.group(1)], m.group(2))


def parse_kinship(line: str, t: float, observer: str) -> Event | None:
    m = _KINSHIP.search(line)
    if m is None or m.group(2) not in _KINSHIP_KIND:
        return None
    return Event(t, observer, _KINSHIP_KIND[m.group(2)], m.group(3), own_t=float(m.group(1)))


PARSERS = {"swimpy": parse_swimpy, "serf": parse_serf, "kinship": parse_kinship}


def suspicion_episodes(events: list[Event], gap: float) -> list[tuple[str, float]]:
    """Group suspicion events into episodes: events about one subject less than ``gap``
    seconds after the previous one belong to the same episode (swimpy and kinship report a
    suspicion at every member that hears it, Serf only at the prober). Returns
    ``(subject, first time)`` per episode, in time order."""
    last: dict[str, float] = {}
    episodes: list[tuple[str, float]] = []
    for ev in sorted((e for e in events if e.kind == SUSPECT), key=lambda e: e.t):
        prev = last.get(ev.subject)
        if prev is None or ev.t - prev >= gap:
            episodes.append((ev.subject, ev.t))
        last[ev.subject] = ev.t
    return episodes
