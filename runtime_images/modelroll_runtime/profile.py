"""The reference profile: how each feature and the predictions are binned, and the reference's
counts per bin (docs/drift.md, "Reference profile").

One `Layout` both builds the profile (the packager bins the reference rows with it) and
counts what the runtime serves (telemetry.py), so the two can never bin differently. Every
feature owns a run of slots in one flat count vector, its bins then one "missing" slot, and
a batch is binned by a handful of numpy calls whatever its number of numeric features: a
1-row request must cost microseconds.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from .formats.base import Array

PROFILE_VERSION = 1
DEFAULT_BINS = 10
DEFAULT_TOP_K = 10
MAX_CLASSES = 50
MAX_BINS_PER_FEATURE = 32  # a numeric feature's bins plus underflow and overflow
MAX_FEATURE_BINS = 1024  # bins over all features of one model: its series cap
MAX_LABEL_CHARS = 64
# rows x features x planes compared at once: 384 KiB of scratch booleans, which stay in
# a core's L2 cache (4 MiB at once was a third slower)
_CHUNK_CELLS = 3 << 17
UNDERFLOW, OVERFLOW, OTHER = "underflow", "overflow", "__other__"
NUMERIC, CATEGORICAL, CLASSES = "numeric", "categorical", "classes"


class ProfileError(ValueError):
    """A profile the runtime cannot count against."""


def quantile_edges(values: Array, bins: int) -> list[float]:
    """The reference's quantiles at 0, 1/bins, ..., 1, duplicates removed; a constant (or
    empty) feature keeps two equal edges, so it still has one inner bin."""
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return [0.0, 0.0]
    edges = [float(e) for e in np.unique(np.quantile(finite, np.linspace(0.0, 1.0, bins + 1)))]
    return edges if len(edges) > 1 else [edges[0], edges[0]]


def numeric_bins(edges: Sequence[float]) -> list[str]:
    return [UNDERFLOW, *(str(i) for i in range(len(edges) - 1)), OVERFLOW]


def label(value: Any) -> str:
    """A category's `bin` label: strings as they are, integral numbers as integers."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool | np.bool_):
        return "true" if value else "false"
    number = float(value)
    return str(int(number)) if number.is_integer() else repr(number)


def is_missing(value: Any) -> bool:
    if value is None or (isinstance(value, str) and value == ""):
        return True
    return isinstance(value, float) and math.isnan(value)


def top_values(values: Array, k: int) -> list[Any]:
    """The k most frequent values (ties in value order), missing and over-long ones aside."""
    counts: dict[Any, int] = {}
    for value in values.tolist():
        if is_missing(value) or len(label(value)) > MAX_LABEL_CHARS:
            continue
        counts[value] = counts.get(value, 0) + 1
    ranked = sorted(counts.items(), key=lambda item: (-item[1], label(item[0])))
    return [value for value, _ in ranked[:k]]


@dataclass(frozen=True)
class Feature:
    name: str
    index: int  # column in the model's input matrix; -1 where the feature is its own input
    kind: str  # NUMERIC or CATEGORICAL (CLASSES for a classifier's predictions)
    bins: tuple[str, ...]
    edges: tuple[float, ...] = ()  # numeric
    values: tuple[Any, ...] = ()  # categorical, in bin order

    def document(self, counts: Array | Sequence[int], missing: int) -> dict[str, Any]:
        entry: dict[str, Any] = {"name": self.name, "index": self.index, "kind": self.kind}
        if self.kind == NUMERIC:
            entry["edges"] = list(self.edges)
        else:
            entry["values"] = list(self.values)
        entry.update(bins=list(self.bins), counts=[int(c) for c in counts], missing=int(missing))
        return entry

    @staticmethod
    def from_document(entry: Mapping[str, Any]) -> Feature:
        try:
            kind = str(entry["kind"])
            bins = tuple(str(b) for b in entry["bins"])
            if kind == NUMERIC:
                edges = tuple(float(e) for e in entry["edges"])
                if len(edges) < 2 or list(edges) != sorted(edges) or len(bins) != len(edges) + 1:
                    raise ProfileError(f"feature {entry['name']}: bad numeric edges")
                return Feature(
                    str(entry.get("name", "")), int(entry.get("index", -1)), kind, bins, edges
                )
            values = tuple(entry["values"])
            if len(bins) != len(values) + 1:
                raise ProfileError(f"feature {entry.get('name')}: bins must be values + other")
            return Feature(
                str(entry.get("name", "")), int(entry.get("index", -1)), kind, bins, (), values
            )
        except (KeyError, TypeError, ValueError) as exc:
            if isinstance(exc, ProfileError):
                raise
            raise ProfileError(f"unreadable profile entry: {exc}") from None


