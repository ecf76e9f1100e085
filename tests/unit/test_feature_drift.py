"""Drift as status without a cluster: the DriftDetected condition from window and reference
counts, its queries, the recording rules (run by promtool on synthetic series) and the
PrometheusRule rendered where its CRD exists."""

from __future__ import annotations

import math
import subprocess
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from modelroll.config import OperatorConfig
from modelroll.distribution_test import PSI_SMOOTHING, psi
from modelroll.feature_drift import (
    LABELS,
    PSI_RECORD,
    Counts,
    evaluate,
    measure,
    pending,
    previous,
    recording_rules,
)
from modelroll.prometheus import PrometheusError
from modelroll.render import Owner, RenderContext, render_children
from modelroll.spec import Drift, parse_spec

from tests.unit.test_observability import promtool

SETTINGS = Drift()
BINS = [str(i) for i in range(10)]
REFERENCE: Counts = {
    **{("sepal_length", b): 100.0 for b in BINS},
    **{("color", c): n for c, n in (("red", 600.0), ("blue", 300.0), ("__other__", 100.0))},
}


def live(shift_sepal: bool = False, rows: int = 1000) -> Counts:
    scale = rows / 1000
    sepal = [30.0] * 5 + [170.0] * 5 if shift_sepal else [100.0] * 10
    return {
        **{("sepal_length", b): v * scale for b, v in zip(BINS, sepal, strict=True)},
        ("color", "red"): 600.0 * scale,
        ("color", "blue"): 300.0 * scale,
        ("color", "__other__"): 100.0 * scale,
    }


def test_a_shifted_feature_is_named_with_its_scores() -> None:
    condition = evaluate(SETTINGS, "r1", live(shift_sepal=True), REFERENCE)
    assert (condition.type, condition.status, condition.reason) == (
        "DriftDetected",
        True,
        "DriftDetected",
    )
    assert condition.message.startswith(
        "revision r1 over the last 3600s: drift in 1 of 2 features at significance 0.01: "
        "sepal_length (chi-square "
    ), condition.message
    assert "> 21.7, p=" in condition.message and "1,000 rows)" in condition.message
    assert "color" not in condition.message


def test_no_drift_names_the_closest_feature() -> None:
    condition = evaluate(SETTINGS, "r1", live(), REFERENCE)
    assert (condition.status, condition.reason) == (False, "NoDrift")
    assert condition.message.startswith(
        "revision r1 over the last 3600s: no drift in 2 features at significance 0.01 "
        "(1,000 rows; closest "
    ), condition.message


def test_too_few_rows_is_unknown_not_enough_data() -> None:
    condition = evaluate(SETTINGS, "r1", live(rows=50), REFERENCE)
    assert (condition.status, condition.reason) == (None, "NotEnoughData")
    assert condition.message == (
        "revision r1 over the last 3600s: not enough data for any of 2 features "
        "(50 rows, minSamples 200)"
    )


def test_a_reference_smaller_than_min_samples_says_so_whatever_the_traffic() -> None:
    """No window can reach minSamples on the reference's side: the message names the
    reference and the two ways out, not the live row count."""
    small = {key: value / 10 for key, value in REFERENCE.items()}  # 100 rows per feature
    condition = evaluate(SETTINGS, "r1", live(rows=100000), small)
    assert (condition.status, condition.reason) == (None, "NotEnoughData")
    assert condition.message == (
        "revision r1 over the last 3600s: the model's reference profile holds 100 rows, "
        "fewer than minSamples 200; package it with a larger reference sample or lower "
        "spec.monitoring.drift.minSamples"
    )
    assert evaluate(replace(SETTINGS, min_samples=100), "r1", live(), small).reason == "NoDrift"


def test_no_reference_in_the_metrics_is_not_enough_data() -> None:
    condition = evaluate(SETTINGS, "r1", {}, {})
    assert (condition.status, condition.reason) == (None, "NotEnoughData")
    assert "no reference profile in the metrics" in condition.message


def test_the_worst_features_come_first() -> None:
    petal: dict[tuple[str, ...], float] = {("petal", b): 100.0 for b in BINS}
    reference = {**REFERENCE, **petal}
    window = {**live(shift_sepal=True), **petal}
    window[("petal", "0")] = 250.0  # a smaller shift than sepal_length's
    condition = evaluate(SETTINGS, "r1", window, reference)
    assert condition.status is True
    assert condition.message.index("sepal_length (") < condition.message.index("petal (")


def test_the_condition_is_kept_between_evaluations_for_the_same_revision() -> None:
    status = {
        "conditions": [
            {
                "type": "DriftDetected",
                "status": "True",
                "reason": "DriftDetected",
                "message": "revision r1 over the last 3600s: drift in 1 of 2 features ...",
            }
        ]
    }
    kept = previous(status, "r1")
    assert (kept.status, kept.reason) == (True, "DriftDetected")
    assert previous(status, "r2") == pending("r2")  # a new stable revision starts unknown
    assert previous({}, "r1").status is None


