"""Lifeguard formulas and timers against memberlist's own test tables.

Golden values come from memberlist ``util_test.go`` (TestSuspicionTimeout, TestRetransmitLimit,
TestPushPullScale), ``suspicion_test.go`` (TestSuspicion_remainingSuspicionTime,
TestSuspicion_Timer, TestSuspicion_Timer_Immediate), ``awareness_test.go`` (TestAwareness),
``state_test.go`` (TestMemberList_ProbeNode_Suspect_Dogpile) and shared/spec/CONFIG.md section 2.
"""

from __future__ import annotations

import pytest

from swimpy.core.lifeguard import (
    PUSH_PULL_SCALE_THRESHOLD,
    Awareness,
    Suspicion,
    expected_confirmations,
    push_pull_scale,
    remaining_suspicion_time,
    retransmit_limit,
    suspicion_timeout,
)

# --- suspicion_timeout (util_test.go TestSuspicionTimeout) -----------------------------------


@pytest.mark.parametrize(
    ("n", "expected_ms"),
    [(5, 1000), (10, 1000), (50, 1698), (100, 2000), (500, 2698), (1000, 3000)],
)
def test_suspicion_timeout_matches_memberlist_table(n: int, expected_ms: int) -> None:
    # memberlist checks suspicionTimeout(3, n, time.Second) / 3.
    assert suspicion_timeout(3, n, 1.0) == 3 * expected_ms / 1000


@pytest.mark.parametrize("n", [-5, 0, 1, 2, 3, 9, 10])
def test_suspicion_timeout_node_scale_is_clamped_at_one_for_small_clusters(n: int) -> None:
    assert suspicion_timeout(4, n, 1.0) == 4.0


def test_suspicion_timeout_truncates_node_scale_to_thousandths() -> None:
    # log10(50) = 1.69897..., truncated to 1698 "milli-units", not rounded to 1699.
    assert suspicion_timeout(1, 50, 1.0) == 1.698
    # log10(20) = 1.30103 -> 1301.
    assert suspicion_timeout(4, 20, 1.0) == 5.204


def test_suspicion_timeout_works_in_integer_nanoseconds() -> None:
    # 5 * 1000 * 100ms / 1000 = 500ms exactly, no float drift from 0.1.
    assert suspicion_timeout(5, 4, 0.1) == 0.5
    # 3 * 1698 * 1ns / 1000 = 5.094ns, truncated to 5ns as Go's integer division does.
    assert suspicion_timeout(3, 50, 1e-9) == 5e-9


# --- remaining_suspicion_time (suspicion_test.go TestSuspicion_remainingSuspicionTime) --------


@pytest.mark.parametrize(
    ("n", "k", "elapsed", "expected"),
    [
        (0, 3, 0.0, 30.0),
        (1, 3, 2.0, 14.0),
        (2, 3, 3.0, 4.810),
        (3, 3, 4.0, -2.0),
        (4, 3, 5.0, -3.0),
        (5, 3, 10.0, -8.0),
    ],
)
def test_remaining_suspicion_time_matches_memberlist_table(
    n: int, k: int, elapsed: float, expected: float
) -> None:
    assert remaining_suspicion_time(n, k, elapsed, 2.0, 30.0) == expected


def test_remaining_suspicion_time_floors_to_whole_milliseconds() -> None:
    # max - ln(3)/ln(4) * (max - min) = 30 - 22.1899... = 7.81004... s -> 7810 ms.
    assert remaining_suspicion_time(2, 3, 0.0, 2.0, 30.0) == 7.810
    # Dogpile: 1000 - ln(3)/ln(4) * 500 = 603.76 ms -> 603 ms.
    assert remaining_suspicion_time(2, 3, 0.0, 0.5, 1.0) == 0.603


def test_remaining_suspicion_time_never_goes_below_min_before_elapsed() -> None:
    for n in range(3, 20):
        assert remaining_suspicion_time(n, 3, 0.0, 2.0, 30.0) == 2.0


@pytest.mark.parametrize("n", [0, 1, 5])
def test_remaining_suspicion_time_with_no_expected_confirmations_is_min(n: int) -> None:
    assert remaining_suspicion_time(n, 0, 0.0, 2.0, 30.0) == 2.0
    assert remaining_suspicion_time(n, 0, 0.5, 2.0, 30.0) == 1.5


