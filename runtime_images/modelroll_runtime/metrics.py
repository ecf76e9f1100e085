"""Prometheus metrics, with the names and labels the operator's canary analysis queries.

With several workers, prometheus-client's multiprocess mode aggregates them: the launcher
points PROMETHEUS_MULTIPROC_DIR at a fresh directory before the workers start, and every
worker answers /metrics with the sum over all of them.
"""

from __future__ import annotations

import os
from collections.abc import Callable

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

from .config import MULTIPROC_ENV

LATENCY_BUCKETS = (
    0.0005, 0.00075, 0.001, 0.0015, 0.002, 0.003, 0.004, 0.005, 0.0075, 0.01, 0.015, 0.02,
    0.03, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 7.5, 10.0,
)  # fmt: skip
PROTOCOLS = ("v1", "v2", "grpc")  # REST V1, REST V2, and V2 over gRPC
# the metrics sidecar in front of a server that speaks neither V1 nor V2 (proxy.py)
OTHER_HTTP = "http"
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 4096)


class RuntimeMetrics:
    def __init__(self, model: str, version: str, protocols: tuple[str, ...] = PROTOCOLS) -> None:
        self.model, self.version = model, version
        self.multiprocess = bool(os.environ.get(MULTIPROC_ENV))
        self.registry = CollectorRegistry()
        registry = None if self.multiprocess else self.registry
        # where other metrics (the drift telemetry's) register: none in multiprocess mode,
        # whose collector reads every worker's files
        self.target_registry = registry
        self.requests = Counter(
            "modelroll_requests",
            "Inference requests by protocol and HTTP status code (for gRPC, the HTTP status of "
            "the same error on REST: 200, 400, 503, 500...).",
            ["model", "version", "protocol", "code"],
            registry=registry,
        )
        self.duration = Histogram(
            "modelroll_request_duration_seconds",
            "Inference request latency inside the server.",
            ["model", "version", "protocol"],
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.batch_size = Histogram(
            "modelroll_batch_size",
            "Rows per predict call after adaptive batching.",
            ["model", "version"],
            buckets=BATCH_BUCKETS,
            registry=registry,
        )
        self.load_seconds = Gauge(
            "modelroll_model_load_seconds",
            "Seconds from start of loading to a successful warm-up prediction.",
            ["model", "version"],
            registry=registry,
            multiprocess_mode="max",
        )
        self.inflight = Gauge(
            "modelroll_inflight_requests",
            "Inference requests accepted and not yet answered.",
            ["model", "version"],
            registry=registry,
            multiprocess_mode="livesum",
        )
        self.info = Gauge(
            "modelroll_model_info",
            "The served model; backend is onnx when compiled, native otherwise.",
            ["model", "version", "format", "backend"],
            registry=registry,
            multiprocess_mode="max",
        )
        self.compilation = Gauge(
            "modelroll_model_compilation",
            "The compiler's verdict: Exact (served compiled), NotExact or NoConverter (served "
            "natively, reason in the log and in the model metadata), NotCompiled (ONNX models).",
            ["model", "version", "backend", "verdict"],
            registry=registry,
            multiprocess_mode="max",
        )
        if self.multiprocess:
            from prometheus_client import multiprocess

            multiprocess.MultiProcessCollector(self.registry)  # type: ignore[no-untyped-call]
        self.observe_batch: Callable[[float], None] = self.batch_size.labels(model, version).observe
        self.inflight_gauge = self.inflight.labels(model, version)
        self._durations = {p: self.duration.labels(model, version, p).observe for p in protocols}
        self._counters: dict[tuple[str, int], Callable[[], None]] = {}

    def record(self, protocol: str, code: int, seconds: float) -> None:
        key = (protocol, code)
        count = self._counters.get(key)
        if count is None:
            count = self.requests.labels(self.model, self.version, protocol, str(code)).inc
            self._counters[key] = count
        count()
        self._durations[protocol](seconds)

    def model_loaded(self, model_format: str, backend: str, seconds: float, verdict: str) -> None:
        self.load_seconds.labels(self.model, self.version).set(seconds)
        self.info.labels(self.model, self.version, model_format, backend).set(1)
        self.compilation.labels(self.model, self.version, backend, verdict).set(1)

    def exposition(self) -> tuple[bytes, str]:
        return generate_latest(self.registry), CONTENT_TYPE_LATEST
