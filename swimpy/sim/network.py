"""The simulated network: per-link latency, loss, duplication, reordering and partitions.

Links are looked up through *zones*: every member gets the id of the set of groups (of the
active link rules and partitions) it belongs to, and the behaviour of a link depends only
on the zones at its ends. The zone-pair table is rebuilt whenever a rule or partition
starts or ends, so a packet costs one list lookup however many rules a scenario has.

All randomness comes from the one ``random.Random`` given to :class:`Network`; it is
consumed in event order, so a seed fixes every latency, loss and duplicate.

The network also remembers *when* links were cut (:meth:`Network.cut_between`), so the
metrics can tell whether the evidence behind a verdict crossed a partition: every
configuration with at least one blocked link is kept as a :class:`CutSpan` (its time span,
the zone of every member, and the blocked zone pairs). A span is what the zone table
already is, frozen at the change, so it costs one list of member zones per network change
that blocks something, and nothing at all in a run without partitions.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from swimpy.sim.scenario import LatencySpec, LinkSpec

__all__ = ["CutSpan", "LinkParams", "Network", "Partition", "make_sampler"]

Sampler = Callable[[], float]


def make_sampler(spec: LatencySpec, rng: random.Random) -> Sampler:
    """A function drawing one delay (seconds, >= 0) from ``spec`` with ``rng``."""
    a, b = spec.a, spec.b
    if spec.dist == "fixed" or (spec.dist == "uniform" and a == b):
        return lambda: a
    if spec.dist == "uniform":
        rnd = rng.random
        width = b - a
        return lambda: a + width * rnd()
    if spec.dist == "normal":
        norm = rng.normalvariate
        return lambda: max(0.0, norm(a, b))
    if spec.dist == "lognormal":
        norm = rng.normalvariate
        exp = math.exp
        return lambda: a * exp(b * norm(0.0, 1.0))
    if spec.dist == "exponential":
        if b <= 0:
            return lambda: a
        expo = rng.expovariate
        lam = 1.0 / b
        return lambda: a + expo(lam)
    raise ValueError(f"unknown latency distribution {spec.dist!r}")


@dataclass(slots=True)
class LinkParams:
    """Compiled behaviour of the links between two zones."""

    latency: Sampler
    loss: float
    duplicate: float
    reorder: float
    reorder_delay: float
    #: a partition drops everything on this link
    blocked: bool
    mean_latency: float
    #: nothing but latency: no loss, duplicates, reordering or block (the simulator's
    #: fast path sends over such a link with one latency draw)
    plain: bool = False


@dataclass(slots=True)
class Partition:
    """Packets from ``src`` members to ``dst`` members are lost (and back, if symmetric)."""

    id: str
    src: frozenset[int]
    dst: frozenset[int]
    symmetric: bool


@dataclass(slots=True)
class CutSpan:
    """A stretch of time during which the network's blocked links stayed the same.

    From ``start`` to ``end`` (``math.inf`` while it lasts), the link from member ``a`` to
    member ``b`` was blocked iff ``zone[a] * zones + zone[b]`` is in ``blocked``.
    """

    start: float
    end: float
    zone: list[int]
    zones: int
    blocked: frozenset[int]

    def cuts(self, a: int, b: int) -> bool:
        """Whether ``a`` -> ``b`` or ``b`` -> ``a`` was blocked during this span."""
        za = self.zone[a]
        zb = self.zone[b]
        k = self.zones
        blocked = self.blocked
        return za * k + zb in blocked or zb * k + za in blocked


class Network:
    def __init__(
        self,
        n: int,
        default: LinkSpec,
        rng: random.Random,
        clock: Callable[[], float] | None = None,
    ) -> None:
        """``clock`` gives the current (virtual) time, to date the cuts (default: 0)."""
        self.n = n
        self._clock: Callable[[], float] = clock or (lambda: 0.0)
        #: the spans with a blocked link, oldest first (disjoint, in time order)
        self._cut_spans: list[CutSpan] = []
        self.rng = rng
        self._default = default
        #: active link rules, in scenario order (later ones win), with resolved member sets
        self._rules: list[tuple[int, LinkSpec, frozenset[int], frozenset[int]]] = []
        self._partitions: dict[str, Partition] = {}
        self._starve = [0.0] * n
        self.zone: list[int] = [0] * n
        self._zones = 1
        self._table: list[LinkParams | None] = [None]
        self._reps: list[int] = [0]
        self._samplers: dict[LatencySpec, Sampler] = {}
        self.recompile()

    # ------------------------------------------------------------------ changes

    @property
    def starve_delay(self) -> list[float]:
        """Per member: extra delay before its inbox is handled (0 = not starved)."""
        return self._starve

    def add_rule(
        self, key: int, spec: LinkSpec, src: Iterable[int], dst: Iterable[int]
    ) -> None:
        self._rules.append((key, spec, frozenset(src), frozenset(dst)))
        self._rules.sort(key=lambda r: r[0])
        self.recompile()

    def remove_rule(self, key: int) -> None:
        self._rules = [r for r in self._rules if r[0] != key]
        self.recompile()

    def partition(self, p: Partition) -> None:
        self._partitions[p.id] = p
        self.recompile()

    def heal(self, pid: str | None = None) -> list[str]:
        """End partition ``pid`` (None = all); the ids healed."""
        if pid is None:
            healed = list(self._partitions)
            self._partitions.clear()
        else:
            healed = [pid] if self._partitions.pop(pid, None) is not None else []
        self.recompile()
        return healed

    @property
    def partitions(self) -> dict[str, Partition]:
        return dict(self._partitions)

    def any_blocking(self) -> bool:
        """Whether some pair of members cannot reach each other right now."""
        if self._partitions:
            return True
        return any(p is not None and p.loss >= 1.0 for p in self._all_params())

    def _all_params(self) -> list[LinkParams]:
        z = self._zones
        return [self._params_for(i, j) for i in range(z) for j in range(z)]

    # ------------------------------------------------------------------ compile

    def recompile(self) -> None:
        sets: list[frozenset[int]] = []
        for _, _, s, d in self._rules:
            sets.extend((s, d))
        for p in self._partitions.values():
            sets.extend((p.src, p.dst))
        uniq: list[frozenset[int]] = []
        seen: set[frozenset[int]] = set()
        for s in sets:
            if s not in seen and len(s) < self.n:
                seen.add(s)
                uniq.append(s)
        ids: dict[tuple[bool, ...], int] = {}
        reps: list[int] = []
        # a new list, not an update in place: a closed CutSpan keeps the old one
        zone = [0] * self.n
        for i in range(self.n):
            sig = tuple(i in s for s in uniq)
            z = ids.get(sig)
            if z is None:
                z = len(reps)
                ids[sig] = z
                reps.append(i)
            zone[i] = z
        self.zone = zone
        self._zones = max(1, len(reps))
        self._reps = reps or [0]
        self._table = [None] * (self._zones * self._zones)
        self._log_cuts()

    def _may_block(self) -> bool:
        """Cheap pre-check: could any link be blocked (a partition, or a total loss)?"""
        if self._partitions or (self._default.loss or 0.0) >= 1.0:
            return True
        return any(r.loss is not None and r.loss >= 1.0 for _, r, _, _ in self._rules)

    def _log_cuts(self) -> None:
        """Close the current cut span and open a new one if some link is blocked now."""
        t = self._clock()
        spans = self._cut_spans
        if spans and spans[-1].end == math.inf:
            spans[-1].end = t
        if not self._may_block():
            return
        z = self._zones
        blocked = frozenset(
            i * z + j
            for i in range(z)
            for j in range(z)
            if (p := self._params_for(i, j)).blocked or p.loss >= 1.0
        )
        if blocked:
            spans.append(CutSpan(t, math.inf, self.zone, z, blocked))

    def cut_between(self, a: int, b: int, t0: float, t1: float) -> bool:
        """Whether ``a`` and ``b`` were cut apart (either direction blocked: a probe needs
        both) at some moment between ``t0`` and ``t1``, both included.

        Costs one step per cut span that ended at or after ``t0``: network changes are
        few, and spans that ended before ``t0`` are never looked at.
        """
        if a == b:
            return False
        for span in reversed(self._cut_spans):
            if span.end < t0:
                break
            if span.start <= t1 and span.cuts(a, b):
                return True
        return False

    @property
    def cut_spans(self) -> list[CutSpan]:
        """Every span with a blocked link so far, oldest first."""
        return list(self._cut_spans)

    def _sampler(self, spec: LatencySpec) -> Sampler:
        s = self._samplers.get(spec)
        if s is None:
            s = make_sampler(spec, self.rng)
            self._samplers[spec] = s
        return s

    def _params_for(self, zs: int, zd: int) -> LinkParams:
        cached = self._table[zs * self._zones + zd]
        if cached is not None:
            return cached
        a = self._reps[zs]
        b = self._reps[zd]
        d = self._default
        assert d.latency is not None
        lat: LatencySpec = d.latency
        loss = d.loss or 0.0
        dup = d.duplicate or 0.0
        reo = d.reorder or 0.0
        reo_d = d.reorder_delay if d.reorder_delay is not None else 0.005
        for _, r, s, t in self._rules:
            if (a in s and b in t) or (r.symmetric and b in s and a in t):
                if r.latency is not None:
                    lat = r.latency
                if r.loss is not None:
                    loss = r.loss
                if r.duplicate is not None:
                    dup = r.duplicate
                if r.reorder is not None:
                    reo = r.reorder
                if r.reorder_delay is not None:
                    reo_d = r.reorder_delay
        blocked = False
        for p in self._partitions.values():
            if (a in p.src and b in p.dst) or (p.symmetric and b in p.src and a in p.dst):
                blocked = True
                break
        plain = not (blocked or loss or dup or reo)
        params = LinkParams(self._sampler(lat), loss, dup, reo, reo_d, blocked, lat.mean, plain)
        self._table[zs * self._zones + zd] = params
        return params

    # ------------------------------------------------------------------ queries

    def link(self, src: int, dst: int) -> LinkParams:
        zone = self.zone
        p = self._table[zone[src] * self._zones + zone[dst]]
        if p is None:
            p = self._params_for(zone[src], zone[dst])
        return p

    def blocked(self, src: int, dst: int) -> bool:
        """Nothing gets from ``src`` to ``dst`` (a partition, or a link losing everything)."""
        p = self.link(src, dst)
        return p.blocked or p.loss >= 1.0

    def reachable(self, a: int, b: int) -> bool:
        """``a`` and ``b`` can exchange packets both ways (what a probe needs)."""
        if a == b:
            return True
        zone = self.zone
        za, zb = zone[a], zone[b]
        if za == zb and not self._partitions and self._zones == 1:
            p = self._table[0] or self._params_for(0, 0)
            return not (p.blocked or p.loss >= 1.0)
        return not (self.blocked(a, b) or self.blocked(b, a))

    def all_reachable(self) -> bool:
        """True when no pair of members is cut off (fast path for the metrics)."""
        return not self.any_blocking()
