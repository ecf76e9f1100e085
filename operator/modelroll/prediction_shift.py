"""The predictionShift check: does the canary predict what the stable revision predicts?

A model packaged with a reference profile makes the runtime count its predictions per bin of
the reference's prediction distribution (a class label, or a quantile bin of a regression
output), labelled like every runtime metric. Over the analysis window both revisions'
counts go through `modelroll.distribution_test.compare`: a chi-square test whose false-alarm
rate is the configured significance at every traffic level.

The counts are the counters' plain difference over the window, per pod, not `increase()`:
increase() extrapolates to the window's edges, which inflates every count by up to the ratio
of window to sampled span, and a chi-square statistic grows with the counts, so it would
raise false alarms. A series born inside the window counts from zero (`or`), and a pod whose
counter reset counts nothing (`clamp_min`), which errs towards fewer samples.

Pure: `bins_query` writes the PromQL, `evaluate` decides from the counts.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

from modelroll.distribution_test import FAIL, NOT_ENOUGH_DATA, compare, parse_significance
from modelroll.spec import PredictionShift

# The runtime's prediction counter (docs/drift.md): one series per model, version and bin.
PREDICTION_METRIC = "modelroll_prediction_values_total"
BIN_LABEL = "bin"

REASON = "PredictionShift"


def window_counts(metric: str, matcher: str, window_seconds: int, by: str) -> str:
    """Per `by` label, how much `metric` grew over the last window, without extrapolation."""
    series = f"{metric}{{{matcher}}}"
    grown = f"clamp_min({series} - {series} offset {window_seconds}s, 0)"
    return f"sum by ({by}) ({grown} or {series})"


def bins_query(matcher: str, window_seconds: int) -> str:
    return window_counts(PREDICTION_METRIC, matcher, window_seconds, BIN_LABEL)


@dataclass(frozen=True)
class ShiftVerdict:
    """passed: True, False, or None (inconclusive: too few predictions to decide)."""

    passed: bool | None
    message: str
    canary_count: float
    stable_count: float
    statistic: float | None = None
    p_value: float | None = None


def _count(value: float) -> str:
    return f"{value:,.0f}"


def _number(value: float) -> str:
    return f"{value:.3g}"


def evaluate(
    settings: PredictionShift, canary: Mapping[str, float], stable: Mapping[str, float]
) -> ShiftVerdict | None:
    """The verdict over both revisions' counts per bin; None when there is nothing to compare
    (neither revision exports prediction counters: their models carry no reference profile)."""
    canary = {k: v for k, v in canary.items() if math.isfinite(v)}
    stable = {k: v for k, v in stable.items() if math.isfinite(v)}
    if not canary and not stable:
        return None
    bins = sorted(set(canary) | set(stable))
    first = [max(canary.get(b, 0.0), 0.0) for b in bins]
    second = [max(stable.get(b, 0.0), 0.0) for b in bins]
    n, m = sum(first), sum(second)
    counts = f"{_count(n)} canary and {_count(m)} stable predictions"
    result = compare(first, second, parse_significance(settings.significance), settings.min_samples)
    if result.verdict == NOT_ENOUGH_DATA:
        return ShiftVerdict(
            None,
            f"prediction shift not decided: {counts} in the window, {result.why} "
            f"(minSamples {settings.min_samples}); analysis waits for more traffic",
            n,
            m,
        )
    if result.bins < 2:
        return ShiftVerdict(True, f"prediction shift: all {counts} in one bin", n, m, 0.0, 1.0)
    detail = (
        f"chi-square {_number(result.statistic)} {{op}} {_number(result.critical)} "
        f"(p={_number(result.p_value)}, significance {settings.significance}, "
        f"{result.bins} bins), PSI {_number(result.psi)} (threshold "
        f"{_number(result.psi_threshold)}), over {counts}"
    )
    failed = result.verdict == FAIL
    message = "prediction shift: " + detail.format(op=">" if failed else "<=")
    return ShiftVerdict(not failed, message, n, m, result.statistic, result.p_value)
