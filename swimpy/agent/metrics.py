"""The agent's ``/metrics``: a ``prometheus_client`` collector over its pools' statistics.

Every scrape calls ``pools()`` and reads each pool's :class:`~swimpy.core.snapshot.Statistics`
and probe round-trip histogram; nothing is cached between scrapes but the bookkeeping that
keeps ``swimpy_probes_total{result="ok"}`` monotonic (below). Every sample carries a
``pool`` label (``lan``, ``wan``, ...).

Metrics (families are emitted even when no pool has a sample for them)::

    swimpy_members{pool,status}              gauge      status: alive, suspect, dead, left
    swimpy_health_score{pool}                gauge      Lifeguard's local health, 0 = healthy
    swimpy_incarnation{pool}                 gauge      this node's incarnation number
    swimpy_broadcast_queue_depth{pool}       gauge      broadcasts waiting to be piggybacked
    swimpy_probes_total{pool,result}         counter    result: ok, failed
    swimpy_dropped_packets_total{pool,reason} counter   one series per dropped_<reason>
    swimpy_messages_sent_total{pool,type}    counter    type: packet, gossip, push_pull, stream
    swimpy_bytes_sent_total{pool}            counter
    swimpy_bytes_received_total{pool}        counter
    swimpy_suspicions_total{pool}            counter
    swimpy_refutations_total{pool}           counter
    swimpy_probe_rtt_seconds{pool}           histogram  _bucket{le}, _sum, _count
    swimpy_<counter>_total{pool}             counter    every other counter, see below

Where the values come from:

* ``swimpy_members``: the ``alive``/``suspect``/``dead``/``left`` gauges; the table's entries,
  self included, so ``sum by (pool)`` is ``Statistics.members``, which is not exported again.
* ``swimpy_probes_total``: ``failed`` is ``probes_failed`` (a probe that ended with neither
  an ack nor a TCP fallback answer). ``ok`` is derived from ``probes`` (probes *started*)
  minus ``probes_failed``. Taken literally that difference would count the probe in flight
  as ok and then take it back when it fails, and a counter that goes down is read by
  Prometheus as a restart. So ``ok`` is ``probes - probes_failed - 1`` (a node has at most
  one probe of its own in flight), clamped at 0 and never lower than the value last
  exported for that pool: it may lag one probe behind until the next probe starts, and
  ``ok + failed <= probes``. If ``probes`` or ``probes_failed`` go down (a new node under
  the same pool name) it starts over. A probe saved by the TCP fallback counts as ok.
  Indirect probes and TCP fallback attempts are stages of a probe, not outcomes, so they
  are not ``result`` values (``sum by (pool)`` stays the number of probes); they are
  exported as ``swimpy_indirect_probes_total``, ``swimpy_tcp_fallback_probes_total`` and
  ``swimpy_tcp_fallback_successes_total`` by the generic rule.
* ``swimpy_dropped_packets_total``: every ``dropped_<reason>`` counter (input dropped as
  bad or unusable: packets, parts of packets and streams), ``reason`` without the prefix.
  Runtime counters such as ``udp_send_dropped``, ``handoff_dropped`` and
  ``events_dropped`` are not ``dropped_*`` and get their own families.
* ``swimpy_messages_sent_total``: the per-kind send counters the engine keeps. The kinds
  overlap, so do not sum over ``type``:

  ============  ==================  ==================================================
  ``type``      counter             what
  ============  ==================  ==================================================
  packet        ``packets_sent``    every UDP packet (probes, acks, gossip, ...)
  gossip        ``gossip_packets``  gossip packets (also counted in ``packet``)
  push_pull     ``push_pulls``      push/pull exchanges this node started (over TCP)
  stream        ``streams_opened``  TCP streams this node opened (push/pull, fallback,
                                    reliable user messages)
  ============  ==================  ==================================================

* ``swimpy_bytes_sent_total``/``swimpy_bytes_received_total``, ``swimpy_suspicions_total``,
  ``swimpy_refutations_total``: the counters of those names.
* ``swimpy_probe_rtt_seconds``: :meth:`PoolMetricsSource.rtt_histogram`, e.g. an
  :class:`RttHistogram` fed by ``Node.observe_probe_rtt`` (probes acked directly only).
* Every other counter, present now or added later (``packets_received``, ``acks``,
  ``nacks``, ``streams_received``, ``user_messages_received``, ``udp_send_errors``,
  ``inbound_refused``, ``stream_errors_<purpose>``, ...), is exported as
  ``swimpy_<name>_total{pool}`` so nothing is lost. The name is sanitized: lower case,
  anything but ``[a-z0-9_]`` becomes ``_``, runs of ``_`` collapse, a trailing ``_total``
  is dropped. A name that would clash with a family above or with another counter's
  becomes ``swimpy_counter_<name>_total`` (then ``..._2_total``, ...); a counter whose name
  is already clean claims its name before one that needed sanitizing.

:func:`render` gives the text exposition format (``text/plain; version=0.0.4``) through a
private registry, for an HTTP handler.
"""

