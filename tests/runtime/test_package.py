"""Packaged models on real runtime processes: verified before anything loads, served from
their ONNX graph without the model libraries, and counted by the drift telemetry."""

from __future__ import annotations

import json
import math
import shutil
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from modelroll_runtime import packager
from prometheus_client.parser import text_string_to_metric_families

from .conftest import StartRuntime
from .models import TrainedModel, iris
from .runtime_process import RuntimeProcess

pytestmark = pytest.mark.runtime

NATIVE = ("sklearn", "xgboost", "lightgbm", "scipy")


def reference_csv(path: Path) -> Path:
    x, _ = iris()
    lines = ["sepal_length,sepal_width,petal_length,petal_width"]
    lines += [",".join(repr(float(v)) for v in row) for row in x]
    path.write_text("\n".join(lines) + "\n")
    return path


def train_forest(directory: Path) -> TrainedModel:
    import joblib
    from sklearn.ensemble import RandomForestClassifier

    x, y = iris()
    forest = RandomForestClassifier(n_estimators=8, max_depth=4, random_state=0).fit(x, y)
    directory.mkdir(parents=True)
    joblib.dump(forest, directory / "model.joblib")
    return TrainedModel(directory, "sklearn", forest, x[::7], True)


@pytest.fixture(scope="module")
def forest_model(models_dir: Path) -> TrainedModel:
    return train_forest(models_dir / "package-forest")


@pytest.fixture(scope="module")
def packages(
    tmp_path_factory: pytest.TempPathFactory,
    sklearn_model: TrainedModel,
    forest_model: TrainedModel,
    xgboost_model: TrainedModel,
    lightgbm_model: TrainedModel,
) -> dict[str, Path]:
    """Packages of the test models: the sklearn ones have exact graphs; the iris boosters'
    float32 probabilities differ from their native ones, so the compiler keeps them native."""
    root = tmp_path_factory.mktemp("packages")
    reference = reference_csv(root / "reference.csv")
    built = {}
    models = {"sklearn": sklearn_model, "forest": forest_model, "xgboost": xgboost_model,
              "lightgbm": lightgbm_model}  # fmt: skip
    for name, trained in models.items():
        result = packager.build(trained.file, reference, root / name)
        assert (result.backend == "onnx") == (trained.model_format == "sklearn"), result.reason
        built[name] = result.directory
    return built


def ready_line(runtime: RuntimeProcess) -> dict[str, Any]:
    for line in runtime.logs().splitlines():
        if '"model ready"' in line:
            record: dict[str, Any] = json.loads(line)
            return record
    raise AssertionError(f"no 'model ready' line:\n{runtime.logs()}")


def infer(runtime: RuntimeProcess, rows: np.ndarray, outputs: list[str] | None = None) -> Any:
    document: dict[str, Any] = {
        "inputs": [
            {
                "name": "input-0",
                "shape": list(rows.shape),
                "datatype": "FP64",
                "data": rows.ravel().tolist(),
            }
        ]
    }
    if outputs is not None:
        document["outputs"] = [{"name": name} for name in outputs]
    response = runtime.post_json("/v2/models/model/infer", document)
    assert response.status == 200, response.body
    return {o["name"]: np.asarray(o["data"]) for o in response.json()["outputs"]}


