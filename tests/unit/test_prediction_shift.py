"""The predictionShift check without Prometheus: its queries, its verdicts, how it joins the
other checks in `analyze`, and the client's per-label query against a stub server."""

from __future__ import annotations

import http.server
import json
import re
import threading
from collections.abc import Iterator
from dataclasses import replace
from typing import Any, ClassVar

import pytest
from modelroll import prometheus
from modelroll.analysis import (
    CANARY_PREDICTIONS,
    FAILED,
    INSUFFICIENT_REQUESTS,
    NO_PREDICTION_COUNTERS,
    PASSED,
    PREDICTION_SHIFT,
    STABLE_PREDICTIONS,
    UNAVAILABLE,
    AnalysisResult,
    analyze,
    with_prediction_shift,
)
from modelroll.prediction_shift import ShiftVerdict, bins_query, evaluate
from modelroll.prometheus import PrometheusClient, PrometheusError
from modelroll.spec import Analysis, PredictionShift, parse_spec
from scipy import stats

SETTINGS = PredictionShift()
STABLE_BINS = {"setosa": 500.0, "versicolor": 300.0, "virginica": 200.0}
SAME_BINS = {"setosa": 250.0, "versicolor": 150.0, "virginica": 100.0}
SHIFTED_BINS = {"setosa": 100.0, "versicolor": 150.0, "virginica": 250.0}


def test_the_query_counts_per_bin_without_extrapolation_and_reads_one_revision() -> None:
    matcher = 'namespace="ns",model="iris",revision="c1"'
    series = f"modelroll_prediction_values_total{{{matcher}}}"
    assert bins_query(matcher, 30) == (
        f"sum by (bin) (clamp_min({series} - {series} offset 30s, 0) or {series})"
    )


def test_the_defaults_are_on_at_one_percent() -> None:
    spec = parse_spec(
        {
            "model": {"format": "sklearn", "uri": "s3://b/m"},
            "rollout": {
                "strategy": "Canary",
                "canary": {"steps": [{"weight": 10}], "analysis": {"prometheus": {}}},
            },
        }
    )
    assert spec.rollout.canary is not None and spec.rollout.canary.analysis is not None
    assert spec.rollout.canary.analysis.prediction_shift == PredictionShift(True, "0.01", 100)


def test_the_same_distribution_passes_with_its_numbers() -> None:
    verdict = evaluate(SETTINGS, SAME_BINS, STABLE_BINS)
    assert verdict is not None and verdict.passed is True
    assert verdict.message.startswith("prediction shift: chi-square 0 <= 9.21 (p=1,")
    assert "over 500 canary and 1,000 stable predictions" in verdict.message


def test_a_shifted_distribution_fails_with_score_threshold_and_counts() -> None:
    verdict = evaluate(SETTINGS, SHIFTED_BINS, STABLE_BINS)
    assert verdict is not None and verdict.passed is False
    table = [
        [SHIFTED_BINS[k] for k in sorted(STABLE_BINS)],
        [STABLE_BINS[k] for k in sorted(STABLE_BINS)],
    ]
    expected = stats.chi2_contingency(table, correction=False)
    assert verdict.statistic == pytest.approx(expected.statistic, abs=1e-9)
    assert verdict.p_value == pytest.approx(expected.pvalue, abs=1e-9)
    # PSI's threshold is (1/500 + 1/1000) x the chi-square(2) critical value 9.21
    assert verdict.message == (
        "prediction shift: chi-square 175 > 9.21 (p=9.98e-39, significance 0.01, 3 bins), "
        "PSI 0.547 (threshold 0.0276), over 500 canary and 1,000 stable predictions"
    )


def test_a_bin_only_one_side_has_counts_as_zero_on_the_other() -> None:
    canary = {"setosa": 250.0, "versicolor": 150.0, "virginica": 50.0, "unseen": 50.0}
    verdict = evaluate(SETTINGS, canary, STABLE_BINS)
    assert verdict is not None and verdict.passed is False and "4 bins" in verdict.message


