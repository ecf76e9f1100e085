"""Canary analysis: compare the canary revision with the stable one on the runtime's metrics.

Three layers, the first two pure:

- `build_queries` writes the PromQL (built-in checks over the runtime's metric names, plus
  the user's custom checks with `$canary` / `$stable` replaced by label matchers);
- `evaluate` turns the measured numbers into a verdict: passed, failed or inconclusive
  (`passed is None`: too little traffic or no metrics; the rollout waits and checks again);
- `analyze` runs the queries through any `query(promql) -> float | None` callable (normally
  `PrometheusClient(address).query`) and never raises for an unreachable Prometheus.

The predictionShift check (`modelroll.prediction_shift`) joins the verdict in
`with_prediction_shift`: it reads counts per bin (`query_bins`), not one number.

Before any of it, `refusal` says whether the operator's configuration allows the analysis
at all: the Prometheus endpoint must be one the operator names, and custom checks must be
enabled there.

Series of one revision are selected by the scrape-time target labels `namespace` and
`revision` (the ServiceMonitor maps the pod label `modelroll.io/revision` to `revision`;
without honorLabels a pod's own `namespace` label cannot override the target's) and the
runtime's own `model` label, which is the ModelDeployment's name. Every built-in query
carries all three, so it reads only the ModelDeployment's own pods.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation

from . import prediction_shift
from .prediction_shift import ShiftVerdict
from .prometheus_error import PrometheusError
from .spec import Analysis

REQUESTS_METRIC = "modelroll_requests_total"
DURATION_BUCKET_METRIC = "modelroll_request_duration_seconds_bucket"
# rate() and increase() need at least two samples in the window; with the usual 15 s scrape
# interval 30 s is the shortest window that always holds two.
MIN_WINDOW_SECONDS = 30

# measurement keys (the keys of build_queries' result and of AnalysisResult.measurements)
CANARY_REQUESTS = "canaryRequests"
CANARY_ERRORS = "canaryErrors"
CANARY_P99_SECONDS = "canaryP99Seconds"
STABLE_P99_SECONDS = "stableP99Seconds"
CANARY_PREDICTIONS = "canaryPredictions"
STABLE_PREDICTIONS = "stablePredictions"
PREDICTION_SHIFT_STATISTIC = "predictionShiftStatistic"
CUSTOM_PREFIX = "custom:"

# AnalysisResult.reason values
PASSED = "AnalysisPassed"
FAILED = "CanaryAnalysisFailed"
INSUFFICIENT_REQUESTS = "InsufficientRequests"
UNAVAILABLE = "AnalysisUnavailable"
# ... and those of an analysis the operator's configuration refuses (nothing is queried)
ENDPOINT_UNKNOWN = "PrometheusEndpointUnknown"
CUSTOM_CHECKS_DISABLED = "CustomChecksDisabled"
PREDICTION_SHIFT = prediction_shift.REASON

Query = Callable[[str], float | None]
BinsQuery = Callable[[str], dict[str, float]]  # promql -> value by bin label
NO_PREDICTION_COUNTERS = (
    "prediction shift not checked: neither revision exports prediction counters "
    "(their models carry no reference profile)"
)


@dataclass(frozen=True)
class AnalysisResult:
    """passed: True, False, or None for inconclusive (wait and analyze again)."""

    passed: bool | None
    reason: str
    message: str
    measurements: dict[str, float | None] = field(default_factory=dict)


def refusal(
    analysis: Analysis,
    endpoints: Collection[str],
    default_endpoint: str,
    allow_custom_checks: bool,
) -> AnalysisResult | None:
    """A failed result when the operator's configuration does not allow this analysis, else
    None. It fails closed: the canary is aborted with this reason and not promoted, rather
    than held as inconclusive, since asking again cannot change the answer (only a new spec,
    or the operator's configuration, can)."""
    endpoint = analysis.prometheus_endpoint or default_endpoint
    if endpoint not in endpoints:
        known = ", ".join(sorted(endpoints)) or "none"
        if analysis.prometheus_endpoint:
            message = (
                f'spec.rollout.canary.analysis.prometheus.endpoint "{endpoint}" is not a '
                f"Prometheus endpoint of the operator (configured: {known})"
            )
        else:
            message = (
                "the operator configures no Prometheus endpoint (MODELROLL_PROMETHEUS_ENDPOINTS)"
            )
        return AnalysisResult(False, ENDPOINT_UNKNOWN, f"{message}; nothing was queried")
    if analysis.custom_checks and not allow_custom_checks:
        names = ", ".join(str(check["name"]) for check in analysis.custom_checks)
        return AnalysisResult(
            False,
            CUSTOM_CHECKS_DISABLED,
            f"spec.rollout.canary.analysis.customChecks ({names}) are disabled in the "
            "operator (MODELROLL_ALLOW_CUSTOM_CHECKS); nothing was queried",
        )
    return None


def analysis_window(analysis: Analysis) -> int:
    """Seconds of history each query looks at: the interval, but at least 30 s."""
    return max(analysis.interval_seconds, MIN_WINDOW_SECONDS)


def _label_value(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def revision_matcher(namespace: str, name: str, revision: str) -> str:
    """The label matchers of one revision's series, without braces."""
    return (
        f'namespace="{_label_value(namespace)}",model="{_label_value(name)}",'
        f'revision="{_label_value(revision)}"'
    )


def _p99(matcher: str, window: str) -> str:
    return (
        f"histogram_quantile(0.99, sum by (le) "
        f"(rate({DURATION_BUCKET_METRIC}{{{matcher}}}[{window}])))"
    )


def custom_check_query(query: str, canary_matcher: str, stable_matcher: str) -> str:
    return query.replace("$canary", canary_matcher).replace("$stable", stable_matcher)


def build_queries(
    analysis: Analysis, window_seconds: int, canary_matcher: str, stable_matcher: str
) -> dict[str, str]:
    """Measurement key → PromQL. Custom checks appear under `custom:<name>`."""
    window = f"{window_seconds}s"
    queries = {
        CANARY_REQUESTS: f"sum(increase({REQUESTS_METRIC}{{{canary_matcher}}}[{window}]))",
        CANARY_ERRORS: (
            f'sum(increase({REQUESTS_METRIC}{{{canary_matcher},code=~"5.."}}[{window}]))'
        ),
        CANARY_P99_SECONDS: _p99(canary_matcher, window),
    }
    if analysis.max_p99_latency_increase_percent is not None:
        queries[STABLE_P99_SECONDS] = _p99(stable_matcher, window)
    for check in analysis.custom_checks:
        queries[CUSTOM_PREFIX + str(check["name"])] = custom_check_query(
            str(check["query"]), canary_matcher, stable_matcher
        )
    return queries


def _num(value: float) -> str:
    """Compact human number: 412, 12.5, 3.27, 0.042."""
    magnitude = abs(value)
    if magnitude >= 100:
        text = f"{value:.0f}"
    elif magnitude >= 10:
        text = f"{value:.1f}"
    elif magnitude >= 0.1 or magnitude == 0:
        text = f"{value:.2f}"
    else:
        text = f"{value:.2g}"
    if "." in text and "e" not in text:
        text = text.rstrip("0").rstrip(".")
    return text


def _finite(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) else None


def evaluate(analysis: Analysis, measurements: Mapping[str, float | None]) -> AnalysisResult:
    """The verdict over measured values (keys as in build_queries; None = no sample)."""
    measured = dict(measurements)
    requests = _finite(measured.get(CANARY_REQUESTS)) or 0.0
    if requests < analysis.min_request_count:
        return AnalysisResult(
            None,
            INSUFFICIENT_REQUESTS,
            f"canary served {_num(requests)} requests, fewer than minRequestCount "
            f"{analysis.min_request_count}; analysis waits for more traffic",
            measured,
        )

    failures: list[str] = []
    missing: list[str] = []
    notes: list[str] = []

    errors = _finite(measured.get(CANARY_ERRORS)) or 0.0
    error_percent = 100.0 * errors / requests if requests > 0 else 0.0
    error_text = f"error rate {_num(error_percent)}%"
    if error_percent > analysis.max_error_percent:
        failures.append(
            f"{error_text} > {analysis.max_error_percent}% over {requests:.0f} requests"
        )
    else:
        notes.append(f"{error_text} over {requests:.0f} requests")

    p99 = _finite(measured.get(CANARY_P99_SECONDS))
    p99_ms = p99 * 1000 if p99 is not None else None
    latency_checked = (
        analysis.max_p99_latency_ms is not None
        or analysis.max_p99_latency_increase_percent is not None
    )
    if latency_checked and p99_ms is None and requests > 0:
        missing.append("canary p99 latency has no data")
    if p99_ms is not None and analysis.max_p99_latency_ms is not None:
        if p99_ms > analysis.max_p99_latency_ms:
            failures.append(f"p99 {_num(p99_ms)} ms > {analysis.max_p99_latency_ms} ms")
        else:
            notes.append(f"p99 {_num(p99_ms)} ms")
    elif p99_ms is not None:
        notes.append(f"p99 {_num(p99_ms)} ms")

    limit = analysis.max_p99_latency_increase_percent
    if limit is not None and p99_ms is not None:
        stable = _finite(measured.get(STABLE_P99_SECONDS))
        if stable is None or stable <= 0:
            notes.append("p99 increase not checked: stable revision has no latency data")
        else:
            stable_ms = stable * 1000
            increase = 100.0 * (p99_ms - stable_ms) / stable_ms
            compared = f"p99 {_num(p99_ms)} ms vs stable {_num(stable_ms)} ms"
            if increase > limit:
                failures.append(f"p99 increase {_num(increase)}% > {limit}% ({compared})")
            else:
                notes.append(f"p99 increase {_num(increase)}% ({compared})")

    for check in analysis.custom_checks:
        name = str(check["name"])
        value = _finite(measured.get(CUSTOM_PREFIX + name))
        try:
            maximum = Decimal(str(check["maxValue"]))
        except (InvalidOperation, KeyError):
            missing.append(f"check {name}: maxValue {check.get('maxValue')!r} is not a decimal")
            continue
        if value is None:
            missing.append(f"check {name}: query returned no value")
        elif Decimal(repr(value)) > maximum:
            # six significant digits: thresholds are often close to the value ("0.05")
            failures.append(f"check {name}: {value:.6g} > {maximum}")
        else:
            notes.append(f"check {name}: {value:.6g}")

    if failures:
        return AnalysisResult(False, FAILED, "; ".join(failures), measured)
    if missing:
        return AnalysisResult(None, UNAVAILABLE, "; ".join(missing), measured)
    return AnalysisResult(True, PASSED, "; ".join(notes), measured)


def _joined(*messages: str) -> str:
    return "; ".join(m for m in messages if m)


def with_prediction_shift(base: AnalysisResult, shift: ShiftVerdict | None) -> AnalysisResult:
    """The verdict of the built-in and custom checks joined with the predictionShift one
    (None: nothing to compare). A failure of either fails; otherwise an inconclusive one
    holds the step; a pass needs both."""
    if shift is None:
        return AnalysisResult(
            base.passed, base.reason, _joined(base.message, NO_PREDICTION_COUNTERS),
            base.measurements,
        )  # fmt: skip
    measured = {
        **base.measurements,
        CANARY_PREDICTIONS: shift.canary_count,
        STABLE_PREDICTIONS: shift.stable_count,
        PREDICTION_SHIFT_STATISTIC: shift.statistic,
    }
    if base.passed is False:
        return AnalysisResult(False, base.reason, base.message, measured)
    if shift.passed is False:
        return AnalysisResult(False, PREDICTION_SHIFT, shift.message, measured)
    if base.passed is None:
        return AnalysisResult(None, base.reason, _joined(base.message, shift.message), measured)
    if shift.passed is None:
        return AnalysisResult(None, INSUFFICIENT_REQUESTS, shift.message, measured)
    return AnalysisResult(True, PASSED, _joined(base.message, shift.message), measured)


def analyze(
    analysis: Analysis,
    namespace: str,
    name: str,
    canary_rev: str,
    stable_rev: str,
    query: Query,
    query_bins: BinsQuery | None = None,
) -> AnalysisResult:
    """Queries the metrics of both revisions and evaluates them; the predictionShift check
    runs when it is enabled and `query_bins` is given.

    A PrometheusError (unreachable, timeout, bad answer) gives an inconclusive result with
    reason AnalysisUnavailable instead of an exception.
    """
    window = analysis_window(analysis)
    canary = revision_matcher(namespace, name, canary_rev)
    stable = revision_matcher(namespace, name, stable_rev)
    queries = build_queries(analysis, window, canary, stable)
    measurements: dict[str, float | None] = {}
    for key, promql in queries.items():
        try:
            measurements[key] = _finite(query(promql))
        except PrometheusError as exc:
            return AnalysisResult(
                None, UNAVAILABLE, f"metrics unavailable ({key}): {exc}", measurements
            )
    base = evaluate(analysis, measurements)
    settings = analysis.prediction_shift
    if query_bins is None or not settings.enabled or base.passed is False:
        return base
    if base.reason == INSUFFICIENT_REQUESTS:
        return base  # too little traffic for any check, this one included
    try:
        canary_bins = query_bins(prediction_shift.bins_query(canary, window))
        stable_bins = query_bins(prediction_shift.bins_query(stable, window))
    except PrometheusError as exc:
        return AnalysisResult(
            None, UNAVAILABLE, f"metrics unavailable (predictionShift): {exc}", measurements
        )
    return with_prediction_shift(
        base, prediction_shift.evaluate(settings, canary_bins, stable_bins)
    )
