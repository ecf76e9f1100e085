"""The binned two-sample test: exact against scipy, calibrated under no shift, and as
sensitive as docs/drift-statistics.md promises. Simulations use fixed seeds."""

from __future__ import annotations

import math

import numpy as np
import pytest
from modelroll.distribution_test import (
    FAIL,
    NOT_ENOUGH_DATA,
    PASS,
    chi2_isf,
    chi2_sf,
    compare,
    goodness_of_fit_statistic,
    homogeneity_statistic,
    merge_sparse_bins,
    parse_significance,
    psi,
    psi_threshold,
    regularized_upper_gamma,
)
from scipy import special, stats

SIGNIFICANCE = 0.01
WINDOWS = 1000
# A reference profile as `modelroll package` writes it for a numeric feature: ten quantile
# bins of a standard normal, plus under- and overflow outside the reference's range.
EDGES = stats.norm.ppf(np.linspace(0, 1, 11)[1:-1])


def binned(values: np.ndarray) -> np.ndarray:
    index = np.digitize(values, EDGES) + 1
    index[values < -3] = 0
    index[values > 3] = 11
    return np.bincount(index, minlength=12)


@pytest.mark.parametrize("dof", [1, 2, 3, 5, 9, 11, 30, 100])
@pytest.mark.parametrize("x", [1e-4, 0.5, 1.0, 3.0, 7.5, 20.0, 50.0, 200.0, 500.0])
def test_chi2_tail_matches_scipy(dof: int, x: float) -> None:
    assert chi2_sf(x, dof) == pytest.approx(stats.chi2.sf(x, dof), rel=1e-9, abs=1e-12)
    assert regularized_upper_gamma(dof / 2, x) == pytest.approx(
        special.gammaincc(dof / 2, x), rel=1e-9, abs=1e-12
    )


@pytest.mark.parametrize("dof", [1, 2, 9, 11, 40])
@pytest.mark.parametrize("p", [0.1, 0.05, 0.01, 0.001, 1e-6])
def test_chi2_critical_value_matches_scipy(dof: int, p: float) -> None:
    assert abs(chi2_isf(p, dof) - stats.chi2.isf(p, dof)) < 1e-9


def test_chi2_edges() -> None:
    assert chi2_sf(0.0, 3) == 1.0
    assert chi2_sf(math.inf, 3) == 0.0
    with pytest.raises(ValueError):
        chi2_sf(1.0, 0)
    with pytest.raises(ValueError):
        chi2_isf(0.0, 3)


def test_homogeneity_matches_chi2_contingency() -> None:
    rng = np.random.default_rng(11)
    for _ in range(50):
        bins = int(rng.integers(2, 15))
        first = rng.integers(5, 500, bins)
        second = rng.integers(5, 5000, bins)
        statistic, dof = homogeneity_statistic(first.tolist(), second.tolist())
        expected = stats.chi2_contingency(np.array([first, second]), correction=False)
        assert abs(statistic - expected.statistic) < 1e-9 * max(1.0, expected.statistic)
        assert dof == expected.dof
        assert abs(chi2_sf(statistic, dof) - expected.pvalue) < 1e-9


def test_compare_without_pooling_gives_scipys_p_value() -> None:
    first, second = [120, 80, 60, 40], [300, 260, 240, 200]
    result = compare(first, second, SIGNIFICANCE, min_samples=10)
    expected = stats.chi2_contingency(np.array([first, second]), correction=False)
    assert result.bins == 4
    assert abs(result.statistic - expected.statistic) < 1e-9
    assert abs(result.p_value - expected.pvalue) < 1e-9
    assert result.critical == pytest.approx(stats.chi2.isf(SIGNIFICANCE, 3), abs=1e-9)
    assert (result.verdict == FAIL) == (expected.pvalue < SIGNIFICANCE)


def test_goodness_of_fit_matches_chisquare() -> None:
    observed = [18, 25, 31, 26]
    expected = [25.0, 25.0, 25.0, 25.0]
    statistic = goodness_of_fit_statistic(observed, expected)
    reference = stats.chisquare(observed, expected)
    assert abs(statistic - reference.statistic) < 1e-9
    assert abs(chi2_sf(statistic, 3) - reference.pvalue) < 1e-9


def test_psi_is_the_textbook_sum_and_its_threshold_the_scaled_chi2_quantile() -> None:
    first, second = np.array([30.0, 50.0, 20.0]), np.array([25.0, 45.0, 30.0])
    p, q = first / first.sum(), second / second.sum()
    assert psi(first.tolist(), second.tolist()) == pytest.approx(
        float(np.sum((p - q) * np.log(p / q))), abs=1e-12
    )
    assert psi([0, 5], [3, 5]) == math.inf
    assert psi([0, 5], [3, 5], smoothing=0.5) < math.inf
    assert psi_threshold(100, 400, 10, 0.01) == pytest.approx(
        (1 / 100 + 1 / 400) * stats.chi2.isf(0.01, 9), abs=1e-12
    )