@pytest.mark.parametrize("name", ["sklearn", "forest"])
def test_a_packaged_sklearn_model_starts_with_an_empty_cache_without_importing_sklearn(
    start_runtime: StartRuntime,
    packages: dict[str, Path],
    tmp_path: Path,
    request: pytest.FixtureRequest,
    name: str,
) -> None:
    trained: TrainedModel = request.getfixturevalue(f"{name}_model")
    empty_cache = tmp_path / "empty-cache"
    runtime = start_runtime(
        MODELROLL_MODEL_URI=str(packages[name]),
        MODELROLL_MODEL_FORMAT="sklearn",
        MODELROLL_CACHE_DIR=str(empty_cache),
    )
    ready = ready_line(runtime)
    assert ready["backend"] == "onnx"
    # read in the server process once it is ready: which model libraries sys.modules holds
    assert ready["native_modules"] == [], f"imported {ready['native_modules']}"
    assert ready["drift_telemetry"] is True
    # nothing compiled: the package's graph is served as it is
    assert not empty_cache.exists() or not any(empty_cache.iterdir())
    answer = infer(runtime, trained.x, ["predict", "predict_proba"])
    np.testing.assert_array_equal(answer["predict"].ravel(), trained.expected_predict(trained.x))
    proba = answer["predict_proba"].reshape(len(trained.x), -1)
    np.testing.assert_allclose(proba, trained.expected_proba(trained.x), rtol=1e-9)
    compilation = runtime.get("/v2/models/model").json()["parameters"]["compilation"]
    assert compilation["verdict"] == "Exact" and compilation["reference_rows"] == 150
    assert compilation["package"] == (packages[name] / "model.sha256").read_text().strip()


@pytest.mark.parametrize("model_format", ["xgboost", "lightgbm"])
def test_a_package_without_an_exact_graph_serves_its_native_model(
    start_runtime: StartRuntime,
    packages: dict[str, Path],
    request: pytest.FixtureRequest,
    model_format: str,
) -> None:
    trained: TrainedModel = request.getfixturevalue(f"{model_format}_model")
    assert not (packages[model_format] / "model.onnx").exists()
    runtime = start_runtime(
        MODELROLL_MODEL_URI=str(packages[model_format]), MODELROLL_MODEL_FORMAT=model_format
    )
    ready = ready_line(runtime)
    assert ready["backend"] == "native" and model_format in ready["native_modules"]
    answer = infer(runtime, trained.x)
    np.testing.assert_array_equal(answer["predict"].ravel(), trained.expected_predict(trained.x))
    compilation = runtime.get("/v2/models/model").json()["parameters"]["compilation"]
    assert compilation["verdict"] == "NotExact"
    assert "modelroll_prediction_values_total" in runtime.get("/metrics").body.decode()


def copy_package(source: Path, target: Path) -> Path:
    shutil.copytree(source, target)
    return target


def flip_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))


def _tamper_onnx(directory: Path) -> None:
    flip_byte(directory / "model.onnx")


def _tamper_native(directory: Path) -> None:
    flip_byte(
        directory / "model.joblib"
    )  # never loaded when the graph is there: refused all the same


def _tamper_profile(directory: Path) -> None:
    document = json.loads((directory / "profile.json").read_text())
    document["rows"] += 1
    (directory / "profile.json").write_text(json.dumps(document))


def _tamper_manifest(directory: Path) -> None:
    # a manifest rewritten to match a replaced file: model.sha256 no longer pins it
    flip_byte(directory / "model.onnx")
    manifest = json.loads((directory / "manifest.json").read_text())
    import hashlib

    data = (directory / "model.onnx").read_bytes()
    manifest["files"]["model.onnx"]["sha256"] = hashlib.sha256(data).hexdigest()
    (directory / "manifest.json").write_text(json.dumps(manifest))


def _extra_file(directory: Path) -> None:
    (directory / "model.pkl").write_bytes(b"not listed")


def _missing_file(directory: Path) -> None:
    (directory / "schema.json").unlink()


TAMPERING = {
    "onnx graph changed": (_tamper_onnx, "sha256 mismatch for package file model.onnx"),
    "native model changed": (_tamper_native, "sha256 mismatch for package file model.joblib"),
    "profile changed": (_tamper_profile, "package file profile.json has"),
    "manifest rewritten": (_tamper_manifest, "manifest.json does not match model.sha256"),
    "file added": (_extra_file, "files its manifest does not list: model.pkl"),
    "file removed": (_missing_file, "package file schema.json is missing"),
}


