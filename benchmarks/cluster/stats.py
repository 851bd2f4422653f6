"""Statistics of the cluster benchmark: percentiles, summaries and a seeded bootstrap
interval of a difference of medians (standard library only, deterministic)."""

from __future__ import annotations

import random
import statistics
from collections.abc import Sequence
from typing import Any

#: p90 is reported from this many samples, p99 from P99_MIN (issue 10)
P90_MIN = 10
P99_MIN = 200


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0-100), linear between closest ranks (numpy's default)."""
    if not values:
        raise ValueError("percentile of no values")
    if not 0 <= q <= 100:
        raise ValueError(f"q={q}: expected 0..100")
    xs = sorted(values)
    pos = (len(xs) - 1) * q / 100
    lo = int(pos)
    hi = min(lo + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)


def summarize(values: Sequence[float], digits: int = 3) -> dict[str, Any]:
    """n, median, mean, min, max; p90 from :data:`P90_MIN` samples, p99 only from
    :data:`P99_MIN` (fewer samples cannot say anything about a 1% tail)."""
    if not values:
        return {"n": 0}
    out: dict[str, Any] = {
        "n": len(values),
        "median": round(statistics.median(values), digits),
        "mean": round(statistics.fmean(values), digits),
        "min": round(min(values), digits),
        "max": round(max(values), digits),
    }
    if len(values) >= P90_MIN:
        out["p90"] = round(percentile(values, 90), digits)
    if len(values) >= P99_MIN:
        out["p99"] = round(percentile(values, 99), digits)
    return out


def bootstrap_median_diff(a: Sequence[float], b: Sequence[float], *, seed: int = 10,
                          resamples: int = 10_000, confidence: float = 0.95
                          ) -> dict[str, float]:
    """median(a) - median(b) with a percentile-bootstrap ``confidence`` interval: each
    sample is resampled with replacement ``resamples`` times (a seeded generator, so the
    same inputs give the same interval)."""
    if not a or not b:
        raise ValueError("bootstrap of an empty sample")
    rng = random.Random(seed)
    diffs = []
    na, nb = len(a), len(b)
    for _ in range(resamples):
        ra = [a[rng.randrange(na)] for _ in range(na)]
        rb = [b[rng.randrange(nb)] for _ in range(nb)]
        diffs.append(statistics.median(ra) - statistics.median(rb))
    tail = (1 - confidence) / 2 * 100
    return {"diff": statistics.median(a) - statistics.median(b),
            "low": percentile(diffs, tail), "high": percentile(diffs, 100 - tail),
            "confidence": confidence, "resamples": resamples, "seed": seed}


def relative_error(predicted: float, measured: float) -> float:
    """(predicted - measured) / measured."""
    if measured == 0:
        raise ValueError("relative error against 0")
    return (predicted - measured) / measured