def test_remaining_suspicion_time_can_be_negative_meaning_fire_now() -> None:
    assert remaining_suspicion_time(1, 1, 0.2, 0.1, 30.0) == pytest.approx(-0.1)


# --- retransmit_limit (util_test.go TestRetransmitLimit, CONFIG.md section 2) ---------------


@pytest.mark.parametrize(("mult", "n", "expected"), [(3, 0, 0), (3, 1, 3), (3, 99, 6)])
def test_retransmit_limit_matches_memberlist_table(mult: int, n: int, expected: int) -> None:
    assert retransmit_limit(mult, n) == expected


@pytest.mark.parametrize(
    ("n", "expected"),
    [(1, 4), (9, 4), (10, 8), (99, 8), (100, 12), (999, 12), (1000, 16), (9999, 16)],
)
def test_retransmit_limit_lan_steps_at_powers_of_ten(n: int, expected: int) -> None:
    assert retransmit_limit(4, n) == expected
    assert retransmit_limit(2, n) == expected // 2  # local profile: half


# --- push_pull_scale (util_test.go TestPushPullScale, CONFIG.md section 2) ------------------


def test_push_pull_scale_matches_memberlist_table() -> None:
    for n in range(0, 33):
        assert push_pull_scale(1.0, n) == 1.0
    for n in range(33, 65):
        assert push_pull_scale(1.0, n) == 2.0
    for n in range(65, 129):
        assert push_pull_scale(1.0, n) == 3.0


def test_push_pull_scale_threshold_is_memberlists() -> None:
    assert PUSH_PULL_SCALE_THRESHOLD == 32


@pytest.mark.parametrize(
    ("n", "expected"),
    [(32, 30.0), (33, 60.0), (64, 60.0), (65, 90.0), (128, 90.0), (129, 120.0), (256, 120.0),
     (257, 150.0), (512, 150.0), (1000, 180.0), (10000, 300.0)],
)  # fmt: skip
def test_push_pull_scale_lan_periods(n: int, expected: float) -> None:
    assert push_pull_scale(30.0, n) == expected
    assert push_pull_scale(60.0, n) == 2 * expected  # WAN


def test_push_pull_scale_keeps_sub_second_intervals_exact() -> None:
    assert push_pull_scale(0.2, 100) == 0.6


# --- Awareness (awareness_test.go TestAwareness) --------------------------------------------


def test_awareness_starts_healthy() -> None:
    a = Awareness(8)
    assert a.score == 0
    assert a.max_multiplier == 8
    assert a.scale_timeout(1.0) == 1.0


def test_awareness_score_clamps_and_scales_like_memberlist() -> None:
    cases = [
        (0, 0, 1.0), (-1, 0, 1.0), (-10, 0, 1.0), (1, 1, 2.0), (-1, 0, 1.0), (10, 7, 8.0),
        (-1, 6, 7.0), (-1, 5, 6.0), (-1, 4, 5.0), (-1, 3, 4.0), (-1, 2, 3.0), (-1, 1, 2.0),
        (-1, 0, 1.0), (-1, 0, 1.0),
    ]  # fmt: skip
    a = Awareness(8)
    for delta, score, timeout in cases:
        a.apply_delta(delta)
        assert a.score == score
        assert a.scale_timeout(1.0) == timeout


def test_awareness_with_multiplier_one_never_scales() -> None:
    a = Awareness(1)
    a.apply_delta(5)
    assert a.score == 0
    assert a.scale_timeout(0.5) == 0.5


def test_awareness_worst_case_probe_period_per_profile() -> None:
    # CONFIG.md section 2: LAN up to 8 s, WAN up to 40 s.
    a = Awareness(8)
    a.apply_delta(100)
    assert a.scale_timeout(1.0) == 8.0
    assert a.scale_timeout(5.0) == 40.0


@pytest.mark.parametrize("bad", [0, -1])
def test_awareness_rejects_multiplier_below_one(bad: int) -> None:
    with pytest.raises(ValueError, match="max_multiplier"):
        Awareness(bad)


def test_awareness_rejects_non_int_multiplier() -> None:
    with pytest.raises(TypeError, match="max_multiplier"):
        Awareness(True)


# --- Suspicion (suspicion_test.go TestSuspicion_Timer and friends) --------------------------

K = 3
MIN = 0.5
MAX = 2.0
FUDGE = 0.025


