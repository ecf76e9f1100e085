"""Drift telemetry: what the model is asked and what it answers, binned as its reference
profile bins them, as Prometheus counters (metric names: docs/drift.md).

Counting must cost next to nothing per request, and numpy's cost is per call, not per
row: so an answered batch is only set aside (a list append), and the batches set aside are
binned together, in a few vectorised calls over all their rows (profile.Layout), into
in-process count arrays when PENDING_CELLS values have gathered or when someone looks. The counts
reach the Prometheus counters only then: on every /metrics scrape, and once a second when
several workers share the multiprocess files (another worker may answer the scrape).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
from prometheus_client import CollectorRegistry, Counter, Gauge

from .formats.base import Array, Model
from .profile import NUMERIC, OVERFLOW, UNDERFLOW, Profile

log = logging.getLogger("modelroll.telemetry")

FLUSH_EVERY_S = 1.0
# values (rows x input columns) set aside before they are binned on the spot: 256 KiB of
# float64, so the batches are binned while still in cache, and their memory goes back to the
# allocator while it is warm (at 4096 rows of 64 features, 2 MiB, joining the cold batches
# cost as much as binning them: py-spy on the rf benchmark); still hundreds of 1-row
# batches per call, which keeps numpy's per-call cost small
PENDING_CELLS = 1 << 15


class DriftTelemetry:
    def __init__(
        self,
        profile: Profile,
        model: str,
        version: str,
        registry: CollectorRegistry | None,
        max_rows_per_second: int,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.profile = profile
        self._max_rows = max_rows_per_second
        self._clock = clock
        self._lock = threading.Lock()
        self._flush_lock = threading.Lock()  # one flush at a time: deltas are read and moved
        self._pending: list[tuple[Mapping[str, Array], Array | None]] = []
        self._pending_cells = 0
        layout = profile.features
        self._counts = np.zeros(layout.size, dtype=np.int64)
        self._flushed = np.zeros(layout.size, dtype=np.int64)
        predicted = profile.prediction.features[0]
        self._predicted = np.zeros(len(predicted.bins) + 1, dtype=np.int64)
        self._predicted_flushed = np.zeros_like(self._predicted)
        self._rows = self._rows_flushed = self._skipped = self._skipped_flushed = 0
        self._second, self._rows_this_second = -1, 0
        self._warned = False
        labels = ["model", "version"]
        # the metric families are attributes: tests/unit/test_observability.py reads them
        self.feature_values = Counter(
            "modelroll_feature_values",
            "Rows per feature and reference bin.",
            [*labels, "feature", "bin"],
            registry=registry,
        )
        self.feature_missing = Counter(
            "modelroll_feature_missing",
            "Rows with no value for the feature.",
            [*labels, "feature"],
            registry=registry,
        )
        self.feature_out_of_range = Counter(
            "modelroll_feature_out_of_range",
            "Numeric rows below or above the reference's range (its underflow and overflow bins).",
            [*labels, "feature"],
            registry=registry,
        )
        self.prediction_values = Counter(
            "modelroll_prediction_values",
            "Answered rows per class or bin.",
            [*labels, "bin"],
            registry=registry,
        )
        self.drift_rows = Counter(
            "modelroll_drift_rows",
            "Rows counted by the drift telemetry.",
            labels,
            registry=registry,
        )
        self.drift_skipped_rows = Counter(
            "modelroll_drift_skipped_rows",
            "Rows answered but not counted: above MODELROLL_DRIFT_MAX_ROWS_PER_SECOND.",
            labels,
            registry=registry,
        )
        # one child per slot, resolved once: a flush is then only inc() calls
        self._slot_children: list[Any] = []
        self._range_slots: list[tuple[Any, int, int]] = []
        for i, feature in enumerate(layout.features):
            for name in feature.bins:
                self._slot_children.append(
                    self.feature_values.labels(model, version, feature.name, name)
                )
            self._slot_children.append(self.feature_missing.labels(model, version, feature.name))
            if feature.kind == NUMERIC:
                start = int(layout.offsets[i])
                self._range_slots.append(
                    (
                        self.feature_out_of_range.labels(model, version, feature.name),
                        start + feature.bins.index(UNDERFLOW),
                        start + feature.bins.index(OVERFLOW),
                    )
                )
        self._prediction_children = [
            self.prediction_values.labels(model, version, name) for name in predicted.bins
        ]
        self._rows_child = self.drift_rows.labels(model, version)
        self._skipped_child = self.drift_skipped_rows.labels(model, version)
        self._publish_reference(model, version, registry)

    def _publish_reference(
        self, model: str, version: str, registry: CollectorRegistry | None
    ) -> None:
        labels = ["model", "version"]
        self.feature_reference = Gauge(
            "modelroll_feature_reference",
            "Reference rows per feature and bin.",
            [*labels, "feature", "bin"],
            registry=registry,
            multiprocess_mode="max",
        )
        self.prediction_reference = Gauge(
            "modelroll_prediction_reference",
            "Reference rows per prediction bin.",
            [*labels, "bin"],
            registry=registry,
            multiprocess_mode="max",
        )
        self.reference_rows = Gauge(
            "modelroll_reference_rows",
            "Rows of the reference profile.",
            labels,
            registry=registry,
            multiprocess_mode="max",
        )
        profile = self.profile
        for feature, counts in zip(profile.features.features, profile.feature_counts, strict=True):
            for name, count in zip(feature.bins, counts, strict=False):
                self.feature_reference.labels(model, version, feature.name, name).set(count)
        for name, count in zip(
            profile.prediction.features[0].bins, profile.prediction_counts, strict=False
        ):
            self.prediction_reference.labels(model, version, name).set(count)
        self.reference_rows.labels(model, version).set(profile.rows)

    def observe(self, inputs: Mapping[str, Array], predictions: Array | None) -> None:
        """Count one answered batch; never raises (telemetry must not fail a prediction)."""
        try:
            self._observe(inputs, predictions)
        except Exception:
            self._failed()

    def _failed(self) -> None:
        if not self._warned:
            self._warned = True
            log.exception("drift telemetry could not count a batch; counting goes on")

    def _observe(self, inputs: Mapping[str, Array], predictions: Array | None) -> None:
        first = next(iter(inputs.values()))
        rows = len(first)
        cells = first.size if len(inputs) == 1 else sum(a.size for a in inputs.values())
        second = int(self._clock())
        with self._lock:
            if second != self._second:
                self._second, self._rows_this_second = second, 0
            if self._max_rows and self._rows_this_second >= self._max_rows:
                self._skipped += rows
                return
            self._rows_this_second += rows
            self._pending.append((inputs, predictions))
            self._pending_cells += cells
            full = self._pending_cells >= PENDING_CELLS
        if full:
            self._bin_pending()

    def _bin_pending(self) -> None:
        """Bin every batch set aside, all at once, into the count arrays."""
        with self._lock:
            pending, self._pending, self._pending_cells = self._pending, [], 0
        if not pending:
            return
        try:
            self._bin(pending)
        except Exception:  # batches the profile does not fit: dropped, never a failed request
            self._failed()

    def _bin(self, pending: list[tuple[Mapping[str, Array], Array | None]]) -> None:
        rows = sum(len(next(iter(inputs.values()))) for inputs, _ in pending)
        counts = None
        if self.profile.features.size:
            names = pending[0][0].keys()
            merged = {n: _joined([inputs[n] for inputs, _ in pending]) for n in names}
            counts = self._feature_counts(merged)
        answered = [np.asarray(p).reshape(len(p), -1)[:, 0] for _, p in pending if p is not None]
        predicted = self.profile.prediction.count({0: _joined(answered)}) if answered else None
        with self._lock:
            if counts is not None:
                self._counts += counts
            if predicted is not None:
                self._predicted += predicted
            self._rows += rows

    def _feature_counts(self, inputs: Mapping[str, Array]) -> Array:
        layout = self.profile.features
        if len(inputs) == 1:
            (only,) = inputs.values()
            if only.ndim == 2:  # the model's one input matrix: features by column index
                return layout.count({}, only)
        columns = {i: inputs[f.name] for i, f in enumerate(layout.features) if f.name in inputs}
        return layout.count(columns)

    def flush(self) -> None:
        """Bin what was set aside, and move what was counted since the last flush into the
        Prometheus counters."""
        with self._flush_lock:
            self._bin_pending()
            self._publish()

    def _publish(self) -> None:
        with self._lock:
            counts, predicted = self._counts.copy(), self._predicted.copy()
            rows, skipped = self._rows, self._skipped
        delta = counts - self._flushed
        for slot in np.flatnonzero(delta):
            self._slot_children[slot].inc(int(delta[slot]))
        for child, under, over in self._range_slots:
            outside = int(delta[under] + delta[over])
            if outside:
                child.inc(outside)
        self._flushed = counts
        predicted_delta = predicted - self._predicted_flushed
        for slot in np.flatnonzero(predicted_delta[:-1]):  # the last slot: never missing
            self._prediction_children[slot].inc(int(predicted_delta[slot]))
        self._predicted_flushed = predicted
        if rows != self._rows_flushed:
            self._rows_child.inc(rows - self._rows_flushed)
            self._rows_flushed = rows
        if skipped != self._skipped_flushed:
            self._skipped_child.inc(skipped - self._skipped_flushed)
            self._skipped_flushed = skipped

    def flush_periodically(self, stop: threading.Event) -> threading.Thread:
        def loop() -> None:
            while not stop.wait(FLUSH_EVERY_S):
                self.flush()

        thread = threading.Thread(target=loop, name="drift-flush", daemon=True)
        thread.start()
        return thread


def _joined(arrays: list[Array]) -> Array:
    return arrays[0] if len(arrays) == 1 else np.concatenate(arrays)


class ObservedModel:
    """The served model, counting every batch it answers. It always computes the profiled
    output (`predict`), which the prediction counters read, and returns what was asked."""

    def __init__(self, model: Model, telemetry: DriftTelemetry) -> None:
        self.model = model
        self.telemetry = telemetry
        self.backend = model.backend
        self.inputs = model.inputs
        self.output_names = model.output_names
        self.default_outputs = model.default_outputs
        output = telemetry.profile.output
        self._output = output if output in model.output_names else None
        # kept where the model has them: the batcher and decoder read these
        self.columns: tuple[str, ...] = getattr(model, "columns", ())

    def load(self, model_file: Any) -> None:  # loaded already; here for the Model protocol
        raise NotImplementedError

    def predict(self, inputs: Mapping[str, Array], outputs: Sequence[str]) -> dict[str, Array]:
        wanted = tuple(outputs)
        output = self._output
        computed = (*wanted, output) if output is not None and output not in wanted else wanted
        result = self.model.predict(inputs, computed)
        self.telemetry.observe(inputs, result.get(output) if output is not None else None)
        if computed is wanted:
            return result
        return {name: result[name] for name in wanted}
