"""What a simulation measures, kept up to date event by event.

Convergence is tracked incrementally: for every *active* member ``o`` (running and not
leaving) ``mismatch[o]`` is the size of the symmetric difference between its view (the
members it has alive or suspect) and what it should see (the active members it can reach,
itself included). The cluster is converged when the sum is 0. Member events from the
engine (joined, dead, left) move single pairs in or out of views; starting, stopping and
network changes recompute what they touch. Nothing here scans every table per event, so a
10,000-member run costs no more per packet than a 10-member one.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from swimpy.core.member import EventKind, State

__all__ = ["Metrics", "Watch"]

_IN_VIEW = (State.ALIVE, State.SUSPECT)


@dataclass(slots=True)
class Watch:
    """One crash or graceful leave being followed until everyone knows."""

    kind: str  # "crash" | "leave"
    subject: int
    at: float
    first_suspect: float | None = None
    first_dead: float | None = None  # crash: first dead; leave: first left
    all_done: float | None = None  # crash: all dead; leave: all left
    pending: set[int] = field(default_factory=set)
    open: bool = True
    #: the member was started again (before everyone knew, if ``all_done`` is None)
    restarted: float | None = None

    def as_json(self) -> dict[str, Any]:
        def rel(x: float | None) -> float | None:
            return None if x is None else round(x - self.at, 6)

        if self.kind == "crash":
            out = {
                "kind": "crash",
                "at_s": round(self.at, 6),
                "first_suspect_s": rel(self.first_suspect),
                "first_dead_s": rel(self.first_dead),
                "all_dead_s": rel(self.all_done),
            }
        else:
            out = {
                "kind": "leave",
                "at_s": round(self.at, 6),
                "first_suspect_s": rel(self.first_suspect),
                "first_left_s": rel(self.first_dead),
                "all_left_s": rel(self.all_done),
            }
        if self.restarted is not None:
            out["restarted_s"] = rel(self.restarted)
        return out


class Metrics:
    """Counters and incremental convergence / detection tracking for one run.

    The engine calls the ``on_*`` hooks. ``in_view(o, s)`` asks member ``o``'s current
    table whether ``s`` is alive or suspect; ``reachable(o, s)`` asks the network;
    ``cut()`` says whether any pair is currently unreachable.
    """

    def __init__(
        self,
        n: int,
        names: list[str],
        in_view: Callable[[int, int], bool],
        view_of: Callable[[int], list[int]],
        reachable: Callable[[int, int], bool],
        cut: Callable[[], bool],
    ) -> None:
        self.n = n
        self.names = names
        self._in_view = in_view
        self._view_of = view_of
        self._reachable = reachable
        self._cut = cut
        self.active = [False] * n
        self.running = [False] * n
        self.active_set: set[int] = set()
        self.mismatch = [0] * n
        self.view_size = [0] * n
        self.total = 0
        self.converged_since: float | None = None
        self.last_disruption = 0.0
        self.disruptions: list[tuple[float, str]] = []
        self.watches: list[Watch] = []
        self._open: dict[int, Watch] = {}
        self.false_suspicions = 0
        self.false_deaths = 0
        self.partition_suspicions = 0
        self.partition_deaths = 0
        #: (subject, incarnation) verdicts reached by an observer that could not reach the
        #: subject: the same verdict arriving later anywhere is the partition's doing
        self._cut_suspects: set[tuple[int, int]] = set()
        self._cut_deaths: set[tuple[int, int]] = set()
        self.member_seconds = 0.0
        self._ms_t = 0.0
        self._ms_n = 0
        self.bulk = False

    # ------------------------------------------------------------------ helpers

    def _mark(self, t: float) -> None:
        if self.total == 0:
            if self.converged_since is None:
                self.converged_since = t
        else:
            self.converged_since = None

    def _expected(self, o: int, s: int) -> bool:
        return self.active[s] and self._reachable(o, s)

    def _observer_mismatch(self, o: int) -> int:
        view = set(self._view_of(o))
        self.view_size[o] = len(view)
        if not self._cut():
            exp = self.active_set
        else:
            exp = {s for s in self.active_set if self._reachable(o, s)}
        return len(view ^ exp)

    def disruption(self, t: float, what: str) -> None:
        self.last_disruption = t
        self.disruptions.append((t, what))

    # ------------------------------------------------------------------ process life

    def set_running(self, t: float, i: int, running: bool) -> None:
        self.member_seconds += self._ms_n * (t - self._ms_t)
        self._ms_t = t
        if self.running[i] != running:
            self._ms_n += 1 if running else -1
        self.running[i] = running

    def activate(self, t: float, s: int) -> None:
        """Member ``s`` is up (and not leaving): others should see it, its view counts."""
        if self.active[s]:
            return
        self.active[s] = True
        self.active_set.add(s)
        if self.bulk:
            return
        in_view = self._in_view
        reach = self._reachable
        cut = self._cut()
        delta = 0
        for o in self.active_set:
            if o == s or (cut and not reach(o, s)):
                continue
            # pair (o, s) was a mismatch iff s in view; now it is iff s not in view
            d = -1 if in_view(o, s) else 1
            self.mismatch[o] += d
            delta += d
        m = self._observer_mismatch(s)
        self.mismatch[s] = m
        self.total += delta + m
        self._mark(t)

    def deactivate(self, t: float, s: int) -> None:
        """Member ``s`` crashed, stopped or started leaving."""
        if not self.active[s]:
            return
        self.active[s] = False
        self.active_set.discard(s)
        self.total -= self.mismatch[s]
        self.mismatch[s] = 0
        in_view = self._in_view
        reach = self._reachable
        cut = self._cut()
        delta = 0
        for o in self.active_set:
            if cut and not reach(o, s):
                continue
            d = 1 if in_view(o, s) else -1
            self.mismatch[o] += d
            delta += d
        self.total += delta
        for w in self.watches:
            if w.all_done is None and s in w.pending:
                w.pending.discard(s)
                if not w.pending:
                    w.all_done = t
        self._mark(t)

    def finish_bulk(self, t: float) -> None:
        """After a converged start: every table holds exactly the starting members."""
        self.bulk = False
        if self._cut():
            self.recompute(t)
            return
        for o in self.active_set:
            self.mismatch[o] = 0
            self.view_size[o] = len(self.active_set)
        self.total = 0
        self._mark(t)

    def recompute(self, t: float) -> None:
        """From scratch (after a network change): O(active members x table size)."""
        total = 0
        for o in range(self.n):
            if self.active[o]:
                m = self._observer_mismatch(o)
                self.mismatch[o] = m
                total += m
            else:
                self.mismatch[o] = 0
        self.total = total
        for w in self.watches:
            if w.all_done is None:
                s = w.subject
                w.pending = {
                    o
                    for o in self.active_set
                    if o != s and self._reachable(o, s) and self._in_view(o, s)
                }
                if not w.pending:
                    w.all_done = t
        self._mark(t)

    # ------------------------------------------------------------------ crash / leave

    def crashed(self, t: float, s: int) -> None:
        self._watch("crash", t, s)

    def leaving(self, t: float, s: int) -> None:
        self._watch("leave", t, s)

    def _watch(self, kind: str, t: float, s: int) -> None:
        """Start tracking how member ``s``'s crash or leave spreads to those who see it."""
        self._close(s)
        w = Watch(kind, s, t)
        w.pending = {
            o for o in self.active_set if o != s and self._reachable(o, s) and self._in_view(o, s)
        }
        if not w.pending:
            w.all_done = t
        self.watches.append(w)
        self._open[s] = w

    def _close(self, s: int, t: float | None = None) -> None:
        w = self._open.pop(s, None)
        if w is not None:
            w.open = False
            w.restarted = t

    def restarted(self, t: float, s: int) -> None:
        self._close(s, t)

    # ------------------------------------------------------------------ member events

    def member_event(self, t: float, o: int, s: int, kind: EventKind, inc: int) -> None:
        if self.bulk or not self.running[o]:
            return
        active_o = self.active[o]
        if kind is EventKind.JOINED:
            if active_o:
                self.view_size[o] += 1
                if self.active[s] and self._reachable(o, s):
                    self.mismatch[o] -= 1
                    self.total -= 1
                else:
                    self.mismatch[o] += 1
                    self.total += 1
                self._mark(t)
            w = self._open.get(s)
            if w is not None and w.all_done is None and active_o and self._reachable(o, s):
                w.pending.add(o)
        elif kind is EventKind.DEAD or kind is EventKind.LEFT:
            if active_o:
                self.view_size[o] -= 1
                if self.active[s] and self._reachable(o, s):
                    self.mismatch[o] += 1
                    self.total += 1
                else:
                    self.mismatch[o] -= 1
                    self.total -= 1
                self._mark(t)
            if kind is EventKind.DEAD and self.running[s]:
                if not self._reachable(o, s):
                    self.partition_deaths += 1
                    self._cut_deaths.add((s, inc))
                elif (s, inc) in self._cut_deaths or (s, inc) in self._cut_suspects:
                    self.partition_deaths += 1
                else:
                    self.false_deaths += 1
            w = self._open.get(s)
            if w is not None:
                if w.first_dead is None and (
                    (w.kind == "crash" and kind is EventKind.DEAD)
                    or (w.kind == "leave" and kind is EventKind.LEFT)
                ):
                    w.first_dead = t
                if w.all_done is None and o in w.pending:
                    w.pending.discard(o)
                    if not w.pending:
                        w.all_done = t
        elif kind is EventKind.SUSPECT:
            if self.running[s]:
                if not self._reachable(o, s):
                    self.partition_suspicions += 1
                    self._cut_suspects.add((s, inc))
                elif (s, inc) in self._cut_suspects or (s, inc) in self._cut_deaths:
                    self.partition_suspicions += 1
                else:
                    self.false_suspicions += 1
            w = self._open.get(s)
            if w is not None and w.first_suspect is None:
                w.first_suspect = t

    # ------------------------------------------------------------------ results

    def member_seconds_until(self, t: float) -> float:
        return self.member_seconds + self._ms_n * (t - self._ms_t)

    def convergence(self, end: float) -> float | None:
        if self.total != 0 or self.converged_since is None:
            return None
        return round(max(0.0, self.converged_since - self.last_disruption), 6)

    def detections(self) -> dict[str, dict[str, Any]]:
        out: dict[str, dict[str, Any]] = {}
        for w in self.watches:
            key = self.names[w.subject]
            k = 2
            while key in out:
                key = f"{self.names[w.subject]}#{k}"
                k += 1
            out[key] = w.as_json()
        return out

    def correct_views(self) -> int:
        return sum(1 for o in self.active_set if self.mismatch[o] == 0)
