"""Prometheus metrics, with the names and labels the operator's canary analysis queries.

With several workers, prometheus-client's multiprocess mode aggregates them: the launcher
points PROMETHEUS_MULTIPROC_DIR at a fresh directory before the workers start, and every
worker answers /metrics with the sum over all of them.

With one worker, the four families every request touches (requests, latency, batch size,
in flight) are plain numbers the event loop updates, and a collector reads them at scrape
(Tally): prometheus-client's objects take a lock per update and walk the buckets in Python,
7 updates and ~4 µs per request, some 10% of a 1-row request's whole cost (profiled). Only
the event loop updates them (REST, gRPC and the batcher all run on it), so no lock is needed.
The families, names, labels and buckets are the same either way.
"""

from __future__ import annotations

import bisect
import os
from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.metrics_core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
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
        self.protocols = protocols  # the latency series exported, one per protocol served
        self.model, self.version = model, version
        self.multiprocess = bool(os.environ.get(MULTIPROC_ENV))
        self.registry = CollectorRegistry()
        registry = None if self.multiprocess else self.registry
        # the hot families: prometheus-client's own with several workers; with one, these
        # only declare them and the Tally serves them
        hot = registry if self.multiprocess else None
        # where other metrics (the drift telemetry's) register: none in multiprocess mode,
        # whose collector reads every worker's files
        self.target_registry = registry
        self.requests = Counter(
            "modelroll_requests",
            "Inference requests by protocol and HTTP status code (for gRPC, the HTTP status of "
            "the same error on REST: 200, 400, 503, 500...).",
            ["model", "version", "protocol", "code"],
            registry=hot,
        )
        self.duration = Histogram(
            "modelroll_request_duration_seconds",
            "Inference request latency inside the server.",
            ["model", "version", "protocol"],
            buckets=LATENCY_BUCKETS,
            registry=hot,
        )
        self.batch_size = Histogram(
            "modelroll_batch_size",
            "Rows per predict call after adaptive batching.",
            ["model", "version"],
            buckets=BATCH_BUCKETS,
            registry=hot,
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
            registry=hot,
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
        self.tally: Tally | None = None
        if not self.multiprocess:
            self.tally = Tally(self)
            self.registry.register(self.tally)
            self.observe_batch: Callable[[float], None] = self.tally.observe_batch
            self.inflight_gauge: Level | Any = self.tally.inflight
            self.record = self.tally.record  # type: ignore[method-assign]
            return
        self.observe_batch = self.batch_size.labels(model, version).observe
        self.inflight_gauge = self.inflight.labels(model, version)
        self._durations = {p: self.duration.labels(model, version, p).observe for p in protocols}
        self._counters: dict[tuple[str, int], Callable[[], None]] = {}

    def record(self, protocol: str, code: int, seconds: float) -> None:
        """Count an answered request (the Tally's record() with one worker)."""
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


class Level:
    """A gauge's value as a plain number (the in-flight requests)."""

    def __init__(self) -> None:
        self.value = 0

    def inc(self) -> None:
        self.value += 1

    def dec(self) -> None:
        self.value -= 1


class Tally:
    """The hot families of one worker as plain numbers, exposed by collect() at scrape."""

    def __init__(self, metrics: RuntimeMetrics) -> None:
        self._metrics = metrics
        self._labels = [metrics.model, metrics.version]
        self.counts: dict[tuple[str, int], int] = {}
        # per protocol: per bucket (non-cumulative; the last is +Inf), and the sum
        self.latency = {p: [0] * (len(LATENCY_BUCKETS) + 1) for p in metrics.protocols}
        self.latency_sum = dict.fromkeys(metrics.protocols, 0.0)
        self.batches = [0] * (len(BATCH_BUCKETS) + 1)
        self.batch_rows = 0.0
        self.inflight = Level()

    def record(self, protocol: str, code: int, seconds: float) -> None:
        key = (protocol, code)
        self.counts[key] = self.counts.get(key, 0) + 1
        # bisect_left: a value equal to a bound falls in that bucket (le, as prometheus)
        self.latency[protocol][bisect.bisect_left(LATENCY_BUCKETS, seconds)] += 1
        self.latency_sum[protocol] += seconds

    def observe_batch(self, rows: float) -> None:
        self.batches[bisect.bisect_left(BATCH_BUCKETS, rows)] += 1
        self.batch_rows += rows

    def collect(self) -> Iterator[Metric]:
        m = self._metrics
        requests = CounterMetricFamily(
            m.requests._name, m.requests._documentation, labels=m.requests._labelnames
        )
        for (protocol, code), count in list(self.counts.items()):
            requests.add_metric([*self._labels, protocol, str(code)], count)
        yield requests
        duration = HistogramMetricFamily(
            m.duration._name, m.duration._documentation, labels=m.duration._labelnames
        )
        for protocol in self._metrics.protocols:
            duration.add_metric(
                [*self._labels, protocol],
                _cumulative(LATENCY_BUCKETS, self.latency[protocol]),
                self.latency_sum[protocol],
            )
        yield duration
        batch = HistogramMetricFamily(
            m.batch_size._name, m.batch_size._documentation, labels=m.batch_size._labelnames
        )
        batch.add_metric(self._labels, _cumulative(BATCH_BUCKETS, self.batches), self.batch_rows)
        yield batch
        inflight = GaugeMetricFamily(
            m.inflight._name, m.inflight._documentation, labels=m.inflight._labelnames
        )
        inflight.add_metric(self._labels, float(self.inflight.value))
        yield inflight


def _cumulative(bounds: tuple[float, ...], counts: list[int]) -> list[tuple[str, float]]:
    """prometheus buckets (le, cumulative count) from per-bucket counts; the last is +Inf.
    The le labels are written as prometheus-client writes them (1.0, 0.0005, +Inf)."""
    total = 0.0
    buckets = []
    for bound, count in zip([*bounds, float("inf")], counts, strict=True):
        total += count
        buckets.append(("+Inf" if bound == float("inf") else repr(float(bound)), total))
    return buckets