from __future__ import annotations

import itertools
import math
import re
import threading
from bisect import bisect_left
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from prometheus_client.exposition import generate_latest
from prometheus_client.metrics_core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector, CollectorRegistry
from prometheus_client.utils import floatToGoString

from swimpy.core.snapshot import Statistics

__all__ = [
    "CONTENT_TYPE",
    "DEFAULT_RTT_BUCKETS",
    "MESSAGE_TYPES",
    "PoolMetricsSource",
    "RttHistogram",
    "SwimpyCollector",
    "render",
]

#: what :func:`render` returns: ``generate_latest`` writes the 0.0.4 text format
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

#: upper bounds in seconds of :class:`RttHistogram`'s buckets (+Inf is added)
DEFAULT_RTT_BUCKETS: tuple[float, ...] = (
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
)

#: ``swimpy_messages_sent_total``'s ``type`` label -> the counter it reads
MESSAGE_TYPES: Mapping[str, str] = {
    "packet": "packets_sent",
    "gossip": "gossip_packets",
    "push_pull": "push_pulls",
    "stream": "streams_opened",
}

#: counters exported one to one under a name of their own
_DIRECT = {
    "bytes_sent": ("swimpy_bytes_sent", "Bytes sent, UDP packets and TCP streams."),
    "bytes_received": ("swimpy_bytes_received", "Bytes received, UDP packets and TCP streams."),
    "suspicions": ("swimpy_suspicions", "Members this node began to suspect (its own probes or gossip)."),
    "refutations": ("swimpy_refutations", "Times this node refuted a suspicion of itself."),
}

_DROPPED = "dropped_"

#: counters a named family exports (``dropped_*`` too); the rest go by the generic rule
_CONSUMED = frozenset({"probes", "probes_failed", *MESSAGE_TYPES.values(), *_DIRECT})

_LABELS_POOL = ("pool",)
_HISTOGRAM = "swimpy_probe_rtt_seconds"
_GAUGES = ("swimpy_members", "swimpy_health_score", "swimpy_incarnation",
           "swimpy_broadcast_queue_depth")
_COUNTERS = ("swimpy_probes", "swimpy_dropped_packets", "swimpy_messages_sent",
             *(name for name, _ in _DIRECT.values()))

#: every family and sample name the named families may write (generic counters avoid them)
_RESERVED = frozenset({
    *_GAUGES,
    *(n + s for n in _COUNTERS for s in ("", "_total", "_created")),
    *(_HISTOGRAM + s for s in ("", "_bucket", "_sum", "_count", "_created")),
})

#: how prometheus_client writes an ``le`` bound (its own histograms' spelling); untyped there
_le: Callable[[float], str] = floatToGoString

_UNCLEAN = re.compile(r"[^a-z0-9_]+")
_UNDERSCORES = re.compile(r"__+")


class PoolMetricsSource(Protocol):
    """What the collector reads from one pool (a node of the agent's LAN or WAN pool)."""

    def statistics(self) -> Statistics:
        """The pool's current gauges and counters."""
        ...

    def rtt_histogram(self) -> tuple[Sequence[tuple[float, int]], float, int]:
        """Probe round-trip times: ``(buckets, sum, count)``, where ``buckets`` are
        ``(upper bound in seconds, cumulative count)`` in increasing order, +Inf included,
        ``sum`` the seconds observed and ``count`` the observations
        (:meth:`RttHistogram.snapshot`)."""
        ...


