"""The closed-form models of ``benchmarks/theory.py`` (what ``bench_sim.py --cases theory``
compares the simulator with): known values, limits, and monotonicity."""

from __future__ import annotations

import itertools
import math
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))

import theory


def test_synchronous_floor_known_values() -> None:
    # 4^4 = 256 < 1000 <= 4^5 = 1024: five rounds of fan-out 3
    assert theory.sync_push_rounds(1000, 3) == 5
    assert theory.sync_push_rounds(1024, 3) == 5
    assert theory.sync_push_rounds(1025, 3) == 6
    assert theory.sync_push_rounds(1, 3) == 0
    assert theory.sync_push_rounds(2, 1) == 1
    # two sources: 2 * 4^4 = 512 < 1001
    assert theory.sync_push_rounds(1001, 3, sources=2) == 5
    assert theory.sync_push_rounds(512, 3, sources=2) == 4
    with pytest.raises(ValueError):
        theory.sync_push_rounds(10, 0)


def test_random_push_is_pittel_for_fanout_one() -> None:
    for n in (10, 1000, 10**6):
        assert theory.random_push_rounds(n, 1) == pytest.approx(math.log2(n) + math.log(n))
    # fan-out 3 at 1,000: log4(1000) + ln(1000) / 3
    assert theory.random_push_rounds(1000, 3) == pytest.approx(4.983 + 2.303, abs=1e-3)


def test_dissemination_models_grow_with_n_and_shrink_with_fanout() -> None:
    ns = [10, 30, 100, 300, 1000, 3000, 10_000]
    for model in (lambda n, k: float(theory.sync_push_rounds(n, k)),
                  theory.random_push_rounds,
                  lambda n, k: theory.async_push_time(n, k, 0.2),
                  lambda n, k: theory.async_push_time(n, k, 0.5, 0.03, 2)):
        for k in (1, 3, 4):
            vals = [model(n, k) for n in ns]
            assert vals == sorted(vals)
        for n in ns:
            assert model(n, 4) <= model(n, 3) <= model(n, 1)
    # the floor is a floor for synchronous random push
    for n, k in itertools.product(ns, (1, 3, 4)):
        assert theory.sync_push_rounds(n, k) <= theory.random_push_rounds(n, k) + 1


def test_lotka_growth_rate_solves_its_equation() -> None:
    assert theory.lotka_growth_rate(3, 0.2) == pytest.approx(15.0)
    for k, g, lat in ((3, 0.2, 0.0006), (4, 0.5, 0.03), (1, 1.0, 0.5)):
        r = theory.lotka_growth_rate(k, g, lat)
        assert 0 < r < k / g
        assert r == pytest.approx((k / g) * math.exp(-r * lat), rel=1e-9)


def test_memberlist_formulas_match_config_md() -> None:
    # CONFIG.md §2: retransmit limit (mult 4) and push/pull period (LAN 30 s)
    assert [theory.retransmit_limit(4, n) for n in (1, 9, 10, 99, 100, 999, 1000)] == [
        4, 4, 8, 8, 12, 12, 16]
    assert theory.retransmit_limit(4, 0) == 0
    assert [theory.push_pull_scale(30, n) for n in (32, 33, 64, 65, 128, 1000, 10_000)] == [
        30, 60, 60, 90, 90, 180, 300]
    # suspicion: the Go code truncates log10(50) * 1000 to 1698
    assert theory.suspicion_timeout(4, 50, 1.0) == pytest.approx(6.792)
    assert theory.suspicion_timeout(4, 5, 1.0) == 4.0
    assert theory.suspicion_window(1000, theory.LAN) == pytest.approx((12.0, 72.0))
    assert theory.suspicion_window(1000, theory.LAN, lifeguard=False) == pytest.approx((12, 12))
    # TestSuspicion_remainingSuspicionTime: min 2 s, max 30 s, k 3
    assert theory.suspicion_after_confirmations(2, 30, 3, 0) == 30
    assert theory.suspicion_after_confirmations(2, 30, 3, 1) == pytest.approx(16.0)
    assert theory.suspicion_after_confirmations(2, 30, 3, 2) == pytest.approx(7.81, abs=1e-3)
    assert theory.suspicion_after_confirmations(2, 30, 3, 3) == pytest.approx(2.0)


