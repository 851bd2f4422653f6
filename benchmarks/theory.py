"""Closed-form models that the simulator is checked against (``bench_sim.py --cases theory``).

Pure functions of the cluster size and memberlist's configuration, without swimpy
imports, so that ``tests/bench/test_theory.py`` checks them in milliseconds and
``docs/theory.md`` can quote them. Four questions, one section each:

* **Dissemination** of one broadcast (a joiner's ``alive``) by push gossip: the
  synchronous-round floor, the random push model of Pittel / Frieze-Grimmett / Karp et
  al., a continuous-time version for unsynchronised tickers, and what memberlist's
  transmit limit does to them.
* **First detection** of a crash with memberlist's shuffled round-robin probing, against
  SWIM's expected detection time for random probing.
* **Lifeguard**: the suspicion timeouts that decide whether a slow member's late
  refutation still counts, and the paper's reported reduction of false positives.
* **Bandwidth** per member in a quiet cluster: probes plus push/pull anti-entropy.

Formulas of memberlist itself (``retransmit_limit``, ``suspicion_timeout``,
``push_pull_scale``) follow memberlist v0.2.2 (util.go), as described in
``/work/shared/spec/LIFEGUARD.md`` and ``CONFIG.md``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

# ============================================================================ profiles


@dataclass(frozen=True)
class Timing:
    """The configuration values the models need (memberlist ``Config`` fields).

    ``LAN`` and ``WAN`` hold memberlist's ``DefaultLANConfig()`` / ``DefaultWANConfig()``
    values (CONFIG.md §1); the benchmark builds its own from ``swimpy.profiles`` with
    :meth:`from_config` so that a changed profile changes the models too.
    """

    name: str
    gossip_interval: float
    gossip_nodes: int
    retransmit_mult: int
    probe_interval: float
    probe_timeout: float
    suspicion_mult: int
    suspicion_max_timeout_mult: int
    push_pull_interval: float
    awareness_max_multiplier: int = 8

    @classmethod
    def from_config(cls, name: str, cfg: object) -> Timing:
        """Copy the fields from any object that has them (a ``swimpy.Config``)."""
        get = cfg.__getattribute__
        return cls(
            name=name,
            gossip_interval=float(get("gossip_interval")),
            gossip_nodes=int(get("gossip_nodes")),
            retransmit_mult=int(get("retransmit_mult")),
            probe_interval=float(get("probe_interval")),
            probe_timeout=float(get("probe_timeout")),
            suspicion_mult=int(get("suspicion_mult")),
            suspicion_max_timeout_mult=int(get("suspicion_max_timeout_mult")),
            push_pull_interval=float(get("push_pull_interval")),
            awareness_max_multiplier=int(get("awareness_max_multiplier")),
        )


LAN = Timing("lan", 0.2, 3, 4, 1.0, 0.5, 4, 6, 30.0)
WAN = Timing("wan", 0.5, 4, 4, 5.0, 3.0, 6, 6, 60.0)


# ============================================================================ memberlist


def retransmit_limit(mult: int, n: int) -> int:
    """How many times a member sends one broadcast before dropping it (queue.go):
    ``mult * ceil(log10(n + 1))``, with ``n`` the member count including itself."""
    if n <= 0:
        return 0
    return mult * math.ceil(math.log10(n + 1))


def suspicion_timeout(mult: int, n: int, probe_interval: float) -> float:
    """memberlist's minimum suspicion timeout (util.go ``suspicionTimeout``):
    ``mult * max(1, log10(max(1, n))) * probe_interval``, the scale truncated to
    thousandths as the Go code does."""
    scale = max(1.0, math.log10(max(1.0, float(n))))
    return mult * int(scale * 1000) * probe_interval / 1000


def suspicion_after_confirmations(lo: float, hi: float, k: int, confirmations: int) -> float:
    """Lifeguard's dynamic suspicion timeout (suspicion.go ``Confirm``): it starts at
    ``hi`` and falls logarithmically to ``lo`` as ``confirmations`` of the ``k`` expected
    independent suspicions arrive: ``hi - ln(c + 1) / ln(k + 1) * (hi - lo)``."""
    if k < 1:
        return lo
    c = min(confirmations, k)
    frac = math.log(c + 1) / math.log(k + 1)
    return max(lo, hi - frac * (hi - lo))


def push_pull_scale(interval: float, n: int) -> float:
    """memberlist's push/pull period (util.go ``pushPullScale``): the interval up to 32
    members, then one more interval per doubling: ``interval * (ceil(log2 n - 5) + 1)``."""
    if n <= 32:
        return interval
    return interval * (math.ceil(math.log2(n) - math.log2(32)) + 1)


# ============================================================================ dissemination
#
# One broadcast starts at ``sources`` members of a population of ``n`` (a joiner: the seed
# that answered its push/pull re-gossips its alive, and the joiner gossips its own, so
# two) and spreads by push: every gossip interval each member that holds it sends it to
# ``k`` random others (``GossipNodes``), while its transmit count lasts.


def sync_push_rounds(n: int, k: int, sources: int = 1) -> int:
    """The synchronous-round floor: in a round every informed member informs ``k``
    members that did not know yet, the best any push scheme with fan-out ``k`` can do.
    The informed count multiplies by at most ``k + 1`` per round, so all ``n`` know after
    ``ceil(log_{k+1}(n / sources))`` rounds (computed with integers, no rounding error).
    """
    if k < 1 or sources < 1:
        raise ValueError("k and sources must be at least 1")
    rounds, informed = 0, sources
    while informed < n:
        informed *= k + 1
        rounds += 1
    return rounds


def random_push_rounds(n: int, k: float, sources: int = 1) -> float:
    """Rounds until everyone knows, for synchronous rounds of random push.

    Pittel (1987, "On spreading a rumor", SIAM J. Appl. Math. 47) shows that with fan-out
    1 it takes ``log2 n + ln n + O(1)`` rounds (Frieze & Grimmett 1985; the push protocol
    of Karp, Schindelhauer, Shenker & Vöcking, FOCS 2000). The two terms are two phases,
    and both generalise to ``k`` targets a round:

    * growth: while few know, each informed member adds ``k`` new ones a round, so the
      count multiplies by ``k + 1``: ``log_{k+1}(n / sources)`` rounds;
    * shrinking: once nearly all know, an uninformed member is missed by all ``k n``
      pushes of a round with probability ``(1 - 1/n)^{kn} = e^{-k}``, so the uninformed
      count falls by ``e^{-k}`` a round and the last one goes after ``ln(n) / k`` rounds.

    Leading terms only (the O(1) is dropped); ``k = 1`` gives Pittel's ``log2 n + ln n``.
    """
    if k < 1:
        raise ValueError("k must be at least 1")
    return math.log(n / sources, k + 1) + math.log(n) / k


def lotka_growth_rate(k: float, interval: float, latency: float = 0.0) -> float:
    """Early growth rate (per second) of push gossip with *unsynchronised* tickers.

    memberlist's gossip ticker starts at a random phase on every member, so a member
    that learns a broadcast sends it at its next tick, on average half an interval later,
    not at the start of the next global round; a message can travel several hops in one
    interval. Seen from an informed member of age ``a``, pushes leave at rate ``k /
    interval`` and arrive ``latency`` later, so the informed count grows like
    ``exp(r t)`` with ``r`` the root of the Euler-Lotka equation
    ``1 = integral_latency^inf (k / interval) e^{-r a} da = k e^{-r latency} / (r interval)``:
    ``r = W(k latency / interval) / latency`` (Lambert W), and ``k / interval`` without
    latency: ``e^k`` per interval (20 for k = 3) against ``k + 1`` for synchronous rounds.
    """
    rate = k / interval
    if latency <= 0:
        return rate
    x = rate * latency  # solve w e^w = x by Newton's method, w = r * latency
    w = math.log1p(x)
    for _ in range(50):
        ew = math.exp(w)
        step = (w * ew - x) / (ew * (w + 1))
        w -= step
        if abs(step) < 1e-12:
            break
    return w / latency


def async_push_time(n: int, k: float, interval: float, latency: float = 0.0,
                    sources: int = 1) -> float:
    """Seconds until all ``n`` know, for push gossip with unsynchronised tickers (the
    continuous-time analogue of :func:`random_push_rounds`, as in Janson's first-passage
    percolation on the complete graph, 1999): growth ``ln(n / sources) / r`` with ``r``
    from :func:`lotka_growth_rate`, then the last uninformed member waits for one of the
    pushes that reach it at rate ``k / interval``: ``ln(n) * interval / k``, plus one
    latency."""
    r = lotka_growth_rate(k, interval, latency)
    return math.log(n / sources) / r + math.log(n) * interval / k + latency


def async_push_fraction(n: int, k: float, interval: float, t: float, latency: float = 0.0,
                        sources: int = 1) -> float:
    """Mean-field fraction informed ``t`` seconds in, for unsynchronised push: the
    logistic ``dI/dt = r I (1 - I/n)`` with ``r`` from :func:`lotka_growth_rate`, started
    at ``sources`` (each push reaches an uninformed member with probability ``1 - I/n``).
    """
    r = lotka_growth_rate(k, interval, latency)
    return 1.0 / (1.0 + (n / sources - 1.0) * math.exp(-r * t))


def effective_fanout(t: Timing) -> float:
    """Pushes per member per gossip interval, piggybacks included: memberlist also fills
    every ping and ack with queued broadcasts (``sendMsg``), about one ping sent and one
    ack sent per probe interval per member, so ``k + 2 * gossip_interval /
    probe_interval`` (3.4 on LAN, 4.2 on WAN). Piggybacks count against the transmit
    limit like gossip packets."""
    return t.gossip_nodes + 2 * t.gossip_interval / t.probe_interval


def gossip_rounds_per_member(t: Timing, n: int) -> float:
    """Gossip intervals a member keeps sending one broadcast: its transmit limit over
    the pushes it makes per interval. Pittel's model assumes members push until
    everyone knows; memberlist stops after ``retransmit_limit / effective_fanout``
    intervals (4.7 on LAN at 1,000 members), about the time the spreading itself takes."""
    return retransmit_limit(t.retransmit_mult, n) / effective_fanout(t)


def expected_missed(n: int, limit: int) -> float:
    """Expected members that never receive one broadcast when every member sends it
    ``limit`` times to random others and then stops (nothing else repairs it until the
    next push/pull): the ``(n - 1) * limit`` pushes each reach a given member with
    probability ``1 / (n - 1)``, so it is missed with ``(1 - 1/(n-1))^{(n-1) limit}``
    ~ ``e^{-limit}``. This is where the random push model's "eventually everyone"
    becomes "everyone with probability about ``1 - n e^{-limit}``"."""
    if n < 2:
        return 0.0
    return n * (1 - 1 / (n - 1)) ** ((n - 1) * limit)


def limited_push_curve(n: int, k: float, limit: int, sources: int = 1,
                       rounds: int = 60) -> list[float]:
    """Mean-field fraction informed after each synchronous round of random push with a
    transmit limit: a member informed in round ``j`` pushes ``k`` per round during the
    ``ceil(limit / k)`` rounds after it, and an uninformed member escapes all ``A k``
    pushes of ``A`` active members with probability ``exp(-A k / (n - 1))``."""
    active_rounds = max(1, math.ceil(limit / k))
    new = [float(sources)]
    informed = float(sources)
    out = [informed / n]
    for _ in range(rounds):
        active = sum(new[-active_rounds:])
        add = (n - informed) * (1 - math.exp(-active * k / (n - 1)))
        new.append(add)
        informed += add
        out.append(informed / n)
    return out


def limited_push_rounds(n: int, k: float, limit: int, sources: int = 1) -> float | None:
    """First round after which fewer than half a member is expected uninformed in
    :func:`limited_push_curve` (``None``: the limit stops gossip before that)."""
    for r, f in enumerate(limited_push_curve(n, k, limit, sources)):
        if (1 - f) * n < 0.5:
            return float(r)
    return None


# ============================================================================ detection
#
# memberlist probes round robin (state.go ``probe``): each member walks its own shuffled
# list of the other m = n - 1 members, one per probe interval T, reshuffling at the end
# of the list. The tickers are not synchronised. A member crashes at a random moment;
# when does the first member ping it?


def probe_wait_pmf(m: int) -> list[float]:
    """``P(K = j)`` for ``j = 1 .. 2m - 1`` (index ``j - 1``): the tick, counted from
    a random moment, at which one member next probes a given other member.

    At that moment the member has done ``c`` of the ``m`` probes of its current round
    (``c`` uniform on ``0 .. m-1``) and the target sits at position ``p`` of the round
    (uniform, independent). If ``p >= c`` it is probed at tick ``p - c + 1``; otherwise
    after the rest of the round, at a fresh position ``p'`` of the next:
    ``m - c + p' + 1``.
    """
    if m < 1:
        raise ValueError("need at least one other member")
    pmf = [0.0] * (2 * m - 1)
    for j in range(1, 2 * m):
        p = 0.0
        if j <= m:  # p - c = j - 1: (m - j + 1) pairs of m * m
            p += (m - j + 1) / (m * m)
        lo, hi = max(1, m - j + 1), min(m - 1, 2 * m - j)  # p < c, p' = j - 1 - (m - c)
        if hi >= lo:
            p += (hi * (hi + 1) - (lo - 1) * lo) / 2 / (m * m * m)
        pmf[j - 1] = p
    return pmf


def _tails(m: int) -> list[float]:
    """``A[j] = P(K > j)`` for ``j = 0 .. 2m - 1``."""
    pmf = probe_wait_pmf(m)
    tails = [1.0]
    for p in pmf:
        tails.append(max(0.0, tails[-1] - p))
    tails[-1] = 0.0
    return tails


def first_probe_mean(n: int, probe_interval: float) -> float:
    """Expected time from a crash to the first ping any of the other ``n - 1`` members
    sends the victim (they probe independently).

    One member's wait is ``(K - 1 + U) T`` with ``U`` uniform (the phase of its ticker):
    its survival function is linear between whole ticks, from ``A[j] = P(K > j)`` to
    ``A[j+1]``. The first of ``m`` independent waits survives with ``S^m``, so
    ``E = T * sum_j (A_j^{m+1} - A_{j+1}^{m+1}) / ((m + 1)(A_j - A_{j+1}))`` exactly.
    For large ``n`` it tends to ``T``: the victim is probed at rate ``1 / (m T)`` by
    each of ``m`` members, a Poisson stream of rate ``1 / T``.
    """
    m = n - 1
    a = _tails(m)
    total = 0.0
    for j in range(len(a) - 1):
        hi, lo = a[j], a[j + 1]
        if hi <= 0:
            break
        if hi - lo < 1e-15:
            total += hi ** m
        else:
            total += (hi ** (m + 1) - lo ** (m + 1)) / ((m + 1) * (hi - lo))
    return total * probe_interval


def first_probe_quantile(n: int, probe_interval: float, q: float) -> float:
    """The ``q`` quantile of the time to the first ping of the victim (same model)."""
    if not 0 <= q < 1:
        raise ValueError("q must be in [0, 1)")
    m = n - 1
    target = float((1 - q) ** (1 / m))  # one member's survival at the quantile
    a = _tails(m)
    for j in range(len(a) - 1):
        if a[j + 1] <= target <= a[j]:
            if a[j] == a[j + 1]:
                return j * probe_interval
            return (j + (a[j] - target) / (a[j] - a[j + 1])) * probe_interval
    return (len(a) - 1) * probe_interval


def swim_detection_periods(n: int) -> float:
    """SWIM's expected first-detection time for *random* probe targets, in protocol
    periods (Das, Gupta & Motivala, DSN 2002, §3.1): in each period each of the
    ``n - 1`` others picks the victim with probability ``1 / (n - 1)``, so someone does
    with ``q = 1 - (1 - 1/(n-1))^{n-1}`` and the expected number of periods is ``1 / q``
    -> ``e / (e - 1)`` = 1.582. Round-robin selection (§4.3) keeps this expectation and
    bounds the worst case at ``2n - 1`` periods."""
    m = n - 1
    return 1 / (1 - (1 - 1 / m) ** m)


def first_detection(n: int, t: Timing) -> dict[str, float]:
    """memberlist's schedule after the first ping of the victim (state.go ``probeNode``):
    the direct ping fails after ``ProbeTimeout`` (indirect pings and the TCP fallback go
    out then), and the member is suspected when the probe's deadline ``ProbeInterval *
    (health + 1)`` passes (health 0 in a healthy cluster). Means, in seconds after the
    crash."""
    ping = first_probe_mean(n, t.probe_interval)
    return {
        "first_ping_mean_s": ping,
        "first_ping_median_s": first_probe_quantile(n, t.probe_interval, 0.5),
        "first_probe_failure_mean_s": ping + t.probe_timeout,
        "first_suspect_mean_s": ping + t.probe_interval,
        "first_suspect_median_s": first_probe_quantile(n, t.probe_interval, 0.5)
        + t.probe_interval,
        "first_suspect_p90_s": first_probe_quantile(n, t.probe_interval, 0.9)
        + t.probe_interval,
        "swim_random_periods": swim_detection_periods(n),
        # SWIM's synchronous-round expectation on memberlist's timing: the period in which
        # someone first picks the victim, and the suspicion at its end
        "swim_random_first_suspect_s": swim_detection_periods(n) * t.probe_interval,
    }


# ============================================================================ Lifeguard

#: Dadgar, Phillips & Currey, "Lifeguard: Local Health Awareness for More Accurate
#: Failure Detection" (arXiv:1707.00788, DSN 2018 workshops), abstract: across the
#: synthetic benchmarks, Lifeguard reduces the false-positive rate by a factor of more
#: than 50 (with default tuning; another tuning cuts median detection latency by 45 %
#: while still reducing false positives at healthy members by 3x).
PAPER_FALSE_POSITIVE_REDUCTION = 50.0
PAPER_TUNED_HEALTHY_REDUCTION = 3.0


def suspicion_window(n: int, t: Timing, lifeguard: bool = True) -> tuple[float, float]:
    """(shortest, longest) suspicion timeout at ``n`` members: with Lifeguard the timer
    starts at ``SuspicionMaxTimeoutMult`` times the minimum and falls with independent
    confirmations; without it (``suspicion_max_timeout_mult = 1``) it is the minimum.
    A member handling its inbox ``d`` late refutes a suspicion of itself ``d`` late: a
    false death needs ``d`` (plus gossip) beyond the timeout its accusers run."""
    lo = suspicion_timeout(t.suspicion_mult, n, t.probe_interval)
    return (lo, lo * t.suspicion_max_timeout_mult if lifeguard else lo)


def max_probe_deadline(t: Timing, lifeguard: bool = True) -> float:
    """Longest probe deadline: Local Health Awareness stretches it up to
    ``AwarenessMaxMultiplier`` probe intervals (1 without Lifeguard): a starved member
    whose health score has climbed waits that long for acks arriving late."""
    return t.probe_interval * (t.awareness_max_multiplier if lifeguard else 1)


# ============================================================================ bandwidth


def quiet_bandwidth(n: int, t: Timing, ping_bytes: float, ack_bytes: float,
                    entry_bytes: float, header_bytes: float) -> dict[str, float]:
    """Messages and bytes each member sends per second in a quiet cluster (no
    broadcasts): one ping per probe interval, and, as the probed member, on average one
    ack; every ``push_pull_scale(n)`` one push/pull it starts, two streams carrying the
    whole table each way (``header + n * entry``). Probing is O(1) per member; push/pull
    is O(n / log n), since its period grows only with ``log2 n``: it dominates from a few
    hundred members on."""
    period = push_pull_scale(t.push_pull_interval, n)
    probe_msgs = 2 / t.probe_interval
    pp_msgs = 2 / period
    probe_bytes = (ping_bytes + ack_bytes) / t.probe_interval
    pp_bytes = 2 * (header_bytes + n * entry_bytes) / period
    return {
        "messages_per_node_per_s": probe_msgs + pp_msgs,
        "bytes_per_node_per_s": probe_bytes + pp_bytes,
        "probe_bytes_per_node_per_s": probe_bytes,
        "push_pull_bytes_per_node_per_s": pp_bytes,
        "push_pull_period_s": period,
    }


def loglog_slope(xs: Sequence[float], ys: Sequence[float]) -> float:
    """Least-squares slope of ``log y`` against ``log x`` (the scaling exponent)."""
    lx = [math.log(x) for x in xs]
    ly = [math.log(y) for y in ys]
    mx, my = sum(lx) / len(lx), sum(ly) / len(ly)
    num = sum((a - mx) * (b - my) for a, b in zip(lx, ly, strict=True))
    den = sum((a - mx) ** 2 for a in lx)
    return num / den