@pytest.mark.parametrize(
    ("confirmations", "expected_n", "expected_total"),
    [
        ([], 0, MAX),
        ([("me", False), ("foo", True)], 1, 1.25),
        ([("me", False), ("foo", True), ("foo", False), ("foo", False)], 1, 1.25),
        # memberlist's wall-clock test says 810 ms (25 ms slack); exactly it is
        # floor(2000 - ln(3)/ln(4) * 1500) = 811 ms.
        ([("me", False), ("foo", True), ("bar", True)], 2, 0.811),
        ([("me", False), ("foo", True), ("bar", True), ("baz", True)], 3, MIN),
        ([("me", False), ("foo", True), ("bar", True), ("baz", True), ("zoo", False)], 3, MIN),
    ],
)
def test_suspicion_timer_confirmations_shorten_the_deadline(
    confirmations: list[tuple[str, bool]], expected_n: int, expected_total: float
) -> None:
    start = 100.0
    s = Suspicion("me", K, MIN, MAX, start)
    now = start
    for peer, new_info in confirmations:
        now += FUDGE
        assert s.confirm(peer, now) is new_info
    assert s.confirmations == expected_n
    # The deadline is measured from the start of suspicion, not from the last confirmation.
    assert s.deadline == pytest.approx(start + expected_total, abs=1e-9)
    assert s.remaining(now) == pytest.approx(start + expected_total - now, abs=1e-9)


def test_suspicion_starts_at_max_when_confirmations_are_expected() -> None:
    s = Suspicion("a", 2, 4.0, 24.0, 10.0)
    assert (s.start, s.k, s.min_s, s.max_s) == (10.0, 2, 4.0, 24.0)
    assert s.confirmations == 0
    assert s.deadline == 34.0


def test_suspicion_with_zero_k_uses_min_and_ignores_confirmations() -> None:
    s = Suspicion("me", 0, 0.025, 30.0, 0.0)
    assert s.deadline == 0.025
    assert s.confirm("foo", 0.01) is False
    assert s.confirmations == 0
    assert s.deadline == 0.025


def test_suspicion_original_suspector_is_not_a_confirmation() -> None:
    s = Suspicion("me", 3, MIN, MAX, 0.0)
    assert s.has_confirmed("me")
    assert s.confirm("me", 0.1) is False
    assert s.deadline == MAX


def test_suspicion_confirmation_after_expiry_means_fire_now() -> None:
    # TestSuspicion_Timer_Immediate: k=1, min 100 ms, max 30 s, confirmed after 200 ms.
    s = Suspicion("me", 1, 0.1, 30.0, 0.0)
    assert s.confirm("foo", 0.2) is True
    assert s.deadline == pytest.approx(0.1)
    assert s.deadline <= 0.2
    assert s.remaining(0.2) <= 0


def test_suspicion_late_confirmation_after_timer_fired_still_reports_new_info() -> None:
    # TestSuspicion_Timer: a "late" confirm after firing; the owner has already acted on the
    # deadline, and the new deadline is in the past (no second firing to schedule).
    s = Suspicion("me", K, MIN, MAX, 0.0)
    fired_at = s.deadline
    assert s.confirm("late", fired_at + 2 * FUDGE) is True
    assert s.deadline <= fired_at + 2 * FUDGE


def test_suspicion_deadline_never_moves_later() -> None:
    s = Suspicion("a", 4, 30.0, 180.0, 0.0)
    last = s.deadline
    for i, peer in enumerate(["b", "c", "d", "e", "f"]):
        s.confirm(peer, float(i))
        assert s.deadline <= last
        last = s.deadline
    assert s.deadline == 30.0


# --- expected_confirmations and the Dogpile table (state_test.go) ---------------------------


@pytest.mark.parametrize(
    ("n", "expected_k"),
    [(1, 0), (2, 0), (3, 0), (4, 0), (5, 3), (6, 3), (100, 3)],
)
def test_expected_confirmations_is_zero_when_too_few_members_could_confirm(
    n: int, expected_k: int
) -> None:
    assert expected_confirmations(5, n) == expected_k


def test_expected_confirmations_is_never_negative() -> None:
    assert expected_confirmations(1, 10) == 0


