"""What a simulation measures, kept up to date event by event.

Convergence is tracked incrementally: for every *active* member ``o`` (running and not
leaving) ``mismatch[o]`` is the size of the symmetric difference between its view (the
members it has alive or suspect) and what it should see (the active members it can reach,
itself included). The cluster is converged when the sum is 0. Member events from the
engine (joined, dead, left) move single pairs in or out of views; starting, stopping and
network changes recompute what they touch. Nothing here scans every table per event, so a
10,000-member run costs no more per packet than a 10-member one.

**False verdicts and partition verdicts.** A suspicion or death of a running member is
*partition-caused* when the evidence behind it crossed a cut, and *false* otherwise. The
network records when each pair was cut (:meth:`Network.cut_between`: were two members cut
apart, in either direction, at some moment of a time window), and each verdict of observer
``o`` on subject ``s`` at time ``t`` is judged on the evidence it rests on, over the window
memberlist's timing gives that evidence:

* **Its own failed probe** (a suspicion reached on a timer of ``o``'s). memberlist
  ``probeNode`` suspects after one failed probe, no retries. The probe pings at ``t - I``,
  with ``I = ProbeInterval * (health + 1)`` (Lifeguard's awareness at the probe's start);
  ``ProbeTimeout`` lies *inside* that interval: when it passes, the indirect pings (through
  ``k`` members, with nacks) and the TCP fallback go out, with the same deadline; the ack
  handler expires at ``t = sent + I`` and the suspicion is raised then. So every packet of
  the missed probe (ping, ack, indirect ping, relayed ping, ack and nack, the fallback's
  SYN) was sent in ``[t - I, t]``, and the network decides whether a packet crosses a cut
  when it is sent: the suspicion is partition-caused iff ``o`` and ``s`` were cut apart
  at some moment of ``[t - I, t]``. (Not ``I + ProbeTimeout``: the timeout is part of the
  interval.) ``o``'s health *when it suspects* bounds ``I`` from above: during a probe
  the score only grows (the failed probe adds its missed nacks before suspecting; a
  refutation adds one; the one decrease, an ack, ends the probe without a suspicion).
  The old rule, a cut at ``t`` itself, is the window of length 0; it missed the common
  case, a probe sent while the link was down that gives up after the heal.
* **Another member's word** (a suspect or dead message in gossip, or a push/pull, from
  member ``x``): it carries ``x``'s evidence, not ``o``'s, and is partition-caused iff
  ``x``'s own verdict on ``s`` was, at that incarnation or a lower one (a member that
  suspects ``s`` re-broadcasts others' suspicions of it as confirmations, with no event
  of its own). The simulator tells who sent what a member was handling when it reached a
  verdict; per member, the latest verdict on each subject is kept if partition-caused. So
  a suspicion a rack member raised across the cut keeps being the partition's doing as it
  floods the reachable majority after a heal, while the majority's own false suspicion of
  a slow member stays false even if a rack member suspected the same incarnation across
  the cut.
* **A death** ends a suspicion that was not refuted in time: ``s`` had to hear that it was
  suspected (gossip, or the buddy system on a probe) and its alive with a higher
  incarnation had to reach ``o`` before the suspicion timeout (``SuspicionMult *
  log10(n) * ProbeInterval``, up to ``SuspicionMaxTimeoutMult`` times that, shorter with
  confirmations) or a dead message from another member. A death is partition-caused iff
  the suspicion it concludes was (``o``'s own, or the sender's when it follows a dead
  message), or ``o`` and ``s`` were cut apart at some moment from the earliest evidence
  for a suspicion of ``s`` at that incarnation (the first probe that failed: its
  suspicion's time minus its prober's ``I``) to the death: the refutation could have been
  lost to that cut.

Only the pair (observer, subject) is looked at: a probe's indirect pings matter only when
its direct ping failed too, and a refutation only has to get from ``s`` to ``o``. Cost per
verdict: a dict look-up, and one step per cut span overlapping the window (none in a run
without partitions); memory: one entry per partition-caused verdict a member holds, and
one time per suspected (subject, incarnation).
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
    #: observers that dropped the subject with a verdict (dead, or left)
    verdicts: int = 0

    def settle(self, t: float) -> None:
        """``all_done`` once nobody who saw the subject still has it, if somebody detected
        it: when the last observers stop without a verdict, nobody was left to detect it,
        and there is no time to report (see :attr:`applicable`)."""
        if self.all_done is None and not self.pending and self.verdicts:
            self.all_done = t

    @property
    def applicable(self) -> bool:
        """False when nobody had the subject to detect it (a 1-member cluster, or every
        observer stopped first): not a detection that never came, and no time at all."""
        return self.verdicts > 0 or bool(self.pending)

    def as_json(self) -> dict[str, Any]:
        def rel(x: float | None) -> float | None:
            return None if x is None else round(x - self.at, 6)

        out: dict[str, Any]
        if self.kind == "crash":
            out = {
                "kind": "crash",
                "applicable": self.applicable,
                "at_s": round(self.at, 6),
                "first_suspect_s": rel(self.first_suspect),
                "first_dead_s": rel(self.first_dead),
                "all_dead_s": rel(self.all_done),
            }
        else:
            out = {
                "kind": "leave",
                "applicable": self.applicable,
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
    ``cut()`` says whether any pair is currently unreachable. ``cut_between(o, s, t0, t1)``
    says whether ``o`` and ``s`` were cut apart at some moment of ``[t0, t1]`` and
    ``probe_window(o)`` bounds how long ``o``'s current probe ran (see the module's
    docstring); without them a verdict is partition-caused only if the pair is cut at that
    very moment.
    """

    def __init__(
        self,
        n: int,
        names: list[str],
        in_view: Callable[[int, int], bool],
        view_of: Callable[[int], list[int]],
        reachable: Callable[[int, int], bool],
        cut: Callable[[], bool],
        *,
        cut_between: Callable[[int, int, float, float], bool] | None = None,
        probe_window: Callable[[int], float] | None = None,
    ) -> None:
        self.n = n
        self.names = names
        self._in_view = in_view
        self._view_of = view_of
        self._reachable = reachable
        self._cut = cut
        self._cut_between: Callable[[int, int, float, float], bool] = cut_between or (
            lambda a, b, t0, t1: not reachable(a, b)
        )
        self._probe_window: Callable[[int], float] = probe_window or (lambda o: 0.0)
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
        #: per observer (None until it has one): subject -> incarnation of its latest
        #: suspect or dead verdict on it, if partition-caused (what it passes on is, too).
        #: Kept after the subject refutes (the incarnation no longer matches anything
        #: new, and a message sent before may still be on its way); dropped when the
        #: observer reaps the subject, reaches a false verdict on it, or restarts.
        self._cut_verdicts: list[dict[int, int] | None] = [None] * n
        #: (subject, incarnation) -> the earliest moment the evidence for a suspicion of it
        #: dates from (a suspicion's time minus its suspecter's probe window)
        self._evidence_from: dict[tuple[int, int], float] = {}
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
                w.settle(t)
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
                w.settle(t)
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
        # No observers: nothing to wait for, but no detection either (Watch.applicable).
        self.watches.append(w)
        self._open[s] = w

    def _close(self, s: int, t: float | None = None) -> None:
        w = self._open.pop(s, None)
        if w is not None:
            w.open = False
            w.restarted = t

    def restarted(self, t: float, s: int) -> None:
        self._close(s, t)
        self._cut_verdicts[s] = None  # a new process, with an empty table

    # ------------------------------------------------------------------ member events

    def member_event(
        self, t: float, o: int, s: int, kind: EventKind, inc: int, source: int = -1
    ) -> None:
        """Member ``o``'s view of ``s`` changed (``kind``, at incarnation ``inc``) while it
        handled a message from member ``source`` (-1: a timer of its own, or a request)."""
        if self.bulk or not self.running[o]:
            return
        if kind is EventKind.REAPED:
            held = self._cut_verdicts[o]
            if held is not None:
                held.pop(s, None)  # forgotten: it has nothing left to pass on about ``s``
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
                self._judge_death(t, o, s, inc, source)
            w = self._open.get(s)
            if w is not None:
                if w.first_dead is None and (
                    (w.kind == "crash" and kind is EventKind.DEAD)
                    or (w.kind == "leave" and kind is EventKind.LEFT)
                ):
                    w.first_dead = t
                w.verdicts += 1
                if w.all_done is None:
                    w.pending.discard(o)
                    w.settle(t)
        elif kind is EventKind.SUSPECT:
            if self.running[s]:
                self._judge_suspicion(t, o, s, inc, source)
            w = self._open.get(s)
            if w is not None and w.first_suspect is None:
                w.first_suspect = t

    def _holds_cut_verdict(self, x: int, s: int, inc: int) -> bool:
        """Whether what member ``x`` says about ``s`` at ``inc`` rests on a partition-caused
        verdict of its own. At ``inc`` itself, or below: a member that suspects ``s``
        passes on the suspicions of others at the same or a higher incarnation as
        confirmations (memberlist re-broadcasts a confirming ``suspect``) without a new
        event of its own; its own suspicion, what made it accept them, is what counts."""
        held = self._cut_verdicts[x] if x >= 0 else None
        if held is None:
            return False
        at = held.get(s)
        return at is not None and at <= inc

    def _verdict(self, o: int, s: int, inc: int, cut: bool) -> None:
        """Remember whether ``o``'s verdict on ``s`` at ``inc`` is partition-caused."""
        held = self._cut_verdicts[o]
        if cut:
            if held is None:
                held = self._cut_verdicts[o] = {}
            held[s] = inc
        elif held is not None:
            held.pop(s, None)

    def _judge_suspicion(self, t: float, o: int, s: int, inc: int, source: int) -> None:
        """``o`` suspects running member ``s`` at ``inc``: false or partition-caused."""
        key = (s, inc)
        since = t - self._probe_window(o)
        first = self._evidence_from.get(key)
        if first is None or since < first:
            self._evidence_from[key] = since
        if source >= 0:  # learnt from ``source``: its evidence
            cut = self._holds_cut_verdict(source, s, inc)
        else:  # its own probe ended without an ack
            cut = self._cut_between(o, s, since, t)
        if cut:
            self.partition_suspicions += 1
        else:
            self.false_suspicions += 1
        self._verdict(o, s, inc, cut)

    def _judge_death(self, t: float, o: int, s: int, inc: int, source: int) -> None:
        """``o`` declares running member ``s`` dead at ``inc``: false or partition-caused."""
        held = self._cut_verdicts[o]
        # its own suspicion of ``s`` at ``inc``, or the word of the member it followed
        cut = (held is not None and held.get(s) == inc) or self._holds_cut_verdict(
            source, s, inc
        )
        if not cut:
            since = self._evidence_from.get((s, inc))
            if since is None:  # no suspicion seen (a dead message about a restarted member)
                since = t - self._probe_window(o)
            cut = self._cut_between(o, s, since, t)
        if cut:
            self.partition_deaths += 1
        else:
            self.false_deaths += 1
        self._verdict(o, s, inc, cut)

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
