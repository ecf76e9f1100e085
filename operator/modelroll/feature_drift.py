"""Drift as status: the stable revision's live inputs, per feature, against the reference.

A model packaged with a reference profile makes the runtime count its input rows per
feature and bin (`modelroll_feature_values_total`) and export the profile's own counts
(`modelroll_feature_reference`), both labelled like every runtime metric (docs/drift.md).
Each feature's window counts go through `modelroll.distribution_test.compare` against the
reference counts; the DriftDetected condition names the worst features (smallest p-value)
with their scores. Too few rows is Unknown with reason NotEnoughData, never a verdict.

Pure: the queries and the condition. The reconciler runs the queries off the resync loop.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from modelroll.analysis import revision_matcher
from modelroll.conditions import Condition, find
from modelroll.distribution_test import (
    FAIL,
    NOT_ENOUGH_DATA,
    Comparison,
    compare,
    parse_significance,
)
from modelroll.prediction_shift import PREDICTION_METRIC, window_counts
from modelroll.prometheus_error import PrometheusError
from modelroll.spec import JSON, Drift

FEATURE_METRIC = "modelroll_feature_values_total"
FEATURE_REFERENCE = "modelroll_feature_reference"
LABELS = ("feature", "bin")
CONDITION = "DriftDetected"
DETECTED = "DriftDetected"
NO_DRIFT = "NoDrift"
NOT_ENOUGH_DATA_REASON = "NotEnoughData"
UNAVAILABLE = "MetricsUnavailable"
ENDPOINT_UNKNOWN = "PrometheusEndpointUnknown"
PENDING = "NotEvaluated"
# How many features the message names.
WORST = 3

Counts = Mapping[tuple[str, ...], float]  # (feature, bin) -> count


def counts_query(matcher: str, window_seconds: int) -> str:
    return window_counts(FEATURE_METRIC, matcher, window_seconds, ", ".join(LABELS))


def reference_query(matcher: str) -> str:
    # max: every pod of the revision exports the same profile
    return f"max by ({', '.join(LABELS)}) ({FEATURE_REFERENCE}{{{matcher}}})"


def pending(revision: str) -> Condition:
    return Condition(CONDITION, None, PENDING, f"revision {revision}: drift not evaluated yet")


def unavailable(error: str) -> Condition:
    return Condition(CONDITION, None, UNAVAILABLE, f"drift not evaluated: {error}")


def refused(endpoint: str, known: list[str]) -> Condition:
    """The operator names no such Prometheus endpoint: nothing is queried."""
    return Condition(
        CONDITION,
        None,
        ENDPOINT_UNKNOWN,
        f'spec.monitoring.drift.prometheus.endpoint "{endpoint}" is not a Prometheus endpoint '
        f"of the operator (configured: {', '.join(known) or 'none'}); nothing was queried",
    )


def previous(status: JSON, revision: str) -> Condition:
    """The condition as the status holds it, while it is about `revision`; else pending."""
    found = find(list(status.get("conditions") or []), CONDITION)
    if found is None or not str(found.get("message", "")).startswith(f"revision {revision} "):
        return pending(revision)
    value = {"True": True, "False": False}.get(str(found.get("status")))
    return Condition(CONDITION, value, str(found.get("reason", "")), str(found["message"]))


@dataclass(frozen=True)
class FeatureResult:
    feature: str
    result: Comparison


def _by_feature(counts: Counts) -> dict[str, dict[str, float]]:
    features: dict[str, dict[str, float]] = {}
    for (feature, bin_), value in counts.items():
        features.setdefault(feature, {})[bin_] = value
    return features


def _n(value: float) -> str:
    return f"{value:.3g}"


def _rows(value: float) -> str:
    return f"{value:,.0f}"


def _score(f: FeatureResult) -> str:
    r = f.result
    return (
        f"{f.feature} (chi-square {_n(r.statistic)} > {_n(r.critical)}, p={_n(r.p_value)}, "
        f"PSI {_n(r.psi)} > {_n(r.psi_threshold)}, {_rows(r.first_count)} rows)"
    )


def evaluate(settings: Drift, revision: str, window: Counts, reference: Counts) -> Condition:
    """The DriftDetected condition of `revision` from its window and reference counts."""
    live, profile = _by_feature(window), _by_feature(reference)
    span = f"revision {revision} over the last {settings.window_seconds}s"
    if not profile:
        return Condition(
            CONDITION,
            None,
            NOT_ENOUGH_DATA_REASON,
            f"{span}: no reference profile in the metrics (the model is not packaged with "
            "one, or its pods are not scraped)",
        )
    reference_rows = max(sum(max(v, 0.0) for v in bins.values()) for bins in profile.values())
    if reference_rows < settings.min_samples:
        # No window is ever enough: the short side is the reference, not the traffic.
        return Condition(
            CONDITION,
            None,
            NOT_ENOUGH_DATA_REASON,
            f"{span}: the model's reference profile holds {_rows(reference_rows)} rows, fewer "
            f"than minSamples {settings.min_samples}; package it with a larger reference "
            "sample or lower spec.monitoring.drift.minSamples",
        )
    significance = parse_significance(settings.significance)
    results: list[FeatureResult] = []
    for feature in sorted(profile):
        bins = sorted(set(profile[feature]) | set(live.get(feature, {})))
        first = [max(live.get(feature, {}).get(b, 0.0), 0.0) for b in bins]
        second = [max(profile[feature].get(b, 0.0), 0.0) for b in bins]
        results.append(
            FeatureResult(feature, compare(first, second, significance, settings.min_samples))
        )
    decided = [f for f in results if f.result.verdict != NOT_ENOUGH_DATA]
    rows = max((f.result.first_count for f in results), default=0.0)
    if not decided:
        return Condition(
            CONDITION,
            None,
            NOT_ENOUGH_DATA_REASON,
            f"{span}: not enough data for any of {len(results)} features ({_rows(rows)} rows, "
            f"minSamples {settings.min_samples})",
        )
    decided.sort(key=lambda f: (f.result.p_value, -f.result.statistic, f.feature))
    drifted = [f for f in decided if f.result.verdict == FAIL]
    undecided = [f.feature for f in results if f.result.verdict == NOT_ENOUGH_DATA]
    note = f"; not enough data for {', '.join(undecided)}" if undecided else ""
    if drifted:
        named = ", ".join(_score(f) for f in drifted[:WORST])
        more = f" and {len(drifted) - WORST} more" if len(drifted) > WORST else ""
        return Condition(
            CONDITION,
            True,
            DETECTED,
            f"{span}: drift in {len(drifted)} of {len(results)} features at significance "
            f"{settings.significance}: {named}{more}{note}",
        )
    closest = decided[0]
    return Condition(
        CONDITION,
        False,
        NO_DRIFT,
        f"{span}: no drift in {len(decided)} features at significance {settings.significance} "
        f"({_rows(rows)} rows; closest {closest.feature}: p={_n(closest.result.p_value)}, "
        f"PSI {_n(closest.result.psi)}){note}",
    )


LabelsQuery = Callable[[str, tuple[str, ...]], dict[tuple[str, ...], float]]


def measure(
    settings: Drift, namespace: str, name: str, revision: str, query: LabelsQuery
) -> Condition:
    """Queries the revision's window and reference counts and evaluates them; a
    PrometheusError gives an Unknown condition (MetricsUnavailable) instead of an exception."""
    matcher = revision_matcher(namespace, name, revision)
    try:
        window = query(counts_query(matcher, settings.window_seconds), LABELS)
        reference = query(reference_query(matcher), LABELS)
    except PrometheusError as exc:
        return unavailable(str(exc))
    return evaluate(settings, revision, window, reference)


# --- recording rules (a PrometheusRule, where the operator finds its CRD) ------------------

WINDOW_RECORD = "modelroll:feature_values:window"
REFERENCE_RECORD = "modelroll:feature_reference:max"
PREDICTION_RECORD = "modelroll:prediction_values:window"
PSI_RECORD = "modelroll:feature_psi:window"
_BY_BIN = "namespace, model, revision, feature, bin"
_BY_FEATURE = "namespace, model, revision, feature"


def _share(counts: str) -> str:
    return f"{counts} / on ({_BY_FEATURE}) group_left sum by ({_BY_FEATURE}) ({counts})"


def recording_rules(namespace: str, name: str, window_seconds: int) -> list[JSON]:
    """The inputs of the drift test per feature and bin, recorded over the window for
    dashboards and alerts, and each feature's PSI against the reference (smoothed by half a
    count per bin, over the profile's bins; the condition's test pools sparse bins instead)."""
    selector = f'namespace="{namespace}",model="{name}"'
    window = window_counts(FEATURE_METRIC, selector, window_seconds, _BY_BIN)
    predictions = window_counts(
        PREDICTION_METRIC, selector, window_seconds, "namespace, model, revision, bin"
    )
    live = f"(({WINDOW_RECORD}{{{selector}}} or {REFERENCE_RECORD}{{{selector}}} * 0) + 0.5)"
    reference = f"({REFERENCE_RECORD}{{{selector}}} + 0.5)"
    p, q = _share(live), _share(reference)
    return [
        {"record": WINDOW_RECORD, "expr": window},
        {"record": PREDICTION_RECORD, "expr": predictions},
        {
            "record": REFERENCE_RECORD,
            "expr": f"max by ({_BY_BIN}) ({FEATURE_REFERENCE}{{{selector}}})",
        },
        {
            "record": PSI_RECORD,
            "expr": f"sum by ({_BY_FEATURE}) (({p} - {q}) * ln(({p}) / ({q})))",
        },
    ]