class RttHistogram:
    """A fixed-bucket histogram of probe round-trip times in seconds.

    Threads: :meth:`observe` and :meth:`snapshot` each hold a lock for a few list
    operations only, so one thread (the node's, through ``Node.observe_probe_rtt``, whose
    observers must not block) may write while another (a scrape) reads, or any number of
    either; a snapshot is always consistent (the +Inf bucket is the count, and the sum is
    of the same observations).
    """

    __slots__ = ("_bounds", "_counts", "_lock", "_sum")

    def __init__(self, buckets: Sequence[float] = DEFAULT_RTT_BUCKETS) -> None:
        bounds = [float(b) for b in buckets]
        if bounds and bounds[-1] == math.inf:
            bounds.pop()
        if not all(math.isfinite(b) for b in bounds):
            raise ValueError(f"bucket bounds must be finite (+Inf is added): {list(buckets)}")
        if any(a >= b for a, b in itertools.pairwise(bounds)):
            raise ValueError(f"bucket bounds must increase: {list(buckets)}")
        self._bounds: tuple[float, ...] = tuple(bounds)
        #: per bucket, not cumulative; the last one is +Inf
        self._counts = [0] * (len(bounds) + 1)
        self._sum = 0.0
        self._lock = threading.Lock()

    @property
    def bounds(self) -> tuple[float, ...]:
        """The buckets' upper bounds in seconds, +Inf last."""
        return (*self._bounds, math.inf)

    def observe(self, seconds: float) -> None:
        """Count one round trip. A NaN, infinite or negative value is no round-trip time
        and is ignored (it would poison the sum for good)."""
        if not (0.0 <= seconds < math.inf):
            return
        i = bisect_left(self._bounds, seconds)  # the first bound >= seconds: le semantics
        with self._lock:
            self._counts[i] += 1
            self._sum += seconds

    def snapshot(self) -> tuple[tuple[tuple[float, int], ...], float, int]:
        """``(buckets, sum, count)``: cumulative counts by upper bound, +Inf last."""
        with self._lock:
            counts = list(self._counts)
            total = self._sum
        out: list[tuple[float, int]] = []
        running = 0
        for bound, n in zip(self.bounds, counts, strict=True):
            running += n
            out.append((bound, running))
        return tuple(out), total, running


@dataclass(slots=True)
class _ProbesSeen:
    probes: int
    failed: int
    ok: int


def _sanitize(name: str) -> str:
    s = _UNDERSCORES.sub("_", _UNCLEAN.sub("_", name.lower())).strip("_")
    if s.endswith("_total"):
        s = s[: -len("_total")]
    return s or "unnamed"


def _candidates(s: str) -> Iterator[str]:
    yield f"swimpy_{s}"
    yield f"swimpy_counter_{s}"
    yield from (f"swimpy_counter_{s}_{n}" for n in itertools.count(2))


def _generic_names(keys: Iterable[str]) -> dict[str, str]:
    """Counter -> family name (without ``_total``), unique and clear of the named ones."""
    taken = set(_RESERVED)
    out: dict[str, str] = {}
    # Clean names first, so a sanitized look-alike cannot take a real counter's name.
    for key in sorted(keys, key=lambda k: (_sanitize(k) != k, k)):
        name = next(c for c in _candidates(_sanitize(key))
                    if c not in taken and c + "_total" not in taken)
        taken.update((name, name + "_total", name + "_created"))
        out[key] = name
    return out


def _histogram_buckets(
    buckets: Sequence[tuple[float, int]], count: int
) -> list[tuple[str, float]]:
    rows = sorted((float(b), n) for b, n in buckets)
    if not rows or rows[-1][0] != math.inf:
        rows.append((math.inf, count))
    return [(_le(b), n) for b, n in rows]