def test_too_few_predictions_are_inconclusive() -> None:
    verdict = evaluate(SETTINGS, {"setosa": 40.0, "virginica": 9.0}, STABLE_BINS)
    assert verdict is not None and verdict.passed is None
    assert verdict.message == (
        "prediction shift not decided: 49 canary and 1,000 stable predictions in the window, "
        "fewer than 100 samples (minSamples 100); analysis waits for more traffic"
    )


def test_no_counters_on_either_side_is_nothing_to_compare() -> None:
    assert evaluate(SETTINGS, {}, {}) is None


def test_the_significance_is_the_one_configured() -> None:
    # p ≈ 0.0036 for these counts: a failure at 1%, a pass at 0.1%.
    canary = {"a": 560.0, "b": 440.0}
    stable = {"a": 500.0, "b": 500.0}
    strict = evaluate(replace(SETTINGS, significance="0.001"), canary, stable)
    loose = evaluate(SETTINGS, canary, stable)
    assert strict is not None and strict.passed is True and "significance 0.001" in strict.message
    assert loose is not None and loose.passed is False


# -- joining the other checks --

PASSING = AnalysisResult(True, PASSED, "error rate 0% over 500 requests", {})
SHIFTED = ShiftVerdict(False, "prediction shift: …", 500, 1000, 250.0, 1e-50)
SAME = ShiftVerdict(True, "prediction shift: same", 500, 1000, 0.0, 1.0)
FEW = ShiftVerdict(None, "prediction shift not decided: …", 40, 1000)


def test_a_shift_fails_a_canary_that_passes_every_other_check() -> None:
    result = with_prediction_shift(PASSING, SHIFTED)
    assert (result.passed, result.reason, result.message) == (
        False,
        PREDICTION_SHIFT,
        "prediction shift: …",
    )
    assert result.measurements[CANARY_PREDICTIONS] == 500
    assert result.measurements[STABLE_PREDICTIONS] == 1000


def test_another_failure_keeps_its_own_reason() -> None:
    failing = AnalysisResult(False, FAILED, "error rate 12% > 1% over 80 requests", {})
    assert with_prediction_shift(failing, SHIFTED).reason == FAILED


def test_a_shift_fails_even_when_another_check_has_no_data() -> None:
    missing = AnalysisResult(None, UNAVAILABLE, "canary p99 latency has no data", {})
    assert with_prediction_shift(missing, SHIFTED).reason == PREDICTION_SHIFT


def test_too_few_predictions_hold_the_step() -> None:
    result = with_prediction_shift(PASSING, FEW)
    assert (result.passed, result.reason) == (None, INSUFFICIENT_REQUESTS)


def test_a_pass_needs_both_and_lists_both() -> None:
    result = with_prediction_shift(PASSING, SAME)
    assert (result.passed, result.reason) == (True, PASSED)
    assert result.message == "error rate 0% over 500 requests; prediction shift: same"


def test_without_counters_the_other_checks_decide_and_the_message_says_so() -> None:
    result = with_prediction_shift(PASSING, None)
    assert (result.passed, result.reason) == (True, PASSED)
    assert result.message.endswith(NO_PREDICTION_COUNTERS)


# -- analyze with both kinds of query --


class FakePrometheus:
    def __init__(self, bins: dict[str, dict[str, float]], fail: bool = False) -> None:
        self.bins, self.fail, self.asked = bins, fail, list[str]()

    def query(self, promql: str) -> float | None:
        self.asked.append(promql)
        return 0.0 if "code=~" in promql else 500.0

    def query_bins(self, promql: str) -> dict[str, float]:
        self.asked.append(promql)
        if self.fail:
            raise PrometheusError("Prometheus at http://prom:9090 is unreachable: refused")
        revision = re.search(r'revision="([^"]+)"', promql)
        assert revision is not None
        return self.bins.get(revision.group(1), {})


