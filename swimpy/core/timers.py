"""The engine's timers, as small frozen values (foca's ``Timer`` enum is the anchor).

The contract with drivers (the runtime, the simulator, :mod:`swimpy.testing`):

* ``SetTimer(timer, at)`` asks for ``TimerFired(timer)`` to be handed back at or after
  ``at`` (or for ``Engine.timer_fired(timer, now)`` to be called, which is the same). A
  driver may deliver it a little early (asyncio's ``call_at`` runs a handle up to its
  clock resolution early); the engine treats a current timer delivered early as due.
* Timers are never cancelled and never coalesced: two equal timers set twice are
  delivered twice. The engine ignores timers that went stale (a probe that already
  ended, a suspicion that was refuted or re-armed) by their sequence number or
  generation, so a driver keeps no timer bookkeeping beyond a heap.
"""

from __future__ import annotations

from dataclasses import dataclass

from swimpy.core.frozen import fast_init


@dataclass(frozen=True, slots=True)
class Timer:
    """Base class of every engine timer."""


@dataclass(frozen=True, slots=True)
class ProbeTick(Timer):
    """The probe ticker (memberlist ``ProbeInterval``)."""


@dataclass(frozen=True, slots=True)
class GossipTick(Timer):
    """The gossip ticker (``GossipInterval``)."""


@dataclass(frozen=True, slots=True)
class PushPullTick(Timer):
    """Periodic push/pull with a random member (``PushPullInterval``, scaled)."""


@dataclass(frozen=True, slots=True)
class ReapTick(Timer):
    """Serf's reaper of failed and left members (``ReapInterval``)."""


@dataclass(frozen=True, slots=True)
class ReconnectTick(Timer):
    """Serf's reconnect loop for failed members (``ReconnectInterval``)."""


@fast_init
@dataclass(frozen=True, slots=True)
class ProbeTimeout(Timer):
    """The direct probe ``seq`` had no ack within ``ProbeTimeout``: go indirect."""

    seq: int


@fast_init
@dataclass(frozen=True, slots=True)
class ProbeEnd(Timer):
    """Probe ``seq`` reached the end of its (awareness-scaled) interval."""

    seq: int


@fast_init
@dataclass(frozen=True, slots=True)
class RelayEnd(Timer):
    """An indirect probe we relay (our sequence ``seq``) timed out: maybe nack."""

    seq: int


@fast_init
@dataclass(frozen=True, slots=True)
class SuspicionTimeout(Timer):
    """The suspicion of ``name`` armed with ``generation`` is due."""

    name: str
    generation: int


@fast_init
@dataclass(frozen=True, slots=True)
class RequestTimeout(Timer):
    """A leave or metadata update (``request_id``) waited long enough."""

    request_id: int


#: The periodic timers carry no data: one shared instance each, so the engine allocates
#: nothing per tick (a simulator holds hundreds of thousands of pending timers).
PROBE_TICK = ProbeTick()
GOSSIP_TICK = GossipTick()
PUSH_PULL_TICK = PushPullTick()
REAP_TICK = ReapTick()
RECONNECT_TICK = ReconnectTick()
