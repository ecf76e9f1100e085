"""The reference profile's binning (modelroll_runtime.profile), against a plain-Python reading
of docs/drift.md's rules, and the drift telemetry's counting and sampling on it."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from modelroll_runtime import profile
from modelroll_runtime.profile import OTHER, OVERFLOW, UNDERFLOW, Layout, Profile
from modelroll_runtime.telemetry import DriftTelemetry
from prometheus_client import CollectorRegistry


def naive_numeric_bin(edges: list[float], x: float) -> str | None:
    """docs/drift.md, word for word: None for missing."""
    if math.isnan(x):
        return None
    if x < edges[0]:
        return UNDERFLOW
    if x > edges[-1]:
        return OVERFLOW
    for i in range(len(edges) - 1):
        if edges[i] <= x < edges[i + 1]:
            return str(i)
    return str(len(edges) - 2)  # x == edges[-1]: the last inner bin


def test_quantile_edges_are_the_reference_quantiles_without_duplicates() -> None:
    values = np.arange(101, dtype=float)
    assert profile.quantile_edges(values, 10) == pytest.approx(list(range(0, 101, 10)), abs=1e-9)
    discrete = np.array([1.0, 1.0, 1.0, 2.0, 2.0, 3.0] * 10)
    edges = profile.quantile_edges(discrete, 10)
    assert edges == sorted(set(edges)) and edges[0] == 1.0 and edges[-1] == 3.0
    assert profile.quantile_edges(np.array([5.0, 5.0, np.nan]), 10) == [5.0, 5.0]


def test_numeric_bins_follow_the_documented_rules_at_every_edge() -> None:
    edges = [0.0, 1.0, 2.0, 4.0]
    feature = profile.Feature(
        "x", 0, profile.NUMERIC, tuple(profile.numeric_bins(edges)), tuple(edges)
    )
    layout = Layout([feature])
    x = np.array([-1.0, 0.0, 0.5, 1.0, 3.9, 4.0, 4.0001, np.inf, -np.inf, np.nan, np.nan])
    counts = layout.count({}, x.reshape(-1, 1))
    ((_, bins, missing),) = layout.split(counts)
    expected = dict.fromkeys(feature.bins, 0)
    for value in x:
        name = naive_numeric_bin(edges, float(value))
        if name is not None:
            expected[name] += 1
    assert dict(zip(feature.bins, bins.tolist(), strict=True)) == expected
    assert expected == {UNDERFLOW: 2, "0": 2, "1": 1, "2": 2, OVERFLOW: 2}
    assert missing == 2


def test_a_constant_feature_has_one_inner_bin() -> None:
    feature = profile.numeric_feature("c", 0, np.full(20, 3.0), 10)
    assert feature.edges == (3.0, 3.0) and feature.bins == (UNDERFLOW, "0", OVERFLOW)
    ((_, bins, _),) = Layout([feature]).split(
        Layout([feature]).count({}, np.array([[2.0], [3.0], [3.0], [4.0]]))
    )
    assert bins.tolist() == [1, 2, 1]


def test_categorical_top_k_ties_in_value_order_the_rest_other_and_missing_apart() -> None:
    values = np.array(["b", "a", "c", "a", "b", "d", None, "", "e" * 65], dtype=object)
    feature = profile.categorical_feature("color", -1, values, 2)
    assert feature.values == ("a", "b") and feature.bins == ("a", "b", OTHER)
    layout = Layout([feature])
    sent = np.array(["a", "zzz", "b", None, "c", "a"], dtype=object)
    ((_, bins, missing),) = layout.split(layout.count({0: sent}))
    assert bins.tolist() == [2, 1, 2] and missing == 1


def test_numeric_categories_match_as_numbers_with_integer_labels() -> None:
    codes = np.array([3.0, 3.0, 1.0, 1.0, 1.0, 7.5, 2.0])
    feature = profile.categorical_feature("code", 2, codes, 3)
    assert feature.values == (1.0, 3.0, 2.0) and feature.bins == ("1", "3", "2", OTHER)
    layout = Layout([feature])
    matrix = np.zeros((5, 3))
    matrix[:, 2] = [3, 3, 7.5, np.nan, 1]
    ((_, bins, missing),) = layout.split(layout.count({}, matrix))
    assert bins.tolist() == [1, 2, 0, 1] and missing == 1
    assert profile.label(7.5) == "7.5" and profile.label(np.int64(4)) == "4"


@settings(max_examples=60, deadline=None)
@given(
    reference=st.lists(st.floats(-1e6, 1e6), min_size=1, max_size=200),
    sent=st.lists(st.one_of(st.floats(allow_nan=True, allow_infinity=True)), max_size=60),
    bins=st.integers(1, 20),
)
def test_vectorised_numeric_counts_equal_the_naive_rules(
    reference: list[float], sent: list[float], bins: int
) -> None:
    # two features with different edge counts share one padded edge matrix
    first = profile.numeric_feature("a", 0, np.asarray(reference), bins)
    second = profile.numeric_feature(
        "b", 1, np.asarray(reference[: max(1, len(reference) // 3)]), 3
    )
    layout = Layout([first, second])
    matrix = np.column_stack([np.asarray(sent, dtype=float)] * 2) if sent else np.zeros((0, 2))
    split = layout.split(layout.count({}, matrix))
    for (feature, counts, missing), column in zip(split, matrix.T, strict=True):
        expected = dict.fromkeys(feature.bins, 0)
        for value in column:
            name = naive_numeric_bin(list(feature.edges), float(value))
            if name is not None:
                expected[name] += 1
        assert dict(zip(feature.bins, counts.tolist(), strict=True)) == expected
        assert missing == int(np.isnan(column).sum())


def test_large_batches_are_binned_in_chunks_with_the_same_counts() -> None:
    rng = np.random.default_rng(1)
    reference = rng.normal(size=(500, 30))
    layout = Layout([profile.numeric_feature(f"f{j}", j, reference[:, j], 30) for j in range(30)])
    big = rng.normal(size=(20_000, 30))  # 20k rows x 30 features x 30 edges: several chunks
    whole = layout.count({}, big)
    by_parts = layout.count({}, big[:7000]) + layout.count({}, big[7000:])
    assert (whole == by_parts).all() and whole.sum() == big.size


def test_build_counts_every_reference_row_and_caps_the_series() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(300, 3))
    columns = [(f"f{j}", j, x[:, j], False) for j in range(3)]
    document = profile.build(columns, np.array([0, 1, 2] * 100), classifier=True)
    assert document["rows"] == 300 and document["unprofiled"] == []
    for entry in document["features"]:
        assert sum(entry["counts"]) + entry["missing"] == 300
        assert entry["counts"][0] == entry["counts"][-1] == 0  # min and max are the outer edges
    assert document["prediction"]["bins"] == ["0", "1", "2", OTHER]
    assert document["prediction"]["counts"] == [100, 100, 100, 0]
    many = [(f"f{j}", j, x[:, j % 3], False) for j in range(100)]  # 12 bins each
    capped = profile.build(many, np.zeros(300), classifier=False)
    assert sum(len(f["bins"]) for f in capped["features"]) <= profile.MAX_FEATURE_BINS
    assert len(capped["features"]) == profile.MAX_FEATURE_BINS // 12
    assert capped["unprofiled"] == [f"f{j}" for j in range(len(capped["features"]), 100)]


def test_regression_predictions_get_quantile_bins() -> None:
    document = profile.build([], np.linspace(0.0, 1.0, 101), classifier=False)
    prediction = document["prediction"]
    assert prediction["kind"] == profile.NUMERIC and len(prediction["edges"]) == 11
    assert sum(prediction["counts"]) == 101


def test_a_profile_document_round_trips_and_bad_ones_are_refused() -> None:
    x = np.arange(40.0).reshape(20, 2)
    document = profile.build([("a", 0, x[:, 0], False), ("b", 1, x[:, 1], True)], x[:, 0], False)
    parsed = Profile.from_document(document)
    assert parsed.rows == 20 and [f.name for f in parsed.features.features] == ["a", "b"]
    assert parsed.feature_counts[0] == tuple(document["features"][0]["counts"])
    with pytest.raises(profile.ProfileError):
        Profile.from_document({**document, "profileVersion": 99})
    broken = {**document, "features": [{**document["features"][0], "edges": [3.0, 1.0]}]}
    with pytest.raises(profile.ProfileError):
        Profile.from_document(broken)


def _telemetry(max_rows: int, clock: list[float]) -> tuple[DriftTelemetry, CollectorRegistry]:
    x = np.arange(100.0).reshape(50, 2)
    document = profile.build(
        [("a", 0, x[:, 0], False), ("b", 1, x[:, 1], False)], np.array([0, 1] * 25), True
    )
    registry = CollectorRegistry()
    telemetry = DriftTelemetry(
        Profile.from_document(document), "m", "v1", registry, max_rows, lambda: clock[0]
    )
    return telemetry, registry


def test_telemetry_counts_each_batch_once_at_flush_and_publishes_the_reference() -> None:
    clock = [0.0]
    telemetry, registry = _telemetry(0, clock)
    labels = {"model": "m", "version": "v1"}
    telemetry.observe({"x": np.array([[-5.0, 1.0], [200.0, np.nan]])}, np.array([1, 7]))
    assert registry.get_sample_value("modelroll_drift_rows_total", labels) == 0  # not flushed
    telemetry.flush()
    telemetry.flush()  # a second flush adds nothing
    value = registry.get_sample_value
    assert value("modelroll_drift_rows_total", labels) == 2
    assert (
        value("modelroll_feature_values_total", {**labels, "feature": "a", "bin": UNDERFLOW}) == 1
    )
    assert value("modelroll_feature_values_total", {**labels, "feature": "a", "bin": OVERFLOW}) == 1
    assert value("modelroll_feature_out_of_range_total", {**labels, "feature": "a"}) == 2
    assert value("modelroll_feature_missing_total", {**labels, "feature": "b"}) == 1
    assert value("modelroll_feature_values_total", {**labels, "feature": "b", "bin": "0"}) == 1
    assert value("modelroll_prediction_values_total", {**labels, "bin": "1"}) == 1
    assert value("modelroll_prediction_values_total", {**labels, "bin": OTHER}) == 1
    assert value("modelroll_reference_rows", labels) == 50
    assert value("modelroll_prediction_reference", {**labels, "bin": "0"}) == 25
    assert value("modelroll_feature_reference", {**labels, "feature": "a", "bin": "0"}) == 5


def test_above_the_row_rate_the_rest_of_the_second_is_skipped_and_counted_as_skipped() -> None:
    clock = [10.2]
    telemetry, registry = _telemetry(4, clock)
    batch = {"x": np.zeros((3, 2))}
    for _ in range(3):  # 3 rows counted, 3 more (the cap is not reached yet), then skipped
        telemetry.observe(batch, np.zeros(3))
    clock[0] = 11.0  # a new second: counted again
    telemetry.observe(batch, np.zeros(3))
    telemetry.flush()
    labels = {"model": "m", "version": "v1"}
    assert registry.get_sample_value("modelroll_drift_rows_total", labels) == 9
    assert registry.get_sample_value("modelroll_drift_skipped_rows_total", labels) == 3
    predicted = registry.get_sample_value(
        "modelroll_prediction_values_total", {**labels, "bin": "0"}
    )
    assert predicted == 9


def test_a_batch_telemetry_cannot_read_never_fails_the_prediction() -> None:
    telemetry, registry = _telemetry(0, [0.0])
    telemetry.observe({"x": np.zeros((2, 1))}, None)  # one column short: logged, not raised
    telemetry.flush()
    assert (
        registry.get_sample_value("modelroll_drift_rows_total", {"model": "m", "version": "v1"})
        == 0
    )