def test_sparse_bins_are_pooled_until_every_expected_count_reaches_five() -> None:
    first, second = [1, 0, 40, 50, 6, 0], [3, 0, 400, 500, 60, 1]
    merged_first, merged_second = merge_sparse_bins(first, second)
    assert sum(merged_first) == sum(first) and sum(merged_second) == sum(second)
    n, m = sum(first), sum(second)
    for x, y in zip(merged_first, merged_second, strict=True):
        assert min(n, m) * (x + y) / (n + m) >= 5
    assert sorted(merged_first) == [7, 40, 50]  # the three rare bins became one


def test_not_enough_data_is_its_own_outcome() -> None:
    few = compare([10, 20, 30], [1000, 2000, 3000], SIGNIFICANCE, min_samples=100)
    assert few.verdict == NOT_ENOUGH_DATA and "fewer than 100 samples" in few.why
    # A rare class seen 3 times in 1012: its expected canary count is 0.04, far below 5.
    sparse = compare([0, 12], [3, 997], SIGNIFICANCE, min_samples=10)
    assert sparse.verdict == NOT_ENOUGH_DATA and "expected counts" in sparse.why
    # All in one bin on both sides: nothing can differ, so it passes (no test to run).
    single = compare([0, 500, 0], [0, 800, 0], SIGNIFICANCE, min_samples=100)
    assert single.verdict == PASS


def test_a_shift_much_larger_than_noise_fails() -> None:
    result = compare([500, 300, 200], [400, 300, 300], SIGNIFICANCE, min_samples=100)
    assert result.verdict == FAIL
    assert result.p_value < SIGNIFICANCE and result.statistic > result.critical
    assert result.psi > result.psi_threshold


@pytest.mark.parametrize(
    ("n", "m"), [(100, 100), (300, 300), (1000, 1000), (5000, 5000), (100, 20000), (1000, 20000)]
)
def test_false_alarm_rate_of_no_shift_windows_is_at_most_the_significance(n: int, m: int) -> None:
    """1000 windows drawn from the reference distribution itself. At a 1% level, the count
    of false alarms is Binomial(1000, ≤ 0.01): its mean plus three standard deviations is 19."""
    rng = np.random.default_rng(n * 7 + m)
    alarms = psi_alarms = 0
    for _ in range(WINDOWS):
        result = compare(
            binned(rng.standard_normal(n)).tolist(),
            binned(rng.standard_normal(m)).tolist(),
            SIGNIFICANCE,
            min_samples=100,
        )
        assert result.verdict != NOT_ENOUGH_DATA
        alarms += result.verdict == FAIL
        psi_alarms += result.psi > result.psi_threshold
    tolerance = 3 * math.sqrt(WINDOWS * SIGNIFICANCE * (1 - SIGNIFICANCE))
    assert alarms <= WINDOWS * SIGNIFICANCE + tolerance
    assert psi_alarms <= WINDOWS * SIGNIFICANCE + tolerance  # the derived PSI cut-off too


@pytest.mark.parametrize(
    ("n", "m", "shift"),
    [(300, 300, 0.5), (1000, 1000, 0.3), (1000, 20000, 0.2), (5000, 5000, 0.2)],
)
def test_mean_shift_of_a_numeric_feature_is_detected_at_the_promised_size(
    n: int, m: int, shift: float
) -> None:
    """docs/drift-statistics.md: detected in at least 90% of windows at these sizes."""
    rng = np.random.default_rng(n + m)
    windows = 300
    detected = sum(
        compare(
            binned(rng.standard_normal(n) + shift).tolist(),
            binned(rng.standard_normal(m)).tolist(),
            SIGNIFICANCE,
            min_samples=100,
        ).verdict
        == FAIL
        for _ in range(windows)
    )
    assert detected >= 0.9 * windows


def test_class_shares_moved_by_ten_points_are_detected_at_a_thousand_each() -> None:
    rng = np.random.default_rng(5)
    windows = 300
    detected = sum(
        compare(
            rng.multinomial(1000, [0.5, 0.3, 0.2]).tolist(),
            rng.multinomial(1000, [0.4, 0.3, 0.3]).tolist(),
            SIGNIFICANCE,
            min_samples=100,
        ).verdict
        == FAIL
        for _ in range(windows)
    )
    assert detected >= 0.9 * windows


def test_significance_is_a_decimal_string() -> None:
    assert parse_significance("0.01") == 0.01
    for bad in ("0", "0.6", "x", "-0.1"):
        with pytest.raises(ValueError):
            parse_significance(bad)
