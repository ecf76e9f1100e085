"""Do two binned samples come from the same distribution? A test that knows its sample size.

Used for the canary's prediction shift (canary against stable) and for feature drift (live
traffic against the reference profile). Both sides are counts over the same bins.

The decision is Pearson's chi-square test of homogeneity on the 2 x B table of counts. Under
no shift its statistic follows χ²(B - 1) whatever n and m are (once every expected count is
at least 5), so a fixed significance gives a fixed false-alarm rate at every window size. PSI
is reported beside it because people know it, with a threshold taken from the same null:
PSI ≈ (1/n + 1/m) · χ²(B - 1), so the cut-off shrinks as the windows grow, instead of the
folklore 0.1 / 0.25 that raises false alarms on small windows and misses shifts on large ones.

"Not enough data" is its own outcome: a side with fewer than `min_samples`, or counts so
sparse that merging the rare bins leaves fewer than two. The chi-square tail is computed
here (regularized incomplete gamma), so the operator does not need scipy.
"""

from __future__ import annotations

import functools
import heapq
import math
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Literal

# Cochran's rule: the χ² approximation holds once every expected cell count is at least 5.
MIN_EXPECTED = 5.0
# PSI's logarithm needs no empty cells; half a count per cell is Jeffreys' prior.
PSI_SMOOTHING = 0.5
_GAMMA_EPSILON = 1e-16
_GAMMA_ITERATIONS = 10_000

Verdict = Literal["pass", "fail", "notEnoughData"]
PASS: Verdict = "pass"
FAIL: Verdict = "fail"
NOT_ENOUGH_DATA: Verdict = "notEnoughData"


# --- the χ² distribution ------------------------------------------------------------------


def _lower_series(a: float, x: float) -> float:
    """P(a, x) by its power series; converges fast for x < a + 1."""
    term = total = 1.0 / a
    denominator = a
    for _ in range(_GAMMA_ITERATIONS):
        denominator += 1.0
        term *= x / denominator
        total += term
        if abs(term) < abs(total) * _GAMMA_EPSILON:
            break
    return total * math.exp(-x + a * math.log(x) - math.lgamma(a))


def _upper_fraction(a: float, x: float) -> float:
    """Q(a, x) by its continued fraction (modified Lentz); converges fast for x ≥ a + 1."""
    tiny = 1e-300
    b = x + 1.0 - a
    c = 1.0 / tiny
    d = 1.0 / b
    h = d
    for i in range(1, _GAMMA_ITERATIONS):
        an = -i * (i - a)
        b += 2.0
        d = an * d + b
        d = tiny if abs(d) < tiny else d
        c = b + an / c
        c = tiny if abs(c) < tiny else c
        d = 1.0 / d
        delta = d * c
        h *= delta
        if abs(delta - 1.0) < _GAMMA_EPSILON:
            break
    return h * math.exp(-x + a * math.log(x) - math.lgamma(a))


def regularized_upper_gamma(a: float, x: float) -> float:
    """Q(a, x) = Γ(a, x) / Γ(a), for a > 0 and x ≥ 0."""
    if a <= 0 or x < 0 or math.isnan(x):
        raise ValueError(f"Q(a, x) needs a > 0 and x >= 0, not a={a}, x={x}")
    if x == 0:
        return 1.0
    if math.isinf(x):
        return 0.0
    if x < a + 1.0:
        return max(0.0, 1.0 - _lower_series(a, x))
    return _upper_fraction(a, x)


def chi2_sf(statistic: float, dof: int) -> float:
    """P(χ²(dof) ≥ statistic): the p-value of a χ² statistic."""
    if dof < 1:
        raise ValueError(f"a χ² distribution needs at least 1 degree of freedom, not {dof}")
    return regularized_upper_gamma(dof / 2.0, max(statistic, 0.0) / 2.0)


@functools.lru_cache(maxsize=256)  # the same few (significance, bins) pairs, over and over
def chi2_isf(probability: float, dof: int) -> float:
    """The x with P(χ²(dof) ≥ x) = probability: the critical value at that significance."""
    if not 0.0 < probability < 1.0:
        raise ValueError(f"a tail probability must lie in (0, 1), not {probability}")
    low, high = 0.0, max(1.0, 2.0 * dof)
    while chi2_sf(high, dof) > probability:
        low, high = high, high * 2.0
    for _ in range(200):  # bisection: the tail is monotone, and 200 halvings reach 1 ulp
        middle = (low + high) / 2.0
        if middle in (low, high):
            break
        if chi2_sf(middle, dof) > probability:
            low = middle
        else:
            high = middle
    return (low + high) / 2.0


# --- statistics on counts -----------------------------------------------------------------


def _counts(values: Sequence[float], side: str) -> list[float]:
    counts = [float(v) for v in values]
    if any(not math.isfinite(c) or c < 0 for c in counts):
        raise ValueError(f"{side} counts must be finite and non-negative")
    return counts


def homogeneity_statistic(first: Sequence[float], second: Sequence[float]) -> tuple[float, int]:
    """Pearson's χ² for the 2 x B table (first, second) and its degrees of freedom, over the
    bins that hold anything (scipy.stats.chi2_contingency without Yates' correction)."""
    a, b = _counts(first, "first"), _counts(second, "second")
    if len(a) != len(b):
        raise ValueError(f"the two sides have {len(a)} and {len(b)} bins")
    n, m = sum(a), sum(b)
    total = n + m
    if n == 0 or m == 0:
        raise ValueError("both sides need at least one count")
    statistic, bins = 0.0, 0
    for x, y in zip(a, b, strict=True):
        column = x + y
        if column == 0:
            continue
        bins += 1
        expected_x, expected_y = n * column / total, m * column / total
        statistic += (x - expected_x) ** 2 / expected_x + (y - expected_y) ** 2 / expected_y
    return statistic, bins - 1


