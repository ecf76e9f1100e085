"""The operator's own Prometheus metrics."""

from __future__ import annotations

import threading

from prometheus_client import Counter, Gauge, Histogram, start_http_server

RECONCILES = Counter("modelroll_operator_reconcile_total", "Reconciles run, by result.", ["result"])
RECONCILE_ERRORS = Counter(
    "modelroll_operator_reconcile_errors_total", "Reconciles that raised an error.", ["error"]
)
RECONCILE_DURATION = Histogram(
    "modelroll_operator_reconcile_duration_seconds",
    "Time spent in one reconcile.",
    buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
MODEL_DEPLOYMENTS = Gauge(
    "modelroll_operator_modeldeployments",
    "ModelDeployments by condition type and status.",
    ["condition", "status"],
)
WATCH_EVENTS = Counter(
    "modelroll_operator_watch_events_total", "Watch events seen, by kind.", ["kind"]
)
API_REQUESTS = Counter(
    "modelroll_operator_api_requests_total",
    "Requests the operator made to the Kubernetes API (kopf's watches not included), by "
    "method, resource and status code.",
    ["method", "resource", "code"],
)
TRAFFIC_WEIGHT = Gauge(
    "modelroll_operator_traffic_weight",
    "Effective traffic share of each live revision, in percent, as last reported in status.",
    ["namespace", "name", "revision", "role"],
)
ROLLOUT_ABORTS = Counter(
    "modelroll_operator_rollout_aborts_total",
    "Rollouts aborted, by reason (CanaryAnalysisFailed, ProgressDeadlineExceeded, Aborted, ...).",
    ["namespace", "name", "reason"],
)
CONDITION = Gauge(
    "modelroll_operator_modeldeployment_condition",
    "1 when the condition of a ModelDeployment is True, 0 when False.",
    ["namespace", "name", "condition"],
)


_serving: set[tuple[str, int]] = set()
_serving_lock = threading.Lock()


def serve_metrics(port: int, address: str) -> None:
    """Starts the /metrics server once per process: a standby starts it before kopf does."""
    with _serving_lock:
        if (address, port) not in _serving:
            start_http_server(port, addr=address)
            _serving.add((address, port))
