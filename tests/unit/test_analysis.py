"""Canary analysis without Prometheus: the queries it writes and the verdicts it reaches."""

from __future__ import annotations

import http.server
import json
import math
import re
import threading
from collections.abc import Iterator
from dataclasses import replace
from typing import ClassVar

import pytest
from modelroll.analysis import (
    CANARY_ERRORS,
    CANARY_P99_SECONDS,
    CANARY_REQUESTS,
    CUSTOM_CHECKS_DISABLED,
    ENDPOINT_UNKNOWN,
    FAILED,
    INSUFFICIENT_REQUESTS,
    PASSED,
    STABLE_P99_SECONDS,
    UNAVAILABLE,
    AnalysisResult,
    analysis_window,
    analyze,
    build_queries,
    evaluate,
    refusal,
    revision_matcher,
)
from modelroll.prometheus import PrometheusClient, PrometheusError
from modelroll.spec import Analysis, parse_spec

CANARY = 'namespace="ns",model="iris",revision="c1"'
STABLE = 'namespace="ns",model="iris",revision="s1"'
BASE = Analysis(max_error_percent=1, min_request_count=20)


def _measure(
    requests: float | None = 100,
    errors: float | None = 0,
    p99_ms: float | None = 10,
    stable_p99_ms: float | None = None,
    **custom: float | None,
) -> dict[str, float | None]:
    measured: dict[str, float | None] = {
        CANARY_REQUESTS: requests,
        CANARY_ERRORS: errors,
        CANARY_P99_SECONDS: None if p99_ms is None else p99_ms / 1000,
        STABLE_P99_SECONDS: None if stable_p99_ms is None else stable_p99_ms / 1000,
    }
    measured.update({f"custom:{k.replace('_', '-')}": v for k, v in custom.items()})
    return measured


# -- queries --


def test_revision_matcher_uses_the_target_labels_and_the_model_label() -> None:
    assert revision_matcher("ns", "iris", "c1") == CANARY


def test_revision_matcher_escapes_label_values() -> None:
    assert revision_matcher('a"b', "c\\d", "e") == 'namespace="a\\"b",model="c\\\\d",revision="e"'


@pytest.mark.parametrize(
    ("interval", "window"), [(5, 30), (29, 30), (30, 30), (31, 31), (300, 300)]
)
def test_window_is_the_interval_but_at_least_30s(interval: int, window: int) -> None:
    assert analysis_window(replace(BASE, interval_seconds=interval)) == window


def test_built_in_queries_verbatim() -> None:
    queries = build_queries(BASE, 30, CANARY, STABLE)
    assert queries == {
        CANARY_REQUESTS: f"sum(increase(modelroll_requests_total{{{CANARY}}}[30s]))",
        CANARY_ERRORS: f'sum(increase(modelroll_requests_total{{{CANARY},code=~"5.."}}[30s]))',
        CANARY_P99_SECONDS: "histogram_quantile(0.99, sum by (le) "
        f"(rate(modelroll_request_duration_seconds_bucket{{{CANARY}}}[30s])))",
    }


def test_stable_p99_is_queried_only_for_the_increase_check() -> None:
    queries = build_queries(replace(BASE, max_p99_latency_increase_percent=50), 45, CANARY, STABLE)
    assert queries[STABLE_P99_SECONDS] == (
        "histogram_quantile(0.99, sum by (le) "
        f"(rate(modelroll_request_duration_seconds_bucket{{{STABLE}}}[45s])))"
    )
    assert "[45s]" in queries[CANARY_REQUESTS]
    assert STABLE_P99_SECONDS not in build_queries(
        replace(BASE, max_p99_latency_ms=100), 30, CANARY, STABLE
    )


def test_custom_checks_get_both_matchers_substituted() -> None:
    check = {
        "name": "ratio",
        "query": 'sum(rate(x{$canary}[1m])) / sum(rate(x{$stable, code="200"}[1m]))',
        "maxValue": "2",
    }
    queries = build_queries(replace(BASE, custom_checks=(check,)), 30, CANARY, STABLE)
    assert queries["custom:ratio"] == (
        f'sum(rate(x{{{CANARY}}}[1m])) / sum(rate(x{{{STABLE}, code="200"}}[1m]))'
    )


# -- evaluate: traffic --