ANALYSIS = Analysis(min_request_count=20)


def test_analyze_aborts_a_shifted_canary_reading_only_its_own_series() -> None:
    prometheus = FakePrometheus({"c1": SHIFTED_BINS, "s1": STABLE_BINS})
    result = analyze(
        ANALYSIS, "team-a", "iris", "c1", "s1", prometheus.query, prometheus.query_bins
    )
    assert (result.passed, result.reason) == (False, PREDICTION_SHIFT)
    shift_queries = [q for q in prometheus.asked if "modelroll_prediction_values_total" in q]
    assert len(shift_queries) == 2
    for promql in shift_queries:
        for selector in re.findall(r"[a-z_]+\{([^}]*)\}", promql):
            assert selector.startswith('namespace="team-a",model="iris",revision="'), promql


def test_analyze_passes_the_same_distribution() -> None:
    prometheus = FakePrometheus({"c1": SAME_BINS, "s1": STABLE_BINS})
    result = analyze(ANALYSIS, "ns", "iris", "c1", "s1", prometheus.query, prometheus.query_bins)
    assert (result.passed, result.reason) == (True, PASSED)
    assert "prediction shift: chi-square" in result.message


def test_analyze_skips_a_disabled_check() -> None:
    prometheus = FakePrometheus({"c1": SHIFTED_BINS, "s1": STABLE_BINS})
    disabled = replace(ANALYSIS, prediction_shift=PredictionShift(enabled=False))
    result = analyze(disabled, "ns", "iris", "c1", "s1", prometheus.query, prometheus.query_bins)
    assert result.passed is True
    assert not any("modelroll_prediction_values_total" in q for q in prometheus.asked)


def test_analyze_turns_a_prometheus_error_into_unavailable() -> None:
    prometheus = FakePrometheus({}, fail=True)
    result = analyze(ANALYSIS, "ns", "iris", "c1", "s1", prometheus.query, prometheus.query_bins)
    assert (result.passed, result.reason) == (None, UNAVAILABLE)
    assert result.message.startswith("metrics unavailable (predictionShift): Prometheus at")


# -- the client's query_by --


class _Stub(http.server.BaseHTTPRequestHandler):
    answer: ClassVar[Any] = {}

    def do_GET(self) -> None:
        body = json.dumps(type(self).answer).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def stub() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Stub)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def _vector(*samples: tuple[dict[str, str], str]) -> Any:
    return {
        "status": "success",
        "data": {
            "resultType": "vector",
            "result": [{"metric": m, "value": [1.0, v]} for m, v in samples],
        },
    }


def test_query_by_returns_each_samples_value_by_its_label(stub: str) -> None:
    _Stub.answer = _vector(({"bin": "a"}, "12"), ({"bin": "b"}, "3.5"))
    assert PrometheusClient(stub).query_by("x", "bin") == {"a": 12.0, "b": 3.5}
    _Stub.answer = _vector()
    assert PrometheusClient(stub).query_by("x", "bin") == {}


@pytest.mark.parametrize(
    "samples",
    [
        [({"other": "a"}, "1")],  # no bin label
        [({"bin": "a"}, "1"), ({"bin": "a"}, "2")],  # the same bin twice
    ],
)
def test_query_by_rejects_series_that_are_not_one_per_bin(
    stub: str, samples: list[tuple[dict[str, str], str]]
) -> None:
    _Stub.answer = _vector(*samples)
    with pytest.raises(PrometheusError, match="without a unique bin label"):
        PrometheusClient(stub).query_by("x", "bin")


def test_query_by_reads_a_bounded_number_of_series(stub: str) -> None:
    _Stub.answer = _vector(*(({"bin": str(i)}, "1") for i in range(prometheus.MAX_SERIES + 1)))
    with pytest.raises(PrometheusError, match="at most 2048 are read"):
        PrometheusClient(stub).query_by("x", "bin")