def _brute_force_pmf(m: int) -> list[float]:
    """P(K = j) by enumerating (c, p, p') of the round-robin model."""
    counts = [0] * (2 * m)
    for c, p, q in itertools.product(range(m), repeat=3):
        k = p - c + 1 if p >= c else m - c + q + 1
        counts[k] += 1
    return [x / m**3 for x in counts[1:]]


@pytest.mark.parametrize("m", [1, 2, 3, 5, 8])
def test_probe_wait_pmf_matches_enumeration(m: int) -> None:
    assert theory.probe_wait_pmf(m) == pytest.approx(_brute_force_pmf(m))
    assert sum(theory.probe_wait_pmf(m)) == pytest.approx(1.0)


def test_first_probe_time_limits() -> None:
    # two members: the only other member probes at its next tick, uniform in [0, T)
    assert theory.first_probe_mean(2, 1.0) == pytest.approx(0.5)
    assert theory.first_probe_quantile(2, 2.0, 0.5) == pytest.approx(1.0)
    # large n: a Poisson stream of rate 1/T -> exponential, mean T, median T ln 2
    assert theory.first_probe_mean(10_000, 1.0) == pytest.approx(1.0, abs=2e-3)
    assert theory.first_probe_quantile(10_000, 1.0, 0.5) == pytest.approx(math.log(2), abs=2e-3)
    means = [theory.first_probe_mean(n, 1.0) for n in (2, 3, 5, 20, 100, 1000)]
    assert means == sorted(means)
    assert theory.first_probe_mean(100, 5.0) == pytest.approx(5 * theory.first_probe_mean(100, 1))
    d = theory.first_detection(100, theory.LAN)
    assert d["first_suspect_mean_s"] == pytest.approx(d["first_ping_mean_s"] + 1.0)
    assert d["first_probe_failure_mean_s"] == pytest.approx(d["first_ping_mean_s"] + 0.5)


def test_swim_expected_detection() -> None:
    assert theory.swim_detection_periods(3) == pytest.approx(4 / 3)
    assert theory.swim_detection_periods(10**6) == pytest.approx(math.e / (math.e - 1), rel=1e-5)


def test_transmit_limit_models() -> None:
    assert theory.expected_missed(1000, 16) < theory.expected_missed(1000, 12)
    assert theory.expected_missed(1000, 16) == pytest.approx(1000 * math.exp(-16), rel=1e-2)
    curve = theory.limited_push_curve(1001, 3.4, 16, sources=2)
    assert curve == sorted(curve) and curve[-1] <= 1.0 and curve[0] == pytest.approx(2 / 1001)
    r = theory.limited_push_rounds(1001, 3.0, 16, sources=2)
    assert r is not None and r >= theory.sync_push_rounds(1001, 3, 2)
    # one transmission each cannot inform everyone
    assert theory.limited_push_rounds(1001, 1.0, 1) is None
    assert theory.effective_fanout(theory.LAN) == pytest.approx(3.4)
    assert theory.gossip_rounds_per_member(theory.LAN, 1000) == pytest.approx(16 / 3.4)


def test_quiet_bandwidth() -> None:
    b = theory.quiet_bandwidth(10, theory.LAN, 70, 20, 60, 30)
    assert b["messages_per_node_per_s"] == pytest.approx(2 + 2 / 30)
    assert b["bytes_per_node_per_s"] == pytest.approx(90 + 2 * (30 + 600) / 30)
    big = theory.quiet_bandwidth(10_000, theory.LAN, 70, 20, 60, 30)
    assert big["push_pull_period_s"] == 300
    assert big["bytes_per_node_per_s"] > b["bytes_per_node_per_s"]
    assert theory.loglog_slope([1, 10, 100], [3, 300, 30_000]) == pytest.approx(2.0)