def test_too_few_requests_is_inconclusive() -> None:
    result = evaluate(BASE, _measure(requests=19, errors=19))
    assert result.passed is None
    assert result.reason == INSUFFICIENT_REQUESTS
    assert "canary served 19 requests, fewer than minRequestCount 20" in result.message


@pytest.mark.parametrize("requests", [None, math.nan])
def test_no_request_data_counts_as_zero_requests(requests: float | None) -> None:
    result = evaluate(BASE, _measure(requests=requests, errors=None, p99_ms=None))
    assert (result.passed, result.reason) == (None, INSUFFICIENT_REQUESTS)
    assert "served 0 requests" in result.message


def test_exactly_min_request_count_is_enough() -> None:
    assert evaluate(BASE, _measure(requests=20)).passed is True


def test_min_request_count_zero_passes_without_traffic() -> None:
    analysis = replace(BASE, min_request_count=0, max_p99_latency_ms=100)
    result = evaluate(analysis, _measure(requests=None, errors=None, p99_ms=None))
    assert result.passed is True, result
    assert "error rate 0% over 0 requests" in result.message


# -- evaluate: error rate --


def test_error_rate_above_the_limit_fails_with_the_numbers() -> None:
    result = evaluate(BASE, _measure(requests=80, errors=10))
    assert result.passed is False
    assert result.reason == FAILED
    assert result.message == "error rate 12.5% > 1% over 80 requests"


def test_error_rate_at_the_limit_passes() -> None:
    result = evaluate(BASE, _measure(requests=200, errors=2))
    assert result.passed is True
    assert result.reason == PASSED
    assert "error rate 1% over 200 requests" in result.message


def test_error_rate_just_above_the_limit_fails() -> None:
    result = evaluate(BASE, _measure(requests=200, errors=2.02))
    assert result.passed is False
    assert "error rate 1.01% > 1% over 200 requests" in result.message


def test_no_error_series_means_no_errors() -> None:
    result = evaluate(BASE, _measure(errors=None))
    assert result.passed is True
    assert "error rate 0% over 100 requests" in result.message


def test_zero_error_budget() -> None:
    analysis = replace(BASE, max_error_percent=0)
    assert evaluate(analysis, _measure(errors=0)).passed is True
    assert evaluate(analysis, _measure(requests=1000, errors=1)).message == (
        "error rate 0.1% > 0% over 1000 requests"
    )


def test_extrapolated_counts_are_shown_rounded() -> None:
    result = evaluate(BASE, _measure(requests=80.4, errors=10.05))
    assert result.message == "error rate 12.5% > 1% over 80 requests"


# -- evaluate: latency --


def test_p99_above_the_limit_fails() -> None:
    result = evaluate(replace(BASE, max_p99_latency_ms=250), _measure(p99_ms=412.2))
    assert result.passed is False
    assert result.message == "p99 412 ms > 250 ms"


def test_p99_at_the_limit_passes() -> None:
    result = evaluate(replace(BASE, max_p99_latency_ms=250), _measure(p99_ms=250))
    assert result.passed is True
    assert "p99 250 ms" in result.message


def test_p99_without_data_is_inconclusive_when_latency_is_checked() -> None:
    result = evaluate(replace(BASE, max_p99_latency_ms=250), _measure(p99_ms=None))
    assert (result.passed, result.reason) == (None, UNAVAILABLE)
    assert "canary p99 latency has no data" in result.message


def test_p99_without_data_is_irrelevant_when_latency_is_not_checked() -> None:
    assert evaluate(BASE, _measure(p99_ms=None)).passed is True


def test_p99_increase_above_the_limit_fails() -> None:
    analysis = replace(BASE, max_p99_latency_increase_percent=50)
    result = evaluate(analysis, _measure(p99_ms=75, stable_p99_ms=30))
    assert result.passed is False
    assert result.message == "p99 increase 150% > 50% (p99 75 ms vs stable 30 ms)"


def test_p99_increase_at_the_limit_passes() -> None:
    analysis = replace(BASE, max_p99_latency_increase_percent=50)
    result = evaluate(analysis, _measure(p99_ms=45, stable_p99_ms=30))
    assert result.passed is True
    assert "p99 increase 50% (p99 45 ms vs stable 30 ms)" in result.message