class _Categories:
    """Maps values to bin positions: numbers by searchsorted, anything else by a dict."""

    def __init__(self, values: Sequence[Any]) -> None:
        self.other = len(values)
        self.numeric = all(isinstance(v, int | float) and not isinstance(v, bool) for v in values)
        if self.numeric:
            floats = np.asarray(values, dtype=np.float64)
            self.order = np.argsort(floats, kind="stable")
            self.sorted = floats[self.order]
        self.lookup = {v: i for i, v in enumerate(values)}

    def _find(self, value: Any) -> int:
        try:
            return self.lookup.get(value, self.other)
        except TypeError:  # an unhashable value (a list in a BYTES tensor): never a category
            return self.other

    def positions(self, column: Array) -> tuple[Array, Array]:
        """Each value's bin position, and which values are missing."""
        if self.numeric and column.dtype.kind in "fiub":
            x = column.astype(np.float64, copy=False)
            missing = np.isnan(x)
            if self.sorted.size == 0:
                return np.full(x.shape, self.other, dtype=np.intp), missing
            at = np.minimum(np.searchsorted(self.sorted, x), self.sorted.size - 1)
            found = self.sorted[at] == x
            return np.where(found, self.order[at], self.other), missing
        items = column.tolist()
        absent = [is_missing(v) for v in items]
        if self.numeric:  # numbers sent as strings or objects: compare as numbers
            keyed = [_as_number(v) for v in items]
            lookup = {float(v): i for v, i in self.lookup.items()}
            found_at = [lookup.get(k, self.other) if k is not None else self.other for k in keyed]
        else:
            found_at = [self._find(v) for v in items]
        return np.asarray(found_at, dtype=np.intp), np.asarray(absent, dtype=bool)


def _as_number(value: Any) -> float | None:
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


