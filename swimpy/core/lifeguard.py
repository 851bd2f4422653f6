"""Lifeguard formulas and timers, as pure functions of their inputs.

Everything here follows hashicorp/memberlist v0.2.2 (``util.go``, ``suspicion.go``,
``awareness.go``), including its integer arithmetic on ``time.Duration`` nanoseconds, so
that swimpy times out, retransmits and syncs at exactly the moments a Go node would.
Times are ``float`` seconds; internally they are rounded to whole nanoseconds where Go
works on integer durations.

Nothing in this module reads a clock: :class:`Suspicion` is given ``now`` by its caller
(memberlist's ``suspicion`` calls ``time.Now()`` and owns a ``time.Timer``; here the
caller owns the timer and asks for :attr:`Suspicion.deadline`).
"""

from __future__ import annotations

import math

__all__ = [
    "PUSH_PULL_SCALE_THRESHOLD",
    "Awareness",
    "Suspicion",
    "expected_confirmations",
    "push_pull_scale",
    "remaining_suspicion_time",
    "retransmit_limit",
    "suspicion_timeout",
]

#: util.go ``pushPullScaleThreshold``: cluster size above which the push/pull period grows.
PUSH_PULL_SCALE_THRESHOLD = 32

#: time.Second / time.Millisecond in nanoseconds (Go ``time`` package).
_NS_PER_S = 1_000_000_000
_NS_PER_MS = 1_000_000


def _to_ns(seconds: float) -> int:
    """Round float seconds to integer nanoseconds (a Go ``time.Duration``)."""
    return round(seconds * _NS_PER_S)


def _from_ns(ns: int) -> float:
    """Integer nanoseconds to float seconds (correctly rounded)."""
    return ns / _NS_PER_S


def _go_seconds(ns: int) -> float:
    """``time.Duration.Seconds()``: whole seconds plus the fraction, as Go computes it."""
    sec = abs(ns) // _NS_PER_S
    nsec = abs(ns) % _NS_PER_S
    value = float(sec) + float(nsec) / 1e9
    return -value if ns < 0 else value


def _go_div(a: int, b: int) -> int:
    """Go integer division (truncates toward zero, unlike Python's ``//``)."""
    q = abs(a) // abs(b)
    return q if (a >= 0) == (b >= 0) else -q


def suspicion_timeout(suspicion_mult: int, n: int, probe_interval: float) -> float:
    """Minimum suspicion timeout for a cluster of ``n`` nodes (util.go ``suspicionTimeout``).

    ``suspicion_mult * max(1, log10(max(1, n))) * probe_interval``, where the node scale is
    truncated to thousandths and the product is computed in integer nanoseconds as Go does
    (so n=50 uses a scale of 1.698). Note the clamp: every n <= 10 gives a scale of 1.

    ``n`` is memberlist's ``numNodes``: every member in the table, including dead and left ones.
    The maximum timeout is ``SuspicionMaxTimeoutMult`` times this value.
    """
    # Python's math.log10 gives the same truncated scale as Go's math.Log10 (which computes
    # log2(x) * Ln2/Ln10) for every n up to 2,000,000, checked against an emulation of Go's
    # formula when this was written; both are exact at powers of ten.
    node_scale = max(1.0, math.log10(max(1.0, float(n))))
    scale_milli = int(node_scale * 1000)  # Go: time.Duration(nodeScale*1000) truncates
    timeout_ns = _go_div(suspicion_mult * scale_milli * _to_ns(probe_interval), 1000)
    return _from_ns(timeout_ns)


def expected_confirmations(suspicion_mult: int, n: int) -> int:
    """How many independent suspicions drive the timer to its minimum (state.go ``suspectNode``).

    ``k = SuspicionMult - 2``, but 0 when fewer than ``k`` other members could confirm
    (``n - 2 < k``), in which case the suspicion timer starts at (and stays at) the minimum.
    Never negative (memberlist's negative k behaves exactly like 0).
    """
    k = suspicion_mult - 2
    if n - 2 < k:
        k = 0
    return max(k, 0)