def test_faster_canary_passes_the_increase_check() -> None:
    analysis = replace(BASE, max_p99_latency_increase_percent=0)
    result = evaluate(analysis, _measure(p99_ms=20, stable_p99_ms=30))
    assert result.passed is True
    assert "p99 increase -33.3%" in result.message


@pytest.mark.parametrize("stable", [None, math.nan, 0.0])
def test_stable_without_latency_data_skips_the_increase_check(stable: float | None) -> None:
    analysis = replace(BASE, max_p99_latency_increase_percent=10)
    measured = _measure(p99_ms=500)
    measured[STABLE_P99_SECONDS] = stable
    result = evaluate(analysis, measured)
    assert result.passed is True
    assert "p99 increase not checked: stable revision has no latency data" in result.message


def test_every_failure_is_reported() -> None:
    analysis = replace(BASE, max_p99_latency_ms=100, max_p99_latency_increase_percent=10)
    result = evaluate(analysis, _measure(requests=50, errors=25, p99_ms=200, stable_p99_ms=100))
    assert result.passed is False
    assert result.message == (
        "error rate 50% > 1% over 50 requests; p99 200 ms > 100 ms; "
        "p99 increase 100% > 10% (p99 200 ms vs stable 100 ms)"
    )


def test_sub_millisecond_latencies_keep_their_digits() -> None:
    result = evaluate(replace(BASE, max_p99_latency_ms=1), _measure(p99_ms=0.042))
    assert "p99 0.042 ms" in result.message


# -- evaluate: custom checks --

CHECK = {"name": "queue-depth", "query": "max(q{$canary})", "maxValue": "0.05"}


def test_custom_check_above_max_value_fails() -> None:
    result = evaluate(replace(BASE, custom_checks=(CHECK,)), _measure(queue_depth=0.0501))
    assert result.passed is False
    assert result.message == "check queue-depth: 0.0501 > 0.05"


def test_custom_check_at_max_value_passes_decimal_exact() -> None:
    result = evaluate(replace(BASE, custom_checks=(CHECK,)), _measure(queue_depth=0.05))
    assert result.passed is True
    assert "check queue-depth: 0.05" in result.message


def test_custom_check_just_above_max_value_fails() -> None:
    result = evaluate(replace(BASE, custom_checks=(CHECK,)), _measure(queue_depth=0.050001))
    assert result.passed is False
    assert result.reason == FAILED
    assert result.message.startswith("check queue-depth: ")
    assert result.message.endswith(" > 0.05")


def test_custom_check_negative_max_value() -> None:
    check = {**CHECK, "maxValue": "-1"}
    assert evaluate(replace(BASE, custom_checks=(check,)), _measure(queue_depth=-2)).passed
    assert not evaluate(replace(BASE, custom_checks=(check,)), _measure(queue_depth=0)).passed


@pytest.mark.parametrize("value", [None, math.nan, math.inf])
def test_custom_check_without_a_value_is_inconclusive(value: float | None) -> None:
    result = evaluate(replace(BASE, custom_checks=(CHECK,)), _measure(queue_depth=value))
    assert (result.passed, result.reason) == (None, UNAVAILABLE)
    assert result.message == "check queue-depth: query returned no value"


def test_a_failure_outweighs_an_inconclusive_check() -> None:
    result = evaluate(replace(BASE, custom_checks=(CHECK,)), _measure(errors=50, queue_depth=None))
    assert result.passed is False
    assert result.message == "error rate 50% > 1% over 100 requests"


def test_custom_checks_are_skipped_while_traffic_is_insufficient() -> None:
    result = evaluate(replace(BASE, custom_checks=(CHECK,)), _measure(requests=3, queue_depth=9))
    assert result.reason == INSUFFICIENT_REQUESTS


def test_result_keeps_the_measurements() -> None:
    measured = _measure(requests=100, errors=0, p99_ms=12)
    assert evaluate(BASE, measured).measurements == measured


# -- analyze --


class FakePrometheus:
    def __init__(self, answers: dict[str, float | None], fail_on: str = "") -> None:
        self.answers, self.fail_on, self.asked = answers, fail_on, list[str]()

    def query(self, promql: str) -> float | None:
        self.asked.append(promql)
        if self.fail_on and self.fail_on in promql:
            raise PrometheusError("Prometheus at http://prom:9090 is unreachable: refused")
        for needle, value in self.answers.items():
            if needle in promql:
                return value
        return None