class Layout:
    """Where each feature's bins sit in one flat count vector, and how a batch fills it.

    Slots: feature after feature, each its bins then a missing slot. `count()` bins a batch
    into them: each numeric value's slot by comparison with every edge rank at once,
    each categorical value's by lookup, and np.bincount over the slots.
    """

    def __init__(self, features: Sequence[Feature]) -> None:
        self.features = tuple(features)
        sizes = [len(f.bins) + 1 for f in self.features]
        self.offsets = np.concatenate([[0], np.cumsum(sizes)]).astype(np.intp)
        self.size = int(self.offsets[-1])
        numeric = [i for i, f in enumerate(self.features) if f.kind == NUMERIC]
        self._numeric = np.asarray(numeric, dtype=np.intp)
        widest = max((len(self.features[i].edges) for i in numeric), default=2)
        # One plane per edge rank ([rank, 1, feature]: comparing a batch with a plane is one
        # contiguous operation, and the planes sum up fast): the lower edges of each
        # feature's inner bins, then the float just above its upper edge, so that a value's
        # bin is the number of planes at or below it (x >= nextafter(u) is x > u: overflow).
        # Padding is NaN, which no value reaches; so is the overflow plane of an upper edge
        # of +inf (nothing lies above it).
        planes = np.full((widest, 1, len(numeric)), np.nan)
        for column, i in enumerate(numeric):
            edges = self.features[i].edges
            planes[: len(edges) - 1, 0, column] = edges[:-1]
            if edges[-1] != math.inf:
                planes[widest - 1, 0, column] = np.nextafter(edges[-1], math.inf)
        self._planes = planes
        self._missing_slot = np.asarray(
            [len(self.features[i].edges) + 1 for i in numeric], dtype=np.intp
        )
        self._numeric_offsets = self.offsets[self._numeric]
        columns = np.asarray([self.features[i].index for i in numeric], dtype=np.intp)
        self._matrix_columns = columns
        # the common case: the numeric features are the matrix's columns, in order
        self._whole_matrix = bool((columns == np.arange(len(numeric))).all())
        self._categories = {
            i: _Categories(f.values) for i, f in enumerate(self.features) if f.kind != NUMERIC
        }

    def numeric_counts(self, matrix: Array) -> Array:
        """Counts per slot of a [rows, numeric features] float matrix, columns in layout
        order: binned a chunk of rows at a time, so the scratch booleans stay in cache."""
        x = matrix.astype(np.float64, copy=False)
        counts: Array = np.zeros(self.size, dtype=np.intp)
        step = max(1, _CHUNK_CELLS // max(1, self._planes.size))
        for start in range(0, len(x), step):
            chunk = x[start : start + step]
            # counts of at most 32 planes: uint8 sums are 3x faster than numpy's default intp
            slots = (chunk >= self._planes).sum(axis=0, dtype=np.uint8) + self._numeric_offsets
            if np.isnan(chunk.min()):  # one fast pass finds NaN: min propagates it
                missing = np.isnan(chunk)
                slots[missing] = np.broadcast_to(
                    self._missing_slot + self._numeric_offsets, chunk.shape
                )[missing]
            counts += np.bincount(slots.ravel(), minlength=self.size)
        return counts

    def category_slots(self, i: int, column: Array) -> Array:
        positions, missing = self._categories[i].positions(column)
        slot: Array = np.where(missing, len(self.features[i].bins), positions) + self.offsets[i]
        return slot

    def count(self, columns: Mapping[int, Array], matrix: Array | None = None) -> Array:
        """Counts per slot of one batch. `matrix`: the model's input matrix (features by
        index); `columns`: feature position -> its column, for features it does not hold."""
        counts: Array = np.zeros(self.size, dtype=np.intp)
        if self._numeric.size:
            if matrix is not None:
                wide = self._whole_matrix and matrix.shape[1] == self._numeric.size
                numeric = matrix if wide else matrix[:, self._matrix_columns]
            else:
                numeric = np.column_stack(
                    [columns[int(i)].astype(np.float64) for i in self._numeric]
                )
            counts += self.numeric_counts(numeric)
        parts = []
        for i in self._categories:
            column = columns[i] if i in columns else np.asarray(matrix)[:, self.features[i].index]
            parts.append(self.category_slots(i, column))
        if parts:
            counts += np.bincount(np.concatenate(parts), minlength=self.size)
        return counts

    def split(self, counts: Array) -> list[tuple[Feature, Array, int]]:
        """Per feature: its bins' counts and its missing count."""
        out = []
        for i, feature in enumerate(self.features):
            start, end = int(self.offsets[i]), int(self.offsets[i + 1])
            out.append((feature, counts[start : end - 1], int(counts[end - 1])))
        return out


def numeric_feature(name: str, index: int, values: Array, bins: int) -> Feature:
    edges = quantile_edges(values.astype(np.float64), bins)
    return Feature(name, index, NUMERIC, tuple(numeric_bins(edges)), tuple(edges))


def categorical_feature(
    name: str, index: int, values: Array, k: int, kind: str = CATEGORICAL
) -> Feature:
    top = [v.item() if isinstance(v, np.generic) else v for v in top_values(values, k)]
    return Feature(name, index, kind, (*(label(v) for v in top), OTHER), (), tuple(top))


def build(
    columns: Sequence[tuple[str, int, Array, bool]],
    predictions: Array,
    classifier: bool,
    bins: int = DEFAULT_BINS,
    top_k: int = DEFAULT_TOP_K,
) -> dict[str, Any]:
    """The profile document of reference `columns` (name, matrix index or -1, values,
    categorical) and the model's `predictions` on them; features past the series cap are
    listed as unprofiled."""
    if not 1 <= bins <= MAX_BINS_PER_FEATURE - 2 or not 1 <= top_k <= MAX_BINS_PER_FEATURE - 1:
        raise ProfileError(f"bins and top K must be between 1 and {MAX_BINS_PER_FEATURE - 2}")
    rows = len(predictions)
    features: list[Feature] = []
    data: dict[int, Array] = {}
    unprofiled: list[str] = []
    used = 0
    for name, index, values, categorical in columns:
        if categorical or values.dtype.kind not in "fiub":
            feature = categorical_feature(name, index, values, top_k)
        else:
            feature = numeric_feature(name, index, values, bins)
        if used + len(feature.bins) > MAX_FEATURE_BINS:
            unprofiled.append(name)
            continue
        used += len(feature.bins)
        data[len(features)] = values
        features.append(feature)
    layout = Layout(features)
    documents = []
    if features:
        counted = layout.count(data)
        documents = [f.document(c, m) for f, c, m in layout.split(counted)]
    return {
        "profileVersion": PROFILE_VERSION,
        "rows": rows,
        "features": documents,
        "unprofiled": unprofiled,
        "prediction": prediction_document(predictions, classifier, bins),
    }


def prediction_feature(predictions: Array, classifier: bool, bins: int) -> Feature:
    flat = np.asarray(predictions).reshape(len(predictions), -1)[:, 0]
    if classifier or flat.dtype.kind not in "fiub":
        return categorical_feature("predict", -1, flat, MAX_CLASSES, CLASSES)
    return numeric_feature("predict", -1, flat, bins)


def prediction_document(predictions: Array, classifier: bool, bins: int) -> dict[str, Any]:
    feature = prediction_feature(predictions, classifier, bins)
    flat = np.asarray(predictions).reshape(len(predictions), -1)[:, 0]
    ((_, counts, _),) = Layout([feature]).split(Layout([feature]).count({0: flat}))
    entry = feature.document(counts, 0)
    del entry["name"], entry["index"], entry["missing"]
    return {"output": "predict", **entry}


@dataclass(frozen=True)
class Profile:
    """A profile document as the runtime counts against it."""

    rows: int
    features: Layout
    feature_counts: tuple[tuple[int, ...], ...]
    prediction: Layout  # one feature: the predicted output
    prediction_counts: tuple[int, ...]
    output: str = "predict"  # the output whose answers are binned

    @staticmethod
    def from_document(document: Mapping[str, Any]) -> Profile:
        if document.get("profileVersion") != PROFILE_VERSION:
            raise ProfileError(f"unknown profileVersion {document.get('profileVersion')!r}")
        try:
            entries = list(document["features"])
            prediction = dict(document["prediction"])
            rows = int(document["rows"])
        except (KeyError, TypeError, ValueError) as exc:
            raise ProfileError(f"unreadable profile: {exc}") from None
        features = [Feature.from_document(e) for e in entries]
        if sum(len(f.bins) for f in features) > MAX_FEATURE_BINS:
            raise ProfileError(f"profile has more than {MAX_FEATURE_BINS} feature bins")
        if any(len(f.bins) > max(MAX_BINS_PER_FEATURE, MAX_CLASSES + 1) for f in features):
            raise ProfileError(f"a feature has more than {MAX_BINS_PER_FEATURE} bins")
        predicted = Feature.from_document({"name": "predict", "index": -1, **prediction})
        if len(predicted.bins) > MAX_CLASSES + 1:
            raise ProfileError(f"more than {MAX_CLASSES + 1} prediction bins")
        return Profile(
            rows,
            Layout(features),
            tuple(tuple(int(c) for c in e.get("counts", ())) for e in entries),
            Layout([predicted]),
            tuple(int(c) for c in prediction.get("counts", ())),
            str(prediction.get("output", "predict")),
        )