class SwimpyCollector(Collector):
    """Collects every pool's statistics on each scrape (see the module docstring).

    ``pools`` is called on every scrape and maps a pool's name (the ``pool`` label) to its
    source. Safe to scrape from several threads at once; an exception from a pool's source
    fails the scrape rather than silently dropping the pool.
    """

    def __init__(self, pools: Callable[[], Mapping[str, PoolMetricsSource]]) -> None:
        self._pools = pools
        self._lock = threading.Lock()
        self._probes_seen: dict[str, _ProbesSeen] = {}

    def describe(self) -> Iterable[Metric]:
        """The families always exported (a registry checks them for clashes without
        scraping the pools); ``swimpy_<counter>_total`` depend on the counters seen."""
        return list(_Families().all())

    def collect(self) -> Iterable[Metric]:
        pools = dict(self._pools())
        views = [(name, src.statistics(), src.rtt_histogram())
                 for name, src in sorted(pools.items())]
        oks = self._probes_ok({name: st for name, st, _ in views})
        fam = _Families()
        rest: dict[str, dict[str, int]] = {}  # counter -> pool -> value
        for pool, st, (buckets, total, count) in views:
            c = st.counters
            p = [pool]
            for status, n in (("alive", st.alive), ("suspect", st.suspect), ("dead", st.dead),
                              ("left", st.left)):
                fam.members.add_metric([pool, status], n)
            fam.health.add_metric(p, st.health_score)
            fam.incarnation.add_metric(p, st.incarnation)
            fam.queue.add_metric(p, st.queue_depth)
            fam.probes.add_metric([pool, "ok"], oks[pool])
            fam.probes.add_metric([pool, "failed"], c.get("probes_failed", 0))
            dropped: dict[str, int] = {}
            for key, value in c.items():
                if key.startswith(_DROPPED):
                    reason = key[len(_DROPPED):] or "unspecified"
                    dropped[reason] = dropped.get(reason, 0) + value
                elif key not in _CONSUMED:
                    rest.setdefault(key, {})[pool] = value
            for reason, value in sorted(dropped.items()):
                fam.dropped.add_metric([pool, reason], value)
            for kind, key in MESSAGE_TYPES.items():
                fam.sent.add_metric([pool, kind], c.get(key, 0))
            for key, f in fam.direct.items():
                f.add_metric(p, c.get(key, 0))
            fam.rtt.add_metric(p, _histogram_buckets(buckets, count), total)
        yield from fam.all()
        names = _generic_names(rest)
        for key in sorted(rest, key=names.__getitem__):
            f = CounterMetricFamily(names[key], f"Running total {key!r} of the node's statistics.", labels=_LABELS_POOL)
            for pool, value in rest[key].items():
                f.add_metric([pool], value)
            yield f

    def _probes_ok(self, stats: Mapping[str, Statistics]) -> dict[str, int]:
        """``result="ok"`` per pool, monotonic between resets (module docstring)."""
        out: dict[str, int] = {}
        with self._lock:
            seen = self._probes_seen
            for gone in seen.keys() - stats.keys():
                del seen[gone]
            for pool, st in stats.items():
                probes = st.counters.get("probes", 0)
                failed = st.counters.get("probes_failed", 0)
                ok = max(0, probes - failed - 1)
                last = seen.get(pool)
                if last is not None and probes >= last.probes and failed >= last.failed:
                    ok = max(ok, last.ok)
                seen[pool] = _ProbesSeen(probes, failed, ok)
                out[pool] = ok
        return out


class _Families:
    """The named families of one scrape, empty."""

    def __init__(self) -> None:
        pool = _LABELS_POOL
        self.members = GaugeMetricFamily(
            "swimpy_members", "Members in the table by status, this node included.",
            labels=("pool", "status"))
        self.health = GaugeMetricFamily(
            "swimpy_health_score", "Lifeguard's local health score (0 = healthy).", labels=pool)
        self.incarnation = GaugeMetricFamily(
            "swimpy_incarnation", "This node's incarnation number.", labels=pool)
        self.queue = GaugeMetricFamily(
            "swimpy_broadcast_queue_depth", "Broadcasts waiting to be piggybacked.",
            labels=pool)
        self.probes = CounterMetricFamily(
            "swimpy_probes", "Probes of members by result (ok may lag one probe behind).",
            labels=("pool", "result"))
        self.dropped = CounterMetricFamily(
            "swimpy_dropped_packets", "Input dropped as bad or unusable, by reason.",
            labels=("pool", "reason"))
        self.sent = CounterMetricFamily(
            "swimpy_messages_sent", "Messages sent by type (types overlap; do not sum).",
            labels=("pool", "type"))
        self.direct = {key: CounterMetricFamily(name, doc, labels=pool)
                       for key, (name, doc) in _DIRECT.items()}
        self.rtt = HistogramMetricFamily(
            _HISTOGRAM, "Round-trip times of probes acked directly.", labels=pool)

    def all(self) -> Iterator[Metric]:
        yield from (self.members, self.health, self.incarnation, self.queue, self.probes,
                    self.dropped, self.sent)
        yield from self.direct.values()
        yield self.rtt


def render(collector: SwimpyCollector) -> tuple[bytes, str]:
    """One scrape in the Prometheus text format: ``(body, content type)``."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(collector)
    return generate_latest(registry), CONTENT_TYPE