@pytest.mark.parametrize("case", sorted(TAMPERING))
def test_a_tampered_package_is_never_ready_and_says_which_file(
    start_runtime: StartRuntime, packages: dict[str, Path], tmp_path: Path, case: str
) -> None:
    tamper, reason = TAMPERING[case]
    directory = copy_package(packages["sklearn"], tmp_path / "tampered")
    tamper(directory)
    runtime = start_runtime(
        "live", MODELROLL_MODEL_URI=str(directory), MODELROLL_MODEL_FORMAT="sklearn"
    )
    state = wait_unavailable(runtime)
    assert reason in state["reason"], state
    assert "refusing to load" in state["reason"]
    assert runtime.get("/v2/health/ready").status == 503
    assert "model ready" not in runtime.logs()


def wait_unavailable(runtime: RuntimeProcess, timeout: float = 30) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        (entry,) = runtime.post_json("/v2/repository/index", {}).json()
        if entry["state"] == "UNAVAILABLE":
            return dict(entry)
        assert entry["state"] == "LOADING", entry
        time.sleep(0.05)
    raise AssertionError(f"still loading after {timeout}s:\n{runtime.logs()}")


def test_the_pin_is_the_manifest_digest(
    start_runtime: StartRuntime, packages: dict[str, Path]
) -> None:
    digest = (packages["sklearn"] / "model.sha256").read_text().strip()
    pinned = start_runtime(
        MODELROLL_MODEL_URI=str(packages["sklearn"]), MODELROLL_MODEL_FORMAT="sklearn",
        MODELROLL_MODEL_SHA256=digest,
    )  # fmt: skip
    assert ready_line(pinned)["sha256"] == digest
    wrong = start_runtime(
        "live", MODELROLL_MODEL_URI=str(packages["sklearn"]), MODELROLL_MODEL_FORMAT="sklearn",
        MODELROLL_MODEL_SHA256="0" * 64,
    )  # fmt: skip
    assert "sha256 mismatch for the package" in wait_unavailable(wrong)["reason"]


def expected_counts(directory: Path, rows: np.ndarray, predictions: np.ndarray) -> dict[Any, float]:
    """The counters docs/drift.md promises for these rows, read off profile.json by hand."""
    document = json.loads((directory / "profile.json").read_text())
    expected: dict[Any, float] = {}
    for feature in document["features"]:
        edges, name = feature["edges"], feature["name"]
        for bin_name in feature["bins"]:
            expected[("modelroll_feature_values_total", name, bin_name)] = 0
        expected[("modelroll_feature_missing_total", name)] = 0
        expected[("modelroll_feature_out_of_range_total", name)] = 0
        for value in rows[:, feature["index"]]:
            if math.isnan(value):
                expected[("modelroll_feature_missing_total", name)] += 1
                continue
            if value < edges[0]:
                bin_name = "underflow"
            elif value > edges[-1]:
                bin_name = "overflow"
            else:
                inner = [i for i in range(len(edges) - 1) if edges[i] <= value < edges[i + 1]]
                bin_name = str(inner[0] if inner else len(edges) - 2)
            expected[("modelroll_feature_values_total", name, bin_name)] += 1
            if bin_name in ("underflow", "overflow"):
                expected[("modelroll_feature_out_of_range_total", name)] += 1
    for bin_name in document["prediction"]["bins"]:
        expected[("modelroll_prediction_values_total", bin_name)] = 0
    for label in predictions:
        bin_name = str(int(label))
        if bin_name not in document["prediction"]["bins"]:
            bin_name = "__other__"
        expected[("modelroll_prediction_values_total", bin_name)] += 1
    expected[("modelroll_drift_rows_total",)] = len(rows)
    return expected