def test_analyze_queries_both_revisions_and_evaluates() -> None:
    analysis = replace(
        BASE, max_p99_latency_increase_percent=20, custom_checks=({**CHECK, "maxValue": "10"},)
    )
    prometheus = FakePrometheus(
        {
            "code=~": 1.0,
            "increase(": 500.0,
            'revision="c1"}[30s])))': 0.012,
            'revision="s1"}[30s])))': 0.011,
            "max(q{": 3.0,
        }
    )
    result = analyze(analysis, "ns", "iris", "c1", "s1", prometheus.query)
    assert result == AnalysisResult(
        True,
        PASSED,
        "error rate 0.2% over 500 requests; p99 12 ms; "
        "p99 increase 9.09% (p99 12 ms vs stable 11 ms); check queue-depth: 3",
        {
            CANARY_REQUESTS: 500.0,
            CANARY_ERRORS: 1.0,
            CANARY_P99_SECONDS: 0.012,
            STABLE_P99_SECONDS: 0.011,
            "custom:queue-depth": 3.0,
        },
    )
    assert f"max(q{{{CANARY}}})" in prometheus.asked


def test_analyze_turns_nan_into_missing() -> None:
    prometheus = FakePrometheus({"code=~": 0.0, "increase(": 100.0, "histogram_quantile": math.nan})
    result = analyze(
        replace(BASE, max_p99_latency_ms=5), "ns", "iris", "c1", "s1", prometheus.query
    )
    assert result.measurements[CANARY_P99_SECONDS] is None
    assert (result.passed, result.reason) == (None, UNAVAILABLE)


def test_analyze_never_raises_for_prometheus_errors() -> None:
    prometheus = FakePrometheus({}, fail_on="increase(")
    result = analyze(BASE, "ns", "iris", "c1", "s1", prometheus.query)
    assert result.passed is None
    assert result.reason == UNAVAILABLE
    assert "http://prom:9090 is unreachable" in result.message


def test_analyze_reads_the_analysis_parsed_from_a_spec() -> None:
    spec = parse_spec(
        {
            "model": {"format": "sklearn", "uri": "s3://b/m"},
            "rollout": {
                "strategy": "Canary",
                "canary": {
                    "steps": [{"weight": 10}],
                    "analysis": {
                        "prometheus": {"endpoint": "main"},
                        "intervalSeconds": 60,
                        "customChecks": [
                            {"name": "x", "query": "vector($stable)", "maxValue": "1"}
                        ],
                    },
                },
            },
        }
    )
    assert spec.rollout.canary is not None and spec.rollout.canary.analysis is not None
    prometheus = FakePrometheus({"increase(": 0.0})
    result = analyze(spec.rollout.canary.analysis, "ns", "iris", "c1", "s1", prometheus.query)
    assert result.reason == INSUFFICIENT_REQUESTS
    assert all("[60s]" in q for q in prometheus.asked[:3])
    assert prometheus.asked[-1] == f"vector({STABLE})"


def test_every_built_in_query_reads_only_the_model_deployments_own_series() -> None:
    """Each series selector of each built-in query names the ModelDeployment's namespace,
    model and revision: no built-in check can read another namespace's series."""
    analysis = replace(BASE, max_p99_latency_ms=100, max_p99_latency_increase_percent=20)
    prometheus = FakePrometheus({"increase(": 100.0})
    analyze(analysis, "team-a", "iris", "c1", "s1", prometheus.query)
    assert len(prometheus.asked) == 4
    for promql in prometheus.asked:
        selectors = re.findall(r"[a-z_]+\{([^}]*)\}", promql)
        assert selectors, promql
        for selector in selectors:
            assert selector.startswith('namespace="team-a",model="iris",revision="'), promql


# -- refusal: what the operator's configuration allows --

ENDPOINTS = ("main", "other")
CHECK_ELSEWHERE = {
    "name": "peek",
    "query": 'sum(modelroll_requests_total{namespace="victim"})',
    "maxValue": "1",
}


def test_a_configured_endpoint_and_no_custom_checks_are_allowed() -> None:
    assert refusal(BASE, ENDPOINTS, "main", allow_custom_checks=False) is None
    named = replace(BASE, prometheus_endpoint="other")
    assert refusal(named, ENDPOINTS, "main", allow_custom_checks=False) is None