def _dogpile_timeout(n: int, confirmations: int) -> float:
    """Total suspicion timeout with SuspicionMult 5, MaxMult 2, ProbeInterval 100 ms."""
    k = expected_confirmations(5, n)
    min_s = suspicion_timeout(5, n, 0.1)
    max_s = 2 * min_s
    s = Suspicion("prober", k, min_s, max_s, 0.0)
    for i in range(confirmations):
        s.confirm(f"peer{i}", 0.0)
    return s.deadline


@pytest.mark.parametrize(
    ("n", "confirmations", "expected_ms"),
    [
        (2, 0, 500),  # k=0: max timeout disabled
        (3, 0, 500),
        (4, 0, 500),
        (5, 0, 1000),  # k=3: max timeout starts to take effect
        (6, 0, 1000),
        (6, 1, 750),  # confirmations start to lower the timeout
        # memberlist's wall-clock test says 604 ms (with 25 ms slack); the exact value is
        # floor(1000 - ln(3)/ln(4) * 500) = 603 ms, as upstream's synctest version asserts.
        (6, 2, 603),
        (6, 3, 500),  # driven to the nominal value
        (6, 4, 500),
    ],
)
def test_dogpile_suspicion_timeouts(n: int, confirmations: int, expected_ms: int) -> None:
    assert _dogpile_timeout(n, confirmations) == expected_ms / 1000


# --- CONFIG.md section 2 derived numbers -----------------------------------------------------


@pytest.mark.parametrize(
    ("mult", "interval", "n", "expected_min"),
    [
        # LAN: SuspicionMult 4, ProbeInterval 1 s
        (4, 1.0, 1, 4.0), (4, 1.0, 10, 4.0), (4, 1.0, 20, 5.204), (4, 1.0, 50, 6.792),
        (4, 1.0, 100, 8.0), (4, 1.0, 1000, 12.0), (4, 1.0, 10000, 16.0),
        # WAN: SuspicionMult 6, ProbeInterval 5 s
        (6, 5.0, 1, 30.0), (6, 5.0, 10, 30.0), (6, 5.0, 20, 39.03), (6, 5.0, 50, 50.94),
        (6, 5.0, 100, 60.0), (6, 5.0, 1000, 90.0), (6, 5.0, 10000, 120.0),
        # Local: SuspicionMult 3, ProbeInterval 1 s
        (3, 1.0, 1, 3.0), (3, 1.0, 20, 3.903), (3, 1.0, 50, 5.094), (3, 1.0, 100, 6.0),
        (3, 1.0, 1000, 9.0), (3, 1.0, 10000, 12.0),
    ],
)  # fmt: skip
def test_profile_suspicion_min_and_max(
    mult: int, interval: float, n: int, expected_min: float
) -> None:
    min_s = suspicion_timeout(mult, n, interval)
    assert min_s == pytest.approx(expected_min, abs=1e-9)
    # SuspicionMaxTimeoutMult 6 in every profile (e.g. LAN 1000 nodes: 12 s -> 72 s).
    assert 6 * min_s == pytest.approx(6 * expected_min, abs=1e-9)


@pytest.mark.parametrize(
    ("mult", "n_threshold", "k"),
    [(4, 4, 2), (6, 6, 4), (3, 3, 1)],  # LAN, WAN, Local
)
def test_profile_expected_confirmations_thresholds(mult: int, n_threshold: int, k: int) -> None:
    assert expected_confirmations(mult, n_threshold - 1) == 0
    assert expected_confirmations(mult, n_threshold) == k


def test_lan_suspicion_with_confirmations() -> None:
    # CONFIG.md: LAN with k=2 -> 0 confirmations 24 s, 1 -> 11.381 s, 2 -> 4 s.
    n = 8
    k = expected_confirmations(4, n)
    min_s = suspicion_timeout(4, n, 1.0)
    s = Suspicion("a", k, min_s, 6 * min_s, 0.0)
    assert s.deadline == 24.0
    s.confirm("b", 1.0)
    assert s.deadline == 11.381
    s.confirm("c", 2.0)
    assert s.deadline == 4.0


def test_lan_small_cluster_suspicion_is_flat_four_seconds() -> None:
    n = 3
    k = expected_confirmations(4, n)
    assert k == 0
    min_s = suspicion_timeout(4, n, 1.0)
    s = Suspicion("a", k, min_s, 6 * min_s, 0.0)
    assert s.deadline == 4.0