def _suspicion_total_ns(n: int, k: int, min_ns: int, max_ns: int) -> int:
    """Total suspicion timeout (from the start of suspicion) after ``n`` confirmations."""
    if k <= 0:
        # Go divides by log(1) = 0 here; the resulting NaN/-Inf converts to a duration
        # below min, so the timeout is min. Guarded explicitly instead.
        return min_ns
    frac = math.log(float(n) + 1.0) / math.log(float(k) + 1.0)
    max_sec = _go_seconds(max_ns)
    min_sec = _go_seconds(min_ns)
    raw = max_sec - frac * (max_sec - min_sec)
    timeout_ns = math.floor(1000.0 * raw) * _NS_PER_MS  # whole milliseconds, rounded down
    return max(timeout_ns, min_ns)


def remaining_suspicion_time(n: int, k: int, elapsed: float, min_s: float, max_s: float) -> float:
    """Time left on a suspicion timer (suspicion.go ``remainingSuspicionTime``).

    With ``n`` confirmations out of ``k`` wanted, the total timeout is
    ``max - ln(n+1)/ln(k+1) * (max - min)``, floored to whole milliseconds and never below
    ``min``; the result is that total minus ``elapsed``. It can be zero or negative, which
    means "fire now". ``k == 0`` (no confirmations expected) gives ``min``.
    """
    total_ns = _suspicion_total_ns(n, k, _to_ns(min_s), _to_ns(max_s))
    return _from_ns(total_ns - _to_ns(elapsed))


def retransmit_limit(mult: int, n: int) -> int:
    """How many times a broadcast is sent (util.go ``retransmitLimit``).

    ``mult * ceil(log10(n + 1))``: 0 for n=0; with mult 4, n 1..9 -> 4, 10..99 -> 8, ...
    ``n`` is evaluated when the queue is drained (memberlist ``NumNodes``).
    """
    node_scale = math.ceil(math.log10(float(n + 1)))
    return mult * int(node_scale)


def push_pull_scale(interval: float, n: int) -> float:
    """Push/pull period for a cluster of ``n`` nodes (util.go ``pushPullScale``).

    Unchanged up to :data:`PUSH_PULL_SCALE_THRESHOLD` nodes; above it the interval is
    multiplied by ``ceil(log2(n) - log2(32)) + 1``: 33..64 -> x2, 65..128 -> x3, ...
    """
    if n <= PUSH_PULL_SCALE_THRESHOLD:
        return interval
    multiplier = math.ceil(math.log2(float(n)) - math.log2(PUSH_PULL_SCALE_THRESHOLD)) + 1
    return _from_ns(multiplier * _to_ns(interval))


class Awareness:
    """Local Health Awareness score (awareness.go; Lifeguard paper section 4.1).

    The score lives in ``[0, max_multiplier - 1]`` and starts at 0 (healthy). Failed probes
    without the expected nacks and having to refute ourselves raise it; successful probes
    lower it. :meth:`scale_timeout` stretches the probe deadline by ``score + 1``.
    """

    __slots__ = ("_max", "_score")

    def __init__(self, max_multiplier: int) -> None:
        if isinstance(max_multiplier, bool) or not isinstance(max_multiplier, int):
            raise TypeError(f"max_multiplier must be an int, got {max_multiplier!r}")
        if max_multiplier < 1:
            raise ValueError(
                f"max_multiplier={max_multiplier} is invalid: expected an int >= 1 "
                "(memberlist AwarenessMaxMultiplier, default 8)"
            )
        self._max = max_multiplier
        self._score = 0

    @property
    def max_multiplier(self) -> int:
        """The configured ``AwarenessMaxMultiplier``."""
        return self._max

    @property
    def score(self) -> int:
        """Current health score; 0 is healthy (memberlist ``GetHealthScore``)."""
        return self._score

    def apply_delta(self, delta: int) -> None:
        """Add ``delta`` to the score, clamped to ``[0, max_multiplier - 1]``."""
        self._score = min(max(self._score + delta, 0), self._max - 1)

    def scale_timeout(self, timeout: float) -> float:
        """``timeout * (score + 1)``: the probe deadline under the current health."""
        return timeout * (self._score + 1)

    def __repr__(self) -> str:
        return f"Awareness(score={self._score}, max_multiplier={self._max})"