def test_an_endpoint_the_operator_does_not_configure_fails_naming_it() -> None:
    result = refusal(
        replace(BASE, prometheus_endpoint="elsewhere"), ENDPOINTS, "main", allow_custom_checks=True
    )
    assert result is not None
    assert (result.passed, result.reason) == (False, ENDPOINT_UNKNOWN)
    assert '"elsewhere" is not a Prometheus endpoint of the operator' in result.message
    assert "configured: main, other" in result.message


def test_without_any_endpoint_configured_analysis_fails() -> None:
    result = refusal(BASE, (), "", allow_custom_checks=True)
    assert result is not None
    assert (result.passed, result.reason) == (False, ENDPOINT_UNKNOWN)
    assert "MODELROLL_PROMETHEUS_ENDPOINTS" in result.message


def test_custom_checks_fail_unless_the_operator_allows_them() -> None:
    analysis = replace(BASE, custom_checks=(CHECK_ELSEWHERE,))
    result = refusal(analysis, ENDPOINTS, "main", allow_custom_checks=False)
    assert result is not None
    assert (result.passed, result.reason) == (False, CUSTOM_CHECKS_DISABLED)
    assert "customChecks (peek)" in result.message and "victim" not in result.message
    assert refusal(analysis, ENDPOINTS, "main", allow_custom_checks=True) is None


# -- the HTTP client, against a stub server on loopback --


class _Stub(http.server.BaseHTTPRequestHandler):
    answers: ClassVar[dict[str, tuple[int, bytes]]] = {}

    def do_GET(self) -> None:
        from urllib.parse import parse_qs, urlsplit

        parts = urlsplit(self.path)
        query = parse_qs(parts.query).get("query", [""])[0]
        status, body = self.answers.get(query, (404, b"not found"))
        if parts.path != "/api/v1/query":
            status, body = 404, b"no route"
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


def _vector(*values: str) -> bytes:
    result = [{"metric": {"i": str(i)}, "value": [1.0, v]} for i, v in enumerate(values)]
    return json.dumps(
        {"status": "success", "data": {"resultType": "vector", "result": result}}
    ).encode()


@pytest.fixture(scope="module")
def stub() -> Iterator[PrometheusClient]:
    _Stub.answers = {
        "one": (200, _vector("42.5")),
        "none": (200, _vector()),
        "two": (200, _vector("1", "2")),
        "nan": (200, _vector("NaN")),
        "scalar": (
            200,
            b'{"status":"success","data":{"resultType":"scalar","result":[1,"7"]}}',
        ),
        "matrix": (200, b'{"status":"success","data":{"resultType":"matrix","result":[]}}'),
        "bad": (400, b'{"status":"error","errorType":"bad_data","error":"parse error at char 4"}'),
        "html": (200, b"<html>hello</html>"),
        "boom": (503, b"overloaded"),
    }
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Stub)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield PrometheusClient(f"http://127.0.0.1:{server.server_address[1]}/", timeout=5)
    server.shutdown()
    server.server_close()


def test_client_returns_the_one_value(stub: PrometheusClient) -> None:
    assert stub.query("one") == 42.5
    assert stub.query("scalar") == 7.0
    assert stub.query("none") is None
    assert math.isnan(stub.query("nan") or 0.0)


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("two", "query returned 2 series"),
        ("matrix", "answered a matrix"),
        ("bad", "answered HTTP 400: bad_data: parse error at char 4"),
        ("html", "invalid JSON"),
        # A body that is not Prometheus's error shape is never quoted (issue 12).
        ("boom", "answered HTTP 503"),
    ],
)
def test_client_errors_name_the_address(stub: PrometheusClient, query: str, message: str) -> None:
    with pytest.raises(PrometheusError) as caught:
        stub.query(query)
    assert message in str(caught.value)
    assert stub.address in str(caught.value)
    assert "overloaded" not in str(caught.value) and "<html>" not in str(caught.value)


def test_client_unreachable() -> None:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    client = PrometheusClient(f"http://127.0.0.1:{port}", timeout=2)
    with pytest.raises(PrometheusError, match=rf"http://127.0.0.1:{port} is unreachable"):
        client.query("up")


def test_client_rejects_a_malformed_address() -> None:
    with pytest.raises(PrometheusError, match="not-a-url"):
        PrometheusClient("not-a-url").query("up")
