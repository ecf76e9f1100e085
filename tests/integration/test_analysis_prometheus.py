"""Canary analysis against a real Prometheus scraping real runtime processes.

No Kubernetes: four runtime processes serve the same iris model (trained here) and play the
revisions of one ModelDeployment, and a real Prometheus (Debian's package binary) scrapes
them every second with the target labels `namespace` and `revision`, as the operator's
ServiceMonitor does in a cluster:

- `stable` and `good`: healthy, for the passing analysis;
- `bad`: started with MODELROLL_MAX_INFLIGHT=1 and hit by 8 concurrent clients, so the
  runtime's backpressure answers a share of them 503 (the documented overload answer);
- `idle`: gets a handful of requests, too few for minRequestCount.

Each revision's traffic belongs to one test, so the 30 s query windows never mix tests. The
tests wait until Prometheus shows exactly the number of requests the clients sent before
they analyze, instead of sleeping.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import pytest
from modelroll.analysis import (
    CANARY_ERRORS,
    CANARY_P99_SECONDS,
    CANARY_REQUESTS,
    FAILED,
    INSUFFICIENT_REQUESTS,
    PASSED,
    STABLE_P99_SECONDS,
    UNAVAILABLE,
    analyze,
    revision_matcher,
)
from modelroll.prometheus import PrometheusClient, PrometheusError
from modelroll.spec import Analysis

from tests.runtime.models import train_sklearn
from tests.runtime.runtime_process import RuntimeProcess, free_port
from tests.support.prometheus import (
    PrometheusServer,
    drive_traffic,
    require_prometheus,
    start_runtime,
)

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

NAMESPACE = "analysis-e2e"
MODEL = "iris"
INFER = f"/v2/models/{MODEL}/infer"
BODY = json.dumps(
    {"inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP64", "data": [5.1, 3.5, 1.4, 0.2]}]}
).encode()
REVISIONS: dict[str, dict[str, str]] = {
    "stable": {"version": "1"},
    "good": {"version": "2"},
    "bad": {"version": "2", "MODELROLL_MAX_INFLIGHT": "1"},
    "idle": {"version": "2"},
}


@dataclass
class Stack:
    prometheus: PrometheusServer
    runtimes: dict[str, RuntimeProcess]

    def requests_seen(self, revision: str) -> float | None:
        """The raw counter sum (not a rate) of one revision, as Prometheus last scraped it."""
        matcher = revision_matcher(NAMESPACE, MODEL, revision)
        return self.prometheus.client().query(f"sum(modelroll_requests_total{{{matcher}}})")

    def wait_history(self, selector: str, samples: int) -> None:
        """Waits until every series of `selector` has `samples` scrapes in the last minute.

        increase() extrapolates from the first to the last sample in its window out to the
        window's edge; over a series only a couple of scrapes old that stretches the result
        by tens of percent. A history of several scrapes keeps it to a few percent.
        """
        self.prometheus.wait_value(
            f"min(count_over_time({selector}[1m]))",
            lambda value: value is not None and value >= samples,
            timeout=60,
            what=f"{samples} scrapes of {selector}",
        )

    def wait_requests_seen(self, revision: str, expected: int) -> None:
        matcher = revision_matcher(NAMESPACE, MODEL, revision)
        self.prometheus.wait_value(
            f"sum(modelroll_requests_total{{{matcher}}})",
            lambda value: value == expected,
            timeout=60,
            what=f"requests of revision {revision} (expected {expected})",
        )


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    require_prometheus()  # before starting anything for it to scrape
    tmp = tmp_path_factory.mktemp("analysis")
    model = train_sklearn(tmp / "model")
    runtimes: dict[str, RuntimeProcess] = {}
    prometheus: PrometheusServer | None = None
    try:
        for revision, settings in REVISIONS.items():
            env = {k: v for k, v in settings.items() if k.startswith("MODELROLL_")}
            runtimes[revision] = start_runtime(
                model.directory,
                tmp / f"runtime-{revision}.log",
                tmp / "cache",  # shared: the model is compiled to ONNX once, under a lock
                model_name=MODEL,
                version=settings["version"],
                **env,
            )
        for runtime in runtimes.values():
            runtime.wait_ready(timeout=120)
        prometheus = PrometheusServer(
            tmp / "prometheus",
            [
                (f"127.0.0.1:{runtime.port}", {"namespace": NAMESPACE, "revision": revision})
                for revision, runtime in runtimes.items()
            ],
        ).start()
        prometheus.wait_targets_up([f"127.0.0.1:{r.port}" for r in runtimes.values()])
        stack = Stack(prometheus, runtimes)
        # The runtime creates a counter series at its first request, and increase() cannot
        # count what a series held at its first scrape. One request per revision, scraped
        # before any test's traffic, gives every 200-series a baseline.
        for runtime in runtimes.values():
            assert runtime.post_json(INFER, json.loads(BODY)).status == 200
        for revision in runtimes:
            stack.wait_requests_seen(revision, 1)
        stack.wait_history(f'modelroll_requests_total{{namespace="{NAMESPACE}"}}', 10)
        yield stack
    finally:
        if prometheus is not None:
            prometheus.stop()
        for runtime in runtimes.values():
            if runtime.process is not None:
                runtime.stop()


def _traffic(stack: Stack, revision: str, requests: int, threads: int) -> dict[int, int]:
    runtime = stack.runtimes[revision]
    counts = drive_traffic(
        runtime.port, INFER, BODY, requests=requests, threads=threads, max_seconds=20
    )
    assert counts[0] == 0, f"connection errors talking to {revision}: {counts}"
    return dict(counts)


def test_healthy_canary_passes(stack: Stack) -> None:
    with ThreadPoolExecutor(2) as pool:
        stable_future = pool.submit(_traffic, stack, "stable", 300, 2)
        canary_future = pool.submit(_traffic, stack, "good", 300, 2)
        stable_counts, canary_counts = stable_future.result(), canary_future.result()
    assert set(stable_counts) == {200} and set(canary_counts) == {200}
    canary_sent = canary_counts[200]
    stack.wait_requests_seen("stable", 1 + stable_counts[200])
    stack.wait_requests_seen("good", 1 + canary_sent)

    analysis = Analysis(
        interval_seconds=5,  # window max(5, 30) = 30 s
        max_error_percent=1,
        max_p99_latency_ms=5000,
        # both revisions run the same model; the bound only keeps a loaded CI machine's
        # scheduling noise from failing the test, the query itself is what is exercised
        max_p99_latency_increase_percent=100_000,
        min_request_count=100,
        custom_checks=(
            {
                "name": "canary-non-2xx",
                "query": 'sum(increase(modelroll_requests_total{$canary,code!~"2.."}[30s]))'
                " or vector(0)",
                "maxValue": "0",
            },
            {
                "name": "canary-to-stable-requests",
                "query": "sum(increase(modelroll_requests_total{$canary}[30s]))"
                " / sum(increase(modelroll_requests_total{$stable}[30s]))",
                "maxValue": "3",
            },
        ),
    )
    result = analyze(analysis, NAMESPACE, MODEL, "good", "stable", stack.prometheus.client().query)

    assert result.passed is True, result
    assert result.reason == PASSED
    measured = result.measurements
    requests = measured[CANARY_REQUESTS]
    # increase() extrapolates to the window's edges, more so for a young series: it reads
    # somewhat high, never low, since the window holds a sample from before the traffic
    assert requests is not None and canary_sent <= requests <= 1.5 * canary_sent, measured
    assert not measured[CANARY_ERRORS], measured  # no 5xx series at all, or 0
    canary_p99, stable_p99 = measured[CANARY_P99_SECONDS], measured[STABLE_P99_SECONDS]
    assert canary_p99 is not None and 0 < canary_p99 < 5, measured
    assert stable_p99 is not None and 0 < stable_p99 < 5, measured
    assert measured["custom:canary-non-2xx"] == 0, measured
    ratio = measured["custom:canary-to-stable-requests"]
    assert ratio is not None and 0.5 < ratio < 2, measured
    assert f"error rate 0% over {requests:.0f} requests" in result.message
    assert "p99 increase" in result.message and "check canary-non-2xx: 0" in result.message


def test_overloaded_canary_fails_with_its_error_rate(stack: Stack) -> None:
    # A canary that has been failing for a while: its 503 series already exists and has
    # been scraped. (increase() cannot see what a series held at its first scrape, and the
    # runtime creates the 503 series at the first 503; the docs say so.)
    seen = 1
    for _ in range(20):
        warmup = _traffic(stack, "bad", 40, 8)
        seen += sum(warmup.values())
        if warmup.get(503):
            break
    else:
        raise AssertionError("MODELROLL_MAX_INFLIGHT=1 under 8 clients never answered 503")
    stack.wait_requests_seen("bad", seen)
    bad = revision_matcher(NAMESPACE, MODEL, "bad")
    stack.wait_history(f'modelroll_requests_total{{{bad},code="503"}}', 5)

    counts = _traffic(stack, "bad", 800, 8)
    # the runtime's backpressure (MODELROLL_MAX_INFLIGHT=1) really answered 503s
    assert set(counts) <= {200, 503} and counts.get(503, 0) >= 40, counts
    stack.wait_requests_seen("bad", seen + sum(counts.values()))

    analysis = Analysis(
        interval_seconds=5,
        max_error_percent=1,
        min_request_count=20,
    )
    result = analyze(analysis, NAMESPACE, MODEL, "bad", "stable", stack.prometheus.client().query)

    assert result.passed is False, result
    assert result.reason == FAILED
    measured = result.measurements
    requests, errors = measured[CANARY_REQUESTS], measured[CANARY_ERRORS]
    assert requests is not None and errors is not None, measured
    # increase() extrapolates to the window's edges (high, never low here), and the
    # warm-up burst may share the window
    sent = sum(counts.values())
    assert sent <= requests <= 1.5 * (seen + sent), (measured, counts)
    assert counts[503] <= errors <= 1.5 * (seen + counts[503]), (measured, counts)
    match = re.search(r"error rate ([0-9.]+)% > 1% over (\d+) requests", result.message)
    assert match, result.message
    assert float(match[1]) == pytest.approx(100 * errors / requests, rel=0.05, abs=0.01)
    assert int(match[2]) == round(requests)


def test_too_little_traffic_is_inconclusive(stack: Stack) -> None:
    counts = _traffic(stack, "idle", 5, 1)
    assert counts == {200: 5}
    stack.wait_requests_seen("idle", 6)

    analysis = Analysis(interval_seconds=5, min_request_count=20)
    result = analyze(analysis, NAMESPACE, MODEL, "idle", "stable", stack.prometheus.client().query)

    assert result.passed is None, result
    assert result.reason == INSUFFICIENT_REQUESTS
    requests = result.measurements[CANARY_REQUESTS]
    assert requests is not None and 4 <= requests <= 7, result.measurements
    assert "fewer than minRequestCount 20" in result.message


@pytest.mark.parametrize("where", ["nothing listening", "not a Prometheus"])
def test_unavailable_prometheus_is_inconclusive(stack: Stack, where: str) -> None:
    if where == "nothing listening":
        address = f"http://127.0.0.1:{free_port()}"
    else:  # the runtime answers 404 on /api/v1/query
        address = f"http://127.0.0.1:{stack.runtimes['idle'].port}"
    analysis = Analysis()

    result = analyze(
        analysis, NAMESPACE, MODEL, "good", "stable", PrometheusClient(address, timeout=3).query
    )

    assert result.passed is None
    assert result.reason == UNAVAILABLE
    assert address in result.message
    assert ("unreachable" if where == "nothing listening" else "HTTP 404") in result.message


def test_broken_custom_check_is_inconclusive(stack: Stack) -> None:
    analysis = Analysis(
        min_request_count=0,
        custom_checks=({"name": "typo", "query": "sum(rate(x{$canary}[1m]", "maxValue": "1"},),
    )
    result = analyze(analysis, NAMESPACE, MODEL, "good", "stable", stack.prometheus.client().query)
    assert result.passed is None
    assert result.reason == UNAVAILABLE
    assert "custom:typo" in result.message and "bad_data" in result.message


def test_client_rejects_a_query_with_several_series(stack: Stack) -> None:
    with pytest.raises(PrometheusError, match=r"returned 4 series .* must return one"):
        stack.prometheus.client().query(f'up{{namespace="{NAMESPACE}"}}')
    assert stack.prometheus.client().query('up{revision="no-such"}') is None
    assert stack.prometheus.client().query("scalar(vector(2.5))") == 2.5