def scraped_counts(runtime: RuntimeProcess) -> dict[Any, float]:
    found: dict[Any, float] = {}
    text = runtime.get("/metrics").body.decode()
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if not sample.name.endswith("_total"):
                continue
            labels = sample.labels
            if sample.name in ("modelroll_feature_values_total",):
                key: tuple[Any, ...] = (sample.name, labels["feature"], labels["bin"])
            elif sample.name in (
                "modelroll_feature_missing_total",
                "modelroll_feature_out_of_range_total",
            ):
                key = (sample.name, labels["feature"])
            elif sample.name == "modelroll_prediction_values_total":
                key = (sample.name, labels["bin"])
            elif sample.name == "modelroll_drift_rows_total":
                key = (sample.name,)
            else:
                continue
            assert labels["model"] == "model" and labels["version"] == "7"
            found[key] = sample.value
    return found


def test_the_feature_and_prediction_counters_match_the_requests_sent_exactly(
    start_runtime: StartRuntime, packages: dict[str, Path], sklearn_model: TrainedModel
) -> None:
    runtime = start_runtime(
        MODELROLL_MODEL_URI=str(packages["sklearn"]), MODELROLL_MODEL_FORMAT="sklearn",
        MODELROLL_MODEL_VERSION="7",
    )  # fmt: skip
    x, _ = iris()
    rng = np.random.default_rng(3)
    shifted = x[rng.integers(0, len(x), 40)] * rng.uniform(0.5, 1.6, (40, 4))  # out of range too
    batches = [x[i : i + 5] for i in range(0, 60, 5)] + [shifted[i : i + 1] for i in range(40)]
    with ThreadPoolExecutor(8) as pool:  # concurrent: the batcher merges some of them
        list(pool.map(lambda rows: infer(runtime, rows), batches))
    infer(runtime, x[100:110], ["predict_proba"])  # predictions are counted all the same
    v1 = runtime.post_json("/v1/models/model:predict", {"instances": x[120:123].tolist()})
    assert v1.status == 200
    bad = runtime.post_json(
        "/v2/models/model/infer",
        {"inputs": [{"name": "input-0", "shape": [1, 3], "datatype": "FP64", "data": [1, 2, 3]}]},
    )
    assert bad.status == 400  # refused before the model: not counted
    sent = np.concatenate([*batches, x[100:110], x[120:123]])
    expected = expected_counts(packages["sklearn"], sent, sklearn_model.native.predict(sent))
    assert scraped_counts(runtime) == expected


def test_telemetry_can_be_turned_off_and_old_layouts_have_none(
    start_runtime: StartRuntime, packages: dict[str, Path], sklearn_model: TrainedModel
) -> None:
    off = start_runtime(
        MODELROLL_MODEL_URI=str(packages["sklearn"]), MODELROLL_MODEL_FORMAT="sklearn",
        MODELROLL_DRIFT_TELEMETRY="false",
    )  # fmt: skip
    single_file = start_runtime(
        MODELROLL_MODEL_URI=str(sklearn_model.file), MODELROLL_MODEL_FORMAT="sklearn"
    )
    for runtime in (off, single_file):
        infer(runtime, sklearn_model.x)
        assert ready_line(runtime)["drift_telemetry"] is False
        assert "modelroll_feature_values" not in runtime.get("/metrics").body.decode()
    np.testing.assert_array_equal(
        infer(single_file, sklearn_model.x)["predict"].ravel(),
        sklearn_model.expected_predict(sklearn_model.x),
    )