def test_measure_queries_one_revisions_series_and_never_raises() -> None:
    asked: list[str] = []

    def query(promql: str, labels: tuple[str, ...]) -> dict[tuple[str, ...], float]:
        asked.append(promql)
        assert labels == LABELS
        return dict(live() if "offset" in promql else REFERENCE)

    condition = measure(SETTINGS, "team-a", "iris", "r1", query)
    assert condition.reason == "NoDrift"
    assert asked == [
        'sum by (feature, bin) (clamp_min(modelroll_feature_values_total{namespace="team-a",'
        'model="iris",revision="r1"} - modelroll_feature_values_total{namespace="team-a",'
        'model="iris",revision="r1"} offset 3600s, 0) or modelroll_feature_values_total'
        '{namespace="team-a",model="iris",revision="r1"})',
        'max by (feature, bin) (modelroll_feature_reference{namespace="team-a",model="iris",'
        'revision="r1"})',
    ]

    def failing(promql: str, labels: tuple[str, ...]) -> dict[tuple[str, ...], float]:
        raise PrometheusError("Prometheus at http://prom:9090 is unreachable: refused")

    down = measure(SETTINGS, "team-a", "iris", "r1", failing)
    assert (down.status, down.reason) == (None, "MetricsUnavailable")


# --- recording rules -----------------------------------------------------------------------


def test_promtool_accepts_the_recording_rules(tmp_path: Path) -> None:
    rules = tmp_path / "rules.yaml"
    rules.write_text(
        yaml.safe_dump({"groups": [{"name": "drift", "rules": recording_rules("ns", "iris", 600)}]})
    )
    result = subprocess.run(
        [promtool(), "check", "rules", str(rules)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_recorded_psi_is_the_smoothed_psi_of_the_window_against_the_reference(
    tmp_path: Path,
) -> None:
    """Counters grow for 20 minutes on synthetic series; promtool evaluates the rules and
    the recorded PSI must equal distribution_test.psi with half a count per bin."""
    window_seconds = 600
    reference = {"0": 50.0, "1": 30.0, "2": 20.0}
    per_minute = {"0": 2.0, "1": 3.0, "2": 5.0}  # a shifted live distribution
    target = 'namespace="ns",model="iris",revision="r1",pod="p1"'
    series = [
        {
            "series": f'modelroll_feature_values_total{{{target},feature="f",bin="{b}"}}',
            "values": f"0+{v}x20",
        }
        for b, v in per_minute.items()
    ] + [
        {
            "series": f'modelroll_feature_reference{{{target},feature="f",bin="{b}"}}',
            "values": f"{v}x20",
        }
        for b, v in reference.items()
    ]
    window = [per_minute[b] * window_seconds / 60 for b in sorted(per_minute)]
    expected = psi(window, [reference[b] for b in sorted(reference)], PSI_SMOOTHING)
    rules = tmp_path / "rules.yaml"
    rules.write_text(
        yaml.safe_dump(
            {"groups": [{"name": "drift", "rules": recording_rules("ns", "iris", window_seconds)}]}
        )
    )
    tests = tmp_path / "tests.yaml"
    tests.write_text(
        yaml.safe_dump(
            {
                "rule_files": [str(rules)],
                "evaluation_interval": "1m",
                "tests": [
                    {
                        "interval": "1m",
                        "input_series": series,
                        "promql_expr_test": [
                            {
                                "expr": f'{PSI_RECORD}{{feature="f"}}',
                                "eval_time": "15m",
                                "exp_samples": [
                                    {
                                        "labels": f'{PSI_RECORD}{{namespace="ns",model="iris",'
                                        'revision="r1",feature="f"}',
                                        "value": expected,
                                    }
                                ],
                            }
                        ],
                    }
                ],
            }
        )
    )
    result = subprocess.run(
        [promtool(), "test", "rules", str(tests)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert math.isfinite(expected) and expected > 0.1


def _spec(**monitoring: Any) -> dict[str, Any]:
    return {
        "model": {"format": "sklearn", "uri": "s3://models/iris/"},
        **({"monitoring": monitoring} if monitoring else {}),
    }


def _kinds(spec: dict[str, Any], rules: bool) -> dict[str, dict[str, Any]]:
    context = RenderContext(OperatorConfig(), prometheus_rule_available=rules)
    return {m["kind"]: m for m in render_children(_owner(), spec, "r1", context)}


def _owner() -> Owner:
    return Owner("iris", "team-a", "uid-1")


def test_the_prometheus_rule_is_rendered_only_with_drift_and_its_crd() -> None:
    assert "PrometheusRule" not in _kinds(_spec(), rules=True)
    assert "PrometheusRule" not in _kinds(_spec(drift={"windowSeconds": 600}), rules=False)
    rule = _kinds(_spec(drift={"windowSeconds": 600}), rules=True)["PrometheusRule"]
    assert rule["metadata"]["name"] == "iris-drift"
    assert rule["metadata"]["ownerReferences"][0]["uid"] == "uid-1"
    (group,) = rule["spec"]["groups"]
    assert group["rules"] == recording_rules("team-a", "iris", 600)
    for item in group["rules"]:
        assert 'namespace="team-a",model="iris"' in item["expr"]


def test_drift_settings_parse_with_their_defaults() -> None:
    spec = parse_spec(_spec(drift={}))
    assert spec.drift == Drift("", 3600, 300, "0.01", 200)
    assert replace(SETTINGS) == spec.drift
    assert parse_spec(_spec()).drift is None
    assert np.isclose(float(spec.drift.significance), 0.01)