class Suspicion:
    """One suspected member's timer, with Lifeguard's confirmation speed-up (suspicion.go).

    Created when a member becomes suspect, at time ``now``. The timer runs for ``max_s`` if
    at least one confirmation is expected (``k >= 1``), else for ``min_s``. Each further
    suspect message from a *different* member (:meth:`confirm`) shortens the total timeout
    toward ``min_s``, reaching it after ``k`` confirmations.

    The owner keeps one timer per suspicion and (re)arms it at :attr:`deadline` whenever
    :meth:`confirm` returns True. A deadline at or before ``now`` means "fire now" (the
    confirmation arrived after the shortened timeout had already passed). If the timer has
    already fired and the member was declared dead, the owner should have dropped this object,
    as memberlist deletes ``nodeTimers[name]`` in ``deadNode``; a confirmation on a stale
    object changes nothing the owner acts on.
    """

    __slots__ = (
        "_confirmers",
        "_max_ns",
        "_min_ns",
        "_start_ns",
        "confirmations",
        "deadline",
        "from_node",
        "generation",
        "k",
        "max_s",
        "min_s",
        "start",
    )

    def __init__(self, from_node: str, k: int, min_s: float, max_s: float, now: float) -> None:
        #: The member whose suspect message started this timer; never counted as a confirmation.
        self.from_node = from_node
        #: Confirmations wanted to reach the minimum timeout (see :func:`expected_confirmations`).
        self.k = k
        self.min_s = min_s
        self.max_s = max_s
        #: When suspicion began (the owner's clock).
        self.start = now
        #: Independent confirmations counted so far (memberlist's ``n``).
        self.confirmations = 0
        self._min_ns = _to_ns(min_s)
        self._max_ns = _to_ns(max_s)
        self._start_ns = _to_ns(now)
        self._confirmers: set[str] = {from_node}
        #: The owner's number for the timer currently armed for this suspicion (timers
        #: are never cancelled; one carrying an older generation is stale).
        self.generation = 0
        initial_ns = self._max_ns if k >= 1 else self._min_ns
        #: Absolute time the timer fires (same clock as ``now``).
        self.deadline = _from_ns(self._start_ns + initial_ns)

    def confirm(self, from_node: str, now: float) -> bool:
        """Count a suspect message from ``from_node`` received at ``now``.

        Returns False (nothing changes) once ``k`` confirmations have been counted or when
        ``from_node`` was already counted, including the member that started the suspicion.
        Otherwise records it, moves :attr:`deadline` to ``start`` plus the new total timeout,
        and returns True: the caller should re-broadcast the suspect message and re-arm its
        timer (firing at once if ``deadline <= now``).

        ``now`` only matters to the caller's comparison: the deadline depends on the start
        time and the number of confirmations, as memberlist's reset-by-remaining-time does.
        """
        del now  # the deadline is start + total; remaining = deadline - now
        if self.confirmations >= self.k:
            return False
        if from_node in self._confirmers:
            return False
        self._confirmers.add(from_node)
        self.confirmations += 1
        total_ns = _suspicion_total_ns(self.confirmations, self.k, self._min_ns, self._max_ns)
        self.deadline = _from_ns(self._start_ns + total_ns)
        return True

    def remaining(self, now: float) -> float:
        """Seconds until the timer fires; zero or negative means "fire now"."""
        return self.deadline - now

    def has_confirmed(self, from_node: str) -> bool:
        """Whether ``from_node`` started or already confirmed this suspicion."""
        return from_node in self._confirmers

    def __repr__(self) -> str:
        return (
            f"Suspicion(from_node={self.from_node!r}, k={self.k}, "
            f"confirmations={self.confirmations}, start={self.start}, deadline={self.deadline})"
        )