def goodness_of_fit_statistic(observed: Sequence[float], expected: Sequence[float]) -> float:
    """Pearson's χ² of observed counts against expected ones (scipy.stats.chisquare)."""
    o, e = _counts(observed, "observed"), _counts(expected, "expected")
    if len(o) != len(e) or any(x <= 0 for x in e):
        raise ValueError("expected counts must be positive, one per observed bin")
    return sum((x - y) ** 2 / y for x, y in zip(o, e, strict=True))


def psi(first: Sequence[float], second: Sequence[float], smoothing: float = 0.0) -> float:
    """Population stability index Σ (p - q) · ln(p / q) over the bins' shares; `smoothing`
    counts are added to every cell first (a bin empty on one side only is infinite without)."""
    a, b = _counts(first, "first"), _counts(second, "second")
    a, b = [x + smoothing for x in a], [y + smoothing for y in b]
    n, m = sum(a), sum(b)
    total = 0.0
    for x, y in zip(a, b, strict=True):
        p, q = x / n, y / m
        if p == q:
            continue
        if p == 0 or q == 0:
            return math.inf
        total += (p - q) * math.log(p / q)
    return total


def psi_threshold(first_count: float, second_count: float, bins: int, significance: float) -> float:
    """The PSI that no-shift samples of these sizes exceed with probability `significance`:
    (1/n + 1/m) · the χ²(bins - 1) critical value."""
    return (1.0 / first_count + 1.0 / second_count) * chi2_isf(significance, bins - 1)


def merge_sparse_bins(
    first: Sequence[float], second: Sequence[float], min_expected: float = MIN_EXPECTED
) -> tuple[list[float], list[float]]:
    """The same counts with the rarest bins pooled until every expected cell count is at least
    `min_expected`; empty bins are dropped. Pooling is decided on the column totals only,
    which carry no information about a shift, so the test stays valid on the coarser bins."""
    a, b = _counts(first, "first"), _counts(second, "second")
    n, m = sum(a), sum(b)
    total = n + m
    smaller = min(n, m)
    heap = [(x + y, i, x, y) for i, (x, y) in enumerate(zip(a, b, strict=True)) if x + y > 0]
    heapq.heapify(heap)
    # The smallest expected cell of a column is min(n, m) · column / total.
    while len(heap) > 1 and smaller * heap[0][0] / total < min_expected:
        column, order, x, y = heapq.heappop(heap)
        other, _, x2, y2 = heapq.heappop(heap)
        heapq.heappush(heap, (column + other, order, x + x2, y + y2))
    heap.sort(key=lambda item: item[1])
    return [item[2] for item in heap], [item[3] for item in heap]


# --- the test -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Comparison:
    verdict: Verdict
    first_count: float
    second_count: float
    significance: float
    bins: int = 0  # after pooling the sparse ones
    statistic: float = 0.0
    critical: float = 0.0  # the statistic's threshold at `significance`
    p_value: float = 1.0
    psi: float = 0.0
    psi_threshold: float = 0.0
    why: str = ""  # what data is missing, for notEnoughData


def parse_significance(text: str) -> float:
    """A significance level written as a decimal string ("0.01"), in (0, 0.5]."""
    try:
        value = Decimal(text)
    except InvalidOperation as exc:
        raise ValueError(f"significance {text!r} is not a decimal number") from exc
    if not Decimal(0) < value <= Decimal("0.5"):
        raise ValueError(f"significance {text} must lie in (0, 0.5]")
    return float(value)


def compare(
    first: Sequence[float],
    second: Sequence[float],
    significance: float,
    min_samples: int,
    min_expected: float = MIN_EXPECTED,
) -> Comparison:
    """Fails when the chi-square test rejects "same distribution" at `significance`."""
    a, b = _counts(first, "first"), _counts(second, "second")
    if len(a) != len(b):
        raise ValueError(f"the two sides have {len(a)} and {len(b)} bins")
    n, m = sum(a), sum(b)
    if min(n, m) < max(min_samples, 1):
        return Comparison(
            NOT_ENOUGH_DATA, n, m, significance, why=f"fewer than {max(min_samples, 1)} samples"
        )
    occupied = sum(1 for x, y in zip(a, b, strict=True) if x + y > 0)
    if occupied == 1:  # everything in one bin on both sides: nothing can differ
        return Comparison(PASS, n, m, significance, bins=1)
    merged_a, merged_b = merge_sparse_bins(a, b, min_expected)
    if len(merged_a) < 2:
        return Comparison(
            NOT_ENOUGH_DATA,
            n,
            m,
            significance,
            why=f"too few samples for {occupied} bins with expected counts of at least "
            f"{min_expected:g}",
        )
    statistic, dof = homogeneity_statistic(merged_a, merged_b)
    p_value = chi2_sf(statistic, dof)
    return Comparison(
        verdict=FAIL if p_value < significance else PASS,
        first_count=n,
        second_count=m,
        significance=significance,
        bins=len(merged_a),
        statistic=statistic,
        critical=chi2_isf(significance, dof),
        p_value=p_value,
        psi=psi(merged_a, merged_b, PSI_SMOOTHING),
        psi_threshold=psi_threshold(n, m, len(merged_a), significance),
    )