def test_with_several_workers_a_scrape_sums_every_workers_counts(
    start_runtime: StartRuntime, packages: dict[str, Path], sklearn_model: TrainedModel
) -> None:
    """Each worker moves its counts into the shared multiprocess files at least once a
    second, so whichever worker answers the scrape reports them all, a second late at most."""
    runtime = start_runtime(
        MODELROLL_MODEL_URI=str(packages["sklearn"]), MODELROLL_MODEL_FORMAT="sklearn",
        MODELROLL_MODEL_VERSION="7", MODELROLL_WORKERS="2",
    )  # fmt: skip
    x, _ = iris()
    batches = [x[i : i + 3] for i in range(0, 150, 3)]

    def infer_once_ready(rows: np.ndarray) -> None:
        # readiness is the first worker's; a 503 from the other, still loading, is never
        # counted, so sending again is what keeps the totals exact
        document = {"inputs": [{"name": "input-0", "shape": list(rows.shape),
                                "datatype": "FP64", "data": rows.ravel().tolist()}]}  # fmt: skip
        deadline = time.monotonic() + 30
        while (status := runtime.post_json("/v2/models/model/infer", document).status) == 503:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        assert status == 200

    with ThreadPoolExecutor(8) as pool:  # one connection per request: both workers answer
        list(pool.map(infer_once_ready, batches))
    expected = expected_counts(packages["sklearn"], x, sklearn_model.native.predict(x))
    deadline = time.monotonic() + 10
    while scraped_counts(runtime) != expected and time.monotonic() < deadline:
        time.sleep(0.2)
    assert scraped_counts(runtime) == expected


@pytest.fixture(scope="module")
def frame_package(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Any]:
    """A ColumnTransformer pipeline on string and numeric columns, packaged with a CSV of its
    training frame: no graph (the model takes strings), string columns profiled by value."""
    import joblib
    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    from .test_inputs import frame

    root = tmp_path_factory.mktemp("frame-package")
    x = frame()
    y = (x["spend"] > 5000) ^ (x["city"] == "oslo")
    columns = ColumnTransformer([
        ("categories", OneHotEncoder(handle_unknown="ignore"), ["city", "plan"]),
        ("numbers", StandardScaler(), ["age", "spend"]),
    ])  # fmt: skip
    model = make_pipeline(columns, LogisticRegression(max_iter=1000)).fit(x, y)
    joblib.dump(model, root / "model.joblib")
    x.to_csv(root / "frame.csv", index=False)
    result = packager.build(root / "model.joblib", root / "frame.csv", root / "package")
    assert result.backend == "native" and "strings" in result.reason
    return result.directory, model


def test_a_dataframe_package_counts_string_columns_by_value(
    start_runtime: StartRuntime, frame_package: tuple[Path, Any]
) -> None:
    from .test_inputs import frame, pandas_request

    directory, model = frame_package
    document = json.loads((directory / "profile.json").read_text())
    kinds = {f["name"]: f["kind"] for f in document["features"]}
    assert kinds == {"city": "categorical", "age": "numeric", "plan": "categorical",
                     "spend": "numeric"}  # fmt: skip
    city = next(f for f in document["features"] if f["name"] == "city")
    assert sorted(city["values"]) == ["lima", "oslo", "paris"] and sum(city["counts"]) == 60
    assert document["prediction"]["bins"][-1] == "__other__"
    assert sorted(document["prediction"]["bins"][:-1]) == ["false", "true"]
    runtime = start_runtime(
        MODELROLL_MODEL_URI=str(directory), MODELROLL_MODEL_FORMAT="sklearn",
        MODELROLL_MODEL_VERSION="7",
    )  # fmt: skip
    rows = frame().iloc[:20].astype({"city": object, "plan": object})
    rows.loc[rows.index[:3], "city"] = "rome"  # never seen: counted as other
    response = runtime.post_json("/v2/models/model/infer", pandas_request(rows))
    assert response.status == 200, response.body
    counts = scraped_counts(runtime)
    sent_cities = rows["city"].tolist()
    for value in ("lima", "oslo", "paris"):
        assert counts[("modelroll_feature_values_total", "city", value)] == sent_cities.count(value)
    assert counts[("modelroll_feature_values_total", "city", "__other__")] == 3
    predicted = model.predict(rows).tolist()
    assert counts[("modelroll_prediction_values_total", "true")] == predicted.count(True)
    assert counts[("modelroll_prediction_values_total", "false")] == predicted.count(False)
    assert counts[("modelroll_drift_rows_total",)] == 20
